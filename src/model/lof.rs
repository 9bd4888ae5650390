//! Local Outlier Factor (Breunig et al., 2000) in novelty mode: fitted on
//! normal rows, it scores a new row by how much sparser its neighbourhood is
//! than its neighbours' own, with respect to the training set.
//!
//! The nearest neighbours are exact (brute force with a partial sort, spread
//! over all cores); training rows beyond `max_train_rows` are left out by a
//! seeded subsample, which bounds both memory and scoring time.
//!
//! ```
//! use floodwatch::{model::lof::LocalOutlierFactor, Matrix};
//! let x = Matrix::from_vec(6, 1, vec![0.0, 0.1, 0.2, 0.3, 0.4, 0.5]).unwrap();
//! let model = LocalOutlierFactor::params().n_neighbors(2).fit(&x).unwrap();
//! assert!(model.score(&[9.0]) > model.score(&[0.25]));
//! ```

use super::classic;
use super::detector::Detector;
use crate::{Error, Matrix, Result};
use serde::{Deserialize, Serialize};

/// Keeps the local reachability density finite on duplicated rows (as
/// scikit-learn does).
const LRD_EPS: f32 = 1e-10;

/// Hyperparameters of a [`LocalOutlierFactor`]; build with [`LocalOutlierFactor::params`].
#[derive(Debug, Clone, PartialEq)]
pub struct LocalOutlierFactorParams {
    n_neighbors: usize,
    max_train_rows: usize,
    seed: u64,
}

impl Default for LocalOutlierFactorParams {
    fn default() -> Self {
        LocalOutlierFactorParams {
            n_neighbors: 20,
            max_train_rows: 5000,
            seed: 42,
        }
    }
}

impl LocalOutlierFactorParams {
    /// Neighbours k. Default 20; must be >= 1 and below the training row count.
    pub fn n_neighbors(mut self, k: usize) -> Self {
        self.n_neighbors = k;
        self
    }

    /// Training rows kept (seeded subsample beyond it); scoring time grows
    /// linearly with it. Default 5,000; must be > `n_neighbors`.
    pub fn max_train_rows(mut self, n: usize) -> Self {
        self.max_train_rows = n;
        self
    }

    /// Seed of the subsample. Default 42; any value.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks the parameters without fitting.
    pub fn check(&self) -> Result<()> {
        if self.n_neighbors < 1 {
            return Err(Error::Model(format!(
                "n_neighbors should be >= 1, but is {}",
                self.n_neighbors
            )));
        }
        if self.max_train_rows <= self.n_neighbors {
            return Err(Error::Model(format!(
                "max_train_rows should be > n_neighbors ({}), but is {}",
                self.n_neighbors, self.max_train_rows
            )));
        }
        Ok(())
    }

    /// Fits on `x`, rows of normal traffic (more rows than `n_neighbors`, all
    /// values finite): the k-distance and local reachability density of every
    /// kept training row.
    pub fn fit(&self, x: &Matrix) -> Result<LocalOutlierFactor> {
        self.check()?;
        let k = self.n_neighbors;
        classic::check_training("local outlier factor", x, k + 1)?;
        let train = classic::subsample(x, self.max_train_rows, self.seed);
        let n = train.rows();
        let mut model = LocalOutlierFactor {
            k,
            train,
            k_dist: vec![0.0; n],
            lrd: vec![0.0; n],
        };
        // Pass 1: each training row's neighbours among the others.
        let mut neighbours = vec![(0u32, 0.0f32); n * k];
        std::thread::scope(|s| {
            let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
            let per = n.div_ceil(threads).max(1);
            for (c, chunk) in neighbours.chunks_mut(per * k).enumerate() {
                let model = &model;
                s.spawn(move || {
                    let mut dist = vec![(0.0, 0); n];
                    for (j, out) in chunk.chunks_mut(k).enumerate() {
                        let i = c * per + j;
                        model.knn(model.train.row(i), Some(i), &mut dist, out);
                    }
                });
            }
        });
        for (i, nb) in neighbours.chunks(k).enumerate() {
            model.k_dist[i] = nb[k - 1].1;
        }
        // Pass 2: densities, which need every neighbour's k-distance.
        for (i, nb) in neighbours.chunks(k).enumerate() {
            model.lrd[i] = model.local_density(nb);
        }
        Ok(model)
    }
}

/// A fitted Local Outlier Factor model (it keeps its training rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalOutlierFactor {
    k: usize,
    train: Matrix,
    /// Distance from each training row to its k-th nearest other training row.
    k_dist: Vec<f32>,
    /// Local reachability density of each training row.
    lrd: Vec<f32>,
}

impl LocalOutlierFactor {
    /// Default parameters: k = 20, at most 5,000 training rows, seed 42.
    pub fn params() -> LocalOutlierFactorParams {
        LocalOutlierFactorParams::default()
    }

    /// Number of columns the model was fitted on.
    pub fn n_features(&self) -> usize {
        self.train.cols()
    }

    /// Training rows kept after the subsample.
    pub fn n_train(&self) -> usize {
        self.train.rows()
    }

    /// LOF of `row` against the training set: about 1 inside a cluster of
    /// normal rows, larger the more isolated `row` is.
    ///
    /// # Panics
    /// If `row.len()` differs from [`LocalOutlierFactor::n_features`].
    pub fn score(&self, row: &[f32]) -> f32 {
        let mut dist = vec![(0.0, 0); self.train.rows()];
        let mut nb = vec![(0, 0.0); self.k];
        self.score_with(row, &mut dist, &mut nb)
    }

