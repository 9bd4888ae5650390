//! `floodwatch demo`: the whole workflow on built-in data, in seconds.

use std::path::{Path, PathBuf};

use anyhow::Context;
use std::process::ExitCode;

use clap::Args as ClapArgs;
use floodwatch::ingest::synth::{SynthParams, IDENTIFIERS};

/// Synthesise IoT traffic with Mirai floods, train on one part, test on
/// another, print the report; every file is kept in --dir.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Where to write train.csv, test.csv, model.fw, predictions.csv,
    /// report.json, report.html and the pictures (created if needed).
    #[arg(long, default_value = "floodwatch-demo")]
    pub dir: PathBuf,
    /// Training rows (normal and attack).
    #[arg(long, default_value_t = 20_000)]
    pub rows: usize,
}

/// Runs synth, train, test and (with pictures built in) report and plot.
pub fn run(args: Args, quiet: bool) -> anyhow::Result<ExitCode> {
    let dir = args.dir;
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    let (train_csv, test_csv) = (dir.join("train.csv"), dir.join("test.csv"));
    let model = dir.join("model.fw");
    // Different seeds: the test rows are new flows, not copies of training ones.
    SynthParams {
        rows: args.rows,
        seed: 1,
        ..SynthParams::default()
    }
    .write_file(&train_csv)?;
    SynthParams {
        rows: args.rows / 2,
        seed: 2,
        ..SynthParams::default()
    }
    .write_file(&test_csv)?;
    if !quiet {
        eprintln!(
            "synthesised {} and {}",
            train_csv.display(),
            test_csv.display()
        );
    }
    let train = super::train::Args {
        data: vec![train_csv],
        model: model.clone(),
        captures: Default::default(),
        layout: floodwatch::features::combined::PacketLayout::Victim,
        table_capacity: 0,
        train: super::train::TrainFlags {
            columns: None,
            label_column: None,
            normal_labels: vec![],
            drop: IDENTIFIERS.iter().map(|s| s.to_string()).collect(),
            keep: vec![],
            max_distinct_share: 0.5,
            epochs: None,
            networks: None,
            neighbours: floodwatch::run::batch::NEIGHBOUR_ROWS,
            batch_size: 256,
            learning_rate: 1e-3,
            rows: 8000,
            attack_rows: 8000,
            seed: 42,
            threshold: Default::default(),
            scaling: Default::default(),
            skip_bad_rows: false,
        },
    };
    super::train::run(train, quiet)?;
    let test = super::test::Args {
        data: vec![test_csv.clone()],
        model: model.clone(),
        columns: None,
        out: Some(dir.join("predictions.csv")),
        report: Some(dir.join("report.json")),
        skip_bad_rows: false,
        fail_on_anomaly: false,
        batch_rows: 4096,
        captures: Default::default(),
        explain: None,
        normal_label: vec!["normal".into()],
    };
    let code = super::test::run(test, quiet)?;
    pictures(&dir, &model, &test_csv, quiet)?;
    if !quiet {
        eprintln!("the demo's files are in {}", dir.display());
    }
    Ok(code)
}

/// report.html and every picture of the model on the test rows.
#[cfg(feature = "plot")]
fn pictures(dir: &Path, model: &Path, test: &Path, quiet: bool) -> anyhow::Result<()> {
    use super::plot::{Kind, ReadFlags};
    let read = ReadFlags {
        columns: None,
        skip_bad_rows: false,
        max_rows: 200_000,
        seed: 42,
    };
    let report = super::report::Args {
        model: model.to_owned(),
        data: vec![test.to_owned()],
        out: dir.join("report.html"),
        top: 20,
        explain: 5,
        tsne_points: TSNE_POINTS,
        read: read.clone(),
    };
    super::report::run(report, quiet)?;
    for kind in Kind::ALL {
        let plot = super::plot::Args {
            kind,
            model: model.to_owned(),
            data: vec![test.to_owned()],
            out: dir.join(format!("{}.png", kind.describe().0)),
            log_fpr: true,
            tsne_points: TSNE_POINTS,
            read: read.clone(),
        };
        super::plot::run(plot, true)?;
    }
    Ok(())
}

/// Rows the demo's t-SNE embeds (a second or two).
#[cfg(feature = "plot")]
const TSNE_POINTS: usize = 2000;

#[cfg(not(feature = "plot"))]
fn pictures(_: &Path, _: &Path, _: &Path, quiet: bool) -> anyhow::Result<()> {
    if !quiet {
        eprintln!(
            "no report.html or pictures: this floodwatch was built without the `plot` feature"
        );
    }
    Ok(())
}
