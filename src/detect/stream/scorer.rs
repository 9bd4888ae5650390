//! Scorers of the streaming engine: a model loaded from a file, or one
//! learned online from the first records (the grace period).
//!
//! Both online scorers split the grace period the same way: they learn from
//! the first 80 % of it and calibrate the threshold on the scores of the last
//! 20 %, records they did not learn from (chronologically later, so the
//! threshold allows for the drift of damped statistics).

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model::autoencoder::{Autoencoder, AutoencoderParams};
use crate::model::dense::Workspace;
use crate::model::kitnet::{KitNet, KitNetParams};
use crate::model::threshold::ThresholdRule;
use crate::{Error, Matrix, Result};

/// Share of the grace period learned from; the rest calibrates the threshold.
const LEARN_SHARE: f64 = 0.8;

/// Scores feature vectors one at a time.
pub trait StreamScorer {
    /// Learns from `x` while in grace (returning `None`), then scores it
    /// (higher = more anomalous). Errors reject the record.
    fn score(&mut self, x: &[f64]) -> Result<Option<f64>>;

    /// The decision threshold, once known.
    fn threshold(&self) -> Option<f64>;

    /// Each feature's share of the error of `x` (summing to 1, or all 0),
    /// written into `shares`. Called for anomalous records only.
    fn explain(&mut self, x: &[f64], shares: &mut [f64]) -> Result<()>;

    /// The attack family a classifier names for `x`, when the model has one
    /// and it does not say normal. Called for anomalous records only.
    fn family(&mut self, _x: &[f64]) -> Option<&str> {
        None
    }

    /// Records still to learn from before scoring starts.
    fn grace_left(&self) -> u64;

    /// The learned model, once out of grace.
    fn model(&self) -> Option<SavedModel>;
}

/// Sign-preserving `ln(1 + |x|)`: tames the heavy tails of damped weights and
/// variances, which span many orders of magnitude.
#[inline]
fn signed_log1p(x: f64) -> f64 {
    x.signum() * x.abs().ln_1p()
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
                let v = if log { signed_log1p(*v) } else { *v };
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

    /// Scales `x` into `out` (same length).
    #[inline]
    fn apply(&self, x: &[f64], out: &mut [f32]) {
        for (((o, v), lo), s) in out.iter_mut().zip(x).zip(&self.min).zip(&self.inv_range) {
            let v = if self.log { signed_log1p(*v) } else { *v };
            *o = ((v - lo) * s) as f32;
        }
    }

    fn width(&self) -> usize {
        self.min.len()
    }
}

/// A model learned online (or loaded), as saved by `--save-model`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SavedModel {
    /// Scaler, dense autoencoder and threshold.
    Autoencoder {
        /// Names of the features, in input order.
        features: Vec<String>,
        /// Input scaling.
        scaler: StreamScaler,
        /// The autoencoder.
        autoencoder: Autoencoder,
        /// Scores above this are anomalies.
        threshold: f64,
    },
    /// A KitNET ensemble in its executing phase and its threshold.
    Kitnet {
        /// Names of the features, in input order.
        features: Vec<String>,
        /// Whether inputs go through signed log1p first.
        log: bool,
        /// The ensemble.
        kitnet: Box<KitNet>,
        /// Scores above this are anomalies.
        threshold: f64,
    },
}

impl SavedModel {
    /// Writes the model to `path` as JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        // Temporary file + rename: a crash never leaves half a model.
        crate::util::write_atomically(path, |f| {
            let mut out = BufWriter::new(f);
            serde_json::to_writer(&mut out, self)?;
            out.flush()
        })
    }

    /// Reads a model written by [`SavedModel::save`], checking its shapes.
    pub fn load(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let bad = |msg: String| Error::Bundle {
            path: path.to_owned(),
            msg,
        };
        let m: SavedModel = serde_json::from_reader(BufReader::new(file))
            .map_err(|e| bad(format!("not a floodwatch watch model: {e}")))?;
        m.check().map_err(bad)?;
        Ok(m)
    }

    fn check(&self) -> Result<(), String> {
        match self {
            SavedModel::Autoencoder {
                features,
                scaler,
                autoencoder,
                threshold,
            } => {
                autoencoder.check_shapes()?;
                let d = features.len();
                if scaler.width() != d
                    || scaler.inv_range.len() != d
                    || autoencoder.input_dim() != d
                {
                    return Err(format!(
                        "{d} features but scaler of {} and autoencoder of {}",
                        scaler.width(),
                        autoencoder.input_dim()
                    ));
                }
                check_threshold(*threshold)
            }
            SavedModel::Kitnet {
                features,
                kitnet,
                threshold,
                ..
            } => {
                if kitnet.n_features() != features.len() {
                    return Err(format!(
                        "{} features but a KitNET of {}",
                        features.len(),
                        kitnet.n_features()
                    ));
                }
                if !kitnet.is_trained() {
                    return Err("the KitNET is still in grace".into());
                }
                check_threshold(*threshold)
            }
        }
    }

    /// Names of the features the model reads.
    pub fn features(&self) -> &[String] {
        match self {
            SavedModel::Autoencoder { features, .. } | SavedModel::Kitnet { features, .. } => {
                features
            }
        }
    }

    /// A scorer that scores from the first record on.
    pub fn into_scorer(self) -> Box<dyn StreamScorer> {
        match self {
            SavedModel::Autoencoder {
                features,
                scaler,
                autoencoder,
                threshold,
            } => Box::new(OnlineAutoencoder {
                names: features,
                phase: AePhase::Ready(Box::new(ReadyAe::new(scaler, autoencoder, threshold))),
                grace: 0,
                params: AutoencoderParams::new(),
                rule: ThresholdRule::default(),
                log: true,
            }),
            SavedModel::Kitnet {
                features,
                log,
                kitnet,
                threshold,
            } => Box::new(OnlineKitNet {
                names: features,
                net: *kitnet,
                log,
                calibrate: 0,
                rule: ThresholdRule::default(),
                calib_scores: Vec::new(),
                threshold: Some(threshold),
                buf: Vec::new(),
            }),
        }
    }
}

