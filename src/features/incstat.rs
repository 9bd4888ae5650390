//! Damped incremental statistics (Kitsune's "AfterImage" kernels).
//!
//! A stream's statistics fade with time: before a value arriving at time `t`
//! is added, every sum is multiplied by `2^(-lambda * dt)`, where `dt` is the
//! time since the stream was last decayed (only when `dt > 0`, so a packet
//! out of order neither decays nor rewinds the clock). A new stream starts
//! with weight `1e-20` so that its first mean is well defined.
//!
//! Every stream is kept for the five decay rates [`LAMBDAS`] at once: they
//! share one clock (the same packets touch them at the same times), so a
//! [`Stats1D`] holds one `last_t` and five [`Lane`]s. [`Cov2D`] holds the
//! covariance of a pair of streams the way Kitsune-py computes it (products of
//! residuals of the two streams, decayed on the same clock).
//!
//! Mean and variance are snapshotted right after each insert, as Kitsune-py's
//! caches do: when a stream is only read (as the other side of a pair) its
//! snapshot is used, which keeps the results bit-compatible with the
//! reference.

/// The decay rates, fastest first (window "L5" ... "L0.01").
pub const LAMBDAS: [f64; 5] = [5.0, 3.0, 1.0, 0.1, 0.01];

/// Number of decay rates.
pub const NL: usize = LAMBDAS.len();

/// Index in [`LAMBDAS`] of the slowest rate: the one that keeps an entry
/// alive longest, hence the one reclamation looks at.
pub const SLOWEST: usize = NL - 1;

/// Weight of a stream that has not seen a value yet.
pub const INITIAL_WEIGHT: f64 = 1e-20;

/// `2^(-lambda * dt)` for every rate, computed as Kitsune-py does
/// (`math.pow(2, -lambda * dt)`, bit for bit: `exp2` would round a few
/// factors differently), by [`pow2_lanes`](super::pow2::pow2_lanes), which
/// calls the C library's `pow` only for the rare factors too close to a
/// rounding midpoint.
#[inline]
pub fn decay_factors(dt: f64) -> [f64; NL] {
    super::pow2::pow2_lanes(LAMBDAS.map(|lambda| -lambda * dt))
}

/// `2^(-lambda * dt)` for every rate within a few ulps, at a third of the
/// cost: the rates 5, 3 and 1 are powers of `2^-dt`.
#[inline]
pub fn fast_decay_factors(dt: f64) -> [f64; NL] {
    let b = (-dt).exp2();
    let b2 = b * b;
    let b3 = b2 * b;
    [b3 * b2, b3, b, (-0.1 * dt).exp2(), (-0.01 * dt).exp2()]
}

/// `x^2` rounded exactly as the C library's `pow(x, 2)` rounds it, which is
/// what Kitsune-py computes (`math.pow(v, 2)`, `var**2`). glibc's `pow` is
/// not always correctly rounded (error up to 0.52 ulp), so `x * x` differs
/// from it by one ulp now and then, enough to move a variance computed by
/// cancellation. Fast path: the exact error of `x * x` (Dekker's product)
/// shows whether the square is far enough from a rounding midpoint for every
/// 0.52-ulp `pow` to agree with `x * x`; otherwise `pow` itself is called.
#[inline]
pub fn sq(x: f64) -> f64 {
    const SPLIT: f64 = 134_217_729.0; // 2^27 + 1
    let p = x * x;
    let bits = p.to_bits();
    let biased = (bits >> 52) & 0x7ff;
    // Dekker's split needs headroom above and below.
    if (64..1900).contains(&biased) {
        let c = SPLIT * x;
        let hi = c - (c - x);
        let lo = x - hi;
        let err = ((hi * hi - p) + 2.0 * hi * lo) + lo * lo;
        let mantissa = bits & ((1 << 52) - 1);
        let ulp = f64::from_bits((biased - 52) << 52);
        if err == 0.0 || (mantissa != 0 && err.abs() < 0.47 * ulp) {
            return p;
        }
    } else if p == 0.0 {
        return p;
    }
    x.powf(std::hint::black_box(2.0))
}

