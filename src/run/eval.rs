//! Compare every detector on the same data: [`evaluate`] trains the bundle
//! (scaler, autoencoder, threshold, latent classifier) exactly as `train`
//! does, fits KitNET, Isolation Forest, Local Outlier Factor and One-Class
//! SVM on the same scaled normal training rows, calibrates each classical
//! detector's threshold on the same held-back normal rows with the bundle's
//! [`ThresholdRule`], scores the same test rows and measures them all.
//!
//! [`load_data`] reads labelled or unlabelled CSV files through a bundle's
//! schema and scaler (used by `eval`, `plot`, `threshold` and `report`);
//! it keeps a seeded reservoir sample of at most `max_rows` rows, so memory
//! is bounded by that setting, and it counts every row read.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::ingest::csv::Rejections;
use crate::model::bundle::{is_normal, Bundle, CLASSIFIER_THRESHOLD};
use crate::model::detector::Fit;
use crate::model::threshold::ThresholdRule;
use crate::model::DETECTORS;
use crate::report::metrics::{binary_metrics, roc_auc, tpr_at_fpr};
use crate::run::batch::{self, Input, TrainOptions};
use crate::{Error, Matrix, Result};

/// Name of the autoencoder's reconstruction-error detector.
pub const AUTOENCODER: &str = "autoencoder";
/// Name of the latent classifier (score = 1 - p(normal)).
pub const LATENT_CLASSIFIER: &str = "latent_classifier";
/// Share of the training's normal rows set aside to test on when the test
/// files hold none.
const SET_ASIDE: f64 = 0.2;
/// Label given to rows of files without the bundle's label column.
pub const UNLABELLED: &str = "(unlabelled)";

/// Rows read through a bundle: scaled features and their labels.
#[derive(Debug, Clone)]
pub struct Data {
    /// Scaled encoded rows (a seeded sample when the files held more).
    pub x: Matrix,
    /// Label of each kept row ([`UNLABELLED`] without a label column).
    pub labels: Vec<String>,
    /// Whether each kept row is an attack (false for unlabelled rows).
    pub attack: Vec<bool>,
    /// Whether the files had the bundle's label column.
    pub labelled: bool,
    /// Rows read (kept, sampled out or rejected).
    pub rows_read: u64,
    /// Rows rejected (malformed) with `skip_bad_rows`.
    pub rejections: Rejections,
}

