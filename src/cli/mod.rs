//! Flags and subcommands. Each subcommand lives in its own file with its
//! `Args` and a `run` that builds library objects and reports.

mod extract;
mod splice;
mod synth_pcap;

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
    /// Compute per-packet features (Kitsune / N-BaIoT) of a capture into a CSV.
    Extract(extract::Args),
    /// Put an attack capture into a benign one and label every packet.
    Splice(splice::Args),
    /// TEMPORARY (the lead folds it into `synth --pcap`): write a synthetic
    /// IoT capture with Mirai-style floods and its labels.
    SynthPcap(synth_pcap::Args),
}

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let _ = cli.quiet;
    match cli.command {
        Command::Extract(args) => extract::run(args, cli.quiet),
        Command::Splice(args) => splice::run(args, cli.quiet),
        Command::SynthPcap(args) => synth_pcap::run(args, cli.quiet),
    }
}
