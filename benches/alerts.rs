//! Alert logic throughput: vote, episodes and JSON alerts per scored record.

use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use floodwatch::detect::alert::{FeatureShare, FlowContext, Proto, ScoredRecord};
use floodwatch::detect::episode::TrackerParams;
use floodwatch::detect::sink::JsonLines;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BATCH: usize = 100_000;

const TOP: [FeatureShare; 2] = [
    FeatureShare {
        feature: 3,
        share: 0.7,
    },
    FeatureShare {
        feature: 1,
        share: 0.2,
    },
];

/// Benign traffic to 10,000 hosts from 50,000 sources, 2 % false positives,
/// and a flood on host 7 in one record of five; 10 µs apart.
fn stream(seed: u64) -> Vec<ScoredRecord<'static>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..BATCH)
        .map(|k| {
            let flood = k % 5 == 0;
            let dst = if flood {
                7
            } else {
                rng.random_range(0..10_000u32)
            };
            let src = rng.random_range(0..50_000u32);
            let anomalous = flood || rng.random_bool(0.02);
            ScoredRecord {
                timestamp: 1e9 + k as f64 * 1e-5,
                score: if anomalous { 3.0 } else { 0.1 },
                is_anomaly: anomalous,
                flow: FlowContext {
                    src_ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | src)),
                    src_port: 1234,
                    dest_ip: IpAddr::V4(Ipv4Addr::from(0xc0a8_0000 | dst)),
                    dest_port: 80,
                    proto: Proto::Tcp,
                    bytes: 60,
                    tcp_flags: 0x02,
                    packets: 1,
                    exporter: None,
                },
                top_features: &TOP,
                family: None,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let data = stream(1);
    let mut g = c.benchmark_group("alerts");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut tracker = TrackerParams::new().build().unwrap();
    let mut sink = JsonLines::new(std::io::sink());
    g.bench_function("observe", |b| {
        b.iter(|| {
            let mut alerting = 0u64;
            for r in &data {
                alerting += u64::from(tracker.observe(r, &mut sink).unwrap_or(false));
            }
            alerting
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