    /// Scores every row of `x` into `out` (one slot per row), on all cores.
    pub fn score_batch(&self, x: &Matrix, out: &mut [f32]) -> Result<()> {
        classic::check_batch("local outlier factor", self.n_features(), x, out)?;
        let scratch = || (vec![(0.0, 0); self.train.rows()], vec![(0, 0.0); self.k]);
        classic::par_score(x, out, scratch, |(dist, nb), row| {
            self.score_with(row, dist, nb)
        });
        Ok(())
    }

    fn score_with(&self, row: &[f32], dist: &mut [(f32, u32)], nb: &mut [(u32, f32)]) -> f32 {
        assert_eq!(
            row.len(),
            self.n_features(),
            "row width must match the model"
        );
        self.knn(row, None, dist, nb);
        let lrd = self.local_density(nb);
        let mean_lrd = nb.iter().map(|&(j, _)| self.lrd[j as usize]).sum::<f32>() / self.k as f32;
        mean_lrd / lrd
    }

    /// Writes the k nearest training rows to `row` (index, distance) in
    /// ascending distance into `out`, skipping training row `skip`; `dist` is
    /// scratch of one slot per training row.
    fn knn(
        &self,
        row: &[f32],
        skip: Option<usize>,
        dist: &mut [(f32, u32)],
        out: &mut [(u32, f32)],
    ) {
        for (j, (d, t)) in dist.iter_mut().zip(self.train.iter_rows()).enumerate() {
            *d = (classic::sq_dist(row, t), j as u32);
        }
        if let Some(i) = skip {
            dist[i].0 = f32::INFINITY;
        }
        let k = out.len();
        let by_dist = |a: &(f32, u32), b: &(f32, u32)| a.0.total_cmp(&b.0);
        dist.select_nth_unstable_by(k - 1, by_dist);
        dist[..k].sort_unstable_by(by_dist);
        for (o, &(d, j)) in out.iter_mut().zip(&dist[..k]) {
            *o = (j, d.sqrt());
        }
    }

    /// Local reachability density from a point's neighbours: the inverse of
    /// the mean reachability distance `max(k_dist(o), d(p, o))`.
    fn local_density(&self, nb: &[(u32, f32)]) -> f32 {
        let reach: f32 = nb
            .iter()
            .map(|&(j, d)| d.max(self.k_dist[j as usize]))
            .sum();
        1.0 / (reach / nb.len() as f32 + LRD_EPS)
    }
}

/// Fits with the default parameters and `seed` (see [`Fit`](super::detector::Fit)).
pub(crate) fn fit(x: &Matrix, seed: u64) -> Result<Box<dyn Detector>> {
    Ok(Box::new(LocalOutlierFactor::params().seed(seed).fit(x)?))
}

impl Detector for LocalOutlierFactor {
    fn score_batch(&self, x: &Matrix, out: &mut [f32]) -> Result<()> {
        LocalOutlierFactor::score_batch(self, x, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn cloud(n: usize, seed: u64) -> Matrix {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Mean of four uniforms: a bell-shaped cloud with a dense middle.
        let data = (0..n * 3)
            .map(|_| (0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>() / 2.0)
            .collect();
        Matrix::from_vec(n, 3, data).unwrap()
    }

    #[test]
    fn outlier_scores_higher_than_inliers() {
        let x = cloud(400, 1);
        let model = LocalOutlierFactor::params().fit(&x).unwrap();
        let outlier = model.score(&[4.0, 4.0, -4.0]);
        let inlier = model.score(&[0.0, 0.0, 0.0]);
        assert!(outlier > 3.0, "outlier {outlier}");
        assert!(inlier < 1.5, "inlier {inlier}");
        let test = cloud(300, 2);
        let mut out = vec![0.0; 300];
        model.score_batch(&test, &mut out).unwrap();
        assert!(out.iter().all(|&s| s < outlier));
        assert_eq!(out[7], model.score(test.row(7)));
    }

    #[test]
    fn cap_subsamples_with_the_seed() {
        let x = cloud(400, 1);
        let a = LocalOutlierFactor::params()
            .max_train_rows(100)
            .fit(&x)
            .unwrap();
        let b = LocalOutlierFactor::params()
            .max_train_rows(100)
            .fit(&x)
            .unwrap();
        let c = LocalOutlierFactor::params()
            .max_train_rows(100)
            .seed(9)
            .fit(&x)
            .unwrap();
        assert_eq!(a.n_train(), 100);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn duplicated_rows_stay_finite() {
        let x = Matrix::zeros(30, 2);
        let model = LocalOutlierFactor::params().n_neighbors(5).fit(&x).unwrap();
        assert!(model.score(&[0.0, 0.0]).is_finite());
        assert!(model.score(&[1.0, 0.0]) > 1e6);
    }

    #[test]
    fn bad_params_and_data_are_rejected() {
        let x = cloud(10, 1);
        let e = LocalOutlierFactor::params()
            .n_neighbors(0)
            .fit(&x)
            .unwrap_err();
        assert_eq!(e.to_string(), "n_neighbors should be >= 1, but is 0");
        let e = LocalOutlierFactor::params()
            .max_train_rows(20)
            .fit(&x)
            .unwrap_err();
        assert!(e
            .to_string()
            .contains("max_train_rows should be > n_neighbors"));
        // 10 rows cannot give 20 neighbours.
        assert!(LocalOutlierFactor::params().fit(&x).is_err());
        let model = LocalOutlierFactor::params().n_neighbors(3).fit(&x).unwrap();
        assert!(model.score_batch(&Matrix::zeros(1, 2), &mut [0.0]).is_err());
        let nan = Matrix::from_vec(1, 3, vec![0.0, f32::NAN, 0.0]).unwrap();
        assert!(model.score_batch(&nan, &mut [0.0]).is_err());
    }
}
