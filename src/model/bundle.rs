//! The model bundle: one file holding everything `floodwatch test` needs.
//!
//! Layout (little-endian):
//!
//! | bytes | content |
//! |-------|---------|
//! | 8     | magic `FLDWATCH` |
//! | 4     | format version (u32, currently [`FORMAT_VERSION`]) |
//! | 4     | CRC-32 of the payload (u32) |
//! | 8     | payload length (u64) |
//! | n     | payload: the [`Bundle`] as JSON |
//!
//! JSON keeps the file inspectable (`tail -c +25 model.fw | jq .meta`) and
//! round-trips `f32` weights bit-exactly (shortest round-trip decimal). The
//! claimed length is checked against the file size before anything is
//! allocated; the file is written to a temporary file and renamed.

use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::features::capture_table::CaptureFeatures;

use crate::features::scale::Scaler;
use crate::features::tabular::Schema;
use crate::model::autoencoder::{Autoencoder, TrainHistory};
use crate::model::logistic::LogisticRegression;
use crate::model::threshold::ThresholdRule;
use crate::{Error, Result};

/// The 8 bytes a bundle starts with.
pub const MAGIC: [u8; 8] = *b"FLDWATCH";
/// The format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: u64 = 24;

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
    /// Epochs.
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

impl Bundle {
    /// Writes the bundle to `path` crash-safely.
    pub fn save(&self, path: &Path) -> Result<()> {
        let payload = serde_json::to_vec(self)
            .map_err(|e| Error::Model(format!("cannot serialise the bundle: {e}")))?;
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(&MAGIC);
        header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        header.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        header.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        crate::util::write_atomically(path, |mut f| {
            f.write_all(&header)?;
            f.write_all(&payload)
        })
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
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut header = [0u8; HEADER_LEN as usize];
        if size < HEADER_LEN {
            return Err(bad(path, too_short(size)));
        }
        file.read_exact(&mut header)
            .map_err(|e| Error::io(path, e))?;
        // The claimed length is checked against the file size first, so a
        // huge claim allocates nothing.
        let (crc, len) = parse_header(&header, size - HEADER_LEN).map_err(|m| bad(path, m))?;
        let mut payload = Vec::with_capacity(len as usize);
        file.read_to_end(&mut payload)
            .map_err(|e| Error::io(path, e))?;
        if payload.len() as u64 != len {
            return Err(bad(path, "file changed while being read".into()));
        }
        Self::decode_payload(&payload, crc).map_err(|m| bad(path, m))
    }

    /// Reads a bundle from the bytes of a whole file; `name` labels errors.
    pub fn from_bytes(bytes: &[u8], name: &Path) -> Result<Bundle> {
        let Some((header, payload)) = bytes.split_first_chunk::<{ HEADER_LEN as usize }>() else {
            return Err(bad(name, too_short(bytes.len() as u64)));
        };
        let (crc, _) = parse_header(header, payload.len() as u64).map_err(|m| bad(name, m))?;
        Self::decode_payload(payload, crc).map_err(|m| bad(name, m))
    }

    fn decode_payload(payload: &[u8], crc: u32) -> std::result::Result<Bundle, String> {
        if crc32fast::hash(payload) != crc {
            return Err(
                "checksum mismatch: the file is corrupt; train the model again or restore a copy"
                    .into(),
            );
        }
        // serde_json refuses nesting deeper than 128 levels (its default
        // recursion limit), so a hostile payload cannot overflow the stack.
        let bundle: Bundle =
            serde_json::from_slice(payload).map_err(|e| format!("payload does not decode: {e}"))?;
        bundle.check()?;
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

fn bad(path: &Path, msg: String) -> Error {
    Error::Bundle {
        path: path.to_owned(),
        msg,
    }
}

fn too_short(size: u64) -> String {
    format!("not a floodwatch model: {size} bytes, shorter than the {HEADER_LEN}-byte header")
}

/// Checks magic, version and claimed length against the `available` payload
/// bytes; returns the checksum and the length.
fn parse_header(
    header: &[u8; HEADER_LEN as usize],
    available: u64,
) -> std::result::Result<(u32, u64), String> {
    let (magic, rest) = header.split_at(8);
    if magic != MAGIC {
        return Err("not a floodwatch model (wrong magic bytes)".into());
    }
    let word = |i: usize| u32::from_le_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
    let (version, crc) = (word(0), word(4));
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&rest[8..16]);
    let len = u64::from_le_bytes(len_bytes);
    if version > FORMAT_VERSION {
        return Err(format!(
            "format version {version} is newer than this floodwatch reads ({FORMAT_VERSION}): upgrade floodwatch"
        ));
    }
    if version == 0 {
        return Err("format version 0 is invalid".into());
    }
    if len != available {
        return Err(format!(
            "truncated or padded: header says {len} payload bytes, file has {available}; \
             the file was cut short or damaged, train the model again or restore a copy"
        ));
    }
    Ok((crc, len))
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
            }),
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
    fn damaged_files_are_clear_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.fw");
        tiny().save(&p).unwrap();
        let good = std::fs::read(&p).unwrap();
        let load = |bytes: &[u8]| {
            std::fs::write(&p, bytes).unwrap();
            Bundle::load(&p).unwrap_err().to_string()
        };
        assert!(load(&good[..10]).contains("shorter than"));
        assert!(load(&good[..good.len() - 5]).contains("truncated"));
        let mut wrong = good.clone();
        wrong[0] = b'X';
        assert!(load(&wrong).contains("wrong magic"));
        let mut newer = good.clone();
        newer[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert!(load(&newer).contains("newer"));
        let mut corrupt = good.clone();
        let last = corrupt.len() - 2;
        corrupt[last] ^= 1;
        assert!(load(&corrupt).contains("checksum"));
        // A huge claimed length is refused before any allocation.
        let mut huge = good.clone();
        huge[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(load(&huge).contains("truncated"));
        assert!(Bundle::load(&d.path().join("none")).is_err());
    }
}
