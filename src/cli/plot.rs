//! `floodwatch plot KIND`: one picture from a model bundle and data.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args as ClapArgs, ValueEnum};
use floodwatch::ingest::csv::read_columns_file;
use floodwatch::model::bundle::Bundle;
use floodwatch::report::plot::{render, Format};
use floodwatch::run::batch::Input;
use floodwatch::run::eval::{self, Data, DetectorRun};

/// Draw one picture (PNG or SVG by the extension of --out).
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The picture.
    #[arg(value_enum)]
    pub kind: Kind,
    /// The model bundle.
    #[arg(long)]
    pub model: PathBuf,
    /// CSV files (all kinds but `loss`).
    #[arg(long, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// Where to write the picture (.png or .svg; `-`: SVG to standard output).
    #[arg(long)]
    pub out: PathBuf,
    /// ROC: the false-positive rate on a log scale (from 0.0001).
    #[arg(long)]
    pub log_fpr: bool,
    /// Rows embedded by t-SNE at most (a seeded sample beyond).
    #[arg(long, default_value_t = 5000)]
    pub tsne_points: usize,
    #[command(flatten)]
    pub read: ReadFlags,
}

/// How `plot`, `threshold` and `report` read their data.
#[derive(Debug, Clone, ClapArgs)]
pub struct ReadFlags {
    /// Column names, one a line, for files without a header line.
    #[arg(long)]
    pub columns: Option<PathBuf>,
    /// Count malformed rows as rejected instead of stopping at the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// Rows kept at most (a seeded sample beyond).
    #[arg(long, default_value_t = 200_000, alias = "max-test-rows")]
    pub max_rows: usize,
    /// Seed of the samples.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl ReadFlags {
    /// Reads `files` through the bundle.
    pub fn load(&self, bundle: &Bundle, files: &[PathBuf]) -> anyhow::Result<Data> {
        let columns = match &self.columns {
            Some(p) => Some(read_columns_file(p)?),
            None => None,
        };
        let input = Input {
            data: files.to_vec(),
            columns,
            skip_bad_rows: self.skip_bad_rows,
            captures: Vec::new(),
            generated: Vec::new(),
        };
        Ok(eval::load_data(bundle, &input, self.max_rows, self.seed)?)
    }
}

/// The pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// t-SNE of the scaled input and of the latent codes, by class.
    Tsne,
    /// Histograms of the autoencoder's score per class, with the threshold.
    Hist,
    /// ROC curves of the detectors.
    Roc,
    /// Precision-recall curves of the detectors.
    Pr,
    /// Training loss per epoch.
    Loss,
    /// Rows per class.
    Classes,
    /// Correlation of the features with the largest variance.
    Corr,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 7] = [
        Kind::Classes,
        Kind::Loss,
        Kind::Hist,
        Kind::Roc,
        Kind::Pr,
        Kind::Tsne,
        Kind::Corr,
    ];

    /// File stem and caption.
    pub fn describe(self) -> (&'static str, &'static str) {
        match self {
            Kind::Tsne => (
                "tsne",
                "t-SNE of the scaled input (left) and the autoencoder's latent codes (right)",
            ),
            Kind::Hist => (
                "hist",
                "Autoencoder reconstruction error per class, threshold dashed",
            ),
            Kind::Roc => ("roc", "ROC curves"),
            Kind::Pr => ("pr", "Precision-recall curves"),
            Kind::Loss => ("loss", "Training loss per epoch"),
            Kind::Classes => ("classes", "Rows per class"),
            Kind::Corr => ("corr", "Feature correlation"),
        }
    }
}

/// What the pictures are drawn from.
pub struct Scene<'a> {
    /// The model.
    pub bundle: &'a Bundle,
    /// The data (absent: only `loss` can be drawn).
    pub data: Option<&'a Data>,
    /// Detector scores on `data`; the first is the autoencoder.
    pub runs: &'a [DetectorRun],
    /// Rows embedded by t-SNE at most.
    pub tsne_points: usize,
    /// Seed of the t-SNE sample.
    pub seed: u64,
    /// ROC curves with the false-positive rate on a log scale.
    pub log_fpr: bool,
}

