//! The `floodwatch` command: a thin layer over the library that parses flags,
//! runs one subcommand and turns its outcome into an exit code.
//!
//! Exit codes: 0 ok, 1 error, 2 usage error (clap's own), 3 anomalies found
//! when asked for with `--fail-on-anomaly`, 4 output written from a damaged
//! capture (`extract`, `splice`), 5 records dropped under `watch
//! --fail-on-drop`. A closed standard output ends any command quietly with 0.

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
            eprintln!("floodwatch: {}", render(&err));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes, each said once: a library error already
/// quotes its cause ("m.fw: No space left on device"), which the chain
/// then lists again.
fn render(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if !text.ends_with(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

/// Whether a write to a closed pipe ended the run, however wrapped (CSV
/// writers hand their I/O errors back inside an `Other` error).
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    fn pipe(e: &(dyn std::error::Error + 'static)) -> bool {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::BrokenPipe
                || io.get_ref().is_some_and(|inner| pipe(inner));
        }
        if let Some(csv::ErrorKind::Io(io)) = e.downcast_ref::<csv::Error>().map(csv::Error::kind) {
            return pipe(io);
        }
        false
    }
    err.chain().any(pipe)
}
