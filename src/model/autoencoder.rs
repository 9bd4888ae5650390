//! The dense autoencoder `d -> 100 tanh -> 50 relu -> 50 tanh -> 100 tanh -> d`
//! of the original Network-Anomaly-Detection tool, trained with Adam on
//! normal rows only. Its score is the mean squared reconstruction error; its
//! latent representation is the output of the 50-unit tanh layer.
//!
//! [`Autoencoder::weigh_errors`] makes the score relative: each feature's
//! squared error divided by its mean on held-back normal rows (plus a floor
//! of [`ERROR_FLOOR`] times their mean over features), so that a feature the
//! network reconstructs well counts as much as a noisy one. An autoencoder
//! may hold several networks cross-fitted on folds of the rows
//! ([`AutoencoderParams::fit_folds`]); its score is then their mean.
//! [`Autoencoder::add_neighbours`] adds the distance from a row's latent code
//! to those of its nearest normal rows ([`LatentNeighbours`]).
//!
//! The output layer is linear (the issue leaves it open): inputs are scaled to
//! [0, 1] but test rows may fall outside, and a linear output reports that
//! distance instead of clipping it away.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::dense::{Activation, Adam, Gradients, Network, Workspace};
use super::neighbours::{Calibration, LatentNeighbours};
use crate::{Error, Matrix, Result};

/// Index of the latent layer (the encoder's output) in the network.
const LATENT_LAYER: usize = 2;
/// Share of the mean feature error added to each feature's own before
/// dividing by it: a feature reconstructed almost exactly on normal rows
/// weighs at most about ten times the average one.
pub const ERROR_FLOOR: f32 = 0.1;
/// Rows per forward pass when scoring: a layer's transposed outputs (at most
/// 100 x 256 floats) stay in L2 (128 measured as fast, 512 slower).
const SCORE_CHUNK: usize = 256;

/// Hyperparameters of [`Autoencoder`]; `fit` validates them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoencoderParams {
    hidden: [usize; 4],
    epochs: usize,
    batch_size: usize,
    learning_rate: f32,
    l1_activity: f32,
    seed: u64,
}

impl Default for AutoencoderParams {
    fn default() -> Self {
        AutoencoderParams {
            hidden: [100, 50, 50, 100],
            epochs: 10,
            batch_size: 256,
            learning_rate: 1e-3,
            l1_activity: 1e-5,
            seed: 42,
        }
    }
}

/// One epoch's outcome, for progress reporting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Total epochs.
    pub epochs: usize,
    /// Mean training loss (MSE) over the epoch.
    pub loss: f32,
    /// Validation MSE after the epoch, when validation rows were given.
    pub val_loss: Option<f32>,
}

/// Loss per epoch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainHistory {
    /// Mean training loss per epoch.
    pub loss: Vec<f32>,
    /// Validation loss per epoch (empty without validation rows).
    pub val_loss: Vec<f32>,
}

impl AutoencoderParams {
    /// The defaults: hidden widths 100, 50, 50, 100; 10 epochs; batch 256;
    /// Adam with learning rate 1e-3; L1 activity 1e-5 on the first layer;
    /// seed 42.
    pub fn new() -> Self {
        Self::default()
    }

    /// Hidden widths (encoder 1, encoder 2, latent, decoder 1). Default
    /// `[100, 50, 50, 100]`; each at least 1.
    pub fn hidden(mut self, widths: [usize; 4]) -> Self {
        self.hidden = widths;
        self
    }

    /// Passes over the training rows. Default 10; at least 1.
    pub fn epochs(mut self, n: usize) -> Self {
        self.epochs = n;
        self
    }

    /// Rows per gradient step. Default 256; at least 1.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// Adam's learning rate. Default 1e-3; finite and positive.
    pub fn learning_rate(mut self, lr: f32) -> Self {
        self.learning_rate = lr;
        self
    }

    /// L1 activity regularisation on the first hidden layer. Default 1e-5;
    /// finite and non-negative.
    pub fn l1_activity(mut self, c: f32) -> Self {
        self.l1_activity = c;
        self
    }

    /// Seed of the weight initialisation and the batch shuffling. Default 42.
    pub fn seed(mut self, s: u64) -> Self {
        self.seed = s;
        self
    }

