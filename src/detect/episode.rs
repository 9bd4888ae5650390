//! Alert episodes: one alert per attack per target, not one per packet.
//!
//! The [`EpisodeTracker`] reads scored records in capture order. For each
//! *target* (the destination address by default: victim-centric) it keeps a
//! majority-vote window ([`VoteWindow`]); when the vote first fires on an
//! anomalous record, an episode opens with a `start` alert. The episode then
//! counts the target's anomalous records, their bytes and distinct sources,
//! and remembers the peak score with its top features; once it has counted
//! `details_after` records, a `details` alert gives its fingerprint (what
//! to filter, for mitigation and hooks). When no anomalous record for the
//! target arrives for `episode_timeout` seconds of capture time, an `end`
//! alert closes it. Time advances with the records (or
//! with [`advance`](EpisodeTracker::advance) when the input is idle), and
//! [`flush`](EpisodeTracker::flush) closes whatever is open at the end.
//!
//! Memory is bounded by configuration: at most `max_targets` vote windows
//! and `max_episodes` open episodes, each least-recently-used first out, and
//! evictions are counted. An open episode evicted to make room is closed
//! with an `end` alert (reason `evicted`), never dropped silently.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::net::IpAddr;
use std::num::NonZeroUsize;

use lru::LruCache;

use super::alert::{
    Alert, AlertContext, EndReason, EpisodeSummary, Family, FeatureShare, FlowContext, NamedShare,
    ScoredRecord, State, Timestamp,
};
use super::fingerprint::Fingerprint;
use super::sink::AlertSink;
use super::vote::{VoteParams, VoteWindow};
use crate::features::stream_table::Table;
use crate::{Error, Result};

/// Which address an episode is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetKey {
    /// The destination address: one episode per victim (default).
    #[default]
    DestIp,
    /// The source address: one episode per attacker or scanner.
    SrcIp,
}

/// Configuration of an [`EpisodeTracker`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerParams {
    target: TargetKey,
    vote: VoteParams,
    episode_timeout: f64,
    max_targets: usize,
    max_episodes: usize,
    top_features: usize,
    details_after: u64,
    threshold: f64,
    signature: String,
    category: String,
    feature_names: Vec<String>,
}

impl Default for TrackerParams {
    fn default() -> Self {
        TrackerParams {
            target: TargetKey::DestIp,
            vote: VoteParams::default(),
            episode_timeout: 30.0,
            max_targets: 65_536,
            max_episodes: 1_024,
            top_features: 5,
            details_after: 20,
            threshold: 0.0,
            signature: "floodwatch".into(),
            category: "anomaly".into(),
            feature_names: Vec::new(),
        }
    }
}

impl TrackerParams {
    /// Defaults: victim-centric, 6 of 10 votes, 30 s episode timeout,
    /// 65,536 targets (a few MB), 1,024 open episodes, 5 top features,
    /// details after 20 records, threshold 0, signature prefix
    /// "floodwatch", category "anomaly".
    pub fn new() -> Self {
        Self::default()
    }

    /// Which address an episode is about. Default: destination.
    pub fn target(mut self, t: TargetKey) -> Self {
        self.target = t;
        self
    }

    /// The majority vote. Default: 6 of the last 10 records of a target.
    pub fn vote(mut self, v: VoteParams) -> Self {
        self.vote = v;
        self
    }

    /// The majority vote.
    pub fn vote_params(&self) -> VoteParams {
        self.vote
    }

    /// Seconds of capture time without an anomalous record after which an
    /// episode ends; positive and finite. Default 30.
    pub fn episode_timeout(mut self, secs: f64) -> Self {
        self.episode_timeout = secs;
        self
    }

    /// Targets whose vote window is kept; at least 2. Default 65,536.
    pub fn max_targets(mut self, n: usize) -> Self {
        self.max_targets = n;
        self
    }

    /// Episodes open at once; at least 1. Default 1,024.
    pub fn max_episodes(mut self, n: usize) -> Self {
        self.max_episodes = n;
        self
    }

