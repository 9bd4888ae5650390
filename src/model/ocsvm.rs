//! One-Class SVM (Schölkopf et al., 2001) with an RBF kernel, solved by SMO
//! with second-order working-set selection as in LIBSVM (Fan, Chen and Lin,
//! 2005). Written here rather than taken from linfa-svm so that it fits
//! `f32` rows directly without pulling ndarray and linfa into the build.
//!
//! The kernel matrix is dense (n² floats), so training rows beyond
//! `max_train_rows` are left out by a seeded subsample.
//!
//! ```
//! use floodwatch::{model::ocsvm::OneClassSvm, Matrix};
//! let x = Matrix::from_vec(5, 1, vec![0.0, 0.1, 0.2, 0.3, 0.4]).unwrap();
//! let model = OneClassSvm::params().fit(&x).unwrap();
//! assert!(model.score(&[5.0]) > model.score(&[0.2]));
//! ```

use super::classic;
use super::detector::Detector;
use crate::{Error, Matrix, Result};
use serde::{Deserialize, Serialize};

/// Floor of the curvature along a working pair, as LIBSVM's TAU.
const TAU: f32 = 1e-12;

/// Hyperparameters of a [`OneClassSvm`]; build with [`OneClassSvm::params`].
#[derive(Debug, Clone, PartialEq)]
pub struct OneClassSvmParams {
    nu: f32,
    gamma: Option<f32>,
    max_train_rows: usize,
    tol: f32,
    max_iter: usize,
    seed: u64,
}

impl Default for OneClassSvmParams {
    fn default() -> Self {
        OneClassSvmParams {
            nu: 0.5,
            gamma: None,
            max_train_rows: 2000,
            tol: 1e-3,
            max_iter: 100_000,
            seed: 42,
        }
    }
}

impl OneClassSvmParams {
    /// nu: upper bound on the fraction of training rows left outside the
    /// boundary and lower bound on the fraction of support vectors.
    /// Default 0.5 (as scikit-learn and PyOD); must be in (0, 1].
    pub fn nu(mut self, nu: f32) -> Self {
        self.nu = nu;
        self
    }

    /// RBF width gamma in `exp(-gamma |x - y|²)`. Default `None`: scikit-learn's
    /// "scale", `1 / (n_features * variance of all training values)`; when
    /// set, must be positive and finite.
    pub fn gamma(mut self, gamma: Option<f32>) -> Self {
        self.gamma = gamma;
        self
    }

    /// Training rows kept (seeded subsample beyond it); memory is 4 n² bytes.
    /// Default 2,000; must be >= 2.
    pub fn max_train_rows(mut self, n: usize) -> Self {
        self.max_train_rows = n;
        self
    }

    /// Stopping tolerance on the KKT violation. Default 1e-3; must be positive.
    pub fn tol(mut self, tol: f32) -> Self {
        self.tol = tol;
        self
    }

    /// SMO iterations at most; the model of the last iteration is kept if
    /// the tolerance is not reached (see [`OneClassSvm::converged`]).
    /// Default 100,000; must be >= 1.
    pub fn max_iter(mut self, n: usize) -> Self {
        self.max_iter = n;
        self
    }

    /// Seed of the subsample. Default 42; any value.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks the parameters without fitting.
    pub fn check(&self) -> Result<()> {
        let bad = |what: &str, v: &dyn std::fmt::Display| {
            Err(Error::Model(format!("{what}, but is {v}")))
        };
        if !(self.nu > 0.0 && self.nu <= 1.0) {
            return bad("nu should be in (0, 1]", &self.nu);
        }
        if let Some(g) = self.gamma {
            if !(g > 0.0 && g.is_finite()) {
                return bad("gamma should be positive and finite", &g);
            }
        }
        if self.max_train_rows < 2 {
            return bad("max_train_rows should be >= 2", &self.max_train_rows);
        }
        if !(self.tol > 0.0 && self.tol.is_finite()) {
            return bad("tol should be positive and finite", &self.tol);
        }
        if self.max_iter < 1 {
            return bad("max_iter should be >= 1", &self.max_iter);
        }
        Ok(())
    }

    /// Fits on `x`, rows of normal traffic (at least two rows, all values finite).
    pub fn fit(&self, x: &Matrix) -> Result<OneClassSvm> {
        self.check()?;
        classic::check_training("one-class SVM", x, 2)?;
        let train = classic::subsample(x, self.max_train_rows, self.seed);
        let gamma = self.gamma.unwrap_or_else(|| scale_gamma(&train));
        let kernel = Kernel::new(&train, gamma);
        let (alpha, rho, iterations, converged) = self.solve(&kernel);
        let support: Vec<usize> = (0..alpha.len()).filter(|&i| alpha[i] > 0.0).collect();
        Ok(OneClassSvm {
            gamma,
            rho,
            coef: support.iter().map(|&i| alpha[i]).collect(),
            support: train.select_rows(&support),
            iterations,
            converged,
        })
    }

