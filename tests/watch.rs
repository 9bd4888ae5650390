//! `floodwatch watch` end to end: each source, alerts and the hook, metrics
//! over HTTP, graceful shutdown, saved models, and the headline detection
//! figure on the shared captures.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use floodwatch::report::metrics::roc_auc;
use serde_json::Value;

mod util;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_floodwatch"))
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run floodwatch");
    assert!(
        out.status.success(),
        "floodwatch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A synthetic capture: benign IoT traffic, then a spoofed SYN flood mixed
/// in, then benign again (6,000 packets at 100/s: the grace period must
/// span tens of seconds for the slow damped windows to settle).
fn synth(dir: &Path) -> (PathBuf, PathBuf) {
    let (pcap, labels) = (dir.join("s.pcap"), dir.join("s.csv"));
    run_ok(
        bin()
            .args([
                "-q",
                "synth",
                "--packets",
                "6000",
                "--rate",
                "100",
                "--attack",
                "syn-spoofed",
            ])
            .arg("--pcap")
            .arg(&pcap)
            .arg("--labels")
            .arg(&labels),
    );
    (pcap, labels)
}

/// `packet_index -> is attack` from a label file.
fn labels(path: &Path) -> Vec<bool> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(1)
        .map(|l| !l.ends_with(",normal"))
        .collect()
}

/// Rows of a scores file: (index, timestamp, score if scored, flag).
fn scores(path: &Path) -> Vec<(usize, f64, Option<f64>, bool)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("index,timestamp,score,is_anomaly"),
        "{header}"
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().ok(),
                f[3] == "1",
            )
        })
        .collect()
}

fn alerts(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn action(a: &Value) -> &str {
    a["alert"]["context"]["state"].as_str().unwrap()
}

/// Capture time of the first attack packet.
fn attack_start(rows: &[(usize, f64, Option<f64>, bool)], truth: &[bool]) -> f64 {
    rows.iter().find(|r| truth[r.0 - 1]).unwrap().1
}

/// Seconds since the epoch of an EVE timestamp (`...T hh:mm:ss.ffffff+0000`),
/// within the day: enough to compare alerts of one capture.
fn secs_of_day(ts: &str) -> f64 {
    let time = &ts[11..ts.len() - 5];
    let p: Vec<f64> = time.split(':').map(|v| v.parse().unwrap()).collect();
    p[0] * 3600.0 + p[1] * 60.0 + p[2]
}

#[test]
fn pcap_source_scores_every_packet_and_alerts_once_per_target() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, label_file) = synth(dir.path());
    let (scores_file, alert_file, hook_file) = (
        dir.path().join("scores.csv"),
        dir.path().join("alerts.jsonl"),
        dir.path().join("hook.jsonl"),
    );
    let out = run_ok(
        bin()
            .args(["watch", "--grace", "3000", "--pcap"])
            .arg(&pcap)
            .arg("--scores")
            .arg(&scores_file)
            .arg("--alerts")
            .arg(&alert_file)
            .arg("--on-alert")
            .arg(format!("cat >> {}", hook_file.display())),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("6000 records (3000 in grace)"), "{stderr}");
    let truth = labels(&label_file);
    let rows = scores(&scores_file);
    assert_eq!(rows.len(), 6000);
    assert!(rows[..3000].iter().all(|r| r.2.is_none()));
    let scored: Vec<_> = rows.iter().filter(|r| r.2.is_some()).collect();
    let s: Vec<f32> = scored.iter().map(|r| r.2.unwrap() as f32).collect();
    let y: Vec<bool> = scored.iter().map(|r| truth[r.0 - 1]).collect();
    let auc = roc_auc(&s, &y).unwrap();
    assert!(auc > 0.95, "ROC-AUC {auc}");

    // One episode for the victim, opened after the flood started, then ended.
    let all = alerts(&alert_file);
    let starts: Vec<&Value> = all.iter().filter(|a| action(a) == "start").collect();
    assert_eq!(starts.len(), 1, "{all:?}");
    let start = starts[0];
    let victim = start["dest_ip"].as_str().unwrap();
    let flood = attack_start(&rows, &truth);
    let opened = secs_of_day(
        start["alert"]["context"]["episode"]["start"]
            .as_str()
            .unwrap(),
    );
    let flood_of_day = flood.rem_euclid(86_400.0);
    assert!(opened >= flood_of_day - 1e-3 && opened - flood_of_day < 1.0);
    assert!(
        start["alert"]["context"]["score"].as_f64().unwrap()
            > start["alert"]["context"]["threshold"].as_f64().unwrap()
    );
    let top = start["alert"]["context"]["top_features"]
        .as_array()
        .unwrap();
    assert!(!top.is_empty() && top[0]["name"].as_str().unwrap().starts_with("dst_"));
    let end = all.iter().find(|a| action(a) == "end").unwrap();
    assert_eq!(end["dest_ip"].as_str().unwrap(), victim);
    assert!(
        end["alert"]["context"]["episode"]["packets"]
            .as_u64()
            .unwrap()
            > 100
    );

    // The hook got every alert, as JSON on its stdin.
    let hooked = alerts(&hook_file);
    assert_eq!(hooked.len(), all.len());
}

