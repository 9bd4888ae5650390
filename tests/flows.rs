//! Flow telemetry from real exporters: softflowd turns the shared captures
//! into NetFlow v5, v9 and IPFIX; floodwatch's counts per destination equal
//! nfdump's on the same export, floods are alerted from the export, and a
//! live collector loses nothing.
//!
//! Reading a file, softflowd expires flows only at its end, so each capture
//! is cut into 1-second slices and softflowd runs on each: an active
//! timeout of 1 s, exported in time order, as a router would.

mod util;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use floodwatch::ingest::flows::capture::{ExportCapture, ExportWriter};
use floodwatch::ingest::flows::udp::Collector;
use floodwatch::ingest::flows::{Accept, FlowConfig, FlowDecoder, FlowRecord};
use floodwatch::ingest::packets::capture::CaptureReader;
use floodwatch::ingest::packets::pcap::PcapWriter;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_floodwatch"))
}

/// Whether `name` runs (`probe` its harmless arguments); says why not.
fn have(name: &str, probe: &[&str]) -> bool {
    let found = Command::new(name)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("FLOODWATCH_REQUIRE_DATA").is_none(),
            "FLOODWATCH_REQUIRE_DATA is set but {name} is not installed"
        );
        eprintln!("skipping: {name} is not installed (apt-get install softflowd nfdump)");
    }
    found
}

/// Cuts `capture` into 1-second slices; returns their paths and start
/// times, in order.
fn slices(capture: &Path, dir: &Path) -> Vec<(PathBuf, f64)> {
    let mut reader = CaptureReader::open(capture).unwrap();
    let mut buf = Vec::new();
    let mut out: Vec<(PathBuf, f64)> = Vec::new();
    let mut writer: Option<PcapWriter<BufWriter<File>>> = None;
    let (mut t0, mut current) = (None, u64::MAX);
    while let Some(raw) = reader.next_packet(&mut buf).unwrap() {
        let t = raw.timestamp();
        let k = (t - *t0.get_or_insert(t)).max(0.0) as u64;
        if k != current || writer.is_none() {
            if let Some(w) = writer.take() {
                w.finish().unwrap();
            }
            let path = dir.join(format!("slice{k:06}.pcap"));
            let file = BufWriter::new(File::create(&path).unwrap());
            writer = Some(PcapWriter::new(file, raw.link_type, 65_535, false).unwrap());
            out.push((path, t0.unwrap_or(t) + k as f64));
            current = k;
        }
        let w = writer.as_mut().unwrap();
        w.write_packet(raw.ts_ns, raw.wire_len, raw.data).unwrap();
    }
    if let Some(w) = writer {
        w.finish().unwrap();
    }
    out
}

