//! Following slow benign drift after grace: the threshold keeps its height
//! above the scores of normal traffic as that traffic changes.
//!
//! Networks change over days (more hosts, a new service, heavier use), and
//! the scores of their benign traffic with them. The engine therefore
//! keeps measuring one statistic of *normal* traffic: the [`QUANTILE`] of
//! the hosts' per-second maximum scores (one value per host and second, so
//! a busy host weighs no more than a quiet one). The held-back slice of
//! grace gives its reference; every `period` of capture time the period's
//! value is compared with it, and the threshold follows their ratio.
//!
//! Only records judged normal teach it, so an attacker cannot ramp a flood
//! into it:
//! - a record above the threshold is never counted;
//! - a host with an open episode (on this side) counts nothing;
//! - the threshold moves at most [`STEP`] per period and stays within
//!   [`BOUND`] of its calibrated value, so traffic that ramps up slowly
//!   enough never to be flagged can raise it by at most 10 % per period
//!   and by at most a factor of two, whatever its duration;
//! - a period with fewer than [`MIN_HOST_SECONDS`] values changes nothing;
//! - it never goes below [`MIN_THRESHOLD`].
//!
//! One record in [`SAMPLE`] is looked at (the same in grace and after), so
//! following costs one table lookup per eight records; memory is the host
//! table (bounded) and a fixed histogram.

use std::net::IpAddr;
use std::num::NonZeroUsize;

use lru::LruCache;

use super::calibrate::MIN_THRESHOLD;

/// The quantile of host-second maxima followed.
pub const QUANTILE: f64 = 0.9;
/// Largest move of the threshold per period (a factor).
pub const STEP: f64 = 1.1;
/// The threshold stays within this factor of its calibrated value.
pub const BOUND: f64 = 2.0;
/// Fewest host-seconds a period needs to move the threshold.
pub const MIN_HOST_SECONDS: u64 = 50;
/// One record in this many is looked at.
pub const SAMPLE: u64 = 8;
/// Hosts followed at once.
const HOSTS: usize = 16_384;

/// Counts of positive `f32` values by their exponent and top five mantissa
/// bits: bins 2.2 % wide over the whole range, a fixed 32 KB.
struct LogHistogram {
    bins: Vec<u32>,
    total: u64,
}

impl LogHistogram {
    const SHIFT: u32 = 18;

    fn new() -> Self {
        LogHistogram {
            bins: vec![0; 1 << (31 - Self::SHIFT)],
            total: 0,
        }
    }

    fn add(&mut self, v: f32) {
        let i = if v > 0.0 && v.is_finite() {
            (v.to_bits() >> Self::SHIFT) as usize
        } else {
            0
        };
        self.bins[i] = self.bins[i].saturating_add(1);
        self.total += 1;
    }

    /// The middle of the bin holding the `q` quantile.
    fn quantile(&self, q: f64) -> f64 {
        let want = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, &n) in self.bins.iter().enumerate() {
            seen += u64::from(n);
            if seen >= want {
                let mid = ((i as u32) << Self::SHIFT) | (1 << (Self::SHIFT - 1));
                return f64::from(f32::from_bits(mid));
            }
        }
        0.0
    }

    fn clear(&mut self) {
        self.bins.fill(0);
        self.total = 0;
    }
}

/// Each host's largest sampled score in the current second, and the
/// histogram of the host-seconds done.
struct HostSeconds {
    hosts: LruCache<IpAddr, (i64, f32)>,
    done: LogHistogram,
}

impl HostSeconds {
    fn new() -> Self {
        let cap = NonZeroUsize::new(HOSTS).unwrap_or(NonZeroUsize::MIN);
        HostSeconds {
            hosts: LruCache::new(cap),
            done: LogHistogram::new(),
        }
    }

    fn observe(&mut self, host: IpAddr, t: f64, s: f64, skip: impl Fn(&IpAddr) -> bool) {
        let sec = t.floor() as i64;
        let s = s as f32;
        let slot = self
            .hosts
            .get_or_insert_mut(host, || (sec, f32::NEG_INFINITY));
        if slot.0 == sec {
            slot.1 = slot.1.max(s);
            return;
        }
        let max = std::mem::replace(slot, (sec, s)).1;
        if max.is_finite() && !skip(&host) {
            self.done.add(max);
        }
    }

