//! The per-class classification report the original tool prints
//! (scikit-learn's layout): precision, recall, F1 and support per class,
//! accuracy, macro and support-weighted averages.

use std::fmt;

use serde::Serialize;

/// Scores of one class (or of an average).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScores {
    /// Class name, or `macro avg` / `weighted avg`.
    pub name: String,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
    /// Rows of this class in the truth.
    pub support: u64,
}

/// A multi-class report of predictions against the truth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationReport {
    /// One entry per class in the truth or the predictions, in the order of
    /// the class names.
    pub classes: Vec<ClassScores>,
    /// Share of right predictions.
    pub accuracy: f64,
    /// Unweighted mean over classes.
    pub macro_avg: ClassScores,
    /// Mean over classes weighted by support.
    pub weighted_avg: ClassScores,
}

impl ClassificationReport {
    /// Builds the report; `truth` and `predicted` index into `class_names`.
    pub fn new(class_names: &[String], truth: &[usize], predicted: &[usize]) -> Self {
        let mut tally = ClassTally::default();
        for (&t, &p) in truth.iter().zip(predicted) {
            tally.add(t, p);
        }
        Self::from_tally(class_names, &tally)
    }

    /// Builds the report from counts; ids beyond `class_names` are left out.
    pub fn from_tally(class_names: &[String], tally: &ClassTally) -> Self {
        let k = class_names.len();
        let pad =
            |v: &[u64]| -> Vec<u64> { (0..k).map(|c| v.get(c).copied().unwrap_or(0)).collect() };
        let (tp, pred_n, true_n) = (pad(&tally.tp), pad(&tally.pred_n), pad(&tally.true_n));
        let div = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        // As scikit-learn: the classes in the truth or the predictions.
        let classes: Vec<ClassScores> = (0..k)
            .filter(|&c| true_n[c] + pred_n[c] > 0)
            .map(|c| {
                let (p, r) = (div(tp[c], pred_n[c]), div(tp[c], true_n[c]));
                let f1 = if p + r == 0.0 {
                    0.0
                } else {
                    2.0 * p * r / (p + r)
                };
                ClassScores {
                    name: class_names[c].clone(),
                    precision: p,
                    recall: r,
                    f1,
                    support: true_n[c],
                }
            })
            .collect();
        let total: u64 = true_n.iter().sum();
        let avg = |name: &str, weight: &dyn Fn(&ClassScores) -> f64| {
            let w: f64 = classes
                .iter()
                .map(weight)
                .sum::<f64>()
                .max(f64::MIN_POSITIVE);
            let mean = |f: fn(&ClassScores) -> f64| {
                classes.iter().map(|c| weight(c) * f(c)).sum::<f64>() / w
            };
            ClassScores {
                name: name.into(),
                precision: mean(|c| c.precision),
                recall: mean(|c| c.recall),
                f1: mean(|c| c.f1),
                support: total,
            }
        };
        ClassificationReport {
            macro_avg: avg("macro avg", &|_| 1.0),
            weighted_avg: avg("weighted avg", &|c| c.support as f64),
            accuracy: div(tp.iter().sum(), total),
            classes,
        }
    }
}

/// Per-class counts of (truth, prediction) pairs: a classification report's
/// input in memory that grows with the classes, not the rows.
#[derive(Debug, Clone, Default)]
pub struct ClassTally {
    tp: Vec<u64>,
    pred_n: Vec<u64>,
    true_n: Vec<u64>,
}

impl ClassTally {
    /// Counts one row of class `truth` predicted as `predicted`.
    pub fn add(&mut self, truth: usize, predicted: usize) {
        let k = truth.max(predicted) + 1;
        for v in [&mut self.tp, &mut self.pred_n, &mut self.true_n] {
            if v.len() < k {
                v.resize(k, 0);
            }
        }
        self.true_n[truth] += 1;
        self.pred_n[predicted] += 1;
        self.tp[truth] += u64::from(truth == predicted);
    }
}

impl fmt::Display for ClassificationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .classes
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0)
            .max("weighted avg".len());
        let row = |f: &mut fmt::Formatter<'_>, c: &ClassScores| {
            writeln!(
                f,
                "{:>width$} {:>9.4} {:>9.4} {:>9.4} {:>9}",
                c.name, c.precision, c.recall, c.f1, c.support
            )
        };
        writeln!(
            f,
            "{:>width$} {:>9} {:>9} {:>9} {:>9}",
            "", "precision", "recall", "f1-score", "support"
        )?;
        writeln!(f)?;
        for c in &self.classes {
            row(f, c)?;
        }
        writeln!(f)?;
        let support = self.macro_avg.support;
        writeln!(
            f,
            "{:>width$} {:>9} {:>9} {:>9.4} {:>9}",
            "accuracy", "", "", self.accuracy, support
        )?;
        row(f, &self.macro_avg)?;
        row(f, &self.weighted_avg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hand_counts() {
        let names: Vec<String> = ["normal", "syn"].iter().map(|s| s.to_string()).collect();
        // truth: 3 normal, 2 syn; one normal predicted syn.
        let r = ClassificationReport::new(&names, &[0, 0, 0, 1, 1], &[0, 0, 1, 1, 1]);
        assert_eq!(r.classes[0].precision, 1.0);
        assert!((r.classes[0].recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.classes[1].precision - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(r.classes[1].support, 2);
        assert!((r.accuracy - 0.8).abs() < 1e-12);
        let w = (3.0 * 0.8 + 2.0 * 0.8) / 5.0;
        assert!((r.weighted_avg.f1 - w).abs() < 1e-12);
        let text = r.to_string();
        assert!(
            text.contains("precision") && text.contains("weighted avg") && text.contains("syn")
        );
    }

    #[test]
    fn classes_neither_true_nor_predicted_are_left_out() {
        let names: Vec<String> = ["normal", "syn", "land", "udp"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // land never occurs; udp is only ever predicted.
        let r = ClassificationReport::new(&names, &[0, 0, 1, 1], &[0, 3, 1, 1]);
        let shown: Vec<&str> = r.classes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(shown, ["normal", "syn", "udp"]);
        assert!(!r.to_string().contains("land"));
        // The macro average is over the three shown: f1 (2/3 + 1 + 0) / 3.
        assert!((r.macro_avg.f1 - (2.0 / 3.0 + 1.0) / 3.0).abs() < 1e-12);
    }
}
