//! Thresholds for a false-alarm budget per day, not per record.
//!
//! A per-record quantile from a few minutes of traffic cannot promise a low
//! rate of false *episodes* per day: scores of damped statistics are
//! correlated in time, so one unusual minute flags hundreds of records of
//! the same host, and the vote passes them all. What opens an episode is the
//! vote: with `V` of the last `W` records of a host needed, an episode opens
//! exactly when the `V`-th largest of the host's last `W` scores (its
//! *voted score*) exceeds the threshold. So the threshold is calibrated on
//! voted scores:
//!
//! 1. during the held-back part of grace, each scored record updates its
//!    host's last `W` scores and its voted score;
//! 2. the largest voted score of each host in each second is kept (one
//!    *host-second*): exceedances of one host within a second are one event,
//!    not hundreds;
//! 3. the tail of those maxima, in log space, is fitted with an exponential
//!    above the `k`-th largest (peaks over threshold, as in the SPOT detector
//!    of Siffer et al., KDD 2017, on log scores: a Pareto tail), which gives
//!    the rate of host-seconds above any level;
//! 4. the threshold is the level whose rate is the budget (`--false-alarms`,
//!    default one a day), extrapolated with the scale's upper bound
//!    ([`SCALE_ERRORS`] standard errors above the fit: a thin slice errs
//!    toward fewer false alarms, not more) from the fit's base and from the
//!    largest maximum (whichever is higher: a maximum far above the fitted
//!    tail says the tail is heavier than fitted), kept between [`MARGIN`] and [`MAX_FACTOR`] times
//!    the largest voted score seen: minutes of traffic cannot support a
//!    fit to one event a day on their own, so the extrapolation is bounded
//!    by what was measured on hours of benign traffic; with fewer than
//!    [`MIN_FIT_EVENTS`] host-seconds no tail is fitted and the threshold is
//!    that bound; never below [`MIN_THRESHOLD`].
//!
//! Memory is bounded: at most `max_hosts` hosts' windows and the [`TOP`]
//! largest maxima are kept.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;
use std::num::NonZeroUsize;

use lru::LruCache;
use serde::{Deserialize, Serialize};

use crate::detect::vote::VoteParams;
use crate::{Error, Result};

/// Largest host-second maxima kept for the tail fit.
pub const TOP: usize = 4096;
/// The threshold is at least the largest voted score seen times this.
pub const MARGIN: f64 = 1.25;
/// ... and at most this: a tail fitted on minutes of traffic is not trusted
/// further. Measured on six hours of `synth --profile day` traffic after a
/// 10-minute grace, benign scores reached 11 times (destination side) and 6
/// times (source side) the largest voted score of the held-back slice;
/// on another day's capture, its floods scored 32 to 500 times and its
/// scans over 500 times theirs.
pub const MAX_FACTOR: f64 = 16.0;
/// The least threshold: a record whose scaled features each miss their
/// reconstruction by 1 % of their learned range scores 1e-4. Below that a
/// score is noise, not evidence: on a capture where every record is alike
/// (a two-host industrial link), the largest voted score of grace was
/// 1e-6 and a record at 9e-7 opened a false episode.
pub const MIN_THRESHOLD: f64 = 1e-4;
/// Fewest host-seconds whose tail is fitted: fewer give a tail of under 30
/// maxima, whose scale (an exponent of the extrapolation) is uncertain by
/// a fifth or more. Below it the threshold is [`MAX_FACTOR`] times the
/// largest voted score. Measured: sparse flow records (a smart plug's
/// NetFlow, 151 host-seconds held back) fitted 1.6 times, and benign
/// records later reached 7.4 times.
pub const MIN_FIT_EVENTS: u64 = 300;
/// Standard errors of the tail's scale added before extrapolating. Hill's
/// estimator from `k` maxima is off by about `1/sqrt(k)` of itself, and the
/// extrapolation to a day multiplies the scale by 9 to 13 (the log of the
/// rate ratio), so at `k` = 30 one standard error moves the threshold by
/// 1.5 to 2 times. Measured on 45 sFlow exports (1 in 100, by pmacct) of
/// SYN floods spliced into 4 minutes of traffic, 24 s held back (about 310
/// host-seconds, `k` = 31): thresholds 0.013-0.11 from the fitted scale,
/// and 2 exports' benign hosts opened episodes; 0.020-0.12 with the bound,
/// and none did, nor with an 8 times larger budget. With thousands of
/// maxima (10 minutes of packets) the bound costs a few percent.
pub const SCALE_ERRORS: f64 = 2.0;
/// Fewest host-seconds a calibration accepts.
pub const MIN_EVENTS: u64 = 10;
/// Fewest records a calibration accepts.
pub const MIN_RECORDS: u64 = 100;