    /// Top features kept from the peak record. Default 5.
    pub fn top_features(mut self, k: usize) -> Self {
        self.top_features = k;
        self
    }

    /// The episode's record count at which its `details` alert goes out
    /// (FastNetMon's `ban_details_records_count`); 0 sends none. Default 20.
    pub fn details_after(mut self, n: u64) -> Self {
        self.details_after = n;
        self
    }

    /// The threshold reported in alerts. Default 0.
    pub fn threshold(mut self, t: f64) -> Self {
        self.threshold = t;
        self
    }

    /// What the alerts' `signature` starts with, before a colon and what
    /// happened. Default "floodwatch".
    pub fn signature(mut self, s: impl Into<String>) -> Self {
        self.signature = s.into();
        self
    }

    /// The alerts' `category` when no attack family is known. Default "anomaly".
    pub fn category(mut self, c: impl Into<String>) -> Self {
        self.category = c.into();
        self
    }

    /// Names of the features, by index, for `top_features`; a feature
    /// without a name is called `feature<index>`.
    pub fn feature_names(mut self, names: Vec<String>) -> Self {
        self.feature_names = names;
        self
    }

    /// A tracker with these parameters, after checking them.
    pub fn build(self) -> Result<EpisodeTracker> {
        let t = self.episode_timeout;
        if !(t.is_finite() && t > 0.0) {
            return Err(Error::Data(format!(
                "episode timeout should be positive seconds, but is {t}"
            )));
        }
        let cap = |n: usize, what: &str| {
            NonZeroUsize::new(n).ok_or_else(|| Error::Data(format!("{what} should be at least 1")))
        };
        let targets = Table::evicting(self.max_targets)
            .map_err(|e| Error::Data(format!("max targets: {e}")))?;
        let open = LruCache::new(cap(self.max_episodes, "max open episodes")?);
        Ok(EpisodeTracker {
            params: self,
            targets,
            open,
            now: f64::NEG_INFINITY,
            stats: TrackerStats::default(),
        })
    }
}

/// Counters of an [`EpisodeTracker`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// Records observed.
    pub records: u64,
    /// Of which anomalous.
    pub anomalous: u64,
    /// Of which alerting (the vote fired).
    pub alerting: u64,
    /// Episodes opened (`start` alerts).
    pub started: u64,
    /// Episodes closed (`end` alerts), evictions included.
    pub ended: u64,
    /// Vote windows evicted to make room for a new target.
    pub target_evictions: u64,
    /// Open episodes closed early to make room.
    pub episode_evictions: u64,
    /// Targets tracked now.
    pub targets: u64,
    /// Episodes open now.
    pub open_episodes: u64,
}

/// Distinct-count sketch of source addresses (HyperLogLog, 128 registers):
/// fixed 128 bytes, exact-ish for a handful (linear counting), about 9 %
/// error for many.
#[derive(Debug, Clone)]
struct SourceSketch {
    registers: [u8; 128],
}

impl SourceSketch {
    const BITS: u32 = 7;

    fn new() -> Self {
        SourceSketch {
            registers: [0; 128],
        }
    }

    fn add(&mut self, ip: &IpAddr) {
        // SipHash with fixed keys: deterministic across runs.
        let mut h = DefaultHasher::new();
        ip.hash(&mut h);
        let h = h.finish();
        let idx = (h >> (64 - Self::BITS)) as usize;
        let rest = (h << Self::BITS) | (1 << (Self::BITS - 1));
        let rank = rest.leading_zeros() as u8 + 1;
        if let Some(r) = self.registers.get_mut(idx) {
            *r = (*r).max(rank);
        }
    }

    fn estimate(&self) -> u64 {
        let m = self.registers.len() as f64;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        let sum: f64 = self.registers.iter().map(|&r| (-f64::from(r)).exp2()).sum();
        let raw = 0.7213 / (1.0 + 1.079 / m) * m * m / sum;
        let e = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        e.round() as u64
    }
}

