//! The table model: everything `floodwatch test` needs to score rows as
//! `train` did, saved as a [`Kind::Table`] model file (see [`super::file`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::features::capture_table::CaptureFeatures;

use crate::features::scale::Scaler;
use crate::features::tabular::Schema;
use crate::model::autoencoder::{Autoencoder, TrainHistory};
use crate::model::file::{self, Kind, ModelFile};
use crate::model::kernel::ROW_ALIGN;
use crate::model::logistic::LogisticRegression;
use crate::model::threshold::ThresholdRule;
use crate::simd::{multiversion, Level};
use crate::Result;

/// The latent classifier and the names of its classes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Classifier {
    /// Softmax regression on the autoencoder's latent representation.
    pub model: LogisticRegression,
    /// Class names, by index: the normal class, then each attack label.
    pub class_names: Vec<String>,
    /// Index of the normal class.
    pub normal_class: usize,
}

/// How the model was trained.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TrainMeta {
    /// floodwatch version that wrote the bundle.
    pub floodwatch_version: String,
    /// Unix seconds at creation.
    pub created_unix: u64,
    /// The training files.
    pub data: Vec<String>,
    /// Data rows read (accepted and rejected).
    pub rows_read: u64,
    /// Rows rejected with `--skip-bad-rows`.
    pub rows_rejected: u64,
    /// Normal rows seen.
    pub normal_rows: u64,
    /// Attack rows seen.
    pub attack_rows: u64,
    /// Normal rows the autoencoder trained on.
    pub train_rows: usize,
    /// Held-back normal rows the threshold was calibrated on.
    pub holdout_rows: usize,
    /// Attack rows the classifier trained on.
    pub classifier_attack_rows: usize,
    /// Epochs of each network.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f32,
    /// Random seed.
    pub seed: u64,
    /// Loss per epoch.
    pub history: TrainHistory,
    /// Columns dropped with `--drop`.
    pub dropped: Vec<String>,
}

/// Everything `test` needs to score new rows as training did.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Bundle {
    /// The feature columns and their encoders.
    pub schema: Schema,
    /// The label column used at train time.
    pub label_column: String,
    /// Labels of normal rows.
    pub normal_labels: Vec<String>,
    /// The scaler fitted on training normal rows.
    pub scaler: Scaler,
    /// The autoencoder.
    pub autoencoder: Autoencoder,
    /// The rule the threshold was calibrated with.
    pub threshold_rule: ThresholdRule,
    /// Scores above it are anomalies.
    pub threshold: f32,
    /// The latent classifier, when the training data had attack rows.
    pub classifier: Option<Classifier>,
    /// Training metadata.
    pub meta: TrainMeta,
    /// How packets became feature rows, for a model trained on captures.
    #[serde(default)]
    pub capture: Option<CaptureFeatures>,
}

impl Classifier {
    /// The latent classifier's one decision rule, used by every command: a
    /// row is an attack when an attack class is more probable than the
    /// normal class. Returns that margin (its score: > 0 flags the row) and
    /// the most probable class.
    pub fn decide(&self, prob: &[f32]) -> (f32, usize) {
        let normal = prob.get(self.normal_class).copied().unwrap_or(0.0);
        // The first most probable attack class, in one pass: when it beats
        // the normal class it is also the first most probable class.
        let (mut attack, mut best) = (0.0f32, self.normal_class);
        for (k, &p) in prob.iter().enumerate() {
            if k != self.normal_class && p > attack {
                (attack, best) = (p, k);
            }
        }
        let margin = attack - normal;
        (
            margin,
            if margin > 0.0 {
                best
            } else {
                self.normal_class
            },
        )
    }

    /// [`Classifier::decide`] for each of `rows` rows of transposed
    /// probabilities (class `c` of row `r` at `pt[c * stride + r]`, as
    /// [`LogisticRegression::predict_proba_t`] leaves them, `stride` a
    /// multiple of 16): appends `(class, its probability, margin)` per row
    /// to `out`, the same values row by row, sixteen rows at a time.
    ///
    /// # Panics
    /// If `stride` is not a multiple of 16 at least `rows`, `pt` holds
    /// fewer than `n_classes` rows of `stride`, or the normal class is not
    /// one of them (a loaded bundle's always is).
    pub fn decide_t(
        &self,
        pt: &[f32],
        stride: usize,
        rows: usize,
        out: &mut Vec<(usize, f32, f32)>,
    ) {
        let k = self.model.n_classes();
        assert!(stride.is_multiple_of(ROW_ALIGN) && stride >= rows && pt.len() >= k * stride);
        assert!(
            self.normal_class < k,
            "normal class {} of {k}",
            self.normal_class
        );
        let p = Probabilities {
            pt,
            classes: k,
            normal: self.normal_class,
            stride,
            rows,
        };
        decide_lanes(Level::detect(), &p, out);
    }
}

