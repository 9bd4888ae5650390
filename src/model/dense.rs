//! A small fully connected network with batched forward and backward passes
//! and the Adam optimizer: the engine under the autoencoder and the latent
//! classifier.
//!
//! Written by hand over `kernel::gemm` (sgemm) because the models are tiny
//! (a few thousand weights): a framework's per-call overhead would dominate,
//! and this keeps the build light. `tests::gradient_matches_finite_differences`
//! guards the backpropagation.
//!
//! Inference ([`Network::predict`], [`Network::mean_squared_errors`]) runs
//! the register-tiled kernels of `kernel::Tiles` where the CPU has them
//! (AVX2 + FMA, AVX-512), which neither repack the weights nor take separate
//! passes for bias and activation; elsewhere it falls back to the sgemm path.

use std::ops::Range;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::kernel::{self, gemm, LayerT, Op, Sparse, Tiles, ROW_ALIGN};
use crate::simd::Level;

pub(crate) use super::kernel::Activation;

impl Activation {
    fn apply(self, z: &mut [f32]) {
        kernel::activate(Level::detect(), self, z);
    }

    /// Multiplies `grad` by the derivative, expressed through the output `a`.
    fn backprop(self, a: &[f32], grad: &mut [f32]) {
        match self {
            Activation::Linear => {}
            Activation::Tanh => grad.iter_mut().zip(a).for_each(|(g, &a)| *g *= 1.0 - a * a),
            Activation::Relu => grad.iter_mut().zip(a).for_each(|(g, &a)| {
                if a <= 0.0 {
                    *g = 0.0
                }
            }),
        }
    }
}

/// One fully connected layer: `a = act(x W + b)`, `W` stored `input x output`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Dense {
    input: usize,
    output: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
    activation: Activation,
}

impl Dense {
    /// Glorot-uniform weights (Keras' default) and zero bias.
    fn new(input: usize, output: usize, activation: Activation, rng: &mut impl Rng) -> Self {
        let limit = (6.0 / (input + output) as f32).sqrt();
        let weights = (0..input * output)
            .map(|_| rng.random_range(-limit..limit))
            .collect();
        Dense {
            input,
            output,
            weights,
            bias: vec![0.0; output],
            activation,
        }
    }

    fn forward(&self, x: &[f32], rows: usize, out: &mut [f32]) {
        if rows == 1 {
            return self.forward_row(x, out);
        }
        for row in out.chunks_exact_mut(self.output).take(rows) {
            row.copy_from_slice(&self.bias);
        }
        gemm(
            rows,
            self.input,
            self.output,
            1.0,
            x,
            Op::N,
            &self.weights,
            Op::N,
            1.0,
            out,
        );
        self.activation.apply(&mut out[..rows * self.output]);
    }
}

impl Dense {
    /// This layer's operands on a transposed batch `xt` of `stride` lanes.
    fn op_t<'a>(&'a self, xt: &'a [f32], stride: usize) -> LayerT<'a> {
        LayerT {
            xt,
            stride,
            w: &self.weights,
            bias: &self.bias,
            act: self.activation,
        }
    }

    /// [`Dense::forward`] of one row as a sum of scaled weight rows: streaming
    /// scores one record at a time, where sgemm's packing costs more than the
    /// product itself. The loop vectorises.
    fn forward_row(&self, x: &[f32], out: &mut [f32]) {
        let out = &mut out[..self.output];
        out.copy_from_slice(&self.bias);
        for (xi, w) in x.iter().zip(self.weights.chunks_exact(self.output)) {
            for (o, w) in out.iter_mut().zip(w) {
                *o += xi * w;
            }
        }
        self.activation.apply(out);
    }
}

/// A stack of [`Dense`] layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Network {
    layers: Vec<Dense>,
}

