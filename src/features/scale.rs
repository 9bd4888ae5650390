//! Feature scaling to `[0, 1]`, fitted on training normal rows only and
//! never refitted on test data.
//!
//! Per numeric feature: optionally `log1p` first, for heavy-tailed counters
//! (columns that are non-negative, exceed 1, and whose 99th percentile lies
//! in the lowest [`HEAVY_TAIL`] share of their range: a few huge values would
//! otherwise squash every ordinary one near 0); then min-max over the training
//! range. Test values may be clipped to the training range first. A constant
//! column maps its training value to 0 and any other value to 1 (no division
//! by zero, and a change stays visible). One-hot slots are already 0/1 and
//! pass through unchanged.
//!
//! Measured with the default autoencoder (seed 42), reconstruction ROC-AUC on
//! NSL-KDD (train normal rows of `KDDTrain+_20Percent`, test `KDDTest+`) and
//! CICIDS2017 (BENIGN + DDoS, even rows train, odd rows test):
//!
//! | scaling                         | NSL-KDD | CICIDS2017 |
//! |---------------------------------|---------|------------|
//! | min-max                         | 0.9487  | 0.9926     |
//! | min-max, clipped                | 0.9495  | 0.9708     |
//! | log1p on every counter, min-max | 0.9656  | 0.9497     |
//! | same, clipped                   | 0.9657  | 0.9417     |
//! | log1p on heavy tails (share 0.01, 0.2, 0.6) | 0.9551, 0.9575, 0.9651 | 0.9921, 0.9951, 0.9950 |
//!
//! Clipping hides how far beyond normal an attack lies; `log1p` on every
//! counter does too on CICIDS2017's durations. The default is `log1p` on
//! heavy tails (share 0.6), unclipped: the best on both.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::simd::{multiversion, Level};
use crate::{Error, Matrix, Result};

/// How numeric features are scaled.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScalerParams {
    /// `log1p` before min-max on heavy-tailed non-negative columns.
    pub log: bool,
    /// Clip test values to the training range.
    pub clip: bool,
}

impl Default for ScalerParams {
    /// `log1p` on heavy tails + min-max, no clipping: the best measured.
    fn default() -> Self {
        ScalerParams {
            log: true,
            clip: false,
        }
    }
}

impl FromStr for ScalerParams {
    type Err = Error;

    /// `minmax`, `minmax-clip`, `log-minmax` or `log-minmax-clip`.
    fn from_str(s: &str) -> Result<Self> {
        let (log, clip) = match s {
            "minmax" => (false, false),
            "minmax-clip" => (false, true),
            "log-minmax" => (true, false),
            "log-minmax-clip" => (true, true),
            _ => {
                return Err(Error::Model(format!(
                    "scaling should be minmax, minmax-clip, log-minmax or log-minmax-clip, but is '{s}'"
                )))
            }
        };
        Ok(ScalerParams { log, clip })
    }
}

impl ScalerParams {
    /// Fits on `x` (training normal rows); `pass[j]` marks features left as is.
    pub fn fit(&self, x: &Matrix, pass: &[bool]) -> Result<Scaler> {
        if x.rows() == 0 {
            return Err(Error::Data("cannot fit a scaler on zero rows".into()));
        }
        if pass.len() != x.cols() {
            return Err(Error::Model(format!(
                "scaler mask has {} entries for {} features",
                pass.len(),
                x.cols()
            )));
        }
        let d = x.cols();
        let (mut min, mut max) = (vec![f32::INFINITY; d], vec![f32::NEG_INFINITY; d]);
        for row in x.iter_rows() {
            for j in 0..d {
                min[j] = min[j].min(row[j]);
                max[j] = max[j].max(row[j]);
            }
        }
        let features = (0..d)
            .map(|j| {
                let log =
                    self.log && min[j] >= 0.0 && max[j] > 1.0 && heavy_tailed(x, j, min[j], max[j]);
                let t = |v: f32| if log { log1p_floored(v) } else { v };
                Feature {
                    pass: pass[j],
                    log,
                    min: min[j],
                    max: max[j],
                    lo: t(min[j]),
                    span: t(max[j]) - t(min[j]),
                }
            })
            .collect();
        Ok(Scaler {
            params: *self,
            features,
        })
    }
}

