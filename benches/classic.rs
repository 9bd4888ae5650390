//! Fit and scoring time of the classical detectors at eval size (8,000
//! normal training rows x 80 columns, 10,000 test rows), and t-SNE of 5,000
//! points. Synthetic data: a seeded bell-shaped cloud with a few correlated
//! columns, like scaled flow features.
//!
//! `cargo bench --bench classic`

use criterion::{criterion_group, criterion_main, Criterion};
use floodwatch::model::{iforest::IsolationForest, lof::LocalOutlierFactor, ocsvm::OneClassSvm};
use floodwatch::Matrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

const COLS: usize = 80;

fn data(rows: usize, seed: u64) -> Matrix {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut m = Matrix::with_cols(COLS);
    let mut row = vec![0.0f32; COLS];
    for _ in 0..rows {
        let base: f32 = rng.random::<f32>();
        for (c, v) in row.iter_mut().enumerate() {
            let noise = (0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>() / 4.0;
            *v = if c % 4 == 0 {
                base + 0.1 * noise
            } else {
                noise
            };
        }
        m.push_row(&row);
    }
    m
}

fn detectors(c: &mut Criterion) {
    let train = data(8000, 1);
    let test = data(10_000, 2);
    let mut out = vec![0.0f32; test.rows()];
    let mut g = c.benchmark_group("classic_8000x80");
    g.sample_size(10).measurement_time(Duration::from_secs(10));

    g.bench_function("iforest_fit", |b| {
        b.iter(|| IsolationForest::params().fit(&train))
    });
    let m = IsolationForest::params().fit(&train).expect("fit");
    g.bench_function("iforest_score_10000", |b| {
        b.iter(|| m.score_batch(&test, &mut out))
    });

    g.bench_function("lof_fit", |b| {
        b.iter(|| LocalOutlierFactor::params().fit(&train))
    });
    let m = LocalOutlierFactor::params().fit(&train).expect("fit");
    g.bench_function("lof_score_10000", |b| {
        b.iter(|| m.score_batch(&test, &mut out))
    });

    g.bench_function("ocsvm_fit", |b| {
        b.iter(|| OneClassSvm::params().fit(&train))
    });
    let m = OneClassSvm::params().fit(&train).expect("fit");
    eprintln!(
        "ocsvm: {} support vectors, {} iterations, converged {}",
        m.n_support(),
        m.iterations(),
        m.converged()
    );
    g.bench_function("ocsvm_score_10000", |b| {
        b.iter(|| m.score_batch(&test, &mut out))
    });
    g.finish();
}

#[cfg(feature = "plot")]
fn tsne(c: &mut Criterion) {
    use floodwatch::report::tsne::Tsne;
    let x = data(5000, 3);
    let mut g = c.benchmark_group("tsne");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    g.bench_function("fit_sne_5000x80", |b| b.iter(|| Tsne::params().embed(&x)));
    g.finish();
}

#[cfg(not(feature = "plot"))]
fn tsne(_: &mut Criterion) {}

criterion_group!(benches, detectors, tsne);
criterion_main!(benches);
