//! Scorers of the streaming engine: a detector learned online from the
//! grace period, or loaded from a model file.
//!
//! The engine drives a scorer through three phases: [`learn`] on the first
//! part of grace (a uniform sample of at most `sample` records is kept, so
//! memory does not grow with the grace period), [`fit`] once, then
//! [`score`]. The threshold is not the scorer's business: the engine
//! calibrates it on the scores of the rest of grace (see
//! [`calibrate`](super::calibrate)).
//!
//! [`learn`]: StreamScorer::learn
//! [`fit`]: StreamScorer::fit
//! [`score`]: StreamScorer::score

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::calibrate::Calibration;
use crate::features::packet::{Side, TableState};
use crate::model::autoencoder::{Autoencoder, AutoencoderParams};
use crate::model::dense::Workspace;
use crate::model::file::{self, Kind, ModelFile};
use crate::model::kitnet::{KitNet, KitNetParams};
use crate::simd::{multiversion, Level};
use crate::{Error, Matrix, Result};

/// Scores feature vectors one at a time.
pub trait StreamScorer {
    /// Keeps `x` to learn from (grace). Errors reject the record.
    fn learn(&mut self, x: &[f64]) -> Result<()>;

    /// Learns from what [`learn`](Self::learn) kept; `score` works after.
    fn fit(&mut self) -> Result<()>;

    /// Whether the scorer can score (fitted or loaded).
    fn ready(&self) -> bool;

    /// Scores `x`: higher = more anomalous. Errors reject the record.
    fn score(&mut self, x: &[f64]) -> Result<f64>;

    /// Scores the features `range` of each row of `rows` (rows of `width`)
    /// into `out`, one score a row, as [`score`](Self::score) would. An
    /// error means some row is malformed: score them one by one instead.
    fn score_rows(
        &mut self,
        rows: &[f64],
        width: usize,
        range: std::ops::Range<usize>,
        out: &mut [f64],
    ) -> Result<()> {
        for (row, o) in rows.chunks_exact(width).zip(out) {
            *o = self.score(&row[range.clone()])?;
        }
        Ok(())
    }

    /// Each feature's share of the error of `x` (summing to 1, or all 0),
    /// written into `shares`. Called for anomalous records only.
    fn explain(&mut self, x: &[f64], shares: &mut [f64]) -> Result<()>;

    /// [`explain`](Self::explain) of row `i` of the last
    /// [`score_rows`](Self::score_rows), `x` being its features: a scorer
    /// that kept that batch's work may reuse it.
    fn explain_row(&mut self, _i: usize, x: &[f64], shares: &mut [f64]) -> Result<()> {
        self.explain(x, shares)
    }

    /// The attack family a classifier names for `x`, when the model has one
    /// and it does not say normal. Called for anomalous records only.
    fn family(&mut self, _x: &[f64]) -> Option<&str> {
        None
    }

    /// The fitted detector, to save.
    fn detector(&self) -> Option<Detector>;
}

/// Sign-preserving `ln(1 + |x|)`: tames the heavy tails of damped weights and
/// variances, which span many orders of magnitude.
#[inline]
fn signed_log1p(x: f64) -> f64 {
    x.signum() * x.abs().ln_1p()
}

/// [`signed_log1p`] in `f32`, branch-free so that scaling a record
/// vectorises: `ln(1 + |x|)` as the exponent of `1 + |x|` times ln 2 plus
/// `2 atanh((m - 1) / (m + 1))` of its mantissa `m` in [0.707, 1.414) to
/// the 9th power (series error below 1e-9). Within 3e-7 of the `f64` value,
/// absolute or relative whichever is larger (the test checks): the `f32`
/// precision the scaled value is rounded to anyway.
#[inline(always)]
fn signed_log1p_f32(x: f64) -> f32 {
    const LN2: f32 = std::f32::consts::LN_2;
    let y = 1.0 + x.abs() as f32;
    let bits = y.to_bits();
    let mantissa = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let high = mantissa > std::f32::consts::SQRT_2;
    let m = if high { mantissa * 0.5 } else { mantissa };
    let k = ((bits >> 23) as i32 - 127 + i32::from(high)) as f32;
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let series = t * (2.0 + t2 * (2.0 / 3.0 + t2 * (0.4 + t2 * (2.0 / 7.0 + t2 * (2.0 / 9.0)))));
    let l = if y.is_finite() { k * LN2 + series } else { y };
    if x < 0.0 {
        -l
    } else {
        l
    }
}