/// True when min-max would squash 99 % of the training values of column `j`
/// into the lowest 1 % of the range (a few huge values dominate it).
fn heavy_tailed(x: &Matrix, j: usize, min: f32, max: f32) -> bool {
    let mut v: Vec<f32> = x.iter_rows().map(|r| r[j]).collect();
    let k = (v.len() - 1) * 99 / 100;
    let (_, p99, _) = v.select_nth_unstable_by(k, f32::total_cmp);
    *p99 - min < HEAVY_TAIL * (max - min)
}

/// Largest share of a column's range below its 99th percentile for which
/// the column counts as heavy-tailed (chosen by the measurements above).
pub const HEAVY_TAIL: f32 = 0.6;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Feature {
    pass: bool,
    log: bool,
    min: f32,
    max: f32,
    lo: f32,
    span: f32,
}

impl Feature {
    #[inline]
    fn apply(&self, v: f32, clip: bool) -> f32 {
        if self.pass {
            return v;
        }
        if self.span <= 0.0 {
            return if v == self.min { 0.0 } else { 1.0 };
        }
        let v = if clip { v.clamp(self.min, self.max) } else { v };
        let t = if self.log { log1p_floored(v) } else { v };
        (t - self.lo) / self.span
    }

    /// [`Feature::apply`] of a `log1p` or constant feature on one block of
    /// values, without branches between lanes: the same bits, in vector
    /// registers.
    #[inline(always)]
    fn apply_lanes(&self, v: &mut [f32; LANES], clip: bool) {
        if self.span <= 0.0 {
            v.iter_mut()
                .for_each(|v| *v = if *v == self.min { 0.0 } else { 1.0 });
            return;
        }
        if clip {
            v.iter_mut().for_each(|v| *v = v.clamp(self.min, self.max));
        }
        if self.log {
            v.iter_mut().for_each(|v| *v = log1p_lanes(*v));
        }
        v.iter_mut().for_each(|v| *v = (*v - self.lo) / self.span);
    }
}

/// Rows whose `log1p` and constant columns [`Scaler::transform`] scales at
/// once: one column's values of 16 rows fill a vector.
const LANES: usize = 16;

/// `ln(1 + max(v, 0))`: log columns are non-negative in training, and a
/// negative test value below -1 would give NaN. Inlined arithmetic (Cephes'
/// `logf` of `u = 1 + v`, plus `(v - (u - 1)) / u` for what rounding `u`
/// lost), within 2 ulps of exact and the same bits whatever the system's
/// libm: a model scales alike on every machine.
#[inline]
fn log1p_floored(v: f32) -> f32 {
    // Zero, a counter's usual value: skipping the arithmetic pays.
    if v > 0.0 {
        log1p_lanes(v)
    } else {
        0.0
    }
}

/// [`log1p_floored`] without its branch (its arithmetic gives `+0` at
/// zero too), for a lane of a vector.
#[inline(always)]
fn log1p_lanes(v: f32) -> f32 {
    const P: [f32; 9] = [
        7.037_683_6e-2,
        -0.115_146_1,
        0.116_769_99,
        -0.124_201_41,
        0.142_493_23,
        -0.166_680_57,
        0.200_007_15,
        -0.249_999_94,
        0.333_333_3,
    ];
    let v = v.max(0.0);
    let u = 1.0 + v;
    // u = 2^e m, m in [sqrt(1/2), sqrt(2)).
    let bits = u.to_bits();
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let low = m < std::f32::consts::FRAC_1_SQRT_2;
    let e = ((bits >> 23) as i32 - 126 - i32::from(low)) as f32;
    let x = if low { m + m - 1.0 } else { m - 1.0 };
    let z = x * x;
    let p = P.iter().fold(0.0, |acc, &c| acc * x + c);
    let y = p * x * z + e * -2.121_944_4e-4 - 0.5 * z;
    let ln_u = x + y + e * 0.693_359_4;
    let t = ln_u + (v - (u - 1.0)) / u;
    if v < f32::INFINITY {
        t
    } else {
        v
    }
}

