//! The numeric kernels under the dense networks: a safe wrapper around
//! `matrixmultiply::sgemm` (training), a fast `tanh`, elementwise loops
//! compiled per [`Level`] by [`multiversion!`], and the register-tiled
//! inference kernels of [`Tiles`].
//!
//! Measured on this project's autoencoder, `tanh` from libm costs more than
//! the matrix products; the rational approximation below (Eigen's, accurate
//! to a few float ulps) vectorises and removes that bottleneck.
//!
//! The tiled kernels (AVX2 + FMA, AVX-512) work on *transposed* batches (one
//! row per feature, one lane per record): a layer is then a sum of input rows
//! scaled by broadcast weights, read straight from the stored
//! `input x output` matrix (nothing repacked), no lane is wasted on widths
//! that are not a multiple of the vector, and bias and activation are applied
//! while the outputs are still in registers. Each output is
//! `b + x_0 w_0 + x_1 w_1 + ...` accumulated in input order with fused
//! multiply-adds, by the batched and the one-record kernel alike, so a
//! record gives the same bits alone as in a batch. Measured on the default
//! autoencoder (40 features), 4096 rows score in 1.26 ms with AVX-512
//! against 2.7 ms through sgemm (`cargo bench --bench autoencoder`); with
//! AVX2, 2.0 ms against 2.95 ms.

use crate::simd::{madd, multiversion, Level};

/// Activation of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Activation {
    /// Identity.
    Linear,
    /// Hyperbolic tangent.
    Tanh,
    /// max(0, x).
    Relu,
}

/// How an operand of [`gemm`] is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    /// As stored (row-major).
    N,
    /// Transposed.
    T,
}

/// `c = alpha * op(a) * op(b) + beta * c` for row-major matrices where
/// `op(a)` is `m x k`, `op(b)` is `k x n` and `c` is `m x n`.
///
/// # Panics
/// If a slice is shorter than its dimensions: a programming error.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    op_a: Op,
    b: &[f32],
    op_b: Op,
    beta: f32,
    c: &mut [f32],
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    // Row-major strides; a transposed operand swaps them.
    let (rsa, csa) = match op_a {
        Op::N => (k as isize, 1),
        Op::T => (1, m as isize),
    };
    let (rsb, csb) = match op_b {
        Op::N => (n as isize, 1),
        Op::T => (1, k as isize),
    };
    #[allow(unsafe_code)]
    // SAFETY: the assertion above guarantees that every index sgemm derives
    // from (m, k, n) and these strides lies inside `a`, `b` and `c`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// Coefficients of [`fast_tanh`], shared with its vector forms.
mod tanh13 {
    /// Beyond this bound tanh rounds to +-1 in f32.
    pub(super) const CLAMP: f32 = 7.905_311;
    /// Numerator, odd powers 1 to 13.
    pub(super) const A: [f32; 7] = [
        4.893_524_6e-3,
        6.372_619e-4,
        1.485_722_4e-5,
        5.122_297e-8,
        -8.604_672e-11,
        2.000_188e-13,
        -2.760_768_5e-16,
    ];
    /// Denominator, even powers 0 to 6.
    pub(super) const B: [f32; 4] = [4.893_525e-3, 2.268_434_7e-3, 1.185_347_1e-4, 1.198_258_4e-6];
}

/// `tanh` by a 13/6 rational approximation, exact to about 1e-7 absolute.
#[inline]
pub(super) fn fast_tanh(x: f32) -> f32 {
    use tanh13::{A, B, CLAMP};
    // Plain `*` and `+`, not `mul_add`: without a target FMA feature,
    // `mul_add` is a slow library call, and the vector forms must give the
    // same bits.
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = x2 * A[6] + A[5];
    let p = x2 * p + A[4];
    let p = x2 * p + A[3];
    let p = x2 * p + A[2];
    let p = x2 * p + A[1];
    let p = x2 * p + A[0];
    let q = x2 * B[3] + B[2];
    let q = x2 * q + B[1];
    let q = x2 * q + B[0];
    x * p / q
}

/// Records per lane group of a transposed batch: strides are multiples of it,
/// so that every [`Level`]'s vectors tile them.
pub(super) const ROW_ALIGN: usize = 16;

/// `max(v, 0)`, written so that every level gives the same bits (NaN and
/// -0 give +0, as `maxps` does).
#[inline(always)]
fn relu(v: f32) -> f32 {
    if v > 0.0 {
        v
    } else {
        0.0
    }
}

/// Applies `act` to every element of `z`.
#[inline(always)]
fn activate_body(act: Activation, z: &mut [f32]) {
    match act {
        Activation::Linear => {}
        Activation::Tanh => z.iter_mut().for_each(|v| *v = fast_tanh(*v)),
        Activation::Relu => z.iter_mut().for_each(|v| *v = relu(*v)),
    }
}

multiversion! {
    pub(super) fn activate(act: Activation, z: &mut [f32]) = activate_body;
}

/// Bounds and coefficients of [`fast_exp`] (Cephes' `expf`).
mod exp6 {
    /// Below this, `e^x` is under about 2.4e-38 and [`super::fast_exp`] gives 0.
    pub(super) const LO: f32 = -86.6;
    /// Above this, `e^x` overflows `f32`.
    pub(super) const HI: f32 = 88.722_84;
    /// `ln 2` split so that `n * LN2_HI` is exact for `|n| <= 2^14`.
    pub(super) const LN2_HI: f32 = 0.693_359_4;
    pub(super) const LN2_LO: f32 = -2.121_944_4e-4;
    /// Adding and subtracting it rounds to the nearest integer.
    pub(super) const ROUND: f32 = 12_582_912.0;
    /// `(e^r - 1 - r) / r^2` on `|r| <= ln 2 / 2`, highest power first.
    pub(super) const P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ];
}

