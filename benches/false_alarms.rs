//! False alarms per benign day, and how fast every attack is alerted:
//! `watch` with its default flags (layout `victim`, autoencoders, vote 6/10,
//! a budget of one false episode a day) over long labelled captures.
//!
//! `cargo bench --bench false_alarms` prints one JSON line per case:
//!
//! - `day-benign`: `FLOODWATCH_BENCH_HOURS` hours (default 6) of
//!   `synth --profile day` traffic without attacks, after a 10-minute grace:
//!   every alert episode is false;
//! - `day-attacks`: the same with, from minute 15 (and, in a second run,
//!   from hour 3, after thresholds followed hours of drift), each flood
//!   family, a horizontal and a vertical scan and an infected device, one a
//!   minute apart: per attack, the time from onset to the first episode
//!   naming its victim (floods) or its sender (scans, infected device), the
//!   share of its packets flagged, and the episodes about hosts no attack
//!   involved;
//! - `shared-splice`: each flood of `../shared/data/pcap` spliced into the
//!   benign Mirai capture at 72 s, grace 50 s;
//! - `shared-benign`: the real benign captures of `../shared/data/benign`.
//!
//! Captures are generated into a pipe and read from it as they are written:
//! memory does not grow with the hours.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use floodwatch::detect::alert::Alert;
use floodwatch::detect::episode::TrackerParams;
use floodwatch::detect::sink::AlertSink;
use floodwatch::detect::stream::source::PacketRecords;
use floodwatch::detect::stream::{
    learning_sides, Calibrate, Engine, EngineParams, Grace, OnlineDetector, Summary,
};
use floodwatch::features::combined::PacketLayout;
use floodwatch::features::packet::FeatureExtractor;
use floodwatch::features::stream_table::TableConfig;
use floodwatch::ingest::packets::capture::{CaptureReader, PacketSource};
use floodwatch::ingest::packets::synth::{write_day, AttackSpan, DayConfig, ScanConfig, Scenario};
use serde_json::{json, Value};

const START_NS: i64 = 1_700_000_000_000_000_000;

/// Episode starts, as (capture seconds, family, host the episode names).
#[derive(Default)]
struct Starts(Vec<(f64, String, IpAddr)>);

impl AlertSink for Starts {
    fn alert(&mut self, a: &Alert) -> std::io::Result<()> {
        let v = serde_json::to_value(a).map_err(std::io::Error::other)?;
        let ctx = &v["alert"]["context"];
        if ctx["state"] != "start" {
            return Ok(());
        }
        let family = ctx["family"].as_str().unwrap_or("").to_owned();
        let key = if family == "flood_target" {
            "dest_ip"
        } else {
            "src_ip"
        };
        let host = v[key].as_str().and_then(|s| s.parse().ok());
        let t = ctx["episode"]["start"].as_str().map_or(0.0, epoch_secs);
        if let Some(host) = host {
            self.0.push((t, family, host));
        }
        Ok(())
    }
}

/// Seconds since the epoch of `2023-11-14T22:13:20.123456+0000`.
fn epoch_secs(ts: &str) -> f64 {
    let num =
        |r: std::ops::Range<usize>| ts.get(r).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    let (y, mo, d) = (num(0..4) as i64, num(5..7) as i64, num(8..10) as i64);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days as f64 * 86_400.0 + num(11..13) * 3600.0 + num(14..16) * 60.0 + num(17..26)
}

/// A writer whose bytes can be read after the run.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `watch`'s engine with its defaults over a capture.
fn watch(capture: impl Read, grace: Grace, scores: Option<Shared>) -> (Summary, Starts) {
    try_watch(capture, grace, scores).expect("watch")
}

/// The same; errors (a grace the capture cannot support) returned.
fn try_watch(
    capture: impl Read,
    grace: Grace,
    scores: Option<Shared>,
) -> floodwatch::Result<(Summary, Starts)> {
    let reader = CaptureReader::from_reader(capture, "bench")?;
    let layout = PacketLayout::Victim;
    let features = layout.extractor(TableConfig::default())?;
    let groups = features.groups();
    let mut source = PacketRecords::new(PacketSource::new(reader), features);
    let sides = learning_sides(groups, OnlineDetector::Autoencoder { epochs: 60 }, 20_000);
    let params = EngineParams {
        tracker: TrackerParams::new(),
        top_features: 5,
        save_model: None,
        grace: Some(grace),
        calibrate: Calibrate::Budget(1.0),
        drift: Some(600.0),
        layout: None,
    };
    let mut engine = Engine::new(
        params,
        sides,
        Arc::default(),
        Arc::new(AtomicBool::new(false)),
    )?;
    if let Some(s) = scores {
        engine = engine.scores_to(Box::new(s));
    }
    let mut starts = Starts::default();
    let summary = engine.run(&mut source, &mut starts)?;
    Ok((summary, starts))
}