/// The first `len` values of `buf`, grown (never shrunk) to hold them: the
/// kernels overwrite every value, and resizing to each layer's width
/// zeroed memory layer after layer.
pub(super) fn grown(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

impl Network {
    /// Layers of sizes `sizes[0] -> sizes[1] -> ...` with `activations[i]`
    /// after layer `i`.
    ///
    /// # Panics
    /// If `activations.len() + 1 != sizes.len()`.
    pub(crate) fn new(sizes: &[usize], activations: &[Activation], rng: &mut impl Rng) -> Self {
        assert_eq!(sizes.len(), activations.len() + 1);
        let layers = sizes
            .windows(2)
            .zip(activations)
            .map(|(w, &act)| Dense::new(w[0], w[1], act, rng))
            .collect();
        Network { layers }
    }

    /// Checks that `depth` layers fit together and hold as many weights as
    /// their widths say: a network read from a file is untrusted.
    pub(crate) fn check_shapes(&self, depth: usize) -> Result<(), String> {
        if self.layers.len() != depth {
            return Err(format!("{} layers, expected {depth}", self.layers.len()));
        }
        for (i, l) in self.layers.iter().enumerate() {
            let weights = l.input.checked_mul(l.output);
            if l.input == 0 || weights != Some(l.weights.len()) || l.bias.len() != l.output {
                return Err(format!(
                    "layer {i}: weights or bias do not match its widths"
                ));
            }
            if let Some(next) = self.layers.get(i + 1) {
                if next.input != l.output {
                    return Err(format!(
                        "layer {i} outputs {}, layer {} reads {}",
                        l.output,
                        i + 1,
                        next.input
                    ));
                }
            }
        }
        Ok(())
    }

    /// Width of the input.
    pub(crate) fn input_dim(&self) -> usize {
        self.layers.first().map_or(0, |l| l.input)
    }

    /// Width of layer `i`'s output.
    pub(crate) fn width(&self, i: usize) -> usize {
        self.layers[i].output
    }

    /// Number of layers.
    pub(crate) fn depth(&self) -> usize {
        self.layers.len()
    }

    /// Runs `rows` rows of `x` through the first `upto` layers, keeping every
    /// layer's output in `ws`; returns the last one.
    pub(crate) fn forward<'w>(
        &self,
        x: &[f32],
        rows: usize,
        upto: usize,
        ws: &'w mut Workspace,
    ) -> &'w [f32] {
        ws.ensure(self, rows);
        for (l, layer) in self.layers.iter().enumerate().take(upto) {
            let (done, rest) = ws.acts.split_at_mut(l);
            let input = if l == 0 { x } else { &done[l - 1][..] };
            layer.forward(input, rows, &mut rest[0]);
        }
        &ws.acts[upto - 1][..rows * self.layers[upto - 1].output]
    }

    /// Backpropagates `grad_out` (d loss / d final output, `rows x out`,
    /// overwritten) through the network after [`Network::forward`] on the same
    /// `x` and `ws`, writing parameter gradients to `grads`. `l1_first` adds
    /// the gradient of `l1_first * sum|a0| / rows` (Keras' L1 activity
    /// regularisation) on the first layer's output.
    pub(crate) fn backward(
        &self,
        x: &[f32],
        rows: usize,
        ws: &mut Workspace,
        grad_out: &mut [f32],
        l1_first: f32,
        grads: &mut Gradients,
    ) {
        let last = self.layers.len() - 1;
        let mut delta = std::mem::take(&mut ws.delta);
        delta.resize(grad_out.len(), 0.0);
        delta.copy_from_slice(grad_out);
        for l in (0..=last).rev() {
            let layer = &self.layers[l];
            let a = &ws.acts[l][..rows * layer.output];
            let d = &mut delta[..rows * layer.output];
            if l == 0 && l1_first > 0.0 {
                let c = l1_first / rows as f32;
                d.iter_mut().zip(a).for_each(|(g, &a)| *g += c * a.signum());
            }
            layer.activation.backprop(a, d);
            let input = if l == 0 { x } else { &ws.acts[l - 1][..] };
            gemm(
                layer.input,
                rows,
                layer.output,
                1.0,
                input,
                Op::T,
                d,
                Op::N,
                0.0,
                &mut grads.weights[l],
            );
            column_sums(d, layer.output, &mut grads.bias[l]);
            if l > 0 {
                let back = &mut ws.back;
                back.resize(rows * layer.input, 0.0);
                gemm(
                    rows,
                    layer.output,
                    layer.input,
                    1.0,
                    d,
                    Op::N,
                    &layer.weights,
                    Op::T,
                    0.0,
                    back,
                );
                std::mem::swap(&mut delta, back);
            }
        }
        ws.delta = delta;
    }

    /// Mean squared difference between each of `rows` rows of `x` and its
    /// image through the network (whose output is as wide as its input),
    /// into `out[..rows]`, by the inference kernels. Where the CPU runs the
    /// tiled kernels, a record gives the same bits alone as in a batch.
    ///
    /// With weights `w` (one per feature; empty: none), the weighted sum
    /// of squared differences instead of their mean.
    ///
    /// # Panics
    /// If `x` or `out` is shorter than `rows` rows, or the output and input
    /// widths differ.
    pub(crate) fn mean_squared_errors(
        &self,
        x: &[f32],
        rows: usize,
        w: &[f32],
        ws: &mut Workspace,
        out: &mut [f32],
    ) {
        self.mean_squared_errors_at(Level::detect(), x, rows, w, ws, out);
    }

    fn mean_squared_errors_at(
        &self,
        level: Level,
        x: &[f32],
        rows: usize,
        w: &[f32],
        ws: &mut Workspace,
        out: &mut [f32],
    ) {
        let d = self.input_dim();
        assert_eq!(self.layers.last().map(|l| l.output), Some(d), "widths");
        let out = &mut out[..rows];
        if let Some(tiles) = batch_tiles(level, rows) {
            let stride = self.forward_t(tiles, x, rows, self.depth(), ws);
            kernel::mse_t(level, &ws.xt, &ws.ping, d, stride, w, out);
            return;
        }
        let recon = self.predict_at(level, x, rows, self.depth(), ws);
        for ((row, r), s) in x.chunks_exact(d).zip(recon.chunks_exact(d)).zip(out) {
            *s = squared_error(row, r, w);
        }
    }

    /// The input and output of the last pass through the whole network on
    /// `ws`, transposed (`width x stride`), with the stride, if it was a
    /// transposed batch of `rows` rows and nothing has used `ws` since.
    pub(crate) fn last_pass<'w>(
        &self,
        ws: &'w Workspace,
        rows: usize,
    ) -> Option<(&'w [f32], &'w [f32], usize)> {
        (ws.pass == Some(rows))
            .then(|| (&ws.xt[..], &ws.ping[..], rows.next_multiple_of(ROW_ALIGN)))
    }

    /// Output of the first `upto` layers for `rows` rows of `x` (row-major,
    /// `rows x width(upto - 1)`) by the inference kernels: the values of
    /// [`Network::forward`] up to rounding. Where the CPU runs the tiled
    /// kernels, a record gives the same bits alone as in a batch.
    ///
    /// # Panics
    /// If `x` is shorter than `rows` rows or `upto` is not in `1..=depth`.
    pub(crate) fn predict<'w>(
        &self,
        x: &[f32],
        rows: usize,
        upto: usize,
        ws: &'w mut Workspace,
    ) -> &'w [f32] {
        self.predict_at(Level::detect(), x, rows, upto, ws)
    }

    fn predict_at<'w>(
        &self,
        level: Level,
        x: &[f32],
        rows: usize,
        upto: usize,
        ws: &'w mut Workspace,
    ) -> &'w [f32] {
        let width = self.layers[upto - 1].output;
        let tiles = batch_tiles(level, rows);
        if rows >= ROW_PATH_MAX && tiles.is_none() {
            return &self.forward(x, rows, upto, ws)[..rows * width];
        }
        let mut out = std::mem::take(&mut ws.out);
        out.clear();
        match tiles {
            Some(tiles) => {
                let stride = self.forward_t(tiles, x, rows, upto, ws);
                out.resize(rows * width, 0.0);
                for (j, lanes) in ws.ping.chunks_exact(stride).take(width).enumerate() {
                    for (r, &v) in lanes[..rows].iter().enumerate() {
                        out[r * width + j] = v;
                    }
                }
            }
            None => {
                for row in x.chunks_exact(self.input_dim()).take(rows) {
                    out.extend_from_slice(self.forward_row(level, row, 0..upto, ws));
                }
            }
        }
        ws.out = out;
        &ws.out
    }

    /// One record through `layers`, from `x` when they start at the first,
    /// else from the output of the layer before, left in `ws`; returns the
    /// output.
    fn forward_row<'w>(
        &self,
        level: Level,
        x: &[f32],
        layers: Range<usize>,
        ws: &'w mut Workspace,
    ) -> &'w [f32] {
        ws.pass = None;
        let first = layers.start;
        let mut width = first
            .checked_sub(1)
            .map_or(self.input_dim(), |l| self.width(l));
        for (l, layer) in (first..).zip(&self.layers[layers]) {
            let input = if l == 0 { x } else { &ws.ping[..width] };
            kernel::layer_row(
                level,
                input,
                &layer.weights,
                &layer.bias,
                layer.activation,
                grown(&mut ws.pong, layer.output),
            );
            std::mem::swap(&mut ws.ping, &mut ws.pong);
            width = layer.output;
        }
        &ws.ping[..width]
    }

    /// `rows` rows of `x` through the first `upto` layers as a transposed
    /// batch: leaves the input in `ws.xt` and the output in `ws.ping`
    /// (`width x stride`); returns the stride.
    fn forward_t(
        &self,
        tiles: Tiles,
        x: &[f32],
        rows: usize,
        upto: usize,
        ws: &mut Workspace,
    ) -> usize {
        let stride = rows.next_multiple_of(ROW_ALIGN);
        kernel::transpose_into(x, rows, self.input_dim(), stride, &mut ws.xt);
        for (l, layer) in self.layers[..upto].iter().enumerate() {
            let xt = if l == 0 { &ws.xt } else { &ws.ping };
            let out = grown(&mut ws.pong, layer.output * stride);
            tiles.layer(
                &ws.sparse.drop_zero_inputs(layer.op_t(xt, stride), rows),
                out,
            );
            std::mem::swap(&mut ws.ping, &mut ws.pong);
            if ws.keep == Some(l) {
                ws.kept.clear();
                ws.kept.extend_from_slice(&ws.ping[..layer.output * stride]);
            }
        }
        ws.pass = (upto == self.depth()).then_some(rows);
        stride
    }

    /// Layer `l` alone on `rows` rows given transposed (input `j` of row `r`
    /// at `xt[j * stride + r]`), then the softmax of each row's outputs,
    /// left transposed in `ws`: returns them (output `j` of row `r` at
    /// `p[j * s + r]`) and their stride `s`, a multiple of [`ROW_ALIGN`].
    /// Each row has the bits [`Network::predict`] then
    /// [`kernel::softmax_rows`] give for a network made of that layer.
    pub(crate) fn softmax_t<'w>(
        &self,
        l: usize,
        xt: &[f32],
        stride: usize,
        rows: usize,
        ws: &'w mut Workspace,
    ) -> (&'w [f32], usize) {
        let layer = &self.layers[l];
        let (k, n) = (layer.input, layer.output);
        let level = Level::detect();
        ws.pass = None;
        let tiles = batch_tiles(level, rows).filter(|_| stride.is_multiple_of(ROW_ALIGN));
        if let Some(tiles) = tiles {
            let z = grown(&mut ws.pong, n * stride);
            tiles.layer(&ws.sparse.drop_zero_inputs(layer.op_t(xt, stride), rows), z);
            kernel::softmax_t(level, z, n, stride);
            return (&ws.pong[..n * stride], stride);
        }
        let s = rows.next_multiple_of(ROW_ALIGN);
        let (x, o) = (grown(&mut ws.ping, k), grown(&mut ws.out, n));
        let pt = grown(&mut ws.pong, n * s);
        for r in 0..rows {
            for (j, v) in x.iter_mut().enumerate() {
                *v = xt[j * stride + r];
            }
            kernel::layer_row(level, x, &layer.weights, &layer.bias, layer.activation, o);
            kernel::softmax_rows(level, o, n);
            for (j, &v) in o.iter().enumerate() {
                pt[j * s + r] = v;
            }
        }
        (&ws.pong[..n * s], s)
    }

    /// [`Network::mean_squared_errors`] that also leaves layer `keep`'s
    /// output for the same rows in `ws`, transposed (`width x stride`, see
    /// [`Workspace::kept`]): the latent code of an autoencoder without a
    /// second pass through its encoder. Returns the stride; the values are
    /// those of [`Network::predict`] to the bit.
    pub(crate) fn mean_squared_errors_keeping(
        &self,
        x: &[f32],
        rows: usize,
        keep: usize,
        w: &[f32],
        ws: &mut Workspace,
        out: &mut [f32],
    ) -> usize {
        self.mean_squared_errors_keeping_at(Level::detect(), (x, rows), keep, w, ws, out)
    }

    fn mean_squared_errors_keeping_at(
        &self,
        level: Level,
        (x, rows): (&[f32], usize),
        keep: usize,
        w: &[f32],
        ws: &mut Workspace,
        out: &mut [f32],
    ) -> usize {
        let d = self.input_dim();
        let width = self.width(keep);
        if let Some(tiles) = batch_tiles(level, rows) {
            ws.keep = Some(keep);
            let stride = self.forward_t(tiles, x, rows, self.depth(), ws);
            ws.keep = None;
            kernel::mse_t(level, &ws.xt, &ws.ping, d, stride, w, &mut out[..rows]);
            return stride;
        }
        if rows >= ROW_PATH_MAX {
            // Without the tiled kernel, the batch pass keeps every layer.
            self.mean_squared_errors_at(level, x, rows, w, ws, out);
            let z = &ws.acts[keep][..rows * width];
            kernel::transpose_into(z, rows, width, rows, &mut ws.kept);
            return rows;
        }
        // Record by record, the encoder's output kept on the way through.
        let mut kept = std::mem::take(&mut ws.kept);
        let codes = grown(&mut kept, width * rows);
        for (r, (row, s)) in x.chunks_exact(d).zip(&mut out[..rows]).enumerate() {
            let z = self.forward_row(level, row, 0..keep + 1, ws);
            z.iter()
                .enumerate()
                .for_each(|(j, &v)| codes[j * rows + r] = v);
            let recon = self.forward_row(level, row, keep + 1..self.depth(), ws);
            *s = squared_error(row, recon, w);
        }
        ws.kept = kept;
        rows
    }

    fn params_mut(&mut self) -> impl Iterator<Item = &mut Vec<f32>> {
        self.layers
            .iter_mut()
            .flat_map(|l| [&mut l.weights, &mut l.bias])
    }
}

