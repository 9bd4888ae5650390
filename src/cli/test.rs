//! `floodwatch test`: score CSV files or captures with a saved model.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args as ClapArgs;
use floodwatch::detect::saved::{self, Saved};
use floodwatch::detect::stream::SavedModel;
use floodwatch::ingest::csv::read_columns_file;
use floodwatch::model::bundle::Bundle;
use floodwatch::run::batch::{self, Input, Report, TestOptions};
use floodwatch::run::offline::test_captures;

use super::capture_flags::CaptureFlags;

/// Score every row of CSV files (or packet of captures) with a saved model;
/// with labels, report how well it does.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// CSV files to score (columns matched to the model's by name); files
    /// ending in .parquet are read as Parquet tables (feature `parquet`).
    #[arg(long, required_unless_present = "pcap", num_args = 1..)]
    pub data: Vec<PathBuf>,
    #[command(flatten)]
    pub captures: CaptureFlags,
    /// The model: a table model from `train`, or a stream model from `watch
    /// --save-model` (which scores --pcap captures as `watch` would).
    #[arg(long)]
    pub model: PathBuf,
    /// Labels of normal packets in --labels files, for a stream model (a
    /// table model knows its own).
    #[arg(long, value_name = "LABEL", num_args = 1.., default_value = "normal")]
    pub normal_label: Vec<String>,
    /// Column names, one a line, for files without a header line.
    #[arg(long)]
    pub columns: Option<PathBuf>,
    /// Write the input columns plus score, is_anomaly (and predicted,
    /// probability with a classifier) to this CSV file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the metrics as JSON to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Count malformed rows as rejected instead of stopping at the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// Exit with status 3 when any row is an anomaly.
    #[arg(long)]
    pub fail_on_anomaly: bool,
    /// Rows scored together.
    #[arg(long, default_value_t = 4096)]
    pub batch_rows: usize,
    /// Add a `top_features` column to --out naming the K input columns with
    /// the largest share of each row's reconstruction error ("syn:0.41;...").
    #[arg(long, value_name = "K", requires = "out")]
    pub explain: Option<usize>,
}

/// Scores, prints the report, writes the outputs.
pub fn run(args: Args, quiet: bool) -> anyhow::Result<ExitCode> {
    let report = match saved::load(&args.model)? {
        Saved::Table(bundle) => score(&args, &bundle, quiet)?,
        Saved::Stream(model) => score_stream(&args, &model)?,
    };
    // With the predictions on standard output, the report goes to stderr.
    if args.out.as_deref().is_some_and(floodwatch::util::is_stdout) {
        print_report(&report, &mut std::io::stderr().lock())?;
    } else {
        print_report(&report, &mut std::io::stdout().lock())?;
    }
    if let Some(p) = &args.report {
        let json = serde_json::to_vec_pretty(&report)?;
        floodwatch::util::write_atomically(p, |mut f| f.write_all(&json))?;
    }
    if !quiet && report.rejected > 0 {
        eprintln!(
            "{} rows rejected: {:?}",
            report.rejected, report.rejected_by_reason
        );
    }
    if args.fail_on_anomaly && report.anomalies > 0 {
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the scoring with a progress bar over the input bytes.
pub fn score(args: &Args, bundle: &Bundle, quiet: bool) -> anyhow::Result<Report> {
    let columns = match &args.columns {
        Some(p) => Some(read_columns_file(p)?),
        None => None,
    };
    let captures = match (&bundle.capture, args.captures.pcap.is_empty()) {
        (_, true) => Vec::new(),
        (Some(features), false) => args.captures.tables(features, None)?,
        (None, false) => anyhow::bail!(
            "{}: this model was trained on CSV rows, not packets: --pcap needs a model trained with --pcap",
            args.model.display()
        ),
    };
    let opts = TestOptions {
        input: Input {
            data: args.data.clone(),
            columns,
            skip_bad_rows: args.skip_bad_rows,
            captures,
            generated: Vec::new(),
        },
        out: args.out.clone(),
        batch_rows: args.batch_rows,
        explain: args.explain.unwrap_or(0),
    };
    let bar = super::progress_bar(0, "bytes", quiet);
    let report = batch::test(bundle, &opts, &mut |p| {
        bar.set_length(p.total_bytes);
        bar.set_position(p.bytes);
        bar.set_message(format!("{} rows", p.rows));
    })?;
    bar.finish_and_clear();
    Ok(report)
}

/// Replays the captures through a stream model as `watch` scores them.
fn score_stream(args: &Args, model: &SavedModel) -> anyhow::Result<Report> {
    let name = args.model.display();
    if !args.data.is_empty() || args.captures.pcap.is_empty() {
        anyhow::bail!(
            "{name}: a stream model (from `watch --save-model`) scores captures: give --pcap \
             (tables go to a model from `train`)"
        );
    }
    if args.explain.is_some() {
        anyhow::bail!("{name}: --explain needs a table model from `train`");
    }
    let captures = args.captures.captures()?;
    let Some(path) = &args.out else {
        return Ok(test_captures(model, &captures, &args.normal_label, None)?);
    };
    let file = floodwatch::util::AtomicFile::create(path)?;
    Ok(test_captures(
        model,
        &captures,
        &args.normal_label,
        Some(file),
    )?)
}

/// Prints the summary, metrics and classification report.
pub fn print_report(r: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "rows {}  rejected {}  anomalies {} (threshold {:.6})",
        r.rows, r.rejected, r.anomalies, r.threshold
    )?;
    for (name, m) in [
        ("reconstruction", &r.reconstruction),
        ("latent classifier", &r.latent_classifier),
    ] {
        if let Some(m) = m {
            let auc = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.4}"));
            writeln!(
                out,
                "{name:<18} roc_auc {}  pr_auc {}  precision {:.4}  recall {:.4}  f1 {:.4}  accuracy {:.4}",
                auc(m.roc_auc),
                auc(m.pr_auc),
                m.precision,
                m.recall,
                m.f1,
                m.accuracy
            )?;
        }
    }
    if !r.unknown_values.is_empty() {
        writeln!(out, "unknown categorical values: {:?}", r.unknown_values)?;
    }
    if !r.missing_values.is_empty() {
        writeln!(out, "missing values imputed: {:?}", r.missing_values)?;
    }
    if let Some(c) = &r.classification_report {
        writeln!(out, "\n{c}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_text_without_labels() {
        let r = Report {
            rows: 10,
            rejected: 1,
            rejected_by_reason: Default::default(),
            anomalies: 2,
            threshold: 0.5,
            unknown_values: [("proto".to_string(), 3)].into_iter().collect(),
            missing_values: Default::default(),
            reconstruction: None,
            latent_classifier: None,
            classification_report: None,
        };
        let mut out = Vec::new();
        print_report(&r, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("rows 10  rejected 1  anomalies 2 (threshold 0.500000)"));
        assert!(
            text.contains("\"proto\": 3") && !text.contains("roc_auc"),
            "{text}"
        );
    }
}
