//! 2-D t-SNE embeddings for the pictures (raw scaled input against the
//! autoencoder's latent codes), through the `bhtsne` crate's FIt-SNE
//! (FFT-accelerated interpolation, Linderman et al. 2019, multi-threaded).
//!
//! Beyond `max_points` rows a seeded subsample is embedded; the start layout
//! comes from the same seed. The forces are summed on several threads, so
//! two runs agree to rounding, not bit for bit.

use crate::{Error, Matrix, Result};
use rand::{seq::index, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// Hyperparameters of [`Tsne::embed`]; build with [`Tsne::params`].
#[derive(Debug, Clone, PartialEq)]
pub struct Tsne {
    perplexity: f32,
    epochs: usize,
    max_points: usize,
    seed: u64,
}

impl Default for Tsne {
    fn default() -> Self {
        Tsne {
            perplexity: 30.0,
            epochs: 500,
            max_points: 5000,
            seed: 42,
        }
    }
}

/// A 2-D embedding of some rows of a matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// Indices of the embedded rows in the input, ascending.
    pub rows: Vec<usize>,
    /// One `[x, y]` point per embedded row, in the order of `rows`.
    pub points: Vec<[f32; 2]>,
}

impl Tsne {
    /// Default parameters: perplexity 30, 500 epochs, at most 5,000 points, seed 42.
    pub fn params() -> Tsne {
        Tsne::default()
    }

    /// Perplexity, the effective number of neighbours. Default 30; must be
    /// >= 1. Lowered to `(n - 1) / 3` for n points when larger.
    pub fn perplexity(mut self, p: f32) -> Self {
        self.perplexity = p;
        self
    }

    /// Gradient-descent epochs (the first 250 with early exaggeration).
    /// Default 500, ample for FIt-SNE at this size; must be >= 1.
    pub fn epochs(mut self, n: usize) -> Self {
        self.epochs = n;
        self
    }

    /// Rows embedded at most (seeded subsample beyond it). Default 5,000;
    /// must be >= 4.
    pub fn max_points(mut self, n: usize) -> Self {
        self.max_points = n;
        self
    }

    /// Seed of the subsample and the start layout. Default 42; any value.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks the parameters.
    pub fn check(&self) -> Result<()> {
        if !(self.perplexity >= 1.0 && self.perplexity.is_finite()) {
            return Err(Error::Model(format!(
                "perplexity should be >= 1 and finite, but is {}",
                self.perplexity
            )));
        }
        if self.epochs < 1 {
            return Err(Error::Model(format!(
                "epochs should be >= 1, but is {}",
                self.epochs
            )));
        }
        if self.max_points < 4 {
            return Err(Error::Model(format!(
                "max_points should be >= 4, but is {}",
                self.max_points
            )));
        }
        Ok(())
    }