/// `x^2`: rounded as Kitsune-py's `pow` rounds it ([`sq`]) when `exact`,
/// else the plain product (at most one ulp away, without `sq`'s check and
/// its calls to `pow`).
#[inline(always)]
pub fn square(exact: bool, x: f64) -> f64 {
    if exact {
        sq(x)
    } else {
        x * x
    }
}

/// Computes decay factors and remembers those of the last few time gaps:
/// within one packet several streams often share their last time (and so
/// `dt`), and the power function dominates the cost of an update. Whether
/// it is exact also decides how the statistics square ([`square`]).
#[derive(Debug, Clone)]
pub struct DecayCache {
    entries: [(u64, [f64; NL]); 4],
    next: usize,
    exact: bool,
}

impl Default for DecayCache {
    /// Kitsune-exact factors ([`decay_factors`]).
    fn default() -> Self {
        DecayCache::new(true)
    }
}

impl DecayCache {
    /// With `exact`, factors are [`decay_factors`] (bit-compatible with
    /// Kitsune-py); otherwise [`fast_decay_factors`].
    pub fn new(exact: bool) -> Self {
        // dt = 0 never reaches the cache (no decay then), so zeroed slots
        // cannot be mistaken for a real entry.
        DecayCache {
            entries: [(0, [0.0; NL]); 4],
            next: 0,
            exact,
        }
    }

    /// The factors for `dt` (cached values are bit-identical to fresh ones).
    #[inline]
    pub fn factors(&mut self, dt: f64) -> [f64; NL] {
        let bits = dt.to_bits();
        if let Some((_, f)) = self.entries.iter().find(|(b, _)| *b == bits) {
            return *f;
        }
        let f = if self.exact {
            decay_factors(dt)
        } else {
            fast_decay_factors(dt)
        };
        self.entries[self.next] = (bits, f);
        self.next = (self.next + 1) % self.entries.len();
        f
    }
}

/// One damped 1-D statistic for a single decay rate: the textbook form, used
/// where one rate is enough and as the reference in tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IncStat {
    /// Decay rate.
    pub lambda: f64,
    /// Damped linear sum.
    pub cf1: f64,
    /// Damped sum of squares.
    pub cf2: f64,
    /// Damped weight (number of values).
    pub w: f64,
    /// Time of the last decay.
    pub last_t: f64,
}

impl IncStat {
    /// An empty stream created at `t`.
    pub fn new(lambda: f64, t: f64) -> Self {
        IncStat {
            lambda,
            cf1: 0.0,
            cf2: 0.0,
            w: INITIAL_WEIGHT,
            last_t: t,
        }
    }

    /// Fades the sums to time `t` (no-op unless `t` is later than the last decay).
    pub fn decay(&mut self, t: f64) {
        let dt = t - self.last_t;
        if dt > 0.0 {
            let f = 2f64.powf(-self.lambda * dt);
            self.cf1 *= f;
            self.cf2 *= f;
            self.w *= f;
            self.last_t = t;
        }
    }

    /// Adds value `v` seen at time `t`.
    pub fn insert(&mut self, v: f64, t: f64) {
        self.decay(t);
        self.cf1 += v;
        self.cf2 += v * v;
        self.w += 1.0;
    }

    /// Damped mean.
    pub fn mean(&self) -> f64 {
        self.cf1 / self.w
    }

    /// Damped variance `|E[x^2] - E[x]^2|`.
    pub fn variance(&self) -> f64 {
        let m = self.mean();
        (self.cf2 / self.w - m * m).abs()
    }

    /// Damped standard deviation.
    pub fn std(&self) -> f64 {
        self.variance().sqrt()
    }
}

/// The sums of one decay rate of a [`Stats1D`], with the mean and variance
/// snapshotted at the last insert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lane {
    /// Damped linear sum.
    pub cf1: f64,
    /// Damped sum of squares.
    pub cf2: f64,
    /// Damped weight.
    pub w: f64,
    /// Mean at the last insert (0 before any).
    pub mean: f64,
    /// Variance at the last insert (0 before any).
    pub var: f64,
}

