//! Majority vote over a sliding window of records, as N-BaIoT does to cut
//! isolated false alarms: a record is *alerting* when at least `votes` of the
//! last `window` records of its target were anomalous.
//!
//! The window is a bit mask (one `u64` per target), so the memory per target
//! is fixed whatever the traffic, and `window` is at most 64.

use crate::{Error, Result};

/// Window length and votes needed; default: 6 of the last 10 (a strict
/// majority, short enough for a flood to alert within its first dozen packets
/// to the victim, long enough that scattered false positives never fire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoteParams {
    window: u32,
    votes: u32,
}

impl Default for VoteParams {
    fn default() -> Self {
        VoteParams {
            window: 10,
            votes: 6,
        }
    }
}

impl VoteParams {
    /// At least `votes` anomalous among the last `window` records; `window`
    /// in 1..=64 and `votes` in 1..=window.
    pub fn new(window: u32, votes: u32) -> Result<Self> {
        if !(1..=64).contains(&window) {
            return Err(Error::Data(format!(
                "vote window should be in 1..=64 records, but is {window}"
            )));
        }
        if !(1..=window).contains(&votes) {
            return Err(Error::Data(format!(
                "votes should be in 1..={window} (the window), but are {votes}"
            )));
        }
        Ok(VoteParams { window, votes })
    }

    /// Records in the window.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// Anomalous records needed to alert.
    pub fn votes(&self) -> u32 {
        self.votes
    }

    fn mask(&self) -> u64 {
        u64::MAX >> (64 - self.window)
    }
}

/// The last records of one target: bit 0 is the newest, set when anomalous.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VoteWindow {
    bits: u64,
}

impl VoteWindow {
    /// Adds a record; returns whether the vote fires (at least `votes` of
    /// the last `window` records anomalous, this one included).
    pub fn push(&mut self, anomalous: bool, p: &VoteParams) -> bool {
        self.bits = ((self.bits << 1) | u64::from(anomalous)) & p.mask();
        self.anomalous() >= p.votes
    }

    /// Whether [`push`](Self::push)ing a record would make the vote fire,
    /// leaving the window as it is.
    pub fn fires_with(&self, anomalous: bool, p: &VoteParams) -> bool {
        let mut w = *self;
        w.push(anomalous, p)
    }

    /// Anomalous records in the window.
    pub fn anomalous(&self) -> u32 {
        self.bits.count_ones()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(p: VoteParams, flags: &str) -> String {
        let mut w = VoteWindow::default();
        flags
            .chars()
            .map(|c| if w.push(c == '1', &p) { 'A' } else { '.' })
            .collect()
    }

    #[test]
    fn isolated_anomalies_never_fire() {
        let p = VoteParams::default();
        let flags = "1000010000100001000010000".repeat(4);
        assert!(!run(p, &flags).contains('A'));
    }

    #[test]
    fn sustained_anomalies_fire_at_the_vote_and_stop_after() {
        let p = VoteParams::new(5, 3).unwrap();
        assert_eq!(run(p, "0011111100000"), "....AAAAAA...");
        // Without votes it's the flags themselves.
        let p = VoteParams::new(1, 1).unwrap();
        assert_eq!(run(p, "0110"), ".AA.");
    }

    #[test]
    fn full_width_window() {
        let p = VoteParams::new(64, 64).unwrap();
        let out = run(p, &"1".repeat(70));
        assert_eq!(out, format!("{}{}", ".".repeat(63), "A".repeat(7)));
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(VoteParams::new(0, 0).is_err());
        assert!(VoteParams::new(65, 3).is_err());
        assert!(VoteParams::new(10, 0).is_err());
        let e = VoteParams::new(10, 11).unwrap_err().to_string();
        assert!(e.contains("votes"), "{e}");
    }
}