/// A fitted scaler.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Scaler {
    params: ScalerParams,
    features: Vec<Feature>,
}

impl Scaler {
    /// Number of features.
    pub fn dim(&self) -> usize {
        self.features.len()
    }

    /// The parameters it was fitted with.
    pub fn params(&self) -> ScalerParams {
        self.params
    }

    /// Scales one row in place.
    ///
    /// # Panics
    /// If `row.len() != self.dim()`.
    pub fn transform_row(&self, row: &mut [f32]) {
        assert_eq!(row.len(), self.features.len(), "row width");
        for (v, f) in row.iter_mut().zip(&self.features) {
            *v = f.apply(*v, self.params.clip);
        }
    }

    /// Scales every row in place: the bits of [`Scaler::transform_row`],
    /// vectorised for the CPU (`log1p` and constant columns 16 rows at a
    /// time, then min-max columns in one pass).
    pub fn transform(&self, x: &mut Matrix) {
        self.transform_at(Level::detect(), x);
    }

    fn transform_at(&self, level: Level, x: &mut Matrix) {
        let d = self.features.len();
        if d == 0 || x.cols() != d {
            // Zero-width rows, or a mismatch `transform_row` reports.
            x.as_mut_slice()
                .chunks_exact_mut(d.max(1))
                .for_each(|row| self.transform_row(row));
            return;
        }
        let (lanes, special) = self.lanes();
        let clip = self.params.clip;
        special_columns(level, x.as_mut_slice(), &self.features, &special, clip);
        // At most AVX2: on 40-column rows, 16-lane vectors leave an 8-column
        // tail per row (measured 35 us against 27 us per 4096 rows).
        min_max(level.min(Level::Avx2), x.as_mut_slice(), &lanes);
    }

    /// Operands of [`min_max`], and the columns it leaves alone (`log1p`,
    /// constant), each with whether it maps `+0` to `+0`.
    fn lanes(&self) -> (MinMax, Vec<(usize, bool)>) {
        let clip = self.params.clip;
        let min_maxed = |f: &Feature| !f.pass && !f.log && f.span > 0.0;
        let special = (self.features.iter().enumerate())
            .filter(|(_, f)| !f.pass && !min_maxed(f))
            .map(|(j, f)| (j, f.apply(0.0, clip).to_bits() == 0))
            .collect();
        let first = self.features.iter().position(min_maxed).unwrap_or(0);
        let end = (self.features.iter().rposition(min_maxed)).map_or(first, |j| j + 1);
        let run = &self.features[first..end];
        let mut m = MinMax {
            width: self.features.len(),
            first,
            lo: vec![0.0; run.len()],
            span: vec![1.0; run.len()],
            min: vec![f32::NEG_INFINITY; run.len()],
            max: vec![f32::INFINITY; run.len()],
        };
        for (j, f) in run.iter().enumerate().filter(|(_, f)| min_maxed(f)) {
            (m.lo[j], m.span[j]) = (f.lo, f.span);
            if clip {
                (m.min[j], m.max[j]) = (f.min, f.max);
            }
        }
        (m, special)
    }
}

/// Operands of the min-max pass over the columns `first..first + lo.len()`
/// of rows `width` wide: the first to the last min-max column (one-hot
/// slots often lie outside), with identity operands (`0`, `1`, `-inf`,
/// `inf`) on the columns between that it must not change.
struct MinMax {
    width: usize,
    first: usize,
    lo: Vec<f32>,
    span: Vec<f32>,
    min: Vec<f32>,
    max: Vec<f32>,
}