/// What a calibration found, kept in the model and printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The threshold.
    pub threshold: f64,
    /// False episodes per day the threshold was set for.
    pub budget_per_day: f64,
    /// Records scored in the held-back slice.
    pub records: u64,
    /// Of which above the threshold.
    pub records_above: u64,
    /// Host-seconds in the held-back slice.
    pub events: u64,
    /// Of which with a voted score above the threshold (would-be episodes).
    pub events_above: u64,
    /// Seconds of capture time the slice covered.
    pub seconds: f64,
    /// Largest voted score seen.
    pub max_voted: f64,
    /// Scale of the fitted exponential tail (log-score units).
    pub tail_scale: f64,
    /// The statistic drift is followed by, in the held-back slice (0 when
    /// unknown: the threshold is then not moved; see [`super::drift`]).
    #[serde(default)]
    pub reference: f64,
}

/// A host's last `W` scores.
#[derive(Debug, Clone, Copy)]
struct Recent {
    scores: [f32; 64],
    len: u8,
    next: u8,
}

impl Recent {
    fn push(&mut self, s: f32, window: usize) {
        self.scores[usize::from(self.next)] = s;
        self.next = ((usize::from(self.next) + 1) % window) as u8;
        self.len = (usize::from(self.len) + 1).min(window) as u8;
    }

    /// The `v`-th largest score, or 0 with fewer than `v` scores.
    fn voted(&self, v: usize) -> f32 {
        let n = usize::from(self.len);
        if n < v {
            return 0.0;
        }
        let mut s = self.scores;
        let s = &mut s[..n];
        s.sort_unstable_by(|a, b| b.total_cmp(a));
        s[v - 1]
    }
}

impl Calibration {
    /// Whether the threshold is [`MAX_FACTOR`] times the largest voted score
    /// because the slice was too thin to fit a tail to.
    pub fn unfitted(&self) -> bool {
        self.budget_per_day > 0.0 && !fits_tail(self.events)
    }
}

/// Collects voted scores of the held-back slice; see the [module docs](self).
#[derive(Debug)]
pub struct Calibrator {
    vote: VoteParams,
    recent: LruCache<IpAddr, Recent>,
    seconds: LruCache<IpAddr, (i64, f32)>,
    top: BinaryHeap<Reverse<Ordered>>,
    top_records: BinaryHeap<Reverse<Ordered>>,
    records: u64,
    events: u64,
    first_t: f64,
    last_t: f64,
}

/// An `f32` ordered by `total_cmp`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ordered(f32);

impl Eq for Ordered {}

impl PartialOrd for Ordered {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Ordered {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}

fn keep_top(heap: &mut BinaryHeap<Reverse<Ordered>>, v: f32) {
    if heap.len() < TOP {
        heap.push(Reverse(Ordered(v)));
    } else if heap.peek().is_some_and(|m| v > m.0 .0) {
        heap.pop();
        heap.push(Reverse(Ordered(v)));
    }
}

impl Calibrator {
    /// A calibrator for this vote, keeping at most `max_hosts` hosts.
    pub fn new(vote: VoteParams, max_hosts: usize) -> Self {
        let cap = NonZeroUsize::new(max_hosts.max(1)).unwrap_or(NonZeroUsize::MIN);
        Calibrator {
            vote,
            recent: LruCache::new(cap),
            seconds: LruCache::new(cap),
            top: BinaryHeap::new(),
            top_records: BinaryHeap::new(),
            records: 0,
            events: 0,
            first_t: f64::NAN,
            last_t: f64::NAN,
        }
    }

