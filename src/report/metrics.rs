//! Binary detection metrics: ROC-AUC and PR-AUC over scores (ties handled as
//! scikit-learn does), TPR at a fixed FPR, and the confusion matrix of
//! thresholded predictions; [`ScoreHistogram`] gives them in fixed memory
//! for inputs of any length, with a stated bound on the ROC-AUC's error.

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
    /// From a [`ScoreHistogram`]: the most `roc_auc` can differ from the
    /// exact value (absent when exact).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roc_auc_max_error: Option<f64>,
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
    BinaryMetrics::new(roc_auc(scores, truth), pr_auc(scores, truth), None, c)
}

impl BinaryMetrics {
    /// The areas, and the rates of the confusion matrix `c`.
    fn new(
        roc_auc: Option<f64>,
        pr_auc: Option<f64>,
        max_error: Option<f64>,
        c: Confusion,
    ) -> Self {
        BinaryMetrics {
            roc_auc,
            pr_auc,
            roc_auc_max_error: max_error,
            precision: c.precision(),
            recall: c.recall(),
            f1: c.f1(),
            accuracy: c.accuracy(),
            confusion: c,
        }
    }
}

/// Bits of a score that pick its [`ScoreHistogram`] bin: sign, exponent
/// and 15 mantissa bits, so a bin spans 0.003 % of its scores' magnitude.
const BIN_BITS: u32 = 24;

/// The bin of `s`: order-preserving over all floats (`total_cmp`'s order).
fn bin(s: f32) -> usize {
    let b = s.to_bits();
    let key = if b >> 31 == 1 { !b } else { b | 1 << 31 };
    (key >> (32 - BIN_BITS)) as usize
}

/// Scores of normal and attack rows counted in 2^24 bins, with the confusion
/// matrix of the flags: the metrics of [`binary_metrics`] in fixed memory
/// and without sorting. The counts are zeroed pages the system maps on first
/// touch, so what is resident follows the range of the scores seen (a few
/// MB), not the 256 MiB reserved, and never the row count.
///
/// Rows in one bin count as tied, so the ROC-AUC can differ from the exact
/// one only through pairs of a normal and an attack row in the same bin:
/// by at most half their share of all pairs,
/// [`roc_auc_max_error`](Self::roc_auc_max_error). The average precision
/// is that of scores rounded to their bin.
#[derive(Debug, Clone, Default)]
pub struct ScoreHistogram {
    normal: Vec<u64>,
    attack: Vec<u64>,
    /// The lowest and highest bins used: the only ones read back.
    used: Option<(usize, usize)>,
    confusion: Confusion,
}

impl ScoreHistogram {
    /// Counts one row: its score, whether it was flagged, whether it is an
    /// attack.
    pub fn add(&mut self, score: f32, flagged: bool, attack: bool) {
        self.add_rows([(score, flagged, attack)]);
    }

    /// [`ScoreHistogram::add`] for each `(score, flagged, attack)` row, in a
    /// loop small enough that the CPU fetches the bins of many rows from
    /// memory at once (a count is rarely in cache: the cost of counting).
    pub fn add_rows(&mut self, rows: impl IntoIterator<Item = (f32, bool, bool)>) {
        if self.normal.is_empty() {
            self.normal = vec![0; 1 << BIN_BITS];
            self.attack = vec![0; 1 << BIN_BITS];
        }
        let (mut lo, mut hi) = self.used.unwrap_or((usize::MAX, 0));
        for (score, flagged, attack) in rows {
            let counts = if attack {
                &mut self.attack
            } else {
                &mut self.normal
            };
            let b = bin(score);
            counts[b] += 1;
            (lo, hi) = (lo.min(b), hi.max(b));
            self.confusion.add(flagged, attack);
        }
        self.used = (lo <= hi).then_some((lo, hi));
    }

    fn totals(&self) -> (u64, u64) {
        let c = &self.confusion;
        (c.tp + c.fn_, c.fp + c.tn)
    }

    /// `(normal, attack)` counts of the non-empty bins, highest scores first.
    fn bins(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let (lo, hi) = self.used.unwrap_or((1, 0));
        let range = lo..hi + 1;
        (self.normal[range.clone()].iter())
            .zip(&self.attack[range])
            .rev()
            .map(|(&n, &a)| (n, a))
            .filter(|&(n, a)| n + a > 0)
    }