/// One open episode.
#[derive(Debug, Clone)]
struct Episode {
    start: f64,
    last_seen: f64,
    records: u64,
    packets: u64,
    bytes: u64,
    peak_score: f64,
    peak_flow: FlowContext,
    peak_top: Vec<FeatureShare>,
    family: Option<String>,
    sources: SourceSketch,
    fingerprint: Fingerprint,
}

impl Episode {
    fn open(rec: &ScoredRecord<'_>, ts: f64, top_k: usize) -> Self {
        let mut ep = Episode {
            start: ts,
            last_seen: ts,
            records: 0,
            packets: 0,
            bytes: 0,
            peak_score: f64::NEG_INFINITY,
            peak_flow: rec.flow,
            peak_top: Vec::with_capacity(top_k),
            family: None,
            sources: SourceSketch::new(),
            fingerprint: Fingerprint::default(),
        };
        ep.add(rec, ts, top_k);
        ep
    }

    /// Counts an anomalous record; allocation-free unless a new family name
    /// outgrows the old one.
    fn add(&mut self, rec: &ScoredRecord<'_>, ts: f64, top_k: usize) {
        self.last_seen = self.last_seen.max(ts);
        self.records += 1;
        self.packets = self.packets.saturating_add(rec.flow.packets);
        self.bytes = self.bytes.saturating_add(rec.flow.bytes);
        self.sources.add(&rec.flow.src_ip);
        self.fingerprint.add(&rec.flow);
        // The first record sets the peak even with a NaN score.
        if rec.score > self.peak_score || self.records == 1 {
            self.peak_score = rec.score;
            self.peak_flow = rec.flow;
            self.peak_top.clear();
            self.peak_top
                .extend(rec.top_features.iter().take(top_k).copied());
            if let Some(f) = rec.family {
                let name = self.family.get_or_insert_with(String::new);
                name.clear();
                name.push_str(f);
            }
        }
    }
}

/// Turns scored records into alert episodes; see the [module docs](self).
#[derive(Debug)]
pub struct EpisodeTracker {
    params: TrackerParams,
    targets: Table<IpAddr, VoteWindow>,
    /// Least recently anomalous first, so expiry looks at the front only.
    open: LruCache<IpAddr, Episode>,
    /// Latest capture time seen.
    now: f64,
    stats: TrackerStats,
}

impl EpisodeTracker {
    /// The parameters.
    pub fn params(&self) -> &TrackerParams {
        &self.params
    }

    /// Sets the threshold reported in alerts (it moves with drift).
    pub fn set_threshold(&mut self, t: f64) {
        self.params.threshold = t;
    }

    /// Counters so far.
    pub fn stats(&self) -> TrackerStats {
        TrackerStats {
            targets: self.targets.len() as u64,
            target_evictions: self.targets.evicted(),
            open_episodes: self.open.len() as u64,
            ..self.stats
        }
    }

    /// The attack family of the open episode about `host` (empty when none
    /// was named), or `None` when no episode about it is open.
    pub fn open_family(&self, host: &IpAddr) -> Option<&str> {
        self.open
            .peek(host)
            .map(|ep| ep.family.as_deref().unwrap_or(""))
    }

    /// Whether an anomalous record of `flow` at `timestamp` scoring `score`
    /// would open an episode (its vote fires) or become its open episode's
    /// peak: the only records whose top features an alert reports, so
    /// callers can skip explaining the others (a spoofed flood's one-record
    /// sources above all).
    pub fn wants_explanation(&self, flow: &FlowContext, timestamp: f64, score: f64) -> bool {
        let key = self.target_of(flow);
        let now = self.now.max(self.time_of(timestamp));
        match self.open.peek(&key) {
            Some(ep) if !self.timed_out(ep, now) => score > ep.peak_score,
            _ => {
                let window = match self.targets.find(&key) {
                    Some(i) => *self.targets.get(i),
                    None => VoteWindow::default(),
                };
                window.fires_with(true, &self.params.vote)
            }
        }
    }

