//! `floodwatch train`: learn a model bundle from labelled CSV files.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args as ClapArgs;
use floodwatch::features::capture_table::CaptureFeatures;
use floodwatch::features::combined::PacketLayout;
use floodwatch::features::scale::ScalerParams;
use floodwatch::features::stream_table::TableConfig;
use floodwatch::features::tabular::{ColumnKind, IdentifierRule, Schema};
use floodwatch::ingest::csv::read_columns_file;
use floodwatch::model::neighbours::LatentNeighbours;
use floodwatch::model::threshold::ThresholdRule;
use floodwatch::run::batch::{self, Input, TrainOptions, NEIGHBOUR_ROWS};

use super::capture_flags::CaptureFlags;

/// Train an autoencoder on the normal rows of labelled CSV files (and, when
/// they hold attacks, a classifier on its latent representation).
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Training CSV files (same columns, matched by name).
    #[arg(long, required_unless_present = "pcap", num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// Where to write the model bundle.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub captures: CaptureFlags,
    /// Packet feature layout for --pcap: victim, floodwatch, kitsune,
    /// kitsune-corrected or nbaiot (the same names and default as `extract`
    /// and `watch`).
    #[arg(long, default_value = PacketLayout::DEFAULT, requires = "pcap")]
    pub layout: PacketLayout,
    /// Most entries per stream table for --pcap (memory stays bounded by it).
    #[arg(long, value_name = "N", default_value_t = TableConfig::default().capacity)]
    pub table_capacity: usize,
    /// How to read the files and train.
    #[command(flatten)]
    pub train: TrainFlags,
}

/// The reading and training flags, shared with `eval`.
#[derive(Debug, Clone, ClapArgs)]
pub struct TrainFlags {
    /// Column names, one a line, for files without a header line.
    #[arg(long)]
    pub columns: Option<PathBuf>,
    /// The label column [default: a column named `label`, any case].
    #[arg(long)]
    pub label_column: Option<String>,
    /// A label of normal rows (repeatable) [default: normal].
    #[arg(long = "normal-label")]
    pub normal_labels: Vec<String>,
    /// A column to leave out (repeatable). Identifier-like columns
    /// (addresses, timestamps, ids, near-unique strings) are left out anyway.
    #[arg(long)]
    pub drop: Vec<String>,
    /// An identifier-like column to learn all the same (repeatable).
    #[arg(long, value_name = "COLUMN")]
    pub keep: Vec<String>,
    /// A text column with more distinct values than this share of its rows
    /// is an identifier (left out).
    #[arg(long, value_name = "SHARE", default_value_t = IdentifierRule::default().max_distinct_share)]
    pub max_distinct_share: f64,
    /// Autoencoder epochs [default: 30; 10 under 1,000 training rows].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Autoencoder networks trained from consecutive seeds, their scores
    /// averaged [default: 1; ceil(1000 / rows) up to 5 under 1,000
    /// training rows].
    #[arg(long, value_name = "N")]
    pub networks: Option<usize>,
    /// Normal training rows whose latent codes the score's neighbour
    /// distance is measured against (a seeded sample beyond); 0 scores by
    /// reconstruction error alone, faster.
    #[arg(long, value_name = "N", default_value_t = NEIGHBOUR_ROWS)]
    pub neighbours: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub learning_rate: f32,
    /// Normal rows sampled (20 % of them calibrate the threshold).
    #[arg(long, default_value_t = 8000)]
    pub rows: usize,
    /// Attack rows sampled for the latent classifier.
    #[arg(long, default_value_t = 8000)]
    pub attack_rows: usize,
    /// Random seed (sampling, initialisation, shuffling).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Threshold rule: fpr:F, quantile:Q, meanstd:K or lognormal:P.
    #[arg(long, default_value = "fpr:0.01")]
    pub threshold: ThresholdRule,
    /// Scaling: log-minmax (log1p on heavy tails), log-minmax-clip, minmax-clip or minmax.
    #[arg(long, default_value = "log-minmax")]
    pub scaling: ScalerParams,
    /// Count malformed rows as rejected instead of stopping at the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
}