/// Batches smaller than this run record by record at inference: a transposed
/// batch computes whole lane groups.
const ROW_PATH_MAX: usize = 4;

/// The tiled kernel that runs `rows` rows at `level` as a transposed batch,
/// if any: none for batches under [`ROW_PATH_MAX`].
pub(super) fn batch_tiles(level: Level, rows: usize) -> Option<Tiles> {
    Tiles::new(level).filter(|_| rows >= ROW_PATH_MAX)
}

fn column_sums(x: &[f32], cols: usize, out: &mut [f32]) {
    out.fill(0.0);
    for row in x.chunks_exact(cols) {
        out.iter_mut().zip(row).for_each(|(o, &v)| *o += v);
    }
}

/// Per-layer outputs and scratch space, reused across batches so that
/// training and scoring allocate nothing per row.
#[derive(Debug, Default, Clone)]
pub struct Workspace {
    acts: Vec<Vec<f32>>,
    delta: Vec<f32>,
    back: Vec<f32>,
    /// Inference: the transposed input, two layer outputs, the result.
    xt: Vec<f32>,
    ping: Vec<f32>,
    pong: Vec<f32>,
    out: Vec<f32>,
    /// The layer whose transposed output a pass keeps, and that output.
    keep: Option<usize>,
    kept: Vec<f32>,
    /// A layer's transposed input and weights without its zero inputs.
    sparse: Sparse,
    /// Rows of the last pass through a whole network as a transposed batch,
    /// while `xt` and `ping` still hold its input and output.
    pass: Option<usize>,
    /// Scratch of the latent-neighbour search.
    neighbours: Vec<f32>,
}