/// Per-feature scaling learned from normal rows: optional signed log1p, then
/// min-max to [0, 1] on the rows seen (not clipped, so the distance of an
/// unseen value is kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamScaler {
    log: bool,
    min: Vec<f64>,
    inv_range: Vec<f64>,
}

impl StreamScaler {
    /// Fits on `rows` (all of width `d`); constant features get range 1.
    fn fit(rows: &[Vec<f64>], d: usize, log: bool) -> Self {
        let mut min = vec![f64::INFINITY; d];
        let mut max = vec![f64::NEG_INFINITY; d];
        for r in rows {
            for ((v, lo), hi) in r.iter().zip(&mut min).zip(&mut max) {
                let v = Self::prepare(log, *v);
                *lo = lo.min(v);
                *hi = hi.max(v);
            }
        }
        let inv_range = min
            .iter()
            .zip(&max)
            .map(|(lo, hi)| {
                let r = hi - lo;
                if r.is_finite() && r > 1e-12 {
                    1.0 / r
                } else {
                    1.0
                }
            })
            .collect();
        let min = min
            .into_iter()
            .map(|v| if v.is_finite() { v } else { 0.0 })
            .collect();
        StreamScaler {
            log,
            min,
            inv_range,
        }
    }

    /// Scales `x` into `out` (same length). The logarithm is taken in
    /// `f32` (the output's precision; see [`signed_log1p_f32`]).
    #[inline(always)]
    fn apply(&self, x: &[f64], out: &mut [f32]) {
        for (((o, v), lo), s) in out.iter_mut().zip(x).zip(&self.min).zip(&self.inv_range) {
            *o = ((Self::prepare(self.log, *v) - lo) * s) as f32;
        }
    }

    /// A value before min-max: its signed log1p when `log`. Fitting and
    /// scaling share it, so the range is learnt on what is scaled.
    #[inline(always)]
    fn prepare(log: bool, v: f64) -> f64 {
        if log {
            f64::from(signed_log1p_f32(v))
        } else {
            v
        }
    }

    fn width(&self) -> usize {
        self.min.len()
    }
}

multiversion! {
    fn scale_rows(
        s: &StreamScaler,
        rows: &[f64],
        width: usize,
        start: usize,
        out: &mut [f32],
    ) -> bool = scale_rows_body;
}

/// Scales features `start..` of each row of `rows` (rows of `width`) into
/// the rows of `out`: [`StreamScaler::apply`] a row, compiled for the CPU's
/// vectors (a fifth of `watch --layout floodwatch` on SSE2 alone). Whether
/// every value read was finite.
#[inline(always)]
fn scale_rows_body(
    s: &StreamScaler,
    rows: &[f64],
    width: usize,
    start: usize,
    out: &mut [f32],
) -> bool {
    let d = s.width();
    let mut finite = true;
    for (row, scaled) in rows.chunks_exact(width).zip(out.chunks_exact_mut(d)) {
        let x = &row[start..start + d];
        finite &= x.iter().fold(true, |f, v| f & v.is_finite());
        s.apply(x, scaled);
    }
    finite
}

/// A fitted detector of one side, as saved.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Detector {
    /// Scaler and dense autoencoder.
    Autoencoder {
        /// Input scaling.
        scaler: StreamScaler,
        /// The autoencoder.
        autoencoder: Autoencoder,
    },
    /// A KitNET ensemble in its executing phase.
    Kitnet {
        /// Whether inputs go through signed log1p first.
        log: bool,
        /// The ensemble.
        kitnet: Box<KitNet>,
    },
}