impl Args {
    /// The library options these flags mean.
    pub fn options(&self) -> anyhow::Result<TrainOptions> {
        let mut opts = self.train.options(&self.data)?;
        let features = CaptureFeatures {
            layout: self.layout.to_string(),
            table_capacity: self.table_capacity,
            flows: self.captures.flows,
        };
        let label_all = opts.normal_labels.first().map(String::as_str);
        opts.input.captures = self.captures.tables(&features, label_all)?;
        opts.capture = (!opts.input.captures.is_empty()).then_some(features);
        Ok(opts)
    }
}

impl TrainFlags {
    /// How to read `data` with these flags.
    pub fn input(&self, data: &[PathBuf]) -> anyhow::Result<Input> {
        let columns = match &self.columns {
            Some(p) => Some(read_columns_file(p)?),
            None => None,
        };
        Ok(Input {
            data: data.to_vec(),
            columns,
            skip_bad_rows: self.skip_bad_rows,
            captures: Vec::new(),
            generated: Vec::new(),
        })
    }

    /// The library options these flags mean for training files `data`.
    pub fn options(&self, data: &[PathBuf]) -> anyhow::Result<TrainOptions> {
        let mut normal_labels = self.normal_labels.clone();
        if normal_labels.is_empty() {
            normal_labels.push("normal".into());
        }
        Ok(TrainOptions {
            input: self.input(data)?,
            label_column: self.label_column.clone(),
            normal_labels,
            drop: self.drop.clone(),
            identifiers: Some(IdentifierRule {
                max_distinct_share: self.max_distinct_share,
                keep: self.keep.clone(),
            }),
            rows: self.rows,
            attack_rows: self.attack_rows,
            epochs: self.epochs,
            networks: self.networks,
            neighbours: self.neighbours,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            seed: self.seed,
            scaling: self.scaling,
            threshold: self.threshold,
            ..TrainOptions::default()
        })
    }
}