    /// A record's time: a record without a usable one happens "now".
    fn time_of(&self, timestamp: f64) -> f64 {
        if timestamp.is_finite() {
            timestamp
        } else if self.now.is_finite() {
            self.now
        } else {
            0.0
        }
    }

    /// Whether `ep` has seen no anomalous record for the episode timeout by
    /// `now`.
    fn timed_out(&self, ep: &Episode, now: f64) -> bool {
        now - ep.last_seen > self.params.episode_timeout
    }

    fn target_of(&self, flow: &FlowContext) -> IpAddr {
        match self.params.target {
            TargetKey::DestIp => flow.dest_ip,
            TargetKey::SrcIp => flow.src_ip,
        }
    }

    /// Reads one scored record: closes the episodes it makes time out, votes,
    /// and opens or extends its target's episode. Returns whether the record
    /// is alerting (the vote fired). A sink error is returned after the
    /// tracker's state is updated.
    pub fn observe<S: AlertSink + ?Sized>(
        &mut self,
        rec: &ScoredRecord<'_>,
        sink: &mut S,
    ) -> io::Result<bool> {
        self.stats.records += 1;
        self.stats.anomalous += u64::from(rec.is_anomaly);
        let ts = self.time_of(rec.timestamp);
        let expired = self.advance(ts, sink);

        let key = self.target_of(&rec.flow);
        let vote = self.params.vote;
        let hashed = self.targets.hashed(key);
        let i = self
            .targets
            .get_or_insert_evicting(hashed, VoteWindow::default);
        let alerting = self.targets.get_mut(i).push(rec.is_anomaly, &vote);
        self.stats.alerting += u64::from(alerting);
        if !rec.is_anomaly {
            return expired.map(|()| alerting);
        }
        let top_k = self.params.top_features;
        if let Some(ep) = self.open.get_mut(&key) {
            ep.add(rec, ts, top_k);
            let details = self.details_due(&key, ts, rec.score, sink);
            return expired.and(details).map(|()| alerting);
        }
        if !alerting {
            return expired.map(|()| alerting);
        }
        let mut result = expired;
        if self.open.len() >= self.open.cap().get() {
            if let Some((_, ep)) = self.open.pop_lru() {
                self.stats.episode_evictions += 1;
                let r = self.close(ep, self.now, EndReason::Evicted, sink);
                result = result.and(r);
            }
        }
        let ep = Episode::open(rec, ts, top_k);
        self.stats.started += 1;
        let alert = self.alert(State::Start, &ep, ts, rec.score, None);
        self.open.push(key, ep);
        result.and(sink.alert(&alert)).map(|()| alerting)
    }

    /// Sends the `details` alert of `key`'s episode when it has just counted
    /// `details_after` records (at least 2: the first is the `start`).
    fn details_due<S: AlertSink + ?Sized>(
        &self,
        key: &IpAddr,
        ts: f64,
        score: f64,
        sink: &mut S,
    ) -> io::Result<()> {
        let n = self.params.details_after;
        match self.open.peek(key) {
            Some(ep) if n > 0 && ep.records == n.max(2) => {
                sink.alert(&self.alert(State::Details, ep, ts, score, None))
            }
            _ => Ok(()),
        }
    }

    /// Moves the clock to `now` (capture time; it never goes back) and ends
    /// the episodes that timed out, oldest first.
    pub fn advance<S: AlertSink + ?Sized>(&mut self, now: f64, sink: &mut S) -> io::Result<()> {
        if now > self.now {
            self.now = now;
        }
        let timeout = self.params.episode_timeout;
        let mut result = Ok(());
        while let Some((_, ep)) = self.open.peek_lru() {
            if !self.timed_out(ep, self.now) {
                break;
            }
            if let Some((_, ep)) = self.open.pop_lru() {
                let at = ep.last_seen + timeout;
                result = result.and(self.close(ep, at, EndReason::Timeout, sink));
            }
        }
        result
    }