/// `e^x` by `x = n ln 2 + r` and a degree-6 polynomial in `r` (Cephes'
/// `expf`), within 2 ulps of exact; 0 where `e^x` is below about 2.4e-38,
/// and plain `*` and `+` so that it vectorises and every level gives the
/// same bits.
#[inline(always)]
pub(super) fn fast_exp(x: f32) -> f32 {
    use exp6::{HI, LN2_HI, LN2_LO, LO, P, ROUND};
    let c = x.clamp(LO, HI);
    // `t`'s low mantissa bits hold n + 2^22, n = round(c / ln 2).
    let t = c * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = c - n * LN2_HI - n * LN2_LO;
    let p = ((((P[0] * r + P[1]) * r + P[2]) * r + P[3]) * r + P[4]) * r + P[5];
    let y = p * (r * r) + r + 1.0;
    // 2^(n-1), a normal float for n in -125..=128, times 2y (exact).
    let half_scale = f32::from_bits(t.to_bits().wrapping_sub(ROUND.to_bits() - 126) << 23);
    let e = (y * 2.0) * half_scale;
    if x < LO {
        0.0
    } else if x > HI {
        f32::INFINITY
    } else {
        e
    }
}

/// The larger of `m` and `v`, `m` when `v` is NaN: one rule for the row
/// and the lane forms of the softmax.
#[inline(always)]
fn larger(m: f32, v: f32) -> f32 {
    if v > m {
        v
    } else {
        m
    }
}

/// Each `k`-wide row of `z` turned into its softmax: `e^(v - max)` over
/// the row's sum, summed in row order.
#[inline(always)]
fn softmax_body(z: &mut [f32], k: usize) {
    for row in z.chunks_exact_mut(k) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| larger(m, v));
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = fast_exp(*v - max);
            sum += *v;
        }
        row.iter_mut().for_each(|v| *v /= sum);
    }
}

/// The `ROW_ALIGN` lanes of `z` from `at`.
#[inline(always)]
fn lanes(z: &mut [f32], at: usize) -> &mut [f32; ROW_ALIGN] {
    let lanes = &mut z[at..at + ROW_ALIGN];
    lanes.try_into().expect("ROW_ALIGN lanes")
}

/// [`softmax_body`] on rows given transposed (`k` rows of `stride` lanes,
/// one lane per row, `stride` a multiple of [`ROW_ALIGN`]): the same
/// operations in the same order, lane by lane.
#[inline(always)]
fn softmax_t_body(z: &mut [f32], k: usize, stride: usize) {
    for g in (0..stride).step_by(ROW_ALIGN) {
        let at = |j: usize| j * stride + g;
        let mut max = [f32::NEG_INFINITY; ROW_ALIGN];
        for j in 0..k {
            max.iter_mut()
                .zip(lanes(z, at(j)).iter())
                .for_each(|(m, &v)| *m = larger(*m, v));
        }
        let mut sum = [0.0f32; ROW_ALIGN];
        for j in 0..k {
            for ((v, s), &m) in lanes(z, at(j)).iter_mut().zip(&mut sum).zip(&max) {
                *v = fast_exp(*v - m);
                *s += *v;
            }
        }
        for j in 0..k {
            lanes(z, at(j))
                .iter_mut()
                .zip(&sum)
                .for_each(|(v, &s)| *v /= s);
        }
    }
}

multiversion! {
    pub(super) fn softmax_t(z: &mut [f32], k: usize, stride: usize) = softmax_t_body;
}

multiversion! {
    pub(super) fn softmax_rows(z: &mut [f32], k: usize) = softmax_body;
}

/// Copies `rows` rows of `x` (row-major, `cols` wide) into `xt` as `cols`
/// rows of `stride` lanes, zeroing the lanes past `rows`.
pub(super) fn transpose_into(
    x: &[f32],
    rows: usize,
    cols: usize,
    stride: usize,
    xt: &mut Vec<f32>,
) {
    transpose_at(Level::detect(), x, rows, cols, stride, xt);
}

/// [`transpose_into`] with the kernels of `level`: with AVX-512, each full
/// block of 16 rows goes through registers 16 columns at a time (a quarter
/// of the time of reading each value alone, on `watch`'s batches).
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn transpose_at(
    level: Level,
    x: &[f32],
    rows: usize,
    cols: usize,
    stride: usize,
    xt: &mut Vec<f32>,
) {
    assert!(x.len() >= rows * cols && stride >= rows);
    let level = level.min(Level::detect());
    xt.resize(cols * stride, 0.0);
    for lanes in xt.chunks_exact_mut(stride) {
        lanes[rows..].fill(0.0);
    }
    // Blocks of 16 rows: each column's 16 values fill one cache line of
    // `xt` while the 16 rows stay in L1.
    const BLOCK: usize = 16;
    let x = &x[..rows * cols];
    for (b, block) in x.chunks(BLOCK * cols).enumerate() {
        let r0 = b * BLOCK;
        let n = block.len() / cols;
        let mut j0 = 0;
        #[cfg(target_arch = "x86_64")]
        if n == BLOCK && level >= Level::Avx512 {
            while j0 < cols {
                let w = (cols - j0).min(BLOCK);
                #[allow(unsafe_code)]
                // SAFETY: `level` was lowered to what `Level::detect` found,
                // so the CPU has AVX-512F.
                unsafe {
                    transpose16_avx512(block, cols, (j0, w), xt, stride, r0);
                }
                j0 += w;
            }
        }
        for (j, lanes) in xt.chunks_exact_mut(stride).enumerate().skip(j0) {
            for (k, v) in lanes[r0..r0 + n].iter_mut().enumerate() {
                *v = block[k * cols + j];
            }
        }
    }
}