/// Trains and saves the bundle.
pub fn run(args: Args, quiet: bool) -> anyhow::Result<ExitCode> {
    let opts = args.options()?;
    let bar = super::progress_bar(0, "epochs", quiet);
    let trained = batch::train(&opts, &mut |e| {
        bar.set_length(e.epochs as u64);
        let val = e.val_loss.map_or(String::new(), |v| format!(" val {v:.5}"));
        bar.set_message(format!("loss {:.5}{val}", e.loss));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    trained.bundle.save(&args.model)?;
    for note in &trained.notes {
        eprintln!("floodwatch: note: {note}");
    }
    if !quiet {
        let b = &trained.bundle;
        let m = &b.meta;
        eprintln!(
            "normal rows: {} read, {} sampled (--rows), {} trained on, {} held back to calibrate",
            m.normal_rows,
            m.train_rows + m.holdout_rows,
            m.train_rows,
            m.holdout_rows
        );
        // Cross-fitted networks calibrate on every sampled row.
        let networks = b.autoencoder.networks();
        let nb = b.autoencoder.neighbours();
        let references = nb.map_or(0, LatentNeighbours::references);
        let calibration_rows = match networks {
            1 => m.holdout_rows,
            _ if references > 0 => references,
            _ => m.train_rows + m.holdout_rows,
        };
        if let Some(w) = calibration_warning(&b.threshold_rule, calibration_rows) {
            eprintln!("warning: {w}");
        }
        eprintln!(
            "trained on {} normal rows, {} features, {} epochs, final loss {:.5}",
            m.train_rows,
            b.schema.width(),
            m.epochs,
            m.history.loss.last().copied().unwrap_or(f32::NAN)
        );
        if networks > 1 {
            eprintln!(
                "{} networks (seeds {} to {}) cross-fitted on {} folds of the {} rows, their \
                 scores averaged: fewer than 1,000 training rows leave one to chance (--networks N)",
                networks,
                m.seed,
                m.seed + networks as u64 - 1,
                networks,
                calibration_rows
            );
        }
        if let Some(nb) = nb {
            eprintln!("score: {nb} (--neighbours N; 0 for the error alone)");
        }
        if let Some(line) = imputed_line(&b.schema) {
            eprintln!("{line}");
        }
        eprintln!("threshold {:.6} ({})", b.threshold, b.threshold_rule);
        if let Some(c) = &b.classifier {
            eprintln!(
                "latent classifier over {} classes: {}",
                c.class_names.len(),
                c.class_names.join(", ")
            );
        }
        if trained.rejections.total() > 0 {
            eprintln!("{}", trained.rejections.summary());
        }
        eprintln!("saved {}", args.model.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Fewest held-back rows expected above an `fpr:F` threshold for it to be
/// more than noise.
const MIN_TAIL_ROWS: f64 = 10.0;

/// A warning when `holdout` rows are too few to calibrate `rule`.
fn calibration_warning(rule: &ThresholdRule, holdout: usize) -> Option<String> {
    let ThresholdRule::TargetFpr(f) = *rule else {
        return None;
    };
    let need = (MIN_TAIL_ROWS / f).ceil() as usize;
    (holdout < need).then(|| {
        format!(
            "the threshold for fpr:{f} comes from {holdout} held-back normal rows ({:.1} expected \
             above it); it needs about {need} (--rows {} with enough normal rows) or a larger F",
            holdout as f64 * f,
            need * 5
        )
    })
}

/// The line naming numeric columns with missing values (imputed), if any.
fn imputed_line(schema: &Schema) -> Option<String> {
    let names: Vec<&str> = schema
        .columns
        .iter()
        .filter(|c| matches!(c.kind, ColumnKind::Imputed { .. }))
        .map(|c| c.name.as_str())
        .collect();
    (!names.is_empty()).then(|| {
        format!(
            "numeric with missing values (mean-imputed, plus a missing indicator): {}",
            names.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrap {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn flags_map_to_options() {
        let w = Wrap::try_parse_from([
            "t",
            "--data",
            "a.csv",
            "b.csv",
            "--model",
            "m.fw",
            "--drop",
            "id",
            "--normal-label",
            "BENIGN",
            "--threshold",
            "quantile:0.9",
            "--scaling",
            "minmax",
            "--epochs",
            "3",
        ])
        .unwrap();
        let o = w.args.options().unwrap();
        assert_eq!(o.input.data.len(), 2);
        assert_eq!(o.normal_labels, ["BENIGN"]);
        assert_eq!(o.drop, ["id"]);
        assert_eq!(o.threshold, ThresholdRule::Quantile(0.9));
        assert!(!o.scaling.log);
        assert_eq!(o.epochs, Some(3));
        let w = Wrap::try_parse_from(["t", "--data", "a.csv", "--model", "m.fw"]).unwrap();
        assert_eq!(w.args.options().unwrap().normal_labels, ["normal"]);
        assert!(
            Wrap::try_parse_from(["t", "--data", "a", "--model", "m", "--threshold", "x"]).is_err()
        );
        assert!(Wrap::try_parse_from(["t", "--model", "m"]).is_err());
    }

    #[test]
    fn small_calibration_sets_are_warned_about() {
        let fpr = ThresholdRule::TargetFpr(0.01);
        let w = calibration_warning(&fpr, 60).unwrap();
        assert!(
            w.contains("from 60 held-back") && w.contains("about 1000 (--rows 5000"),
            "{w}"
        );
        assert_eq!(calibration_warning(&fpr, 1600), None);
        assert_eq!(
            calibration_warning(&ThresholdRule::Quantile(0.99), 60),
            None
        );
    }
}