#[test]
fn packet_dumps_hold_the_first_packets_to_the_victim() {
    use floodwatch::ingest::packets::{capture::PacketSource, Network};
    let dir = tempfile::tempdir().unwrap();
    let (pcap, _) = synth(dir.path());
    let (alert_file, dumps) = (dir.path().join("alerts.jsonl"), dir.path().join("dumps"));
    let out = run_ok(
        bin()
            .args(["watch", "--grace", "3000", "--dump-count", "40", "--pcap"])
            .arg(&pcap)
            .arg("--alerts")
            .arg(&alert_file)
            .arg("--dump-packets")
            .arg(&dumps),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("packet dumps: 1 files, 40 packets, 0 cut short"),
        "{stderr}"
    );
    let all = alerts(&alert_file);
    let start = all.iter().find(|a| action(a) == "start").unwrap();
    let victim: std::net::IpAddr = start["dest_ip"].as_str().unwrap().parse().unwrap();
    let opened = secs_of_day(start["timestamp"].as_str().unwrap());
    let files: Vec<PathBuf> = std::fs::read_dir(&dumps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("{victim}_")) && name.ends_with(".pcap"),
        "{name}"
    );
    // Read back by floodwatch: 40 packets to the victim, from the start on.
    let packets: Vec<_> = PacketSource::open(&files[0]).unwrap().collect();
    assert_eq!(packets.len(), 40);
    for p in &packets {
        assert!(
            matches!(p.network, Network::Ip { dst, .. } if dst == victim),
            "{p:?}"
        );
        assert!(p.timestamp.rem_euclid(86_400.0) >= opened - 1e-3);
    }
    if util::installed("tshark") {
        let t = Command::new("tshark")
            .args(["-r"])
            .arg(&files[0])
            .args(["-T", "fields", "-e", "ip.dst"])
            .output()
            .unwrap();
        assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
        let text = String::from_utf8_lossy(&t.stdout);
        let dsts: Vec<&str> = text.lines().collect();
        assert_eq!(dsts.len(), 40, "{text}");
        assert!(dsts.iter().all(|d| *d == victim.to_string()), "{text}");
    }
    // Table rows have no packets to dump.
    let err = run_err(&[
        "watch".as_ref(),
        "--stdin".as_ref(),
        "--model".as_ref(),
        dir.path().join("none.fw").as_os_str(),
        "--dump-packets".as_ref(),
        dumps.as_os_str(),
    ]);
    assert!(
        err.contains("--dump-packets") && err.contains("--pcap"),
        "{err}"
    );
}

#[test]
fn a_saved_model_is_reused_without_grace() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, _) = synth(dir.path());
    let model = dir.path().join("model.json");
    for detector in ["ae", "kitnet"] {
        let out = run_ok(
            bin()
                .args(["watch", "--grace", "2000", "--detector", detector, "--pcap"])
                .arg(&pcap)
                .arg("--save-model")
                .arg(&model)
                .arg("--alerts")
                .arg(dir.path().join("a1.jsonl")),
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("model saved"));
        let out = run_ok(
            bin()
                .args(["watch", "--pcap"])
                .arg(&pcap)
                .arg("--model")
                .arg(&model)
                .arg("--alerts")
                .arg(dir.path().join("a2.jsonl")),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("6000 records (0 in grace)"), "{stderr}");
        let starts = alerts(&dir.path().join("a2.jsonl"))
            .iter()
            .filter(|a| action(a) == "start")
            .count();
        assert!(starts >= 1, "{detector}: {stderr}");
    }
    // A model whose layout had other features (an older floodwatch, which
    // saved plain JSON: still read) is refused with what to do.
    let bytes = std::fs::read(&model).unwrap();
    assert_eq!(&bytes[..8], b"FLDWATCH");
    let envelope: Value = serde_json::from_slice(&bytes[24..]).unwrap();
    let text = envelope["model"].to_string();
    let old = text.replacen("src_L5_unanswered_syns", "src_L5_syns", 1);
    assert_ne!(old, text);
    std::fs::write(&model, old).unwrap();
    let out = bin()
        .args(["watch", "--pcap"])
        .arg(&pcap)
        .arg("--model")
        .arg(&model)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("relearn it with --grace"), "{stderr}");
    // A model of another width is refused, naming the file.
    std::fs::write(&model, "{\"kind\":\"autoencoder\"}").unwrap();
    let out = bin()
        .args(["watch", "--pcap"])
        .arg(&pcap)
        .arg("--model")
        .arg(&model)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("model.json"));
}

