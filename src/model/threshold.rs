//! Rules that turn the reconstruction errors of held-back normal rows into a
//! decision threshold. A score above the threshold is an anomaly.
//!
//! - `fpr:F` (default `fpr:0.01`): the (1 - F) quantile, so that about a
//!   fraction F of normal traffic is flagged;
//! - `quantile:Q`: the Q quantile (linear interpolation, as numpy's default);
//! - `meanstd:K`: mean + K standard deviations;
//! - `lognormal:P`: fits a log-normal to the scores and takes the point whose
//!   tail probability is P; smoother than an empirical quantile when few
//!   normal rows are held back.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A threshold calibration rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ThresholdRule {
    /// Empirical quantile in (0, 1).
    Quantile(f64),
    /// Mean plus this many standard deviations.
    MeanStd(f64),
    /// Tail probability of a fitted log-normal, in (0, 1).
    LogNormal(f64),
    /// Target false-positive rate on normal rows, in (0, 1).
    TargetFpr(f64),
}

impl Default for ThresholdRule {
    fn default() -> Self {
        ThresholdRule::TargetFpr(0.01)
    }
}

impl ThresholdRule {
    /// The threshold for these scores of normal rows.
    pub fn calibrate(&self, normal_scores: &[f32]) -> Result<f32> {
        self.check()?;
        let mut s: Vec<f64> = normal_scores.iter().map(|&v| v as f64).collect();
        if s.is_empty() || s.iter().any(|v| !v.is_finite()) {
            return Err(Error::Model(
                "threshold calibration needs finite scores of at least one normal row".into(),
            ));
        }
        let t = match *self {
            ThresholdRule::Quantile(q) => quantile(&mut s, q),
            ThresholdRule::TargetFpr(f) => quantile(&mut s, 1.0 - f),
            ThresholdRule::MeanStd(k) => {
                let (mean, sd) = mean_sd(&s);
                mean + k * sd
            }
            ThresholdRule::LogNormal(p) => {
                let logs: Vec<f64> = s.iter().map(|v| v.max(f64::MIN_POSITIVE).ln()).collect();
                let (mu, sigma) = mean_sd(&logs);
                (mu + sigma * inverse_normal_cdf(1.0 - p)).exp()
            }
        };
        Ok(t as f32)
    }

    fn check(&self) -> Result<()> {
        let (name, v, ok) = match *self {
            ThresholdRule::Quantile(q) => ("quantile", q, q > 0.0 && q < 1.0),
            ThresholdRule::TargetFpr(f) => ("fpr", f, f > 0.0 && f < 1.0),
            ThresholdRule::LogNormal(p) => ("lognormal", p, p > 0.0 && p < 1.0),
            ThresholdRule::MeanStd(k) => ("meanstd", k, k.is_finite()),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Model(format!(
                "{name} should be in its valid range, but is {v}"
            )))
        }
    }
}

impl fmt::Display for ThresholdRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThresholdRule::Quantile(v) => write!(f, "quantile:{v}"),
            ThresholdRule::MeanStd(v) => write!(f, "meanstd:{v}"),
            ThresholdRule::LogNormal(v) => write!(f, "lognormal:{v}"),
            ThresholdRule::TargetFpr(v) => write!(f, "fpr:{v}"),
        }
    }
}

impl FromStr for ThresholdRule {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let usage = || {
            Error::Model(format!(
                "threshold rule '{s}' should be fpr:F, quantile:Q, meanstd:K or lognormal:P"
            ))
        };
        let (name, value) = s.split_once(':').ok_or_else(usage)?;
        let v: f64 = value.trim().parse().map_err(|_| usage())?;
        let rule = match name.trim() {
            "fpr" => ThresholdRule::TargetFpr(v),
            "quantile" => ThresholdRule::Quantile(v),
            "meanstd" => ThresholdRule::MeanStd(v),
            "lognormal" => ThresholdRule::LogNormal(v),
            _ => return Err(usage()),
        };
        rule.check()?;
        Ok(rule)
    }
}

fn quantile(s: &mut [f64], q: f64) -> f64 {
    s.sort_by(f64::total_cmp);
    let pos = q * (s.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

fn mean_sd(s: &[f64]) -> (f64, f64) {
    let n = s.len() as f64;
    let mean = s.iter().sum::<f64>() / n;
    let var = s.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Inverse of the standard normal CDF (Acklam's rational approximation,
/// relative error below 1.2e-9).
fn inverse_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let poly = |c: &[f64], x: f64| c.iter().fold(0.0, |acc, &k| acc * x + k);
    let tail = |q: f64| {
        let t = (-2.0 * q.ln()).sqrt();
        poly(&C, t) / (poly(&D, t) * t + 1.0)
    };
    if p < 0.02425 {
        tail(p)
    } else if p > 1.0 - 0.02425 {
        -tail(1.0 - p)
    } else {
        let q = p - 0.5;
        let r = q * q;
        poly(&A, r) * q / (poly(&B, r) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_rules() {
        let s: Vec<f32> = (0..=100).map(|v| v as f32).collect();
        assert_eq!(ThresholdRule::Quantile(0.5).calibrate(&s).unwrap(), 50.0);
        assert_eq!(ThresholdRule::TargetFpr(0.01).calibrate(&s).unwrap(), 99.0);
        let two = [1.0, 2.0];
        assert_eq!(ThresholdRule::Quantile(0.25).calibrate(&two).unwrap(), 1.25);
    }

    #[test]
    fn mean_std_and_lognormal() {
        let s = [1.0, 3.0];
        assert_eq!(ThresholdRule::MeanStd(2.0).calibrate(&s).unwrap(), 4.0);
        // ln scores are 0 and 2: mu 1, sigma 1; z(0.975) = 1.95996.
        let ln = [1.0f32, 2.0f32.exp()];
        let t = ThresholdRule::LogNormal(0.025).calibrate(&ln).unwrap();
        assert!((t - 2.95996f32.exp()).abs() < 1e-3, "{t}");
        assert!((inverse_normal_cdf(0.5)).abs() < 1e-9);
        assert!((inverse_normal_cdf(0.001) + 3.090232).abs() < 1e-5);
    }

    #[test]
    fn parse_and_validate() {
        assert_eq!(
            "fpr:0.05".parse::<ThresholdRule>().unwrap(),
            ThresholdRule::TargetFpr(0.05)
        );
        assert_eq!(
            "meanstd:3".parse::<ThresholdRule>().unwrap(),
            ThresholdRule::MeanStd(3.0)
        );
        for bad in ["fpr:1.5", "quantile", "median:0.5", "lognormal:x"] {
            assert!(bad.parse::<ThresholdRule>().is_err(), "{bad}");
        }
        assert!(ThresholdRule::default().calibrate(&[]).is_err());
        assert!(ThresholdRule::default().calibrate(&[f32::NAN]).is_err());
        let rule = ThresholdRule::LogNormal(0.001);
        assert_eq!(rule.to_string().parse::<ThresholdRule>().unwrap(), rule);
    }
}
