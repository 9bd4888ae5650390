//! Autoencoder inference: batch scoring (the `test` path), one record at a
//! time (the streaming path), and the feature scaling before them.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use floodwatch::features::scale::ScalerParams;
use floodwatch::model::neighbours::WEIGHT;
use floodwatch::model::AutoencoderParams;
use floodwatch::Matrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const COLS: usize = 40;
/// Rows per `score_batch` call in `floodwatch test`.
const BATCH: usize = 4096;

/// Rows in [0, 1] driven by 5 hidden factors, as `floodwatch bench`'s table.
fn rows(n: usize, seed: u64) -> Matrix {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mix: Vec<[f32; 5]> = (0..COLS)
        .map(|_| std::array::from_fn(|_| rng.random_range(-1.0..1.0)))
        .collect();
    let mut m = Matrix::with_cols(COLS);
    let mut row = [0.0; COLS];
    for _ in 0..n {
        let z: [f32; 5] = std::array::from_fn(|_| rng.random_range(0.0..1.0));
        for (v, w) in row.iter_mut().zip(&mix) {
            *v = (w.iter().zip(&z).map(|(a, b)| a * b).sum::<f32>() + 2.0) / 4.0;
        }
        m.push_row(&row);
    }
    m
}

fn inference(c: &mut Criterion) {
    let train = rows(2_000, 1);
    let (ae, _) = AutoencoderParams::new()
        .epochs(1)
        .fit(&train, None, &mut |_| {})
        .expect("training on generated rows");
    let x = rows(BATCH, 2);
    let mut g = c.benchmark_group("autoencoder");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut scores = vec![0.0; BATCH];
    g.bench_function("score_batch_4096", |b| {
        b.iter(|| ae.score_batch(&x, &mut scores))
    });
    g.throughput(Throughput::Elements(1));
    let mut ws = Default::default();
    g.bench_function("score_one", |b| b.iter(|| ae.score_with(x.row(7), &mut ws)));
    // The default score: the latent distance to 2,000 references besides.
    let mut errors = vec![0.0; train.rows()];
    ae.score_batch(&train, &mut errors);
    let mut near = ae.clone();
    near.add_neighbours(&train, None, &errors, WEIGHT)
        .expect("references from generated rows");
    g.bench_function("score_one_neighbours", |b| {
        b.iter(|| near.score_with(x.row(7), &mut ws))
    });
    g.finish();

    let scaler = ScalerParams::default()
        .fit(&train, &[false; COLS])
        .expect("fitting on generated rows");
    let mut g = c.benchmark_group("scaler");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("transform_4096", |b| {
        b.iter_batched_ref(
            || x.clone(),
            |m| scaler.transform(m),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, inference);
criterion_main!(benches);
