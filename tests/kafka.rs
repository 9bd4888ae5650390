//! floodwatch against a real Kafka broker (cargo feature `kafka`): the
//! broker's address comes from `FLOODWATCH_KAFKA_BROKERS`
//! (`scripts/kafka-test.sh` starts a tansu broker and sets it). Every test
//! uses its own topics and groups.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use floodwatch::ingest::kafka::{create_topic, Publisher};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

mod util;

const FW: &str = env!("CARGO_BIN_EXE_floodwatch");

fn brokers() -> Option<String> {
    match std::env::var("FLOODWATCH_KAFKA_BROKERS") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            eprintln!("skipping: FLOODWATCH_KAFKA_BROKERS not set");
            None
        }
    }
}

/// A name no other test or run uses.
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("fw-{what}-{}-{nanos}", std::process::id())
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(FW).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "floodwatch {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Publishes the capture `pcap` to `topic` with `floodwatch produce`.
fn produce(b: &str, topic: &str, pcap: &Path) {
    let p = pcap.to_str().unwrap();
    run(&[
        "produce",
        "--pcap",
        p,
        "--kafka-brokers",
        b,
        "--kafka-topic",
        topic,
    ]);
}

/// A synthetic capture with a SYN flood and a victim-layout model learned
/// on its benign start.
fn capture(dir: &Path, packets: u64) -> (PathBuf, PathBuf) {
    let pcap = dir.join("s.pcap");
    let model = dir.join("m.json");
    let n = packets.to_string();
    let (p, l) = (pcap.to_str().unwrap(), dir.join("l.csv"));
    run(&[
        "synth",
        "--pcap",
        p,
        "--labels",
        l.to_str().unwrap(),
        "--packets",
        &n,
        "--attack",
        "syn",
    ]);
    let grace = (packets / 4).to_string();
    let m = model.to_str().unwrap();
    run(&[
        "watch",
        "--pcap",
        p,
        "--grace",
        &grace,
        "--save-model",
        m,
        "--alerts",
        "/dev/null",
    ]);
    (pcap, model)
}

