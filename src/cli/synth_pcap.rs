//! `floodwatch synth --pcap OUT`: writes a synthetic IoT capture with
//! Mirai-style floods and its per-packet labels.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args as ClapArgs, ValueEnum};

use floodwatch::ingest::packets::synth::{
    self, parse_duration, Attack, DayConfig, ScanConfig, Scenario, SynthConfig, SynthSummary,
};
use floodwatch::util::AtomicFile;

/// Packets written by the `iot` profile unless told otherwise.
const IOT_PACKETS: u64 = 100_000;

/// The traffic model of a synthetic capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// Eight IoT devices; floods placed by packet count.
    Iot,
    /// A long, varied home network (31 hosts, daily rate swing, churn,
    /// bulk transfers, updates, a monitor, a new stream); attacks at a
    /// given time.
    Day,
}

/// Flags of the capture synthesizer (part of `floodwatch synth`).
#[derive(Debug, ClapArgs)]
pub struct CaptureArgs {
    /// Write a capture (classic pcap, Ethernet) instead of a CSV table.
    #[arg(long, value_name = "OUT", requires = "labels")]
    pub pcap: Option<PathBuf>,
    /// With --pcap: the label file to write (`packet_index,label`).
    #[arg(long, value_name = "OUT.csv", requires = "pcap")]
    pub labels: Option<PathBuf>,
    /// Traffic model.
    #[arg(long, value_enum, default_value_t = Profile::Iot)]
    pub profile: Profile,
    /// Number of packets [default: 100000; with --duration, no limit].
    #[arg(long)]
    pub packets: Option<u64>,
    /// With --profile day: length of the capture (e.g. 45s, 90m, 6h).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub duration: Option<i64>,
    /// Benign packets per second (floods arrive ten times faster); with
    /// --profile day, the mean of the background chatter.
    #[arg(long, value_name = "PPS", default_value_t = 1_000.0)]
    pub rate: f64,
    /// With --profile day: period of the daily rate swing [default: 24h].
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub day_length: Option<i64>,
    /// An attack to mix in, in order: udp, syn, ack, http or gre, with
    /// `-spoofed` for random source addresses (e.g. `syn-spoofed`); with
    /// --profile day also hscan, vscan or infected.
    #[arg(long = "attack", value_name = "KIND")]
    pub attacks: Vec<Scenario>,
    /// With --profile day: onset of the first attack after the start
    /// [default: after 40% of the capture].
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub attack_at: Option<i64>,
    /// With --profile day: length of each attack; several attacks run one
    /// after the other, this long apart [default: 60s].
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub attack_duration: Option<i64>,
    /// Probes per second of each scanner (hscan, vscan, infected).
    #[arg(long, value_name = "PPS", default_value_t = 100.0)]
    pub scan_rate: f64,
    /// Scanning hosts at once (hscan, vscan).
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub scanners: u32,
    /// Ports of a horizontal scan, comma-separated.
    #[arg(
        long,
        value_name = "PORTS",
        value_delimiter = ',',
        default_value = "23"
    )]
    pub scan_ports: Vec<u16>,
    /// A vertical scan probes ports 1 to N.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub vscan_ports: u16,
    /// Time from the infected device's first scan to its UDP flood.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "20s")]
    pub infected_delay: i64,
    /// Time of the first packet, seconds since the Unix epoch.
    #[arg(long, default_value_t = 1_700_000_000)]
    pub start: u32,
}

impl CaptureArgs {
    /// The `iot` profile's configuration; day-only flags are errors.
    fn iot(&self, seed: u64) -> anyhow::Result<SynthConfig> {
        let day_only = [
            (self.duration.is_some(), "--duration"),
            (self.day_length.is_some(), "--day-length"),
            (self.attack_at.is_some(), "--attack-at"),
            (self.attack_duration.is_some(), "--attack-duration"),
        ];
        if let Some((_, flag)) = day_only.iter().find(|(set, _)| *set) {
            bail!("{flag} needs --profile day");
        }
        let floods = self.attacks.iter().map(|s| match s {
            Scenario::Flood(a) => Ok(*a),
            other => bail!("--attack {other} needs --profile day"),
        });
        Ok(SynthConfig {
            packets: self.packets.unwrap_or(IOT_PACKETS),
            rate: self.rate,
            seed,
            attacks: floods.collect::<anyhow::Result<Vec<Attack>>>()?,
            start_ns: self.start_ns(),
        })
    }