    fn check(&self, train: &Matrix, valid: Option<&Matrix>) -> Result<()> {
        let bad = |msg: String| Err(Error::Model(msg));
        if self.epochs == 0 {
            return bad("epochs should be at least 1, but is 0".into());
        }
        if self.batch_size == 0 {
            return bad("batch size should be at least 1, but is 0".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!(
                "learning rate should be finite and positive, but is {}",
                self.learning_rate
            ));
        }
        if !(self.l1_activity.is_finite() && self.l1_activity >= 0.0) {
            return bad(format!(
                "L1 activity should be finite and non-negative, but is {}",
                self.l1_activity
            ));
        }
        if self.hidden.contains(&0) {
            return bad(format!(
                "hidden widths should be at least 1, but are {:?}",
                self.hidden
            ));
        }
        if train.rows() == 0 || train.cols() == 0 {
            return bad(format!(
                "training data should have rows and columns, but is {} x {}",
                train.rows(),
                train.cols()
            ));
        }
        if let Some(v) = valid.filter(|v| v.cols() != train.cols()) {
            return bad(format!(
                "validation data has {} columns, training data {}",
                v.cols(),
                train.cols()
            ));
        }
        let finite = |m: &Matrix| m.as_slice().iter().all(|v| v.is_finite());
        if !finite(train) || !valid.is_none_or(finite) {
            return bad("training data contains NaN or infinite values".into());
        }
        Ok(())
    }

    /// Trains on `train` (normal rows only), reporting each epoch to
    /// `on_epoch`; `valid` rows are only scored, for the validation loss.
    pub fn fit(
        &self,
        train: &Matrix,
        valid: Option<&Matrix>,
        on_epoch: &mut dyn FnMut(&EpochReport),
    ) -> Result<(Autoencoder, TrainHistory)> {
        self.check(train, valid)?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let d = train.cols();
        let [h1, h2, h3, h4] = self.hidden;
        let acts = [
            Activation::Tanh,
            Activation::Relu,
            Activation::Tanh,
            Activation::Tanh,
            Activation::Linear,
        ];
        let mut model = Autoencoder {
            net: Network::new(&[d, h1, h2, h3, h4, d], &acts, &mut rng),
            error_weights: Vec::new(),
            more: Vec::new(),
            neighbours: None,
        };
        let mut trainer = Trainer::new(&model.net, self);
        let mut history = TrainHistory::default();
        let mut order: Vec<usize> = (0..train.rows()).collect();
        for epoch in 1..=self.epochs {
            order.shuffle(&mut rng);
            let loss = trainer.epoch(&mut model.net, train, &order);
            let val_loss = valid.map(|v| model.mean_score(v));
            history.loss.push(loss);
            history.val_loss.extend(val_loss);
            on_epoch(&EpochReport {
                epoch,
                epochs: self.epochs,
                loss,
                val_loss,
            });
        }
        Ok((model, history))
    }

    /// Cross-fitted ensemble: `rows` (normal, shuffled) split into `folds`
    /// folds (row `i` in fold `i % folds`); network `f`, seeded `seed + f`,
    /// trains on the other folds and has its errors weighed on fold `f`
    /// ([`Autoencoder::weigh_errors`]). Every row thus trains some networks
    /// and calibrates one. Returns the ensemble (its score the mean of the
    /// networks'), the first network's history (the only one reported to
    /// `on_epoch`) and each row's score by the network that did not train
    /// on it, to calibrate a threshold on.
    pub fn fit_folds(
        &self,
        rows: &Matrix,
        folds: usize,
        on_epoch: &mut dyn FnMut(&EpochReport),
    ) -> Result<(Autoencoder, TrainHistory, Vec<f32>)> {
        if folds < 2 || rows.rows() < folds {
            return Err(Error::Model(format!(
                "cross-fitting needs at least 2 folds and a row per fold, not {folds} folds of {} rows",
                rows.rows()
            )));
        }
        let mut out: Option<(Autoencoder, TrainHistory)> = None;
        let mut held_scores = vec![0.0; rows.rows()];
        for f in 0..folds {
            let (held, rest): (Vec<usize>, Vec<usize>) =
                (0..rows.rows()).partition(|i| i % folds == f);
            let (train, hold) = (rows.select_rows(&rest), rows.select_rows(&held));
            let params = self.clone().seed(self.seed.wrapping_add(f as u64));
            let (mut ae, history) = match f {
                0 => params.fit(&train, Some(&hold), on_epoch)?,
                _ => params.fit(&train, None, &mut |_| {})?,
            };
            ae.weigh_errors(&hold);
            let mut s = vec![0.0; hold.rows()];
            ae.score_batch(&hold, &mut s);
            held.iter().zip(s).for_each(|(&i, v)| held_scores[i] = v);
            match &mut out {
                Some((first, _)) => first.more.push(ae),
                None => out = Some((ae, history)),
            }
        }
        let (ae, history) = out.expect("at least two folds");
        Ok((ae, history, held_scores))
    }
}

/// Optimizer state and buffers of one training run.
struct Trainer {
    adam: Adam,
    grads: Gradients,
    ws: Workspace,
    batch: Vec<f32>,
    grad_out: Vec<f32>,
    batch_size: usize,
    l1: f32,
}