fn check_threshold(t: f64) -> Result<(), String> {
    if t.is_finite() {
        Ok(())
    } else {
        Err(format!("threshold should be finite, but is {t}"))
    }
}

/// Grace-period sizes of the online scorers.
fn split_grace(grace: u64) -> Result<(u64, u64)> {
    if grace < 10 {
        return Err(Error::Data(format!(
            "grace should be at least 10 records, but is {grace}"
        )));
    }
    let learn = ((grace as f64 * LEARN_SHARE).round() as u64).clamp(1, grace - 1);
    Ok((learn, grace - learn))
}

// === impl OnlineAutoencoder ===

/// A trained autoencoder with its buffers, ready to score.
#[derive(Debug)]
struct ReadyAe {
    scaler: StreamScaler,
    ae: Autoencoder,
    threshold: f64,
    scaled: Vec<f32>,
    errors: Vec<f32>,
    ws: Workspace,
}

impl ReadyAe {
    fn new(scaler: StreamScaler, ae: Autoencoder, threshold: f64) -> Self {
        let d = ae.input_dim();
        ReadyAe {
            scaler,
            ae,
            threshold,
            scaled: vec![0.0; d],
            errors: vec![0.0; d],
            ws: Workspace::default(),
        }
    }

    #[inline]
    fn score(&mut self, x: &[f64]) -> f64 {
        self.scaler.apply(x, &mut self.scaled);
        f64::from(self.ae.score_with(&self.scaled, &mut self.ws))
    }
}

#[derive(Debug)]
enum AePhase {
    /// Buffering the grace rows (at most `grace` of them).
    Learning(Vec<Vec<f64>>),
    Ready(Box<ReadyAe>),
}

/// The dense autoencoder learned from the grace period; see the
/// [module docs](self).
#[derive(Debug)]
pub struct OnlineAutoencoder {
    names: Vec<String>,
    phase: AePhase,
    grace: u64,
    params: AutoencoderParams,
    rule: ThresholdRule,
    log: bool,
}

impl OnlineAutoencoder {
    /// Learns from the first `grace` records (at least 10) of the features
    /// `names`, with `params` (hidden widths, epochs, ...), signed log1p
    /// scaling when `log`, and the threshold `rule` on the held-back scores.
    pub fn new(
        names: Vec<String>,
        grace: u64,
        params: AutoencoderParams,
        rule: ThresholdRule,
        log: bool,
    ) -> Result<Self> {
        split_grace(grace)?;
        Ok(OnlineAutoencoder {
            names,
            phase: AePhase::Learning(Vec::new()),
            grace,
            params,
            rule,
            log,
        })
    }

    /// Fits scaler and autoencoder on the first rows, calibrates on the rest.
    fn learn(&self, rows: &[Vec<f64>]) -> Result<ReadyAe> {
        let (learn, _) = split_grace(self.grace)?;
        let (fit_rows, calib_rows) = rows.split_at((learn as usize).min(rows.len()));
        let d = self.names.len();
        let scaler = StreamScaler::fit(fit_rows, d, self.log);
        let to_matrix = |rows: &[Vec<f64>]| {
            let mut m = Matrix::with_cols(d);
            let mut buf = vec![0.0f32; d];
            for r in rows {
                scaler.apply(r, &mut buf);
                m.push_row(&buf);
            }
            m
        };
        let (train, calib) = (to_matrix(fit_rows), to_matrix(calib_rows));
        let (ae, _) = self.params.fit(&train, None, &mut |_| {})?;
        let mut scores = vec![0.0f32; calib.rows()];
        ae.score_batch(&calib, &mut scores);
        let threshold = f64::from(self.rule.calibrate(&scores)?);
        Ok(ReadyAe::new(scaler, ae, threshold))
    }
}

