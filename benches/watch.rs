//! End-to-end streaming throughput and latency: read + decode a capture,
//! victim-centric features, score (dense autoencoder or KitNET), vote and
//! alert episodes, one core.
//!
//! `cargo bench --bench watch`; `FLOODWATCH_BENCH_PACKETS` sets the size of
//! the synthetic capture (default 300,000 packets of benign IoT traffic with
//! five Mirai-style floods, written by `ingest::packets::synth` in memory).
//! The models are learned once from the first 5,000 packets; the timed runs
//! score every packet with the saved model. After the timings, one line of
//! JSON per detector gives the per-record latency histogram's p99 bound.

use std::hint::black_box;
use std::io::Cursor;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use floodwatch::detect::episode::TrackerParams;
use floodwatch::detect::metrics::Metrics;
use floodwatch::detect::sink::JsonLines;
use floodwatch::detect::stream::source::PacketRecords;
use floodwatch::detect::stream::{
    Engine, EngineParams, OnlineAutoencoder, OnlineKitNet, SavedModel, StreamScorer,
};
use floodwatch::features::victim::Victim;
use floodwatch::ingest::packets::capture::{CaptureReader, PacketSource};
use floodwatch::ingest::packets::synth::{self, SynthConfig};
use floodwatch::model::kitnet::KitNetParams;
use floodwatch::model::threshold::ThresholdRule;
use floodwatch::model::AutoencoderParams;

const GRACE: u64 = 5_000;

fn capture() -> (Vec<u8>, u64) {
    let n = std::env::var("FLOODWATCH_BENCH_PACKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let cfg = SynthConfig {
        packets: n,
        rate: 2_000.0,
        seed: 42,
        attacks: ["udp", "syn-spoofed", "ack", "http", "gre"]
            .iter()
            .map(|a| a.parse().expect("attack name"))
            .collect(),
        start_ns: 1_700_000_000_000_000_000,
    };
    let mut bytes = Vec::new();
    synth::write(&cfg, &mut bytes, std::io::sink()).expect("write capture");
    (bytes, n)
}

fn source(bytes: &[u8]) -> PacketRecords<PacketSource<Cursor<&[u8]>>, Victim> {
    let reader = CaptureReader::from_reader(Cursor::new(bytes), "bench").expect("capture");
    PacketRecords::new(
        PacketSource::new(reader),
        Victim::new(100_000).expect("layout"),
    )
}

/// Runs the engine over the capture; returns the metrics.
fn run(bytes: &[u8], scorer: Box<dyn StreamScorer>) -> Arc<Metrics> {
    let metrics = Arc::new(Metrics::default());
    let params = EngineParams {
        tracker: TrackerParams::new(),
        top_features: 5,
        save_model: None,
    };
    let mut engine = Engine::new(
        params,
        scorer,
        metrics.clone(),
        Arc::new(AtomicBool::new(false)),
    );
    let mut sink = JsonLines::new(std::io::sink());
    let summary = engine.run(&mut source(bytes), &mut sink).expect("run");
    black_box(summary);
    metrics
}

/// Learns a model from the first packets, as `watch --grace` does.
fn learn(bytes: &[u8], scorer: Box<dyn StreamScorer>) -> SavedModel {
    let mut src = source(bytes);
    let mut scorer = scorer;
    let mut x = vec![0.0; Victim::new(2).expect("layout").names().len()];
    use floodwatch::detect::stream::{Next, RecordSource};
    while scorer.model().is_none() {
        match src.next(&mut x) {
            Next::Record(_) => {
                scorer.score(&x).expect("learn");
            }
            Next::End => panic!("capture shorter than grace"),
            _ => {}
        }
    }
    scorer.model().expect("model")
}

fn bench(c: &mut Criterion) {
    let (bytes, n) = capture();
    let names = Victim::new(2).expect("layout").names().to_vec();
    let rule = ThresholdRule::Quantile(0.999);
    let ae = AutoencoderParams::new()
        .hidden([30, 13, 13, 30])
        .epochs(20)
        .batch_size(32);
    let models = [
        (
            "ae",
            learn(
                &bytes,
                Box::new(OnlineAutoencoder::new(names.clone(), GRACE, ae, rule, true).expect("ae")),
            ),
        ),
        (
            "kitnet",
            learn(
                &bytes,
                Box::new(
                    OnlineKitNet::new(names.clone(), GRACE, KitNetParams::new(), rule, true)
                        .expect("kitnet"),
                ),
            ),
        ),
    ];
    let mut g = c.benchmark_group("watch");
    g.throughput(Throughput::Elements(n));
    g.sample_size(10);
    for (name, model) in &models {
        g.bench_function(format!("{name}_end_to_end"), |b| {
            b.iter(|| run(&bytes, model.clone().into_scorer()))
        });
    }
    g.finish();
    for (name, model) in &models {
        let m = run(&bytes, model.clone().into_scorer());
        let p = |q| m.latency.quantile_bound(q).map_or(-1.0, |s| s * 1e6);
        println!(
            "{{\"detector\":\"{name}\",\"packets\":{n},\"p50_latency_us_bound\":{},\"p99_latency_us_bound\":{},\"p999_latency_us_bound\":{}}}",
            p(0.5),
            p(0.99),
            p(0.999)
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