impl Detector {
    fn check(&self, d: usize) -> std::result::Result<(), String> {
        match self {
            Detector::Autoencoder {
                scaler,
                autoencoder,
            } => {
                autoencoder.check_shapes()?;
                if scaler.width() != d
                    || scaler.inv_range.len() != d
                    || autoencoder.input_dim() != d
                {
                    return Err(format!(
                        "{d} features but a scaler of {} and an autoencoder of {}",
                        scaler.width(),
                        autoencoder.input_dim()
                    ));
                }
                Ok(())
            }
            Detector::Kitnet { kitnet, .. } => {
                if kitnet.n_features() != d {
                    return Err(format!(
                        "{d} features but a KitNET of {}",
                        kitnet.n_features()
                    ));
                }
                if !kitnet.is_trained() {
                    return Err("the KitNET is still in grace".into());
                }
                Ok(())
            }
        }
    }

    /// A scorer that scores at once.
    pub fn into_scorer(self) -> Box<dyn StreamScorer> {
        match self {
            Detector::Autoencoder {
                scaler,
                autoencoder,
            } => {
                let d = scaler.width();
                let mut s = OnlineAutoencoder::new(d, AutoencoderParams::new(), true, 1);
                s.ready = Some(Box::new(ReadyAe::new(scaler, autoencoder)));
                Box::new(s)
            }
            Detector::Kitnet { log, kitnet } => {
                let d = kitnet.n_features();
                let mut s = OnlineKitNet::new(d, KitNetParams::new(), log, 1);
                s.net = Some(*kitnet);
                Box::new(s)
            }
        }
    }
}

/// One side of a saved model: its features, detector and threshold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedSide {
    /// The end of the packet it is about.
    pub side: Side,
    /// First and one-past-last feature index.
    pub range: (usize, usize),
    /// The detector.
    pub detector: Detector,
    /// Scores above this are anomalies.
    pub threshold: f64,
    /// How the threshold was calibrated, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
}

/// Format of [`SavedModel`] files.
pub(crate) const FORMAT: u32 = 2;

/// A model learned by `watch` (or loaded), as saved by `--save-model`: the
/// features it reads, a detector and threshold per side, and the feature
/// tables' contents for a warm restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedModel {
    /// File format version.
    pub format: u32,
    /// The packet layout, when the features come from packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
    /// Names of the features, in input order.
    pub features: Vec<String>,
    /// One detector per side.
    pub sides: Vec<SavedSide>,
    /// The layout's tables when saved (warm restart), if any. Last, so
    /// that a load takes them from the file without a scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<TableState>,
}

/// Why `text` did not decode as a [`SavedModel`] (`e`): not JSON, a model
/// of the format before warm state, or something else.
fn why_not_a_model(text: &str, e: serde_json::Error) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Err(e) => format!("not a floodwatch model: {e}"),
        Ok(v) if v.get("kind").is_some() && v.get("format").is_none() => {
            "a watch model of an older floodwatch (format 1), which kept no warm state: \
             learn it again with `watch --grace ... --save-model`"
                .into()
        }
        Ok(_) => format!("not a floodwatch watch model: {e}"),
    }
}

impl SavedModel {
    /// Writes the model to `path` as a [`Kind::Stream`] model file.
    pub fn save(&self, path: &Path) -> Result<()> {
        file::save(path, Kind::Stream, self)
    }

    /// Reads a model written by [`SavedModel::save`] (or the plain JSON of
    /// floodwatch before the one model file), checking its shapes.
    pub fn load(path: &Path) -> Result<Self> {
        if file::is_model_file(path) {
            return Self::from_file(&ModelFile::open(path)?);
        }
        Self::load_json(path)
    }

    /// Decodes and checks the stream model of `f`.
    pub fn from_file(f: &ModelFile) -> Result<Self> {
        let (mut m, state): (SavedModel, _) =
            f.decode_but_last(Kind::Stream, "this command", "state")?;
        if let Some(json) = state {
            m.state = Some(TableState::from_json(json));
        }
        m.check().map_err(|msg| file::bad(f.path(), msg))?;
        Ok(m)
    }