/// Pipes `input` into `watch --stdin` with `model`; returns stderr.
/// `floodwatch` with `args`, expected to fail: its standard error.
fn run_err(args: &[&std::ffi::OsStr]) -> String {
    let out = bin().args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn one_model_file_serves_watch_test_and_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, truth) = synth(dir.path());
    let model = dir.path().join("m.fw");
    run_ok(
        bin()
            .args(["-q", "watch", "--grace", "2000", "--alerts", "/dev/null"])
            .arg("--pcap")
            .arg(&pcap)
            .arg("--save-model")
            .arg(&model),
    );
    let out = run_ok(bin().arg("inspect").arg(&model).arg("--json"));
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (info["kind"].as_str(), info["format"].as_u64()),
        (Some("stream"), Some(2))
    );
    assert_eq!(info["layout"], "victim");
    assert_eq!(info["detectors"].as_array().unwrap().len(), 2);
    assert_eq!(info["warm_state"], true);
    let text = String::from_utf8(run_ok(bin().arg("inspect").arg(&model)).stdout).unwrap();
    assert!(
        text.contains("a stream model") && text.contains("autoencoder 16-"),
        "{text}"
    );

    // `test` scores the capture as `watch` does, one verdict per packet.
    let (report, scores) = (dir.path().join("r.json"), dir.path().join("scored.csv"));
    let out = run_ok(
        bin()
            .args(["-q", "test", "--model"])
            .arg(&model)
            .arg("--pcap")
            .arg(&pcap)
            .arg("--labels")
            .arg(&truth)
            .arg("--report")
            .arg(&report)
            .arg("--out")
            .arg(&scores),
    );
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["rows"], 6000, "{}", String::from_utf8_lossy(&out.stdout));
    let auc = r["reconstruction"]["roc_auc"].as_f64().unwrap();
    assert!(auc > 0.95, "{r}");
    assert!(r["reconstruction"]["recall"].as_f64().unwrap() > 0.5, "{r}");
    // The same model without its warm tables (as plain JSON, the older
    // format, which is still read): `watch` then starts cold, as `test` does.
    let bytes = std::fs::read(&model).unwrap();
    let mut cold = serde_json::from_slice::<Value>(&bytes[24..]).unwrap()["model"].take();
    cold.as_object_mut().unwrap().remove("state");
    let cold_model = dir.path().join("cold.json");
    std::fs::write(&cold_model, cold.to_string()).unwrap();
    let watched = dir.path().join("w.csv");
    run_ok(
        bin()
            .args([
                "-q",
                "watch",
                "--alerts",
                "/dev/null",
                "--drift",
                "off",
                "--model",
            ])
            .arg(&cold_model)
            .arg("--pcap")
            .arg(&pcap)
            .arg("--scores")
            .arg(&watched),
    );
    // Cold tables and the saved thresholds in both: the same scores.
    let (a, b) = (
        std::fs::read_to_string(&scores).unwrap(),
        std::fs::read_to_string(&watched).unwrap(),
    );
    let differ = a.lines().zip(b.lines()).position(|(x, y)| x != y);
    let at = differ.unwrap_or(0);
    let pair = (a.lines().nth(at), b.lines().nth(at));
    assert_eq!((differ, a.lines().count()), (None, 6001), "{pair:?}");

    // Each command that needs the other kind says which kind the file is.
    let m = model.as_os_str();
    let e = run_err(&["test".as_ref(), "--model".as_ref(), m, "--data".as_ref(), m]);
    assert!(e.contains("a stream model") && e.contains("--pcap"), "{e}");
    let e = run_err(&["watch".as_ref(), "--stdin".as_ref(), "--model".as_ref(), m]);
    assert!(e.contains("table model from `train`"), "{e}");
    let table = dir.path().join("t.fw");
    let rows = dir.path().join("rows.csv");
    run_ok(
        bin()
            .args(["-q", "synth", "--rows", "600", "--out"])
            .arg(&rows),
    );
    run_ok(
        bin()
            .args(["-q", "train", "--epochs", "2", "--data"])
            .arg(&rows)
            .arg("--model")
            .arg(&table),
    );
    let info: Value =
        serde_json::from_slice(&run_ok(bin().arg("inspect").arg(&table).arg("--json")).stdout)
            .unwrap();
    assert_eq!(info["kind"], "table");
    assert_eq!(info["training"]["label_column"], "label");
    #[cfg(feature = "plot")]
    for (cmd, extra) in [("report", "--out"), ("threshold", "--columns")] {
        let e = run_err(&[
            cmd.as_ref(),
            "--model".as_ref(),
            m,
            "--data".as_ref(),
            rows.as_os_str(),
            extra.as_ref(),
            dir.path().join("x").as_os_str(),
        ]);
        assert!(
            e.contains("is a stream model") && e.contains("needs a table model"),
            "{cmd}: {e}"
        );
    }
}