impl Workspace {
    fn ensure(&mut self, net: &Network, rows: usize) {
        self.acts.resize_with(net.layers.len(), Vec::new);
        for (a, l) in self.acts.iter_mut().zip(&net.layers) {
            if a.len() < rows * l.output {
                a.resize(rows * l.output, 0.0);
            }
        }
    }

    /// The layer output kept by
    /// [`Network::mean_squared_errors_keeping`]: `width` runs of `stride`
    /// values, one run per unit, one value per row.
    pub(crate) fn kept(&self) -> &[f32] {
        &self.kept
    }

    /// [`Workspace::kept`] and scratch for a search over it.
    pub(crate) fn kept_and_scratch(&mut self) -> (&[f32], &mut Vec<f32>) {
        (&self.kept, &mut self.neighbours)
    }

    /// Output of layer `l` from the last forward pass (`rows x width`).
    pub fn layer_output(&self, l: usize) -> &[f32] {
        &self.acts[l]
    }
}

/// Gradients of every parameter, shaped like the network.
#[derive(Debug, Clone)]
pub(crate) struct Gradients {
    weights: Vec<Vec<f32>>,
    bias: Vec<Vec<f32>>,
}

impl Gradients {
    /// Zero gradients for `net`.
    pub(crate) fn new(net: &Network) -> Self {
        Gradients {
            weights: net
                .layers
                .iter()
                .map(|l| vec![0.0; l.weights.len()])
                .collect(),
            bias: net.layers.iter().map(|l| vec![0.0; l.bias.len()]).collect(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Vec<f32>> {
        self.weights
            .iter()
            .zip(&self.bias)
            .flat_map(|(w, b)| [w, b])
    }
}

/// Adam (Kingma & Ba 2015) with Keras' defaults for beta1, beta2 and epsilon.
#[derive(Debug, Clone)]
pub(crate) struct Adam {
    lr: f32,
    step: i32,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl Adam {
    const BETA1: f32 = 0.9;
    const BETA2: f32 = 0.999;
    const EPS: f32 = 1e-7;

    /// Optimizer state for `net` with learning rate `lr`.
    pub(crate) fn new(net: &Network, lr: f32) -> Self {
        let zeros: Vec<Vec<f32>> = Gradients::new(net)
            .iter()
            .map(|g| vec![0.0; g.len()])
            .collect();
        Adam {
            lr,
            step: 0,
            m: zeros.clone(),
            v: zeros,
        }
    }

    /// One update of `net` along `grads`.
    pub(crate) fn step(&mut self, net: &mut Network, grads: &Gradients) {
        self.step += 1;
        let c1 = 1.0 - Self::BETA1.powi(self.step);
        let c2 = 1.0 - Self::BETA2.powi(self.step);
        let lr = self.lr * c2.sqrt() / c1;
        let slots = net
            .params_mut()
            .zip(grads.iter())
            .zip(self.m.iter_mut().zip(&mut self.v));
        for ((p, g), (m, v)) in slots {
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *m = Self::BETA1 * *m + (1.0 - Self::BETA1) * g;
                *v = Self::BETA2 * *v + (1.0 - Self::BETA2) * g * g;
                *p -= lr * *m / (v.sqrt() + Self::EPS);
            }
        }
    }
}

/// Mean squared difference of a row and its reconstruction, or with
/// weights `w` their weighted sum; in feature order, as `kernel::mse_t`.
fn squared_error(row: &[f32], recon: &[f32], w: &[f32]) -> f32 {
    let e2 = row.iter().zip(recon).map(|(a, b)| (a - b) * (a - b));
    if w.is_empty() {
        return e2.fold(0.0f32, |acc, e| acc + e) / row.len() as f32;
    }
    e2.zip(w).fold(0.0f32, |acc, (e, &wj)| acc + wj * e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn loss(net: &Network, x: &[f32], y: &[f32], rows: usize, l1: f32) -> f64 {
        let mut ws = Workspace::default();
        let out = net.forward(x, rows, net.depth(), &mut ws).to_vec();
        let mse: f64 = out
            .iter()
            .zip(y)
            .map(|(o, t)| ((o - t) as f64).powi(2))
            .sum();
        let reg: f64 = ws.layer_output(0)[..rows * net.width(0)]
            .iter()
            .map(|a| a.abs() as f64)
            .sum();
        mse / out.len() as f64 + l1 as f64 * reg / rows as f64
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let acts = [Activation::Tanh, Activation::Relu, Activation::Linear];
        let net = Network::new(&[4, 6, 5, 3], &acts, &mut rng);
        let rows = 5;
        let x: Vec<f32> = (0..rows * 4).map(|_| rng.random_range(-1.0..1.0)).collect();
        let y: Vec<f32> = (0..rows * 3).map(|_| rng.random_range(-1.0..1.0)).collect();
        let l1 = 0.01;

        let mut ws = Workspace::default();
        let out = net.forward(&x, rows, net.depth(), &mut ws).to_vec();
        let n = out.len() as f32;
        let mut g: Vec<f32> = out.iter().zip(&y).map(|(o, t)| 2.0 * (o - t) / n).collect();
        let mut grads = Gradients::new(&net);
        net.backward(&x, rows, &mut ws, &mut g, l1, &mut grads);

        let analytic: Vec<f32> = grads.iter().flatten().copied().collect();
        let mut probe = net.clone();
        let count = analytic.len();
        let h = 1e-3;
        for i in (0..count).step_by(3) {
            let set = |p: &mut Network, delta: f32| {
                let slot = p.params_mut().flat_map(|v| v.iter_mut()).nth(i).unwrap();
                *slot += delta;
            };
            set(&mut probe, h);
            let up = loss(&probe, &x, &y, rows, l1);
            set(&mut probe, -2.0 * h);
            let down = loss(&probe, &x, &y, rows, l1);
            set(&mut probe, h);
            let numeric = ((up - down) / (2.0 * h as f64)) as f32;
            let err = (numeric - analytic[i]).abs();
            assert!(
                err < 2e-3 * (1.0 + numeric.abs()),
                "param {i}: numeric {numeric} analytic {}",
                analytic[i]
            );
        }
    }

    #[test]
    fn one_row_path_matches_the_batched_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let acts = [Activation::Tanh, Activation::Relu, Activation::Linear];
        let net = Network::new(&[7, 5, 4, 7], &acts, &mut rng);
        let x: Vec<f32> = (0..3 * 7).map(|_| rng.random_range(-1.0..1.0)).collect();
        let batched = net
            .forward(&x, 3, net.depth(), &mut Workspace::default())
            .to_vec();
        let mut ws = Workspace::default();
        for (row, want) in x.chunks(7).zip(batched.chunks(7)) {
            let got = net.forward(row, 1, net.depth(), &mut ws);
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-5, "{g} vs {w}");
            }
        }
    }

    #[test]
    fn inference_matches_the_gemm_path_at_every_level() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let acts = [
            Activation::Tanh,
            Activation::Relu,
            Activation::Tanh,
            Activation::Linear,
        ];
        for sizes in [[40, 100, 50, 17, 40], [3, 1, 33, 8, 3], [9, 16, 5, 31, 9]] {
            let net = Network::new(&sizes, &acts, &mut rng);
            let d = sizes[0];
            for rows in [1, 3, 17, 300] {
                let x: Vec<f32> = (0..rows * d).map(|_| rng.random_range(-0.5..1.5)).collect();
                let want = net
                    .forward(&x, rows, net.depth(), &mut Workspace::default())
                    .to_vec();
                for level in Level::supported() {
                    let mut ws = Workspace::default();
                    for upto in [2, net.depth()] {
                        let got = net.predict_at(level, &x, rows, upto, &mut ws).to_vec();
                        let mut gemm_ws = Workspace::default();
                        let exp = net.forward(&x, rows, upto, &mut gemm_ws);
                        assert_eq!(got.len(), exp.len());
                        for (g, e) in got.iter().zip(exp) {
                            assert!((g - e).abs() < 1e-5, "{level:?} {sizes:?} {rows}: {g} {e}");
                        }
                    }
                    let mut mse = vec![0.0; rows];
                    net.mean_squared_errors_at(level, &x, rows, &[], &mut ws, &mut mse);
                    for ((s, row), r) in mse.iter().zip(x.chunks(d)).zip(want.chunks(d)) {
                        let e: f32 = row
                            .iter()
                            .zip(r)
                            .map(|(a, b)| (a - b) * (a - b))
                            .sum::<f32>()
                            / d as f32;
                        assert!((s - e).abs() < 1e-5 * (1.0 + e), "{level:?}: {s} vs {e}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_record_scores_the_same_alone_and_in_a_batch() {
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        let acts = [Activation::Tanh, Activation::Relu, Activation::Linear];
        let net = Network::new(&[21, 30, 7, 21], &acts, &mut rng);
        let x: Vec<f32> = (0..50 * 21).map(|_| rng.random_range(-1.0..1.0)).collect();
        for level in Level::supported() {
            let mut ws = Workspace::default();
            let mut batch = vec![0.0; 50];
            net.mean_squared_errors_at(level, &x, 50, &[], &mut ws, &mut batch);
            let recon = net.predict_at(level, &x, 50, net.depth(), &mut ws).to_vec();
            for (r, row) in x.chunks(21).enumerate().step_by(7) {
                let mut one = [0.0];
                net.mean_squared_errors_at(level, row, 1, &[], &mut ws, &mut one);
                let alone = net.predict_at(level, row, 1, net.depth(), &mut ws);
                if Tiles::new(level).is_some() {
                    assert_eq!(one[0].to_bits(), batch[r].to_bits(), "{level:?} row {r}");
                    assert_eq!(alone, &recon[r * 21..][..21], "{level:?} row {r}");
                } else {
                    assert!((one[0] - batch[r]).abs() < 1e-6, "{level:?} row {r}");
                }
            }
        }
    }

    #[test]
    fn keeping_the_latent_codes_changes_no_error_at_every_level() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let acts = [Activation::Tanh, Activation::Relu, Activation::Linear];
        let net = Network::new(&[13, 20, 6, 13], &acts, &mut rng);
        let w: Vec<f32> = (0..13).map(|j| 0.5 + j as f32 / 13.0).collect();
        for rows in [1, 3, 4, 37] {
            let x: Vec<f32> = (0..rows * 13)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            for level in Level::supported() {
                let mut ws = Workspace::default();
                let mut plain = vec![0.0; rows];
                net.mean_squared_errors_at(level, &x, rows, &w, &mut ws, &mut plain);
                let codes = net.predict_at(level, &x, rows, 2, &mut ws).to_vec();
                let mut kept = vec![0.0; rows];
                let stride = net.mean_squared_errors_keeping_at(
                    level,
                    (&x, rows),
                    1,
                    &w,
                    &mut ws,
                    &mut kept,
                );
                assert_eq!(kept, plain, "{level:?} {rows} rows");
                for (r, code) in codes.chunks(6).enumerate() {
                    for (j, &v) in code.iter().enumerate() {
                        let k = ws.kept()[j * stride + r];
                        assert_eq!(k.to_bits(), v.to_bits(), "{level:?} {rows} rows");
                    }
                }
            }
        }
    }

    #[test]
    fn shapes_read_from_a_file_are_checked() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let net = Network::new(
            &[4, 3, 2],
            &[Activation::Tanh, Activation::Linear],
            &mut rng,
        );
        assert!(net.check_shapes(2).is_ok());
        assert!(net.check_shapes(3).is_err());
        let mut short = net.clone();
        short.layers[1].weights.pop();
        assert!(short.check_shapes(2).unwrap_err().contains("layer 1"));
        let mut unchained = net.clone();
        unchained.layers[1].input = 5;
        unchained.layers[1].weights = vec![0.0; 10];
        assert!(unchained.check_shapes(2).unwrap_err().contains("reads 5"));
    }

    #[test]
    fn adam_fits_a_linear_map() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut net = Network::new(&[2, 1], &[Activation::Linear], &mut rng);
        let x: Vec<f32> = (0..64).map(|i| ((i * 7) % 11) as f32 / 11.0).collect();
        let y: Vec<f32> = x.chunks(2).map(|r| 3.0 * r[0] - 2.0 * r[1] + 0.5).collect();
        let mut adam = Adam::new(&net, 0.05);
        let mut grads = Gradients::new(&net);
        let mut ws = Workspace::default();
        for _ in 0..2000 {
            let out = net.forward(&x, 32, 1, &mut ws).to_vec();
            let mut g: Vec<f32> = out
                .iter()
                .zip(&y)
                .map(|(o, t)| 2.0 * (o - t) / 32.0)
                .collect();
            net.backward(&x, 32, &mut ws, &mut g, 0.0, &mut grads);
            adam.step(&mut net, &grads);
        }
        let w = &net.layers[0];
        assert!((w.weights[0] - 3.0).abs() < 0.01 && (w.weights[1] + 2.0).abs() < 0.01);
        assert!((w.bias[0] - 0.5).abs() < 0.01);
    }
}
