//! `floodwatch synth`: write the built-in labelled IoT / Mirai flood table.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args as ClapArgs;
use floodwatch::ingest::synth::{parse_mix, SynthParams};

/// Write a deterministic, labelled CSV of benign IoT flows and Mirai floods.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The CSV file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Data rows.
    #[arg(long, default_value_t = 10_000)]
    pub rows: usize,
    /// Random seed: the same seed writes the same file.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Share of attack rows, in [0, 1].
    #[arg(long, default_value_t = 0.25)]
    pub attack_fraction: f64,
    /// Attack families and weights, e.g. `UDP.flood=2,TCP.SYN.flood=1`
    /// [default: all six, equal weights].
    #[arg(long)]
    pub attack_mix: Option<String>,
}

impl Args {
    /// The generator parameters.
    pub fn params(&self) -> anyhow::Result<SynthParams> {
        let mut p = SynthParams {
            rows: self.rows,
            seed: self.seed,
            attack_fraction: self.attack_fraction,
            ..SynthParams::default()
        };
        if let Some(m) = &self.attack_mix {
            p.mix = parse_mix(m)?;
        }
        Ok(p)
    }
}

/// Writes the table.
pub fn run(args: Args, quiet: bool) -> anyhow::Result<ExitCode> {
    args.params()?.write_file(&args.out)?;
    if !quiet {
        eprintln!("wrote {} rows to {}", args.rows, args.out.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_from_flags() {
        let mut a = Args {
            out: "x.csv".into(),
            rows: 5,
            seed: 3,
            attack_fraction: 0.5,
            attack_mix: Some("GRE.IP=2".into()),
        };
        let p = a.params().unwrap();
        assert_eq!((p.rows, p.seed, p.mix.len()), (5, 3, 1));
        a.attack_mix = Some("nope".into());
        assert!(a.params().is_err());
    }
}