/// Columns `j0..j0 + w` (`w <= 16`) of the 16 rows of `block` (`cols`
/// wide) into lanes `r0..r0 + 16` of rows `j0..j0 + w` of `xt`, through
/// registers: 32-bit, 64-bit, then two rounds of 128-bit interleaves.
///
/// # Panics
/// If `block` has fewer than 16 rows of those columns or `xt` fewer than
/// `j0 + w` rows of `stride`: a programming error.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transpose16_avx512(
    block: &[f32],
    cols: usize,
    (j0, w): (usize, usize),
    xt: &mut [f32],
    stride: usize,
    r0: usize,
) {
    use std::arch::x86_64::*;
    assert!((1..=16).contains(&w) && j0 + w <= cols && block.len() >= 16 * cols);
    assert!(xt.len() >= (j0 + w - 1) * stride + r0 + 16);
    let mask: __mmask16 = (1u32 << w).wrapping_sub(1) as u16;
    let load = |i: usize| {
        #[allow(unsafe_code)]
        // SAFETY: row `i < 16` has columns `j0..j0 + w` (asserted above);
        // the masked load reads no other.
        unsafe {
            _mm512_maskz_loadu_ps(mask, block.as_ptr().add(i * cols + j0))
        }
    };
    let r: [__m512; 16] = std::array::from_fn(load);
    let mut t = [_mm512_setzero_ps(); 16];
    for i in (0..16).step_by(2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for i in (0..16).step_by(4) {
        let pd = |a: __m512, b: __m512, hi: bool| {
            let (a, b) = (_mm512_castps_pd(a), _mm512_castps_pd(b));
            _mm512_castpd_ps(if hi {
                _mm512_unpackhi_pd(a, b)
            } else {
                _mm512_unpacklo_pd(a, b)
            })
        };
        u[i] = pd(t[i], t[i + 2], false);
        u[i + 1] = pd(t[i], t[i + 2], true);
        u[i + 2] = pd(t[i + 1], t[i + 3], false);
        u[i + 3] = pd(t[i + 1], t[i + 3], true);
    }
    for h in [0, 8] {
        for i in 0..4 {
            t[h + i] = _mm512_shuffle_f32x4::<0x88>(u[h + i], u[h + i + 4]);
            t[h + i + 4] = _mm512_shuffle_f32x4::<0xdd>(u[h + i], u[h + i + 4]);
        }
    }
    for i in 0..8 {
        u[i] = _mm512_shuffle_f32x4::<0x88>(t[i], t[i + 8]);
        u[i + 8] = _mm512_shuffle_f32x4::<0xdd>(t[i], t[i + 8]);
    }
    for (i, v) in u.iter().enumerate().take(w) {
        #[allow(unsafe_code)]
        // SAFETY: row `j0 + i < j0 + w` of `xt` has lanes `r0..r0 + 16`
        // (asserted above).
        unsafe {
            _mm512_storeu_ps(xt.as_mut_ptr().add((j0 + i) * stride + r0), *v);
        }
    }
}

/// `out[r] = mean_j (a[j][r] - b[j][r])^2` over the `d` first rows of two
/// transposed batches, summed in feature order; with `w` (one weight per
/// feature), `out[r] = sum_j w[j] (a[j][r] - b[j][r])^2` instead.
#[inline(always)]
fn mse_t_body(a: &[f32], b: &[f32], d: usize, stride: usize, w: &[f32], out: &mut [f32]) {
    out.fill(0.0);
    let features = a.chunks_exact(stride).zip(b.chunks_exact(stride)).take(d);
    if w.is_empty() {
        for (aj, bj) in features {
            for ((s, x), y) in out.iter_mut().zip(aj).zip(bj) {
                let e = x - y;
                *s += e * e;
            }
        }
        out.iter_mut().for_each(|s| *s /= d as f32);
        return;
    }
    for ((aj, bj), &wj) in features.zip(w) {
        for ((s, x), y) in out.iter_mut().zip(aj).zip(bj) {
            let e = x - y;
            *s += wj * (e * e);
        }
    }
}

multiversion! {
    pub(super) fn mse_t(a: &[f32], b: &[f32], d: usize, stride: usize, w: &[f32], out: &mut [f32]) = mse_t_body;
}

/// `out = bias + x w` for one record, `w` stored `x.len() x bias.len()`,
/// each output accumulated in input order ([`madd`]).
#[inline(always)]
fn dot_row<const FMA: bool>(x: &[f32], w: &[f32], bias: &[f32], out: &mut [f32]) {
    let n = bias.len();
    let out = &mut out[..n];
    out.copy_from_slice(bias);
    for (&xk, wk) in x.iter().zip(w.chunks_exact(n)) {
        for (o, &wkj) in out.iter_mut().zip(wk) {
            *o = madd::<FMA>(xk, wkj, *o);
        }
    }
}

/// One dense layer of one record: `out = act(bias + x w)`. Where `level`
/// has [`Tiles`], the same bits as [`Tiles::layer`] gives the record in a
/// batch.
///
/// # Panics
/// If `out` is shorter than `bias`.
pub(super) fn layer_row(
    level: Level,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    act: Activation,
    out: &mut [f32],
) {
    match Tiles::new(level) {
        Some(tiles) => tiles.row(x, w, bias, act, out),
        None => {
            dot_row::<false>(x, w, bias, out);
            activate_body(act, &mut out[..bias.len()]);
        }
    }
}

/// A layer's transposed input and weights without the inputs that are zero
/// in every record of a batch (reused from batch to batch).
#[derive(Debug, Default, Clone)]
pub(super) struct Sparse {
    kept: Vec<usize>,
    xt: Vec<f32>,
    w: Vec<f32>,
}

impl Sparse {
    /// `l` without the inputs zero in each of the first `rows` lanes, when
    /// the multiply-adds saved outweigh the copy (by [`SPARSE_GAIN`]); else
    /// `l` itself. A one-hot slot absent from a batch, or a ReLU unit no
    /// record wakes, is such an input; leaving it out keeps each sum's bits
    /// (adding `0 w` changes at most the sign of a zero sum).
    pub(super) fn drop_zero_inputs<'a>(&'a mut self, l: LayerT<'a>, rows: usize) -> LayerT<'a> {
        if l.stride < SPARSE_MIN_LANES {
            return l;
        }
        let n = l.bias.len();
        // 16 lanes at a time (the fold vectorises), stopping at a nonzero one.
        let nonzero = |x: &[f32]| {
            (x[..rows].chunks(ROW_ALIGN))
                .any(|c| c.iter().fold(0, |a, &v| a | v.to_bits() << 1) != 0)
        };
        // `xt` may hold more rows than the layer has inputs.
        let k = l.w.len() / n;
        self.kept.clear();
        let inputs = l.xt.chunks_exact(l.stride).take(k).enumerate();
        self.kept
            .extend(inputs.filter(|(_, x)| nonzero(x)).map(|(j, _)| j));
        let (kept, dropped) = (self.kept.len(), k - self.kept.len());
        if dropped * n * l.stride <= SPARSE_GAIN * kept * (n + l.stride) {
            return l;
        }
        self.xt.clear();
        self.w.clear();
        for &j in &self.kept {
            self.xt.extend_from_slice(&l.xt[j * l.stride..][..l.stride]);
            self.w.extend_from_slice(&l.w[j * n..][..n]);
        }
        LayerT {
            xt: &self.xt,
            w: &self.w,
            ..l
        }
    }
}

/// How many times the floats [`Sparse::drop_zero_inputs`] copies the multiply-adds
/// it saves must number. On a scoring chunk of 256 NSL-KDD rows it drops
/// about 55 of 121 inputs (absent one-hot slots, zero counters): 1.4 M
/// multiply-adds saved for 24 k floats copied.
const SPARSE_GAIN: usize = 4;

/// Batches narrower than this are not searched for zero inputs: `watch`'s
/// batches of up to 16 records have few, and the search alone added 2.4 %
/// to its instructions (copying what it found, 7 %).
const SPARSE_MIN_LANES: usize = 64;

/// The operands of one dense layer on a transposed batch: `xt` holds the
/// `k` inputs as rows of `stride` lanes (a multiple of [`ROW_ALIGN`]), `w` is
/// `k x n` with `n = bias.len()`.
#[derive(Clone, Copy)]
pub(super) struct LayerT<'a> {
    /// Transposed input, `k x stride`.
    pub xt: &'a [f32],
    /// Lanes per row of `xt` and of the output.
    pub stride: usize,
    /// Weights, `k x n`, row-major.
    pub w: &'a [f32],
    /// Bias, `n`.
    pub bias: &'a [f32],
    /// Activation.
    pub act: Activation,
}