/// `v = (clip(v) - lo) / span` column by column over every row of `x`, with
/// the operations of [`Feature::apply`].
#[inline(always)]
fn min_max_body(x: &mut [f32], m: &MinMax) {
    if m.lo.is_empty() {
        return;
    }
    let run = m.first..m.first + m.lo.len();
    for row in x.chunks_exact_mut(m.width) {
        let cols = row[run.clone()]
            .iter_mut()
            .zip(&m.lo)
            .zip(&m.span)
            .zip(&m.min)
            .zip(&m.max);
        for ((((v, &lo), &span), &min), &max) in cols {
            // `f32::clamp` without its bound check (NaN stays NaN).
            let c = if *v < min {
                min
            } else if *v > max {
                max
            } else {
                *v
            };
            *v = (c - lo) / span;
        }
    }
}

multiversion! {
    fn min_max(x: &mut [f32], m: &MinMax) = min_max_body;
}

/// Columns `special` of every row of `x` by [`Feature::apply_lanes`],
/// [`LANES`] rows at a time. A column marked as mapping `+0` to `+0` is
/// left as it is where its values are all `+0` (most counters, mostly).
#[inline(always)]
fn special_body(x: &mut [f32], features: &[Feature], special: &[(usize, bool)], clip: bool) {
    let d = features.len();
    for block in x.chunks_mut(LANES * d) {
        let n = block.len() / d;
        for &(j, zero_stays) in special {
            let mut v = [0.0f32; LANES];
            for (i, v) in v[..n].iter_mut().enumerate() {
                *v = block[i * d + j];
            }
            if zero_stays && v.iter().all(|v| v.to_bits() == 0) {
                continue;
            }
            features[j].apply_lanes(&mut v, clip);
            for (i, &v) in v[..n].iter().enumerate() {
                block[i * d + j] = v;
            }
        }
    }
}