/// Exports `capture` through softflowd (`-v version`, one run per
/// 1-second slice, `extra` arguments) and saves the datagrams it sent
/// into `out`; returns how many.
fn softflowd_export(
    capture: &Path,
    version: &str,
    extra: &[&str],
    dir: &Path,
    out: &Path,
) -> usize {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut relay = Collector::bind(&[(any, Accept::Any)]).unwrap();
    let to = relay.local_addrs()[0];
    let mut w = ExportWriter::new(BufWriter::new(File::create(out).unwrap())).unwrap();
    let sdir = tempfile::tempdir_in(dir).unwrap();
    let mut n = 0;
    for (slice, start) in slices(capture, sdir.path()) {
        let mut child = Command::new("softflowd")
            .args(["-d", "-a", "-v", version, "-n", &to.to_string()])
            .args(extra)
            .arg("-r")
            .arg(&slice)
            // No control socket: softflowd 1.1.0 may block accepting on it.
            .args(["-c", "none", "-p"])
            .arg(sdir.path().join("pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("softflowd");
        // Drain while it runs, then what is left.
        let mut done = false;
        loop {
            match relay.recv(Duration::from_millis(if done { 50 } else { 2 })) {
                Some(d) => {
                    let from = match d.exporter {
                        SocketAddr::V4(a) => a,
                        SocketAddr::V6(_) => panic!("IPv4 expected"),
                    };
                    let at = start + 1.0;
                    let to = SocketAddrV4::new([127, 0, 0, 1].into(), 2055);
                    w.write(at, from, to, d.payload).unwrap();
                    n += 1;
                }
                None if done => break,
                None => done = child.try_wait().unwrap().is_some(),
            }
        }
        assert!(
            child.wait().unwrap().success(),
            "softflowd failed on {slice:?}"
        );
    }
    w.finish().unwrap();
    std::thread::sleep(Duration::from_millis(1_100));
    let _ = relay.recv(Duration::from_millis(1));
    assert_eq!(
        relay.kernel_drops(),
        0,
        "the relay's socket dropped datagrams"
    );
    n
}

/// Starts pmacctd reading `capture` into `plugin` (its name, then its
/// settings), configured by the file `conf`.
fn pmacctd(capture: &Path, plugin: &str, conf: &Path) -> Child {
    let text = format!(
        "daemonize: false\npcap_savefile: {}\nplugins: {plugin}\n",
        capture.display()
    );
    std::fs::write(conf, text).unwrap();
    // Its own process group: pmacctd signals its group at exit.
    Command::new("pmacctd")
        .process_group(0)
        .arg("-f")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pmacctd")
}

/// Exports `capture` as sFlow v5 through pmacctd's sfprobe, sampling one
/// packet in `rate`, and saves the datagrams into `out`; returns how many.
/// pmacctd runs on each 1-second slice (32 at a time, each to its
/// own socket: it pauses 2 s before exiting), and a slice's datagrams are
/// stamped evenly over its second (sFlow carries no time of its own).
fn sflow_export(capture: &Path, rate: u32, dir: &Path, out: &Path) -> usize {
    let sdir = tempfile::tempdir_in(dir).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut w = ExportWriter::new(BufWriter::new(File::create(out).unwrap())).unwrap();
    let from = SocketAddrV4::new([127, 0, 0, 1].into(), 6343);
    let mut n = 0;
    for batch in slices(capture, sdir.path()).chunks(32) {
        let runs: Vec<(Collector, Child, f64)> = batch
            .iter()
            .map(|(slice, start)| {
                let relay = Collector::bind(&[(any, Accept::Any)]).unwrap();
                let plugin = format!(
                    "sfprobe\nsfprobe_receiver: {}\nsampling_rate: {rate}\n\
                     sfprobe_agentip: 127.0.0.1",
                    relay.local_addrs()[0]
                );
                let child = pmacctd(slice, &plugin, &slice.with_extension("conf"));
                (relay, child, *start)
            })
            .collect();
        for (mut relay, child, start) in runs {
            // Its exit code races its plugin's shutdown: what counts is
            // what it sent, which the callers check against the capture.
            child.wait_with_output().unwrap();
            let mut got: Vec<Vec<u8>> = Vec::new();
            while let Some(d) = relay.recv(Duration::from_millis(20)) {
                got.push(d.payload.to_vec());
            }
            let k = got.len() as f64;
            for (i, d) in got.iter().enumerate() {
                let at = start + (i as f64 + 1.0) / k;
                let to = SocketAddrV4::new([127, 0, 0, 1].into(), 6343);
                w.write(at, from, to, d).unwrap();
            }
            n += got.len();
        }
    }
    w.finish().unwrap();
    n
}

/// The records of an export capture.
fn records(export: &Path) -> Vec<FlowRecord> {
    let mut cap = ExportCapture::open(export).unwrap();
    let mut dec = FlowDecoder::new(Accept::Any, FlowConfig::default()).unwrap();
    let mut out = Vec::new();
    while let Some(d) = cap.next_datagram() {
        dec.decode(d.payload, d.exporter, d.at, &mut out);
    }
    let total = dec.counters().total();
    assert_eq!(total.rejected_total(), 0, "{total}");
    out
}

/// Per destination: flows, packets, bytes.
type Totals = BTreeMap<String, (u64, u64, u64)>;

/// floodwatch's totals of an export capture, scaled by each record's
/// sampling rate (as nfdump scales them).
fn floodwatch_totals(export: &Path) -> Totals {
    let mut cap = ExportCapture::open(export).unwrap();
    let mut dec = FlowDecoder::new(Accept::Any, FlowConfig::default()).unwrap();
    let (mut out, mut t) = (Vec::new(), Totals::new());
    while let Some(d) = cap.next_datagram() {
        out.clear();
        dec.decode(d.payload, d.exporter, d.at, &mut out);
        for r in &out {
            let k = u64::from(r.sampling_rate.max(1));
            let e = t.entry(r.dst.to_string()).or_default();
            *e = (e.0 + 1, e.1 + k * r.packets, e.2 + k * r.bytes);
        }
    }
    let total = dec.counters().total();
    assert_eq!(total.rejected_total(), 0, "{total}");
    t
}

/// A UDP port free on 127.0.0.1 now.
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends the datagrams of `export` to `to`, a few hundred a millisecond
/// at most.
fn replay(export: &Path, to: SocketAddr) -> usize {
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut cap = ExportCapture::open(export).unwrap();
    let mut n = 0;
    while let Some(d) = cap.next_datagram() {
        tx.send_to(d.payload, to).unwrap();
        n += 1;
        if n % 32 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    n
}

/// Stops a child by its PID (SIGTERM) and waits for it.
fn terminate(child: &mut Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "process {pid} ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// nfdump's totals of `export`, received by `collector` (nfcapd, or sfcapd
/// for sFlow, then its own arguments).
fn collector_totals(collector: &[&str], export: &Path, dir: &Path) -> Totals {
    let store = tempfile::tempdir_in(dir).unwrap();
    let port = free_port();
    let mut nfcapd = Command::new(collector[0])
        .args(&collector[1..])
        .args(["-b", "127.0.0.1", "-p", &port.to_string(), "-w"])
        .arg(store.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(collector[0]);
    std::thread::sleep(Duration::from_millis(500));
    replay(export, SocketAddr::from(([127, 0, 0, 1], port)));
    std::thread::sleep(Duration::from_millis(500));
    terminate(&mut nfcapd);
    let out = Command::new("nfdump")
        .arg("-R")
        .arg(store.path())
        .args(["-A", "dstip", "-q", "-N", "-o", "fmt:%da %fl %pkt %byt"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut t = Totals::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 4 {
            let n = |i: usize| f[i].parse::<u64>().unwrap();
            t.insert(f[0].to_owned(), (n(1), n(2), n(3)));
        }
    }
    t
}

/// Per destination, floodwatch's totals of `export` (`what`, `datagrams`
/// of it) against nfdump's through `collector`: they must be equal.
fn counted_as_nfdump(
    what: &str,
    export: &Path,
    collector: &[&str],
    datagrams: usize,
    dir: &Path,
) -> Totals {
    let ours = floodwatch_totals(export);
    let theirs = collector_totals(collector, export, dir);
    eprintln!(
        "{what}: {datagrams} datagrams, {} flows, {} packets, {} destinations",
        flows_in(&ours),
        packets_in(&ours),
        ours.len()
    );
    assert_eq!(ours, theirs, "{what}: floodwatch (left) and nfdump (right)");
    ours
}

/// Flow records in `t`.
fn flows_in(t: &Totals) -> u64 {
    t.values().map(|t| t.0).sum()
}

/// Packets in `t`.
fn packets_in(t: &Totals) -> u64 {
    t.values().map(|t| t.1).sum()
}

/// NetFlow v5, v9 and IPFIX from softflowd: per destination, the flows,
/// packets and bytes floodwatch decodes equal nfdump's.
#[test]
fn softflowd_exports_count_as_nfdump_counts_them() {
    let Some(capture) = util::shared("data/pcap/mirai_first2000.pcap") else {
        return;
    };
    if !have("softflowd", &["-h"]) || !have("nfcapd", &["-V"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for version in ["5", "9", "10"] {
        let export = dir.path().join(format!("v{version}.pcap"));
        let datagrams = softflowd_export(&capture, version, &[], dir.path(), &export);
        let what = format!("softflowd v{version}");
        let t = counted_as_nfdump(&what, &export, &["nfcapd"], datagrams, dir.path());
        assert!(flows_in(&t) > 500 && t.len() > 20, "{what}: {t:?}");
    }
}

/// Exports `capture` through pmacctd's nfprobe as NetFlow `version` (9 or
/// 10, IPFIX), sampling one packet in `rate` (announced in an options
/// template), in one run (it expires every flow at the end of the file) and
/// saves the datagrams into `out`, stamped as they arrived; returns how
/// many.
fn nfprobe_export(capture: &Path, version: &str, rate: u32, dir: &Path, out: &Path) -> usize {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut relay = Collector::bind(&[(any, Accept::Any)]).unwrap();
    let plugin = format!(
        "nfprobe\nnfprobe_receiver: {}\nnfprobe_version: {version}\nsampling_rate: {rate}",
        relay.local_addrs()[0]
    );
    let conf = dir.join(format!("nfprobe{version}-{rate}.conf"));
    pmacctd(capture, &plugin, &conf).wait_with_output().unwrap();
    let mut w = ExportWriter::new(BufWriter::new(File::create(out).unwrap())).unwrap();
    let mut n = 0;
    while let Some(d) = relay.recv(Duration::from_millis(200)) {
        let SocketAddr::V4(from) = d.exporter else {
            panic!("IPv4 expected")
        };
        let to = SocketAddrV4::new([127, 0, 0, 1].into(), 2055);
        w.write(d.at, from, to, d.payload).unwrap();
        n += 1;
    }
    w.finish().unwrap();
    assert_eq!(
        relay.kernel_drops(),
        0,
        "the relay's socket dropped datagrams"
    );
    n
}

/// A second exporter, pmacct: NetFlow v9 and IPFIX from its nfprobe (its
/// own templates), unsampled and sampling 1 in 10, and sFlow from its
/// sfprobe sampling 1 in 10. Every record decodes, and per destination the
/// flows, packets and bytes (sampled: the packets and bytes they stand for)
/// equal nfdump's through nfcapd and sfcapd. nfdump 1.7 does not apply the
/// rate nfprobe announces: it is told it (`-s 10`). Sampled, the packets
/// add up to those unsampled within 15 % (1,720-1,880 of 1,809 measured).
#[test]
fn pmacct_exports_count_as_nfdump_counts_them() {
    let Some(capture) = util::shared("data/pcap/mirai_first2000.pcap") else {
        return;
    };
    if !have("pmacctd", &["-V"]) || !have("nfcapd", &["-V"]) || !have("sfcapd", &["-V"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for version in ["9", "10"] {
        let count = |rate: u32, collector: &[&str]| {
            let export = dir.path().join(format!("nfprobe{version}-{rate}.pcap"));
            let datagrams = nfprobe_export(&capture, version, rate, dir.path(), &export);
            let what = format!("nfprobe v{version} 1:{rate}");
            counted_as_nfdump(&what, &export, collector, datagrams, dir.path())
        };
        let all = count(1, &["nfcapd"]);
        assert!(
            flows_in(&all) > 300 && all.len() > 20,
            "v{version}: {all:?}"
        );
        let sampled = count(10, &["nfcapd", "-s", "10"]);
        let ratio = packets_in(&sampled) as f64 / packets_in(&all) as f64;
        assert!((0.85..1.15).contains(&ratio), "v{version}: {ratio}");
    }
    let export = dir.path().join("sflow.pcap");
    let datagrams = sflow_export(&capture, 10, dir.path(), &export);
    let t = counted_as_nfdump("sfprobe 1:10", &export, &["sfcapd"], datagrams, dir.path());
    assert!(flows_in(&t) > 100 && t.len() > 10, "{t:?}");
}

/// Capture time of a spliced capture's first attack packet.
fn onset(labels: &Path, capture: &Path) -> f64 {
    let text = std::fs::read_to_string(labels).unwrap();
    let first = text
        .lines()
        .skip(1)
        .find(|l| !l.ends_with(",normal") && !l.ends_with(",benign"))
        .and_then(|l| l.split(',').next())
        .and_then(|i| i.parse::<u64>().ok())
        .expect("an attack packet");
    let mut reader = CaptureReader::open(capture).unwrap();
    let mut buf = Vec::new();
    let mut i = 0;
    while let Some(raw) = reader.next_packet(&mut buf).unwrap() {
        i += 1;
        if i == first {
            return raw.timestamp();
        }
    }
    panic!("packet {first} not in {capture:?}");
}

/// The destinations of at least 1 % of a flood capture's packets.
fn attack_targets(flood: &Path) -> Vec<String> {
    use floodwatch::ingest::packets::capture::PacketSource;
    use floodwatch::ingest::packets::Network;
    let mut src = PacketSource::open(flood).unwrap();
    let mut count: BTreeMap<String, u64> = BTreeMap::new();
    let mut n = 0;
    while let Some(p) = src.next_packet() {
        n += 1;
        if let Network::Ip { dst, .. } = p.network {
            *count.entry(dst.to_string()).or_default() += 1;
        }
    }
    count
        .into_iter()
        .filter(|c| c.1 * 100 >= n)
        .map(|c| c.0)
        .collect()
}

/// Splices `flood` into `base` at `at` seconds; the capture and its labels.
fn splice(base: &Path, flood: &Path, at: u32, dir: &Path) -> (PathBuf, PathBuf) {
    let (spliced, labels) = (dir.join("s.pcap"), dir.join("s.csv"));
    let status = bin()
        .args(["-q", "splice", "--at", &at.to_string(), "--base"])
        .arg(base)
        .arg("--insert")
        .arg(flood)
        .arg("--out")
        .arg(&spliced)
        .arg("--labels")
        .arg(&labels)
        .status()
        .unwrap();
    assert!(status.success());
    (spliced, labels)
}

/// The episode start time and host of each `start` alert: its target, or
/// for a source-side episode its source.
fn episode_starts(alerts: &[serde_json::Value]) -> Vec<(f64, String)> {
    alerts
        .iter()
        .filter(|a| a["alert"]["context"]["state"] == "start")
        .map(|a| {
            let ep = &a["alert"]["context"]["episode"];
            let host = |side: &str| a["alert"][side]["ip"].as_str();
            let target = host("target").or(host("source")).unwrap_or("");
            (epoch(ep["start"].as_str().unwrap()), target.to_owned())
        })
        .collect()
}

/// `watch --flows` over a capture of export datagrams with `args`: its
/// standard error and alerts (it must succeed).
fn watch_export(export: &Path, args: &[&str]) -> (String, Vec<serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    let alert_file = dir.path().join("a.jsonl");
    let (ok, stderr) = watch_capture(export, &[&["--flows"], args].concat(), &alert_file);
    assert!(ok, "{args:?}: {stderr}");
    (stderr, alerts(&alert_file))
}

/// `watch ARGS --pcap capture --alerts alerts`: whether it succeeded, and
/// its standard error.
fn watch_capture(capture: &Path, args: &[&str], alerts: &Path) -> (bool, String) {
    let out = bin()
        .arg("watch")
        .args(args)
        .arg("--pcap")
        .arg(capture)
        .arg("--alerts")
        .arg(alerts)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), stderr)
}

/// Alerts of a JSON-lines file.
fn alerts(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Seconds since the epoch of an alert time (`2018-10-25T05:47:34.318000+0000`).
fn epoch(ts: &str) -> f64 {
    let out = Command::new("date")
        .args(["-u", "-d", &ts.replace("+0000", "Z"), "+%s.%N"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Each flood of the shared captures spliced into the benign Mirai capture
/// at 72 s, exported by softflowd as NetFlow v9 with a 1 s active timeout
/// and millisecond flow times (`-A milli`: v9's header has whole seconds),
/// and watched from the export (learning from its first 50 s): the victim
/// is alerted within 5 s of the flood's first packet, nothing before.
#[test]
fn floods_exported_as_netflow_are_alerted_within_five_seconds() {
    let Some(base) = util::shared("data/pcap/mirai_first2000.pcap") else {
        return;
    };
    if !have("softflowd", &["-h"]) {
        return;
    }
    let shared = base.parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for flood in [
        "pkt.TCP.synflood.spoofed.pcap",
        "CIC-DDoS-2019-SynFlood.pcap",
        "amp.TCP.reflection.SYNACK.pcap",
    ] {
        let (spliced, labels) = splice(&base, &shared.join(flood), 72, dir.path());
        let at = onset(&labels, &spliced);
        let targets = attack_targets(&shared.join(flood));
        let export = dir.path().join("export.pcap");
        softflowd_export(&spliced, "9", &["-A", "milli"], dir.path(), &export);
        for detector in ["ae", "kitnet"] {
            let (stderr, all) = watch_export(&export, &["--grace", "50s", "--detector", detector]);
            assert!(stderr.contains("exporter 127.0.0.1: "), "{stderr}");
            let starts = episode_starts(&all);
            let victim: Vec<f64> = starts
                .iter()
                .filter(|s| targets.contains(&s.1))
                .map(|s| s.0)
                .collect();
            let benign = starts.len() - victim.len();
            let first = victim.iter().copied().fold(f64::INFINITY, f64::min);
            eprintln!(
                "{flood} {detector}: victim alerted {:.3} s after onset, {benign} other episodes",
                first - at
            );
            assert!(
                (-0.001..5.0).contains(&(first - at)),
                "{flood} {detector}: first victim alert {first}, onset {at}: {starts:?}"
            );
            let exporter = all[0]["alert"]["context"]["exporter"].as_str();
            assert_eq!(
                exporter,
                Some("127.0.0.1"),
                "{flood}: alerts name the exporter"
            );
            assert_eq!(benign, 0, "{flood} {detector}: {starts:?}");
        }
    }
}

/// `watch --netflow` on loopback, scoring with a model learned from the
/// same export: every record of the replayed datagrams is scored, none is
/// dropped, and the flood's alerts name the exporter.
#[test]
fn a_live_collector_scores_every_record_of_a_replayed_export() {
    let Some(base) = util::shared("data/pcap/mirai_first2000.pcap") else {
        return;
    };
    if !have("softflowd", &["-h"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let flood = base.with_file_name("pkt.TCP.synflood.spoofed.pcap");
    let (spliced, _) = splice(&base, &flood, 72, dir.path());
    let export = dir.path().join("export.pcap");
    let datagrams = softflowd_export(&spliced, "9", &[], dir.path(), &export);
    let records = flows_in(&floodwatch_totals(&export));
    let model = dir.path().join("m.fw");
    let learned = bin()
        .args([
            "-q",
            "watch",
            "--flows",
            "--grace",
            "50s",
            "--alerts",
            "/dev/null",
        ])
        .arg("--pcap")
        .arg(&export)
        .arg("--save-model")
        .arg(&model)
        .status()
        .unwrap();
    assert!(learned.success());
    let port = free_port();
    let alert_file = dir.path().join("a.jsonl");
    let mut watch = bin()
        .args([
            "watch",
            "--netflow",
            &format!("127.0.0.1:{port}"),
            "--exporter",
        ])
        .args(["127.0.0.1", "--model"])
        .arg(&model)
        .arg("--alerts")
        .arg(&alert_file)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1_000));
    assert_eq!(
        replay(&export, SocketAddr::from(([127, 0, 0, 1], port))),
        datagrams
    );
    std::thread::sleep(Duration::from_millis(1_500));
    terminate(&mut watch);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut watch.stderr.take().unwrap(), &mut stderr).unwrap();
    eprintln!("{stderr}");
    let want = format!("exporter 127.0.0.1: {datagrams} datagrams, {records} records");
    assert!(stderr.contains(&want), "want `{want}` in:\n{stderr}");
    assert!(
        stderr.contains(&format!("watch stopped: {records} records")),
        "{stderr}"
    );
    assert!(stderr.contains(" 0 rejected, 0 dropped"), "{stderr}");
    let all = alerts(&alert_file);
    let flood_alerts: Vec<_> = all
        .iter()
        .filter(|a| a["alert"]["target"]["ip"] == "10.10.10.10")
        .collect();
    assert!(!flood_alerts.is_empty(), "no alert on the victim: {all:?}");
    assert!(flood_alerts
        .iter()
        .all(|a| a["alert"]["context"]["exporter"] == "127.0.0.1"));
}

/// sFlow from pmacct's sfprobe at one in 1 and one in 100: the flood's
/// packets, scaled by the sampling rate each sample carries, come within
/// 10 % of the capture's, and of each other.
#[test]
fn sflow_samples_scale_by_their_sampling_rate() {
    let Some(flood) = util::shared("data/pcap/pkt.TCP.synflood.spoofed.pcap") else {
        return;
    };
    if !have("pmacctd", &["-V"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut scaled = Vec::new();
    for rate in [1u32, 100] {
        let export = dir.path().join(format!("sf{rate}.pcap"));
        let datagrams = sflow_export(&flood, rate, dir.path(), &export);
        let recs = records(&export);
        assert!(recs
            .iter()
            .all(|r| r.sampling_rate == rate && r.packets == 1));
        let victim: f64 = recs
            .iter()
            .filter(|r| r.dst.to_string() == "10.10.10.10")
            .map(|r| r.scaled_packets() as f64)
            .sum();
        eprintln!(
            "1:{rate}: {datagrams} datagrams, {} samples, {victim} packets",
            recs.len()
        );
        scaled.push(victim);
    }
    for s in &scaled {
        assert!((s / 37_841.0 - 1.0).abs() < 0.10, "{scaled:?}");
    }
}

/// The SYN floods spliced at 150 s into 4 minutes of a generated benign
/// LAN (2,000 packets a second), exported as sFlow sampled one in 100 by
/// pmacct's sfprobe and watched from the export (learning from its first
/// 2 minutes): the victim is alerted within 5 s of the flood's onset.
/// (The SYN-ACK reflection capture lasts 0.15 s: 80 samples at 1:100.)
#[test]
#[ignore = "heavy: half a minute of pmacctd runs per flood; run by .ci/run"]
fn floods_exported_as_sampled_sflow_are_alerted_within_five_seconds() {
    let Some(shared) = util::shared("data/pcap") else {
        return;
    };
    if !have("pmacctd", &["-V"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("day.pcap");
    let status = bin()
        .args([
            "-q",
            "synth",
            "--profile",
            "day",
            "--duration",
            "4m",
            "--rate",
            "2000",
        ])
        .args(["--seed", "1", "--pcap"])
        .arg(&base)
        .arg("--labels")
        .arg(dir.path().join("day.csv"))
        .status()
        .unwrap();
    assert!(status.success());
    for flood in [
        "pkt.TCP.synflood.spoofed.pcap",
        "CIC-DDoS-2019-SynFlood.pcap",
    ] {
        let (spliced, labels) = splice(&base, &shared.join(flood), 150, dir.path());
        let at = onset(&labels, &spliced);
        let targets = attack_targets(&shared.join(flood));
        let export = dir.path().join("export.pcap");
        sflow_export(&spliced, 100, dir.path(), &export);
        let starts = episode_starts(&watch_export(&export, &["--grace", "2m"]).1);
        let first = starts
            .iter()
            .filter(|s| targets.contains(&s.1))
            .map(|s| s.0)
            .fold(f64::INFINITY, f64::min);
        let benign = starts.iter().filter(|s| !targets.contains(&s.1)).count();
        eprintln!(
            "{flood} sFlow 1:100: victim alerted {:.3} s after onset, {benign} other episodes",
            first - at
        );
        // Samples are stamped within the second their datagram was sent.
        assert!(
            (-1.0..5.0).contains(&(first - at)),
            "{flood}: first victim alert {first}, onset {at}: {starts:?}"
        );
        assert_eq!(benign, 0, "{flood}: {starts:?}");
    }
}

/// `train --pcap EXPORT --flows` learns from the benign Mirai capture's
/// NetFlow; `test` and `watch --model` read the flood-spliced export with
/// it (nearly all flood records flagged, the victim alerted), and a packet
/// capture given to a flow model is refused with what to do.
#[test]
fn a_table_model_trained_on_flows_scores_flows() {
    let Some(base) = util::shared("data/pcap/mirai_first2000.pcap") else {
        return;
    };
    if !have("softflowd", &["-h"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let benign = dir.path().join("benign.pcap");
    softflowd_export(&base, "9", &["-A", "milli"], dir.path(), &benign);
    let (spliced, _) = splice(
        &base,
        &base.with_file_name("pkt.TCP.synflood.spoofed.pcap"),
        72,
        dir.path(),
    );
    let export = dir.path().join("export.pcap");
    softflowd_export(&spliced, "9", &["-A", "milli"], dir.path(), &export);
    let totals = floodwatch_totals(&export);
    let (flood, all) = (totals["10.10.10.10"].0, flows_in(&totals));
    let model = dir.path().join("m.fw");
    let b = benign.to_str().unwrap();
    util::ok(&[
        "train",
        "--pcap",
        b,
        "--flows",
        "--seed",
        "1",
        "--model",
        model.to_str().unwrap(),
    ]);
    let e = export.to_str().unwrap();
    let m = model.to_str().unwrap();
    let out = util::ok(&[
        "test", "--pcap", e, "--flows", "--model", m, "--report", "-",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out[out.find('{').unwrap()..]).unwrap();
    let anomalies = report["anomalies"].as_u64().unwrap();
    eprintln!("{anomalies} of {all} records flagged; the flood has {flood}");
    assert_eq!(report["rows"].as_u64(), Some(all));
    assert!(anomalies >= flood * 9 / 10 && anomalies <= flood + (all - flood) / 10);
    let alert_file = dir.path().join("a.jsonl");
    let a = alert_file.to_str().unwrap();
    util::ok(&["watch", "--pcap", e, "--flows", "--model", m, "--alerts", a]);
    assert!(alerts(&alert_file)
        .iter()
        .any(|x| x["alert"]["target"]["ip"] == "10.10.10.10"));
    let refused = util::fw(&["test", "--pcap", spliced.to_str().unwrap(), "--model", m]);
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && why.contains("add --flows"),
        "{why}"
    );
}

/// A capture of packets given as a capture of exports reads no records:
/// the error says what was rejected and why, per exporter.
#[test]
fn a_packet_capture_read_as_exports_says_what_it_rejected() {
    let Some(capture) = util::shared("data/pcap/mirai_first2000.pcap") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("a.jsonl");
    let (ok, err) = watch_capture(&capture, &["--flows", "--grace", "100"], &alerts);
    assert!(!ok);
    assert!(
        err.contains("0 records over")
            && err.contains("2000 inputs were skipped or rejected (no datagram was NetFlow, IPFIX or sFlow: a capture of packets is read without --flows; exporter")
            && err
                .contains("exporter 192.168.2.108: 386 datagrams, 0 records, 386 unknown_version")
            && err.contains("and 10 more")
            && !err.contains("shorter --grace"),
        "{err}"
    );
}

/// A capture of flow exports read as packets: the run says they look like
/// exports and to add --flows, at the end and when grace cannot finish.
#[test]
fn exports_read_as_packets_are_pointed_to_flows() {
    use floodwatch::ingest::flows::build::{flow, v5};
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export.pcap");
    let mut w = ExportWriter::new(BufWriter::new(File::create(&export).unwrap())).unwrap();
    let (from, to) = (
        "192.0.2.1:2055".parse().unwrap(),
        "192.0.2.9:2055".parse().unwrap(),
    );
    for i in 0..1000u16 {
        let d = v5(&[flow((i % 7) as u8 + 1, 3)], 0);
        w.write(1_700_000_000.0 + f64::from(i) * 0.1, from, to, &d)
            .unwrap();
    }
    w.finish().unwrap();
    let alerts = dir.path().join("a.jsonl");
    let watch = |grace: &str| watch_capture(&export, &["--grace", grace], &alerts);
    let hint = "1000 of 1000 packets are UDP to a flow collector's port (2055, 4739, 6343, \
                9995, 9996): if they are flow exports, read them with --flows";
    let (ok, err) = watch("600");
    assert!(ok && err.contains(hint), "{err}");
    let (ok, err) = watch("10m");
    assert!(
        !ok && err.contains(hint) && err.contains("during grace"),
        "{err}"
    );
}

/// The shared benign captures (a smart plug over 68 minutes, an industrial
/// link over 135) exported by softflowd as NetFlow v9 and watched after a
/// 30- and 45-minute grace: sparse flow records, a few hundred held back,
/// and not one episode with either detector.
#[test]
#[ignore = "heavy: a softflowd run per second of two hours of capture; run by .ci/run"]
fn benign_captures_exported_as_netflow_raise_no_alert() {
    let Some(shared) = util::shared("data/benign") else {
        return;
    };
    if !have("softflowd", &["-h"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, grace) in [
        ("iot-smartplug-68min.pcap", "30m"),
        ("ics-wincc-s7-135min.pcap", "45m"),
    ] {
        let export = dir.path().join("export.pcap");
        softflowd_export(
            &shared.join(name),
            "9",
            &["-A", "milli"],
            dir.path(),
            &export,
        );
        for detector in ["ae", "kitnet"] {
            let (stderr, all) = watch_export(&export, &["--grace", grace, "--detector", detector]);
            let starts = episode_starts(&all);
            eprintln!("{name} {detector}: {} episodes", starts.len());
            assert!(starts.is_empty(), "{name} {detector}: {starts:?}\n{stderr}");
        }
    }
}