    /// The `day` profile's configuration.
    fn day(&self, seed: u64) -> DayConfig {
        let defaults = DayConfig::default();
        DayConfig {
            rate: self.rate,
            seed,
            start_ns: self.start_ns(),
            duration_ns: self.duration,
            packets: self
                .packets
                .or(Some(IOT_PACKETS).filter(|_| self.duration.is_none())),
            day_ns: self.day_length.unwrap_or(defaults.day_ns),
            attacks: self.attacks.clone(),
            attack_at_ns: self.attack_at,
            attack_duration_ns: self.attack_duration.unwrap_or(defaults.attack_duration_ns),
            scan: ScanConfig {
                rate: self.scan_rate,
                scanners: self.scanners,
                ports: self.scan_ports.clone(),
                vscan_ports: self.vscan_ports,
                infected_delay_ns: self.infected_delay,
            },
        }
    }

    fn start_ns(&self) -> i64 {
        i64::from(self.start) * 1_000_000_000
    }
}

/// Writes the capture `pcap` and its `labels`.
pub fn run(
    args: CaptureArgs,
    pcap: &Path,
    labels: &Path,
    seed: u64,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    // Checked before any file is created.
    let iot = match args.profile {
        Profile::Iot => Some(args.iot(seed)?),
        Profile::Day => None,
    };
    let day = args.day(seed);
    match &iot {
        Some(cfg) => cfg.validate()?,
        None => day.validate()?,
    }
    // Temporary files renamed into place once complete.
    let (mut pcap_out, mut labels_out) = (AtomicFile::create(pcap)?, AtomicFile::create(labels)?);
    let summary = match &iot {
        Some(cfg) => synth::write(cfg, &mut pcap_out, &mut labels_out)?,
        None => synth::write_day(&day, &mut pcap_out, &mut labels_out)?,
    };
    pcap_out.commit()?;
    labels_out.commit()?;
    if !quiet {
        report(&summary, args.start_ns(), pcap, labels);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints what was written, and when each attack ran (capture seconds).
fn report(summary: &SynthSummary, start_ns: i64, pcap: &Path, labels: &Path) {
    let secs = |t: i64| (t - start_ns) as f64 * 1e-9;
    eprintln!(
        "wrote {} packets ({} normal, {} attack) over {:.1} s to {}, labels to {}",
        summary.packets,
        summary.normal,
        summary.packets - summary.normal,
        secs(summary.end_ns),
        pcap.display(),
        labels.display()
    );
    for a in &summary.attacks {
        let from: Vec<String> = a.attackers.iter().map(|ip| ip.to_string()).collect();
        eprintln!(
            "attack {} from {:.3} s to {:.3} s, sent by {}",
            a.label,
            secs(a.onset_ns),
            secs(a.end_ns),
            from.join(" ")
        );
    }
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
    fn day_profile_places_a_scan() {
        let dir = tempfile::tempdir().unwrap();
        let (pcap, labels) = (dir.path().join("d.pcap"), dir.path().join("d.csv"));
        let cli = Cli::try_parse_from([
            "t",
            "--pcap",
            pcap.to_str().unwrap(),
            "--labels",
            labels.to_str().unwrap(),
            "--profile",
            "day",
            "--duration",
            "40s",
            "--rate",
            "20",
            "--attack",
            "hscan",
            "--attack-at",
            "10s",
            "--attack-duration",
            "5s",
            "--scan-ports",
            "23,2323",
        ])
        .unwrap();
        assert_eq!(cli.args.scan_ports, [23, 2323]);
        run(cli.args, &pcap, &labels, 3, true).unwrap();
        let text = std::fs::read_to_string(&labels).unwrap();
        let scans = text.lines().filter(|l| l.ends_with(",hscan")).count();
        assert!((450..600).contains(&scans), "{scans}");
    }

    #[test]
    fn day_only_flags_need_the_day_profile() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        let path = p.to_str().unwrap();
        for extra in [
            ["--duration", "1h"],
            ["--attack", "vscan"],
            ["--attack-at", "5m"],
        ] {
            let mut argv = vec!["t", "--pcap", path, "--labels", path];
            argv.extend(extra);
            let cli = Cli::try_parse_from(argv).unwrap();
            let e = run(cli.args, &p, &p, 0, true).unwrap_err().to_string();
            assert!(e.contains("needs --profile day"), "{e}");
            assert!(!p.exists());
        }
        for bad in [["--duration", "6x"], ["--scan-ports", "23,x"]] {
            let mut argv = vec!["t", "--pcap", "a", "--labels", "b", "--profile", "day"];
            argv.extend(bad);
            let e = Cli::try_parse_from(argv).unwrap_err().to_string();
            assert!(e.contains(bad[0]), "{e}");
        }
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