/// A day-profile capture written into a pipe by a thread; the labels go to
/// `labels` when given.
fn day(
    cfg: DayConfig,
    labels: Option<Shared>,
) -> (
    std::io::PipeReader,
    std::thread::JoinHandle<Vec<AttackSpan>>,
) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    let thread = std::thread::spawn(move || {
        let out = std::io::BufWriter::with_capacity(1 << 20, writer);
        let summary = match labels {
            Some(l) => write_day(&cfg, out, l),
            None => write_day(&cfg, out, std::io::sink()),
        };
        summary.expect("synth").attacks
    });
    (reader, thread)
}

fn config(secs: i64, seed: u64, attacks: Vec<Scenario>, at: Option<i64>) -> DayConfig {
    DayConfig {
        rate: 100.0,
        seed,
        start_ns: START_NS,
        duration_ns: Some(secs * 1_000_000_000),
        packets: None,
        day_ns: 86_400 * 1_000_000_000,
        attacks,
        attack_at_ns: at,
        attack_duration_ns: 60 * 1_000_000_000,
        scan: ScanConfig::default(),
    }
}

fn day_benign(hours: f64) -> Value {
    let secs = (hours * 3600.0) as i64;
    let (pipe, gen) = day(config(secs, 7, Vec::new(), None), None);
    let (s, starts) = watch(pipe, Grace::Seconds(600.0), None);
    gen.join().expect("synth thread");
    let scored_hours = (secs as f64 - s.grace_seconds) / 3600.0;
    json!({
        "case": "day-benign",
        "hours": hours,
        "records": s.records,
        "grace_records": s.grace,
        "false_episodes": starts.0.len(),
        "false_episodes_per_day": starts.0.len() as f64 / scored_hours * 24.0,
        "benign_records_flagged": s.anomalies,
        "thresholds": s.sides.iter().map(|x| x.threshold).collect::<Vec<_>>(),
        "drift_factors": s.sides.iter().map(|x| x.drift.map(|d| d.factor)).collect::<Vec<_>>(),
        "calibrated": s.sides.iter().map(|x| x.calibration.as_ref().map(|c| c.threshold)).collect::<Vec<_>>(),
        "records_per_second": s.records as f64 / s.elapsed.as_secs_f64(),
    })
}

/// Whether `ip` lies in `net/len`.
fn within(ip: IpAddr, (net, len): (std::net::Ipv4Addr, u8)) -> bool {
    let IpAddr::V4(ip) = ip else { return false };
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    len > 0 && u32::from(ip) & mask == u32::from(net) & mask
}

fn day_attacks(onset_minutes: i64) -> Value {
    let attacks = [
        "udp",
        "syn-spoofed",
        "ack",
        "http",
        "gre",
        "udp-spoofed",
        "hscan",
        "vscan",
        "infected",
    ]
    .iter()
    .map(|a| a.parse().expect("scenario"))
    .collect();
    let (labels, scores) = (Shared::default(), Shared::default());
    let (pipe, gen) = day(
        config(
            onset_minutes * 60 + 2100,
            3,
            attacks,
            Some(onset_minutes * 60_000_000_000),
        ),
        Some(labels.clone()),
    );
    let (s, starts) = watch(pipe, Grace::Seconds(600.0), Some(scores.clone()));
    let spans = gen.join().expect("synth thread");
    let labels = String::from_utf8(labels.0.lock().expect("labels").clone()).expect("utf-8");
    let labels: Vec<&str> = labels
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap_or(""))
        .collect();
    let scores = String::from_utf8(scores.0.lock().expect("scores").clone()).expect("utf-8");
    let mut flagged = std::collections::HashMap::<&str, (u64, u64)>::new();
    for line in scores.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (Some(i), Some(dst), Some(src)) = (f.first(), f.get(3), f.get(5)) else {
            continue;
        };
        let label = i
            .parse::<usize>()
            .ok()
            .and_then(|i| labels.get(i - 1))
            .copied()
            .unwrap_or("");
        if f.get(2).is_some_and(|s| !s.is_empty()) {
            let e = flagged.entry(label).or_default();
            e.0 += 1;
            e.1 += u64::from(*dst == "1" || *src == "1");
        }
    }
    let involved = |t: f64, host: IpAddr| {
        spans.iter().any(|a| {
            let (on, end) = (a.onset_ns as f64 * 1e-9, a.end_ns as f64 * 1e-9);
            t >= on - 1.0
                && t <= end + 60.0
                && (a.attackers.iter().any(|&x| IpAddr::V4(x) == host)
                    || a.targets.iter().any(|&n| within(host, n)))
        })
    };
    let per_attack: Vec<Value> = spans
        .iter()
        .map(|a| {
            let (on, end) = (a.onset_ns as f64 * 1e-9, a.end_ns as f64 * 1e-9);
            let names = |(t, family, host): &(f64, String, IpAddr)| {
                *t >= on - 1e-3
                    && *t <= end
                    && if family == "flood_target" {
                        a.targets.iter().any(|&n| n.1 == 32 && within(*host, n))
                    } else {
                        a.attackers.iter().any(|&x| IpAddr::V4(x) == *host)
                    }
            };
            let first = starts.0.iter().filter(|s| names(s)).map(|s| s.0).fold(f64::INFINITY, f64::min);
            let (n, hit) = flagged.get(a.label.as_str()).copied().unwrap_or_default();
            json!({
                "attack": a.label,
                "seconds_to_first_alert": if first.is_finite() { json!(first - on) } else { Value::Null },
                "packets_flagged_share": hit as f64 / n.max(1) as f64,
            })
        })
        .collect();
    let false_episodes = starts
        .0
        .iter()
        .filter(|(t, _, h)| !involved(*t, *h))
        .count();
    json!({
        "case": "day-attacks",
        "onset_minutes": onset_minutes,
        "records": s.records,
        "thresholds": s.sides.iter().map(|x| x.threshold).collect::<Vec<_>>(),
        "episodes": s.episodes,
        "false_episodes": false_episodes,
        "benign_records_flagged": flagged.get("normal").map_or(0, |x| x.1),
        "attacks": per_attack,
    })
}

