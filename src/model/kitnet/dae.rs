//! One small autoencoder of the KitNET ensemble, as Kitsune-py's `dA`: tied
//! weights, sigmoid hidden and output layers, inputs min-max normalised with
//! the running minimum and maximum seen while training, one SGD step per record.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Added to the normalising range, as Kitsune-py does, so a constant input
/// does not divide by zero.
const RANGE_EPS: f64 = 1e-16;

/// A tied-weight autoencoder over `visible` inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Dae {
    visible: usize,
    hidden: usize,
    /// `visible x hidden`, row-major: `w[i * hidden + j]`.
    w: Vec<f64>,
    hbias: Vec<f64>,
    vbias: Vec<f64>,
    /// Running minimum per input; `f64::MAX` until the first training record
    /// (finite, unlike Kitsune-py's `inf`, so the state serialises as JSON).
    norm_min: Vec<f64>,
    /// Running maximum per input; `f64::MIN` until the first training record.
    norm_max: Vec<f64>,
}

/// Per-record buffers shared by all the autoencoders of an ensemble, sized for
/// the largest, so the per-record path does not allocate.
#[derive(Debug, Clone, Default)]
pub(super) struct DaeScratch {
    x: Vec<f64>,
    y: Vec<f64>,
    z: Vec<f64>,
    l1: Vec<f64>,
}

impl DaeScratch {
    /// Buffers for autoencoders of at most `visible` inputs and `hidden` units.
    pub(super) fn new(visible: usize, hidden: usize) -> Self {
        DaeScratch {
            x: vec![0.0; visible],
            y: vec![0.0; hidden],
            z: vec![0.0; visible],
            l1: vec![0.0; hidden],
        }
    }

    /// Squared reconstruction error of each input of the last record run.
    pub(super) fn squared_errors(&self, visible: usize) -> impl Iterator<Item = f64> + '_ {
        self.x
            .iter()
            .zip(&self.z)
            .take(visible)
            .map(|(x, z)| (x - z) * (x - z))
    }
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

impl Dae {
    /// A new autoencoder with `ceil(visible * hidden_ratio)` hidden units and
    /// weights drawn uniformly in `[-1/visible, 1/visible]`, as Kitsune-py.
    pub(super) fn new(visible: usize, hidden_ratio: f64, rng: &mut impl Rng) -> Self {
        let hidden = hidden_units(visible, hidden_ratio);
        let a = 1.0 / visible as f64;
        let w = (0..visible * hidden)
            .map(|_| rng.random_range(-a..=a))
            .collect();
        Dae {
            visible,
            hidden,
            w,
            hbias: vec![0.0; hidden],
            vbias: vec![0.0; visible],
            norm_min: vec![f64::MAX; visible],
            norm_max: vec![f64::MIN; visible],
        }
    }

    /// Number of inputs.
    pub(super) fn visible(&self) -> usize {
        self.visible
    }

    /// Number of hidden units.
    pub(super) fn hidden(&self) -> usize {
        self.hidden
    }

    /// Checks that the buffers agree with the declared sizes (a loaded state
    /// may have been edited), so no later indexing can fail.
    pub(super) fn check(&self) -> Result<(), String> {
        let (v, h) = (self.visible, self.hidden);
        if v == 0 || h == 0 {
            return Err(format!("autoencoder with {v} inputs and {h} hidden units"));
        }
        // Sizes come from a file: an overflowing product is a mismatch.
        let ok = v.checked_mul(h) == Some(self.w.len())
            && self.hbias.len() == h
            && self.vbias.len() == v
            && self.norm_min.len() == v
            && self.norm_max.len() == v;
        if !ok {
            return Err(format!(
                "autoencoder {v}x{h}: weight or bias lengths do not match"
            ));
        }
        Ok(())
    }

    /// Updates the running min/max with `input` and writes the normalised
    /// record into `s.x`.
    fn normalise_learning(&mut self, input: &[f64], s: &mut DaeScratch) {
        for (i, &v) in input.iter().enumerate().take(self.visible) {
            let (lo, hi) = (&mut self.norm_min[i], &mut self.norm_max[i]);
            if v > *hi {
                *hi = v;
            }
            if v < *lo {
                *lo = v;
            }
            s.x[i] = (v - *lo) / (*hi - *lo + RANGE_EPS);
        }
    }

    /// Writes the normalised record into `s.x` without learning its range;
    /// values outside the range seen in training go beyond [0, 1].
    fn normalise(&self, input: &[f64], s: &mut DaeScratch) {
        for (i, &v) in input.iter().enumerate().take(self.visible) {
            let (lo, hi) = (self.norm_min[i], self.norm_max[i]);
            s.x[i] = (v - lo) / (hi - lo + RANGE_EPS);
        }
    }