impl Data {
    /// Rows per label, sorted by label.
    pub fn class_counts(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for l in &self.labels {
            *counts.entry(l.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Appends the rows of `x` (scaled), each labelled `label`.
    pub fn push_rows(&mut self, x: &Matrix, label: &str, attack: bool) {
        for r in x.iter_rows() {
            self.x.push_row(r);
            self.labels.push(label.to_owned());
            self.attack.push(attack);
        }
    }

    /// Indices of the rows that are not attacks (all rows when unlabelled).
    pub fn normal_rows(&self) -> Vec<usize> {
        (0..self.attack.len())
            .filter(|&i| !self.attack[i])
            .collect()
    }
}

/// Reads `input` through `bundle`'s schema and scaler, keeping a seeded
/// uniform sample of at most `max_rows` rows (Algorithm R).
pub fn load_data(bundle: &Bundle, input: &Input, max_rows: usize, seed: u64) -> Result<Data> {
    if max_rows == 0 {
        return Err(Error::Data("rows to keep should be at least 1".into()));
    }
    let mut src = input.open()?;
    let header = src.header().to_vec();
    let first = input.data.first().cloned().unwrap_or_default();
    let mut enc = bundle.schema.bind(&header, &first)?;
    let label_col = batch::label_index(&header, Some(&bundle.label_column));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Matrix::with_cols(enc.width());
    let mut labels = Vec::new();
    let mut buf = vec![0.0; enc.width()];
    let (mut rows_read, mut kept_seen) = (0u64, 0u64);
    let mut rejections = Rejections::default();
    loop {
        let row = match src.next_row() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(bad) => {
                rows_read += 1;
                input.reject(bad, &mut rejections)?;
                continue;
            }
        };
        rows_read += 1;
        if let Err(bad) = enc.encode(&row, &mut buf) {
            input.reject(bad, &mut rejections)?;
            continue;
        }
        let label = label_col.map_or_else(|| UNLABELLED.to_string(), |c| row.text(c).into_owned());
        kept_seen += 1;
        if x.rows() < max_rows {
            x.push_row(&buf);
            labels.push(label);
        } else {
            let j = rng.random_range(0..kept_seen) as usize;
            if j < max_rows {
                x.row_mut(j).copy_from_slice(&buf);
                labels[j] = label;
            }
        }
    }
    if x.rows() == 0 {
        let files: Vec<String> = input.data.iter().map(|p| p.display().to_string()).collect();
        return Err(Error::Data(format!(
            "{}: no data rows to use ({} read, {} rejected)",
            files.join(", "),
            rows_read,
            rejections.total()
        )));
    }
    bundle.scaler.transform(&mut x);
    let attack = labels
        .iter()
        .map(|l| label_col.is_some() && !is_normal(&bundle.normal_labels, l))
        .collect();
    Ok(Data {
        x,
        labels,
        attack,
        labelled: label_col.is_some(),
        rows_read,
        rejections,
    })
}

/// Autoencoder scores of every row of `x` (already scaled).
pub fn autoencoder_scores(bundle: &Bundle, x: &Matrix) -> Vec<f32> {
    let mut s = vec![0.0; x.rows()];
    bundle.autoencoder.score_batch(x, &mut s);
    s
}

/// Latent classifier scores of every row of `x` (see
/// [`Classifier::decide`](crate::model::bundle::Classifier::decide):
/// above [`CLASSIFIER_THRESHOLD`] flags), when the bundle has a classifier.
pub fn classifier_scores(bundle: &Bundle, x: &Matrix) -> Option<Vec<f32>> {
    let c = bundle.classifier.as_ref()?;
    let z = bundle.autoencoder.encode_batch(x);
    let mut p = vec![0.0; c.model.n_classes()];
    Some(
        z.iter_rows()
            .map(|r| {
                c.model.predict_proba(r, &mut p);
                c.decide(&p).0
            })
            .collect(),
    )
}

/// One detector's scores on the test rows and what it cost.
#[derive(Debug, Clone)]
pub struct DetectorRun {
    /// Detector name ([`AUTOENCODER`], [`LATENT_CLASSIFIER`] or one of [`DETECTORS`]).
    pub name: &'static str,
    /// Score of each test row (higher = more anomalous).
    pub scores: Vec<f32>,
    /// Its threshold, calibrated on the held-back normal rows.
    pub threshold: f32,
    /// Seconds to fit.
    pub fit_seconds: f64,
    /// Seconds to score the test rows.
    pub score_seconds: f64,
}

/// What one detector achieved, with the stable keys of `eval.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorMetrics {
    /// Area under the ROC curve (null without both classes).
    pub roc_auc: Option<f64>,
    /// Average precision (null without attacks).
    pub pr_auc: Option<f64>,
    /// F1 of the attack class at the threshold.
    pub f1: f64,
    /// Precision at the threshold.
    pub precision: f64,
    /// Detection rate (recall) at the threshold.
    pub recall: f64,
    /// False-positive rate at the threshold.
    pub fpr: f64,
    /// Best detection rate with at most 0.1 % false positives.
    #[serde(rename = "tpr_at_fpr_0.001")]
    pub tpr_at_fpr_0_001: Option<f64>,
    /// Best detection rate with at most 1 % false positives.
    #[serde(rename = "tpr_at_fpr_0.01")]
    pub tpr_at_fpr_0_01: Option<f64>,
    /// The threshold.
    pub threshold: f32,
    /// Seconds to fit.
    pub fit_seconds: f64,
    /// Test rows scored per second.
    pub score_rows_per_second: f64,
    /// Per attack class: share of its rows above the threshold.
    pub detection_rate: BTreeMap<String, f64>,
    /// Per attack class: ROC-AUC of that class against the normal rows.
    pub roc_auc_by_class: BTreeMap<String, f64>,
    /// With `--seeds N`: the ROC-AUC of each seed's run, the report's own
    /// seed first (see [`EvalReport::seeds`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roc_auc_by_seed: Vec<f64>,
}

impl DetectorMetrics {
    /// Median and spread (max - min) of [`roc_auc_by_seed`](Self::roc_auc_by_seed),
    /// when it holds more than one seed.
    pub fn seed_spread(&self) -> Option<(f64, f64)> {
        let mut v = self.roc_auc_by_seed.clone();
        if v.len() < 2 {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some((median, v[n - 1] - v[0]))
    }
}

/// Measures `run` against the truth of `data`.
pub fn measure(run: &DetectorRun, data: &Data) -> DetectorMetrics {
    let flagged: Vec<bool> = run.scores.iter().map(|&s| s > run.threshold).collect();
    let m = binary_metrics(&run.scores, &flagged, &data.attack);
    let mut hits: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for ((l, &a), &f) in data.labels.iter().zip(&data.attack).zip(&flagged) {
        if a {
            let e = hits.entry(l.clone()).or_default();
            e.0 += u64::from(f);
            e.1 += 1;
        }
    }
    DetectorMetrics {
        roc_auc: m.roc_auc,
        pr_auc: m.pr_auc,
        f1: m.f1,
        precision: m.precision,
        recall: m.recall,
        fpr: m.confusion.fpr(),
        tpr_at_fpr_0_001: tpr_at_fpr(&run.scores, &data.attack, 0.001),
        tpr_at_fpr_0_01: tpr_at_fpr(&run.scores, &data.attack, 0.01),
        threshold: run.threshold,
        fit_seconds: run.fit_seconds,
        score_rows_per_second: run.scores.len() as f64 / run.score_seconds.max(1e-9),
        roc_auc_by_class: hits
            .keys()
            .filter_map(|c| Some((c.clone(), class_auc(run, data, c)?)))
            .collect(),
        detection_rate: hits
            .into_iter()
            .map(|(k, (h, n))| (k, h as f64 / n as f64))
            .collect(),
        roc_auc_by_seed: Vec::new(),
    }
}

/// ROC-AUC of the rows labelled `class` against the normal rows.
fn class_auc(run: &DetectorRun, data: &Data, class: &str) -> Option<f64> {
    let (mut scores, mut truth) = (Vec::new(), Vec::new());
    for ((l, &a), &s) in data.labels.iter().zip(&data.attack).zip(&run.scores) {
        if !a || l == class {
            scores.push(s);
            truth.push(a);
        }
    }
    roc_auc(&scores, &truth)
}

/// Names of `runs` with a `metric`, best first.
fn ranked(runs: &[DetectorRun], metric: impl Fn(&str) -> Option<f64>) -> Vec<String> {
    let mut v: Vec<(&str, f64)> = runs
        .iter()
        .filter_map(|r| metric(r.name).map(|m| (r.name, m)))
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v.into_iter().map(|(n, _)| n.to_string()).collect()
}

/// The contents of `eval.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Training files.
    pub train_files: Vec<String>,
    /// Test files.
    pub test_files: Vec<String>,
    /// Normal rows every detector trained on.
    pub train_rows: usize,
    /// Normal rows held back to calibrate every threshold.
    pub holdout_rows: usize,
    /// Test rows read.
    pub test_rows_read: u64,
    /// Test rows scored (a seeded sample when more were read).
    pub test_rows: usize,
    /// Test rows per class.
    pub test_classes: BTreeMap<String, u64>,
    /// The threshold rule of every detector.
    pub threshold_rule: String,
    /// Detectors in report order.
    pub order: Vec<String>,
    /// Metrics per detector.
    pub detectors: BTreeMap<String, DetectorMetrics>,
    /// The classical detector with the highest ROC-AUC.
    pub best_classical: Option<String>,
    /// Whether the autoencoder's ROC-AUC is at least the best classical one.
    pub autoencoder_at_least_as_good: Option<bool>,
    /// That comparison, and the best F1, in plain sentences.
    pub verdict: String,
    /// Detectors with a ROC-AUC, best first.
    #[serde(default)]
    pub by_roc_auc: Vec<String>,
    /// Detectors by F1 at their own threshold, best first.
    #[serde(default)]
    pub by_f1: Vec<String>,
    /// What the user should know about how the data was used.
    #[serde(default)]
    pub notes: Vec<String>,
    /// With `--seeds N`: every seed run, the report's own first; each
    /// detector's `roc_auc_by_seed` follows this order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<u64>,
}

impl EvalReport {
    /// Builds the report from the runs on `data`.
    pub fn new(
        train_files: Vec<String>,
        test_files: Vec<String>,
        (train_rows, holdout_rows): (usize, usize),
        rule: ThresholdRule,
        runs: &[DetectorRun],
        data: &Data,
    ) -> EvalReport {
        let detectors: BTreeMap<String, DetectorMetrics> = runs
            .iter()
            .map(|r| (r.name.to_string(), measure(r, data)))
            .collect();
        let auc = |n: &str| detectors.get(n).and_then(|m| m.roc_auc);
        let best = DETECTORS
            .iter()
            .filter_map(|&(n, _)| auc(n).map(|a| (n, a)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let (mut verdict, at_least) = match (auc(AUTOENCODER), best) {
            (Some(ae), Some((name, b))) if ae >= b => (
                format!("The autoencoder is at least as good as the best classical detector: ROC-AUC {ae:.4} against {b:.4} ({name})."),
                Some(true),
            ),
            (Some(ae), Some((name, b))) => (
                format!("The autoencoder is NOT as good as the best classical detector: ROC-AUC {ae:.4} against {b:.4} ({name})."),
                Some(false),
            ),
            _ => (
                "No comparison: the test data needs both normal and attack rows for ROC-AUC.".into(),
                None,
            ),
        };
        let by_roc_auc = ranked(runs, |n| auc(n));
        let by_f1 = ranked(runs, |n| detectors.get(n).map(|m| m.f1));
        if let Some(best) = by_f1.first() {
            verdict += &format!(
                " Best F1 at its own threshold: {best} {:.4}",
                detectors[best].f1
            );
            match detectors.get(AUTOENCODER) {
                Some(ae) if best != AUTOENCODER => {
                    verdict += &format!(" (autoencoder {:.4}).", ae.f1)
                }
                _ => verdict += ".",
            }
        }
        EvalReport {
            train_files,
            test_files,
            train_rows,
            holdout_rows,
            test_rows_read: data.rows_read,
            test_rows: data.x.rows(),
            test_classes: data.class_counts(),
            threshold_rule: rule.to_string(),
            order: runs.iter().map(|r| r.name.to_string()).collect(),
            detectors,
            best_classical: best.map(|(n, _)| n.to_string()),
            autoencoder_at_least_as_good: at_least,
            verdict,
            by_roc_auc,
            by_f1,
            notes: Vec::new(),
            seeds: Vec::new(),
        }
    }

    /// Reruns the whole evaluation (sampling, training, every detector)
    /// with each of `more` seeds and records every detector's ROC-AUC per
    /// seed, so that the spread a seed makes is there to see.
    pub fn add_seeds(
        &mut self,
        opts: &EvalOptions,
        more: &[u64],
        on_step: &mut dyn FnMut(&str),
    ) -> Result<()> {
        self.seeds = vec![opts.train.seed];
        for m in self.detectors.values_mut() {
            m.roc_auc_by_seed = m.roc_auc.into_iter().collect();
        }
        for &seed in more {
            on_step(&format!("seed {seed}"));
            let mut o = opts.clone();
            o.train.seed = seed;
            let e = evaluate(&o, &mut |_| {})?;
            for (name, m) in &mut self.detectors {
                if let Some(a) = e.report.detectors.get(name).and_then(|d| d.roc_auc) {
                    m.roc_auc_by_seed.push(a);
                }
            }
            self.seeds.push(seed);
        }
        Ok(())
    }

    /// The short terminal summary: the verdict, then each detector's
    /// ROC-AUC, F1 and false-positive rate, best ROC-AUC first.
    pub fn summary(&self) -> String {
        let mut out = format!("{}\n", self.verdict);
        let seeds = self.seeds.len() > 1;
        out += &format!(
            "{:<20} {:>8} {:>8} {:>8}",
            "detector", "ROC-AUC", "F1", "FPR"
        );
        if seeds {
            out += &format!("   ROC-AUC over {} seeds: median, spread", self.seeds.len());
        }
        out.push('\n');
        let rest = self.order.iter().filter(|n| !self.by_roc_auc.contains(n));
        for name in self.by_roc_auc.iter().chain(rest) {
            let m = &self.detectors[name];
            let auc = m.roc_auc.map_or("-".into(), |a| format!("{a:.4}"));
            out += &format!("{name:<20} {auc:>8} {:>8.4} {:>8.4}", m.f1, m.fpr);
            if let Some((median, spread)) = m.seed_spread().filter(|_| seeds) {
                out += &format!("   {median:.4}, {spread:.4}");
            }
            out.push('\n');
        }
        out
    }

    /// Attack classes of the test data (those with a detection rate).
    fn attack_classes(&self) -> Vec<String> {
        let mut classes: Vec<String> = self
            .detectors
            .values()
            .flat_map(|m| m.detection_rate.keys().cloned())
            .collect();
        classes.sort();
        classes.dedup();
        classes
    }

    /// Header and rows of the metrics table (shared by Markdown and HTML);
    /// `timing` adds the fit seconds and scoring speed.
    pub fn table(&self, timing: bool) -> (Vec<String>, Vec<Vec<String>>) {
        let classes = self.attack_classes();
        let mut header: Vec<String> = [
            "detector",
            "ROC-AUC",
            "PR-AUC",
            "F1",
            "TPR@FPR 0.001",
            "TPR@FPR 0.01",
            "FPR",
        ]
        .map(String::from)
        .to_vec();
        let seeds = self.seeds.len() > 1;
        if seeds {
            header.push(format!(
                "ROC-AUC over {} seeds (median, spread)",
                self.seeds.len()
            ));
        }
        if timing {
            header.extend(["fit s".to_string(), "rows/s".to_string()]);
        }
        header.extend(classes.iter().map(|c| format!("DR {c}")));
        let opt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.4}"));
        let rows = self
            .order
            .iter()
            .filter_map(|name| {
                let m = self.detectors.get(name)?;
                let mut row = vec![
                    name.clone(),
                    opt(m.roc_auc),
                    opt(m.pr_auc),
                    format!("{:.4}", m.f1),
                    opt(m.tpr_at_fpr_0_001),
                    opt(m.tpr_at_fpr_0_01),
                    format!("{:.4}", m.fpr),
                ];
                if seeds {
                    let spread = m.seed_spread();
                    row.push(spread.map_or("-".into(), |(md, sp)| format!("{md:.4}, {sp:.4}")));
                }
                if timing {
                    row.push(format!("{:.2}", m.fit_seconds));
                    row.push(format!("{:.0}", m.score_rows_per_second));
                }
                row.extend(
                    classes
                        .iter()
                        .map(|c| opt(m.detection_rate.get(c).copied())),
                );
                Some(row)
            })
            .collect();
        (header, rows)
    }

    /// `eval.md`: the verdict, the setting and the metrics table.
    pub fn to_markdown(&self) -> String {
        let (header, rows) = self.table(true);
        let mut md = String::from("# floodwatch eval\n\n");
        md += &format!("**{}**\n\n", self.verdict);
        for note in &self.notes {
            md += &format!("Note: {note}\n\n");
        }
        md += &format!(
            "Trained on {} normal rows of {}; thresholds ({}) calibrated on {} held-back normal rows; tested on {} rows of {} ({} read).\n\n",
            self.train_rows,
            self.train_files.join(", "),
            self.threshold_rule,
            self.holdout_rows,
            self.test_rows,
            self.test_files.join(", "),
            self.test_rows_read
        );
        md += &format!("| {} |\n", header.join(" | "));
        md += &format!("|{}\n", "---|".repeat(header.len()));
        for r in rows {
            md += &format!("| {} |\n", r.join(" | "));
        }
        md += "\nDR = detection rate of that attack class at the detector's threshold.\n";
        md
    }
}

/// What [`evaluate`] does.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// How to train (the same options as `train`).
    pub train: TrainOptions,
    /// The test files (read with the trained schema).
    pub test: Input,
    /// Test rows kept at most (seeded sample beyond). Default 200,000.
    pub max_test_rows: usize,
}

/// Everything [`evaluate`] produced, for the report and the pictures.
#[derive(Debug)]
pub struct Evaluation {
    /// The trained bundle.
    pub bundle: Bundle,
    /// The scaled test rows and their labels.
    pub data: Data,
    /// Every detector's run, in report order.
    pub runs: Vec<DetectorRun>,
    /// The metrics.
    pub report: EvalReport,
}

/// Trains every detector on the same rows and scores the same test rows.
pub fn evaluate(opts: &EvalOptions, on_step: &mut dyn FnMut(&str)) -> Result<Evaluation> {
    on_step("training the autoencoder");
    let mut trained = batch::train(&opts.train, &mut |_| {})?;
    on_step("reading the test rows");
    let mut data = load_data(
        &trained.bundle,
        &opts.test,
        opts.max_test_rows,
        opts.train.seed,
    )?;
    let mut notes = Vec::new();
    if data.labelled && data.attack.iter().all(|&a| a) {
        on_step("no normal test rows: retraining with normal rows set aside to test on");
        let train = TrainOptions {
            test_share: SET_ASIDE,
            ..opts.train.clone()
        };
        trained = batch::train(&train, &mut |_| {})?;
        data = load_data(
            &trained.bundle,
            &opts.test,
            opts.max_test_rows,
            opts.train.seed,
        )?;
        let label = opts
            .train
            .normal_labels
            .first()
            .map_or("normal", String::as_str);
        data.push_rows(&trained.test_x, label, false);
        notes.push(format!(
            "the test files hold no normal rows, so {} of the training's normal rows ({:.0} %) \
             were set aside to test on: no detector trained or calibrated on them",
            trained.test_x.rows(),
            SET_ASIDE * 100.0
        ));
    }
    let bundle = trained.bundle;
    let rule = bundle.threshold_rule;
    let (train_x, hold_x) = (&trained.train_x, &trained.holdout_x);
    let mut runs = Vec::new();
    on_step(AUTOENCODER);
    let t = Instant::now();
    let scores = autoencoder_scores(&bundle, &data.x);
    runs.push(DetectorRun {
        name: AUTOENCODER,
        scores,
        threshold: bundle.threshold,
        fit_seconds: trained.autoencoder_seconds,
        score_seconds: t.elapsed().as_secs_f64(),
    });
    if bundle.classifier.is_some() {
        on_step(LATENT_CLASSIFIER);
        let t = Instant::now();
        let scores = classifier_scores(&bundle, &data.x).unwrap_or_default();
        let score_seconds = t.elapsed().as_secs_f64();
        runs.push(DetectorRun {
            name: LATENT_CLASSIFIER,
            scores,
            threshold: CLASSIFIER_THRESHOLD,
            fit_seconds: trained.classifier_seconds,
            score_seconds,
        });
    }
    for detector in DETECTORS {
        on_step(detector.0);
        runs.push(classical(
            detector,
            train_x,
            hold_x,
            &data.x,
            rule,
            opts.train.seed,
        )?);
    }
    let files = |i: &Input| i.data.iter().map(|p| p.display().to_string()).collect();
    let mut report = EvalReport::new(
        files(&opts.train.input),
        files(&opts.test),
        (train_x.rows(), hold_x.rows()),
        rule,
        &runs,
        &data,
    );
    report.notes = trained.notes;
    report.notes.extend(notes);
    Ok(Evaluation {
        bundle,
        data,
        runs,
        report,
    })
}

/// The bundle's own detectors on `data`: the autoencoder at the bundle's
/// threshold and, with a classifier, the latent classifier by its one rule. Fit times are not stored in bundles: 0.
pub fn bundle_runs(bundle: &Bundle, data: &Data) -> Vec<DetectorRun> {
    let t = Instant::now();
    let scores = autoencoder_scores(bundle, &data.x);
    let mut runs = vec![DetectorRun {
        name: AUTOENCODER,
        scores,
        threshold: bundle.threshold,
        fit_seconds: 0.0,
        score_seconds: t.elapsed().as_secs_f64(),
    }];
    let t = Instant::now();
    if let Some(scores) = classifier_scores(bundle, &data.x) {
        runs.push(DetectorRun {
            name: LATENT_CLASSIFIER,
            scores,
            threshold: CLASSIFIER_THRESHOLD,
            fit_seconds: 0.0,
            score_seconds: t.elapsed().as_secs_f64(),
        });
    }
    runs
}

/// What a threshold rule does on validation data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleOutcome {
    /// The rule (`current` for the bundle's own threshold).
    pub rule: String,
    /// The threshold it gives.
    pub threshold: f32,
    /// Share of normal rows above it.
    pub fpr: f64,
    /// Share of attack rows above it (null without attack rows).
    pub detection_rate: Option<f64>,
}