/// What [`Classifier::decide_t`] reads: `classes` rows of `stride` lanes,
/// the first `rows` lanes in use, and the normal class.
struct Probabilities<'a> {
    pt: &'a [f32],
    classes: usize,
    normal: usize,
    stride: usize,
    rows: usize,
}

#[inline(always)]
fn decide_lanes_body(p: &Probabilities, out: &mut Vec<(usize, f32, f32)>) {
    let Probabilities {
        pt,
        classes: k,
        normal,
        stride,
        rows,
    } = *p;
    let lanes = |c: usize, g: usize| -> &[f32; ROW_ALIGN] {
        pt[c * stride + g..][..ROW_ALIGN]
            .try_into()
            .expect("ROW_ALIGN lanes")
    };
    for g in (0..rows).step_by(ROW_ALIGN) {
        let normal_p = *lanes(normal, g);
        let (mut attack, mut best) = ([0.0f32; ROW_ALIGN], [normal; ROW_ALIGN]);
        for c in (0..k).filter(|&c| c != normal) {
            for ((a, b), &p) in attack.iter_mut().zip(&mut best).zip(lanes(c, g)) {
                let more = p > *a;
                *a = if more { p } else { *a };
                *b = if more { c } else { *b };
            }
        }
        for r in 0..ROW_ALIGN.min(rows - g) {
            let margin = attack[r] - normal_p[r];
            let class = if margin > 0.0 { best[r] } else { normal };
            out.push((class, pt[class * stride + g + r], margin));
        }
    }
}

multiversion! {
    fn decide_lanes(p: &Probabilities, out: &mut Vec<(usize, f32, f32)>) = decide_lanes_body;
}

/// Scores above this flag a row in [`Classifier::decide`].
pub const CLASSIFIER_THRESHOLD: f32 = 0.0;

/// Whether `label` is one of the `normal` labels, ignoring ASCII case (so
/// `Benign` and `BENIGN` are the same class everywhere).
pub fn is_normal(normal: &[String], label: &str) -> bool {
    normal.iter().any(|n| n.eq_ignore_ascii_case(label))
}

impl Bundle {
    /// Writes the bundle to `path` crash-safely.
    pub fn save(&self, path: &Path) -> Result<()> {
        file::save(path, Kind::Table, self)
    }

    /// Recalibrates the threshold with `rule` on the autoencoder scores of
    /// normal rows and keeps both; returns the new threshold.
    pub fn set_threshold(&mut self, rule: ThresholdRule, normal_scores: &[f32]) -> Result<f32> {
        let t = rule.calibrate(normal_scores)?;
        self.threshold_rule = rule;
        self.threshold = t;
        Ok(t)
    }

    /// Reads a bundle written by [`Bundle::save`].
    pub fn load(path: &Path) -> Result<Bundle> {
        Self::from_file(&ModelFile::open(path)?)
    }

    /// Reads a bundle from the bytes of a whole file; `name` labels errors.
    pub fn from_bytes(bytes: &[u8], name: &Path) -> Result<Bundle> {
        Self::from_file(&ModelFile::from_bytes(bytes, name)?)
    }

    /// Decodes and checks the table model of `f`.
    pub fn from_file(f: &ModelFile) -> Result<Bundle> {
        let bundle: Bundle = f.decode(Kind::Table, "this command")?;
        bundle.check().map_err(|m| file::bad(f.path(), m))?;
        Ok(bundle)
    }