impl Trainer {
    fn new(net: &Network, p: &AutoencoderParams) -> Self {
        Trainer {
            adam: Adam::new(net, p.learning_rate),
            grads: Gradients::new(net),
            ws: Workspace::default(),
            batch: Vec::new(),
            grad_out: Vec::new(),
            batch_size: p.batch_size,
            l1: p.l1_activity,
        }
    }

    /// One pass over `order`; returns the mean reconstruction MSE.
    fn epoch(&mut self, net: &mut Network, x: &Matrix, order: &[usize]) -> f32 {
        let d = x.cols();
        let mut total = 0.0f64;
        for idx in order.chunks(self.batch_size) {
            self.batch.clear();
            idx.iter()
                .for_each(|&i| self.batch.extend_from_slice(x.row(i)));
            let rows = idx.len();
            let out = net.forward(&self.batch, rows, net.depth(), &mut self.ws);
            let scale = 2.0 / (rows * d) as f32;
            self.grad_out.clear();
            let mut sq = 0.0f64;
            for (o, t) in out.iter().zip(&self.batch) {
                let e = o - t;
                sq += (e * e) as f64;
                self.grad_out.push(scale * e);
            }
            total += sq / d as f64;
            net.backward(
                &self.batch,
                rows,
                &mut self.ws,
                &mut self.grad_out,
                self.l1,
                &mut self.grads,
            );
            self.adam.step(net, &self.grads);
        }
        (total / order.len() as f64) as f32
    }
}

/// A trained autoencoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Autoencoder {
    net: Network,
    /// Weight of each feature's squared error (empty: `1/d` each, the mean).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    error_weights: Vec<f32>,
    /// Networks cross-fitted on other folds and seeds; the score is the
    /// mean over all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    more: Vec<Autoencoder>,
    /// The latent-neighbour distance added to the error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    neighbours: Option<Box<LatentNeighbours>>,
}

impl Autoencoder {
    /// Width of the input rows.
    pub fn input_dim(&self) -> usize {
        self.net.input_dim()
    }

    /// Checks the shapes of a model read from a file: five chained layers
    /// whose output is as wide as the input.
    pub fn check_shapes(&self) -> std::result::Result<(), String> {
        self.net.check_shapes(5)?;
        let d = self.input_dim();
        if self.net.width(4) != d {
            return Err("autoencoder output and input widths differ".into());
        }
        if !self.error_weights.is_empty() && self.error_weights.len() != d {
            return Err(format!(
                "autoencoder has {} error weights for {d} features",
                self.error_weights.len()
            ));
        }
        for m in &self.more {
            m.check_shapes()?;
            if m.widths() != self.widths() || !m.more.is_empty() || m.neighbours.is_some() {
                return Err("autoencoder networks differ in shape".into());
            }
        }
        match &self.neighbours {
            Some(nb) => nb.check(self.latent_dim(), self.networks()),
            None => Ok(()),
        }
    }

    /// Networks whose scores are averaged (1 without an ensemble).
    pub fn networks(&self) -> usize {
        1 + self.more.len()
    }

    /// Weighs each feature's squared error of the first network by the
    /// inverse of its mean on `hold` (normal rows it did not train on) plus
    /// [`ERROR_FLOOR`] times their mean over features: the score becomes
    /// the error relative to normal (about 1 on normal rows). Rows of
    /// another width, or errors all zero, leave the plain mean.
    pub fn weigh_errors(&mut self, hold: &Matrix) {
        let d = self.input_dim();
        if hold.rows() == 0 || hold.cols() != d {
            return;
        }
        self.error_weights.clear();
        let mut sum = vec![0.0f64; d];
        let mut ws = Workspace::default();
        for chunk in hold.as_slice().chunks(SCORE_CHUNK * d) {
            let recon = self
                .net
                .predict(chunk, chunk.len() / d, self.net.depth(), &mut ws);
            for (row, r) in chunk.chunks_exact(d).zip(recon.chunks_exact(d)) {
                for ((s, a), b) in sum.iter_mut().zip(row).zip(r) {
                    *s += f64::from((a - b) * (a - b));
                }
            }
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / hold.rows() as f64).collect();
        let floor = f64::from(ERROR_FLOOR) * mean.iter().sum::<f64>() / d as f64;
        if floor > 0.0 && floor.is_finite() {
            let w = mean
                .iter()
                .map(|&m| (1.0 / (d as f64 * (m + floor))) as f32);
            self.error_weights = w.collect();
        }
    }

    /// Widths from the input through every layer (`d, 100, 50, 50, 100, d`).
    pub fn widths(&self) -> Vec<usize> {
        let layers = (0..self.net.depth()).map(|i| self.net.width(i));
        std::iter::once(self.input_dim()).chain(layers).collect()
    }