    /// Ends every host's current second.
    fn flush(&mut self, skip: impl Fn(&IpAddr) -> bool) {
        for (host, (_, max)) in self.hosts.iter() {
            if max.is_finite() && !skip(host) {
                self.done.add(*max);
            }
        }
        self.hosts.clear();
    }
}

/// What following did, for the summary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftSummary {
    /// The threshold over its calibrated value.
    pub factor: f64,
    /// Periods that moved the threshold.
    pub updates: u64,
    /// Periods with too little normal traffic to move it.
    pub skipped: u64,
}

/// Follows one side's drift; see the [module docs](self).
pub struct Drift {
    period: f64,
    seconds: HostSeconds,
    /// Calibrated threshold and the reference it goes with (0 until known).
    base: f64,
    reference: f64,
    next: f64,
    /// The factor and the periods counted so far.
    summary: DriftSummary,
}

impl std::fmt::Debug for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drift")
            .field("period", &self.period)
            .field("base", &self.base)
            .field("reference", &self.reference)
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl Drift {
    /// Following every `period` seconds, once [`start`](Self::start)ed;
    /// until then [`observe`](Self::observe) collects the reference.
    pub fn new(period: f64) -> Self {
        Drift {
            period,
            seconds: HostSeconds::new(),
            base: 0.0,
            reference: 0.0,
            next: f64::NAN,
            summary: DriftSummary {
                factor: 1.0,
                updates: 0,
                skipped: 0,
            },
        }
    }

    /// Whether the record with this index is one looked at.
    #[inline]
    pub fn sampled(index: u64) -> bool {
        index.is_multiple_of(SAMPLE)
    }

    /// Counts a sampled record's score; `in_episode` tells whether a host
    /// is in an open episode (its values are then left out).
    pub fn observe(&mut self, host: IpAddr, t: f64, s: f64, in_episode: impl Fn(&IpAddr) -> bool) {
        if t.is_finite() {
            self.seconds.observe(host, t, s, in_episode);
        }
    }

    /// The reference collected so far (the held-back slice's statistic),
    /// or `None` with too little traffic to have one.
    pub fn reference(&mut self) -> Option<f64> {
        self.seconds.flush(|_| false);
        let r = self.seconds.done.quantile(QUANTILE);
        (self.seconds.done.total >= MIN_HOST_SECONDS && r > 0.0).then_some(r)
    }

    /// Starts following from a threshold `current` whose calibrated value
    /// was `base` with this `reference`, at capture time `t`.
    pub fn start(&mut self, base: f64, reference: f64, current: f64, t: f64) {
        self.base = base;
        self.reference = reference;
        self.summary.factor = (current / base).clamp(1.0 / BOUND, BOUND);
        self.next = t + self.period;
        self.seconds.hosts.clear();
        self.seconds.done.clear();
    }

    /// Whether the period ends at `t` (a call to [`tick`](Self::tick) is due).
    #[inline]
    pub fn due(&self, t: f64) -> bool {
        self.next.is_nan() || t >= self.next
    }

    /// Ends the period at `t`: the new threshold, or `None` when it stays.
    pub fn tick(&mut self, t: f64, in_episode: impl Fn(&IpAddr) -> bool) -> Option<f64> {
        if self.next.is_nan() {
            self.next = t + self.period;
            return None;
        }
        while self.next <= t {
            self.next += self.period;
        }
        self.seconds.flush(in_episode);
        let enough = self.seconds.done.total >= MIN_HOST_SECONDS;
        let now = self.seconds.done.quantile(QUANTILE);
        self.seconds.done.clear();
        if !enough || now <= 0.0 || self.reference <= 0.0 {
            self.summary.skipped += 1;
            return None;
        }
        let wanted = now / self.reference;
        let s = &mut self.summary;
        let step = (wanted / s.factor).clamp(1.0 / STEP, STEP);
        s.factor = (s.factor * step).clamp(1.0 / BOUND, BOUND);
        s.updates += 1;
        Some((self.base * s.factor).max(MIN_THRESHOLD))
    }

    /// What following did so far.
    pub fn summary(&self) -> DriftSummary {
        self.summary
    }
}

/// `--drift`: seconds between moves of a threshold, or `None` (`off`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Period(pub Option<f64>);

