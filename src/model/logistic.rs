//! Multinomial logistic regression (softmax), the classifier the original
//! tool trains on the autoencoder's latent representation. Reuses the dense
//! engine: one linear layer, cross-entropy loss, Adam.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::dense::{Activation, Adam, Gradients, Network, Workspace};
use super::kernel::softmax_rows;
use crate::simd::Level;
use crate::{Error, Matrix, Result};

/// Hyperparameters of [`LogisticRegression`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticParams {
    epochs: usize,
    batch_size: usize,
    learning_rate: f32,
    seed: u64,
}

impl Default for LogisticParams {
    fn default() -> Self {
        LogisticParams {
            epochs: 60,
            batch_size: 256,
            learning_rate: 0.01,
            seed: 42,
        }
    }
}

impl LogisticParams {
    /// Defaults: 60 epochs, batch 256, Adam learning rate 0.01, seed 42.
    pub fn new() -> Self {
        Self::default()
    }

    /// Passes over the data. Default 60; at least 1.
    pub fn epochs(mut self, n: usize) -> Self {
        self.epochs = n;
        self
    }

    /// Seed of the initialisation and shuffling. Default 42.
    pub fn seed(mut self, s: u64) -> Self {
        self.seed = s;
        self
    }

    /// Fits on rows `x` with class indices `y` in `0..n_classes`.
    pub fn fit(&self, x: &Matrix, y: &[usize], n_classes: usize) -> Result<LogisticRegression> {
        self.check(x, y, n_classes)?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut net = Network::new(&[x.cols(), n_classes], &[Activation::Linear], &mut rng);
        let mut adam = Adam::new(&net, self.learning_rate);
        let mut grads = Gradients::new(&net);
        let mut ws = Workspace::default();
        let (mut batch, mut grad) = (Vec::new(), Vec::new());
        let mut order: Vec<usize> = (0..x.rows()).collect();
        for _ in 0..self.epochs {
            order.shuffle(&mut rng);
            for idx in order.chunks(self.batch_size) {
                batch.clear();
                idx.iter().for_each(|&i| batch.extend_from_slice(x.row(i)));
                let logits = net.forward(&batch, idx.len(), 1, &mut ws);
                grad.clear();
                grad.extend_from_slice(logits);
                softmax_rows(Level::detect(), &mut grad, n_classes);
                for (row, &i) in grad.chunks_exact_mut(n_classes).zip(idx) {
                    row[y[i]] -= 1.0;
                    row.iter_mut().for_each(|g| *g /= idx.len() as f32);
                }
                net.backward(&batch, idx.len(), &mut ws, &mut grad, 0.0, &mut grads);
                adam.step(&mut net, &grads);
            }
        }
        Ok(LogisticRegression { net })
    }

    fn check(&self, x: &Matrix, y: &[usize], n_classes: usize) -> Result<()> {
        if self.epochs == 0 || self.batch_size == 0 {
            return Err(Error::Model(
                "epochs and batch size should be at least 1".into(),
            ));
        }
        if x.rows() == 0 || x.rows() != y.len() {
            return Err(Error::Model(format!(
                "classifier needs one label per row, but has {} rows and {} labels",
                x.rows(),
                y.len()
            )));
        }
        if n_classes < 2 || y.iter().any(|&c| c >= n_classes) {
            return Err(Error::Model(format!(
                "classifier needs at least 2 classes and labels below {n_classes}"
            )));
        }
        Ok(())
    }
}

/// A fitted softmax classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticRegression {
    net: Network,
}

impl LogisticRegression {
    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.net.width(0)
    }

    /// Checks the shapes of a model read from a file.
    pub fn check_shapes(&self) -> std::result::Result<(), String> {
        self.net.check_shapes(1)
    }

    /// Width of the input rows.
    pub fn input_dim(&self) -> usize {
        self.net.input_dim()
    }

    /// Class probabilities of one row into `out` (`n_classes` long), by the
    /// inference kernels.
    pub fn predict_proba(&self, x: &[f32], out: &mut [f32]) {
        let mut ws = Workspace::default();
        out.copy_from_slice(self.net.predict(x, 1, 1, &mut ws));
        softmax_rows(Level::detect(), out, out.len());
    }

    /// Class probabilities of `rows` rows given transposed (feature `j` of
    /// row `r` at `xt[j * stride + r]`, as
    /// [`Autoencoder::score_batch_latent`](super::autoencoder::Autoencoder::score_batch_latent)
    /// hands latent codes), left transposed in `ws`: returns them (class
    /// `c` of row `r` at `p[c * s + r]`) and their stride `s`, a multiple
    /// of 16. Each row has the bits of [`predict_proba`](Self::predict_proba).
    ///
    /// # Panics
    /// If `xt` is too short.
    pub fn predict_proba_t<'w>(
        &self,
        xt: &[f32],
        stride: usize,
        rows: usize,
        ws: &'w mut Workspace,
    ) -> (&'w [f32], usize) {
        self.net.softmax_t(0, xt, stride, rows, ws)
    }

    /// The most probable class of one row.
    pub fn predict(&self, x: &[f32]) -> usize {
        let mut p = vec![0.0; self.n_classes()];
        self.predict_proba(x, &mut p);
        argmax(&p)
    }
}

/// Index of the largest value (the first one on ties).
pub fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_three_blobs() {
        let centres = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]];
        let mut x = Matrix::with_cols(2);
        let mut y = Vec::new();
        for i in 0..300 {
            let c = i % 3;
            let jitter = ((i * 37 % 100) as f32 / 100.0 - 0.5) * 0.3;
            x.push_row(&[centres[c][0] + jitter, centres[c][1] - jitter]);
            y.push(c);
        }
        let model = LogisticParams::new().epochs(200).fit(&x, &y, 3).unwrap();
        let correct = (0..300)
            .filter(|&i| model.predict(x.row(i)) == y[i])
            .count();
        assert!(correct >= 297, "{correct}");
        let mut p = [0.0; 3];
        model.predict_proba(&[1.0, 0.0], &mut p);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5 && p[1] > 0.9);
    }

    #[test]
    fn rejects_bad_labels() {
        let x = Matrix::from_vec(2, 1, vec![0.0, 1.0]).unwrap();
        assert!(LogisticParams::new().fit(&x, &[0, 2], 2).is_err());
        assert!(LogisticParams::new().fit(&x, &[0], 2).is_err());
        assert!(LogisticParams::new().fit(&x, &[0, 0], 1).is_err());
    }
}