    /// Cross-checks the parts' dimensions.
    fn check(&self) -> std::result::Result<(), String> {
        self.autoencoder
            .check_shapes()
            .map_err(|e| format!("damaged autoencoder: {e}"))?;
        if let Some(c) = &self.classifier {
            c.model
                .check_shapes()
                .map_err(|e| format!("damaged classifier: {e}"))?;
        }
        let d = self.schema.width();
        if self.scaler.dim() != d || self.autoencoder.input_dim() != d {
            return Err(format!(
                "inconsistent widths: schema {d}, scaler {}, autoencoder {}",
                self.scaler.dim(),
                self.autoencoder.input_dim()
            ));
        }
        if let Some(c) = &self.classifier {
            if c.model.n_classes() != c.class_names.len()
                || c.normal_class >= c.class_names.len()
                || c.model.input_dim() != self.autoencoder.latent_dim()
            {
                return Err("inconsistent classifier dimensions".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::scale::ScalerParams;
    use crate::features::tabular::{Column, ColumnKind};
    use crate::model::autoencoder::AutoencoderParams;
    use crate::model::logistic::LogisticParams;
    use crate::Matrix;

    fn tiny() -> Bundle {
        let x = Matrix::from_vec(4, 2, vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]).unwrap();
        let (ae, history) = AutoencoderParams::new()
            .epochs(2)
            .fit(&x, None, &mut |_| {})
            .unwrap();
        let z = ae.encode_batch(&x);
        let model = LogisticParams::new()
            .epochs(2)
            .fit(&z, &[0, 1, 0, 1], 2)
            .unwrap();
        Bundle {
            schema: Schema {
                columns: vec![
                    Column {
                        name: "a".into(),
                        kind: ColumnKind::Numeric,
                    },
                    Column {
                        name: "b".into(),
                        kind: ColumnKind::Numeric,
                    },
                ],
            },
            label_column: "label".into(),
            normal_labels: vec!["normal".into()],
            scaler: ScalerParams::default().fit(&x, &[false, false]).unwrap(),
            autoencoder: ae,
            threshold_rule: ThresholdRule::default(),
            threshold: 0.123_456_79,
            classifier: Some(Classifier {
                model,
                class_names: vec!["normal".into(), "x".into()],
                normal_class: 0,
            }),
            meta: TrainMeta {
                floodwatch_version: "t".into(),
                created_unix: 0,
                data: vec![],
                rows_read: 4,
                rows_rejected: 0,
                normal_rows: 4,
                attack_rows: 0,
                train_rows: 4,
                holdout_rows: 0,
                classifier_attack_rows: 0,
                epochs: 2,
                batch_size: 256,
                learning_rate: 1e-3,
                seed: 42,
                history,
                dropped: vec![],
            },
            capture: Some(CaptureFeatures {
                layout: "nbaiot".into(),
                table_capacity: 7,
                flows: false,
            }),
        }
    }

    #[test]
    fn decide_picks_the_first_most_probable_attack_class() {
        let Some(mut c) = tiny().classifier else {
            panic!("tiny has a classifier")
        };
        c.normal_class = 1;
        let nan = f32::NAN;
        let cases: [(&[f32], f32, usize); 7] = [
            (&[0.2, 0.5, 0.3], -0.2, 1),
            (&[0.4, 0.2, 0.4], 0.2, 0),
            (&[0.1, 0.2, 0.7], 0.5, 2),
            (&[0.3, 0.4, 0.3], -0.1, 1),
            (&[0.5, 0.5, 0.0], 0.0, 1),
            (&[nan, 0.2, 0.8], 0.6, 2),
            (&[0.0, 1.0, 0.0], -1.0, 1),
        ];
        for (prob, margin, k) in cases {
            let (m, got) = c.decide(prob);
            assert!((m - margin).abs() < 1e-6, "{prob:?}: margin {m}");
            assert_eq!(got, k, "{prob:?}");
        }
        assert!(c.decide(&[0.3, nan, 0.7]).0.is_nan());
        assert_eq!(c.decide(&[0.3, nan, 0.7]).1, 1);
    }

    #[test]
    fn transposed_decisions_are_those_of_each_row() {
        let x = Matrix::from_vec(4, 1, vec![0.0, 1.0, 2.0, 3.0]).unwrap();
        let k = 5;
        let mut c = Classifier {
            model: LogisticParams::new()
                .epochs(1)
                .fit(&x, &[0, 1, 2, 4], k)
                .unwrap(),
            class_names: (0..k).map(|j| j.to_string()).collect(),
            normal_class: 0,
        };
        // Ties, NaN, a normal class that wins, on 37 rows: two full lane
        // groups and a partial one.
        let values = [0.0, 0.25, 0.5, f32::NAN, 0.125, 0.5, 1.0];
        for normal in [0, 2, k - 1] {
            c.normal_class = normal;
            let (rows, stride) = (37, 48);
            let pt: Vec<f32> = (0..k * stride).map(|i| values[i * 7 % 11 % 7]).collect();
            let mut got = Vec::new();
            c.decide_t(&pt, stride, rows, &mut got);
            assert_eq!(got.len(), rows);
            for (r, &(class, p, margin)) in got.iter().enumerate() {
                let row: Vec<f32> = (0..k).map(|j| pt[j * stride + r]).collect();
                let (want_margin, want) = c.decide(&row);
                assert_eq!((class, p.to_bits()), (want, row[want].to_bits()), "row {r}");
                assert_eq!(margin.to_bits(), want_margin.to_bits(), "row {r}");
            }
        }
    }

    #[test]
    fn round_trip_is_bit_exact() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.fw");
        let b = tiny();
        b.save(&p).unwrap();
        let back = Bundle::load(&p).unwrap();
        assert_eq!(back, b);
        let row = [0.25f32, 0.75];
        assert_eq!(
            back.autoencoder.score(&row).to_bits(),
            b.autoencoder.score(&row).to_bits()
        );
    }

    #[test]
    fn a_stream_model_is_not_a_bundle() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.fw");
        file::save(&p, Kind::Stream, &tiny()).unwrap();
        let e = Bundle::load(&p).unwrap_err().to_string();
        assert!(e.contains("is a stream model"), "{e}");
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.truncate(30);
        assert!(Bundle::from_bytes(&bytes, &p).is_err());
    }
}