    fn load_json(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let bad = |msg: String| file::bad(path, msg);
        let m = match serde_json::from_str::<SavedModel>(&text) {
            Ok(m) => m,
            // Only a file that is not a model is read again, to say why.
            Err(e) => return Err(bad(why_not_a_model(&text, e))),
        };
        m.check().map_err(bad)?;
        Ok(m)
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "format {} (this floodwatch reads format {FORMAT})",
                self.format
            ));
        }
        if self.sides.is_empty() {
            return Err("no detector in the model".into());
        }
        let d = self.features.len();
        for s in &self.sides {
            let (a, b) = s.range;
            if a >= b || b > d {
                return Err(format!("feature range {a}..{b} outside the {d} features"));
            }
            s.detector.check(b - a)?;
            if !s.threshold.is_finite() {
                return Err(format!(
                    "threshold should be finite, but is {}",
                    s.threshold
                ));
            }
        }
        Ok(())
    }

    /// Names of the features the model reads.
    pub fn features(&self) -> &[String] {
        &self.features
    }
}

/// A uniform sample of at most `cap` records in arrival order
/// (reservoir sampling, seeded: the same input keeps the same rows).
#[derive(Debug)]
struct Sample {
    cap: usize,
    seen: u64,
    rows: Vec<(u64, Vec<f64>)>,
    rng: ChaCha8Rng,
}

impl Sample {
    fn new(cap: usize) -> Self {
        Sample {
            cap: cap.max(1),
            seen: 0,
            rows: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(0x5eed),
        }
    }

    fn push(&mut self, x: &[f64]) {
        self.seen += 1;
        if self.rows.len() < self.cap {
            self.rows.push((self.seen, x.to_vec()));
            return;
        }
        let j = self.rng.random_range(0..self.seen);
        if let Some(slot) = self.rows.get_mut(j as usize) {
            slot.0 = self.seen;
            slot.1.clear();
            slot.1.extend_from_slice(x);
        }
    }

    /// Keeps `x`, a record of `d` finite features.
    fn learn(&mut self, x: &[f64], d: usize) -> Result<()> {
        check_record(x, d)?;
        self.push(x);
        Ok(())
    }

    /// The rows to fit on, oldest first, if there are enough of them;
    /// empties the sample.
    fn rows(&mut self) -> Result<Vec<Vec<f64>>> {
        let rows = self.take();
        check_sample(&rows)?;
        Ok(rows)
    }

    /// The rows, oldest first; empties the sample.
    fn take(&mut self) -> Vec<Vec<f64>> {
        let mut rows = std::mem::take(&mut self.rows);
        rows.sort_by_key(|r| r.0);
        rows.into_iter().map(|r| r.1).collect()
    }
}

/// Each feature's share of the summed squared error `errors` into
/// `shares` (all 0 when the error is 0): what an alert's top features show.
pub(crate) fn error_shares(errors: &[f32], shares: &mut [f64]) {
    let total: f64 = errors.iter().map(|&e| f64::from(e)).sum();
    for (s, &e) in shares.iter_mut().zip(errors) {
        *s = if total > 0.0 {
            f64::from(e) / total
        } else {
            0.0
        };
    }
}

/// Rejects records of the wrong width or with non-finite values.
fn check_record(x: &[f64], d: usize) -> Result<()> {
    check_width(x.len(), d)?;
    match x.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::Data(format!("feature {i} is {}", x[i]))),
        None => Ok(()),
    }
}

/// Rejects a record of `features` values for a model reading `d`.
fn check_width(features: usize, d: usize) -> Result<()> {
    if features != d {
        return Err(Error::Data(format!(
            "record has {features} features, the model reads {d}"
        )));
    }
    Ok(())
}

/// Learning needs at least this many records.
const MIN_LEARN: usize = 8;

fn check_sample(rows: &[Vec<f64>]) -> Result<()> {
    if rows.len() < MIN_LEARN {
        return Err(Error::Data(format!(
            "grace gave {} records to learn from; at least {MIN_LEARN} are needed",
            rows.len()
        )));
    }
    Ok(())
}

// === impl OnlineAutoencoder ===

/// A trained autoencoder with its buffers, ready to score.
#[derive(Debug)]
struct ReadyAe {
    scaler: StreamScaler,
    ae: Autoencoder,
    scaled: Vec<f32>,
    errors: Vec<f32>,
    ws: Workspace,
    batch: Vec<f32>,
    batch_scores: Vec<f32>,
}

