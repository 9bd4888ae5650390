//! `floodwatch threshold`: what each threshold rule does on validation data,
//! and writing the chosen one into the bundle.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args as ClapArgs;
use floodwatch::model::bundle::Bundle;
use floodwatch::model::threshold::ThresholdRule;
use floodwatch::run::eval::{self, RuleOutcome};

use super::plot::ReadFlags;

/// Show the false-positive rate (and, with labels, the detection rate) each
/// threshold rule gives on validation data; `--write RULE` recalibrates the
/// bundle on the normal rows of that data.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The model bundle.
    #[arg(long)]
    pub model: PathBuf,
    /// Validation CSV files, labelled or not (unlabelled rows count as normal).
    #[arg(long, required = true, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// Recalibrate with this rule (fpr:F, quantile:Q, meanstd:K or
    /// lognormal:P) and save the model to --out (or, with --in-place, over --model).
    #[arg(long, value_name = "RULE")]
    pub write: Option<ThresholdRule>,
    /// Where --write saves the recalibrated model.
    #[arg(
        long,
        value_name = "MODEL",
        requires = "write",
        conflicts_with = "in_place"
    )]
    pub out: Option<PathBuf>,
    /// With --write, rewrite --model itself.
    #[arg(long, requires = "write")]
    pub in_place: bool,
    /// Print the table as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub read: ReadFlags,
}

/// Prints the table; with `--write`, saves the new threshold.
pub fn run(args: Args, quiet: bool) -> anyhow::Result<ExitCode> {
    let target = match (&args.write, &args.out, args.in_place) {
        (Some(_), Some(out), _) => Some(out.clone()),
        (Some(_), None, true) => Some(args.model.clone()),
        (Some(_), None, false) => anyhow::bail!(
            "--write saves a new model: give --out NEW.fw (or --in-place to rewrite {})",
            args.model.display()
        ),
        (None, ..) => None,
    };
    let mut bundle = Bundle::load(&args.model)?;
    let data = args.read.load(&bundle, &args.data)?;
    let scores = eval::autoencoder_scores(&bundle, &data.x);
    let outcomes = eval::rule_outcomes(bundle.threshold, &scores, &data.attack)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &outcomes)?;
        writeln!(out)?;
    } else {
        let normal = data.attack.iter().filter(|&&a| !a).count();
        writeln!(
            out,
            "{} rows ({} normal, {} attack); current rule {}",
            data.x.rows(),
            normal,
            data.x.rows() - normal,
            bundle.threshold_rule
        )?;
        print_table(&outcomes, &mut out)?;
    }
    if let (Some(rule), Some(target)) = (args.write, target) {
        let normal: Vec<f32> = data.normal_rows().into_iter().map(|i| scores[i]).collect();
        let t = bundle.set_threshold(rule, &normal)?;
        bundle.save(&target)?;
        if !quiet {
            eprintln!(
                "wrote threshold {t:.6} ({rule}, from {} normal rows) into {}",
                normal.len(),
                target.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The outcomes as an aligned text table.
pub fn print_table(outcomes: &[RuleOutcome], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<18} {:>14} {:>10} {:>15}",
        "rule", "threshold", "FPR", "detection rate"
    )?;
    for o in outcomes {
        let dr = o.detection_rate.map_or("-".into(), |d| format!("{d:.4}"));
        writeln!(
            out,
            "{:<18} {:>14.6} {:>10.4} {:>15}",
            o.rule, o.threshold, o.fpr, dr
        )?;
    }
    Ok(())
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
    fn flags_and_table() {
        let w = Wrap::try_parse_from([
            "t",
            "--model",
            "m",
            "--data",
            "v.csv",
            "--write",
            "meanstd:3",
            "--out",
            "m2",
        ])
        .unwrap();
        assert_eq!(w.args.write, Some(ThresholdRule::MeanStd(3.0)));
        assert!(
            Wrap::try_parse_from(["t", "--model", "m", "--data", "v", "--write", "x:1"]).is_err()
        );
        // No t-SNE here, so no --tsne-points; --out only with --write.
        assert!(
            Wrap::try_parse_from(["t", "--model", "m", "--data", "v", "--tsne-points", "9"])
                .is_err()
        );
        assert!(Wrap::try_parse_from(["t", "--model", "m", "--data", "v", "--out", "n"]).is_err());
        let mut text = Vec::new();
        let o = RuleOutcome {
            rule: "fpr:0.01".into(),
            threshold: 0.5,
            fpr: 0.01,
            detection_rate: None,
        };
        print_table(&[o], &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.lines().nth(1).unwrap().starts_with("fpr:0.01"),
            "{text}"
        );
        assert!(text.trim_end().ends_with('-'), "{text}");
    }
}