    /// Encodes `s.x` into `s.y` and decodes it into `s.z`; returns the RMSE.
    fn forward(&self, s: &mut DaeScratch) -> f64 {
        let (v, h) = (self.visible, self.hidden);
        let x = &s.x[..v];
        let y = &mut s.y[..h];
        y.copy_from_slice(&self.hbias);
        for (xi, row) in x.iter().zip(self.w.chunks_exact(h)) {
            for (yj, wij) in y.iter_mut().zip(row) {
                *yj += xi * wij;
            }
        }
        for yj in y.iter_mut() {
            *yj = sigmoid(*yj);
        }
        let mut sum = 0.0;
        let rows = self.w.chunks_exact(h).zip(&self.vbias);
        for ((row, b), (xi, zi)) in rows.zip(x.iter().zip(&mut s.z[..v])) {
            let dot: f64 = row.iter().zip(y.iter()).map(|(w, y)| w * y).sum();
            *zi = sigmoid(dot + b);
            let e = xi - *zi;
            sum += e * e;
        }
        (sum / v as f64).sqrt()
    }

    /// One SGD step on `input` (of `visible` values); returns the RMSE of the
    /// reconstruction before the step, as Kitsune-py's `dA.train`.
    pub(super) fn train(&mut self, input: &[f64], lr: f64, s: &mut DaeScratch) -> f64 {
        self.normalise_learning(input, s);
        let rmse = self.forward(s);
        let (v, h) = (self.visible, self.hidden);
        // L_h1 = (L_h2 . W) * y * (1 - y), with L_h2 = x - z.
        let l1 = &mut s.l1[..h];
        l1.fill(0.0);
        for i in 0..v {
            let e = s.x[i] - s.z[i];
            for (l, w) in l1.iter_mut().zip(&self.w[i * h..(i + 1) * h]) {
                *l += e * w;
            }
        }
        for (l, y) in l1.iter_mut().zip(&s.y[..h]) {
            *l *= y * (1.0 - y);
        }
        // W += lr * (outer(x, L_h1) + outer(L_h2, y)); biases likewise.
        for i in 0..v {
            let (x, e) = (s.x[i], s.x[i] - s.z[i]);
            let row = &mut self.w[i * h..(i + 1) * h];
            for ((w, l), y) in row.iter_mut().zip(l1.iter()).zip(&s.y[..h]) {
                *w += lr * (x * l + e * y);
            }
            self.vbias[i] += lr * e;
        }
        for (b, l) in self.hbias.iter_mut().zip(l1.iter()) {
            *b += lr * l;
        }
        rmse
    }

    /// RMSE of the reconstruction of `input`, without learning. The
    /// normalised input and its reconstruction are left in `s`.
    pub(super) fn execute(&self, input: &[f64], s: &mut DaeScratch) -> f64 {
        self.normalise(input, s);
        self.forward(s)
    }
}

/// Kitsune-py's hidden layer size: `ceil(visible * ratio)`, at least one.
fn hidden_units(visible: usize, ratio: f64) -> usize {
    ((visible as f64 * ratio).ceil() as usize).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn dae(v: usize) -> Dae {
        Dae::new(v, 0.75, &mut ChaCha8Rng::seed_from_u64(7))
    }

    #[test]
    fn sizes_follow_kitsune() {
        let d = dae(10);
        assert_eq!((d.visible(), d.hidden()), (10, 8));
        assert_eq!(dae(1).hidden(), 1);
        assert!(d.w.iter().all(|w| w.abs() <= 0.1));
        assert!(d.check().is_ok());
    }

    #[test]
    fn learns_to_reconstruct_its_inputs() {
        let mut d = dae(4);
        let mut s = DaeScratch::new(4, 3);
        let patterns = [[0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0]];
        let first = d.train(&patterns[0], 0.1, &mut s);
        for k in 0..20_000 {
            d.train(&patterns[k % 2], 0.1, &mut s);
        }
        let after = d.execute(&patterns[0], &mut s);
        assert!(after < first / 3.0, "rmse {first} -> {after}");
        // An input far outside the range seen scores far higher.
        let odd = d.execute(&[5.0, 5.0, -4.0, 5.0], &mut s);
        assert!(odd > 10.0 * after, "odd {odd} vs normal {after}");
    }

    #[test]
    fn constant_input_does_not_divide_by_zero() {
        let mut d = dae(3);
        let mut s = DaeScratch::new(3, 3);
        for _ in 0..10 {
            assert!(d.train(&[2.0, 2.0, 2.0], 0.1, &mut s).is_finite());
        }
        assert!(d.execute(&[2.0, 2.0, 2.0], &mut s).is_finite());
    }

    #[test]
    fn check_rejects_inconsistent_state() {
        let mut d = dae(5);
        d.w.pop();
        assert!(d.check().is_err());
        let mut d = dae(5);
        d.hidden = 0;
        assert!(d.check().is_err());
    }
}
