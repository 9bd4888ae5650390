//! The `floodwatch` command: a thin layer over the library that parses flags,
//! runs one subcommand and turns its outcome into an exit code.
//!
//! Exit codes: 0 ok, 1 error, 2 usage error (clap's own), 3 anomalies found
//! when asked for with `--fail-on-anomaly`, 4 output written from a damaged
//! capture (`extract`, `splice`).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`floodwatch ... | head`) is how a reader says
            // "enough", not an error.
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("floodwatch: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