fn watch_stdin(model: &Path, input: &str, alerts: &Path) -> String {
    let mut child = bin()
        .args(["watch", "--stdin", "--queue", "100000", "--model"])
        .arg(model)
        .arg("--alerts")
        .arg(alerts)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

#[test]
fn stdin_csv_and_json_lines_in_a_bundles_schema() {
    let dir = tempfile::tempdir().unwrap();
    let (table, model) = (dir.path().join("t.csv"), dir.path().join("t.fwm"));
    run_ok(
        bin()
            .args(["-q", "synth", "--rows", "3000", "--out"])
            .arg(&table),
    );
    run_ok(
        bin()
            .args(["-q", "train", "--epochs", "3", "--data"])
            .arg(&table)
            .arg("--model")
            .arg(&model),
    );
    let text = std::fs::read_to_string(&table).unwrap();
    let lines: Vec<&str> = text.lines().take(301).collect();
    let alerts_file = dir.path().join("a.jsonl");

    // CSV with its header, plus one malformed line.
    let mut csv = lines.join("\n");
    csv.push_str("\n1,2,3\n");
    let stderr = watch_stdin(&model, &csv, &alerts_file);
    assert!(stderr.contains("300 records (0 in grace)"), "{stderr}");
    assert!(stderr.contains("1 rejected"), "{stderr}");
    assert!(
        stderr.contains("fields"),
        "the rejection names the defect: {stderr}"
    );

    // The same rows as JSON objects.
    let header: Vec<&str> = lines[0].split(',').collect();
    let json: String = lines[1..]
        .iter()
        .map(|l| {
            let obj: serde_json::Map<String, Value> = header
                .iter()
                .zip(l.split(','))
                .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                .collect();
            format!("{}\n", Value::Object(obj))
        })
        .collect();
    let stderr = watch_stdin(&model, &format!("{json}{{\"uid\":1}}\n"), &alerts_file);
    assert!(stderr.contains("300 records (0 in grace)"), "{stderr}");
    assert!(
        stderr.contains("1 rejected") && stderr.contains("missing"),
        "{stderr}"
    );
    // A bundle trained on tables is refused for packets, with a reason.
    let out = bin()
        .args(["watch", "--pcap", "x.pcap", "--model"])
        .arg(&model)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--stdin"));
}

#[test]
fn alerts_name_the_family_from_the_bundles_latent_classifier() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test, model) = (
        dir.path().join("train.csv"),
        dir.path().join("test.csv"),
        dir.path().join("m.fwm"),
    );
    run_ok(
        bin()
            .args(["-q", "synth", "--rows", "6000", "--out"])
            .arg(&train),
    );
    let test_flags = ["-q", "synth", "--rows", "3000", "--seed", "7", "--out"];
    run_ok(bin().args(test_flags).arg(&test));
    run_ok(
        bin()
            .args(["-q", "train", "--epochs", "5", "--data"])
            .arg(&train)
            .arg("--model")
            .arg(&model),
    );
    let alerts_file = dir.path().join("a.jsonl");
    watch_stdin(
        &model,
        &std::fs::read_to_string(&test).unwrap(),
        &alerts_file,
    );
    let families = [
        "UDP.flood",
        "TCP.ACK.flood",
        "TCP.HTTP.flood",
        "TCP.SYN.flood",
        "GRE.IP",
        "UDP.plain",
    ];
    let text = std::fs::read_to_string(&alerts_file).unwrap();
    let categories: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|a| a["alert"]["category"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(!categories.is_empty(), "the floods raise alerts");
    assert!(
        categories.iter().all(|c| families.contains(&c.as_str())),
        "every alert names an attack family: {categories:?}"
    );
}

