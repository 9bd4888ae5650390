//! Flags and subcommands. Each subcommand lives in its own file with its
//! `Args` and a `run` that builds library objects and reports.

mod bench;
mod capture_flags;
mod demo;
#[cfg(feature = "plot")]
mod eval;
mod extract;
mod flow_flags;
mod inspect;
#[cfg(feature = "kafka")]
mod kafka_flags;
#[cfg(feature = "plot")]
mod plot;
#[cfg(feature = "kafka")]
mod produce;
#[cfg(feature = "plot")]
mod report;
mod splice;
mod synth;
mod synth_pcap;
mod test;
#[cfg(feature = "plot")]
mod threshold;
mod train;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Detect DDoS floods and network anomalies with autoencoders trained on
/// normal traffic.
#[derive(Debug, Parser)]
#[command(name = "floodwatch", version, about)]
pub struct Cli {
    /// No progress bars or summaries on standard error.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a table model from labelled CSV files or captures.
    Train(train::Args),
    /// Score CSV files or captures with a saved model (from train or watch).
    Test(test::Args),
    /// Write the built-in labelled IoT / Mirai flood table.
    Synth(synth::Args),
    /// Synthesise, train, test and report, in a few seconds.
    Demo(demo::Args),
    /// Time training and scoring on generated data; print JSON.
    Bench(bench::Args),
    /// Describe a model file: kind, format, features, detectors, thresholds.
    Inspect(inspect::Args),
    /// Compute per-packet features (Kitsune / N-BaIoT) of a capture into a CSV.
    Extract(extract::Args),
    /// Put an attack capture into a benign one and label every packet.
    Splice(splice::Args),
    /// Detect floods as records arrive: capture file, live interface or
    /// standard input; alerts, scores and metrics.
    Watch(watch::Args),
    /// Compare every detector on the same data; metrics and pictures.
    #[cfg(feature = "plot")]
    Eval(eval::Args),
    /// Draw one picture from a model bundle and data.
    #[cfg(feature = "plot")]
    Plot(plot::Args),
    /// Compare threshold rules on validation data; write one into the bundle.
    #[cfg(feature = "plot")]
    Threshold(threshold::Args),
    /// Write a self-contained HTML report of a model on data.
    #[cfg(feature = "plot")]
    Report(report::Args),
    /// Publish a capture or a CSV table to a Kafka topic, keyed for watch.
    #[cfg(feature = "kafka")]
    Produce(produce::Args),
}

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Train(a) => train::run(a, cli.quiet),
        Command::Test(a) => test::run(a, cli.quiet),
        Command::Synth(a) => synth::run(a, cli.quiet),
        Command::Demo(a) => demo::run(a, cli.quiet),
        Command::Bench(a) => bench::run(a, cli.quiet),
        Command::Extract(args) => extract::run(args, cli.quiet),
        Command::Inspect(args) => inspect::run(args),
        Command::Splice(args) => splice::run(args, cli.quiet),
        Command::Watch(args) => watch::run(args, cli.quiet),
        #[cfg(feature = "plot")]
        Command::Eval(a) => eval::run(a, cli.quiet),
        #[cfg(feature = "plot")]
        Command::Plot(a) => plot::run(a, cli.quiet),
        #[cfg(feature = "plot")]
        Command::Threshold(a) => threshold::run(a, cli.quiet),
        #[cfg(feature = "plot")]
        Command::Report(a) => report::run(a, cli.quiet),
        #[cfg(feature = "kafka")]
        Command::Produce(a) => produce::run(a, cli.quiet),
    }
}

/// A progress bar on standard error, hidden with `--quiet` or when standard
/// error is not a terminal.
pub fn progress_bar(len: u64, unit: &str, quiet: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let counts = if unit == "bytes" {
        "{bytes}/{total_bytes}".to_string()
    } else {
        format!("{{pos}}/{{len}} {unit}")
    };
    let style = indicatif::ProgressStyle::with_template(&format!("{{bar:30}} {counts} {{msg}}"))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    indicatif::ProgressBar::new(len).with_style(style)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_definitions_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn subcommands_parse() {
        for args in [
            &["fw", "demo"][..],
            &["fw", "-q", "synth", "--out", "x.csv"],
            &[
                "fw",
                "test",
                "--data",
                "a",
                "--model",
                "m",
                "--fail-on-anomaly",
            ],
            &["fw", "bench", "--score-rows", "10"],
        ] {
            assert!(Cli::try_parse_from(args).is_ok(), "{args:?}");
        }
        assert!(Cli::try_parse_from(["fw", "nope"]).is_err());
        assert!(progress_bar(3, "epochs", true).is_hidden());
    }
}