/// Proof that this CPU runs a register-tiled [`Tiles::layer`] kernel, which
/// beats the sgemm path only where vectors are wide enough.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tiles(TileIsa);

/// The instruction sets with a tiled kernel (none off x86-64).
#[derive(Debug, Clone, Copy)]
enum TileIsa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Tiles {
    /// The tiled kernel for `level` (lowered to what the CPU runs), if any.
    pub(super) fn new(level: Level) -> Option<Tiles> {
        match level.min(Level::detect()) {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => Some(Tiles(TileIsa::Avx512)),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => Some(Tiles(TileIsa::Avx2)),
            _ => None,
        }
    }

    /// [`layer_row`] with this kernel's sums and activation.
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    fn row(self, x: &[f32], w: &[f32], bias: &[f32], act: Activation, out: &mut [f32]) {
        assert!(out.len() >= bias.len());
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            TileIsa::Avx512 => {
                #[allow(unsafe_code)]
                // SAFETY: as in `Tiles::layer`.
                unsafe {
                    avx512::layer_row(x, w, bias, act, out)
                }
            }
            #[cfg(target_arch = "x86_64")]
            TileIsa::Avx2 => {
                #[allow(unsafe_code)]
                // SAFETY: as in `Tiles::layer`.
                unsafe {
                    avx2::layer_row(x, w, bias, act, out)
                }
            }
        }
    }

    /// One dense layer of a transposed batch: writes the `n` outputs to
    /// `out_t` as rows of `l.stride` lanes.
    ///
    /// # Panics
    /// If a slice is shorter than the shapes say: a programming error.
    pub(super) fn layer(self, l: &LayerT, out_t: &mut [f32]) {
        let n = l.bias.len();
        assert!(n > 0 && l.stride.is_multiple_of(ROW_ALIGN));
        assert!(l.xt.len() >= l.w.len() / n * l.stride && out_t.len() >= n * l.stride);
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            TileIsa::Avx512 => {
                #[allow(unsafe_code)]
                // SAFETY: `Tiles::new` chose AVX-512 after `Level::detect`
                // found AVX-512F on this CPU.
                unsafe {
                    avx512::layer_t(l, out_t)
                }
            }
            #[cfg(target_arch = "x86_64")]
            TileIsa::Avx2 => {
                #[allow(unsafe_code)]
                // SAFETY: `Tiles::new` chose AVX2 after `Level::detect`
                // found AVX2 and FMA on this CPU.
                unsafe {
                    avx2::layer_t(l, out_t)
                }
            }
        }
    }
}