    /// Embeds the rows of `x` (at least 4 rows, all values finite) in 2-D.
    pub fn embed(&self, x: &Matrix) -> Result<Embedding> {
        self.check()?;
        if x.rows() < 4 || x.cols() == 0 {
            return Err(Error::Data(format!(
                "t-SNE needs at least 4 rows and 1 column, got {} x {}",
                x.rows(),
                x.cols()
            )));
        }
        if let Some(at) = x.as_slice().iter().position(|v| !v.is_finite()) {
            return Err(Error::Data(format!(
                "t-SNE: row {} column {} is not finite",
                at / x.cols(),
                at % x.cols()
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let rows = if x.rows() > self.max_points {
            let mut r = index::sample(&mut rng, x.rows(), self.max_points).into_vec();
            r.sort_unstable();
            r
        } else {
            (0..x.rows()).collect()
        };
        let samples: Vec<&[f32]> = rows.iter().map(|&r| x.row(r)).collect();
        let n = samples.len();
        // bhtsne panics unless n - 1 >= 3 * floor(perplexity).
        let perplexity = self.perplexity.min(((n - 1) / 3) as f32);
        // The usual t-SNE start: a tiny Gaussian blob.
        let normal = Normal::new(0.0f32, 1e-4).map_err(|e| Error::Model(e.to_string()))?;
        let start: Vec<f32> = (0..n * 2).map(|_| normal.sample(&mut rng)).collect();
        let metric = |a: &&[f32], b: &&[f32]| crate::model::classic::sq_dist(a, b).sqrt();
        let mut tsne = bhtsne::tSNE::<f32, &[f32], 2>::new(&samples);
        tsne.perplexity(perplexity)
            .epochs(self.epochs)
            .initial_embedding(start);
        // The FFT-interpolated gradient's grid grows with the embedding's
        // span, which few points with a tiny perplexity blow up (4 points
        // took minutes): below EXACT_BELOW points the exact gradient is cheap.
        let flat = if n < EXACT_BELOW {
            tsne.exact(metric).embedding()
        } else {
            tsne.fit_sne(metric).embedding()
        };
        if flat.len() != n * 2 || flat.iter().any(|v| !v.is_finite()) {
            return Err(Error::Model(
                "t-SNE diverged: the embedding has non-finite points".into(),
            ));
        }
        let points = flat.chunks_exact(2).map(|p| [p[0], p[1]]).collect();
        Ok(Embedding { rows, points })
    }
}

/// Fewer points than this are embedded with the exact O(n²) gradient.
const EXACT_BELOW: usize = 500;

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// Two well-separated blobs in 10-D, 60 rows each.
    fn blobs() -> Matrix {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut m = Matrix::with_cols(10);
        for c in 0..2 {
            for _ in 0..60 {
                let row: Vec<f32> = (0..10)
                    .map(|_| c as f32 * 10.0 + rng.random::<f32>())
                    .collect();
                m.push_row(&row);
            }
        }
        m
    }

    fn centroid(p: &[[f32; 2]]) -> [f32; 2] {
        let n = p.len() as f32;
        [
            p.iter().map(|q| q[0]).sum::<f32>() / n,
            p.iter().map(|q| q[1]).sum::<f32>() / n,
        ]
    }

    #[test]
    fn separated_blobs_stay_apart() {
        let e = Tsne::params().epochs(300).embed(&blobs()).unwrap();
        assert_eq!(e.rows.len(), 120);
        let (a, b) = (centroid(&e.points[..60]), centroid(&e.points[60..]));
        let gap = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
        let spread = e.points[..60]
            .iter()
            .map(|p| ((p[0] - a[0]).powi(2) + (p[1] - a[1]).powi(2)).sqrt())
            .sum::<f32>()
            / 60.0;
        assert!(gap > 2.0 * spread, "gap {gap} spread {spread}");
    }

    #[test]
    fn cap_subsamples_rows_and_small_sets_work() {
        let e = Tsne::params()
            .max_points(50)
            .epochs(50)
            .embed(&blobs())
            .unwrap();
        assert_eq!(e.rows.len(), 50);
        assert!(e.rows.windows(2).all(|w| w[0] < w[1]));
        let tiny = Matrix::from_vec(4, 1, vec![0.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(
            Tsne::params().epochs(20).embed(&tiny).unwrap().points.len(),
            4
        );
    }

    #[test]
    fn duplicated_rows_do_not_break_the_fit() {
        // Flow tables repeat rows a lot; identical points must not give NaN.
        let mut x = Matrix::zeros(60, 3);
        for i in 30..60 {
            x.row_mut(i)[0] = 1.0;
        }
        let e = Tsne::params().epochs(100).embed(&x).unwrap();
        assert!(e.points.iter().flatten().all(|v| v.is_finite()));
    }

    #[test]
    fn bad_params_and_data_are_rejected() {
        let e = Tsne::params().perplexity(0.5).embed(&blobs()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "perplexity should be >= 1 and finite, but is 0.5"
        );
        assert!(Tsne::params().epochs(0).embed(&blobs()).is_err());
        assert!(Tsne::params().max_points(3).embed(&blobs()).is_err());
        assert!(Tsne::params().embed(&Matrix::zeros(3, 2)).is_err());
        let nan = Matrix::from_vec(4, 1, vec![0.0, f32::NAN, 2.0, 3.0]).unwrap();
        assert!(Tsne::params().embed(&nan).is_err());
    }
}