impl ReadyAe {
    fn new(scaler: StreamScaler, ae: Autoencoder) -> Self {
        let d = ae.input_dim();
        ReadyAe {
            scaler,
            ae,
            scaled: vec![0.0; d],
            errors: vec![0.0; d],
            ws: Workspace::default(),
            batch: Vec::new(),
            batch_scores: Vec::new(),
        }
    }
}

/// The dense autoencoder learned from the grace period.
#[derive(Debug)]
pub struct OnlineAutoencoder {
    d: usize,
    sample: Sample,
    params: AutoencoderParams,
    log: bool,
    ready: Option<Box<ReadyAe>>,
}

impl OnlineAutoencoder {
    /// Learns `d` features with `params` (hidden widths, epochs, ...), signed
    /// log1p scaling when `log`, from a sample of at most `sample` records.
    pub fn new(d: usize, params: AutoencoderParams, log: bool, sample: usize) -> Self {
        OnlineAutoencoder {
            d,
            sample: Sample::new(sample),
            params,
            log,
            ready: None,
        }
    }
}

impl StreamScorer for OnlineAutoencoder {
    fn learn(&mut self, x: &[f64]) -> Result<()> {
        self.sample.learn(x, self.d)
    }

    fn fit(&mut self) -> Result<()> {
        let rows = self.sample.rows()?;
        let scaler = StreamScaler::fit(&rows, self.d, self.log);
        let mut train = Matrix::with_cols(self.d);
        let mut buf = vec![0.0f32; self.d];
        for r in &rows {
            scaler.apply(r, &mut buf);
            train.push_row(&buf);
        }
        let (ae, _) = self.params.fit(&train, None, &mut |_| {})?;
        self.ready = Some(Box::new(ReadyAe::new(scaler, ae)));
        Ok(())
    }

    fn ready(&self) -> bool {
        self.ready.is_some()
    }

    #[inline]
    fn score(&mut self, x: &[f64]) -> Result<f64> {
        check_record(x, self.d)?;
        let r = self.ready.as_mut().ok_or_else(not_fitted)?;
        r.scaler.apply(x, &mut r.scaled);
        Ok(f64::from(r.ae.score_with(&r.scaled, &mut r.ws)))
    }

    /// All rows through the autoencoder's batch kernels at once.
    fn score_rows(
        &mut self,
        rows: &[f64],
        width: usize,
        range: std::ops::Range<usize>,
        out: &mut [f64],
    ) -> Result<()> {
        let d = self.d;
        let r = self.ready.as_mut().ok_or_else(not_fitted)?;
        check_width(range.len(), d)?;
        let n = out.len();
        // Every value is written below: no need to clear what is kept.
        let mut data = std::mem::take(&mut r.batch);
        data.resize(n * d, 0.0);
        if !scale_rows(
            Level::detect(),
            &r.scaler,
            rows,
            width,
            range.start,
            &mut data,
        ) {
            for row in rows.chunks_exact(width) {
                check_record(&row[range.clone()], d)?;
            }
        }
        let m = Matrix::from_vec(n, d, data)
            .ok_or_else(|| Error::Model("a batch of the wrong shape".into()))?;
        r.batch_scores.resize(n, 0.0);
        r.ae.score_batch_with(&m, &mut r.ws, &mut r.batch_scores);
        r.batch = m.into_vec();
        for (o, s) in out.iter_mut().zip(&r.batch_scores) {
            *o = f64::from(*s);
        }
        Ok(())
    }

    fn explain(&mut self, x: &[f64], shares: &mut [f64]) -> Result<()> {
        check_record(x, self.d)?;
        let r = self.ready.as_mut().ok_or_else(not_fitted)?;
        r.scaler.apply(x, &mut r.scaled);
        r.ae.feature_errors_with(&r.scaled, &mut r.ws, &mut r.errors);
        error_shares(&r.errors, shares);
        Ok(())
    }

    /// From the batch's own pass where it is still there: a flood whose
    /// every record raises its episode's peak is explained without a second
    /// pass per record.
    fn explain_row(&mut self, i: usize, x: &[f64], shares: &mut [f64]) -> Result<()> {
        let r = self.ready.as_mut().ok_or_else(not_fitted)?;
        let rows = r.batch_scores.len();
        if r.ae.batch_feature_errors(&r.ws, rows, i, &mut r.errors) {
            error_shares(&r.errors, shares);
            return Ok(());
        }
        self.explain(x, shares)
    }