impl StreamScorer for OnlineAutoencoder {
    fn score(&mut self, x: &[f64]) -> Result<Option<f64>> {
        check_record(x, self.names.len())?;
        match &mut self.phase {
            AePhase::Ready(r) => Ok(Some(r.score(x))),
            AePhase::Learning(rows) => {
                rows.push(x.to_vec());
                if rows.len() as u64 >= self.grace {
                    let rows = std::mem::take(rows);
                    self.phase = AePhase::Ready(Box::new(self.learn(&rows)?));
                }
                Ok(None)
            }
        }
    }

    fn threshold(&self) -> Option<f64> {
        match &self.phase {
            AePhase::Ready(r) => Some(r.threshold),
            AePhase::Learning(_) => None,
        }
    }

    fn explain(&mut self, x: &[f64], shares: &mut [f64]) -> Result<()> {
        let AePhase::Ready(r) = &mut self.phase else {
            return Err(Error::Model("the autoencoder is still in grace".into()));
        };
        check_record(x, self.names.len())?;
        r.scaler.apply(x, &mut r.scaled);
        r.ae.feature_errors_with(&r.scaled, &mut r.ws, &mut r.errors);
        let total: f64 = r.errors.iter().map(|&e| f64::from(e)).sum();
        for (s, &e) in shares.iter_mut().zip(&r.errors) {
            *s = if total > 0.0 {
                f64::from(e) / total
            } else {
                0.0
            };
        }
        Ok(())
    }

    fn grace_left(&self) -> u64 {
        match &self.phase {
            AePhase::Learning(rows) => self.grace - rows.len() as u64,
            AePhase::Ready(_) => 0,
        }
    }

    fn model(&self) -> Option<SavedModel> {
        match &self.phase {
            AePhase::Ready(r) => Some(SavedModel::Autoencoder {
                features: self.names.clone(),
                scaler: r.scaler.clone(),
                autoencoder: r.ae.clone(),
                threshold: r.threshold,
            }),
            AePhase::Learning(_) => None,
        }
    }
}

/// Rejects records of the wrong width or with non-finite values.
fn check_record(x: &[f64], d: usize) -> Result<()> {
    if x.len() != d {
        return Err(Error::Data(format!(
            "record has {} features, the model reads {d}",
            x.len()
        )));
    }
    match x.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::Data(format!("feature {i} is {}", x[i]))),
        None => Ok(()),
    }
}

// === impl OnlineKitNet ===

/// KitNET learning online during grace (mapping, then training), then
/// scoring held-back records to calibrate its threshold.
#[derive(Debug)]
pub struct OnlineKitNet {
    names: Vec<String>,
    net: KitNet,
    log: bool,
    calibrate: u64,
    rule: ThresholdRule,
    calib_scores: Vec<f32>,
    threshold: Option<f64>,
    buf: Vec<f64>,
}

impl OnlineKitNet {
    /// Learns from the first `grace` records (at least 10): a tenth of the
    /// learning share maps features, the rest trains; `params` gives the
    /// ensemble's other settings (group size, learning rate, seed).
    pub fn new(
        names: Vec<String>,
        grace: u64,
        params: KitNetParams,
        rule: ThresholdRule,
        log: bool,
    ) -> Result<Self> {
        let (learn, calibrate) = split_grace(grace)?;
        let fm = (learn / 10).max(1);
        let net = params
            .fm_grace(fm)
            .ad_grace(learn - fm)
            .build(names.len())?;
        Ok(OnlineKitNet {
            names,
            net,
            log,
            calibrate,
            rule,
            calib_scores: Vec::with_capacity(calibrate as usize),
            threshold: None,
            buf: Vec::new(),
        })
    }

    fn transform(&mut self, x: &[f64]) {
        self.buf.clear();
        if self.log {
            self.buf.extend(x.iter().map(|&v| signed_log1p(v)));
        } else {
            self.buf.extend_from_slice(x);
        }
    }
}

impl StreamScorer for OnlineKitNet {
    fn score(&mut self, x: &[f64]) -> Result<Option<f64>> {
        check_record(x, self.names.len())?;
        self.transform(x);
        let Some(s) = self.net.process(&self.buf)? else {
            return Ok(None);
        };
        if self.threshold.is_some() {
            return Ok(Some(s));
        }
        self.calib_scores.push(s as f32);
        if self.calib_scores.len() as u64 >= self.calibrate {
            let t = self.rule.calibrate(&self.calib_scores)?;
            self.threshold = Some(f64::from(t));
            self.calib_scores = Vec::new();
        }
        Ok(None)
    }

