//! `floodwatch synth --pcap OUT`: writes a synthetic IoT capture with
//! Mirai-style floods and its per-packet labels.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args as ClapArgs;

use floodwatch::ingest::packets::synth::{self, Attack, SynthConfig};
use floodwatch::util::AtomicFile;

/// Flags of the capture synthesizer (part of `floodwatch synth`).
#[derive(Debug, ClapArgs)]
pub struct CaptureArgs {
    /// Write a capture (classic pcap, Ethernet) instead of a CSV table.
    #[arg(long, value_name = "OUT", requires = "labels")]
    pub pcap: Option<PathBuf>,
    /// With --pcap: the label file to write (`packet_index,label`).
    #[arg(long, value_name = "OUT.csv", requires = "pcap")]
    pub labels: Option<PathBuf>,
    /// Number of packets.
    #[arg(long, default_value_t = 100_000)]
    pub packets: u64,
    /// Benign packets per second (floods arrive ten times faster).
    #[arg(long, value_name = "PPS", default_value_t = 1_000.0)]
    pub rate: f64,
    /// A flood to mix in, in order: udp, syn, ack, http or gre, with
    /// `-spoofed` for random source addresses (e.g. `syn-spoofed`).
    #[arg(long = "attack", value_name = "KIND")]
    pub attacks: Vec<Attack>,
    /// Time of the first packet, seconds since the Unix epoch.
    #[arg(long, default_value_t = 1_700_000_000)]
    pub start: u32,
}

/// Writes the capture `pcap` and its `labels`.
pub fn run(
    args: CaptureArgs,
    pcap: &Path,
    labels: &Path,
    seed: u64,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let cfg = SynthConfig {
        packets: args.packets,
        rate: args.rate,
        seed,
        attacks: args.attacks,
        start_ns: i64::from(args.start) * 1_000_000_000,
    };
    // Temporary files renamed into place once complete.
    let (mut pcap_out, mut labels_out) = (AtomicFile::create(pcap)?, AtomicFile::create(labels)?);
    let summary = synth::write(&cfg, &mut pcap_out, &mut labels_out)?;
    pcap_out.commit()?;
    labels_out.commit()?;
    if !quiet {
        let secs = (summary.end_ns - cfg.start_ns) as f64 * 1e-9;
        eprintln!(
            "wrote {} packets ({} normal, {} attack) over {secs:.1} s to {}, labels to {}",
            summary.packets,
            summary.normal,
            summary.packets - summary.normal,
            pcap.display(),
            labels.display()
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
        args: CaptureArgs,
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
            "--attack",
            "udp",
            "--attack",
            "syn-spoofed",
        ])
        .unwrap();
        assert_eq!(cli.args.attacks.len(), 2);
        run(cli.args, &pcap, &labels, 3, true).unwrap();
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
        assert!(run(cli.args, &p, &p, 0, true).is_err());
        assert!(Cli::try_parse_from(["t", "--pcap", "a"]).is_err());
    }
}