#[test]
fn bad_input_is_an_error_naming_it() {
    let out = bin()
        .args(["watch", "--grace", "100", "--pcap", "/no/such.pcap"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such.pcap"));
    let out = bin()
        .args(["watch", "--grace", "100", "--pcap", "x", "--vote", "3/5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap usage error");
    let out = bin().args(["watch", "--pcap", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "--model or --grace is required");
}

/// Spawns watch with stderr piped; returns the child and a reader of its
/// stderr lines.
fn spawn(cmd: &mut Command) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// Reads a counter from a Prometheus text page.
fn counter(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} not in {page}"))
}

#[test]
fn metrics_are_served_while_running_and_sigterm_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, _) = synth(dir.path());
    let alert_file = dir.path().join("alerts.jsonl");
    // Paced by the capture's timestamps, 6,000 packets take about 60 s.
    let (mut child, lines) = spawn(
        bin()
            .args([
                "watch",
                "--grace",
                "20s",
                "--realtime",
                "--metrics",
                "127.0.0.1:0",
            ])
            .arg("--pcap")
            .arg(&pcap)
            .arg("--alerts")
            .arg(&alert_file),
    );
    let first = lines.recv_timeout(Duration::from_secs(30)).unwrap();
    let addr = first
        .strip_prefix("metrics on http://")
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("unexpected first line {first}"))
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let records = loop {
        let page = http_get(&addr, "/metrics");
        assert!(page.contains("floodwatch_record_latency_seconds_bucket"));
        let n = counter(&page, "floodwatch_records_total");
        if n >= 600.0 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(records >= 600.0, "records {records}");
    sigterm(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = lines.iter().collect();
    let summary = rest.iter().find(|l| l.starts_with("watch ")).unwrap();
    assert!(summary.starts_with("watch stopped:"), "{summary}");
    assert!(summary.contains("dropped") && summary.contains("p99 latency"));
    // Open episodes were flushed: every start has its end.
    let all = alerts(&alert_file);
    let starts = all.iter().filter(|a| action(a) == "start").count();
    let ends = all.iter().filter(|a| action(a) == "end").count();
    assert_eq!(starts, ends, "{all:?}");
}

#[cfg(feature = "live")]
#[test]
fn live_capture_on_loopback_sees_our_packets() {
    let uid = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        eprintln!("skipping: live capture needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scores_file = dir.path().join("scores.csv");
    let (mut child, lines) = spawn(
        bin()
            .args([
                "watch",
                "--interface",
                "lo",
                "--grace",
                "600",
                "--threshold",
                "quantile:0.99",
                "--queue",
                "4096",
            ])
            .arg("--scores")
            .arg(&scores_file)
            .arg("--alerts")
            .arg(dir.path().join("alerts.jsonl")),
    );
    // Let the capture start, then send our own datagrams.
    std::thread::sleep(Duration::from_millis(1500));
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // Enough for grace (600: one host, so a per-record threshold) and more.
    for i in 0..1000u32 {
        sock.send_to(&i.to_be_bytes(), rx.local_addr().unwrap())
            .unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    std::thread::sleep(Duration::from_millis(1000));
    sigterm(&child);
    assert!(child.wait().unwrap().success());
    let rest: Vec<String> = lines.iter().collect();
    let summary = rest.iter().find(|l| l.starts_with("watch ")).unwrap();
    let records: u64 = summary
        .split(": ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(records >= 1000, "{summary}");
    assert!(scores(&scores_file).len() as u64 >= 1000);
}

/// The issue's figure: benign Mirai capture, then a SYN flood; learning
/// online from the benign part.
#[test]
fn splice_headline_figure() {
    let Some(base) = util::shared("data/pcap/mirai_first2000.pcap") else {
        return;
    };
    let shared = base.parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for flood in [
        "pkt.TCP.synflood.spoofed.pcap",
        "CIC-DDoS-2019-SynFlood.pcap",
    ] {
        let (pcap, label_file) = (dir.path().join("splice.pcap"), dir.path().join("l.csv"));
        run_ok(
            bin()
                .args(["-q", "splice", "--at", "72", "--base"])
                .arg(&base)
                .arg("--insert")
                .arg(shared.join(flood))
                .arg("--out")
                .arg(&pcap)
                .arg("--labels")
                .arg(&label_file),
        );
        let truth = labels(&label_file);
        for detector in ["ae", "kitnet"] {
            let (scores_file, alert_file) = (dir.path().join("s.csv"), dir.path().join("a.jsonl"));
            run_ok(
                bin()
                    .args(["-q", "watch", "--grace", "50s", "--detector", detector])
                    .arg("--pcap")
                    .arg(&pcap)
                    .arg("--scores")
                    .arg(&scores_file)
                    .arg("--alerts")
                    .arg(&alert_file),
            );
            let rows = scores(&scores_file);
            let scored: Vec<_> = rows.iter().filter(|r| r.2.is_some()).collect();
            let s: Vec<f32> = scored.iter().map(|r| r.2.unwrap() as f32).collect();
            let y: Vec<bool> = scored.iter().map(|r| truth[r.0 - 1]).collect();
            let auc = roc_auc(&s, &y).unwrap();
            eprintln!("{flood} {detector}: ROC-AUC {auc:.4}");
            assert!(auc >= 0.99, "{flood} {detector}: ROC-AUC {auc}");
            let flood_at = attack_start(&rows, &truth).rem_euclid(86_400.0);
            let starts: Vec<f64> = alerts(&alert_file)
                .iter()
                .filter(|a| action(a) == "start")
                .map(|a| secs_of_day(a["alert"]["context"]["episode"]["start"].as_str().unwrap()))
                .collect();
            assert!(!starts.is_empty(), "{flood} {detector}: no alert");
            // The last event's fingerprint says what the flood is: TCP SYN.
            let last = alerts(&alert_file).pop().unwrap();
            let fp = &last["alert"]["context"]["episode"]["fingerprint"];
            let share = |list: &str, name: &str| {
                let items = fp[list].as_array().unwrap();
                let item = items.iter().find(|s| s["name"] == name);
                item.map_or(0.0, |s| s["share"].as_f64().unwrap())
            };
            assert!(share("protocols", "tcp") >= 0.99, "{flood}: {fp}");
            assert!(share("tcp_flags", "syn") >= 0.99, "{flood}: {fp}");
            assert!(fp["records"].as_u64().unwrap() > 1000, "{flood}: {fp}");
            assert!(
                starts.iter().all(|&t| t >= flood_at - 1e-3),
                "{flood} {detector}: alert in the benign part {starts:?} (flood at {flood_at})"
            );
            let first = starts.iter().copied().fold(f64::INFINITY, f64::min);
            assert!(
                first - flood_at < 1.0,
                "{flood} {detector}: first alert {first}"
            );
        }
    }
}

/// Capture time of the first packet of a classic microsecond pcap file.
fn first_packet_time(pcap: &Path) -> f64 {
    let head = std::fs::read(pcap).unwrap();
    let word = |at: usize| f64::from(u32::from_le_bytes(head[at..at + 4].try_into().unwrap()));
    word(24) + word(28) * 1e-6
}

/// A capture of `scanners` hosts (192.168.1.200 and up) each SYN-probing
/// telnet on successive addresses at `rate` probes a second, for `secs`.
fn scan_capture(path: &Path, rate: f64, scanners: u8, secs: f64) {
    use floodwatch::ingest::packets::capture::LinkType;
    use floodwatch::ingest::packets::pcap::PcapWriter;
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = PcapWriter::new(file, LinkType::ETHERNET, 65_535, false).unwrap();
    let t0 = 1_540_446_400_000_000_000i64;
    let mut probes: Vec<(i64, Vec<u8>)> = Vec::new();
    for k in 0..scanners {
        for i in 0..(rate * secs) as u32 {
            let t = t0 + (f64::from(i) / rate * 1e9) as i64 + i64::from(k) * 13_000_000;
            let mut f = vec![
                0u8, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, k,
            ];
            f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0]);
            f.extend_from_slice(&[192, 168, 1, 200 + k, 10, 20 + k, (i >> 8) as u8, i as u8]);
            let sport = 40_000 + (i % 20_000) as u16;
            f.extend_from_slice(&sport.to_be_bytes());
            f.extend_from_slice(&[
                0, 23, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x39, 0x08, 0, 0, 0, 0,
            ]);
            probes.push((t, f));
        }
    }
    probes.sort_by_key(|p| p.0);
    for (t, f) in probes {
        w.write_packet(t, f.len() as u32, &f).unwrap();
    }
}

/// Horizontal scans spliced into the benign Mirai capture: each scanner is
/// named as the source of an episode within 5 s of its first probe, at 100
/// and at 10 probes a second, alone or five at once; no other host is.
#[test]
fn scanners_spliced_into_benign_traffic_are_named_within_five_seconds() {
    let Some(base) = util::shared("data/pcap/mirai_first2000.pcap") else {
        return;
    };
    let first = first_packet_time(&base);
    let dir = tempfile::tempdir().unwrap();
    for (rate, scanners) in [(100.0, 1u8), (10.0, 1), (10.0, 5)] {
        let (scan, pcap) = (dir.path().join("scan.pcap"), dir.path().join("s.pcap"));
        scan_capture(&scan, rate, scanners, 30.0);
        let (label_file, alert_file) = (dir.path().join("l.csv"), dir.path().join("a.jsonl"));
        run_ok(
            bin()
                .args(["-q", "splice", "--at", "56", "--base"])
                .arg(&base)
                .arg("--insert")
                .arg(&scan)
                .args(["--out".as_ref(), pcap.as_os_str(), "--labels".as_ref()])
                .arg(&label_file),
        );
        run_ok(
            bin()
                .args(["-q", "watch", "--grace", "50s", "--pcap"])
                .arg(&pcap)
                .arg("--alerts")
                .arg(&alert_file),
        );
        let starts: Vec<(String, String, f64)> = alerts(&alert_file)
            .iter()
            .filter(|a| action(a) == "start")
            .map(|a| {
                let c = &a["alert"]["context"];
                let t = secs_of_day(c["episode"]["start"].as_str().unwrap());
                let f = c["family"].as_str().unwrap_or("").to_string();
                (f, a["src_ip"].as_str().unwrap_or("").to_string(), t)
            })
            .collect();
        let case = format!("{rate}/s from {scanners}");
        for k in 0..scanners {
            let scanner = format!("192.168.1.{}", 200 + k);
            let onset = (first + 56.0 + f64::from(k) * 0.013).rem_euclid(86_400.0);
            let named = starts
                .iter()
                .filter(|(f, src, _)| f.ends_with("_scan") && *src == scanner)
                .map(|s| s.2)
                .fold(f64::INFINITY, f64::min);
            eprintln!(
                "{case}: {scanner} named {:.3} s after its first probe",
                named - onset
            );
            assert!(
                named - onset < 5.0,
                "{case}: {scanner} not named: {starts:?}"
            );
        }
        let others = starts
            .iter()
            .filter(|(f, src, _)| f != "flood_target" && !src.starts_with("192.168.1.2"));
        assert_eq!(others.count(), 0, "{case}: {starts:?}");
    }
}

/// Forty minutes of `synth --profile day` (a gateway resolving DNS for
/// every device, a monitor polling every host, mDNS/SSDP multicast: benign
/// fan-out learned during grace) with a telnet scan at 10 probes a second
/// from minute 30: the scanner is the only host any episode names, within
/// 5 s of its first probe.
#[test]
fn benign_fan_out_is_not_a_scan_and_a_slow_scanner_is() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, label_file) = (dir.path().join("d.pcap"), dir.path().join("d.csv"));
    let out = run_ok(
        bin()
            .args([
                "synth",
                "--profile",
                "day",
                "--duration",
                "40m",
                "--rate",
                "100",
            ])
            .args([
                "--attack",
                "hscan",
                "--attack-at",
                "30m",
                "--scan-rate",
                "10",
            ])
            .arg("--pcap")
            .arg(&pcap)
            .arg("--labels")
            .arg(&label_file),
    );
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    let scanner = said
        .split("sent by ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no scanner in: {said}"))
        .to_string();
    let first = first_packet_time(&pcap);
    let alert_file = dir.path().join("a.jsonl");
    run_ok(
        bin()
            .args(["-q", "watch", "--grace", "10m", "--pcap"])
            .arg(&pcap)
            .arg("--alerts")
            .arg(&alert_file),
    );
    let starts: Vec<Value> = alerts(&alert_file)
        .into_iter()
        .filter(|a| action(a) == "start")
        .collect();
    assert_eq!(starts.len(), 1, "{starts:?}");
    let c = &starts[0]["alert"]["context"];
    assert_eq!(c["family"], "horizontal_scan", "{starts:?}");
    assert_eq!(starts[0]["src_ip"], scanner.as_str(), "{starts:?}");
    let onset = (first + 1800.0).rem_euclid(86_400.0);
    let named = secs_of_day(c["episode"]["start"].as_str().unwrap());
    assert!(
        (0.0..5.0).contains(&(named - onset)),
        "named {named}, onset {onset}"
    );
}