    fn threshold(&self) -> Option<f64> {
        self.threshold
    }

    fn explain(&mut self, x: &[f64], shares: &mut [f64]) -> Result<()> {
        self.transform(x);
        self.net.explain(&self.buf, shares).map(|_| ())
    }

    fn grace_left(&self) -> u64 {
        match self.threshold {
            Some(_) => 0,
            None => self.net.grace_left() + self.calibrate - self.calib_scores.len() as u64,
        }
    }

    fn model(&self) -> Option<SavedModel> {
        self.threshold.map(|threshold| SavedModel::Kitnet {
            features: self.names.clone(),
            log: self.log,
            kitnet: Box::new(self.net.clone()),
            threshold,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(d: usize) -> Vec<String> {
        (0..d).map(|i| format!("f{i}")).collect()
    }

    /// Normal rows: points near a line, with a heavy-tailed first feature.
    fn normal(i: usize) -> Vec<f64> {
        let t = (i as f64 * 0.37).sin();
        vec![10f64.powf(2.0 + t), 0.5 + 0.4 * t, 0.5 - 0.4 * t]
    }

    fn run(s: &mut dyn StreamScorer, grace: usize) -> (f64, f64) {
        for i in 0..grace {
            assert_eq!(s.grace_left(), (grace - i) as u64);
            assert!(s.score(&normal(i)).unwrap().is_none());
        }
        assert_eq!(s.grace_left(), 0);
        let n = s.score(&normal(grace + 1)).unwrap().unwrap();
        let odd = s.score(&[1e6, 5.0, 5.0]).unwrap().unwrap();
        (n, odd)
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
        let mut s =
            OnlineAutoencoder::new(names(3), 200, small_ae(), ThresholdRule::default(), true)
                .unwrap();
        assert!(s.threshold().is_none());
        assert!(s.model().is_none());
        let (n, odd) = run(&mut s, 200);
        let t = s.threshold().unwrap();
        assert!(
            n <= t * 3.0 && odd > t,
            "normal {n} odd {odd} threshold {t}"
        );
        let mut shares = [0.0; 3];
        s.explain(&[1e6, 0.5, 0.5], &mut shares).unwrap();
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-6);
        assert!(shares[0] > 0.5, "{shares:?}");
    }

    #[test]
    fn online_kitnet_learns_then_flags_outliers() {
        let mut s = OnlineKitNet::new(
            names(3),
            300,
            KitNetParams::new(),
            ThresholdRule::default(),
            true,
        )
        .unwrap();
        let (n, odd) = run(&mut s, 300);
        assert!(odd > n, "normal {n} odd {odd}");
        let mut shares = [0.0; 3];
        s.explain(&[1e6, 0.5, 0.5], &mut shares).unwrap();
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn saved_models_round_trip_and_score_alike() {
        let dir = tempfile::tempdir().unwrap();
        let mut ae =
            OnlineAutoencoder::new(names(3), 100, small_ae(), ThresholdRule::default(), true)
                .unwrap();
        let mut kn = OnlineKitNet::new(
            names(3),
            100,
            KitNetParams::new(),
            ThresholdRule::default(),
            false,
        )
        .unwrap();
        for s in [&mut ae as &mut dyn StreamScorer, &mut kn] {
            run(s, 100);
            let path = dir.path().join("m.json");
            s.model().unwrap().save(&path).unwrap();
            let loaded = SavedModel::load(&path).unwrap();
            assert_eq!(loaded.features(), names(3));
            let mut r = loaded.into_scorer();
            assert_eq!(r.grace_left(), 0);
            assert_eq!(r.threshold(), s.threshold());
            let x = normal(7);
            assert_eq!(r.score(&x).unwrap(), s.score(&x).unwrap());
        }
    }

    #[test]
    fn malformed_records_and_files_are_errors() {
        let mut s =
            OnlineAutoencoder::new(names(3), 20, small_ae(), ThresholdRule::default(), true)
                .unwrap();
        assert!(s.score(&[1.0, 2.0]).is_err());
        let e = s.score(&[1.0, f64::NAN, 0.0]).unwrap_err().to_string();
        assert!(e.contains("feature 1"), "{e}");
        assert_eq!(s.grace_left(), 20, "rejected records are not learned");
        assert!(
            OnlineAutoencoder::new(names(3), 5, small_ae(), ThresholdRule::default(), true)
                .is_err()
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        std::fs::write(&path, "{\"kind\":\"autoencoder\"}").unwrap();
        let e = SavedModel::load(&path).unwrap_err().to_string();
        assert!(e.contains("bad.json"), "{e}");
        assert!(SavedModel::load(&dir.path().join("missing.json")).is_err());
    }
}
