//! End-to-end streaming throughput and latency: read + decode a capture,
//! features (layout `victim`: 44 host statistics, destination and source
//! sides, or `floodwatch`: Kitsune's 100 corrected + those 44), score (dense
//! autoencoder or KitNET), vote and alert episodes, one core.
//!
//! `cargo bench --bench watch`; `FLOODWATCH_BENCH_PACKETS` sets the size of
//! the synthetic capture (default 200,000 packets of benign IoT traffic with
//! five Mirai-style floods, written by `ingest::packets::synth` in memory).
//! The models are learned once from the first 5,000 packets; the timed runs
//! score every packet with the saved model. After the timings, one line of
//! JSON per detector gives the per-record latency histogram's p99 bound.

mod common;
#[path = "common/engine.rs"]
mod engine;

use std::hint::black_box;
use std::io::Cursor;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use floodwatch::detect::metrics::Metrics;
use floodwatch::detect::sink::JsonLines;
use floodwatch::detect::stream::source::PacketRecords;
use floodwatch::detect::stream::{Engine, OnlineDetector, SavedModel};
use floodwatch::features::combined::PacketLayout;
use floodwatch::features::packet::FeatureExtractor;
use floodwatch::features::stream_table::TableConfig;
use floodwatch::ingest::packets::capture::{CaptureReader, PacketSource};
use floodwatch::ingest::packets::synth;

const GRACE: u64 = 5_000;

fn capture() -> (Vec<u8>, u64) {
    let n = std::env::var("FLOODWATCH_BENCH_PACKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let cfg = common::flood_mix(n);
    let mut bytes = Vec::new();
    synth::write(&cfg, &mut bytes, std::io::sink()).expect("write capture");
    (bytes, n)
}

type Source<'a> = PacketRecords<PacketSource<Cursor<&'a [u8]>>, Box<dyn FeatureExtractor>>;

fn source(bytes: &[u8], layout: PacketLayout) -> Source<'_> {
    let reader = CaptureReader::from_reader(Cursor::new(bytes), "bench").expect("capture");
    let features = layout.extractor(TableConfig::default()).expect("layout");
    PacketRecords::new(PacketSource::new(reader), features)
}

/// Runs the engine over the capture; returns the metrics.
fn run(bytes: &[u8], layout: PacketLayout, model: &SavedModel) -> Arc<Metrics> {
    let metrics = Arc::new(Metrics::default());
    let stop = Arc::new(AtomicBool::new(false));
    let sides = model.clone().into_sides();
    let mut engine =
        Engine::new(engine::params(None, None), sides, metrics.clone(), stop).expect("engine");
    let mut sink = JsonLines::new(std::io::sink());
    let summary = engine
        .run(&mut source(bytes, layout), &mut sink)
        .expect("run");
    black_box(summary);
    metrics
}

/// Learns a model from the first packets, as `watch --grace` does.
fn learn(bytes: &[u8], layout: PacketLayout, detector: OnlineDetector) -> SavedModel {
    let groups = layout
        .extractor(TableConfig::default())
        .expect("layout")
        .groups();
    engine::learn(&mut source(bytes, layout), groups, detector, GRACE)
}

fn bench(c: &mut Criterion) {
    let (bytes, n) = capture();
    let mut models = Vec::new();
    for (lname, layout) in [
        ("victim", PacketLayout::Victim),
        ("floodwatch", PacketLayout::Floodwatch),
    ] {
        let ae = OnlineDetector::Autoencoder { epochs: 20 };
        models.push((lname, "ae", layout, learn(&bytes, layout, ae)));
        let kn = learn(&bytes, layout, OnlineDetector::Kitnet);
        models.push((lname, "kitnet", layout, kn));
    }
    let mut g = c.benchmark_group("watch");
    g.throughput(Throughput::Elements(n));
    g.sample_size(10);
    for (lname, dname, layout, model) in &models {
        g.bench_function(format!("{lname}_{dname}_end_to_end"), |b| {
            b.iter(|| run(&bytes, *layout, model))
        });
    }
    g.finish();
    for (lname, dname, layout, model) in &models {
        let m = run(&bytes, *layout, model);
        let p = |q| m.latency.quantile_bound(q).map_or(-1.0, |s| s * 1e6);
        println!(
            "{{\"layout\":\"{lname}\",\"detector\":\"{dname}\",\"packets\":{n},\"p50_latency_us_bound\":{},\"p99_latency_us_bound\":{},\"p999_latency_us_bound\":{}}}",
            p(0.5),
            p(0.99),
            p(0.999)
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
