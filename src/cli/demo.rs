//! `floodwatch demo`: the whole workflow on built-in data, in seconds.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args as ClapArgs;
use floodwatch::ingest::synth::{SynthParams, IDENTIFIERS};

/// Synthesise IoT traffic with Mirai floods, train on one part, test on
/// another, print the report.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Keep the files (train.csv, test.csv, model.fw, predictions.csv,
    /// report.json) in this directory [default: a temporary one, removed].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Training rows (normal and attack).
    #[arg(long, default_value_t = 20_000)]
    pub rows: usize,
}

/// Removes the temporary directory on every way out.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover temporary directory is harmless.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs synth, train and test.
pub fn run(args: Args, quiet: bool) -> anyhow::Result<ExitCode> {
    let (dir, _guard) = match &args.dir {
        Some(d) => (d.clone(), None),
        None => {
            let d = std::env::temp_dir().join(format!("floodwatch-demo-{}", std::process::id()));
            (d.clone(), Some(TempDir(d)))
        }
    };
    std::fs::create_dir_all(&dir)?;
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
            epochs: 10,
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
    let keep = args.dir.is_some();
    let test = super::test::Args {
        data: vec![test_csv],
        model,
        columns: None,
        out: keep.then(|| dir.join("predictions.csv")),
        report: keep.then(|| dir.join("report.json")),
        skip_bad_rows: false,
        fail_on_anomaly: false,
        batch_rows: 4096,
        captures: Default::default(),
        explain: None,
        normal_label: vec!["normal".into()],
    };
    super::test::run(test, quiet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_directory_is_removed() {
        let d = std::env::temp_dir().join(format!("floodwatch-demo-test-{}", std::process::id()));
        std::fs::create_dir_all(d.join("sub")).unwrap();
        drop(TempDir(d.clone()));
        assert!(!d.exists());
    }
}