/// The README's example, run as written: `synth` 200,000 packets with a UDP
/// and a spoofed SYN flood, then `watch --grace 30s`.
#[test]
fn the_readme_example_alerts_on_the_floods_and_on_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, label_file) = (dir.path().join("s.pcap"), dir.path().join("s.csv"));
    run_ok(
        bin()
            .args(["-q", "synth", "--packets", "200000", "--rate", "1000"])
            .args(["--attack", "udp", "--attack", "syn-spoofed", "--pcap"])
            .arg(&pcap)
            .arg("--labels")
            .arg(&label_file),
    );
    let (scores_file, alert_file) = (dir.path().join("sc.csv"), dir.path().join("a.jsonl"));
    let out = run_ok(
        bin()
            .args(["watch", "--grace", "30s", "--pcap"])
            .arg(&pcap)
            .arg("--scores")
            .arg(&scores_file)
            .arg("--alerts")
            .arg(&alert_file),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning: grace spanned 30 s"), "{stderr}");
    let truth = labels(&label_file);
    let rows = scores(&scores_file);
    let attack: Vec<_> = rows
        .iter()
        .filter(|r| truth[r.0 - 1] && r.2.is_some())
        .collect();
    let flagged = attack.iter().filter(|r| r.3).count();
    assert!(
        flagged * 100 >= attack.len() * 95,
        "{flagged} of {}",
        attack.len()
    );
    // Every episode is about the victim or a bot (192.168.1.10-13 send
    // the floods), and the victim's opens within 1 s of each flood.
    let victim = "198.51.100.23";
    let bots = [
        "192.168.1.10",
        "192.168.1.11",
        "192.168.1.12",
        "192.168.1.13",
    ];
    let all = alerts(&alert_file);
    let starts: Vec<&Value> = all.iter().filter(|a| action(a) == "start").collect();
    for s in &starts {
        let ctx = &s["alert"]["context"];
        let host = if ctx["family"] == "flood_target" {
            s["dest_ip"].as_str().unwrap()
        } else {
            s["src_ip"].as_str().unwrap()
        };
        assert!(host == victim || bots.contains(&host), "false alarm: {s}");
    }
    let onsets: Vec<f64> = rows.iter().filter(|r| truth[r.0 - 1]).map(|r| r.1).fold(
        Vec::new(),
        |mut v: Vec<f64>, t| {
            if v.last().is_none_or(|&l| t - l > 10.0) {
                v.push(t);
            }
            v
        },
    );
    assert_eq!(onsets.len(), 2, "two floods");
    for onset in onsets {
        let at = onset.rem_euclid(86_400.0);
        let first = starts
            .iter()
            .filter(|s| s["dest_ip"] == victim && s["alert"]["context"]["family"] == "flood_target")
            .map(|s| secs_of_day(s["alert"]["context"]["episode"]["start"].as_str().unwrap()))
            .filter(|&t| t >= at - 1e-3)
            .fold(f64::INFINITY, f64::min);
        assert!(first - at < 1.0, "flood at {at}: first alert {first}");
    }
}