/// [`Tiles::layer`] for one x86-64 vector width: register tiles of `RV`
/// vectors of records x `C` outputs (then 8, 4, 2, 1 for the rest), each output
/// accumulated with FMA in input order, bias first, activation applied in
/// registers.
#[cfg(target_arch = "x86_64")]
macro_rules! vector_layer {
    ($module:ident, $features:literal, $v:ident, $lanes:literal, $rv:literal, $c:literal,
     $loadu:ident, $storeu:ident, $set1:ident, $fmadd:ident, $fnmadd:ident, $mul:ident,
     $rcp:ident, $min:ident, $max:ident, $zero:ident) => {
        mod $module {
            use super::{tanh13, Activation, LayerT};
            use std::arch::x86_64::*;

            const L: usize = $lanes;
            const _: () = assert!($c <= 16, "columns() splits the rest as 8 + 4 + 2 + 1");

            #[target_feature(enable = $features)]
            #[inline]
            fn load(s: &[f32]) -> $v {
                let s = &s[..L];
                #[allow(unsafe_code)]
                // SAFETY: `s` holds L floats; the load is unaligned.
                unsafe {
                    $loadu(s.as_ptr())
                }
            }

            #[target_feature(enable = $features)]
            #[inline]
            fn store(v: $v, s: &mut [f32]) {
                let s = &mut s[..L];
                #[allow(unsafe_code)]
                // SAFETY: `s` holds L floats; the store is unaligned.
                unsafe {
                    $storeu(s.as_mut_ptr(), v)
                }
            }

            /// [`super::fast_tanh`] lane by lane, with FMA, and the
            /// division by a reciprocal estimate refined by one Newton step
            /// (the divider is slow: the kernel measured 16% faster).
            #[target_feature(enable = $features)]
            #[inline]
            fn tanh(x: $v) -> $v {
                use tanh13::{A, B, CLAMP};
                // `min(C, x)` keeps a NaN x, as `f32::clamp` does.
                let x = $max($set1(-CLAMP), $min($set1(CLAMP), x));
                let x2 = $mul(x, x);
                let step = |p: $v, c: f32| $fmadd(x2, p, $set1(c));
                let p = step($set1(A[6]), A[5]);
                let p = step(p, A[4]);
                let p = step(p, A[3]);
                let p = step(p, A[2]);
                let p = step(p, A[1]);
                let p = step(p, A[0]);
                let q = step($set1(B[3]), B[2]);
                let q = step(q, B[1]);
                let q = step(q, B[0]);
                // q >= B[0] > 0: the estimate is finite.
                let r = $rcp(q);
                let r = $fmadd(r, $fnmadd(q, r, $set1(1.0)), r);
                $mul($mul(x, p), r)
            }

            #[target_feature(enable = $features)]
            #[inline]
            fn activate(act: Activation, v: $v) -> $v {
                match act {
                    Activation::Linear => v,
                    Activation::Tanh => tanh(v),
                    // NaN and -0 give +0, as `super::relu`.
                    Activation::Relu => $max(v, $zero()),
                }
            }

            /// Outputs `j0..j0 + C` of records `r0..r0 + RV * L`.
            #[target_feature(enable = $features)]
            #[inline]
            fn tile<const RV: usize, const C: usize>(
                l: &LayerT,
                r0: usize,
                j0: usize,
                out_t: &mut [f32],
            ) {
                let n = l.bias.len();
                let bias = &l.bias[j0..j0 + C];
                let mut acc = [[$zero(); RV]; C];
                for c in 0..C {
                    acc[c] = [$set1(bias[c]); RV];
                }
                for (xk, wk) in l.xt.chunks_exact(l.stride).zip(l.w.chunks_exact(n)) {
                    let x = &xk[r0..r0 + RV * L];
                    let wk = &wk[j0..j0 + C];
                    let mut xv = [$zero(); RV];
                    for v in 0..RV {
                        xv[v] = load(&x[v * L..]);
                    }
                    for c in 0..C {
                        let w = $set1(wk[c]);
                        for v in 0..RV {
                            acc[c][v] = $fmadd(xv[v], w, acc[c][v]);
                        }
                    }
                }
                for c in 0..C {
                    let row = &mut out_t[(j0 + c) * l.stride + r0..][..RV * L];
                    for v in 0..RV {
                        store(activate(l.act, acc[c][v]), &mut row[v * L..]);
                    }
                }
            }

            #[target_feature(enable = $features)]
            #[inline]
            fn columns<const RV: usize>(l: &LayerT, r0: usize, out_t: &mut [f32]) {
                let n = l.bias.len();
                let mut j = 0;
                while j + $c <= n {
                    tile::<RV, $c>(l, r0, j, out_t);
                    j += $c;
                }
                // The rest (under $c <= 16) as 8 + 4 + 2 + 1.
                if n - j >= 8 {
                    tile::<RV, 8>(l, r0, j, out_t);
                    j += 8;
                }
                if n - j >= 4 {
                    tile::<RV, 4>(l, r0, j, out_t);
                    j += 4;
                }
                if n - j >= 2 {
                    tile::<RV, 2>(l, r0, j, out_t);
                    j += 2;
                }
                if j < n {
                    tile::<RV, 1>(l, r0, j, out_t);
                }
            }

            /// [`super::layer_row`] with these vectors: the sums and
            /// activation of [`tile`], so a record gives the same bits alone.
            #[target_feature(enable = $features)]
            pub(crate) fn layer_row(
                x: &[f32],
                w: &[f32],
                bias: &[f32],
                act: Activation,
                out: &mut [f32],
            ) {
                let out = &mut out[..bias.len()];
                super::dot_row::<true>(x, w, bias, out);
                let mut chunks = out.chunks_exact_mut(L);
                for c in &mut chunks {
                    store(activate(act, load(c)), c);
                }
                let rest = chunks.into_remainder();
                if !rest.is_empty() {
                    let mut t = [0.0f32; L];
                    t[..rest.len()].copy_from_slice(rest);
                    store(activate(act, load(&t)), &mut t);
                    rest.copy_from_slice(&t[..rest.len()]);
                }
            }

            /// [`super::Tiles::layer`] with these vectors.
            #[target_feature(enable = $features)]
            pub(crate) fn layer_t(l: &LayerT, out_t: &mut [f32]) {
                let vecs = l.stride / L;
                let mut v = 0;
                while v + $rv <= vecs {
                    columns::<$rv>(l, v * L, out_t);
                    v += $rv;
                }
                while v < vecs {
                    columns::<1>(l, v * L, out_t);
                    v += 1;
                }
            }
        }
    };
}