    /// ROC-AUC, ties within a bin counted as half; `None` when either class
    /// is absent.
    pub fn roc_auc(&self) -> Option<f64> {
        let (pos, neg) = self.totals();
        if pos == 0 || neg == 0 {
            return None;
        }
        let mut area = 0.0;
        let mut normals_above = 0u64;
        for (n, a) in self.bins() {
            // Each attack here beats the normals below and ties these.
            area += a as f64 * ((neg - normals_above - n) as f64 + n as f64 / 2.0);
            normals_above += n;
        }
        Some(area / (pos as f64 * neg as f64))
    }

    /// The most [`roc_auc`](Self::roc_auc) can differ from the exact value:
    /// half the share of (attack, normal) pairs that share a bin.
    pub fn roc_auc_max_error(&self) -> Option<f64> {
        let (pos, neg) = self.totals();
        if pos == 0 || neg == 0 {
            return None;
        }
        let shared: f64 = self.bins().map(|(n, a)| n as f64 * a as f64).sum();
        Some(shared / 2.0 / (pos as f64 * neg as f64))
    }

    /// Average precision over the bins; `None` without attacks.
    pub fn pr_auc(&self) -> Option<f64> {
        let (pos, _) = self.totals();
        if pos == 0 {
            return None;
        }
        let (mut ap, mut tp, mut fp) = (0.0, 0u64, 0u64);
        for (n, a) in self.bins() {
            tp += a;
            fp += n;
            ap += a as f64 / pos as f64 * tp as f64 / (tp + fp) as f64;
        }
        Some(ap)
    }

    /// The metrics, as [`binary_metrics`] gives them.
    pub fn metrics(&self) -> BinaryMetrics {
        BinaryMetrics::new(
            self.roc_auc(),
            self.pr_auc(),
            self.roc_auc_max_error(),
            self.confusion,
        )
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

    #[test]
    fn bins_keep_the_order_of_scores() {
        let s = [
            f32::NEG_INFINITY,
            -3.0,
            -0.5,
            -0.0,
            0.0,
            1e-30,
            0.5,
            0.502,
            7.0,
            f32::INFINITY,
        ];
        for w in s.windows(2) {
            assert!(bin(w[0]) <= bin(w[1]), "{w:?}");
        }
        assert!(bin(0.5) < bin(0.50002), "0.004 % apart: other bins");
    }

    #[test]
    fn histogram_metrics_match_the_exact_ones_within_the_bound() {
        // The hand-computed case: distinct scores stay exact.
        let mut h = ScoreHistogram::default();
        for (&s, &t) in S.iter().zip(&T) {
            h.add(s, s > 0.5, t);
        }
        let pred: Vec<bool> = S.iter().map(|&s| s > 0.5).collect();
        let exact = binary_metrics(&S, &pred, &T);
        let m = h.metrics();
        assert_eq!(m.roc_auc, exact.roc_auc);
        assert!((m.pr_auc.unwrap() - exact.pr_auc.unwrap()).abs() < 1e-12);
        assert_eq!(m.confusion, exact.confusion);
        // Overlapping classes over many close scores.
        let (mut scores, mut truth) = (Vec::new(), Vec::new());
        let mut h = ScoreHistogram::default();
        let mut state = 7u64;
        for i in 0..200_000u32 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (state >> 40) as f32 / (1u64 << 24) as f32;
            let attack = i % 5 == 0;
            let s = if attack { 0.01 + u * 0.02 } else { u * 0.02 };
            scores.push(s);
            truth.push(attack);
            h.add(s, s > 0.015, attack);
        }
        let exact = roc_auc(&scores, &truth).unwrap();
        let (auc, bound) = (h.roc_auc().unwrap(), h.roc_auc_max_error().unwrap());
        assert!((auc - exact).abs() <= bound, "{auc} {exact} {bound}");
        assert!(bound < 1e-5, "{bound}");
        let ap = pr_auc(&scores, &truth).unwrap();
        assert!((h.pr_auc().unwrap() - ap).abs() < 1e-3);
        assert_eq!(ScoreHistogram::default().roc_auc(), None);
    }
}
