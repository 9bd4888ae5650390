//! Isolation Forest (Liu, Ting and Zhou, 2008): random axis-parallel splits
//! isolate anomalies in fewer steps than normal points, so a short mean path
//! length over many random trees means an anomaly.
//!
//! ```
//! use floodwatch::{model::iforest::IsolationForest, Matrix};
//! let x = Matrix::from_vec(4, 1, vec![0.0, 0.1, 0.2, 0.3]).unwrap();
//! let model = IsolationForest::params().n_trees(20).fit(&x).unwrap();
//! assert!(model.score(&[9.0]) > model.score(&[0.15]));
//! ```

use super::classic;
use super::detector::Detector;
use crate::{Error, Matrix, Result};
use rand::{seq::index, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Euler-Mascheroni constant, for the harmonic number in [`avg_path_length`].
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// Hyperparameters of an [`IsolationForest`]; build with [`IsolationForest::params`].
#[derive(Debug, Clone, PartialEq)]
pub struct IsolationForestParams {
    n_trees: usize,
    max_samples: usize,
    seed: u64,
}

impl Default for IsolationForestParams {
    fn default() -> Self {
        IsolationForestParams {
            n_trees: 100,
            max_samples: 256,
            seed: 42,
        }
    }
}

impl IsolationForestParams {
    /// Number of trees. Default 100; must be >= 1.
    pub fn n_trees(mut self, n: usize) -> Self {
        self.n_trees = n;
        self
    }

    /// Rows drawn (without replacement) to grow each tree, psi in the paper.
    /// Default 256; must be >= 2. All rows are used when there are fewer.
    pub fn max_samples(mut self, n: usize) -> Self {
        self.max_samples = n;
        self
    }

    /// Seed of the random generator. Default 42; any value.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks the parameters without fitting.
    pub fn check(&self) -> Result<()> {
        if self.n_trees < 1 {
            return Err(Error::Model(format!(
                "n_trees should be >= 1, but is {}",
                self.n_trees
            )));
        }
        if self.max_samples < 2 {
            return Err(Error::Model(format!(
                "max_samples should be >= 2, but is {}",
                self.max_samples
            )));
        }
        Ok(())
    }

    /// Grows the forest on `x`, rows of normal traffic (at least two rows, all
    /// values finite).
    pub fn fit(&self, x: &Matrix) -> Result<IsolationForest> {
        self.check()?;
        classic::check_training("isolation forest", x, 2)?;
        let psi = self.max_samples.min(x.rows());
        let height_limit = (psi as f64).log2().ceil() as usize;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let trees = (0..self.n_trees)
            .map(|_| {
                let mut rows = index::sample(&mut rng, x.rows(), psi).into_vec();
                let mut tree = Tree { nodes: Vec::new() };
                tree.grow(x, &mut rows, 0, height_limit, &mut rng);
                tree
            })
            .collect();
        Ok(IsolationForest {
            n_features: x.cols(),
            norm: avg_path_length(psi),
            trees,
        })
    }
}

/// A fitted Isolation Forest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsolationForest {
    n_features: usize,
    /// c(psi): the mean path length the scores are normalised by.
    norm: f64,
    trees: Vec<Tree>,
}

impl IsolationForest {
    /// Default parameters: 100 trees of 256 rows, seed 42.
    pub fn params() -> IsolationForestParams {
        IsolationForestParams::default()
    }

    /// Number of columns the forest was grown on.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Anomaly score `2^(-E[h(x)] / c(psi))` in (0, 1]: near 1 for anomalies,
    /// well under 0.5 for normal rows.
    ///
    /// # Panics
    /// If `row.len()` differs from [`IsolationForest::n_features`].
    pub fn score(&self, row: &[f32]) -> f32 {
        assert_eq!(row.len(), self.n_features, "row width must match the model");
        let total: f64 = self.trees.iter().map(|t| t.path_length(row)).sum();
        let mean = total / self.trees.len() as f64;
        2f64.powf(-mean / self.norm) as f32
    }

    /// Scores every row of `x` into `out` (one slot per row), on all cores.
    pub fn score_batch(&self, x: &Matrix, out: &mut [f32]) -> Result<()> {
        classic::check_batch("isolation forest", self.n_features, x, out)?;
        classic::par_score(x, out, || (), |_, row| self.score(row));
        Ok(())
    }
}

/// One isolation tree, nodes in a flat vector (root first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tree {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Node {
    /// Rows with `row[feature] < threshold` go left.
    Split {
        feature: u32,
        threshold: f32,
        left: u32,
        right: u32,
    },
    /// An external node holding `size` training rows.
    Leaf { size: u32 },
}

