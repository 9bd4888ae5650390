//! `floodwatch eval`: every detector on the same data, metrics and pictures.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args as ClapArgs;
use floodwatch::report::html::HtmlPage;
use floodwatch::run::eval::{self, EvalOptions};

use floodwatch::report::plot::Format;

use super::plot::{write_file, Kind, Scene};
use super::train::TrainFlags;

/// Train the autoencoder, latent classifier, KitNET, Isolation Forest, LOF
/// and One-Class SVM on the same normal rows, score the same test rows and
/// write eval.json, eval.md, eval.html and the pictures into --out.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Training CSV files (normal rows train; attack rows, if any, train
    /// the latent classifier).
    #[arg(long, required = true, num_args = 1..)]
    pub train: Vec<PathBuf>,
    /// Test CSV files (labelled).
    #[arg(long, required = true, num_args = 1..)]
    pub test: Vec<PathBuf>,
    /// Output directory (created if needed).
    #[arg(long)]
    pub out: PathBuf,
    /// Also save the trained bundle here.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Test rows kept at most (a seeded sample beyond).
    #[arg(long = "max-rows", alias = "max-test-rows", default_value_t = 200_000)]
    pub max_test_rows: usize,
    /// Rows embedded by t-SNE at most (a seeded sample beyond).
    #[arg(long, default_value_t = 5000)]
    pub tsne_points: usize,
    /// Also write every picture as SVG.
    #[arg(long)]
    pub svg: bool,
    /// Run the whole evaluation with N seeds (--seed, --seed + 1, ...) and
    /// report each detector's ROC-AUC median and spread; the pictures and
    /// the other metrics are the first seed's (1: one run, no spread).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub seeds: u64,
    /// How to read the files and train (as `train`).
    #[command(flatten)]
    pub flags: TrainFlags,
}

/// Runs the evaluation and writes its files.
pub fn run(args: Args, quiet: bool) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let opts = EvalOptions {
        train: args.flags.options(&args.train)?,
        test: args.flags.input(&args.test)?,
        max_test_rows: args.max_test_rows,
    };
    let mut step = |step: &str| {
        if !quiet {
            eprintln!("[{:6.2} s] {step}", started.elapsed().as_secs_f64());
        }
    };
    let mut e = eval::evaluate(&opts, &mut step)?;
    let seed = opts.train.seed;
    let more: Vec<u64> = (1..args.seeds).map(|k| seed.wrapping_add(k)).collect();
    if !more.is_empty() {
        e.report.add_seeds(&opts, &more, &mut step)?;
    }
    for note in &e.report.notes {
        eprintln!("floodwatch: note: {note}");
    }
    let scene = Scene {
        bundle: &e.bundle,
        data: Some(&e.data),
        runs: &e.runs,
        tsne_points: args.tsne_points,
        seed: opts.train.seed,
        log_fpr: true,
    };
    let mut page = HtmlPage::new("floodwatch eval");
    page.paragraph(&e.report.verdict);
    for note in &e.report.notes {
        page.paragraph(&format!("Note: {note}"));
    }
    let (header, rows) = e.report.table(true);
    page.section("Metrics").table(&header, &rows)?;
    page.section("Pictures");
    // Every picture is drawn before any file is written: a failed run
    // leaves the folder as it was.
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for kind in Kind::ALL {
        if !quiet {
            eprintln!(
                "[{:6.2} s] picture {}",
                started.elapsed().as_secs_f64(),
                kind.describe().0
            );
        }
        let stem = kind.describe().0;
        let png = scene.render(kind, Format::Png)?;
        page.png(kind.describe().1, &png);
        if args.svg {
            let svg = scene.render(kind, Format::Svg)?;
            files.push((args.out.join(format!("{stem}.svg")), svg));
        }
        files.push((args.out.join(format!("{stem}.png")), png));
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.out.display()))?;
    for (path, bytes) in &files {
        write_file(path, bytes)?;
    }
    page.write(&args.out.join("eval.html"))?;
    if let Some(m) = &args.model {
        e.bundle.save(m)?;
    }
    // The summaries last: a run that failed leaves the previous ones.
    write_file(
        &args.out.join("eval.json"),
        &serde_json::to_vec_pretty(&e.report)?,
    )?;
    write_file(&args.out.join("eval.md"), e.report.to_markdown().as_bytes())?;
    print!("{}", e.report.summary());
    println!(
        "(every metric and attack class: {})",
        args.out.join("eval.md").display()
    );
    if !quiet {
        eprintln!(
            "wrote {} in {:.2} s",
            args.out.display(),
            started.elapsed().as_secs_f64()
        );
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
    fn flags_parse_with_the_train_flags() {
        let w = Wrap::try_parse_from([
            "e",
            "--train",
            "a.csv",
            "--test",
            "b.csv",
            "c.csv",
            "--out",
            "dir",
            "--normal-label",
            "BENIGN",
            "--drop",
            "id",
            "--svg",
        ])
        .unwrap();
        assert_eq!(w.args.test.len(), 2);
        assert!(w.args.svg);
        let o = w.args.flags.options(&w.args.train).unwrap();
        assert_eq!(o.normal_labels, ["BENIGN"]);
        assert_eq!(o.drop, ["id"]);
        assert!(Wrap::try_parse_from(["e", "--train", "a", "--out", "d"]).is_err());
    }
}
