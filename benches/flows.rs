//! Flow throughput, in records per second on one core.
//!
//! `cargo bench --bench flows`:
//! - `flows/*`: `FlowDecoder::decode` on batches of 100 datagrams of
//!   NetFlow v9 and IPFIX (30 records each, the template sent once
//!   before), NetFlow v5 (30 records) and sFlow v5 (7 flow samples with
//!   raw Ethernet headers), built field by field;
//! - `flows_end_to_end/*`: decode + features + score + episodes of what
//!   softflowd exports (NetFlow v9, IPFIX) from the benchmarks' synthetic
//!   capture (`FLOODWATCH_BENCH_PACKETS`, default 1,000,000 packets), read
//!   from memory, and sFlow v5 from pmacctd's sfprobe (every packet
//!   sampled); datagrams are stamped evenly over the capture's span, as
//!   sFlow carries no time; the model is learned from the first 5,000
//!   records. Skipped, saying why, without softflowd or pmacctd.

mod common;
#[path = "common/engine.rs"]
mod engine;

use std::hint::black_box;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use floodwatch::detect::sink::JsonLines;
use floodwatch::detect::stream::flows::FlowRecords;
use floodwatch::detect::stream::{Engine, OnlineDetector, SavedModel};
use floodwatch::features::packet::FeatureExtractor;
use floodwatch::features::victim::Victim;
use floodwatch::ingest::flows::build::{self, Flow};
use floodwatch::ingest::flows::udp::Collector;
use floodwatch::ingest::flows::{
    Accept, Arrival, Datagram, DatagramSource, FlowConfig, FlowDecoder, FlowRecord,
};
use floodwatch::ingest::packets::synth;

/// Datagrams per timed batch.
const DATAGRAMS: usize = 100;

fn flows(n: usize, seed: usize) -> Vec<Flow> {
    (0..n)
        .map(|i| {
            let k = seed * n + i;
            Flow {
                src: [10, 0, (k >> 8) as u8, k as u8],
                ports: (40_000 + (k % 1000) as u16, 80),
                ..build::flow((k % 250) as u8 + 1, 1 + (k % 7) as u32)
            }
        })
        .collect()
}

/// A decoder that has seen `setup`, the batch, and the records per batch.
fn prepare(setup: &[Vec<u8>], batch: Vec<Vec<u8>>) -> (FlowDecoder, Vec<Vec<u8>>, u64) {
    let from = exporter();
    let mut dec = FlowDecoder::new(Accept::Any, FlowConfig::default()).expect("decoder");
    let mut out = Vec::new();
    for d in setup {
        dec.decode(d, from, 0.0, &mut out);
    }
    let mut records = 0;
    for d in &batch {
        out.clear();
        records += dec.decode(d, from, 0.0, &mut out) as u64;
    }
    let rejected = dec.counters().total().rejected_total();
    assert_eq!(rejected, 0, "{}", dec.counters().total());
    (dec, batch, records)
}

fn exporter() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 2055))
}

fn run(dec: &mut FlowDecoder, batch: &[Vec<u8>], out: &mut Vec<FlowRecord>) -> usize {
    let from = exporter();
    let mut n = 0;
    for d in batch {
        out.clear();
        n += dec.decode(d, from, 1_700_000_000.0, out);
        black_box(&out);
    }
    n
}

fn bench(c: &mut Criterion) {
    let v9_setup = vec![build::v9(
        0,
        &[build::v9_template_set(256, &build::V9_FIELDS)],
    )];
    let v9_batch = (0..DATAGRAMS)
        .map(|s| build::v9(0, &[build::v9_data_set(256, &flows(30, s))]))
        .collect();
    let ipfix_setup = vec![build::ipfix(1, &[build::ipfix_template()])];
    let ipfix_batch = (0..DATAGRAMS)
        .map(|s| build::ipfix(1, &[build::ipfix_data(&flows(30, s))]))
        .collect();
    let v5_batch = (0..DATAGRAMS)
        .map(|s| build::v5(&flows(30, s), 0x4000 | 100))
        .collect();
    let sflow_batch = (0..DATAGRAMS)
        .map(|s| build::sflow(&flows(7, s), 100, None))
        .collect();
    let cases = [
        ("netflow_v9", prepare(&v9_setup, v9_batch), 30),
        ("ipfix", prepare(&ipfix_setup, ipfix_batch), 30),
        ("netflow_v5", prepare(&[], v5_batch), 30),
        ("sflow_v5", prepare(&[], sflow_batch), 7),
    ];
    let mut group = c.benchmark_group("flows");
    for (name, (mut dec, batch, records), per) in cases {
        assert_eq!(records, (DATAGRAMS * per) as u64, "{name}");
        let mut out = Vec::new();
        group.throughput(Throughput::Elements(records));
        group.bench_function(name, |b| {
            b.iter(|| run(&mut dec, &batch, &mut out));
        });
    }
    group.finish();
}

/// A socket on loopback for an exporter to send to, and its address.
fn relay() -> (Collector, String) {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let relay = Collector::bind(&[(any, Accept::Any)]).expect("socket");
    let to = relay.local_addrs()[0].to_string();
    (relay, to)
}