    /// SMO on `min ½ aᵀKa` subject to `0 <= a_i <= 1`, `Σ a_i = nu n`;
    /// returns (a, rho, iterations, converged).
    fn solve(&self, k: &Kernel) -> (Vec<f32>, f32, usize, bool) {
        let n = k.n;
        let total = self.nu * n as f32;
        let mut alpha: Vec<f32> = (0..n).map(|i| (total - i as f32).clamp(0.0, 1.0)).collect();
        // Gradient K a, from the nonzero starting coefficients only.
        let mut grad = vec![0.0f32; n];
        for (j, &a) in alpha.iter().enumerate().filter(|(_, a)| **a > 0.0) {
            for (g, kv) in grad.iter_mut().zip(k.row(j)) {
                *g += a * kv;
            }
        }
        let mut iterations = 0;
        let mut converged = false;
        while iterations < self.max_iter {
            let Some((i, j)) = select_pair(k, &alpha, &grad, self.tol) else {
                converged = true;
                break;
            };
            iterations += 1;
            let curvature = (k.diag(i) + k.diag(j) - 2.0 * k.row(i)[j]).max(TAU);
            let sum = alpha[i] + alpha[j];
            let new_i = (alpha[i] - (grad[i] - grad[j]) / curvature)
                .clamp((sum - 1.0).max(0.0), sum.min(1.0));
            let (di, dj) = (new_i - alpha[i], (sum - new_i) - alpha[j]);
            alpha[i] = new_i;
            alpha[j] = sum - new_i;
            for ((g, ki), kj) in grad.iter_mut().zip(k.row(i)).zip(k.row(j)) {
                *g += ki * di + kj * dj;
            }
        }
        (alpha.clone(), rho(&alpha, &grad), iterations, converged)
    }
}

/// The maximal-violating `i` and the second-order best `j` (LIBSVM's WSS 2),
/// or `None` once the violation is under `tol`.
fn select_pair(k: &Kernel, alpha: &[f32], grad: &[f32], tol: f32) -> Option<(usize, usize)> {
    let mut i = None;
    let mut gmax = f32::NEG_INFINITY;
    for (t, (&a, &g)) in alpha.iter().zip(grad).enumerate() {
        if a < 1.0 && -g >= gmax {
            gmax = -g;
            i = Some(t);
        }
    }
    let i = i?;
    let ki = k.row(i);
    let (mut j, mut gmax2, mut best) = (None, f32::NEG_INFINITY, f32::INFINITY);
    for (t, (&a, &g)) in alpha.iter().zip(grad).enumerate() {
        if a <= 0.0 {
            continue;
        }
        gmax2 = gmax2.max(g);
        let b = gmax + g;
        if b > 0.0 {
            let curvature = (k.diag(i) + k.diag(t) - 2.0 * ki[t]).max(TAU);
            let gain = -b * b / curvature;
            if gain <= best {
                best = gain;
                j = Some(t);
            }
        }
    }
    (gmax + gmax2 >= tol).then_some(()).and(j.map(|j| (i, j)))
}

/// The offset: the mean gradient over free coefficients, or the middle of
/// the feasible interval when none is free (LIBSVM's `calculate_rho`).
fn rho(alpha: &[f32], grad: &[f32]) -> f32 {
    let (mut ub, mut lb, mut free, mut sum) = (f32::INFINITY, f32::NEG_INFINITY, 0usize, 0.0f32);
    for (&a, &g) in alpha.iter().zip(grad) {
        if a >= 1.0 {
            lb = lb.max(g);
        } else if a <= 0.0 {
            ub = ub.min(g);
        } else {
            free += 1;
            sum += g;
        }
    }
    if free > 0 {
        sum / free as f32
    } else {
        (ub + lb) / 2.0
    }
}

/// scikit-learn's `gamma="scale"`: `1 / (n_features * var(x))`, or 1 when
/// every value is the same.
fn scale_gamma(x: &Matrix) -> f32 {
    let v = x.as_slice();
    let mean = v.iter().map(|&a| a as f64).sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|&a| (a as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
    if var > 0.0 {
        (1.0 / (x.cols() as f64 * var)) as f32
    } else {
        1.0
    }
}

/// The dense RBF kernel matrix of the training rows.
struct Kernel {
    n: usize,
    values: Vec<f32>,
}

impl Kernel {
    fn new(x: &Matrix, gamma: f32) -> Kernel {
        let n = x.rows();
        let mut values = vec![0.0f32; n * n];
        for i in 0..n {
            values[i * n + i] = 1.0;
            for j in 0..i {
                let v = (-gamma * classic::sq_dist(x.row(i), x.row(j))).exp();
                values[i * n + j] = v;
                values[j * n + i] = v;
            }
        }
        Kernel { n, values }
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.n..(i + 1) * self.n]
    }

    fn diag(&self, i: usize) -> f32 {
        self.values[i * self.n + i]
    }
}

/// A fitted One-Class SVM: its support vectors and their coefficients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OneClassSvm {
    gamma: f32,
    rho: f32,
    coef: Vec<f32>,
    support: Matrix,
    iterations: usize,
    converged: bool,
}

impl OneClassSvm {
    /// Default parameters: nu 0.5, gamma "scale", at most 2,000 training rows.
    pub fn params() -> OneClassSvmParams {
        OneClassSvmParams::default()
    }