impl Tree {
    /// Grows the subtree of `rows` at `depth` and returns its node index.
    fn grow(
        &mut self,
        x: &Matrix,
        rows: &mut [usize],
        depth: usize,
        height_limit: usize,
        rng: &mut ChaCha8Rng,
    ) -> u32 {
        let at = self.nodes.len() as u32;
        let leaf = Node::Leaf {
            size: rows.len() as u32,
        };
        self.nodes.push(leaf);
        if depth >= height_limit || rows.len() <= 1 {
            return at;
        }
        // Only features that vary among these rows can split them.
        let ranges: Vec<(u32, f32, f32)> = (0..x.cols())
            .filter_map(|f| {
                let (lo, hi) = rows.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &r| {
                    let v = x.row(r)[f];
                    (lo.min(v), hi.max(v))
                });
                (hi > lo).then_some((f as u32, lo, hi))
            })
            .collect();
        if ranges.is_empty() {
            return at;
        }
        let (feature, lo, hi) = ranges[rng.random_range(0..ranges.len())];
        // Strictly above `lo` so that the left side is never empty.
        let threshold = (lo + rng.random::<f32>() * (hi - lo)).clamp(next_up(lo), hi);
        let mid = partition(rows, |r| x.row(r)[feature as usize] < threshold);
        let (l, r) = rows.split_at_mut(mid);
        let left = self.grow(x, l, depth + 1, height_limit, rng);
        let right = self.grow(x, r, depth + 1, height_limit, rng);
        self.nodes[at as usize] = Node::Split {
            feature,
            threshold,
            left,
            right,
        };
        at
    }

    /// h(x): edges from the root to x's leaf plus c(size) for the rows the leaf
    /// left unsplit.
    fn path_length(&self, row: &[f32]) -> f64 {
        let mut node = 0usize;
        let mut depth = 0.0;
        loop {
            match self.nodes[node] {
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    node = if row[feature as usize] < threshold {
                        left
                    } else {
                        right
                    } as usize;
                    depth += 1.0;
                }
                Node::Leaf { size } => return depth + avg_path_length(size as usize),
            }
        }
    }
}

/// The smallest f32 greater than `v` (finite `v`).
fn next_up(v: f32) -> f32 {
    if v == 0.0 {
        f32::from_bits(1)
    } else if v > 0.0 {
        f32::from_bits(v.to_bits() + 1)
    } else {
        f32::from_bits(v.to_bits() - 1)
    }
}

/// Moves the rows satisfying `left` to the front; returns how many there are.
fn partition(rows: &mut [usize], left: impl Fn(usize) -> bool) -> usize {
    let mut mid = 0;
    for i in 0..rows.len() {
        if left(rows[i]) {
            rows.swap(i, mid);
            mid += 1;
        }
    }
    mid
}

/// c(n): the mean path length of an unsuccessful search in a binary search
/// tree of n points, `2 H(n-1) - 2 (n-1) / n`.
fn avg_path_length(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let m = (n - 1) as f64;
            2.0 * (m.ln() + EULER_GAMMA) - 2.0 * m / n as f64
        }
    }
}

/// Fits with the default parameters and `seed` (see [`Fit`](super::detector::Fit)).
pub(crate) fn fit(x: &Matrix, seed: u64) -> Result<Box<dyn Detector>> {
    Ok(Box::new(IsolationForest::params().seed(seed).fit(x)?))
}

impl Detector for IsolationForest {
    fn score_batch(&self, x: &Matrix, out: &mut [f32]) -> Result<()> {
        IsolationForest::score_batch(self, x, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2-D Gaussian-ish cloud around the origin from a seeded generator.
    fn cloud(n: usize) -> Matrix {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        // Mean of four uniforms: a bell-shaped cloud with a dense middle.
        let data = (0..n * 2)
            .map(|_| (0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>() / 2.0)
            .collect();
        Matrix::from_vec(n, 2, data).unwrap()
    }

    #[test]
    fn outlier_scores_higher_than_inliers() {
        let x = cloud(500);
        let model = IsolationForest::params().fit(&x).unwrap();
        let outlier = model.score(&[5.0, -5.0]);
        let inlier = model.score(&[0.0, 0.0]);
        assert!(outlier > 0.6, "outlier {outlier}");
        assert!(inlier < 0.5, "inlier {inlier}");
        let mut out = vec![0.0; x.rows()];
        model.score_batch(&x, &mut out).unwrap();
        // Beyond the data range every split sends the outlier the same way as
        // the extreme training rows, so those may tie with it; few can.
        assert!(out.iter().filter(|&&s| s >= outlier).count() <= x.rows() / 100);
    }

    #[test]
    fn seeded_runs_are_identical_and_seeds_differ() {
        let x = cloud(300);
        let a = IsolationForest::params().seed(3).fit(&x).unwrap();
        let b = IsolationForest::params().seed(3).fit(&x).unwrap();
        let c = IsolationForest::params().seed(4).fit(&x).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn bad_params_and_data_are_rejected() {
        let x = cloud(10);
        let e = IsolationForest::params().n_trees(0).fit(&x).unwrap_err();
        assert_eq!(e.to_string(), "n_trees should be >= 1, but is 0");
        let e = IsolationForest::params()
            .max_samples(1)
            .fit(&x)
            .unwrap_err();
        assert_eq!(e.to_string(), "max_samples should be >= 2, but is 1");
        assert!(IsolationForest::params().fit(&Matrix::zeros(1, 2)).is_err());
        let nan = Matrix::from_vec(2, 1, vec![0.0, f32::INFINITY]).unwrap();
        assert!(IsolationForest::params().fit(&nan).is_err());
        let model = IsolationForest::params().fit(&x).unwrap();
        assert!(model
            .score_batch(&Matrix::zeros(2, 3), &mut [0.0; 2])
            .is_err());
    }

    #[test]
    fn constant_data_gives_leaves_not_loops() {
        let x = Matrix::zeros(50, 3);
        let model = IsolationForest::params().n_trees(5).fit(&x).unwrap();
        // Every tree is one leaf of psi rows: h = c(psi), the score is exactly 0.5.
        assert!((model.score(&[0.0; 3]) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn path_length_correction_matches_paper() {
        assert_eq!(avg_path_length(1), 0.0);
        assert_eq!(avg_path_length(2), 1.0);
        // c(256) = 2 (ln 255 + gamma) - 2 * 255 / 256 ~= 10.2448
        assert!((avg_path_length(256) - 10.2448).abs() < 1e-3);
    }
}