    fn detector(&self) -> Option<Detector> {
        self.ready.as_ref().map(|r| Detector::Autoencoder {
            scaler: r.scaler.clone(),
            autoencoder: r.ae.clone(),
        })
    }
}

fn not_fitted() -> Error {
    Error::Model("the detector is still learning (grace)".into())
}

// === impl OnlineKitNet ===

/// KitNET learned from the grace sample: a tenth maps features, the rest
/// trains the ensemble, in arrival order.
#[derive(Debug)]
pub struct OnlineKitNet {
    d: usize,
    sample: Sample,
    params: KitNetParams,
    log: bool,
    net: Option<KitNet>,
    buf: Vec<f64>,
}

impl OnlineKitNet {
    /// Learns `d` features with `params` (group size, learning rate, seed),
    /// signed log1p first when `log`, from at most `sample` records.
    pub fn new(d: usize, params: KitNetParams, log: bool, sample: usize) -> Self {
        OnlineKitNet {
            d,
            sample: Sample::new(sample),
            params,
            log,
            net: None,
            buf: Vec::new(),
        }
    }

    fn transform(buf: &mut Vec<f64>, log: bool, x: &[f64]) {
        buf.clear();
        if log {
            buf.extend(x.iter().map(|&v| signed_log1p(v)));
        } else {
            buf.extend_from_slice(x);
        }
    }
}

impl StreamScorer for OnlineKitNet {
    fn learn(&mut self, x: &[f64]) -> Result<()> {
        self.sample.learn(x, self.d)
    }

    fn fit(&mut self) -> Result<()> {
        let rows = self.sample.rows()?;
        let n = rows.len() as u64;
        let fm = (n / 10).max(1);
        let mut net = self
            .params
            .clone()
            .fm_grace(fm)
            .ad_grace(n - fm)
            .build(self.d)?;
        for r in &rows {
            Self::transform(&mut self.buf, self.log, r);
            net.process(&self.buf)?;
        }
        self.net = Some(net);
        Ok(())
    }

    fn ready(&self) -> bool {
        self.net.as_ref().is_some_and(KitNet::is_trained)
    }

    #[inline]
    fn score(&mut self, x: &[f64]) -> Result<f64> {
        check_record(x, self.d)?;
        let net = self.net.as_ref().ok_or_else(not_fitted)?;
        Self::transform(&mut self.buf, self.log, x);
        net.score(&self.buf)
    }

    fn explain(&mut self, x: &[f64], shares: &mut [f64]) -> Result<()> {
        let net = self.net.as_mut().ok_or_else(not_fitted)?;
        Self::transform(&mut self.buf, self.log, x);
        net.explain(&self.buf, shares).map(|_| ())
    }

