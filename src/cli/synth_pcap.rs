//! `floodwatch synth --pcap OUT`: writes a synthetic IoT capture with
//! Mirai-style floods and its per-packet labels.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args as ClapArgs;

use floodwatch::ingest::packets::synth::{self, Attack, SynthConfig};

/// Flags of the capture synthesizer.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The capture to write (classic pcap, Ethernet).
    #[arg(long, value_name = "OUT")]
    pub pcap: PathBuf,
    /// The label file to write (`packet_index,label`).
    #[arg(long, value_name = "OUT.csv")]
    pub labels: PathBuf,
    /// Number of packets.
    #[arg(long, default_value_t = 100_000)]
    pub packets: u64,
    /// Benign packets per second (floods arrive ten times faster).
    #[arg(long, value_name = "PPS", default_value_t = 1_000.0)]
    pub rate: f64,
    /// Seed of the random generator: the same seed writes the same file.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A flood to mix in, in order: udp, syn, ack, http or gre, with
    /// `-spoofed` for random source addresses (e.g. `syn-spoofed`).
    #[arg(long = "attack", value_name = "KIND")]
    pub attacks: Vec<Attack>,
    /// Time of the first packet, seconds since the Unix epoch.
    #[arg(long, default_value_t = 1_700_000_000)]
    pub start: u32,
}

/// Writes the capture and its labels.
pub fn run(args: Args, quiet: bool) -> anyhow::Result<ExitCode> {
    let cfg = SynthConfig {
        packets: args.packets,
        rate: args.rate,
        seed: args.seed,
        attacks: args.attacks,
        start_ns: i64::from(args.start) * 1_000_000_000,
    };
    let create = |p: &PathBuf| {
        File::create(p)
            .map(|f| BufWriter::with_capacity(1 << 20, f))
            .with_context(|| format!("creating {}", p.display()))
    };
    let summary = synth::write(&cfg, create(&args.pcap)?, create(&args.labels)?)?;
    if !quiet {
        let secs = (summary.end_ns - cfg.start_ns) as f64 * 1e-9;
        eprintln!(
            "wrote {} packets ({} normal, {} attack) over {secs:.1} s to {}, labels to {}",
            summary.packets,
            summary.normal,
            summary.packets - summary.normal,
            args.pcap.display(),
            args.labels.display()
        );
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

    #[test]
    fn writes_capture_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let (pcap, labels) = (dir.path().join("s.pcap"), dir.path().join("s.csv"));
        let cli = Cli::try_parse_from([
            "t",
            "--pcap",
            pcap.to_str().unwrap(),
            "--labels",
            labels.to_str().unwrap(),
            "--packets",
            "200",
            "--rate",
            "50",
            "--seed",
            "3",
            "--attack",
            "udp",
            "--attack",
            "syn-spoofed",
        ])
        .unwrap();
        assert_eq!(cli.args.attacks.len(), 2);
        run(cli.args, true).unwrap();
        let text = std::fs::read_to_string(&labels).unwrap();
        assert_eq!(text.lines().count(), 201);
        assert!(std::fs::metadata(&pcap).unwrap().len() > 24 + 200 * 16);
    }

    #[test]
    fn rejects_unknown_attack_and_bad_rate() {
        assert!(
            Cli::try_parse_from(["t", "--pcap", "a", "--labels", "b", "--attack", "smurf"])
                .is_err()
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        let cli = Cli::try_parse_from([
            "t",
            "--pcap",
            p.to_str().unwrap(),
            "--labels",
            p.to_str().unwrap(),
            "--rate=0",
        ])
        .unwrap();
        assert!(run(cli.args, true).is_err());
    }
}
