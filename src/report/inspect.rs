//! What a model file holds, for `floodwatch inspect`: its kind and format,
//! the features it reads, each detector and threshold, how it was trained.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::detect::saved::{self, Saved};
use crate::detect::stream::{Detector, SavedModel};
use crate::model::bundle::Bundle;
use crate::model::file::{is_model_file, Kind, ModelFile};
use crate::Result;

/// A model file described.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// The file.
    pub path: String,
    /// Format version; `None` for a stream model saved as plain JSON by a
    /// floodwatch older than the one model file.
    pub format: Option<u32>,
    /// What it holds.
    pub kind: Kind,
    /// The floodwatch that wrote it, when recorded.
    pub written_by: Option<String>,
    /// File size in bytes.
    pub bytes: u64,
    /// The packet layout its features come from, if any.
    pub layout: Option<String>,
    /// Number of input features.
    pub features: usize,
    /// One per side (a table model has one, on the destination).
    pub detectors: Vec<DetectorInfo>,
    /// Labels and training, for a table model.
    pub training: Option<TrainingInfo>,
    /// Whether it carries feature tables for a warm restart.
    pub warm_state: bool,
}

/// One detector of a model.
#[derive(Debug, Clone, Serialize)]
pub struct DetectorInfo {
    /// `destination` or `source`.
    pub side: String,
    /// First and one-past-last feature it reads.
    pub features: (usize, usize),
    /// The detector and its shape ("autoencoder 34-25-11-...").
    pub detector: String,
    /// Scores above it are anomalies.
    pub threshold: f64,
    /// How it was set.
    pub rule: String,
}

/// How a table model was trained.
#[derive(Debug, Clone, Serialize)]
pub struct TrainingInfo {
    /// The label column and the labels of normal rows.
    pub label_column: String,
    /// Labels of normal rows.
    pub normal_labels: Vec<String>,
    /// The latent classifier's classes, when it has one.
    pub classes: Vec<String>,
    /// Normal rows trained on, and held back to calibrate.
    pub train_rows: usize,
    /// Held-back normal rows.
    pub holdout_rows: usize,
    /// Epochs and seed.
    pub epochs: usize,
    /// Random seed.
    pub seed: u64,
    /// Unix seconds at creation.
    pub created_unix: u64,
    /// The training files.
    pub data: Vec<String>,
}

/// Reads and describes the model at `path`.
pub fn inspect(path: &Path) -> Result<ModelInfo> {
    let (format, written_by, bytes) = if is_model_file(path) {
        let f = ModelFile::open(path)?;
        (Some(f.version), f.written_by.clone(), f.bytes)
    } else {
        let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
        (None, None, bytes)
    };
    let mut info = match saved::load(path)? {
        Saved::Table(b) => table(&b),
        Saved::Stream(m) => stream(&m),
    };
    info.path = path.display().to_string();
    (info.format, info.written_by, info.bytes) = (format, written_by, bytes);
    Ok(info)
}

fn blank(kind: Kind) -> ModelInfo {
    ModelInfo {
        path: String::new(),
        format: None,
        kind,
        written_by: None,
        bytes: 0,
        layout: None,
        features: 0,
        detectors: Vec::new(),
        training: None,
        warm_state: false,
    }
}

fn table(b: &Bundle) -> ModelInfo {
    let d = b.schema.width();
    let m = &b.meta;
    ModelInfo {
        layout: b.capture.as_ref().map(|c| c.layout.clone()),
        features: d,
        detectors: vec![DetectorInfo {
            side: "destination".into(),
            features: (0, d),
            detector: shape(&b.autoencoder.widths()),
            threshold: f64::from(b.threshold),
            rule: b.threshold_rule.to_string(),
        }],
        training: Some(TrainingInfo {
            label_column: b.label_column.clone(),
            normal_labels: b.normal_labels.clone(),
            classes: b
                .classifier
                .as_ref()
                .map_or(Vec::new(), |c| c.class_names.clone()),
            train_rows: m.train_rows,
            holdout_rows: m.holdout_rows,
            epochs: m.epochs,
            seed: m.seed,
            created_unix: m.created_unix,
            data: m.data.clone(),
        }),
        ..blank(Kind::Table)
    }
}

fn stream(m: &SavedModel) -> ModelInfo {
    let detectors = m
        .sides
        .iter()
        .map(|s| DetectorInfo {
            side: serde_json::to_value(s.side)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            features: s.range,
            detector: match &s.detector {
                Detector::Autoencoder { autoencoder, .. } => shape(&autoencoder.widths()),
                Detector::Kitnet { kitnet, log } => format!(
                    "kitnet {} groups{}",
                    kitnet.groups().map_or(0, <[_]>::len),
                    if *log { ", log inputs" } else { "" }
                ),
            },
            threshold: s.threshold,
            rule: match &s.calibration {
                Some(c) => format!(
                    "budget {}/day, calibrated {:.6} on {} held-back records",
                    c.budget_per_day, c.threshold, c.records
                ),
                None => "set at the end of grace by a quantile".into(),
            },
        })
        .collect();
    ModelInfo {
        layout: m.layout.clone(),
        features: m.features().len(),
        detectors,
        warm_state: m.state.is_some(),
        ..blank(Kind::Stream)
    }
}

fn shape(widths: &[usize]) -> String {
    let w: Vec<String> = widths.iter().map(usize::to_string).collect();
    format!("autoencoder {}", w.join("-"))
}

impl fmt::Display for ModelInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = self
            .format
            .map_or("plain JSON (older floodwatch)".into(), |v| {
                format!("format {v}")
            });
        writeln!(f, "{}: {}", self.path, self.kind.describe())?;
        write!(f, "  file      {format}, {} bytes, checksum ok", self.bytes)?;
        if let Some(v) = &self.written_by {
            write!(f, ", written by floodwatch {v}")?;
        }
        writeln!(f)?;
        let layout = self
            .layout
            .as_ref()
            .map_or(String::new(), |l| format!(" (layout {l})"));
        writeln!(f, "  features  {}{layout}", self.features)?;
        for d in &self.detectors {
            writeln!(
                f,
                "  {:<11} features {}..{}: {}, threshold {:.6} ({})",
                d.side, d.features.0, d.features.1, d.detector, d.threshold, d.rule
            )?;
        }
        if self.kind == Kind::Stream {
            let warm = if self.warm_state { "yes" } else { "no" };
            writeln!(f, "  warm state {warm}")?;
        }
        if let Some(t) = &self.training {
            writeln!(
                f,
                "  labels    column '{}', normal {:?}",
                t.label_column, t.normal_labels
            )?;
            if !t.classes.is_empty() {
                writeln!(f, "  classes   {:?}", t.classes)?;
            }
            writeln!(
                f,
                "  trained   {} rows ({} held back), {} epochs, seed {}, from {:?}",
                t.train_rows, t.holdout_rows, t.epochs, t.seed, t.data
            )?;
        }
        Ok(())
    }
}