/// A `watch` member of `group` reading `topic`, stderr piped.
fn watch(b: &str, topic: &str, group: &str, model: &Path, scores: &Path, extra: &[&str]) -> Child {
    Command::new(FW)
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
        .args(["--kafka-warmup", "0", "--metrics", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads a child's standard error in the background: the metrics address
/// (first line) comes through `addr`, everything is kept for the end.
fn stderr_of(child: &mut Child) -> (mpsc::Receiver<String>, std::thread::JoinHandle<String>) {
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if let Some(a) = line.strip_prefix("metrics on http://") {
                let _ = tx.send(a.trim_end_matches("/metrics").to_owned());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    (rx, t)
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

/// Polls until `ok` holds; fails after `limit`.
fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_exit(child: &mut Child, limit: Duration) {
    wait_until("an instance to exit", limit, || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    let status = child.wait().unwrap();
    assert!(status.success(), "instance failed: {status}");
}

/// Record ids in a scores file; a torn last line (killed writer) is skipped.
fn ids(path: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // Whole lines only (a killed instance may leave half of one).
    let columns = text.lines().next().map_or(0, |h| h.split(',').count());
    text.lines()
        .skip(1)
        .filter(|l| l.split(',').count() == columns)
        .filter_map(|l| l.split(',').next()?.parse().ok())
        .collect()
}

/// Distinct ids and duplicates over several scores files.
fn tally(files: &[&Path]) -> (usize, usize) {
    let mut seen: HashMap<u64, u32> = HashMap::new();
    for f in files {
        for id in ids(f) {
            *seen.entry(id).or_default() += 1;
        }
    }
    let dups = seen.values().map(|&n| n as usize - 1).sum();
    (seen.len(), dups)
}

fn summary_count(stderr: &str, what: &str) -> u64 {
    stderr
        .lines()
        .filter(|l| l.starts_with("watch "))
        .filter_map(|l| {
            let i = l.find(what)?;
            l[..i]
                .trim_end()
                .rsplit([' ', '('])
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Every record of `topic`, read by partition without a group.
fn read_all(b: &str, topic: &str, partitions: i32) -> Vec<Vec<u8>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(5) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            out.push(m.payload().unwrap_or_default().to_vec());
            last = Instant::now();
        }
    }
    out
}

#[test]
fn two_instances_share_the_partitions_and_alerts_reach_the_alert_topic() {
    let Some(b) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (pcap, model) = capture(dir.path(), 20_000);
    let (topic, alerts, group) = (unique("in"), unique("alerts"), unique("group"));
    assert!(create_topic(&b, &topic, 4, &[]).unwrap());
    assert!(!create_topic(&b, &topic, 4, &[]).unwrap(), "exists already");
    let alert_flag = format!("kafka://{alerts}");
    let extra = ["--kafka-idle-exit", "6", "--alerts", alert_flag.as_str()];
    let scores = [dir.path().join("a.csv"), dir.path().join("b.csv")];
    let mut kids: Vec<Child> = scores
        .iter()
        .map(|s| watch(&b, &topic, &group, &model, s, &extra))
        .collect();
    let streams: Vec<_> = kids.iter_mut().map(stderr_of).collect();
    let addrs: Vec<String> = streams
        .iter()
        .map(|(rx, _)| rx.recv_timeout(Duration::from_secs(30)).unwrap())
        .collect();
    // The group forms in a few seconds: produce once both hold partitions.
    wait_until(
        "the group to share the partitions",
        Duration::from_secs(60),
        || {
            let held: Vec<f64> = addrs
                .iter()
                .map(|a| metric(a, "floodwatch_kafka_partitions").unwrap_or(0.0))
                .collect();
            held.iter().all(|&n| n >= 1.0) && held.iter().sum::<f64>() == 4.0
        },
    );
    produce(&b, &topic, &pcap);
    for k in &mut kids {
        wait_exit(k, Duration::from_secs(120));
    }
    let errs: Vec<String> = streams
        .into_iter()
        .map(|(_, t)| t.join().unwrap())
        .collect();
    let (a, bb) = (ids(&scores[0]), ids(&scores[1]));
    assert!(!a.is_empty() && !bb.is_empty(), "both scored: {errs:?}");
    let (distinct, dups) = tally(&[&scores[0], &scores[1]]);
    assert_eq!(
        (distinct, dups),
        (20_000, 0),
        "every record scored exactly once"
    );
    // Keyed by destination: the partitions of the two instances are disjoint.
    let parts = |v: &[u64]| -> std::collections::BTreeSet<u64> {
        v.iter().map(|id| id / 1_000_000_000_000).collect()
    };
    assert!(
        parts(&a).is_disjoint(&parts(&bb)),
        "{:?} {:?}",
        parts(&a),
        parts(&bb)
    );
    let written = summary_count(&errs.concat(), "alert events");
    assert!(written > 0, "the SYN flood raised alerts: {errs:?}");
    let got = read_all(&b, &alerts, 4);
    assert_eq!(got.len() as u64, written, "every alert reached the topic");
    let first: serde_json::Value = serde_json::from_slice(&got[0]).unwrap();
    assert!(first["dest_ip"].is_string(), "{first}");
    if let Some(schema) = util::eve_schema() {
        let lines: Vec<String> = got
            .iter()
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .collect();
        util::assert_eve_valid(&schema, "alerts on Kafka", &lines.join("\n"));
    }
}

#[test]
fn a_killed_instance_restarts_from_committed_offsets_and_nothing_is_lost() {
    let Some(b) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let n = 300_000u64;
    let (pcap, model) = capture(dir.path(), n);
    let (topic, group) = (unique("kill"), unique("group"));
    produce(&b, &topic, &pcap);
    let files: Vec<PathBuf> = ["a.csv", "a2.csv", "b.csv"]
        .iter()
        .map(|f| dir.path().join(f))
        .collect();
    let fast = ["--kafka-commit-ms", "200", "--kafka-idle-exit", "6"];
    let mut a = watch(&b, &topic, &group, &model, &files[0], &fast);
    let (rx, a_err) = stderr_of(&mut a);
    let addr = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    // Kill it mid-stream, once it has committed some of its work.
    wait_until(
        "the first instance to commit",
        Duration::from_secs(90),
        || {
            metric(&addr, "floodwatch_kafka_commits_total").unwrap_or(0.0) >= 2.0
                && metric(&addr, "floodwatch_records_total").unwrap_or(0.0) >= n as f64 * 0.2
        },
    );
    a.kill().unwrap();
    a.wait().unwrap();
    drop(a_err.join());
    let before = ids(&files[0]).len();
    assert!(
        (before as u64) < n,
        "killed mid-stream ({before} of {n} scored)"
    );
    let mut kids = vec![
        watch(&b, &topic, &group, &model, &files[1], &fast),
        watch(&b, &topic, &group, &model, &files[2], &fast),
    ];
    let streams: Vec<_> = kids.iter_mut().map(stderr_of).collect();
    for k in &mut kids {
        wait_exit(k, Duration::from_secs(180));
    }
    let errs: Vec<String> = streams
        .into_iter()
        .map(|(_, t)| t.join().unwrap())
        .collect();
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let (distinct, dups) = tally(&refs);
    eprintln!("killed after {before} records; {distinct} distinct records, {dups} duplicates");
    assert_eq!(distinct as u64, n, "no record lost: {errs:?}");
    assert!(
        dups < before,
        "the restart resumed from committed offsets, not from the start"
    );
}

#[test]
fn malformed_records_are_rejected_by_offset_and_fresh_partitions_warm_up() {
    let Some(b) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (pcap, model) = capture(dir.path(), 3_000);
    let (topic, group) = (unique("bad"), unique("group"));
    assert!(create_topic(&b, &topic, 1, &[]).unwrap());
    produce(&b, &topic, &pcap);
    let publisher = Publisher::new(&b, &topic, &[]).unwrap();
    for bad in [
        &b"FWP1"[..],
        b"",
        b"\x00garbage that is not a packet record",
    ] {
        publisher.send(Some(b"10.0.0.9"), bad).unwrap();
    }
    publisher.flush().unwrap();
    let scores = dir.path().join("s.csv");
    let out = Command::new(FW)
        .args([
            "watch",
            "--kafka-brokers",
            &b,
            "--kafka-topic",
            &topic,
            "--kafka-group",
            &group,
        ])
        .args([
            "--model",
            model.to_str().unwrap(),
            "--scores",
            scores.to_str().unwrap(),
        ])
        .args([
            "--kafka-warmup",
            "500",
            "--kafka-idle-exit",
            "5",
            "--alerts",
            "/dev/null",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "rejected: kafka: topic {topic} partition 0 offset 3000:"
        )),
        "{err}"
    );
    assert!(err.contains(", 3 rejected,"), "{err}");
    assert!(err.contains("2500 records (0 in grace)"), "{err}");
    assert!(err.contains("500 records warming"), "{err}");
    assert_eq!(ids(&scores).len(), 2_500);
}

#[test]
fn a_member_resumes_at_a_commit_inside_a_record_batch() {
    let Some(b) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let n = 3_000u64;
    let (pcap, model) = capture(dir.path(), n);
    let (topic, group) = (unique("resume"), unique("group"));
    assert!(create_topic(&b, &topic, 1, &[]).unwrap());
    produce(&b, &topic, &pcap);
    // Offset 1 lies inside the producer's first batch: a broker that answers
    // a fetch from there with the next batch only must not cost records.
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut at = TopicPartitionList::new();
    at.add_partition_offset(&topic, 0, Offset::Offset(1))
        .unwrap();
    c.commit(&at, CommitMode::Sync).unwrap();
    drop(c);
    let scores = dir.path().join("s.csv");
    let mut w = watch(
        &b,
        &topic,
        &group,
        &model,
        &scores,
        &["--kafka-idle-exit", "5"],
    );
    let (_, err) = stderr_of(&mut w);
    wait_exit(&mut w, Duration::from_secs(120));
    let err = err.join().unwrap();
    let got = ids(&scores);
    let missing: Vec<u64> = (1..n).filter(|i| !got.contains(i)).take(5).collect();
    assert!(missing.is_empty(), "missing from {missing:?}: {err}");
    assert_eq!(
        got.len() as u64,
        n - 1,
        "each record after the commit once: {err}"
    );
}

/// A member whose engine fails mid-stream (its scores output full) ends at
/// once with the cause, once: its consumer threads do not hold it until the
/// idle timeout.
#[test]
fn a_member_whose_output_fails_ends_with_the_cause() {
    let Some(b) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (pcap, model) = capture(dir.path(), 20_000);
    let (topic, group) = (unique("full"), unique("group"));
    assert!(create_topic(&b, &topic, 2, &[]).unwrap());
    produce(&b, &topic, &pcap);
    let t0 = Instant::now();
    let out = Command::new(FW)
        .args([
            "-q",
            "watch",
            "--kafka-brokers",
            &b,
            "--kafka-topic",
            &topic,
        ])
        .args(["--kafka-group", &group, "--model", model.to_str().unwrap()])
        .args(["--scores", "/dev/full", "--alerts", "/dev/null"])
        .args(["--kafka-warmup", "0", "--kafka-idle-exit", "60"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("No space left on device").count(), 1, "{err}");
    assert!(err.contains("/dev/full"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(40), "{:?}", t0.elapsed());
}
