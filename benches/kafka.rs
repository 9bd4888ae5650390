//! floodwatch as a Kafka consumer group, against the broker's own round trip.
//!
//! `FLOODWATCH_KAFKA_BROKERS=127.0.0.1:9092 cargo bench --features kafka --bench kafka`
//! (`FLOODWATCH_KAFKA_BENCH_RECORDS` sets the size, default 1,000,000).
//! Prints one JSON object:
//!
//! - `raw`: two plain consumers in one group on a 4-partition topic, joined
//!   before the records are produced; time from the first record sent to
//!   the last one received: the broker's produce-consume round trip.
//! - `floodwatch`: the same with two `watch` engines (layout `victim`, a
//!   saved model, alerts to a topic, at-least-once commits) in one group;
//!   every record id is counted: scored once, twice, or missing.
//! - `ratio`: floodwatch's throughput over the raw round trip's.
//! - `kill`: two `floodwatch watch` processes; once they scored a fifth of
//!   the records, the busier one is killed (SIGKILL) and restarted; the
//!   scores files say how many records were lost (none expected) and how
//!   many were scored twice.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use floodwatch::detect::episode::TrackerParams;
use floodwatch::detect::kafka_sink::KafkaAlerts;
use floodwatch::detect::kafka_source::{GroupParams, GroupSource, Payload};
use floodwatch::detect::metrics::Metrics;
use floodwatch::detect::stream::{
    Calibrate, Engine, EngineParams, Next, RecordSource, SavedModel, TableUsage,
};
use floodwatch::features::combined::PacketLayout;
use floodwatch::features::stream_table::TableConfig;
use floodwatch::ingest::kafka::publish::publish_capture;
use floodwatch::ingest::kafka::record::split_record_id;
use floodwatch::ingest::kafka::{create_topic, KeyBy, Publisher};
use floodwatch::ingest::packets::capture::CaptureReader;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};
use serde_json::json;

const FW: &str = env!("CARGO_BIN_EXE_floodwatch");
const PARTITIONS: i32 = 4;
const MEMBERS: usize = 2;

/// Which records were seen, how often.
struct Seen {
    counts: Vec<Vec<AtomicU8>>,
    distinct: AtomicU64,
    dups: AtomicU64,
    done_at: Mutex<Option<Instant>>,
    n: u64,
    stop: Arc<AtomicBool>,
}

impl Seen {
    fn new(n: u64) -> Arc<Self> {
        let part = || (0..n).map(|_| AtomicU8::new(0)).collect();
        Arc::new(Seen {
            counts: (0..PARTITIONS).map(|_| part()).collect(),
            distinct: AtomicU64::new(0),
            dups: AtomicU64::new(0),
            done_at: Mutex::new(None),
            n,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    fn mark(&self, partition: i32, offset: i64) {
        let slot = usize::try_from(partition)
            .ok()
            .and_then(|p| self.counts.get(p))
            .and_then(|c| c.get(usize::try_from(offset).ok()?));
        let Some(slot) = slot else { return };
        if slot.fetch_add(1, Relaxed) > 0 {
            self.dups.fetch_add(1, Relaxed);
        } else if self.distinct.fetch_add(1, Relaxed) + 1 == self.n {
            *self.done_at.lock().unwrap() = Some(Instant::now());
            self.stop.store(true, Relaxed);
        }
    }
}

/// A source that marks every record it hands out.
struct Marking<'a> {
    inner: &'a mut GroupSource,
    seen: Arc<Seen>,
}

impl RecordSource for Marking<'_> {
    fn names(&self) -> &[String] {
        self.inner.names()
    }

    fn next(&mut self, out: &mut [f64]) -> Next {
        let next = self.inner.next(out);
        if let Next::Record(info) = &next {
            let (p, o) = split_record_id(info.index);
            self.seen.mark(p, o);
        }
        next
    }

    fn usage(&self) -> TableUsage {
        self.inner.usage()
    }
}

fn unique(what: &str) -> String {
    format!("fw-bench-{what}-{}", std::process::id())
}

fn run_fw(args: &[&str]) {
    let out = Command::new(FW).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Partitions each member of a group holds now.
type Held = Arc<Mutex<Vec<u64>>>;

/// A plain consumer: polls and marks until everything was seen.
fn raw_member(b: String, topic: String, group: String, seen: Arc<Seen>, held: Held, me: usize) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    c.subscribe(&[&topic]).unwrap();
    while !seen.stop.load(Relaxed) {
        match c.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => seen.mark(m.partition(), m.offset()),
            _ => {
                let n = c.assignment().map_or(0, |a| a.count() as u64);
                held.lock().unwrap()[me] = n;
            }
        }
    }
}