#[test]
fn a_grace_longer_than_the_input_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, _) = synth(dir.path());
    let out = bin()
        .args(["watch", "--grace", "10m", "--pcap"])
        .arg(&pcap)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ended during grace") && stderr.contains("--grace"),
        "{stderr}"
    );
}

/// Benign traffic only, `secs` of capture from `start` (seconds since the
/// epoch), 200 packets a second.
fn benign(dir: &Path, name: &str, start: u32, secs: u32, seed: &str) -> PathBuf {
    let (pcap, labels) = (
        dir.join(format!("{name}.pcap")),
        dir.join(format!("{name}.csv")),
    );
    let packets = (secs * 200).to_string();
    let start = start.to_string();
    run_ok(
        bin()
            .args(["-q", "synth", "--rate", "200", "--packets", &packets])
            .args(["--start", &start, "--seed", seed, "--pcap"])
            .arg(&pcap)
            .arg("--labels")
            .arg(&labels),
    );
    pcap
}

#[test]
fn sigterm_saves_the_model_with_warm_tables_and_a_restart_detects_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let day1 = benign(dir.path(), "day1", 1_700_000_000, 60, "1");
    let day2 = benign(dir.path(), "day2", 1_700_000_060, 60, "2");
    for detector in ["ae", "kitnet"] {
        let model = dir.path().join(format!("{detector}.json"));
        // Paced: grace (15 s) ends, then SIGTERM while traffic goes on.
        let (mut child, lines) = spawn(
            bin()
                .args([
                    "watch",
                    "--grace",
                    "15s",
                    "--realtime",
                    "--detector",
                    detector,
                ])
                .arg("--pcap")
                .arg(&day1)
                .arg("--save-model")
                .arg(&model)
                .arg("--alerts")
                .arg(dir.path().join("a1.jsonl")),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match lines.recv_timeout(Duration::from_secs(1)) {
                Ok(l) if l.starts_with("grace: Source") => break,
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_secs(2));
        sigterm(&child);
        assert!(child.wait().unwrap().success());
        let rest: Vec<String> = lines.iter().collect();
        assert!(
            rest.iter().any(|l| l.starts_with("model saved to")),
            "{rest:?}"
        );
        let bytes = std::fs::read(&model).unwrap();
        let saved: Value = serde_json::from_slice(&bytes[24..]).unwrap();
        let hosts = saved["model"]["state"]["hosts"]
            .as_array()
            .map_or(0, Vec::len);
        assert!(hosts > 5, "{detector}: warm tables saved ({hosts} hosts)");
        // The next capture, scored from its first packet: nothing alerts.
        let alerts_file = dir.path().join("a2.jsonl");
        let out = run_ok(
            bin()
                .args(["watch", "--pcap"])
                .arg(&day2)
                .arg("--model")
                .arg(&model)
                .arg("--alerts")
                .arg(&alerts_file),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("12000 records (0 in grace)"), "{stderr}");
        assert!(alerts(&alerts_file).is_empty(), "{detector}: {stderr}");
    }
}