// 16 vector registers: 2 x 6 accumulators plus operands (2 x 4 and 3 x 4
// measured slower).
#[cfg(target_arch = "x86_64")]
vector_layer!(
    avx2,
    "avx2,fma",
    __m256,
    8,
    2,
    6,
    _mm256_loadu_ps,
    _mm256_storeu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_fnmadd_ps,
    _mm256_mul_ps,
    _mm256_rcp_ps,
    _mm256_min_ps,
    _mm256_max_ps,
    _mm256_setzero_ps
);

// 32 vector registers: 2 x 12 accumulators plus operands (2 x 8 and 4 x 6
// measured slower).
#[cfg(target_arch = "x86_64")]
vector_layer!(
    avx512,
    "avx512f",
    __m512,
    16,
    2,
    12,
    _mm512_loadu_ps,
    _mm512_storeu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_fnmadd_ps,
    _mm512_mul_ps,
    _mm512_rcp14_ps,
    _mm512_min_ps,
    _mm512_max_ps,
    _mm512_setzero_ps
);

#[cfg(test)]
mod tests {
    use super::*;

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Random values with the awkward ones mixed in.
    fn awkward(len: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
        let special = [
            0.0,
            -0.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e30,
            -7.905_311,
            f32::MIN_POSITIVE,
        ];
        (0..len)
            .map(|i| match i % 11 {
                3 => special[(i / 11) % special.len()],
                _ => rng.random_range(-12.0..12.0),
            })
            .collect()
    }

    fn same_bits(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    #[test]
    fn elementwise_levels_agree_bit_for_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let acts = [Activation::Tanh, Activation::Relu, Activation::Linear];
        for len in [0, 1, 7, 8, 17, 33, 1000] {
            let x = awkward(len, &mut rng);
            for act in acts {
                let mut want = x.clone();
                activate(Level::Portable, act, &mut want);
                for level in Level::supported() {
                    let mut got = x.clone();
                    activate(level, act, &mut got);
                    assert!(same_bits(&got, &want), "{act:?} {level:?} len {len}");
                }
            }
            let mut scalar = x.clone();
            scalar.iter_mut().for_each(|v| *v = fast_tanh(*v));
            let mut tanh = x.clone();
            activate(Level::detect(), Activation::Tanh, &mut tanh);
            assert!(same_bits(&tanh, &scalar));
        }
    }

    #[test]
    fn fast_exp_is_within_two_ulps() {
        let mut x = -86.5f32;
        while x < 88.7 {
            let want = f64::from(x).exp();
            let got = fast_exp(x);
            let ulp = f64::from(f32::EPSILON) * want.abs();
            assert!((f64::from(got) - want).abs() <= ulp, "{x}: {got} vs {want}");
            x += 0.000_731;
        }
        assert_eq!(fast_exp(0.0), 1.0);
        assert_eq!(fast_exp(-90.0), 0.0);
        assert_eq!(fast_exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(fast_exp(89.0), f32::INFINITY);
        assert_eq!(fast_exp(f32::INFINITY), f32::INFINITY);
        assert!(fast_exp(f32::NAN).is_nan());
    }

    #[test]
    fn softmax_forms_and_levels_agree_and_rows_sum_to_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        for (k, rows) in [(2, 1), (5, 7), (23, 33)] {
            let x: Vec<f32> = (0..k * rows)
                .map(|_| rng.random_range(-30.0..30.0))
                .collect();
            let mut want = x.clone();
            softmax_rows(Level::Portable, &mut want, k);
            for (row, p) in x.chunks_exact(k).zip(want.chunks_exact(k)) {
                let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum: f64 = row.iter().map(|v| f64::from(v - m).exp()).sum();
                for (v, p) in row.iter().zip(p) {
                    let exact = f64::from(v - m).exp() / sum;
                    assert!(
                        (f64::from(*p) - exact).abs() <= 1e-6 * exact.max(1e-30),
                        "{p} vs {exact}"
                    );
                }
            }
            let stride = rows.next_multiple_of(ROW_ALIGN);
            let mut xt = vec![0.0; k * stride];
            for (r, row) in x.chunks_exact(k).enumerate() {
                row.iter()
                    .enumerate()
                    .for_each(|(j, &v)| xt[j * stride + r] = v);
            }
            for level in Level::supported() {
                let mut got = x.clone();
                softmax_rows(level, &mut got, k);
                assert!(same_bits(&got, &want), "{level:?} k {k}");
                let mut got_t = xt.clone();
                softmax_t(level, &mut got_t, k, stride);
                let back: Vec<f32> = (0..rows * k)
                    .map(|i| got_t[(i % k) * stride + i / k])
                    .collect();
                assert!(same_bits(&back, &want), "transposed, {level:?} k {k}");
            }
        }
    }