    /// Width of the latent representation.
    pub fn latent_dim(&self) -> usize {
        self.net.width(LATENT_LAYER)
    }

    /// Score of one row: its (weighed) mean squared reconstruction error,
    /// plus the latent-neighbour distance when the model has one.
    pub fn score(&self, x: &[f32]) -> f32 {
        let mut out = [0.0];
        self.score_rows(x, 1, &mut Workspace::default(), &mut out);
        out[0]
    }

    /// [`Autoencoder::score`] reusing the caller's buffers, so that scoring
    /// one record at a time allocates nothing.
    pub fn score_with(&self, x: &[f32], ws: &mut Workspace) -> f32 {
        let mut out = [0.0];
        self.score_rows(x, 1, ws, &mut out);
        out[0]
    }

    /// [`Autoencoder::score`] of every row of `x` into `out`.
    ///
    /// # Panics
    /// If `out.len() != x.rows()` or `x.cols() != self.input_dim()`.
    pub fn score_batch(&self, x: &Matrix, out: &mut [f32]) {
        self.score_batch_with(x, &mut Workspace::default(), out);
    }

    /// [`Autoencoder::score_batch`] reusing the caller's buffers (a scoring
    /// worker keeps them from batch to batch).
    pub fn score_batch_with(&self, x: &Matrix, ws: &mut Workspace, out: &mut [f32]) {
        assert_eq!(out.len(), x.rows());
        assert_eq!(x.cols(), self.input_dim());
        let d = x.cols();
        for (chunk, out) in x
            .as_slice()
            .chunks(SCORE_CHUNK * d)
            .zip(out.chunks_mut(SCORE_CHUNK))
        {
            self.score_rows(chunk, out.len(), ws, out);
        }
    }

    /// [`Autoencoder::score_batch_with`] that also hands each chunk's latent
    /// codes to `latent(zt, stride, first_row, rows)`, transposed (unit `j`
    /// of row `first_row + r` at `zt[j * stride + r]`): what a classifier
    /// on the latent reads, without encoding the rows a second time. The
    /// codes are those of [`Autoencoder::encode_batch`] to the bit.
    ///
    /// # Panics
    /// If `out.len() != x.rows()` or `x.cols() != self.input_dim()`.
    pub fn score_batch_latent(
        &self,
        x: &Matrix,
        ws: &mut Workspace,
        out: &mut [f32],
        mut latent: impl FnMut(&[f32], usize, usize, usize),
    ) {
        assert_eq!(out.len(), x.rows());
        assert_eq!(x.cols(), self.input_dim());
        let d = x.cols();
        for (i, (chunk, out)) in (x.as_slice().chunks(SCORE_CHUNK * d))
            .zip(out.chunks_mut(SCORE_CHUNK))
            .enumerate()
        {
            let rows = out.len();
            let stride = self.net.mean_squared_errors_keeping(
                chunk,
                rows,
                LATENT_LAYER,
                &self.error_weights,
                ws,
                out,
            );
            latent(ws.kept(), stride, i * SCORE_CHUNK, rows);
            self.finish(chunk, rows, stride, ws, out);
        }
    }

    /// Scores of at most [`SCORE_CHUNK`] rows.
    fn score_rows(&self, x: &[f32], rows: usize, ws: &mut Workspace, out: &mut [f32]) {
        if self.neighbours.is_none() {
            self.net
                .mean_squared_errors(x, rows, &self.error_weights, ws, out);
            return self.add_members(x, rows, ws, out, None);
        }
        let w = &self.error_weights;
        let stride = self
            .net
            .mean_squared_errors_keeping(x, rows, LATENT_LAYER, w, ws, out);
        self.finish(x, rows, stride, ws, out);
    }

    /// Completes the first network's errors in `out`, its latent codes kept
    /// in `ws` at `stride`: the other networks' errors, then the neighbour
    /// distance (at most [`SCORE_CHUNK`] rows).
    fn finish(&self, x: &[f32], rows: usize, stride: usize, ws: &mut Workspace, out: &mut [f32]) {
        let Some(nb) = &self.neighbours else {
            return self.add_members(x, rows, ws, out, None);
        };
        let mut dist = [0.0f32; SCORE_CHUNK];
        let (kept, scratch) = ws.kept_and_scratch();
        nb.add_nearest_t(0, kept, stride, rows, scratch, &mut dist);
        self.add_members(x, rows, ws, out, Some((nb, &mut dist)));
        nb.combine(&mut out[..rows], &dist[..rows]);
    }