/// A damped 1-D statistic for all [`LAMBDAS`] at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats1D {
    /// Time of the last decay, shared by the lanes.
    pub last_t: f64,
    /// One lane per decay rate, in [`LAMBDAS`] order.
    pub lanes: [Lane; NL],
}

impl Stats1D {
    /// An empty stream created at `t`.
    pub fn new(t: f64) -> Self {
        let lane = Lane {
            cf1: 0.0,
            cf2: 0.0,
            w: INITIAL_WEIGHT,
            mean: 0.0,
            var: 0.0,
        };
        Stats1D {
            last_t: t,
            lanes: [lane; NL],
        }
    }

    /// Fades every lane to time `t` (no-op unless `t` is later than the last decay).
    #[inline]
    pub fn decay(&mut self, t: f64, cache: &mut DecayCache) {
        let dt = t - self.last_t;
        if dt > 0.0 {
            let f = cache.factors(dt);
            for (lane, f) in self.lanes.iter_mut().zip(f) {
                lane.cf1 *= f;
                lane.cf2 *= f;
                lane.w *= f;
            }
            self.last_t = t;
        }
    }

    /// Adds value `v` seen at time `t` and refreshes the snapshots.
    #[inline]
    pub fn insert(&mut self, v: f64, t: f64, cache: &mut DecayCache) {
        self.decay(t, cache);
        let exact = cache.exact;
        let v2 = square(exact, v);
        for lane in &mut self.lanes {
            lane.cf1 += v;
            lane.cf2 += v2;
            lane.w += 1.0;
            lane.mean = lane.cf1 / lane.w;
            lane.var = (lane.cf2 / lane.w - square(exact, lane.mean)).abs();
        }
    }

    /// Adds the time since the stream's last decay (0 if none has passed), as
    /// Kitsune's jitter streams do, and returns that gap.
    #[inline]
    pub fn insert_gap(&mut self, t: f64, cache: &mut DecayCache) -> f64 {
        let dt = t - self.last_t;
        let v = if dt > 0.0 { dt } else { 0.0 };
        self.insert(v, t, cache);
        v
    }

    /// Weight of the slowest lane as it would be at time `t`, counting the
    /// stream as having seen at least one value at its last time: a stream
    /// that is only ever a destination stays alive while it is seen.
    pub fn weight_at(&self, t: f64) -> f64 {
        decayed(self.lanes[SLOWEST].w.max(1.0), t - self.last_t)
    }

    /// Writes `weight, mean, variance` per lane (15 values) into `out`.
    #[inline]
    pub fn write_1d(&self, out: &mut [f64]) {
        for (chunk, lane) in out.chunks_exact_mut(3).zip(&self.lanes) {
            chunk.copy_from_slice(&[lane.w, lane.mean, lane.var]);
        }
    }
}

/// `w` faded by `dt` at the slowest rate.
fn decayed(w: f64, dt: f64) -> f64 {
    if dt > 0.0 {
        w * super::pow2::pow2(-LAMBDAS[SLOWEST] * dt)
    } else {
        w
    }
}

/// The covariance sums of one decay rate of a [`Cov2D`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CovLane {
    /// Damped sum of residual products.
    pub cf3: f64,
    /// Damped number of products.
    pub w3: f64,
    /// Last residual (value minus mean) of each side.
    pub last_res: [f64; 2],
}

/// The damped covariance of two streams (sides 0 and 1) for all [`LAMBDAS`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cov2D {
    /// Time of the last decay, shared by the lanes.
    pub last_t: f64,
    /// One lane per decay rate.
    pub lanes: [CovLane; NL],
}

impl Cov2D {
    /// An empty pair created at `t`.
    pub fn new(t: f64) -> Self {
        let lane = CovLane {
            cf3: 0.0,
            w3: INITIAL_WEIGHT,
            last_res: [0.0; 2],
        };
        Cov2D {
            last_t: t,
            lanes: [lane; NL],
        }
    }