impl std::str::FromStr for Period {
    type Err = String;

    /// A period of capture time (`10m`, `1h`, `90s`) or `off`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s.trim() == "off" {
            return Ok(Period(None));
        }
        match s.parse::<super::grace::Grace>() {
            Ok(super::grace::Grace::Seconds(p)) if p >= 1.0 => Ok(Period(Some(p))),
            _ => Err(format!(
                "drift period '{s}' should be a duration (10m, 1h, 90s) or off"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn host(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    /// `secs` seconds of 20 hosts, each with records whose scores spread
    /// around `scale` (host `i` at `scale * (1 + i / 20)`).
    fn feed(d: &mut Drift, from: f64, secs: u32, scale: impl Fn(f64) -> f64, hot: Option<f64>) {
        for k in 0..secs * 4 {
            let t = from + f64::from(k) / 4.0;
            for i in 0..20 {
                d.observe(host(i), t, scale(t) * (1.0 + f64::from(i) / 20.0), |_| {
                    false
                });
            }
            if let Some(s) = hot {
                d.observe(host(99), t, s, |h| *h == host(99));
            }
        }
    }

    fn started(scale: f64) -> Drift {
        let mut d = Drift::new(600.0);
        feed(&mut d, 0.0, 120, |_| scale, None);
        let r = d.reference().unwrap();
        assert!((r / (scale * 1.85) - 1.0).abs() < 0.03, "{r}");
        d.start(1.0, r, 1.0, 120.0);
        d
    }

    fn run(d: &mut Drift, hours: u32, scale: impl Fn(f64) -> f64, hot: Option<f64>) -> f64 {
        let mut threshold = 1.0;
        let mut t = 120.0;
        for _ in 0..hours * 6 {
            feed(d, t, 600, &scale, hot);
            t += 600.0;
            if d.due(t) {
                threshold = d.tick(t, |_| false).unwrap_or(threshold);
            }
        }
        threshold
    }

    #[test]
    fn the_threshold_follows_slow_benign_growth() {
        let mut d = started(0.01);
        // Benign scores grow by half over five hours.
        let t = run(&mut d, 5, |t| 0.01 * (1.0 + 0.5 * t / 18_000.0), None);
        assert!((t / 1.5 - 1.0).abs() < 0.06, "{t}");
        assert_eq!(d.summary().updates, 30);
    }

    #[test]
    fn it_moves_at_most_a_step_a_period_and_within_the_bound() {
        let mut d = started(0.01);
        let t = run(&mut d, 1, |_| 0.1, None);
        // Ten times the scores: six periods of at most 10 % each.
        assert!((t - STEP.powi(6)).abs() < 1e-9, "{t}");
        let t = run(&mut d, 4, |_| 0.1, None);
        assert!((t - BOUND).abs() < 1e-9, "{t}");
        let t = run(&mut d, 12, |_| 0.0001, None);
        assert!((t - 1.0 / BOUND).abs() < 1e-9, "{t}");
    }

    #[test]
    fn hosts_in_an_episode_teach_nothing() {
        let mut d = started(0.01);
        // A host scoring 1000 times the rest, in an open episode throughout.
        let t = run(&mut d, 2, |_| 0.01, Some(10.0));
        assert!((t - 1.0).abs() < 0.05, "{t}");
    }

    #[test]
    fn a_quiet_period_changes_nothing() {
        let mut d = started(0.01);
        d.observe(host(1), 200.0, 5.0, |_| false);
        assert_eq!(d.tick(800.0, |_| false), None);
        assert_eq!(d.summary().skipped, 1);
    }

    #[test]
    fn periods_parse() {
        assert_eq!("10m".parse(), Ok(Period(Some(600.0))));
        assert_eq!("off".parse(), Ok(Period(None)));
        assert!("600".parse::<Period>().unwrap_err().contains("duration"));
        assert!("0s".parse::<Period>().is_err());
    }

    #[test]
    fn the_histogram_is_fine_grained() {
        let mut h = LogHistogram::new();
        for i in 1..=1000 {
            h.add(i as f32 * 1e-4);
        }
        let q = h.quantile(0.9);
        assert!((q / 0.09 - 1.0).abs() < 0.025, "{q}");
        h.add(-1.0);
        h.add(f32::NAN);
        assert_eq!(h.total, 1002);
    }
}