/// Rules tried by [`rule_outcomes`]: a few values of each kind.
pub const RULES: [ThresholdRule; 10] = [
    ThresholdRule::Quantile(0.95),
    ThresholdRule::Quantile(0.99),
    ThresholdRule::Quantile(0.999),
    ThresholdRule::MeanStd(2.0),
    ThresholdRule::MeanStd(3.0),
    ThresholdRule::MeanStd(4.0),
    ThresholdRule::LogNormal(0.01),
    ThresholdRule::LogNormal(0.001),
    ThresholdRule::TargetFpr(0.01),
    ThresholdRule::TargetFpr(0.001),
];

/// The bundle's threshold, then each of [`RULES`] calibrated on the normal
/// rows of `scores` (all rows when unlabelled), with the false-positive and
/// detection rate each gives on these rows.
pub fn rule_outcomes(current: f32, scores: &[f32], attack: &[bool]) -> Result<Vec<RuleOutcome>> {
    let normal: Vec<f32> = scores
        .iter()
        .zip(attack)
        .filter(|(_, &a)| !a)
        .map(|(&s, _)| s)
        .collect();
    let attacks: Vec<f32> = scores
        .iter()
        .zip(attack)
        .filter(|(_, &a)| a)
        .map(|(&s, _)| s)
        .collect();
    let rate = |v: &[f32], t: f32| v.iter().filter(|&&s| s > t).count() as f64 / v.len() as f64;
    let outcome = |rule: String, t: f32| RuleOutcome {
        rule,
        threshold: t,
        fpr: if normal.is_empty() {
            0.0
        } else {
            rate(&normal, t)
        },
        detection_rate: (!attacks.is_empty()).then(|| rate(&attacks, t)),
    };
    let mut out = vec![outcome("current".into(), current)];
    for rule in RULES {
        out.push(outcome(rule.to_string(), rule.calibrate(&normal)?));
    }
    Ok(out)
}