/// A floodwatch engine in the group: victim layout, saved model, alerts to
/// a topic flushed before every commit.
fn fw_member(
    b: String,
    topic: String,
    group: String,
    model: PathBuf,
    alerts: String,
    seen: Arc<Seen>,
    metrics: Arc<Metrics>,
) {
    let layout = || -> floodwatch::Result<_> {
        let config = TableConfig {
            capacity: 100_000,
            ..TableConfig::default()
        };
        "victim".parse::<PacketLayout>()?.extractor(config)
    };
    let params = GroupParams {
        brokers: b.clone(),
        topic,
        group,
        options: Vec::new(),
        warmup: 0,
        commit_every: Duration::from_secs(1),
        idle_exit: None,
    };
    let mut source = GroupSource::new(
        params,
        Payload::Packets(Box::new(layout)),
        Arc::clone(&metrics),
    )
    .unwrap();
    let sink = KafkaAlerts::new(&b, &alerts, &[]).unwrap();
    source.before_commit(Box::new(sink.flusher()));
    let closer = source.closer();
    let sides = SavedModel::load(&model).unwrap().into_sides();
    let params = EngineParams {
        tracker: TrackerParams::new(),
        top_features: 5,
        save_model: None,
        grace: None,
        calibrate: Calibrate::Budget(1.0),
        drift: Some(600.0),
        layout: None,
    };
    let mut engine = Engine::new(params, sides, metrics, Arc::clone(&seen.stop)).unwrap();
    let mut marking = Marking {
        inner: &mut source,
        seen,
    };
    let mut sinks = vec![sink];
    engine.run(&mut marking, &mut sinks).unwrap();
    closer.close().unwrap();
}

