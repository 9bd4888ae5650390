//! `floodwatch splice`: puts an attack capture into a benign one at an
//! offset and writes the label of every packet.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args as ClapArgs;

use floodwatch::ingest::packets::splice::{splice_files, SpliceConfig};

/// Flags of `splice`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The benign capture (pcap or pcapng).
    #[arg(long)]
    pub base: PathBuf,
    /// The attack capture to insert (pcap or pcapng, same link type).
    #[arg(long)]
    pub insert: PathBuf,
    /// Where the insert starts, in seconds after the base's first packet.
    #[arg(long, value_name = "SECONDS")]
    pub at: f64,
    /// The merged capture to write (classic pcap).
    #[arg(long, value_name = "OUT.pcap")]
    pub out: PathBuf,
    /// The label file to write (`packet_index,label`).
    #[arg(long, value_name = "OUT.csv")]
    pub labels: PathBuf,
    /// Label of the inserted packets.
    #[arg(long, value_name = "NAME", default_value = "attack")]
    pub insert_label: String,
    /// Label of the base packets.
    #[arg(long, value_name = "NAME", default_value = "normal")]
    pub base_label: String,
}

/// Splices and reports what was written and skipped.
pub fn run(args: Args, quiet: bool) -> anyhow::Result<ExitCode> {
    let cfg = SpliceConfig {
        at_s: args.at,
        base_label: args.base_label,
        insert_label: args.insert_label,
    };
    let summary = splice_files(&args.base, &args.insert, &args.out, &args.labels, &cfg)?;
    // Damage is reported even with --quiet: the output is incomplete.
    for problem in &summary.problems {
        eprintln!("floodwatch: warning: {problem}");
    }
    if !quiet {
        eprintln!(
            "wrote {} packets ({} {}, {} {}) to {}, labels to {}",
            summary.base_packets + summary.insert_packets,
            summary.base_packets,
            cfg.base_label,
            summary.insert_packets,
            cfg.insert_label,
            args.out.display(),
            args.labels.display()
        );
    }
    Ok(if summary.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(4)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use floodwatch::ingest::packets::capture::CaptureReader;
    use floodwatch::ingest::packets::synth::{self, SynthConfig};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn synth_file(path: &std::path::Path, seed: u64, attacks: &[&str], start_ns: i64) {
        let cfg = SynthConfig {
            packets: 300,
            rate: 100.0,
            seed,
            attacks: attacks.iter().map(|a| a.parse().unwrap()).collect(),
            start_ns,
        };
        synth::write(&cfg, std::fs::File::create(path).unwrap(), std::io::sink()).unwrap();
    }

    #[test]
    fn round_trip_preserves_counts_order_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
        synth_file(
            dir.path().join("base.pcap").as_path(),
            1,
            &[],
            1_600_000_000_000_000_000,
        );
        synth_file(
            dir.path().join("atk.pcap").as_path(),
            2,
            &["syn"],
            1_650_000_000_000_000_000,
        );
        let cli = Cli::try_parse_from([
            "t",
            "--base",
            &p("base.pcap"),
            "--insert",
            &p("atk.pcap"),
            "--at",
            "0.5",
            "--out",
            &p("out.pcap"),
            "--labels",
            &p("out.csv"),
            "--insert-label",
            "syn_flood",
        ])
        .unwrap();
        assert_eq!(run(cli.args, true).unwrap(), ExitCode::SUCCESS);
        let mut r = CaptureReader::open(p("out.pcap")).unwrap();
        let mut buf = Vec::new();
        let mut times = Vec::new();
        while let Some(f) = r.next_packet(&mut buf).unwrap() {
            times.push(f.ts_ns);
        }
        assert_eq!(times.len(), 600);
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        let labels = std::fs::read_to_string(p("out.csv")).unwrap();
        let rows: Vec<&str> = labels.lines().skip(1).collect();
        assert_eq!(rows.len(), 600);
        assert_eq!(
            rows.iter().filter(|r| r.ends_with(",syn_flood")).count(),
            300
        );
        assert_eq!(rows.iter().filter(|r| r.ends_with(",normal")).count(), 300);
        // The first inserted packet sits 0.5 s after the base's first.
        let first_insert = rows.iter().position(|r| r.ends_with(",syn_flood")).unwrap();
        assert_eq!(times[first_insert] - times[0], 500_000_000);
    }

    #[test]
    fn missing_input_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
        let cli = Cli::try_parse_from([
            "t",
            "--base",
            &p("nope.pcap"),
            "--insert",
            &p("nope.pcap"),
            "--at",
            "1",
            "--out",
            &p("o.pcap"),
            "--labels",
            &p("o.csv"),
        ])
        .unwrap();
        let err = run(cli.args, true).unwrap_err();
        assert!(err.to_string().contains("nope.pcap"), "{err}");
    }
}