    /// Adds the latent-neighbour distance to the score
    /// ([`LatentNeighbours`]): `refs` are normal rows the networks trained
    /// on, whose codes become the references. The calibration rows are
    /// `calib` or, when `None`, the references each left out in turn;
    /// `errors` are their scores so far, and the distance, averaged over
    /// every network's latent space, weighs `weight`. Returns their
    /// combined scores.
    pub fn add_neighbours(
        &mut self,
        refs: &Matrix,
        calib: Option<&Matrix>,
        errors: &[f32],
        weight: f32,
    ) -> Result<Vec<f32>> {
        let nets: Vec<&Autoencoder> = std::iter::once(&*self).chain(&self.more).collect();
        let codes = nets.iter().map(|m| m.encode_batch(refs)).collect();
        let (nb, scores) = match calib {
            Some(c) => {
                let c: Vec<Matrix> = nets.iter().map(|m| m.encode_batch(c)).collect();
                LatentNeighbours::fit(codes, Calibration::Apart(&c), errors, weight)?
            }
            None => LatentNeighbours::fit(codes, Calibration::LeaveOneOut, errors, weight)?,
        };
        self.neighbours = Some(Box::new(nb));
        Ok(scores)
    }

    /// The latent-neighbour distance of the score, if any.
    pub fn neighbours(&self) -> Option<&LatentNeighbours> {
        self.neighbours.as_deref()
    }

    /// Turns the first network's scores in `out` into the mean over all
    /// networks (at most [`SCORE_CHUNK`] rows), adding each network's
    /// neighbour distance to `dist` where the references have its codes.
    fn add_members(
        &self,
        x: &[f32],
        rows: usize,
        ws: &mut Workspace,
        out: &mut [f32],
        mut dist: Option<(&LatentNeighbours, &mut [f32; SCORE_CHUNK])>,
    ) {
        if self.more.is_empty() {
            return;
        }
        let mut part = [0.0f32; SCORE_CHUNK];
        for (net, m) in (1..).zip(&self.more) {
            let w = &m.error_weights;
            match &mut dist {
                Some((nb, dist)) if net < nb.networks() => {
                    let stride = (m.net).mean_squared_errors_keeping(
                        x,
                        rows,
                        LATENT_LAYER,
                        w,
                        ws,
                        &mut part,
                    );
                    let (kept, scratch) = ws.kept_and_scratch();
                    nb.add_nearest_t(net, kept, stride, rows, scratch, &mut dist[..]);
                }
                _ => m.net.mean_squared_errors(x, rows, w, ws, &mut part),
            }
            out.iter_mut().zip(&part).for_each(|(o, p)| *o += p);
        }
        let n = self.networks() as f32;
        out[..rows].iter_mut().for_each(|o| *o /= n);
    }

    /// Per-feature reconstruction error of one row, weighed as the score
    /// weighs it (their mean is the score, up to rounding): the basis of
    /// explanations.
    pub fn feature_errors(&self, x: &[f32], out: &mut [f32]) {
        self.feature_errors_with(x, &mut Workspace::default(), out);
    }

    /// [`Autoencoder::feature_errors`] reusing the caller's buffers.
    pub fn feature_errors_with(&self, x: &[f32], ws: &mut Workspace, out: &mut [f32]) {
        let d = self.input_dim();
        let n = self.networks() as f32;
        out[..d].fill(0.0);
        for m in std::iter::once(self).chain(&self.more) {
            let recon = m.net.predict(x, 1, m.net.depth(), ws);
            m.add_feature_errors(x.iter().copied().zip(recon.iter().copied()), n, out);
        }
    }

    /// Adds this network's weighed error of each feature, given its
    /// (input, reconstruction) pairs in feature order, over `n` networks.
    fn add_feature_errors(&self, pairs: impl Iterator<Item = (f32, f32)>, n: f32, out: &mut [f32]) {
        let d = self.input_dim();
        for (j, (o, (a, b))) in out.iter_mut().zip(pairs).enumerate() {
            let w = self.error_weights.get(j).map_or(1.0, |w| w * d as f32);
            *o += w * (a - b) * (a - b) / n;
        }
    }

    /// [`Autoencoder::feature_errors_with`] of row `i` of the last
    /// [`Autoencoder::score_batch_with`] on `ws`, given that it scored `rows`
    /// rows, read from that pass (the same bits) while `ws` still holds it:
    /// one network, one chunk, a transposed batch. `false` otherwise, and
    /// `out` is left as it was.
    pub fn batch_feature_errors(
        &self,
        ws: &Workspace,
        rows: usize,
        i: usize,
        out: &mut [f32],
    ) -> bool {
        if !self.more.is_empty() || i >= rows {
            return false;
        }
        let Some((xt, recon, stride)) = self.net.last_pass(ws, rows) else {
            return false;
        };
        let d = self.input_dim();
        out[..d].fill(0.0);
        let pairs = (0..d).map(|j| (xt[j * stride + i], recon[j * stride + i]));
        self.add_feature_errors(pairs, self.networks() as f32, out);
        true
    }