/// Starts the members (`members(topic, seen)` gives their threads and a
/// view of the partitions each holds), waits until they share all
/// partitions, produces the capture, and times until every record was seen.
fn round_trip<M, H>(b: &str, pcap: &Path, n: u64, members: M) -> serde_json::Value
where
    M: FnOnce(&str, Arc<Seen>) -> (Vec<std::thread::JoinHandle<()>>, H),
    H: Fn() -> Vec<u64>,
{
    let topic = unique(&format!("rt{}", rand_suffix()));
    create_topic(b, &topic, PARTITIONS, &[]).unwrap();
    let seen = Seen::new(n);
    let (threads, held) = members(&topic, Arc::clone(&seen));
    let joined = Instant::now();
    loop {
        let h = held();
        if h.iter().all(|&p| p > 0) && h.iter().sum::<u64>() == PARTITIONS as u64 {
            break;
        }
        assert!(
            joined.elapsed() < Duration::from_secs(120),
            "group never formed: {h:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let formed = joined.elapsed();
    let publisher = Publisher::new(b, &topic, &[]).unwrap();
    let start = Instant::now();
    publish_capture(
        CaptureReader::open(pcap).unwrap(),
        KeyBy::Dst,
        &publisher,
        &mut |_| {},
    )
    .unwrap();
    let produced = start.elapsed();
    for t in threads {
        t.join().unwrap();
    }
    let end = seen.done_at.lock().unwrap().unwrap_or_else(Instant::now);
    let secs = (end - start).as_secs_f64();
    json!({
        "topic": topic,
        "group_formed_s": formed.as_secs_f64(),
        "produce_s": produced.as_secs_f64(),
        "produce_per_s": n as f64 / produced.as_secs_f64(),
        "round_trip_s": secs,
        "per_s": n as f64 / secs,
        "distinct": seen.distinct.load(Relaxed),
        "duplicates": seen.dups.load(Relaxed),
    })
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() % 1_000_000)
}

/// One metric of a running instance.
fn metric(addr: &str, name: &str) -> Option<f64> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn spawn_watch(b: &str, topic: &str, group: &str, model: &Path, scores: &Path) -> (Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(FW)
        .args([
            "watch",
            "--kafka-brokers",
            b,
            "--kafka-topic",
            topic,
            "--kafka-group",
            group,
        ])
        .args([
            "--model",
            model.to_str().unwrap(),
            "--scores",
            scores.to_str().unwrap(),
        ])
        .args([
            "--kafka-warmup",
            "0",
            "--kafka-idle-exit",
            "8",
            "--alerts",
            "/dev/null",
            "--metrics",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            if let Some(a) = line.strip_prefix("metrics on http://") {
                let _ = tx.send(a.trim_end_matches("/metrics").to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    (child, addr)
}

/// Record ids of scores files: distinct, duplicates (torn last lines skipped).
fn tally(files: &[PathBuf]) -> (u64, u64, u64) {
    let mut seen = std::collections::HashMap::<u64, u32>::new();
    let mut lines = 0;
    for f in files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for id in text
            .lines()
            .skip(1)
            .filter(|l| l.split(',').count() == 4)
            .filter_map(|l| l.split(',').next()?.parse().ok())
        {
            *seen.entry(id).or_default() += 1;
            lines += 1;
        }
    }
    let distinct = seen.len() as u64;
    (distinct, lines - distinct, lines)
}

/// Kills one of two instances mid-stream, restarts it, counts the records.
fn kill_one(b: &str, topic: &str, model: &Path, dir: &Path, n: u64) -> serde_json::Value {
    let group = unique("kill");
    let files: Vec<PathBuf> = ["a.csv", "b.csv", "a2.csv"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    let mut kids = vec![
        spawn_watch(b, topic, &group, model, &files[0]),
        spawn_watch(b, topic, &group, model, &files[1]),
    ];
    let start = Instant::now();
    // Keys are skewed (the flood's victim is one hot partition): kill the
    // instance that has scored more, once the pair scored a fifth.
    let victim = loop {
        let done: Vec<f64> = kids
            .iter()
            .map(|(_, addr)| metric(addr, "floodwatch_records_total").unwrap_or(0.0))
            .collect();
        if done.iter().sum::<f64>() >= n as f64 * 0.2 {
            break usize::from(done[1] > done[0]);
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the instances never got going"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut killed, _) = kids.swap_remove(victim);
    killed.kill().unwrap();
    killed.wait().unwrap();
    let killed_after = tally(&files[victim..=victim]).2;
    kids.push(spawn_watch(b, topic, &group, model, &files[2]));
    for (c, _) in &mut kids {
        assert!(c.wait().unwrap().success());
    }
    let (distinct, dups, _) = tally(&files);
    json!({
        "killed_after_scoring": killed_after,
        "distinct": distinct,
        "lost": n - distinct.min(n),
        "duplicates": dups,
        "elapsed_s": start.elapsed().as_secs_f64(),
    })
}

fn main() {
    let Some(b) = std::env::var("FLOODWATCH_KAFKA_BROKERS")
        .ok()
        .filter(|b| !b.is_empty())
    else {
        eprintln!("skipping: FLOODWATCH_KAFKA_BROKERS not set");
        return;
    };
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: u64 = std::env::var("FLOODWATCH_KAFKA_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let (pcap, model) = (dir.path().join("s.pcap"), dir.path().join("m.json"));
    let (p, m) = (pcap.to_str().unwrap(), model.to_str().unwrap());
    let labels = dir.path().join("l.csv");
    run_fw(&[
        "synth",
        "--pcap",
        p,
        "--labels",
        labels.to_str().unwrap(),
        "--packets",
        &n.to_string(),
        "--attack",
        "syn",
        "--attack",
        "udp",
    ]);
    run_fw(&[
        "watch",
        "--pcap",
        p,
        "--grace",
        "20000",
        "--save-model",
        m,
        "--alerts",
        "/dev/null",
    ]);

    let raw = round_trip(&b, &pcap, n, |topic, seen| {
        let group = unique(&format!("raw{}", rand_suffix()));
        let held: Held = Arc::new(Mutex::new(vec![0; MEMBERS]));
        let threads = (0..MEMBERS)
            .map(|me| {
                let (b, t, g, s, h) = (
                    b.clone(),
                    topic.to_owned(),
                    group.clone(),
                    Arc::clone(&seen),
                    Arc::clone(&held),
                );
                std::thread::spawn(move || raw_member(b, t, g, s, h, me))
            })
            .collect();
        (threads, move || held.lock().unwrap().clone())
    });
    let alerts = unique("alerts");
    create_topic(&b, &alerts, 4, &[]).unwrap();
    let instances: Vec<Arc<Metrics>> = (0..MEMBERS).map(|_| Arc::new(Metrics::default())).collect();
    let fw = round_trip(&b, &pcap, n, |topic, seen| {
        let group = unique(&format!("fw{}", rand_suffix()));
        let threads = instances
            .iter()
            .map(|metrics| {
                let (b, t, g, s) = (
                    b.clone(),
                    topic.to_owned(),
                    group.clone(),
                    Arc::clone(&seen),
                );
                let (model, alerts, m) = (model.clone(), alerts.clone(), Arc::clone(metrics));
                std::thread::spawn(move || fw_member(b, t, g, model, alerts, s, m))
            })
            .collect();
        let views: Vec<Arc<Metrics>> = instances.to_vec();
        (threads, move || {
            views
                .iter()
                .map(|m| m.group.partitions.load(Relaxed))
                .collect()
        })
    });
    let per_instance: Vec<u64> = instances.iter().map(|m| m.records.load(Relaxed)).collect();
    let ratio = fw["per_s"].as_f64().unwrap_or(0.0) / raw["per_s"].as_f64().unwrap_or(1.0);
    let topic = fw["topic"].as_str().unwrap_or_default().to_owned();
    let kill = kill_one(&b, &topic, &model, dir.path(), n);
    println!(
        "{}",
        json!({
            "records": n,
            "partitions": PARTITIONS,
            "members": MEMBERS,
            "raw": raw,
            "floodwatch": fw,
            "floodwatch_scored_per_instance": per_instance,
            "ratio": ratio,
            "kill": kill,
        })
    );
}
