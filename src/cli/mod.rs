//! Flags and subcommands. Each subcommand lives in its own file with its
//! `Args` and a `run` that builds library objects and reports.

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
enum Command {}

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let _ = cli.quiet;
    match cli.command {}
}
