//! Pieces shared by the classical detectors (Isolation Forest, Local Outlier
//! Factor, One-Class SVM): input checks, the deterministic subsample that caps
//! their training rows, squared distances and batch scoring on all cores.

use crate::{Error, Matrix, Result};
use rand::{seq::index, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Below this many rows a batch is scored on the calling thread: spawning costs
/// more than it saves.
const MIN_ROWS_PER_THREAD: usize = 256;

/// Checks that `x` has at least `min_rows` rows, at least one column and only
/// finite values; `model` names the detector in the message.
pub(crate) fn check_training(model: &str, x: &Matrix, min_rows: usize) -> Result<()> {
    if x.cols() == 0 {
        return Err(Error::Data(format!(
            "{model}: training data has no columns"
        )));
    }
    if x.rows() < min_rows {
        return Err(Error::Data(format!(
            "{model}: needs at least {min_rows} training rows, got {}",
            x.rows()
        )));
    }
    check_finite(model, x)
}

/// Checks that every value of `x` is finite, naming the first offending cell.
pub(crate) fn check_finite(model: &str, x: &Matrix) -> Result<()> {
    match x.as_slice().iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(at) => Err(Error::Data(format!(
            "{model}: row {} column {} is not finite ({})",
            at / x.cols(),
            at % x.cols(),
            x.as_slice()[at]
        ))),
    }
}

/// Checks a batch to score against the model's width and the output length.
pub(crate) fn check_batch(model: &str, n_features: usize, x: &Matrix, out: &[f32]) -> Result<()> {
    if x.cols() != n_features {
        return Err(Error::Data(format!(
            "{model}: model was fitted on {n_features} columns, data has {}",
            x.cols()
        )));
    }
    if out.len() != x.rows() {
        return Err(Error::Data(format!(
            "{model}: output has {} slots for {} rows",
            out.len(),
            x.rows()
        )));
    }
    check_finite(model, x)
}

/// At most `cap` rows of `x`, chosen uniformly without replacement by a
/// generator seeded with `seed`, kept in their original order; all rows when
/// `x` has no more than `cap`.
pub(crate) fn subsample(x: &Matrix, cap: usize, seed: u64) -> Matrix {
    if x.rows() <= cap {
        return x.clone();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows = index::sample(&mut rng, x.rows(), cap).into_vec();
    rows.sort_unstable();
    x.select_rows(&rows)
}

/// Squared Euclidean distance. Eight independent accumulators let the compiler
/// vectorise the loop without reassociating floating-point sums itself.
pub(crate) fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            let d = x[l] - y[l];
            acc[l] += d * d;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Writes `score(scratch, row)` for every row of `x` into `out`, splitting the
/// rows over the available cores; each thread makes its own `scratch` with
/// `make_scratch` (a distance buffer, say). `out.len()` must equal `x.rows()`.
pub(crate) fn par_score<S, M, F>(x: &Matrix, out: &mut [f32], make_scratch: M, score: F)
where
    M: Fn() -> S + Sync,
    F: Fn(&mut S, &[f32]) -> f32 + Sync,
{
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = x.rows().div_ceil(threads).max(MIN_ROWS_PER_THREAD);
    let run = |first: usize, chunk: &mut [f32]| {
        let mut scratch = make_scratch();
        for (i, slot) in chunk.iter_mut().enumerate() {
            *slot = score(&mut scratch, x.row(first + i));
        }
    };
    if per_thread >= x.rows() {
        run(0, out);
        return;
    }
    std::thread::scope(|s| {
        for (c, chunk) in out.chunks_mut(per_thread).enumerate() {
            let run = &run;
            s.spawn(move || run(c * per_thread, chunk));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_checks_name_the_problem() {
        let ok = Matrix::from_vec(2, 2, vec![1., 2., 3., 4.]).unwrap();
        assert!(check_training("m", &ok, 2).is_ok());
        let e = check_training("m", &ok, 3).unwrap_err().to_string();
        assert!(e.contains("at least 3"), "{e}");
        let nan = Matrix::from_vec(2, 2, vec![1., 2., f32::NAN, 4.]).unwrap();
        let e = check_training("m", &nan, 1).unwrap_err().to_string();
        assert!(e.contains("row 1 column 0"), "{e}");
        let e = check_training("m", &Matrix::with_cols(0), 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no columns"), "{e}");
    }

    #[test]
    fn batch_checks_width_and_output() {
        let x = Matrix::zeros(3, 2);
        assert!(check_batch("m", 2, &x, &[0.0; 3]).is_ok());
        assert!(check_batch("m", 3, &x, &[0.0; 3]).is_err());
        assert!(check_batch("m", 2, &x, &[0.0; 2]).is_err());
    }

    #[test]
    fn subsample_is_seeded_ordered_and_capped() {
        let x = Matrix::from_vec(100, 1, (0..100).map(|v| v as f32).collect()).unwrap();
        let a = subsample(&x, 10, 7);
        assert_eq!(a.rows(), 10);
        assert_eq!(a, subsample(&x, 10, 7));
        assert_ne!(a, subsample(&x, 10, 8));
        assert!(a.as_slice().windows(2).all(|w| w[0] < w[1]));
        assert_eq!(subsample(&x, 200, 7), x);
    }

    #[test]
    fn sq_dist_matches_naive_sum() {
        let a: Vec<f32> = (0..19).map(|v| v as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|v| (v * v) as f32 * 0.1).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        assert!((sq_dist(&a, &b) - naive).abs() <= 1e-3 * naive);
    }

    #[test]
    fn par_score_fills_every_slot_in_order() {
        let x = Matrix::from_vec(1000, 1, (0..1000).map(|v| v as f32).collect()).unwrap();
        let mut out = vec![-1.0; 1000];
        par_score(
            &x,
            &mut out,
            || 0usize,
            |n, r| {
                *n += 1;
                r[0] * 2.0
            },
        );
        assert!(out.iter().enumerate().all(|(i, v)| *v == i as f32 * 2.0));
    }
}