    /// The latent representation (encoder output) of every row.
    pub fn encode_batch(&self, x: &Matrix) -> Matrix {
        let width = self.latent_dim();
        let mut latent = Matrix::with_cols(width);
        let mut ws = Workspace::default();
        for chunk in x.as_slice().chunks(SCORE_CHUNK * x.cols().max(1)) {
            let rows = chunk.len() / x.cols().max(1);
            let z = self.net.predict(chunk, rows, LATENT_LAYER + 1, &mut ws);
            z.chunks_exact(width).for_each(|r| latent.push_row(r));
        }
        latent
    }

    fn mean_score(&self, x: &Matrix) -> f32 {
        let mut s = vec![0.0; x.rows()];
        self.score_batch(x, &mut s);
        (s.iter().map(|&v| v as f64).sum::<f64>() / s.len().max(1) as f64) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::super::neighbours::WEIGHT;
    use super::*;
    use rand::Rng;

    /// Rows on a 2-d manifold in 8 dimensions, in [0, 1].
    fn manifold(rows: usize, seed: u64) -> Matrix {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut m = Matrix::with_cols(8);
        for _ in 0..rows {
            let (a, b): (f32, f32) = (rng.random(), rng.random());
            m.push_row(&[
                a,
                b,
                (a + b) / 2.0,
                a * b,
                1.0 - a,
                0.5,
                b * b,
                (a - b).abs(),
            ]);
        }
        m
    }

    fn small() -> AutoencoderParams {
        AutoencoderParams::new()
            .hidden([16, 8, 4, 16])
            .epochs(30)
            .batch_size(32)
    }

    #[test]
    fn learns_normal_and_flags_outliers() {
        let train = manifold(1000, 1);
        let valid = manifold(200, 2);
        let mut epochs = 0;
        let (ae, hist) = small()
            .learning_rate(0.01)
            .fit(&train, Some(&valid), &mut |_| epochs += 1)
            .unwrap();
        assert_eq!(epochs, 30);
        assert!(hist.loss[29] < hist.loss[0] / 5.0, "{:?}", hist.loss);
        assert_eq!(hist.val_loss.len(), 30);
        let mut scores = vec![0.0; valid.rows()];
        ae.score_batch(&valid, &mut scores);
        let worst_normal = scores.iter().cloned().fold(0.0, f32::max);
        let outlier = [0.9, 0.1, 0.9, 0.9, 0.9, 0.0, 0.9, 0.1];
        assert!(ae.score(&outlier) > 3.0 * worst_normal);
        assert!((ae.score(valid.row(3)) - scores[3]).abs() < 1e-6);
        let mut fe = [0.0; 8];
        ae.feature_errors(&outlier, &mut fe);
        assert!((fe.iter().sum::<f32>() / 8.0 - ae.score(&outlier)).abs() < 1e-6);
        assert_eq!(ae.encode_batch(&valid).rows(), 200);
        assert_eq!(ae.latent_dim(), 4);
    }

    #[test]
    fn one_pass_gives_the_scores_latent_codes_and_classes_of_separate_passes() {
        use crate::model::logistic::LogisticParams;
        let train = manifold(600, 5);
        let (ae, _) = small().epochs(3).fit(&train, None, &mut |_| {}).unwrap();
        // 600 rows: two full chunks and a partial one; 3 rows: the row path.
        for rows in [600, 3] {
            let x = Matrix::from_vec(rows, 8, train.as_slice()[..rows * 8].to_vec()).unwrap();
            let z = ae.encode_batch(&x);
            let y: Vec<usize> = (0..rows).map(|r| r % 3).collect();
            let lr = LogisticParams::new().epochs(2).fit(&z, &y, 3).unwrap();
            let (mut want, mut got) = (vec![0.0; rows], vec![0.0; rows]);
            ae.score_batch(&x, &mut want);
            let mut prob_t = vec![0.0; rows * 3];
            let mut lws = Workspace::default();
            ae.score_batch_latent(
                &x,
                &mut Workspace::default(),
                &mut got,
                |zt, stride, first, n| {
                    for r in 0..n {
                        for j in 0..z.cols() {
                            assert_eq!(zt[j * stride + r].to_bits(), z.row(first + r)[j].to_bits());
                        }
                    }
                    let (pt, s) = lr.predict_proba_t(zt, stride, n, &mut lws);
                    assert_eq!(s % 16, 0);
                    for r in 0..n {
                        for c in 0..3 {
                            prob_t[(first + r) * 3 + c] = pt[c * s + r];
                        }
                    }
                },
            );
            assert_eq!(want, got);
            let mut p = [0.0; 3];
            for r in 0..rows {
                lr.predict_proba(z.row(r), &mut p);
                assert_eq!(p, prob_t[r * 3..r * 3 + 3], "row {r}");
            }
        }
    }

    /// Scores of `rows` in one batch, asserting that a row alone and the
    /// pass that keeps latent codes give the same bits.
    fn scores_on_every_path(ae: &Autoencoder, rows: &Matrix) -> Vec<f32> {
        let mut batch = vec![0.0; rows.rows()];
        ae.score_batch(rows, &mut batch);
        assert_eq!(ae.score(rows.row(7)).to_bits(), batch[7].to_bits());
        let mut with_latent = vec![0.0; rows.rows()];
        let mut ws = Workspace::default();
        ae.score_batch_latent(rows, &mut ws, &mut with_latent, |_, _, _, _| {});
        assert_eq!(with_latent, batch);
        batch
    }

    #[test]
    fn neighbours_join_the_score_on_every_scoring_path() {
        let (train, hold) = (manifold(600, 11), manifold(300, 12));
        let (mut ae, _) = small().epochs(10).fit(&train, None, &mut |_| {}).unwrap();
        ae.weigh_errors(&hold);
        let mut errors = vec![0.0; hold.rows()];
        ae.score_batch(&hold, &mut errors);
        let plain = ae.clone();
        let calib = ae
            .add_neighbours(&train, Some(&hold), &errors, WEIGHT)
            .unwrap();
        assert_eq!(ae.neighbours().map(LatentNeighbours::references), Some(600));
        assert!(ae.check_shapes().is_ok());
        // The calibration scores are what scoring gives those rows.
        let batch = scores_on_every_path(&ae, &hold);
        assert_eq!(batch, calib);
        // A row far from normal still scores far above it, and the
        // reconstruction error alone ranks rows differently.
        let outlier = [0.9, 0.1, 0.9, 0.9, 0.9, 0.0, 0.9, 0.1];
        assert!(ae.score(&outlier) > 3.0 * batch.iter().cloned().fold(0.0, f32::max));
        assert_ne!(plain.score(hold.row(7)), batch[7]);
        // Saved and read back, the same scores.
        let back: Autoencoder = serde_json::from_str(&serde_json::to_string(&ae).unwrap()).unwrap();
        assert_eq!(back.score(&outlier).to_bits(), ae.score(&outlier).to_bits());
        // Each reference left out in turn: one score per reference.
        let mut loo = plain.clone();
        let scores = loo.add_neighbours(&hold, None, &errors, WEIGHT).unwrap();
        assert_eq!(scores.len(), 300);
        assert_eq!(
            loo.neighbours().map(LatentNeighbours::references),
            Some(300)
        );
        // A file whose references are of another width is refused.
        let mut wrong = ae.clone();
        wrong.neighbours = loo.neighbours.clone();
        assert!(wrong.check_shapes().is_ok());
        let (narrow, _) = small()
            .hidden([16, 8, 3, 16])
            .epochs(1)
            .fit(&train, None, &mut |_| {})
            .unwrap();
        wrong.neighbours = Some(Box::new(
            LatentNeighbours::fit(
                vec![narrow.encode_batch(&train)],
                Calibration::LeaveOneOut,
                &[1.0; 600],
                WEIGHT,
            )
            .unwrap()
            .0,
        ));
        assert!(wrong.check_shapes().unwrap_err().contains("width 3"));
    }

    #[test]
    fn cross_fitted_networks_average_their_latent_distances() {
        let (train, hold) = (manifold(300, 13), manifold(200, 14));
        let (plain, _, _) = small().epochs(3).fit_folds(&train, 3, &mut |_| {}).unwrap();
        let mut errors = vec![0.0; hold.rows()];
        plain.score_batch(&hold, &mut errors);
        let mut ae = plain.clone();
        let calib = ae
            .add_neighbours(&train, Some(&hold), &errors, 0.7)
            .unwrap();
        assert_eq!(ae.neighbours().map(LatentNeighbours::networks), Some(3));
        assert!(ae.check_shapes().is_ok());
        // Every network's distance joins the score, on every path.
        let averaged = scores_on_every_path(&ae, &hold);
        assert_eq!(averaged, calib);
        // The first network's references alone (older files) still score,
        // differently.
        let mut first = plain.clone();
        let codes = |a: &Matrix| vec![plain.encode_batch(a)];
        let (nb, calib) = LatentNeighbours::fit(
            codes(&train),
            Calibration::Apart(&codes(&hold)),
            &errors,
            0.7,
        )
        .unwrap();
        first.neighbours = Some(Box::new(nb));
        assert!(first.check_shapes().is_ok());
        let alone = scores_on_every_path(&first, &hold);
        assert_eq!(alone, calib);
        assert_ne!(alone, averaged);
    }

    #[test]
    fn weighed_errors_make_the_score_relative_to_normal() {
        let (train, hold) = (manifold(600, 7), manifold(300, 8));
        let (mut ae, _) = small().epochs(10).fit(&train, None, &mut |_| {}).unwrap();
        let plain = ae.clone();
        ae.weigh_errors(&hold);
        assert_eq!(ae.error_weights.len(), 8);
        let mean = |a: &Autoencoder| {
            let mut s = vec![0.0; hold.rows()];
            a.score_batch(&hold, &mut s);
            s.iter().map(|&v| f64::from(v)).sum::<f64>() / s.len() as f64
        };
        // Each feature's weighed error averages 1 / (1 + floor share of it).
        let m = mean(&ae);
        assert!(m > 0.5 && m < 1.0, "mean weighed score {m}");
        assert!(mean(&plain) < 0.1);
        // Per-feature errors are weighed the same way, their mean the score.
        let outlier = [0.9, 0.1, 0.9, 0.9, 0.9, 0.0, 0.9, 0.1];
        let mut fe = [0.0; 8];
        ae.feature_errors(&outlier, &mut fe);
        let score = ae.score(&outlier);
        assert!((fe.iter().sum::<f32>() / 8.0 - score).abs() < 1e-4 * score);
        // The row path and the tiled batch path agree.
        let mut s = vec![0.0; hold.rows()];
        ae.score_batch(&hold, &mut s);
        assert!((ae.score(hold.row(9)) - s[9]).abs() <= 1e-6 * s[9].max(1.0));
        // A saved model without weights still reads, as the plain mean.
        let json = serde_json::to_string(&plain).unwrap();
        assert!(!json.contains("error_weights") && !json.contains("more"));
        let mut bad = ae.clone();
        bad.error_weights.pop();
        assert!(bad.check_shapes().unwrap_err().contains("error weights"));
    }

    #[test]
    fn cross_fitted_networks_average_and_score_the_rows_they_left_out() {
        let rows = manifold(250, 9);
        let p = small().epochs(4);
        let (ae, hist, held) = p.fit_folds(&rows, 5, &mut |_| {}).unwrap();
        assert_eq!((ae.networks(), held.len(), hist.loss.len()), (5, 250, 4));
        ae.check_shapes().unwrap();
        // Row 7 is in fold 2: network 2 left it out and scored it.
        let net2 = &ae.more[1];
        assert_eq!(held[7].to_bits(), net2.score(rows.row(7)).to_bits());
        // The ensemble's score is the mean of its networks'.
        let x = rows.row(3);
        let mean = std::iter::once(&ae)
            .chain(&ae.more)
            .map(|m| {
                Autoencoder {
                    more: Vec::new(),
                    ..m.clone()
                }
                .score(x)
            })
            .sum::<f32>()
            / 5.0;
        assert!((ae.score(x) - mean).abs() <= 1e-6 * mean);
        let mut batch = vec![0.0; rows.rows()];
        ae.score_batch(&rows, &mut batch);
        assert!((batch[3] - ae.score(x)).abs() <= 1e-6 * mean);
        let mut with_latent = vec![0.0; rows.rows()];
        ae.score_batch_latent(
            &rows,
            &mut Workspace::default(),
            &mut with_latent,
            |_, _, _, _| {},
        );
        assert_eq!(with_latent, batch);
        let (again, _, _) = p.fit_folds(&rows, 5, &mut |_| {}).unwrap();
        assert_eq!(again, ae);
        let json = serde_json::to_string(&ae).unwrap();
        assert_eq!(serde_json::from_str::<Autoencoder>(&json).unwrap(), ae);
        assert!(p.fit_folds(&rows, 1, &mut |_| {}).is_err());
        assert!(p.fit_folds(&manifold(3, 1), 5, &mut |_| {}).is_err());
    }

    #[test]
    fn same_seed_same_model() {
        let train = manifold(300, 3);
        let fit = |s| {
            small()
                .epochs(2)
                .seed(s)
                .fit(&train, None, &mut |_| {})
                .unwrap()
                .0
        };
        assert_eq!(fit(5), fit(5));
        assert_ne!(fit(5), fit(6));
    }

    #[test]
    fn rejects_bad_params_and_data() {
        let train = manifold(10, 4);
        let err =
            |p: AutoencoderParams, x: &Matrix| p.fit(x, None, &mut |_| {}).unwrap_err().to_string();
        assert!(err(small().epochs(0), &train).contains("epochs"));
        assert!(err(small().batch_size(0), &train).contains("batch"));
        assert!(err(small().learning_rate(f32::NAN), &train).contains("learning rate"));
        assert!(err(small(), &Matrix::with_cols(8)).contains("rows"));
        let mut nan = train.clone();
        nan.row_mut(0)[0] = f32::NAN;
        assert!(err(small(), &nan).contains("NaN"));
    }
}
