//! `floodwatch synth`: write the built-in labelled IoT / Mirai flood table,
//! or with `--pcap` a synthetic capture and its per-packet labels.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args as ClapArgs;
use floodwatch::ingest::synth::{parse_mix, SynthParams};

/// Write a deterministic, labelled CSV of benign IoT flows and Mirai floods
/// (or, with --pcap, a capture of them).
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The CSV file to write.
    #[arg(long, required_unless_present = "pcap", conflicts_with = "pcap")]
    pub out: Option<PathBuf>,
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
    #[command(flatten)]
    pub capture: super::synth_pcap::CaptureArgs,
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
    let (out, capture) = match (&args.out, &args.capture.pcap, &args.capture.labels) {
        (Some(out), _, _) => (out.clone(), None),
        (None, Some(pcap), Some(labels)) => (pcap.clone(), Some(labels.clone())),
        _ => anyhow::bail!("synth needs --out FILE.csv, or --pcap OUT --labels OUT.csv"),
    };
    if let Some(labels) = capture {
        return super::synth_pcap::run(args.capture, &out, &labels, args.seed, quiet);
    }
    args.params()?.write_file(&out)?;
    if !quiet {
        eprintln!("wrote {} rows to {}", args.rows, out.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(flags: &[&str]) -> Result<Args, clap::Error> {
        Cli::try_parse_from(std::iter::once("t").chain(flags.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn params_from_flags() {
        let mut a = parse(&["--out", "x.csv", "--rows", "5", "--seed", "3"]).unwrap();
        a.attack_mix = Some("GRE.IP=2".into());
        let p = a.params().unwrap();
        assert_eq!((p.rows, p.seed, p.mix.len()), (5, 3, 1));
        a.attack_mix = Some("nope".into());
        assert!(a.params().is_err());
    }

    #[test]
    fn table_or_capture_never_both() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["--out", "a.csv", "--pcap", "b.pcap", "--labels", "c"]).is_err());
        assert!(parse(&["--pcap", "b.pcap"]).is_err());
        let a = parse(&["--pcap", "b.pcap", "--labels", "c.csv", "--attack", "syn"]).unwrap();
        assert_eq!(a.capture.attacks.len(), 1);
    }

    #[test]
    fn writes_a_capture_with_pcap() {
        let dir = tempfile::tempdir().unwrap();
        let (pcap, labels) = (dir.path().join("s.pcap"), dir.path().join("s.csv"));
        let a = parse(&[
            "--pcap",
            pcap.to_str().unwrap(),
            "--labels",
            labels.to_str().unwrap(),
            "--packets",
            "50",
        ])
        .unwrap();
        run(a, true).unwrap();
        let text = std::fs::read_to_string(&labels).unwrap();
        assert_eq!(text.lines().count(), 51);
    }
}
