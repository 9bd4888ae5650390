//! The batch detector interface: fitted on normal rows only, it scores a
//! batch of rows, higher = more anomalous. Each detector's file implements
//! [`Detector`] and a [`Fit`] function; one line in
//! [`DETECTORS`](super::DETECTORS) registers it, and `eval` then compares it
//! with the others.

use crate::{Matrix, Result};

/// A detector fitted on normal rows.
pub trait Detector: Send + Sync {
    /// Scores every row of `x` into `out` (one slot per row); higher means
    /// more anomalous. Errors: a width other than the fitted one, a
    /// non-finite value, `out` of another length.
    fn score_batch(&self, x: &Matrix, out: &mut [f32]) -> Result<()>;

    /// Scores of every row of `x`.
    fn scores(&self, x: &Matrix) -> Result<Vec<f32>> {
        let mut out = vec![0.0; x.rows()];
        self.score_batch(x, &mut out)?;
        Ok(out)
    }
}

/// Fits a detector with its default parameters on normal rows (scaled as
/// the autoencoder's), seeded.
pub type Fit = fn(x: &Matrix, seed: u64) -> Result<Box<dyn Detector>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DETECTORS;

    /// Normal rows spread over a small cube, its centre and a far row.
    fn data() -> (Matrix, Matrix) {
        let mut state = 12345u64;
        let train: Vec<f32> = (0..1200)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                0.4 + 0.2 * (state >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect();
        let train = Matrix::from_vec(400, 3, train).unwrap();
        let test = Matrix::from_vec(2, 3, vec![0.5, 0.5, 0.5, 3.0, -2.0, 4.0]).unwrap();
        (train, test)
    }

    #[test]
    fn every_registered_detector_ranks_a_far_row_above_a_normal_one() {
        let (train, test) = data();
        for (name, fit) in DETECTORS {
            let d = fit(&train, 7).unwrap();
            let s = d.scores(&test).unwrap();
            assert!(s[1] > s[0], "{name}: {s:?}");
            let wrong = Matrix::from_vec(1, 2, vec![0.5, 0.5]).unwrap();
            assert!(d.scores(&wrong).is_err(), "{name}: a narrower row");
        }
    }
}