    /// Ends every open episode (the input is over), oldest first.
    pub fn flush<S: AlertSink + ?Sized>(&mut self, sink: &mut S) -> io::Result<()> {
        let mut result = Ok(());
        while let Some((_, ep)) = self.open.pop_lru() {
            let at = self.now.max(ep.last_seen);
            result = result.and(self.close(ep, at, EndReason::Flush, sink));
        }
        result
    }

    fn close<S: AlertSink + ?Sized>(
        &mut self,
        ep: Episode,
        at: f64,
        reason: EndReason,
        sink: &mut S,
    ) -> io::Result<()> {
        self.stats.ended += 1;
        let alert = self.alert(State::End, &ep, at, ep.peak_score, Some(reason));
        sink.alert(&alert)
    }

    fn feature_name(&self, index: usize) -> String {
        match self.params.feature_names.get(index) {
            Some(name) => name.clone(),
            None => format!("feature{index}"),
        }
    }

    fn alert(
        &self,
        state: State,
        ep: &Episode,
        at: f64,
        score: f64,
        end_reason: Option<EndReason>,
    ) -> Alert {
        let p = &self.params;
        let named = ep.family.as_deref().and_then(Family::from_name);
        let family = match (p.target, named) {
            (TargetKey::DestIp, _) => Family::FloodTarget,
            (TargetKey::SrcIp, Some(f)) => f,
            (TargetKey::SrcIp, None) => Family::InfectedHost,
        };
        let context = AlertContext {
            state,
            family,
            direction: None,
            score,
            threshold: p.threshold,
            top_features: ep
                .peak_top
                .iter()
                .map(|f| NamedShare {
                    name: self.feature_name(f.feature),
                    share: f.share,
                })
                .collect(),
            exporter: ep.peak_flow.exporter,
            episode: EpisodeSummary::new(
                ep.start,
                ep.last_seen,
                ep.packets,
                ep.bytes,
                ep.peak_score,
                ep.sources.estimate(),
                end_reason,
            )
            .with_fingerprint(ep.fingerprint.summary()),
        };
        let category = ep.family.clone().unwrap_or_else(|| p.category.clone());
        Alert::new(
            Timestamp::from_secs(at),
            &ep.peak_flow,
            &p.signature,
            category,
            context,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::alert::Proto;
    use std::net::Ipv4Addr;

    #[derive(Default)]
    struct Collect(Vec<Alert>);
    impl AlertSink for Collect {
        fn alert(&mut self, a: &Alert) -> io::Result<()> {
            self.0.push(a.clone());
            Ok(())
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    /// A tracker with default parameters but a `votes`-of-`window` vote.
    fn voting(window: u32, votes: u32) -> EpisodeTracker {
        TrackerParams::new()
            .vote(VoteParams::new(window, votes).unwrap())
            .build()
            .unwrap()
    }

    fn rec(ts: f64, src: u8, dst: u8, anomalous: bool) -> ScoredRecord<'static> {
        ScoredRecord {
            timestamp: ts,
            score: if anomalous { 2.0 } else { 0.1 },
            is_anomaly: anomalous,
            flow: FlowContext {
                src_ip: ip(src),
                src_port: 1000,
                dest_ip: ip(dst),
                dest_port: 80,
                proto: Proto::Tcp,
                bytes: 60,
                tcp_flags: 0,
                packets: 1,
                exporter: None,
            },
            top_features: &[],
            family: None,
        }
    }

    #[test]
    fn sketch_counts_few_exactly_and_many_roughly() {
        let mut s = SourceSketch::new();
        assert_eq!(s.estimate(), 0);
        for k in 0..5u8 {
            s.add(&ip(k));
            s.add(&ip(k));
        }
        assert_eq!(s.estimate(), 5);
        let mut s = SourceSketch::new();
        for k in 0..10_000u32 {
            s.add(&IpAddr::V4(Ipv4Addr::from(k)));
        }
        let e = s.estimate() as f64;
        assert!((e - 10_000.0).abs() < 3_000.0, "{e}");
    }

    #[test]
    fn non_finite_times_and_scores_do_not_break_the_tracker() {
        let mut t = voting(1, 1);
        let mut out = Collect::default();
        let mut r = rec(f64::NAN, 1, 2, true);
        r.score = f64::NAN;
        assert!(t.observe(&r, &mut out).unwrap());
        t.observe(&rec(f64::INFINITY, 1, 2, true), &mut out)
            .unwrap();
        t.flush(&mut out).unwrap();
        assert_eq!(out.0.len(), 2);
        assert_eq!(out.0[1].alert.context.episode.packets, 2);
        assert_eq!(out.0[0].timestamp, Timestamp::from_secs(0.0));
    }

    #[test]
    fn only_openings_and_new_peaks_want_an_explanation() {
        let mut t = voting(1, 1);
        let mut out = Collect::default();
        let r = rec(1.0, 1, 2, true);
        assert!(t.wants_explanation(&r.flow, 1.0, r.score));
        t.observe(&r, &mut out).unwrap();
        assert!(!t.wants_explanation(&r.flow, 1.0, r.score));
        assert!(t.wants_explanation(&r.flow, 1.0, r.score + 1.0));
        assert!(t.wants_explanation(&rec(1.0, 1, 3, true).flow, 1.0, 0.0));
        // Once the episode timed out, the record opening the next one.
        let later = 1.0 + t.params().episode_timeout + 1.0;
        assert!(t.wants_explanation(&r.flow, later, r.score));
    }

    #[test]
    fn a_record_that_cannot_open_an_episode_wants_no_explanation() {
        let mut t = voting(5, 3);
        let mut out = Collect::default();
        // Two anomalous records of a target: the vote fires on the third.
        for k in 0..3 {
            let r = rec(1.0 + f64::from(k), 1, 2, true);
            let wants = t.wants_explanation(&r.flow, r.timestamp, r.score);
            let alerting = t.observe(&r, &mut out).unwrap();
            assert_eq!((wants, alerting), (k == 2, k == 2), "record {k}");
        }
        // A new target's first record, as a spoofed flood's one-record
        // sources: nothing to explain.
        let r = rec(4.0, 7, 9, true);
        assert!(!t.wants_explanation(&r.flow, r.timestamp, r.score));
    }

    #[test]
    fn an_episode_gives_its_details_once_at_the_nth_record() {
        let mut t = TrackerParams::new()
            .vote(VoteParams::new(1, 1).unwrap())
            .details_after(3)
            .build()
            .unwrap();
        let mut out = Collect::default();
        for k in 0..6 {
            t.observe(&rec(1.0 + f64::from(k), 1, 2, true), &mut out)
                .unwrap();
        }
        t.flush(&mut out).unwrap();
        let states: Vec<State> = out.0.iter().map(Alert::state).collect();
        assert_eq!(states, [State::Start, State::Details, State::End]);
        let details = &out.0[1].alert.context.episode;
        assert_eq!(details.packets, 3);
        assert_eq!(details.fingerprint.as_ref().unwrap().records, 3);
        // 0 sends none.
        let mut t = TrackerParams::new()
            .vote(VoteParams::new(1, 1).unwrap())
            .details_after(0)
            .build()
            .unwrap();
        let mut out = Collect::default();
        for k in 0..30 {
            t.observe(&rec(f64::from(k), 1, 2, true), &mut out).unwrap();
        }
        assert_eq!(out.0.len(), 1);
    }

    #[test]
    fn unnamed_features_get_an_index_name() {
        let t = TrackerParams::new()
            .feature_names(vec!["a".into()])
            .build()
            .unwrap();
        assert_eq!(t.feature_name(0), "a");
        assert_eq!(t.feature_name(7), "feature7");
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(TrackerParams::new().episode_timeout(0.0).build().is_err());
        assert!(TrackerParams::new()
            .episode_timeout(f64::NAN)
            .build()
            .is_err());
        assert!(TrackerParams::new().max_targets(0).build().is_err());
        assert!(TrackerParams::new().max_episodes(0).build().is_err());
    }
}