    /// Counts the score `s` of a record of `host` at time `t`.
    pub fn observe(&mut self, host: IpAddr, t: f64, s: f64) {
        let s = s as f32;
        self.records += 1;
        keep_top(&mut self.top_records, s);
        if self.first_t.is_nan() {
            self.first_t = t;
        }
        self.last_t = self.last_t.max(t);
        let w = self.vote.window() as usize;
        let recent = self.recent.get_or_insert_mut(host, || Recent {
            scores: [0.0; 64],
            len: 0,
            next: 0,
        });
        recent.push(s, w);
        let voted = recent.voted(self.vote.votes() as usize);
        let sec = t.floor() as i64;
        let slot = self
            .seconds
            .get_or_insert_mut(host, || (sec, f32::NEG_INFINITY));
        if slot.0 != sec {
            let done = slot.1;
            *slot = (sec, voted);
            self.event(done);
        } else {
            slot.1 = slot.1.max(voted);
        }
    }

    fn event(&mut self, max: f32) {
        if max.is_finite() {
            self.events += 1;
            keep_top(&mut self.top, max);
        }
    }

    /// Records observed so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The threshold for `per_day` false episodes a day. Errors when the
    /// slice is too small to support any rate.
    pub fn finish(mut self, per_day: f64) -> Result<Calibration> {
        let open: Vec<f32> = self.seconds.iter().map(|(_, v)| v.1).collect();
        for m in open {
            self.event(m);
        }
        if self.records < MIN_RECORDS || self.events < MIN_EVENTS {
            return Err(Error::Data(format!(
                "the held-back part of grace had {} records over {} host-seconds; at least \
                 {MIN_RECORDS} records and {MIN_EVENTS} host-seconds are needed to calibrate \
                 the threshold: give a longer --grace",
                self.records, self.events
            )));
        }
        let seconds = (self.last_t - self.first_t).max(1.0);
        let mut maxima: Vec<f64> = self.top.iter().map(|r| f64::from(r.0 .0)).collect();
        maxima.sort_by(|a, b| b.total_cmp(a));
        let max_voted = maxima[0];
        let (fitted, scale) = if fits_tail(self.events) {
            extrapolate(&maxima, self.events, seconds, per_day, SCALE_ERRORS)
        } else {
            (max_voted * MAX_FACTOR, 0.0)
        };
        let threshold = fitted
            .clamp(max_voted * MARGIN, max_voted * MAX_FACTOR)
            .max(MIN_THRESHOLD);
        let above = |h: &BinaryHeap<Reverse<Ordered>>| {
            h.iter().filter(|r| f64::from(r.0 .0) > threshold).count() as u64
        };
        Ok(Calibration {
            threshold,
            budget_per_day: per_day,
            records: self.records,
            records_above: above(&self.top_records),
            events: self.events,
            events_above: above(&self.top),
            seconds,
            max_voted,
            tail_scale: scale,
            reference: 0.0,
        })
    }
}

impl Calibrator {
    /// The `q` quantile of the held-back records' scores, as the threshold
    /// (a per-record rule: `--threshold quantile:Q`).
    pub fn finish_quantile(self, q: f64) -> Result<Calibration> {
        if !(q > 0.0 && q < 1.0) || self.records < MIN_RECORDS {
            return Err(Error::Data(format!(
                "a quantile threshold needs q in (0, 1) and at least {MIN_RECORDS} held-back \
                 records, but q is {q} over {} records: give a longer --grace",
                self.records
            )));
        }
        let above = ((1.0 - q) * self.records as f64).floor() as usize;
        let mut top: Vec<f64> = self.top_records.iter().map(|r| f64::from(r.0 .0)).collect();
        top.sort_by(|a, b| b.total_cmp(a));
        let threshold = *top.get(above).ok_or_else(|| {
            Error::Data(format!(
                "quantile {q} of {} records lies beyond the {TOP} largest scores kept: \
                 use --false-alarms",
                self.records
            ))
        })?;
        Ok(Calibration {
            threshold,
            budget_per_day: 0.0,
            records: self.records,
            records_above: above as u64,
            events: self.events,
            events_above: 0,
            seconds: (self.last_t - self.first_t).max(0.0),
            max_voted: 0.0,
            tail_scale: 0.0,
            reference: 0.0,
        })
    }
}

/// Whether a slice of `events` host-seconds is fitted a tail
/// ([`MIN_FIT_EVENTS`]).
fn fits_tail(events: u64) -> bool {
    events >= MIN_FIT_EVENTS
}

/// The level whose rate is `per_day` host-seconds a day, from the tail of
/// the descending `maxima` of `events` host-seconds over `seconds`, and the
/// tail's scale: host-seconds above the fit's base per day, then the level
/// of the budget; the same from the largest maximum (one in the slice), and
/// the higher of the two: a maximum far above the fitted tail says the
/// tail is heavier than fitted.
/// The scale is raised by `errors` standard errors first ([`SCALE_ERRORS`]).
fn extrapolate(maxima: &[f64], events: u64, seconds: f64, per_day: f64, errors: f64) -> (f64, f64) {
    let (level, scale) = tail(maxima, events);
    let k = tail_len(maxima.len(), events) as f64;
    let bound = scale * (1.0 + errors / k.sqrt());
    let to_budget = |from: f64, n: f64| {
        let rate = n / seconds * 86_400.0;
        (from.max(f64::MIN_POSITIVE).ln() + bound * (rate / per_day).max(1.0).ln()).exp()
    };
    (to_budget(level, k).max(to_budget(maxima[0], 1.0)), scale)
}

/// How many of the largest maxima the tail fit uses: a tenth of the events,
/// at least 10, at most what is kept.
fn tail_len(kept: usize, events: u64) -> usize {
    ((events / 10) as usize).clamp(10, kept.max(1)).min(kept)
}

/// The fit's base level (the smallest maximum in the tail) and the mean
/// excess of the log maxima above it: the scale of an exponential tail of
/// log scores (a Pareto tail of scores; Hill's estimator).
fn tail(desc: &[f64], events: u64) -> (f64, f64) {
    let k = tail_len(desc.len(), events);
    let floor = f64::MIN_POSITIVE;
    let level = desc[k - 1].max(floor);
    let excess: f64 = desc[..k]
        .iter()
        .map(|v| v.max(floor).ln() - level.ln())
        .sum::<f64>()
        / k as f64;
    (level, excess)
}

/// Parses `N/day`, `N/hour` or a plain number per day.
pub fn parse_budget(s: &str) -> std::result::Result<f64, String> {
    let (n, unit) = s.split_once('/').unwrap_or((s, "day"));
    let n: f64 = n
        .trim()
        .parse()
        .map_err(|_| format!("false-alarm budget '{s}' should be N/day or N/hour, e.g. 1/day"))?;
    let per_day = match unit.trim() {
        "day" | "d" => n,
        "hour" | "h" => n * 24.0,
        "week" | "w" => n / 7.0,
        _ => {
            return Err(format!(
                "false-alarm budget '{s}': unit should be day, hour or week"
            ))
        }
    };
    if per_day.is_finite() && per_day > 0.0 {
        Ok(per_day)
    } else {
        Err(format!("false-alarm budget '{s}' should be positive"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::net::Ipv4Addr;

    fn host(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
    }

    /// Scores of `hosts` hosts, 20 records a second each, for `secs`:
    /// log-normal noise.
    fn feed(c: &mut Calibrator, secs: u32, hosts: u8, rng: &mut ChaCha8Rng) {
        for i in 0..secs * 20 {
            for h in 0..hosts {
                let z: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
                c.observe(host(h), f64::from(i) / 20.0, (z * 0.3).exp() * 1e-3);
            }
        }
    }

    #[test]
    fn the_threshold_lies_above_everything_seen_and_tightens_with_the_budget() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut a = Calibrator::new(VoteParams::default(), 64);
        feed(&mut a, 120, 8, &mut rng);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut b = Calibrator::new(VoteParams::default(), 64);
        feed(&mut b, 120, 8, &mut rng);
        let day = a.finish(1.0).unwrap();
        let hour = b.finish(24.0 * 60.0).unwrap();
        assert_eq!(day.events, 8 * 120);
        assert_eq!(day.events_above, 0);
        assert!(day.threshold >= day.max_voted * MARGIN);
        assert!(day.threshold > hour.threshold, "{day:?} {hour:?}");
        // Single records may pass it; the vote keeps them from alerting.
        assert!(day.records_above < day.records / 50, "{day:?}");
    }

    #[test]
    fn a_slice_too_thin_for_a_tail_fit_gets_the_measured_bound() {
        let thin = |secs: u32, hosts: u8| {
            let mut rng = ChaCha8Rng::seed_from_u64(2);
            let mut c = Calibrator::new(VoteParams::default(), 64);
            feed(&mut c, secs, hosts, &mut rng);
            c.finish(1.0).unwrap()
        };
        let few = thin(60, 4);
        assert!(few.events < MIN_FIT_EVENTS, "{few:?}");
        assert_eq!(few.threshold, few.max_voted * MAX_FACTOR);
        assert!(few.unfitted());
        let many = thin(120, 8);
        assert!(many.events >= MIN_FIT_EVENTS, "{many:?}");
        assert!(many.threshold < many.max_voted * MAX_FACTOR, "{many:?}");
        assert!(!many.unfitted());
    }

    #[test]
    fn scores_of_alike_records_get_the_least_threshold() {
        let mut c = Calibrator::new(VoteParams::default(), 4);
        for i in 0..400 {
            c.observe(
                host(1),
                f64::from(i),
                1e-6 * (1.0 + f64::from(i % 7) / 10.0),
            );
        }
        let cal = c.finish(1.0).unwrap();
        assert!(cal.max_voted < 2e-6, "{cal:?}");
        assert_eq!(cal.threshold, MIN_THRESHOLD);
    }

    #[test]
    fn isolated_spikes_are_outvoted() {
        let mut c = Calibrator::new(VoteParams::default(), 4);
        for i in 0..2000 {
            let s = if i % 50 == 0 { 100.0 } else { 1.0 };
            c.observe(host(1), f64::from(i) * 0.1, s);
        }
        let cal = c.finish(1.0).unwrap();
        assert!(cal.max_voted < 2.0, "{cal:?}");
        assert!(cal.records_above > 0, "spikes are above, alone");
    }

    #[test]
    fn too_little_data_is_an_error_that_says_what_to_do() {
        let mut c = Calibrator::new(VoteParams::default(), 4);
        for i in 0..50 {
            c.observe(host(1), f64::from(i), 1.0);
        }
        let e = c.finish(1.0).unwrap_err().to_string();
        assert!(e.contains("--grace"), "{e}");
    }

    /// Thresholds extrapolated from `events` host-seconds over `seconds`
    /// whose log maxima are exponential (scale `s0`) above 1e-3, one per
    /// seed, each divided by the true level of 1 a day.
    fn against_truth(events: usize, seconds: f64, errors: f64) -> Vec<f64> {
        let s0 = 0.2;
        let truth = (1e-3f64.ln() + s0 * (events as f64 * 86_400.0 / seconds).ln()).exp();
        (0..200)
            .map(|seed| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let mut m: Vec<f64> = (0..events)
                    .map(|_| 1e-3 * (-s0 * (1.0 - rng.random::<f64>()).ln()).exp())
                    .collect();
                m.sort_by(|a, b| b.total_cmp(a));
                m.truncate(TOP);
                extrapolate(&m, events as u64, seconds, 1.0, errors).0 / truth
            })
            .collect()
    }

    #[test]
    fn a_thin_slice_errs_toward_fewer_false_alarms() {
        let below = |r: &[f64]| r.iter().filter(|&&r| r < 1.0).count();
        // 310 host-seconds in 24 s, a tail of 31 maxima.
        let fitted = against_truth(310, 24.0, 0.0);
        let bound = against_truth(310, 24.0, SCALE_ERRORS);
        assert!(below(&fitted) > 60, "{}", below(&fitted));
        assert!(below(&bound) < 30, "{}", below(&bound));
        // Thousands of maxima: the bound costs little.
        let mut long = against_truth(40_000, 600.0, SCALE_ERRORS);
        long.sort_by(f64::total_cmp);
        assert!(long[0] > 0.9 && long[100] < 1.5, "{long:?}");
    }

    #[test]
    fn budgets_parse() {
        assert_eq!(parse_budget("1/day").unwrap(), 1.0);
        assert_eq!(parse_budget("2/hour").unwrap(), 48.0);
        assert_eq!(parse_budget("3").unwrap(), 3.0);
        assert!(parse_budget("0/day").is_err());
        assert!(parse_budget("x/day").is_err());
        assert!(parse_budget("1/year").is_err());
    }
}