    fn detector(&self) -> Option<Detector> {
        let net = self.net.as_ref().filter(|n| n.is_trained())?;
        Some(Detector::Kitnet {
            log: self.log,
            kitnet: Box::new(net.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_f32_log_stays_within_its_bound() {
        let mut worst = 0.0f64;
        let mut x = 1e-12f64;
        while x < 1e30 {
            for v in [x, -x, x * 1.37, x * 0.71] {
                let exact = signed_log1p(v);
                let err = (f64::from(signed_log1p_f32(v)) - exact).abs() / exact.abs().max(1.0);
                worst = worst.max(err);
            }
            x *= 1.013;
        }
        assert!(worst < 3e-7, "{worst}");
        assert_eq!(signed_log1p_f32(0.0), 0.0);
        assert_eq!(signed_log1p_f32(f64::INFINITY), f32::INFINITY);
        assert_eq!(signed_log1p_f32(f64::NEG_INFINITY), f32::NEG_INFINITY);
        assert!(signed_log1p_f32(f64::NAN).is_nan());
    }

    /// Normal rows: points near a line, with a heavy-tailed first feature.
    fn normal(i: usize) -> Vec<f64> {
        let t = (i as f64 * 0.37).sin();
        vec![10f64.powf(2.0 + t), 0.5 + 0.4 * t, 0.5 - 0.4 * t]
    }

    fn fit(s: &mut dyn StreamScorer, n: usize) -> (f64, f64) {
        assert!(!s.ready());
        for i in 0..n {
            s.learn(&normal(i)).unwrap();
        }
        s.fit().unwrap();
        assert!(s.ready());
        let normal = s.score(&normal(n + 1)).unwrap();
        let odd = s.score(&[1e6, 5.0, 5.0]).unwrap();
        (normal, odd)
    }

    fn small_ae() -> AutoencoderParams {
        AutoencoderParams::new()
            .hidden([4, 2, 2, 4])
            .epochs(30)
            .batch_size(16)
            .learning_rate(1e-2)
    }

    #[test]
    fn online_autoencoder_learns_then_flags_outliers() {
        let mut s = OnlineAutoencoder::new(3, small_ae(), true, 1000);
        let (n, odd) = fit(&mut s, 200);
        assert!(odd > 10.0 * n, "normal {n} odd {odd}");
        let mut shares = [0.0; 3];
        s.explain(&[1e6, 0.5, 0.5], &mut shares).unwrap();
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-6);
        assert!(shares[0] > 0.5, "{shares:?}");
    }

    #[test]
    fn batches_score_as_single_records_to_the_bit() {
        let mut s = OnlineAutoencoder::new(3, small_ae(), true, 1000);
        fit(&mut s, 200);
        // Rows of 5 with the 3 features in the middle; 70 rows (kernels of
        // several widths and a remainder).
        let rows: Vec<f64> = (0..70)
            .flat_map(|i| {
                let mut r = vec![-1.0];
                r.extend(normal(i * 3));
                r.push(-2.0);
                r
            })
            .collect();
        let mut batch = vec![0.0; 70];
        s.score_rows(&rows, 5, 1..4, &mut batch).unwrap();
        for (row, b) in rows.chunks_exact(5).zip(&batch) {
            assert_eq!(s.score(&row[1..4]).unwrap().to_bits(), b.to_bits());
        }
        let mut bad = rows.clone();
        bad[7] = f64::NAN;
        assert!(s.score_rows(&bad, 5, 1..4, &mut batch).is_err());
        // Values outside the scored range may be anything; a range of the
        // wrong width is refused.
        let mut outside = rows.clone();
        outside[5] = f64::NAN;
        s.score_rows(&outside, 5, 1..4, &mut batch).unwrap();
        assert!(s.score_rows(&rows, 5, 0..4, &mut batch).is_err());
    }

    #[test]
    fn batch_rows_explain_as_single_records_to_the_bit() {
        let mut s = OnlineAutoencoder::new(3, small_ae(), true, 1000);
        fit(&mut s, 200);
        // The tiled kernels run where AVX2 does.
        let tiled = crate::simd::Level::detect() >= crate::simd::Level::Avx2;
        let (mut one, mut row) = ([0.0; 3], [0.0; 3]);
        for n in [2, 4, 64, 300] {
            let rows: Vec<f64> = (0..n).flat_map(odd_row).collect();
            let mut scores = vec![0.0; n];
            s.score_rows(&rows, 3, 0..3, &mut scores).unwrap();
            // From the batch's pass where it is kept: 4 to 256 rows.
            let r = s.ready.as_mut().unwrap();
            let mut errors = vec![0.0; 3];
            let reused = r.ae.batch_feature_errors(&r.ws, n, n - 1, &mut errors);
            assert_eq!(reused, tiled && (4..=256).contains(&n), "{n} rows");
            for (i, x) in rows.chunks_exact(3).enumerate() {
                s.explain_row(i, x, &mut row).unwrap();
                s.explain(x, &mut one).unwrap();
                assert_eq!(
                    one.map(f64::to_bits),
                    row.map(f64::to_bits),
                    "{n} rows, row {i}"
                );
            }
            // explain used the workspace: the batch is gone, still right.
            let r = s.ready.as_ref().unwrap();
            assert!(!r.ae.batch_feature_errors(&r.ws, n, n - 1, &mut errors));
        }
    }

    /// Rows far from the normal ones, each different.
    fn odd_row(i: usize) -> [f64; 3] {
        let f = i as f64;
        [1e3 * (f + 1.0), 5.0 - f / 100.0, 0.5 + f / 1000.0]
    }

    #[test]
    fn online_kitnet_learns_then_flags_outliers() {
        let mut s = OnlineKitNet::new(3, KitNetParams::new(), true, 1000);
        let (n, odd) = fit(&mut s, 300);
        assert!(odd > n, "normal {n} odd {odd}");
        let mut shares = [0.0; 3];
        s.explain(&[1e6, 0.5, 0.5], &mut shares).unwrap();
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn the_grace_sample_is_bounded_and_keeps_arrival_order() {
        let mut s = Sample::new(100);
        for i in 0..10_000 {
            s.push(&[f64::from(i)]);
        }
        let rows = s.take();
        assert_eq!(rows.len(), 100);
        assert!(rows.windows(2).all(|w| w[0][0] < w[1][0]));
        // Uniform: the sample reaches into the second half.
        assert!(rows.iter().filter(|r| r[0] >= 5000.0).count() > 25);
    }

    #[test]
    fn saved_models_round_trip_and_score_alike() {
        let dir = tempfile::tempdir().unwrap();
        let mut ae = OnlineAutoencoder::new(3, small_ae(), true, 1000);
        let mut kn = OnlineKitNet::new(3, KitNetParams::new(), false, 1000);
        for s in [&mut ae as &mut dyn StreamScorer, &mut kn] {
            fit(s, 200);
            let path = dir.path().join("m.json");
            let model = SavedModel {
                format: FORMAT,
                layout: None,
                features: vec!["a".into(), "b".into(), "c".into()],
                sides: vec![SavedSide {
                    side: Side::Destination,
                    range: (0, 3),
                    detector: s.detector().unwrap(),
                    threshold: 0.5,
                    calibration: None,
                }],
                state: TableState::of(&serde_json::json!({"hosts": [[1, 2]], "state": {}})),
            };
            // Plain JSON, as floodwatch wrote before the one model file.
            std::fs::write(&path, serde_json::to_vec(&model).unwrap()).unwrap();
            let legacy = SavedModel::load(&path).unwrap();
            model.save(&path).unwrap();
            let loaded = SavedModel::load(&path).unwrap();
            // The tables are taken from the file without a scan.
            let f = ModelFile::open(&path).unwrap();
            let (_, tables) = f
                .decode_but_last::<SavedModel>(Kind::Stream, "t", "state")
                .unwrap();
            assert_eq!(tables, model.state.as_ref().map(TableState::json));
            assert_eq!(loaded.features(), ["a", "b", "c"]);
            assert_eq!((&legacy.state, &loaded.state), (&model.state, &model.state));
            assert_eq!(
                serde_json::to_string(&legacy).unwrap(),
                serde_json::to_string(&loaded).unwrap()
            );
            let mut r = loaded.sides[0].detector.clone().into_scorer();
            assert!(r.ready());
            let x = normal(7);
            assert_eq!(r.score(&x).unwrap(), s.score(&x).unwrap());
        }
    }

    #[test]
    fn malformed_records_and_files_are_errors() {
        let mut s = OnlineAutoencoder::new(3, small_ae(), true, 100);
        assert!(s.learn(&[1.0, 2.0]).is_err());
        let e = s.learn(&[1.0, f64::NAN, 0.0]).unwrap_err().to_string();
        assert!(e.contains("feature 1"), "{e}");
        assert!(s.score(&normal(1)).is_err(), "not fitted");
        assert!(s.fit().is_err(), "nothing learned");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        std::fs::write(&path, "{\"kind\":\"autoencoder\"}").unwrap();
        let e = SavedModel::load(&path).unwrap_err().to_string();
        assert!(e.contains("bad.json") && e.contains("older"), "{e}");
        assert!(SavedModel::load(&dir.path().join("missing.json")).is_err());
        file::save(&path, Kind::Table, &[1.0f32]).unwrap();
        let e = SavedModel::load(&path).unwrap_err().to_string();
        assert!(e.contains("is a table model"), "{e}");
    }
}