    /// [`Cov2D::update_pair`] without the far stream's fade.
    #[inline]
    fn update(&mut self, side: usize, v: f64, t: f64, means: &[f64; NL], cache: &mut DecayCache) {
        let side = side & 1;
        let dt = t - self.last_t;
        if dt > 0.0 {
            let f = cache.factors(dt);
            for (lane, f) in self.lanes.iter_mut().zip(f) {
                lane.cf3 *= f;
                lane.w3 *= f;
                lane.last_res[side] *= f;
            }
            self.last_t = t;
        }
        for (lane, mean) in self.lanes.iter_mut().zip(means) {
            let res = v - mean;
            lane.cf3 += res * lane.last_res[1 - side];
            lane.w3 += 1.0;
            lane.last_res[side] = res;
        }
    }

    /// Kitsune-py's `update_cov`: side `side` saw value `v` at `t`, with
    /// `means` its means per lane (already including `v`). Fades `other`,
    /// the stream on the far side (none for a self pair), to `t`, then the
    /// covariance sums, and adds the product of this residual with the far
    /// side's last one.
    #[inline]
    pub fn update_pair(
        &mut self,
        side: usize,
        v: f64,
        t: f64,
        means: &[f64; NL],
        other: Option<&mut Stats1D>,
        cache: &mut DecayCache,
    ) {
        if let Some(other) = other {
            other.decay(t, cache);
        }
        self.update(side, v, t, means, cache);
    }

    /// Weight of the slowest lane as it would be at time `t`.
    /// Counts the pair as updated at least once at its last time (every
    /// pair is, as soon as it is made), like [`Stats1D::weight_at`].
    pub fn weight_at(&self, t: f64) -> f64 {
        decayed(self.lanes[SLOWEST].w3.max(1.0), t - self.last_t)
    }
}

