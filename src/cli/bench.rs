//! `floodwatch bench`: timings of the whole pipeline, printed as JSON.
//!
//! Generates (deterministically, in a temporary directory) a table of 40
//! numeric columns driven by 5 hidden factors plus noise, labelled `normal`,
//! then times `train` (8,000 rows, the default epochs and networks, through the library exactly as
//! the command does, bundle saved included) and `test` (scoring a large CSV,
//! with and without writing predictions).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Args as ClapArgs;
use floodwatch::run::batch::{self, Input, TestOptions, TrainOptions, NEIGHBOUR_ROWS};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Time training and scoring on generated data; print JSON.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Rows of the scoring file.
    #[arg(long, default_value_t = 1_000_000)]
    pub score_rows: usize,
    /// Repetitions of each timing (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Training rows the score's latent distance compares with (as `train`).
    #[arg(long, value_name = "N", default_value_t = NEIGHBOUR_ROWS)]
    pub neighbours: usize,
}

const COLS: usize = 40;

/// Writes `rows` rows of the 40-column table.
fn table(path: &Path, rows: usize, seed: u64) -> anyhow::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mix: Vec<[f32; 5]> = (0..COLS)
        .map(|_| std::array::from_fn(|_| rng.random_range(-1.0..1.0)))
        .collect();
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    let names: Vec<String> = (0..COLS).map(|j| format!("f{j}")).collect();
    writeln!(w, "{},label", names.join(","))?;
    let mut line = String::new();
    for _ in 0..rows {
        let z: [f32; 5] = std::array::from_fn(|_| rng.random_range(0.0..1.0));
        line.clear();
        for m in &mix {
            let v: f32 =
                m.iter().zip(&z).map(|(a, b)| a * b).sum::<f32>() + rng.random_range(0.0..0.05);
            line.push_str(&format!("{:.4},", v * 100.0));
        }
        line.push_str("normal\n");
        w.write_all(line.as_bytes())?;
    }
    w.flush()?;
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs the timings.
pub fn run(args: Args, _quiet: bool) -> anyhow::Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("floodwatch-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = timings(&args, &dir);
    // Best effort: a leftover temporary directory is harmless.
    let _ = std::fs::remove_dir_all(&dir);
    let json = result?;
    let text = serde_json::to_string_pretty(&json)?;
    writeln!(std::io::stdout().lock(), "{text}")?;
    Ok(ExitCode::SUCCESS)
}

fn timings(args: &Args, dir: &Path) -> anyhow::Result<serde_json::Value> {
    let train_csv = dir.join("train.csv");
    let score_csv = dir.join("score.csv");
    table(&train_csv, 10_000, 1)?;
    table(&score_csv, args.score_rows, 2)?;
    let model: PathBuf = dir.join("m.fw");
    let opts = TrainOptions {
        input: Input {
            data: vec![train_csv],
            ..Input::default()
        },
        neighbours: args.neighbours,
        ..TrainOptions::default()
    };
    let mut train_s = Vec::new();
    let mut bundle = None;
    for _ in 0..args.repeat.max(1) {
        let t = Instant::now();
        let trained = batch::train(&opts, &mut |_| {})?;
        trained.bundle.save(&model)?;
        train_s.push(t.elapsed().as_secs_f64());
        bundle = Some(trained.bundle);
    }
    let bundle = bundle.ok_or_else(|| anyhow::anyhow!("no training run"))?;
    let bytes = std::fs::metadata(&score_csv)?.len();
    let score = |out: Option<PathBuf>| -> anyhow::Result<f64> {
        let mut secs = Vec::new();
        for _ in 0..args.repeat.max(1) {
            let t = Instant::now();
            let opts = TestOptions {
                input: Input {
                    data: vec![score_csv.clone()],
                    ..Input::default()
                },
                out: out.clone(),
                ..TestOptions::default()
            };
            batch::test(&bundle, &opts, &mut |_| {})?;
            secs.push(t.elapsed().as_secs_f64());
        }
        Ok(median(secs))
    };
    let plain = score(None)?;
    let with_out = score(Some(dir.join("pred.csv")))?;
    let rows = args.score_rows as f64;
    Ok(serde_json::json!({
        "train": {
            "rows_sampled": 8000, "columns": COLS, "features": bundle.schema.width(),
            "epochs": bundle.meta.epochs, "networks": bundle.autoencoder.networks(),
            "neighbours": bundle.autoencoder.neighbours().map_or(0, |n| n.references()),
            "median_s": median(train_s.clone()), "runs_s": train_s,
        },
        "score": {
            "rows": args.score_rows, "bytes": bytes,
            "median_s": plain, "rows_per_s": rows / plain, "mb_per_s": bytes as f64 / plain / 1e6,
            "with_predictions_median_s": with_out, "with_predictions_rows_per_s": rows / with_out,
        },
        "threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_median() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert!(median(vec![]).is_nan());
        let d = std::env::temp_dir().join(format!("floodwatch-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("t.csv");
        table(&p, 3, 1).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines.iter().all(|l| l.split(',').count() == COLS + 1));
    }
}