    /// Number of columns the model was fitted on.
    pub fn n_features(&self) -> usize {
        self.support.cols()
    }

    /// Number of support vectors (rows kept for scoring).
    pub fn n_support(&self) -> usize {
        self.support.rows()
    }

    /// The RBF gamma used (resolved from "scale" when not given).
    pub fn gamma(&self) -> f32 {
        self.gamma
    }

    /// SMO iterations run.
    pub fn iterations(&self) -> usize {
        self.iterations
    }

    /// Whether SMO reached the tolerance before `max_iter`.
    pub fn converged(&self) -> bool {
        self.converged
    }

    /// The negated decision function `rho - Σ a_i K(s_i, row)`: negative
    /// inside the learned boundary, positive outside; higher = more anomalous.
    ///
    /// # Panics
    /// If `row.len()` differs from [`OneClassSvm::n_features`].
    pub fn score(&self, row: &[f32]) -> f32 {
        assert_eq!(
            row.len(),
            self.n_features(),
            "row width must match the model"
        );
        let k: f32 = self
            .support
            .iter_rows()
            .zip(&self.coef)
            .map(|(s, a)| a * (-self.gamma * classic::sq_dist(s, row)).exp())
            .sum();
        self.rho - k
    }

    /// Scores every row of `x` into `out` (one slot per row), on all cores.
    pub fn score_batch(&self, x: &Matrix, out: &mut [f32]) -> Result<()> {
        classic::check_batch("one-class SVM", self.n_features(), x, out)?;
        classic::par_score(x, out, || (), |_, row| self.score(row));
        Ok(())
    }
}

/// Fits with the default parameters and `seed` (see [`Fit`](super::detector::Fit)).
pub(crate) fn fit(x: &Matrix, seed: u64) -> Result<Box<dyn Detector>> {
    Ok(Box::new(OneClassSvm::params().seed(seed).fit(x)?))
}

impl Detector for OneClassSvm {
    fn score_batch(&self, x: &Matrix, out: &mut [f32]) -> Result<()> {
        OneClassSvm::score_batch(self, x, out)
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
        let data = (0..n * 2)
            .map(|_| (0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>() / 2.0)
            .collect();
        Matrix::from_vec(n, 2, data).unwrap()
    }

    #[test]
    fn outlier_scores_higher_than_inliers() {
        let x = cloud(300, 1);
        let model = OneClassSvm::params().nu(0.1).fit(&x).unwrap();
        assert!(model.converged());
        let outlier = model.score(&[3.0, 3.0]);
        assert!(outlier > 0.0, "outside the boundary: {outlier}");
        assert!(model.score(&[0.0, 0.0]) < 0.0, "inside the boundary");
        let mut out = vec![0.0; 300];
        model.score_batch(&cloud(300, 2), &mut out).unwrap();
        assert!(out.iter().all(|&s| s < outlier));
    }

    #[test]
    fn nu_bounds_the_training_outliers() {
        let x = cloud(400, 3);
        let model = OneClassSvm::params().nu(0.2).fit(&x).unwrap();
        let mut out = vec![0.0; 400];
        model.score_batch(&x, &mut out).unwrap();
        let outside = out.iter().filter(|&&s| s > 1e-4).count() as f32 / 400.0;
        assert!(outside <= 0.2 + 0.03, "fraction outside {outside}");
        assert!(model.n_support() as f32 >= 0.2 * 400.0 - 1.0);
    }

    #[test]
    fn seeded_subsample_is_repeatable() {
        let x = cloud(500, 4);
        let a = OneClassSvm::params().max_train_rows(100).fit(&x).unwrap();
        let b = OneClassSvm::params().max_train_rows(100).fit(&x).unwrap();
        let c = OneClassSvm::params()
            .max_train_rows(100)
            .seed(1)
            .fit(&x)
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn bad_params_and_data_are_rejected() {
        let x = cloud(10, 1);
        let e = OneClassSvm::params().nu(0.0).fit(&x).unwrap_err();
        assert_eq!(e.to_string(), "nu should be in (0, 1], but is 0");
        let e = OneClassSvm::params().gamma(Some(-1.0)).fit(&x).unwrap_err();
        assert_eq!(
            e.to_string(),
            "gamma should be positive and finite, but is -1"
        );
        assert!(OneClassSvm::params().max_train_rows(1).fit(&x).is_err());
        assert!(OneClassSvm::params().tol(0.0).fit(&x).is_err());
        assert!(OneClassSvm::params().max_iter(0).fit(&x).is_err());
        assert!(OneClassSvm::params().fit(&Matrix::zeros(1, 2)).is_err());
        let model = OneClassSvm::params().fit(&x).unwrap();
        assert!(model
            .score_batch(&Matrix::zeros(2, 3), &mut [0.0; 2])
            .is_err());
    }

    #[test]
    fn constant_data_uses_unit_gamma() {
        let model = OneClassSvm::params().fit(&Matrix::zeros(20, 2)).unwrap();
        assert_eq!(model.gamma(), 1.0);
        assert!(model.score(&[5.0, 5.0]) > model.score(&[0.0, 0.0]));
    }
}