/// The 2-D statistics of one lane of a pair: `[radius, magnitude, covariance, pcc]`.
///
/// radius = sqrt(var_a^2 + var_b^2), magnitude = sqrt(mean_a^2 + mean_b^2),
/// covariance = cf3 / w3, pcc = covariance / (sd_a * sd_b), 0 when that
/// product is 0 (operation order as in Kitsune-py); squares as [`square`].
#[inline]
pub fn pair_stats(a: &Lane, b: &Lane, c: &CovLane, exact: bool) -> [f64; 4] {
    let radius = (square(exact, a.var) + square(exact, b.var)).sqrt();
    let magnitude = (square(exact, a.mean) + square(exact, b.mean)).sqrt();
    let cov = c.cf3 / c.w3;
    let ss = a.var.sqrt() * b.var.sqrt();
    let pcc = if ss != 0.0 { cov / ss } else { 0.0 };
    [radius, magnitude, cov, pcc]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive damped statistics over the whole history, recomputed from scratch.
    fn naive(values: &[(f64, f64)], lambda: f64, now: f64) -> (f64, f64, f64) {
        let (mut w, mut s1, mut s2) = (
            INITIAL_WEIGHT * 2f64.powf(-lambda * (now - values[0].1)),
            0.0,
            0.0,
        );
        for &(v, t) in values {
            let f = 2f64.powf(-lambda * (now - t));
            w += f;
            s1 += f * v;
            s2 += f * v * v;
        }
        let mean = s1 / w;
        (w, mean, (s2 / w - mean * mean).abs())
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    fn sequence() -> Vec<(f64, f64)> {
        // Sizes and times with repeats, a gap and one out-of-order stamp.
        let mut t = 100.0;
        (0..200)
            .map(|i| {
                t += [0.0, 0.001, 0.37, 2.5][i % 4];
                ((40 + (i * 37) % 1460) as f64, t)
            })
            .collect()
    }

    #[test]
    fn incstat_matches_naive_recomputation() {
        let seq = sequence();
        for &lambda in &LAMBDAS {
            let mut s = IncStat::new(lambda, seq[0].1);
            for (k, &(v, t)) in seq.iter().enumerate() {
                s.insert(v, t);
                let (w, m, var) = naive(&seq[..=k], lambda, t);
                assert!(close(s.w, w), "lambda {lambda} step {k}: w {} vs {w}", s.w);
                assert!(close(s.mean(), m), "lambda {lambda} step {k}: mean");
                assert!(
                    close(s.variance(), var),
                    "lambda {lambda} step {k}: var {} vs {var}",
                    s.variance()
                );
            }
        }
    }

    #[test]
    fn stats1d_lanes_equal_single_rate_incstats() {
        let seq = sequence();
        let mut cache = DecayCache::default();
        let mut bank = Stats1D::new(seq[0].1);
        let mut singles = LAMBDAS.map(|l| IncStat::new(l, seq[0].1));
        let mut out = [0.0; 15];
        for &(v, t) in &seq {
            bank.insert(v, t, &mut cache);
            singles.iter_mut().for_each(|s| s.insert(v, t));
            bank.write_1d(&mut out);
            for (i, s) in singles.iter().enumerate() {
                assert_eq!(out[3 * i], s.w);
                assert_eq!(out[3 * i + 1], s.mean());
                assert_eq!(out[3 * i + 2], s.variance());
            }
        }
    }

    #[test]
    fn no_decay_for_equal_or_earlier_times() {
        let mut cache = DecayCache::default();
        let mut s = Stats1D::new(10.0);
        s.insert(100.0, 10.0, &mut cache);
        s.insert(100.0, 9.0, &mut cache); // out of order: no decay, clock kept
        assert_eq!(s.last_t, 10.0);
        assert_eq!(s.lanes[0].w, 2.0 + INITIAL_WEIGHT);
        s.decay(11.0, &mut cache);
        assert_eq!(s.lanes[2].w, (2.0 + INITIAL_WEIGHT) * 0.5);
    }

    #[test]
    fn gaps_feed_jitter() {
        let mut cache = DecayCache::default();
        let mut s = Stats1D::new(5.0);
        assert_eq!(s.insert_gap(5.0, &mut cache), 0.0);
        assert_eq!(s.insert_gap(5.25, &mut cache), 0.25);
        assert_eq!(s.insert_gap(5.0, &mut cache), 0.0);
        let w = (1.0 + INITIAL_WEIGHT) * 2f64.powf(-0.01 * 0.25) + 2.0;
        assert!(close(s.lanes[SLOWEST].w, w));
        assert!(close(s.lanes[SLOWEST].mean, 0.25 / w));
    }

    #[test]
    fn weight_at_fades_at_slowest_rate() {
        let mut cache = DecayCache::default();
        let mut s = Stats1D::new(0.0);
        s.insert(1.0, 0.0, &mut cache);
        assert!(close(s.weight_at(100.0), 0.5 * (1.0 + INITIAL_WEIGHT)));
        assert_eq!(s.weight_at(-5.0), s.lanes[SLOWEST].w);
        assert_eq!(
            Stats1D::new(0.0).weight_at(200.0),
            0.25,
            "an empty stream counts as seen once"
        );
    }

    #[test]
    fn sq_rounds_like_pow() {
        let pow2 = |x: f64| x.powf(std::hint::black_box(2.0));
        // The value where glibc's pow(x, 2) and x * x differ by one ulp.
        let m = 87.9999999926674;
        assert_eq!(sq(m), pow2(m));
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2_000_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let x = f64::from_bits(state >> 12 | 0x3ff0_0000_0000_0000) * 1500.0;
            assert_eq!(sq(x).to_bits(), pow2(x).to_bits(), "x = {x:e}");
        }
        for x in [
            0.0,
            -0.0,
            1e-200,
            1e200,
            3.0,
            -7.5,
            f64::INFINITY,
            2f64.powi(30),
        ] {
            assert_eq!(sq(x).to_bits(), pow2(x).to_bits(), "x = {x:e}");
        }
        assert!(sq(f64::NAN).is_nan());
    }

    #[test]
    fn plain_squares_are_within_an_ulp_of_exact_ones() {
        let m = 87.9999999926674;
        assert_eq!(square(true, m), sq(m));
        assert_eq!(square(false, m), m * m);
        assert_eq!(square(false, m).to_bits().abs_diff(sq(m).to_bits()), 1);
        let mut fast = Stats1D::new(0.0);
        let mut exact = Stats1D::new(0.0);
        let (mut cf, mut ce) = (DecayCache::new(false), DecayCache::new(true));
        for k in 0..1000u32 {
            let (v, t) = (60.0 + f64::from(k * 37 % 1400), f64::from(k) * 0.01);
            fast.insert(v, t, &mut cf);
            exact.insert(v, t, &mut ce);
        }
        for (f, e) in fast.lanes.iter().zip(&exact.lanes) {
            assert!((f.mean - e.mean).abs() <= 1e-12 * e.mean, "{f:?} {e:?}");
            assert!((f.var - e.var).abs() <= 1e-9 * e.var, "{f:?} {e:?}");
        }
    }

    #[test]
    fn decay_cache_is_exact() {
        let mut cache = DecayCache::default();
        let mut fast = DecayCache::new(false);
        for dt in [0.5, 1e-6, 0.5, 3.0, 7.0, 11.0, 0.5] {
            assert_eq!(cache.factors(dt), decay_factors(dt));
            assert_eq!(fast.factors(dt), fast_decay_factors(dt));
        }
    }

    #[test]
    fn fast_factors_are_within_a_few_ulps() {
        for k in 0..10_000 {
            let dt = k as f64 * 1.37e-4;
            for (fast, exact) in fast_decay_factors(dt).iter().zip(decay_factors(dt)) {
                assert!(
                    (fast - exact).abs() <= 8.0 * f64::EPSILON * exact,
                    "dt {dt}: {fast} vs {exact}"
                );
            }
        }
        assert_eq!(decay_factors(1.0)[2], 0.5);
        assert_eq!(fast_decay_factors(1.0)[2], 0.5);
    }

    #[test]
    fn pair_covariance_tracks_correlated_streams() {
        // Two streams that alternate values moving together: positive pcc;
        // moving against each other: negative pcc.
        for (sign, expect_positive) in [(1.0, true), (-1.0, false)] {
            let mut cache = DecayCache::default();
            let (mut a, mut b) = (Stats1D::new(0.0), Stats1D::new(0.0));
            let mut c = Cov2D::new(0.0);
            for k in 0..400 {
                let t = k as f64 * 0.01;
                let x = if (k / 20) % 2 == 0 { 100.0 } else { 200.0 };
                if k % 2 == 0 {
                    a.insert(x, t, &mut cache);
                    c.update(0, x, t, &a.lanes.map(|l| l.mean), &mut cache);
                } else {
                    let y = 150.0 + sign * (x - 150.0);
                    b.insert(y, t, &mut cache);
                    c.update(1, y, t, &b.lanes.map(|l| l.mean), &mut cache);
                }
            }
            let [radius, magnitude, cov, pcc] = pair_stats(
                &a.lanes[SLOWEST],
                &b.lanes[SLOWEST],
                &c.lanes[SLOWEST],
                true,
            );
            assert!(radius > 0.0 && magnitude > 150.0 && magnitude < 250.0);
            assert_eq!(cov > 0.0, expect_positive, "cov {cov}");
            assert!(pcc.abs() <= 1.0 + 1e-9 && pcc.abs() > 0.3, "pcc {pcc}");
        }
    }

    #[test]
    fn pair_stats_of_constant_streams() {
        let mut cache = DecayCache::default();
        let (mut a, b) = (Stats1D::new(0.0), Stats1D::new(0.0));
        a.insert(60.0, 0.0, &mut cache);
        let c = Cov2D::new(0.0);
        for exact in [true, false] {
            let [radius, magnitude, cov, pcc] =
                pair_stats(&a.lanes[0], &b.lanes[0], &c.lanes[0], exact);
            assert_eq!((radius, magnitude, cov, pcc), (0.0, 60.0, 0.0, 0.0));
        }
        assert!(!c.weight_at(1.0).is_nan());
    }
}
