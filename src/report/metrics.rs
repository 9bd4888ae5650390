//! Binary detection metrics: ROC-AUC and PR-AUC over scores (ties handled as
//! scikit-learn does), TPR at a fixed FPR, and the confusion matrix of
//! thresholded predictions.

use serde::Serialize;

/// Points of the ROC curve, one per distinct score from high to low:
/// `(false positives, true positives)` counted at or above that score.
fn roc_steps(scores: &[f32], truth: &[bool]) -> Vec<(u64, u64)> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut steps = Vec::new();
    let (mut fp, mut tp) = (0u64, 0u64);
    for (k, &i) in order.iter().enumerate() {
        if truth[i] {
            tp += 1;
        } else {
            fp += 1;
        }
        let last_of_tie = order.get(k + 1).is_none_or(|&j| scores[j] != scores[i]);
        if last_of_tie {
            steps.push((fp, tp));
        }
    }
    steps
}

fn class_counts(truth: &[bool]) -> (u64, u64) {
    let pos = truth.iter().filter(|&&t| t).count() as u64;
    (pos, truth.len() as u64 - pos)
}

/// Area under the ROC curve; `None` when either class is absent.
pub fn roc_auc(scores: &[f32], truth: &[bool]) -> Option<f64> {
    let (pos, neg) = class_counts(truth);
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut area = 0.0;
    let mut prev = (0u64, 0u64);
    for (fp, tp) in roc_steps(scores, truth) {
        area += (fp - prev.0) as f64 * (tp + prev.1) as f64 / 2.0;
        prev = (fp, tp);
    }
    Some(area / (pos * neg) as f64)
}

/// Average precision (area under the precision-recall curve as a step sum);
/// `None` without positives.
pub fn pr_auc(scores: &[f32], truth: &[bool]) -> Option<f64> {
    let (pos, _) = class_counts(truth);
    if pos == 0 {
        return None;
    }
    let mut ap = 0.0;
    let mut prev_tp = 0;
    for (fp, tp) in roc_steps(scores, truth) {
        ap += (tp - prev_tp) as f64 / pos as f64 * tp as f64 / (tp + fp) as f64;
        prev_tp = tp;
    }
    Some(ap)
}

/// The highest true-positive rate among thresholds whose false-positive rate
/// is at most `max_fpr`; `None` when either class is absent.
pub fn tpr_at_fpr(scores: &[f32], truth: &[bool], max_fpr: f64) -> Option<f64> {
    let (pos, neg) = class_counts(truth);
    if pos == 0 || neg == 0 {
        return None;
    }
    let best = roc_steps(scores, truth)
        .into_iter()
        .filter(|&(fp, _)| fp as f64 / neg as f64 <= max_fpr)
        .map(|(_, tp)| tp)
        .max()
        .unwrap_or(0);
    Some(best as f64 / pos as f64)
}

/// The ROC curve as `(fpr, tpr)` points from (0, 0) to (1, 1).
pub fn roc_curve(scores: &[f32], truth: &[bool]) -> Vec<(f64, f64)> {
    let (pos, neg) = class_counts(truth);
    let (p, n) = (pos.max(1) as f64, neg.max(1) as f64);
    std::iter::once((0.0, 0.0))
        .chain(
            roc_steps(scores, truth)
                .into_iter()
                .map(|(fp, tp)| (fp as f64 / n, tp as f64 / p)),
        )
        .collect()
}

/// The precision-recall curve as `(recall, precision)` points.
pub fn pr_curve(scores: &[f32], truth: &[bool]) -> Vec<(f64, f64)> {
    let (pos, _) = class_counts(truth);
    roc_steps(scores, truth)
        .into_iter()
        .map(|(fp, tp)| (tp as f64 / pos.max(1) as f64, tp as f64 / (tp + fp) as f64))
        .collect()
}

/// Counts of a binary decision against the truth (positive = attack).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    /// Attacks flagged.
    pub tp: u64,
    /// Normal rows flagged.
    pub fp: u64,
    /// Normal rows passed.
    pub tn: u64,
    /// Attacks missed.
    #[serde(rename = "fn")]
    pub fn_: u64,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl Confusion {
    /// Counts `pred` against `truth`.
    pub fn from_predictions(pred: &[bool], truth: &[bool]) -> Self {
        let mut c = Confusion::default();
        for (&p, &t) in pred.iter().zip(truth) {
            c.add(p, t);
        }
        c
    }

    /// Counts one more decision.
    pub fn add(&mut self, pred: bool, truth: bool) {
        match (pred, truth) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, false) => self.tn += 1,
            (false, true) => self.fn_ += 1,
        }
    }

    /// tp / (tp + fp); 0 when nothing was flagged.
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// tp / (tp + fn); 0 without positives.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    /// Share of right decisions.
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn_)
    }

    /// fp / (fp + tn).
    pub fn fpr(&self) -> f64 {
        ratio(self.fp, self.fp + self.tn)
    }
}

