//! How long `watch` learns before it detects: a number of records or a
//! span of capture time, split into a part learned from and a held-back
//! part that calibrates the threshold.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// Share of grace learned from; the rest is held back for calibration.
pub const LEARN_SHARE: f64 = 0.8;
/// Half-life (seconds) of the slowest damped window of the packet layouts.
pub const SLOWEST_HALF_LIFE: f64 = 100.0;

/// The grace period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Grace {
    /// The first N records.
    Records(u64),
    /// The first seconds of capture (or record) time.
    Seconds(f64),
}

impl Grace {
    /// Checks that the grace period can be split.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Grace::Records(n) if n < 10 => Err(Error::Data(format!(
                "grace should be at least 10 records, but is {n}"
            ))),
            Grace::Seconds(s) if !(s.is_finite() && s >= 1.0) => Err(Error::Data(format!(
                "grace should be at least 1 second, but is {s}"
            ))),
            _ => Ok(()),
        }
    }

    /// Whether the learning part is over after `n` records at time `t`,
    /// grace having started at `t0`.
    pub fn learned(&self, n: u64, t0: f64, t: f64) -> bool {
        match *self {
            Grace::Records(g) => n >= ((g as f64 * LEARN_SHARE).round() as u64).clamp(1, g - 1),
            Grace::Seconds(s) => t - t0 >= s * LEARN_SHARE,
        }
    }

    /// Whether grace is over after `n` records at time `t`.
    pub fn over(&self, n: u64, t0: f64, t: f64) -> bool {
        match *self {
            Grace::Records(g) => n >= g,
            Grace::Seconds(s) => t - t0 >= s,
        }
    }
}

impl fmt::Display for Grace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grace::Records(n) => write!(f, "{n} records"),
            Grace::Seconds(s) => write!(f, "{s} s"),
        }
    }
}

impl FromStr for Grace {
    type Err = Error;

    /// `5000` (records), or a duration: `90s`, `10m`, `1.5h`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::Data(format!(
                "grace '{s}' should be a number of records (5000) or a duration (90s, 10m, 1h)"
            ))
        };
        let s = s.trim();
        let g = if let Ok(n) = s.parse::<u64>() {
            Grace::Records(n)
        } else {
            let (num, unit) =
                s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(bad)?);
            let v: f64 = num.trim().parse().map_err(|_| bad())?;
            let scale = match unit {
                "s" | "sec" => 1.0,
                "m" | "min" => 60.0,
                "h" => 3600.0,
                _ => return Err(bad()),
            };
            Grace::Seconds(v * scale)
        };
        g.validate()?;
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_durations_parse() {
        assert_eq!("1500".parse::<Grace>().unwrap(), Grace::Records(1500));
        assert_eq!("90s".parse::<Grace>().unwrap(), Grace::Seconds(90.0));
        assert_eq!("10m".parse::<Grace>().unwrap(), Grace::Seconds(600.0));
        assert_eq!("1.5h".parse::<Grace>().unwrap(), Grace::Seconds(5400.0));
        for bad in ["", "m", "10d", "5", "0.5s", "-3m", "x"] {
            assert!(bad.parse::<Grace>().is_err(), "{bad}");
        }
    }

    #[test]
    fn grace_splits_into_learning_and_calibration() {
        let g = Grace::Records(100);
        assert!(!g.learned(79, 0.0, 0.0) && g.learned(80, 0.0, 0.0));
        assert!(!g.over(99, 0.0, 0.0) && g.over(100, 0.0, 0.0));
        let g = Grace::Seconds(100.0);
        assert!(!g.learned(1, 10.0, 89.0) && g.learned(1, 10.0, 90.0));
        assert!(g.over(1, 10.0, 110.0));
    }
}