fn shared() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping the shared cases: ../shared/data not found");
        None
    }
}

fn shared_splices(data: &Path) -> Vec<Value> {
    use floodwatch::ingest::packets::splice::{splice_files, SpliceConfig};
    let dir = tempfile::tempdir().expect("temp dir");
    let base = data.join("pcap/mirai_first2000.pcap");
    let mut out = Vec::new();
    for flood in [
        "pkt.TCP.synflood.spoofed.pcap",
        "pkt.TCP.DOMINATE.syn.ecn.cwr.pcapng",
        "amp.TCP.reflection.SYNACK.pcap",
        "CIC-DDoS-2019-SynFlood.pcap",
    ] {
        let (pcap, labels) = (dir.path().join("s.pcap"), dir.path().join("s.csv"));
        let cfg = SpliceConfig {
            at_s: 72.0,
            ..SpliceConfig::default()
        };
        splice_files(&base, &data.join("pcap").join(flood), &pcap, &labels, &cfg).expect("splice");
        let scores = Shared::default();
        let file = std::fs::File::open(&pcap).expect("open");
        let (s, starts) = watch(file, Grace::Seconds(50.0), Some(scores.clone()));
        let truth: Vec<bool> = std::fs::read_to_string(&labels)
            .expect("labels")
            .lines()
            .skip(1)
            .map(|l| !l.ends_with(",normal"))
            .collect();
        let text = String::from_utf8(scores.0.lock().expect("scores").clone()).expect("utf-8");
        let (mut onset, mut n, mut hit, mut benign_hit) = (f64::INFINITY, 0u64, 0u64, 0u64);
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let i: usize = f[0].parse().unwrap_or(0);
            let attack = truth.get(i.wrapping_sub(1)).copied().unwrap_or(false);
            let flag = f.get(3) == Some(&"1") || f.get(5) == Some(&"1");
            if attack {
                onset = onset.min(f[1].parse().unwrap_or(f64::INFINITY));
                n += 1;
                hit += u64::from(flag);
            } else {
                benign_hit += u64::from(flag);
            }
        }
        let before = starts.0.iter().filter(|s| s.0 < onset - 1e-3).count();
        let first = starts
            .0
            .iter()
            .map(|s| s.0)
            .filter(|&t| t >= onset - 1e-3)
            .fold(f64::INFINITY, f64::min);
        out.push(json!({
            "case": "shared-splice",
            "flood": flood,
            "records": s.records,
            "episodes_before_onset": before,
            "seconds_to_first_alert": if first.is_finite() { json!(first - onset) } else { Value::Null },
            "attack_packets_flagged_share": hit as f64 / n.max(1) as f64,
            "benign_records_flagged": benign_hit,
        }));
    }
    out
}

fn shared_benign(data: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for (name, grace) in [
        ("iot-smartplug-68min.pcap", 600.0),
        ("ics-wincc-s7-135min.pcap", 2700.0),
    ] {
        let file = std::fs::File::open(data.join("benign").join(name)).expect("open");
        let result = try_watch(file, Grace::Seconds(grace), None);
        out.push(match result {
            Ok((s, starts)) => json!({
                "case": "shared-benign",
                "capture": name,
                "grace_seconds": grace,
                "records": s.records,
                "false_episodes": starts.0.len(),
                "benign_records_flagged": s.anomalies,
            }),
            Err(e) => json!({"case": "shared-benign", "capture": name, "grace_seconds": grace, "refused": e.to_string()}),
        });
    }
    out
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let hours = std::env::var("FLOODWATCH_BENCH_HOURS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6.0);
    println!("{}", day_benign(hours));
    println!("{}", day_attacks(15));
    println!("{}", day_attacks(180));
    if let Some(data) = shared() {
        for v in shared_splices(&data)
            .into_iter()
            .chain(shared_benign(&data))
        {
            println!("{v}");
        }
    }
}