/// The metrics of one detector on labelled data, as `report.json` holds them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BinaryMetrics {
    /// ROC-AUC of the scores (null with one class only).
    pub roc_auc: Option<f64>,
    /// Average precision of the scores (null without attacks).
    pub pr_auc: Option<f64>,
    /// Precision at the threshold.
    pub precision: f64,
    /// Recall (detection rate) at the threshold.
    pub recall: f64,
    /// F1 at the threshold.
    pub f1: f64,
    /// Accuracy at the threshold.
    pub accuracy: f64,
    /// Confusion matrix at the threshold.
    pub confusion: Confusion,
}

/// Metrics of `scores` and thresholded `predicted` against `truth`.
pub fn binary_metrics(scores: &[f32], predicted: &[bool], truth: &[bool]) -> BinaryMetrics {
    let c = Confusion::from_predictions(predicted, truth);
    BinaryMetrics {
        roc_auc: roc_auc(scores, truth),
        pr_auc: pr_auc(scores, truth),
        precision: c.precision(),
        recall: c.recall(),
        f1: c.f1(),
        accuracy: c.accuracy(),
        confusion: c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Hand-computed: positives at 0.9, 0.6, 0.4; negatives at 0.8, 0.6, 0.1.
    const S: [f32; 6] = [0.9, 0.8, 0.6, 0.6, 0.4, 0.1];
    const T: [bool; 6] = [true, false, true, false, true, false];

    #[test]
    fn roc_auc_counts_ties_as_half() {
        // Pairs (p, n) won: 0.9 beats 3; 0.6 beats 0.1, ties 0.6 (0.5); 0.4 beats 0.1.
        assert_eq!(roc_auc(&S, &T), Some((3.0 + 1.5 + 1.0) / 9.0));
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, false]), Some(0.5));
    }

    #[test]
    fn average_precision_by_hand() {
        // Steps: 0.9 (tp1 fp0), 0.8 (1,1), 0.6 (2,2), 0.4 (3,2), 0.1 (3,3).
        let want = (1.0 * 1.0 + 0.5 + 0.6) / 3.0;
        assert!((pr_auc(&S, &T).unwrap() - want).abs() < 1e-12);
    }

    #[test]
    fn tpr_at_fixed_fpr() {
        assert_eq!(tpr_at_fpr(&S, &T, 0.0), Some(1.0 / 3.0));
        assert_eq!(tpr_at_fpr(&S, &T, 0.34), Some(1.0 / 3.0));
        assert_eq!(tpr_at_fpr(&S, &T, 0.67), Some(1.0));
    }

    #[test]
    fn tpr_at_fpr_never_splits_a_tie() {
        // Positives 0.9, 0.7, 0.5; negatives 0.7, 0.3, 0.1. Steps (fp, tp):
        // (0, 1) at 0.9, (1, 2) at the 0.7 tie, (1, 3) at 0.5, (2, 3), (3, 3).
        let s = [0.9, 0.7, 0.7, 0.5, 0.3, 0.1];
        let t = [true, true, false, true, false, false];
        // The tie's positive cannot be had without its negative.
        assert_eq!(tpr_at_fpr(&s, &t, 0.0), Some(1.0 / 3.0));
        assert_eq!(tpr_at_fpr(&s, &t, 0.3), Some(1.0 / 3.0));
        assert_eq!(tpr_at_fpr(&s, &t, 0.34), Some(1.0));
        assert_eq!(tpr_at_fpr(&s, &t, 1.0), Some(1.0));
        assert_eq!(tpr_at_fpr(&s, &[false; 6], 0.5), None);
        // All scores tied: nothing below FPR 1.
        assert_eq!(
            tpr_at_fpr(&[0.5; 4], &[true, false, true, false], 0.99),
            Some(0.0)
        );
    }

    #[test]
    fn curves_span_the_unit_square() {
        let roc = roc_curve(&S, &T);
        assert_eq!(roc.first(), Some(&(0.0, 0.0)));
        assert_eq!(roc.last(), Some(&(1.0, 1.0)));
        assert_eq!(pr_curve(&S, &T).first(), Some(&(1.0 / 3.0, 1.0)));
    }

    #[test]
    fn confusion_and_rates() {
        let pred = [true, true, false, false, true, false];
        let m = binary_metrics(&S, &pred, &T);
        assert_eq!(
            m.confusion,
            Confusion {
                tp: 2,
                fp: 1,
                tn: 2,
                fn_: 1
            }
        );
        assert!((m.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.f1 - 2.0 / 3.0).abs() < 1e-12);
        let json = serde_json::to_string(&m.confusion).unwrap();
        assert_eq!(json, r#"{"tp":2,"fp":1,"tn":2,"fn":1}"#);
        assert_eq!(Confusion::default().precision(), 0.0);
    }
}