impl Scene<'_> {
    /// Draws `kind` as PNG or SVG bytes.
    pub fn render(&self, kind: Kind, format: Format) -> anyhow::Result<Vec<u8>> {
        if kind == Kind::Loss {
            return Ok(render(&eval::loss_chart(self.bundle), format)?);
        }
        let Some(data) = self.data else {
            anyhow::bail!(
                "the {} picture draws rows: give --data with CSV files the model reads",
                kind.describe().0
            );
        };
        let needs_labels = || -> anyhow::Result<()> {
            if data.attack.iter().all(|&a| a) || data.attack.iter().all(|&a| !a) {
                anyhow::bail!(
                    "the {} picture needs labelled data with normal and attack rows",
                    kind.describe().0
                );
            }
            Ok(())
        };
        Ok(match kind {
            Kind::Tsne => {
                let pair = eval::tsne_pair(self.bundle, data, self.tsne_points, self.seed)?;
                for panel in pair.collapsed() {
                    eprintln!(
                        "floodwatch: warning: the t-SNE of the {panel} collapsed onto a line \
                         or a point: its rows hardly differ, the picture shows little"
                    );
                }
                render(&pair, format)?
            }
            Kind::Hist => {
                let ae = self.runs.first().map(|r| (&r.scores, r.threshold));
                let Some((scores, threshold)) = ae else {
                    anyhow::bail!("no scores to draw");
                };
                let hist = eval::score_histogram(
                    "Autoencoder reconstruction error per class",
                    "reconstruction error",
                    scores,
                    &data.labels,
                    Some(threshold),
                );
                render(&hist, format)?
            }
            Kind::Roc => {
                needs_labels()?;
                render(
                    &eval::roc_chart(self.runs, &data.attack, self.log_fpr),
                    format,
                )?
            }
            Kind::Pr => {
                needs_labels()?;
                render(&eval::pr_chart(self.runs, &data.attack), format)?
            }
            Kind::Classes => render(&eval::class_bars("Rows per class", data), format)?,
            Kind::Corr => render(
                &eval::correlation(self.bundle, data, eval::MAX_CORR_FEATURES)?,
                format,
            )?,
            Kind::Loss => render(&eval::loss_chart(self.bundle), format)?,
        })
    }
}

/// Writes `bytes` to `path` crash-safely.
pub fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    floodwatch::util::write_atomically(path, |mut f| f.write_all(bytes))?;
    Ok(())
}

/// Draws the picture.
pub fn run(args: Args, quiet: bool) -> anyhow::Result<ExitCode> {
    let format = Format::from_path(&args.out)?;
    let bundle = Bundle::load(&args.model)?;
    let data = if args.data.is_empty() {
        None
    } else {
        Some(args.read.load(&bundle, &args.data)?)
    };
    let runs = data
        .as_ref()
        .map(|d| eval::bundle_runs(&bundle, d))
        .unwrap_or_default();
    let scene = Scene {
        bundle: &bundle,
        data: data.as_ref(),
        runs: &runs,
        tsne_points: args.tsne_points,
        seed: args.read.seed,
        log_fpr: args.log_fpr,
    };
    let bytes = scene.render(args.kind, format)?;
    write_file(&args.out, &bytes)?;
    if !quiet {
        eprintln!("wrote {}", args.out.display());
    }
    Ok(ExitCode::SUCCESS)
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
    fn flags_parse() {
        let w = Wrap::try_parse_from([
            "p", "roc", "--model", "m", "--data", "a", "b", "--out", "x.png",
        ])
        .unwrap();
        assert_eq!(w.args.kind, Kind::Roc);
        assert_eq!(w.args.data.len(), 2);
        assert_eq!(w.args.read.max_rows, 200_000);
        let w = Wrap::try_parse_from(["p", "loss", "--model", "m", "--out", "l.svg"]).unwrap();
        assert!(w.args.data.is_empty());
        assert!(Wrap::try_parse_from(["p", "pie", "--model", "m", "--out", "x.png"]).is_err());
        assert!(Wrap::try_parse_from(["p", "roc", "--model", "m"]).is_err());
        let stems: Vec<&str> = Kind::ALL.iter().map(|k| k.describe().0).collect();
        assert_eq!(stems.len(), 7);
    }
}