multiversion! {
    fn special_columns(
        x: &mut [f32],
        features: &[Feature],
        special: &[(usize, bool)],
        clip: bool,
    ) = special_body;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fitted(params: ScalerParams) -> Scaler {
        let x = Matrix::from_vec(3, 3, vec![0., 5., 1., 99., 5., 0., 9., 5., 1.]).unwrap();
        params.fit(&x, &[false, false, true]).unwrap()
    }

    #[test]
    fn min_max_constant_and_passthrough() {
        let s = fitted("minmax".parse().unwrap());
        let mut r = [49.5, 5.0, 1.0];
        s.transform_row(&mut r);
        assert_eq!(r, [0.5, 0.0, 1.0]);
        let mut r = [198.0, 6.0, 0.0];
        s.transform_row(&mut r);
        assert_eq!(r, [2.0, 1.0, 0.0]);
    }

    #[test]
    fn log1p_is_within_two_ulps() {
        let mut v = 1e-30f32;
        while v < 3e38 {
            let want = f64::from(v).ln_1p();
            let got = f64::from(log1p_floored(v));
            assert!(
                (got - want).abs() <= f64::from(f32::EPSILON) * want,
                "{v}: {got} vs {want}"
            );
            v *= 1.000_37;
        }
        for (v, want) in [(0.0f32, 0.0f32), (-0.0, 0.0), (-3.0, 0.0), (f32::NAN, 0.0)] {
            assert_eq!(log1p_floored(v).to_bits(), want.to_bits(), "{v}");
        }
        assert_eq!(log1p_floored(f32::INFINITY), f32::INFINITY);
        assert_eq!(log1p_floored(f32::MAX), f32::MAX.ln_1p());
    }

    #[test]
    fn log_and_clip() {
        let s = fitted("log-minmax-clip".parse().unwrap());
        let mut r = [99.0, 5.0, 0.0];
        s.transform_row(&mut r);
        assert!((r[0] - 1.0).abs() < 1e-6);
        let mut r = [1e9, 5.0, 0.0];
        s.transform_row(&mut r);
        assert!((r[0] - 1.0).abs() < 1e-6, "clipped: {r:?}");
        let mut r = [-5.0, 5.0, 0.0];
        s.transform_row(&mut r);
        assert_eq!(r[0], 0.0);
        let mut m = Matrix::from_vec(1, 3, vec![9.0, 5.0, 1.0]).unwrap();
        s.transform(&mut m);
        assert!((m.row(0)[0] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn heavy_tail_rule() {
        // 99 values near 0 and one huge: heavy-tailed, logged.
        let mut v = vec![1.0; 99];
        v.push(1e6);
        let x = Matrix::from_vec(100, 1, v.clone()).unwrap();
        let s = ScalerParams::default().fit(&x, &[false]).unwrap();
        let mut r = [1.0];
        s.transform_row(&mut r);
        assert!((r[0] - 0.0).abs() < 1e-6);
        let mut r = [1000.0];
        s.transform_row(&mut r);
        assert!(r[0] > 0.4, "log spreads ordinary values: {r:?}");
        // Spread evenly: plain min-max, unclipped by default.
        let x = Matrix::from_vec(5, 1, vec![0., 25., 50., 75., 100.]).unwrap();
        let s = ScalerParams::default().fit(&x, &[false]).unwrap();
        let mut r = [50.0];
        s.transform_row(&mut r);
        assert_eq!(r, [0.5]);
        let mut r = [300.0];
        s.transform_row(&mut r);
        assert_eq!(r, [3.0]);
    }

    #[test]
    fn transform_gives_the_bits_of_transform_row_at_every_level() {
        let x = Matrix::from_vec(
            5,
            4,
            vec![
                0., 5., 1., 1.0, 99., 5., 0., 1e6, 9., 5., 1., 2.0, 50., 5., 0., 3.0, 7., 5., 1.,
                1.5,
            ],
        )
        .unwrap();
        let test = vec![
            49.5,
            5.0,
            1.0,
            1e5,
            -3.0,
            6.0,
            0.0,
            -2.0,
            f32::NAN,
            f32::INFINITY,
            0.5,
            f32::NAN,
            -0.0,
            5.0,
            f32::NEG_INFINITY,
            1e9,
            1e30,
            4.0,
            1.0,
            2.5,
        ];
        // 37 rows: two full blocks of 16 and a partial one.
        let rows = 37;
        let test: Vec<f32> = (0..rows * 4)
            .map(|i| test[(i * 7 + i / 4) % test.len()])
            .collect();
        for name in ["minmax", "minmax-clip", "log-minmax", "log-minmax-clip"] {
            let params: ScalerParams = name.parse().unwrap();
            let s = params.fit(&x, &[false, false, true, false]).unwrap();
            let mut want = test.clone();
            want.chunks_mut(4).for_each(|r| s.transform_row(r));
            for level in Level::supported() {
                let mut m = Matrix::from_vec(rows, 4, test.clone()).unwrap();
                s.transform_at(level, &mut m);
                let same = m
                    .as_slice()
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{name} {level:?}: {:?} vs {want:?}", m.as_slice());
            }
        }
    }

    #[test]
    fn log_columns_get_the_bits_of_transform_row_at_every_level() {
        let mut v = vec![1.0; 99];
        v.push(1e6);
        let x = Matrix::from_vec(100, 1, v).unwrap();
        let s = ScalerParams::default().fit(&x, &[false]).unwrap();
        assert!(s.features[0].log);
        let rows = 4099;
        // A block of `+0` (left as it is), one of zeros with a `-0`, then
        // values up to 1500.
        let test: Vec<f32> = (0..rows)
            .map(|i| match i {
                0..32 if i == 20 => -0.0,
                0..32 => 0.0,
                _ => i as f32 * 0.37 - 1.0,
            })
            .collect();
        let mut want = test.clone();
        want.chunks_mut(1).for_each(|r| s.transform_row(r));
        for level in Level::supported() {
            let mut m = Matrix::from_vec(rows, 1, test.clone()).unwrap();
            s.transform_at(level, &mut m);
            let diff =
                (m.as_slice().iter().zip(&want)).position(|(a, b)| a.to_bits() != b.to_bits());
            assert_eq!(diff, None, "{level:?}");
        }
    }

    #[test]
    fn bad_fits_and_names() {
        let empty = Matrix::with_cols(2);
        assert!(ScalerParams::default()
            .fit(&empty, &[false, false])
            .is_err());
        let x = Matrix::zeros(1, 2);
        assert!(ScalerParams::default().fit(&x, &[false]).is_err());
        assert!("zscore".parse::<ScalerParams>().is_err());
    }
}