    #[test]
    fn mse_levels_agree_bit_for_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        for (d, stride) in [(1, 16), (3, 32), (40, 48), (7, 304)] {
            let a = awkward(d * stride, &mut rng);
            let b: Vec<f32> = (0..d * stride)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let mut want = vec![0.0; stride];
            mse_t(Level::Portable, &a, &b, d, stride, &[], &mut want);
            // Lane r is the mean over features, in feature order.
            let r = 5 % stride;
            let sum = (0..d).fold(0.0f32, |s, j| {
                let e = a[j * stride + r] - b[j * stride + r];
                s + e * e
            });
            assert_eq!(want[r].to_bits(), (sum / d as f32).to_bits());
            for level in Level::supported() {
                let mut got = vec![0.0; stride];
                mse_t(level, &a, &b, d, stride, &[], &mut got);
                assert!(same_bits(&got, &want), "{level:?} d {d}");
            }
            // Weighted: the sum of weight times squared error, in feature order.
            let w: Vec<f32> = (0..d).map(|j| 0.5 + j as f32).collect();
            mse_t(Level::Portable, &a, &b, d, stride, &w, &mut want);
            let sum = (0..d).fold(0.0f32, |s, j| {
                let e = a[j * stride + r] - b[j * stride + r];
                s + w[j] * (e * e)
            });
            assert_eq!(want[r].to_bits(), sum.to_bits());
            for level in Level::supported() {
                let mut got = vec![0.0; stride];
                mse_t(level, &a, &b, d, stride, &w, &mut got);
                assert!(same_bits(&got, &want), "weighted {level:?} d {d}");
            }
        }
    }

    #[test]
    fn transpose_pads_with_zeros() {
        let x: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let mut xt = vec![9.0; 3];
        transpose_into(&x, 2, 3, 4, &mut xt);
        assert_eq!(xt, [0., 3., 0., 0., 1., 4., 0., 0., 2., 5., 0., 0.]);
        // Several blocks of 16 rows and a partial last one.
        for (rows, cols) in [
            (300usize, 3usize),
            (517, 121),
            (100, 600),
            (1, 1),
            (16, 112),
            (32, 16),
            (48, 5),
            (16, 17),
        ] {
            let stride = rows.next_multiple_of(ROW_ALIGN);
            let x: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
            for level in [Level::Portable, Level::Avx2, Level::Avx512] {
                let mut xt = vec![f32::NAN; 7];
                transpose_at(level, &x, rows, cols, stride, &mut xt);
                assert_eq!(xt.len(), cols * stride);
                for (j, lanes) in xt.chunks_exact(stride).enumerate() {
                    for (r, &v) in lanes.iter().enumerate() {
                        let want = if r < rows { x[r * cols + j] } else { 0.0 };
                        assert_eq!(v, want, "{level:?} {rows} x {cols}: row {r} column {j}");
                    }
                }
            }
        }
    }

    /// `act(b + x w)` in f64, for `rows` records of `xt` (`k x stride`).
    fn reference(l: &LayerT, rows: usize) -> Vec<f64> {
        let n = l.bias.len();
        let k = l.w.len() / n;
        let mut out = vec![0.0; n * rows];
        for j in 0..n {
            for r in 0..rows {
                let z = (0..k).fold(l.bias[j] as f64, |s, p| {
                    s + l.xt[p * l.stride + r] as f64 * l.w[p * n + j] as f64
                });
                out[j * rows + r] = match l.act {
                    Activation::Linear => z,
                    Activation::Tanh => z.tanh(),
                    Activation::Relu => z.max(0.0),
                };
            }
        }
        out
    }

    #[test]
    fn tiled_layer_matches_the_reference_and_the_row_kernel() {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let levels: Vec<(Level, Tiles)> = Level::supported()
            .into_iter()
            .filter_map(|l| Tiles::new(l).map(|t| (l, t)))
            .collect();
        if levels.is_empty() {
            eprintln!("skipping: this CPU runs no tiled kernel");
            return;
        }
        let acts = [Activation::Tanh, Activation::Relu, Activation::Linear];
        let mut shapes = vec![
            (40, 17, 17usize),
            (13, 50, 300),
            (100, 40, 33),
            (100, 100, 64),
        ];
        // Every remainder of the column blocks, on 1 and 3 records.
        shapes.extend((1..=40).map(|n| (3, n, 1 + 2 * (n % 2))));
        let mut sparse_shapes = 0;
        for (i, (k, n, rows)) in shapes.into_iter().enumerate() {
            let stride = rows.next_multiple_of(ROW_ALIGN);
            // Every third input zero in every record (a one-hot slot no
            // record has), every fifth zero in all but the padding lanes.
            let xt: Vec<f32> = (0..k * stride)
                .map(
                    |i| match (i / stride % 3, i / stride % 5, i % stride < rows) {
                        (0, _, _) if k > 2 => 0.0,
                        (_, 0, true) if k > 2 => 0.0,
                        _ => rng.random_range(-1.0..1.0),
                    },
                )
                .collect();
            let w: Vec<f32> = (0..k * n).map(|_| rng.random_range(-0.5..0.5)).collect();
            let bias: Vec<f32> = (0..n).map(|_| rng.random_range(-0.5..0.5)).collect();
            let l = LayerT {
                xt: &xt,
                stride,
                w: &w,
                bias: &bias,
                act: acts[i % 3],
            };
            let want = reference(&l, rows);
            let mut sparse = Sparse::default();
            // Workspaces grow, never shrink: `xt` may hold rows past `k`.
            let mut padded = xt.clone();
            padded.extend(std::iter::repeat_n(1.0, stride));
            let used = sparse.drop_zero_inputs(LayerT { xt: &padded, ..l }, rows);
            let dropped = used.xt.len() < l.xt.len();
            let skipped = (0..k).filter(|j| j % 3 == 0 || j % 5 == 0).count();
            let pays = stride >= SPARSE_MIN_LANES
                && skipped * n * stride > SPARSE_GAIN * (k - skipped) * (n + stride);
            assert_eq!(dropped, k > 2 && pays, "k {k} n {n} rows {rows}");
            sparse_shapes += usize::from(dropped);
            if dropped {
                assert_eq!(used.xt.len(), (k - skipped) * stride);
                assert_eq!(used.w.len(), (k - skipped) * n);
            }
            for &(level, tiles) in &levels {
                let mut out = vec![f32::NAN; n * stride];
                tiles.layer(&used, &mut out);
                let mut row = vec![0.0; n];
                let mut x = vec![0.0; k];
                for r in 0..rows {
                    (0..k).for_each(|p| x[p] = xt[p * stride + r]);
                    layer_row(level, &x, &w, &bias, l.act, &mut row);
                    for j in 0..n {
                        let got = out[j * stride + r];
                        let err = (got as f64 - want[j * rows + r]).abs();
                        assert!(err < 1e-5, "{level:?} k {k} n {n} r {r} j {j}: {err}");
                        assert_eq!(got.to_bits(), row[j].to_bits(), "{level:?} one row");
                    }
                }
            }
        }
        assert!(
            sparse_shapes >= 2,
            "the sparse path ran on {sparse_shapes} shapes"
        );
    }

    #[test]
    fn tiled_tanh_matches_libm() {
        // One input of weight 1: the outputs are tanh(bias).
        let bias: Vec<f32> = (-20_000..=20_000).map(|i| i as f32 / 1000.0).collect();
        let w = vec![0.0; bias.len()];
        let mut out = vec![0.0; bias.len()];
        for level in Level::supported() {
            layer_row(level, &[1.0], &w, &bias, Activation::Tanh, &mut out);
            let worst = out
                .iter()
                .zip(&bias)
                .map(|(t, b)| (t - b.tanh()).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 2e-6, "{level:?}: max error {worst}");
        }
        let mut nan = [0.0; 3];
        let special = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        layer_row(
            Level::detect(),
            &[1.0],
            &[0.0; 3],
            &special,
            Activation::Tanh,
            &mut nan,
        );
        assert!(nan[0].is_nan() && (nan[1] - 1.0).abs() < 1e-6 && nan[2] == -nan[1]);
    }

    #[test]
    fn fast_tanh_matches_libm() {
        let mut worst = 0.0f32;
        for i in -20_000..=20_000 {
            let x = i as f32 / 1000.0;
            worst = worst.max((fast_tanh(x) - x.tanh()).abs());
        }
        assert!(worst < 2e-6, "max error {worst}");
        assert_eq!(fast_tanh(f32::INFINITY), fast_tanh(100.0));
    }

    fn naive(m: usize, k: usize, n: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    fn transpose(rows: usize, cols: usize, x: &[f32]) -> Vec<f32> {
        let mut t = vec![0.0; x.len()];
        for i in 0..rows {
            for j in 0..cols {
                t[j * rows + i] = x[i * cols + j];
            }
        }
        t
    }

    #[test]
    fn gemm_handles_every_transpose() {
        let (m, k, n) = (3, 4, 5);
        let a: Vec<f32> = (0..m * k).map(|v| v as f32 * 0.5 - 2.0).collect();
        let b: Vec<f32> = (0..k * n).map(|v| (v % 7) as f32 - 3.0).collect();
        let want = naive(m, k, n, &a, &b);
        let at = transpose(m, k, &a);
        let bt = transpose(k, n, &b);
        for (aa, oa, bb, ob) in [
            (&a, Op::N, &b, Op::N),
            (&at, Op::T, &b, Op::N),
            (&a, Op::N, &bt, Op::T),
            (&at, Op::T, &bt, Op::T),
        ] {
            let mut c = vec![1.0; m * n];
            gemm(m, k, n, 1.0, aa, oa, bb, ob, 0.0, &mut c);
            assert_eq!(c, want, "{oa:?} {ob:?}");
        }
    }
}