/// Runs `exporter` and keeps what `relay` receives until it has exited
/// and gone quiet; `None` (and why) when it is not installed.
fn receive(mut exporter: Command, mut relay: Collector) -> Option<Vec<Vec<u8>>> {
    let name = exporter.get_program().to_string_lossy().into_owned();
    let spawned = exporter.stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    let Ok(mut child) = spawned else {
        eprintln!("skipping a flows_end_to_end case: {name} is not installed");
        return None;
    };
    let (mut got, mut done) = (Vec::new(), false);
    loop {
        match relay.recv(Duration::from_millis(if done { 200 } else { 5 })) {
            Some(d) => got.push(d.payload.to_vec()),
            None if done => break,
            None => done = child.try_wait().expect(&name).is_some(),
        }
    }
    let drops = relay.kernel_drops();
    assert_eq!(drops, 0, "the bench's socket dropped datagrams");
    Some(got)
}

/// What softflowd sends (`-v version`) reading `capture`.
fn softflowd(capture: &Path, version: &str) -> Option<Vec<Vec<u8>>> {
    let (relay, to) = relay();
    let mut cmd = Command::new("softflowd");
    cmd.args(["-d", "-v", version, "-n", &to, "-c", "none", "-p"])
        .arg(capture.with_extension(format!("pid{version}")))
        .arg("-r")
        .arg(capture);
    receive(cmd, relay)
}

/// What pmacctd's sfprobe sends reading `capture`, every packet sampled.
fn sfprobe(capture: &Path) -> Option<Vec<Vec<u8>>> {
    let (relay, to) = relay();
    let conf = capture.with_extension("conf");
    let text = format!(
        "daemonize: false\npcap_savefile: {}\nplugins: sfprobe\nsfprobe_receiver: {to}\n\
         sampling_rate: 1\nsfprobe_agentip: 127.0.0.1\n",
        capture.display(),
    );
    std::fs::write(&conf, text).expect("pmacctd config");
    let mut cmd = Command::new("pmacctd");
    // Its own process group: pmacctd signals its group at exit.
    cmd.process_group(0).arg("-f").arg(&conf);
    receive(cmd, relay)
}

/// Datagrams from memory, as a capture replays them.
struct Replay<'a> {
    datagrams: &'a [(Vec<u8>, f64)],
    next: usize,
}

impl DatagramSource for Replay<'_> {
    fn next_datagram(&mut self) -> Arrival<'_> {
        let Some((payload, at)) = self.datagrams.get(self.next) else {
            return Arrival::End;
        };
        self.next += 1;
        Arrival::Datagram(Datagram {
            accept: Accept::Any,
            exporter: exporter(),
            at: *at,
            arrived: Instant::now(),
            payload,
        })
    }
}

fn records(datagrams: &[(Vec<u8>, f64)]) -> FlowRecords<Replay<'_>> {
    let decoder = FlowDecoder::new(Accept::Any, FlowConfig::default()).expect("decoder");
    let victim = Victim::new(100_000).expect("victim");
    let replay = Replay { datagrams, next: 0 };
    FlowRecords::new(replay, decoder, Vec::new(), victim)
}

/// Learns a model from the first 5,000 records, as `watch --grace` does.
fn learn(datagrams: &[(Vec<u8>, f64)]) -> SavedModel {
    let groups = Victim::new(2).expect("victim").groups();
    let detector = OnlineDetector::Autoencoder { epochs: 20 };
    engine::learn(&mut records(datagrams), groups, detector, 5_000)
}

/// Decodes, features, scores and tracks every record; returns how many.
fn watch(datagrams: &[(Vec<u8>, f64)], model: &SavedModel) -> u64 {
    let stop = Arc::new(AtomicBool::new(false));
    let sides = model.clone().into_sides();
    let mut engine =
        Engine::new(engine::params(None, None), sides, Arc::default(), stop).expect("engine");
    let mut sink = JsonLines::new(std::io::sink());
    let summary = engine.run(&mut records(datagrams), &mut sink).expect("run");
    black_box(summary).records
}

fn end_to_end(c: &mut Criterion) {
    let n = std::env::var("FLOODWATCH_BENCH_PACKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let capture = dir.path().join("capture.pcap");
    let file = std::fs::File::create(&capture).expect("capture");
    let cfg = common::flood_mix(n);
    let mut w = std::io::BufWriter::new(file);
    synth::write(&cfg, &mut w, std::io::sink()).expect("write capture");
    drop(w);
    let (start, span) = (cfg.start_ns as f64 * 1e-9, n as f64 / cfg.rate);
    let mut group = c.benchmark_group("flows_end_to_end");
    group.sample_size(10);
    for (name, softflowd_version) in [
        ("netflow_v9", Some("9")),
        ("ipfix", Some("10")),
        ("sflow_v5", None),
    ] {
        let exported = match softflowd_version {
            Some(v) => softflowd(&capture, v),
            None => sfprobe(&capture),
        };
        let Some(exported) = exported else {
            continue;
        };
        // Receipt times spread over the capture's span (sFlow has no
        // clock of its own; NetFlow records carry theirs).
        let k = exported.len() as f64;
        let at = |i: usize| start + span * (i as f64 + 1.0) / k;
        let datagrams: Vec<(Vec<u8>, f64)> = exported
            .into_iter()
            .enumerate()
            .map(|(i, d)| (d, at(i)))
            .collect();
        let model = learn(&datagrams);
        let records = watch(&datagrams, &model);
        group.throughput(Throughput::Elements(records));
        group.bench_function(name, |b| b.iter(|| watch(&datagrams, &model)));
    }
    group.finish();
}

criterion_group!(benches, bench, end_to_end);
criterion_main!(benches);
