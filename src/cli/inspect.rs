//! `floodwatch inspect`: what a model file holds.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args as ClapArgs;
use floodwatch::report::inspect::inspect;

/// Describe a model file of either kind: format, features, detectors and
/// thresholds, training.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The model file (from `train` or `watch --save-model`).
    pub model: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Loads, checks and describes the model.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let info = inspect(&args.model)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print!("{info}");
    }
    Ok(ExitCode::SUCCESS)
}