/// Fits detector `name` with `fit` on `train`, calibrates its threshold on
/// `hold` with `rule` and scores `test`.
fn classical(
    (name, fit): (&'static str, Fit),
    train: &Matrix,
    hold: &Matrix,
    test: &Matrix,
    rule: ThresholdRule,
    seed: u64,
) -> Result<DetectorRun> {
    let t = Instant::now();
    let model = fit(train, seed)?;
    let fit_seconds = t.elapsed().as_secs_f64();
    let threshold = rule.calibrate(&model.scores(hold)?)?;
    let t = Instant::now();
    let scores = model.scores(test)?;
    Ok(DetectorRun {
        name,
        scores,
        threshold,
        fit_seconds,
        score_seconds: t.elapsed().as_secs_f64(),
    })
}

/// Files as strings, for reports.
pub fn file_names(files: &[PathBuf]) -> Vec<String> {
    files.iter().map(|p| p.display().to_string()).collect()
}

#[cfg(feature = "plot")]
pub use pictures::*;

/// Picture builders over evaluation data.
#[cfg(feature = "plot")]
mod pictures {
    use super::*;
    use crate::report::metrics::{pr_auc, pr_curve, roc_curve};
    use crate::report::plot::{
        is_normal_class, ClassBars, Heatmap, LineChart, Scatter, ScatterPair, ScoreHistogram,
    };
    use crate::report::tsne::Tsne;

    /// Most points of a curve drawn (ROC and PR curves of large test sets).
    pub const MAX_CURVE_POINTS: usize = 2000;
    /// Most features in the correlation heatmap.
    pub const MAX_CORR_FEATURES: usize = 40;
    /// Most classes told apart by colour in the t-SNE and the histograms;
    /// smaller attack classes beyond it are drawn together.
    pub const MAX_DRAWN_CLASSES: usize = 8;
    /// The class the smaller attack classes are drawn as.
    pub const OTHER_ATTACKS: &str = "other attacks";

    /// `labels` with the attack classes beyond the largest ones renamed
    /// [`OTHER_ATTACKS`] when there are more than `max` classes, so that at
    /// most `max` classes remain (normal classes first, always kept, with
    /// [`OTHER_ATTACKS`] counted as one).
    pub fn group_small_classes(labels: &[String], max: usize) -> Vec<String> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for l in labels {
            *counts.entry(l.as_str()).or_default() += 1;
        }
        if counts.len() <= max {
            return labels.to_vec();
        }
        let mut by_size: Vec<(&str, usize)> = counts.into_iter().collect();
        by_size.sort_by(|a, b| {
            (!is_normal_class(a.0), std::cmp::Reverse(a.1), a.0).cmp(&(
                !is_normal_class(b.0),
                std::cmp::Reverse(b.1),
                b.0,
            ))
        });
        let kept: Vec<&str> = by_size
            .iter()
            .enumerate()
            .filter(|&(i, (n, _))| i + 1 < max || is_normal_class(n))
            .map(|(_, (n, _))| *n)
            .collect();
        labels
            .iter()
            .map(|l| {
                if kept.contains(&l.as_str()) {
                    l.clone()
                } else {
                    OTHER_ATTACKS.to_string()
                }
            })
            .collect()
    }

    /// Class names of `labels`, normal classes first, then sorted, and the
    /// class index of each label.
    pub fn classes_of(labels: &[String]) -> (Vec<String>, Vec<usize>) {
        let mut names: Vec<String> = labels.to_vec();
        names.sort_by(|a, b| (!is_normal_class(a), a).cmp(&(!is_normal_class(b), b)));
        names.dedup();
        let index: BTreeMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let class = labels
            .iter()
            .map(|l| index.get(l.as_str()).copied().unwrap_or(0))
            .collect();
        (names, class)
    }

    /// At most `max` points of `curve`, evenly spaced by index, keeping the
    /// first and the last.
    pub fn thin(curve: &[(f64, f64)], max: usize) -> Vec<(f32, f32)> {
        let n = curve.len();
        let step = n.div_ceil(max.max(2) - 1).max(1);
        let mut out: Vec<(f32, f32)> = curve
            .iter()
            .step_by(step)
            .map(|&(a, b)| (a as f32, b as f32))
            .collect();
        if let Some(&(a, b)) = curve.last() {
            if n > 1 && !(n - 1).is_multiple_of(step) {
                out.push((a as f32, b as f32));
            }
        }
        out
    }

    /// t-SNE of the scaled input (left) and of the autoencoder's latent
    /// codes (right) of the same seeded sample of at most `max_points` rows;
    /// the two embeddings run on two threads.
    pub fn tsne_pair(
        bundle: &Bundle,
        data: &Data,
        max_points: usize,
        seed: u64,
    ) -> Result<ScatterPair> {
        let rows = sample_rows(data.x.rows(), max_points, seed);
        let x = data.x.select_rows(&rows);
        let z = bundle.autoencoder.encode_batch(&x);
        let tsne = Tsne::params().max_points(x.rows().max(4)).seed(seed);
        let (ex, ez) = std::thread::scope(|s| {
            let left = s.spawn(|| tsne.embed(&x));
            let right = tsne.embed(&z);
            let left = left
                .join()
                .unwrap_or_else(|_| Err(Error::Data("the t-SNE thread panicked".into())));
            (left, right)
        });
        let (ex, ez) = (ex?, ez?);
        let labels: Vec<String> = rows.iter().map(|&r| data.labels[r].clone()).collect();
        let (classes, class) = classes_of(&group_small_classes(&labels, MAX_DRAWN_CLASSES));
        let pick = |rows: &[usize]| rows.iter().map(|&r| class[r]).collect::<Vec<_>>();
        Ok(ScatterPair {
            title: format!("t-SNE of {} rows, coloured by class", rows.len()),
            classes,
            left: Scatter {
                title: "scaled input".into(),
                points: ex.points,
                class: pick(&ex.rows),
            },
            right: Scatter {
                title: "autoencoder latent".into(),
                points: ez.points,
                class: pick(&ez.rows),
            },
        })
    }

    /// Ascending indices of a seeded sample of at most `max` of `n` rows.
    pub fn sample_rows(n: usize, max: usize, seed: u64) -> Vec<usize> {
        if n <= max {
            return (0..n).collect();
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut rows = rand::seq::index::sample(&mut rng, n, max).into_vec();
        rows.sort_unstable();
        rows
    }

    /// Histograms of `scores` (named `x_label`) per class with `threshold`,
    /// on a log scale when every score is positive.
    pub fn score_histogram(
        title: &str,
        x_label: &str,
        scores: &[f32],
        labels: &[String],
        threshold: Option<f32>,
    ) -> ScoreHistogram {
        let (names, class) = classes_of(&group_small_classes(labels, MAX_DRAWN_CLASSES));
        let mut per: Vec<(String, Vec<f32>)> = names.into_iter().map(|n| (n, Vec::new())).collect();
        for (&s, &c) in scores.iter().zip(&class) {
            if let Some(p) = per.get_mut(c) {
                p.1.push(s);
            }
        }
        let log10 = scores.iter().chain(&threshold).all(|&v| v > 0.0);
        ScoreHistogram {
            title: title.into(),
            x_label: x_label.into(),
            classes: per,
            threshold,
            bins: 60,
            log10,
        }
    }

    /// ROC curves of every run, thinned; the false-positive rate on a log
    /// scale with `log_fpr`.
    pub fn roc_chart(runs: &[DetectorRun], attack: &[bool], log_fpr: bool) -> LineChart {
        let chart = LineChart::roc(curves(runs, attack, roc_curve, (roc_auc, "ROC-AUC")));
        if log_fpr {
            chart.log_fpr()
        } else {
            chart
        }
    }

    /// Precision-recall curves of every run, thinned.
    pub fn pr_chart(runs: &[DetectorRun], attack: &[bool]) -> LineChart {
        LineChart::pr(curves(runs, attack, pr_curve, (pr_auc, "PR-AUC")))
    }

    /// A curve of scores against the truth (ROC or PR).
    type CurveFn = fn(&[f32], &[bool]) -> Vec<(f64, f64)>;
    /// The area under that curve, and its name for the legend.
    type AreaFn = (fn(&[f32], &[bool]) -> Option<f64>, &'static str);

    fn curves(
        runs: &[DetectorRun],
        attack: &[bool],
        curve: CurveFn,
        (area, name): AreaFn,
    ) -> Vec<(String, Vec<(f32, f32)>)> {
        runs.iter()
            .map(|r| {
                let auc =
                    area(&r.scores, attack).map_or(String::new(), |a| format!(" ({name} {a:.3})"));
                (
                    format!("{}{auc}", r.name),
                    thin(&curve(&r.scores, attack), MAX_CURVE_POINTS),
                )
            })
            .collect()
    }

    /// Training (and validation) loss per epoch of the bundle.
    pub fn loss_chart(bundle: &Bundle) -> LineChart {
        let h = &bundle.meta.history;
        let val = (!h.val_loss.is_empty()).then_some(h.val_loss.as_slice());
        LineChart::loss(&h.loss, val)
    }

    /// Rows per class of `data`.
    pub fn class_bars(title: &str, data: &Data) -> ClassBars {
        ClassBars {
            title: title.into(),
            counts: data.class_counts().into_iter().collect(),
        }
    }

    /// Correlations of the `max` encoded features with the largest variance
    /// in `data` (features with no variance have no correlation).
    pub fn correlation(bundle: &Bundle, data: &Data, max: usize) -> Result<Heatmap> {
        let x = &data.x;
        let d = x.cols();
        let n = x.rows().max(1) as f64;
        let mut mean = vec![0.0f64; d];
        let mut sq = vec![0.0f64; d];
        for r in x.iter_rows() {
            for (j, &v) in r.iter().enumerate() {
                mean[j] += v as f64;
                sq[j] += v as f64 * v as f64;
            }
        }
        let var: Vec<f64> = (0..d).map(|j| sq[j] / n - (mean[j] / n).powi(2)).collect();
        let mut cols: Vec<usize> = (0..d).filter(|&j| var[j] > 1e-12).collect();
        cols.sort_by(|&a, &b| var[b].total_cmp(&var[a]).then(a.cmp(&b)));
        cols.truncate(max);
        cols.sort_unstable();
        if cols.len() < 2 {
            return Err(Error::Plot(
                "correlation heatmap: fewer than 2 features vary in the data".into(),
            ));
        }
        let names = bundle.schema.feature_names();
        let picked: Vec<String> = cols
            .iter()
            .map(|&j| names.get(j).cloned().unwrap_or_default())
            .collect();
        let mut sub = Matrix::with_cols(cols.len());
        let mut buf = vec![0.0; cols.len()];
        for r in x.iter_rows() {
            buf.iter_mut().zip(&cols).for_each(|(b, &j)| *b = r[j]);
            sub.push_row(&buf);
        }
        Heatmap::correlation(
            &format!("Feature correlation (top {} by variance)", cols.len()),
            &picked,
            &sub,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Normal rows near (1, 2), attacks near (50, 90) of two kinds.
    fn table(rows: usize, offset: usize) -> String {
        let mut t = String::from("x,y,kind,Label\n");
        for i in offset..offset + rows {
            let j = (i % 10) as f32 / 10.0;
            match i % 6 {
                4 => t += &format!("{},{},b,flood\n", 50.0 + j, 90.0 - j),
                5 => t += &format!("{},{},b,scan\n", 30.0 + j, 1.0 + j),
                _ => t += &format!("{},{},a,normal\n", 1.0 + j, 2.0 + j),
            }
        }
        t
    }

    fn options(dir: &Path) -> EvalOptions {
        EvalOptions {
            train: TrainOptions {
                input: Input {
                    data: vec![write(dir, "train.csv", &table(600, 0))],
                    ..Input::default()
                },
                epochs: Some(20),
                batch_size: 32,
                learning_rate: 0.01,
                ..TrainOptions::default()
            },
            test: Input {
                data: vec![write(dir, "test.csv", &table(300, 1))],
                ..Input::default()
            },
            max_test_rows: 1000,
        }
    }

    #[test]
    fn every_detector_is_measured_on_the_same_rows() {
        let d = tempfile::tempdir().unwrap();
        let mut steps = Vec::new();
        let e = evaluate(&options(d.path()), &mut |s| steps.push(s.to_string())).unwrap();
        assert_eq!(e.runs.len(), 6);
        assert_eq!(e.report.order[..2], [AUTOENCODER, LATENT_CLASSIFIER]);
        assert!(steps.contains(&"lof".to_string()));
        for r in &e.runs {
            assert_eq!(r.scores.len(), 300, "{}", r.name);
            let m = &e.report.detectors[r.name];
            assert!(m.roc_auc.unwrap() > 0.9, "{} {m:?}", r.name);
            assert_eq!(
                m.detection_rate.keys().collect::<Vec<_>>(),
                ["flood", "scan"]
            );
            assert_eq!(
                m.roc_auc_by_class.keys().collect::<Vec<_>>(),
                ["flood", "scan"]
            );
        }
        assert_eq!(e.report.test_classes["normal"], 200);
        assert!(e.report.autoencoder_at_least_as_good.is_some());
        let md = e.report.to_markdown();
        assert!(
            md.contains("| autoencoder |") && md.contains("DR flood"),
            "{md}"
        );
        assert!(md.contains(&e.report.verdict));
        let json = serde_json::to_value(&e.report).unwrap();
        assert!(json["detectors"]["ocsvm"]["tpr_at_fpr_0.001"].is_number());
    }

    #[test]
    fn load_data_samples_and_counts() {
        let d = tempfile::tempdir().unwrap();
        let o = options(d.path());
        let bundle = batch::train(&o.train, &mut |_| {}).unwrap().bundle;
        let data = load_data(&bundle, &o.test, 50, 7).unwrap();
        assert_eq!((data.x.rows(), data.rows_read), (50, 300));
        assert!(data.labelled);
        let again = load_data(&bundle, &o.test, 50, 7).unwrap();
        assert_eq!(data.labels, again.labels);
        // Unlabelled data: no attacks, one pseudo-class.
        let p = write(d.path(), "u.csv", "x,y,kind\n1,2,a\n3,4,zzz\n");
        let input = Input {
            data: vec![p],
            ..Input::default()
        };
        let u = load_data(&bundle, &input, 10, 1).unwrap();
        assert!(!u.labelled && u.attack.iter().all(|a| !a));
        assert_eq!(u.labels, [UNLABELLED, UNLABELLED]);
        // Malformed rows: an error naming the file, or counted when skipped.
        let bad = write(d.path(), "bad.csv", "x,y,kind,Label\n1,oops,a,normal\n");
        let mut input = Input {
            data: vec![bad],
            ..Input::default()
        };
        let err = load_data(&bundle, &input, 10, 1).unwrap_err().to_string();
        assert!(err.contains("bad.csv"), "{err}");
        input.skip_bad_rows = true;
        let err = load_data(&bundle, &input, 10, 1).unwrap_err().to_string();
        assert!(err.contains("1 rejected"), "{err}");
        assert!(load_data(&bundle, &input, 0, 1).is_err());
    }

    #[test]
    fn rules_are_measured_on_normal_and_attack_rows() {
        let scores: Vec<f32> = (0..100).map(|i| i as f32).chain([500.0, 50.0]).collect();
        let mut attack = vec![false; 100];
        attack.extend([true, true]);
        let out = rule_outcomes(98.5, &scores, &attack).unwrap();
        assert_eq!(out.len(), 1 + RULES.len());
        assert_eq!(out[0].rule, "current");
        assert!((out[0].fpr - 0.01).abs() < 1e-12);
        assert_eq!(out[0].detection_rate, Some(0.5));
        let q95 = &out[1];
        assert_eq!(q95.rule, "quantile:0.95");
        assert!((q95.threshold - 94.05).abs() < 1e-3, "{q95:?}");
        assert!((q95.fpr - 0.05).abs() < 1e-12);
        // Unlabelled: every row counts as normal, no detection rate.
        let out = rule_outcomes(1.0, &scores[..100], &attack[..100]).unwrap();
        assert!(out.iter().all(|o| o.detection_rate.is_none()));
        assert!(rule_outcomes(1.0, &[], &[]).is_err());
    }

    #[cfg(feature = "plot")]
    #[test]
    fn curves_are_thinned_and_classes_ordered() {
        let curve: Vec<(f64, f64)> = (0..10_001).map(|i| (i as f64, 0.0)).collect();
        let t = thin(&curve, 2000);
        assert!(t.len() <= 2001, "{}", t.len());
        assert_eq!(t.first(), Some(&(0.0, 0.0)));
        assert_eq!(t.last(), Some(&(10_000.0, 0.0)));
        assert_eq!(thin(&[], 10), vec![]);
        let labels: Vec<String> = ["b", "BENIGN", "a"].map(String::from).to_vec();
        let (names, class) = classes_of(&labels);
        assert_eq!(names, ["BENIGN", "a", "b"]);
        assert_eq!(class, [2, 0, 1]);
        assert_eq!(sample_rows(5, 10, 1), [0, 1, 2, 3, 4]);
        let many: Vec<String> = ["normal", "a", "a", "b", "b", "b", "c", "d"]
            .map(String::from)
            .to_vec();
        assert_eq!(group_small_classes(&many, 5), many);
        let grouped = group_small_classes(&many, 3);
        assert_eq!(
            grouped,
            [
                "normal",
                OTHER_ATTACKS,
                OTHER_ATTACKS,
                "b",
                "b",
                "b",
                OTHER_ATTACKS,
                OTHER_ATTACKS
            ]
        );
        let s = sample_rows(100, 10, 1);
        assert_eq!(s.len(), 10);
        assert_eq!(s, sample_rows(100, 10, 1));
    }
}
