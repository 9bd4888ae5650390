//! KitNET per-record throughput over 100 features, in each phase.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use floodwatch::model::kitnet::{KitNet, KitNetParams};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const FEATURES: usize = 100;
const BATCH: usize = 1_000;

/// Records of 10 correlated groups of 10 features.
fn records(n: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut x = Vec::with_capacity(FEATURES);
            for g in 0..FEATURES / 10 {
                let z: f64 = rng.random();
                for j in 0..10 {
                    x.push((g + 1) as f64 * z + 0.05 * rng.random::<f64>() + j as f64);
                }
            }
            x
        })
        .collect()
}

/// Kitsune-py's 100 features of the shared benign capture, when present.
fn kitsune_rows() -> Option<Vec<Vec<f64>>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/golden/kitsune/mirai_first2000.pcap.features.csv.gz");
    let Ok(file) = std::fs::File::open(&path) else {
        eprintln!("skipping real features: {} not found", path.display());
        return None;
    };
    let mut reader = csv::Reader::from_reader(flate2::read::GzDecoder::new(file));
    let rows: Vec<Vec<f64>> = reader
        .records()
        .map_while(Result::ok)
        .map(|r| r.iter().skip(2).filter_map(|v| v.parse().ok()).collect())
        .filter(|r: &Vec<f64>| r.len() == FEATURES)
        .collect();
    Some(rows)
}

fn feed(net: &mut KitNet, data: &[Vec<f64>]) -> f64 {
    let mut sum = 0.0;
    for x in data {
        sum += net.process(x).ok().flatten().unwrap_or(0.0);
    }
    sum
}

fn bench(c: &mut Criterion) {
    let data = records(BATCH, 2);
    let mut g = c.benchmark_group("kitnet_100_features");
    g.throughput(Throughput::Elements(BATCH as u64));

    let mapping = KitNetParams::new()
        .fm_grace(u64::MAX / 2)
        .build(FEATURES)
        .unwrap();
    g.bench_function("process_mapping", |b| {
        b.iter_batched_ref(
            || mapping.clone(),
            |n| feed(n, &data),
            BatchSize::LargeInput,
        )
    });

    let mut training = KitNetParams::new()
        .fm_grace(5_000)
        .ad_grace(u64::MAX / 2)
        .build(FEATURES)
        .unwrap();
    feed(&mut training, &records(5_000, 1));
    g.bench_function("process_training", |b| {
        b.iter(|| feed(&mut training, &data))
    });

    let mut trained = KitNetParams::new()
        .fm_grace(5_000)
        .ad_grace(50_000)
        .build(FEATURES)
        .unwrap();
    feed(&mut trained, &records(55_000, 1));
    assert!(trained.is_trained());
    g.bench_function("process_executing", |b| {
        b.iter(|| feed(&mut trained, &data))
    });

    if let Some(rows) = kitsune_rows() {
        let mut real = KitNetParams::new()
            .fm_grace(200)
            .ad_grace(1_000)
            .build(FEATURES)
            .unwrap();
        feed(&mut real, &rows[..1_200]);
        let held_out = &rows[1_200..];
        g.throughput(Throughput::Elements(held_out.len() as u64));
        g.bench_function("process_executing_kitsune_features", |b| {
            b.iter(|| feed(&mut real, held_out))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
