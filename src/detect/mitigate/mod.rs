//! Mitigation through BGP (`watch --mitigate`): each incoming flood episode
//! against a protected address announces a rule, a blackhole route (RFC
//! 7999) or a FlowSpec discard rule (RFC 8955), withdrawn `ban_time` after
//! the episode ends.
//!
//! [`Mitigator`] is the alert sink. On the scoring thread it only picks the
//! episodes to act on ([`Guard`]) and hands them to a worker thread through
//! a bounded queue, so a slow BGP speaker never stalls detection; the
//! worker keeps the announcements ([`Bans`]) and calls an [`Announcer`]:
//! [`GoBgp`] (the `gobgp` CLI of a local `gobgpd`) or [`DryRun`].

mod gobgp;
mod rule;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use gobgp::{DryRun, GoBgp, NEXT_HOP_V4, NEXT_HOP_V6};
pub use rule::{Action, Kind, Match, Rule, BLACKHOLE, DOMINANT, LINK_SLACK};

use super::alert::{Alert, Direction, Family, State, Timestamp};
use super::homenet::HomeNet;
use super::sink::AlertSink;

/// Announces and withdraws rules at a BGP speaker. An `Err` holds what the
/// speaker said; it is logged and counted, never fatal.
pub trait Announcer: Send {
    /// Announces `rule`.
    fn announce(&mut self, rule: &Rule) -> Result<(), String>;
    /// Withdraws `rule`.
    fn withdraw(&mut self, rule: &Rule) -> Result<(), String>;
    /// Whether nothing really reaches a speaker (the log says so).
    fn dry_run(&self) -> bool {
        false
    }
}

/// What mitigation did in a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MitigationStats {
    /// Rules announced.
    pub announced: u64,
    /// Rules withdrawn.
    pub withdrawn: u64,
    /// Announcements and withdrawals the speaker refused or that could not
    /// run.
    pub failed: u64,
    /// Episodes not announced: `max_announcements` were active.
    pub refused: u64,
    /// Episode events lost: the worker's queue was full.
    pub dropped: u64,
}

impl fmt::Display for MitigationStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mitigation: {} announced, {} withdrawn, {} failed, {} refused at the cap, \
             {} events dropped (queue full)",
            self.announced, self.withdrawn, self.failed, self.refused, self.dropped
        )
    }
}

/// The counters behind [`MitigationStats`], shared with the worker.
#[derive(Debug, Default)]
struct Counters {
    /// Announcements in force now.
    active: AtomicU64,
    announced: AtomicU64,
    withdrawn: AtomicU64,
    failed: AtomicU64,
    refused: AtomicU64,
    dropped: AtomicU64,
}

/// Reads a [`Mitigator`]'s counts, also after it is boxed among the sinks.
#[derive(Debug, Clone)]
pub struct StatsHandle(Arc<Counters>);

impl StatsHandle {
    /// Announcements in force now.
    pub fn active(&self) -> u64 {
        self.0.active.load(Relaxed)
    }

    /// The counts so far.
    pub fn stats(&self) -> MitigationStats {
        let c = &self.0;
        MitigationStats {
            announced: c.announced.load(Relaxed),
            withdrawn: c.withdrawn.load(Relaxed),
            failed: c.failed.load(Relaxed),
            refused: c.refused.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
        }
    }
}

/// A start, details or end of an episode to act on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Episode {
    /// The victim.
    pub target: IpAddr,
    /// Start or end.
    pub state: State,
    /// The alert's time, seconds since the epoch (capture time in a
    /// replay).
    pub at: f64,
    /// What a FlowSpec rule for it matches: the protocol at the start,
    /// the fingerprint's protocol, ports and lengths in the details.
    pub matches: Match,
}

/// The guard rails: which alerts may lead to an announcement.
#[derive(Debug, Clone)]
pub struct Guard {
    home: HomeNet,
    never: HomeNet,
}

impl Guard {
    /// Acts only on targets inside `home` and outside `never`.
    pub fn new(home: HomeNet, never: HomeNet) -> Self {
        Guard { home, never }
    }

    /// The episode of `alert` when it is an incoming flood against an
    /// address inside the home net and not exempted; `None` for the rest
    /// (source-keyed episodes, outgoing ones, outside or exempted targets).
    pub fn pick(&self, alert: &Alert) -> Option<Episode> {
        let family = alert.family();
        if family.about_source() || family == Family::Anomaly {
            return None;
        }
        let target = alert.alert.target?.ip.to_canonical();
        let wanted = alert.direction() == Direction::Incoming
            && self.home.contains(target)
            && !self.never.contains(target);
        let fingerprint = alert.alert.context.episode.fingerprint.as_ref();
        let matches = match (alert.state(), fingerprint) {
            (State::Details, Some(f)) => Match::from_fingerprint(f, target.is_ipv6()),
            _ => Match::protocol(alert.proto.number()),
        };
        wanted.then(|| Episode {
            target,
            state: alert.state(),
            at: alert.timestamp.micros() as f64 / 1e6,
            matches,
        })
    }
}

/// The longest ban time: ten years, so that deadlines stay far from the
/// clocks' limits.
pub const MAX_BAN_TIME: Duration = Duration::from_secs(10 * 365 * 86_400);

/// An active announcement; `ends` is set once its episode ended: the alert
/// time and the wall-clock instant after which it is withdrawn.
#[derive(Debug)]
struct Ban {
    rule: Rule,
    ends: Option<(f64, Instant)>,
}

/// The active announcements and their timers, over an [`Announcer`].
///
/// A ban ends `ban_time` after its episode's end event, by the alerts'
/// clock (capture time in a replay, so a fast replay is deterministic) or
/// by the wall clock, whichever passes first (so a ban ends even when no
/// further alert arrives); a new start before then keeps it.
#[derive(Debug)]
pub struct Bans<A> {
    announcer: A,
    kind: Kind,
    action: Action,
    ban_time: Duration,
    cap: usize,
    active: HashMap<IpAddr, Ban>,
    /// The latest alert time seen.
    clock: f64,
    counters: Arc<Counters>,
}

impl<A: Announcer> Bans<A> {
    /// `kind` rules through `announcer`, at most `cap` at once; a
    /// `ban_time` beyond [`MAX_BAN_TIME`] is that.
    pub fn new(announcer: A, kind: Kind, ban_time: Duration, cap: usize) -> Self {
        Bans {
            announcer,
            kind,
            action: Action::Discard,
            ban_time: ban_time.min(MAX_BAN_TIME),
            cap,
            active: HashMap::new(),
            clock: f64::NEG_INFINITY,
            counters: Arc::default(),
        }
    }

    /// What FlowSpec rules do. Default: discard.
    pub fn action(mut self, action: Action) -> Self {
        self.action = action;
        self
    }

    /// Reads the counts.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(Arc::clone(&self.counters))
    }

    /// Announcements now active.
    pub fn active(&self) -> usize {
        self.active.len()
    }

    #[cfg(test)]
    fn announcer(&self) -> &A {
        &self.announcer
    }

    /// Acts on an episode event that arrived at `now`.
    pub fn episode(&mut self, e: &Episode, now: Instant) {
        self.clock = self.clock.max(e.at);
        self.expire(now);
        let full = self.active.len() >= self.cap;
        match (e.state, self.active.get_mut(&e.target)) {
            (State::Start, Some(ban)) => ban.ends = None,
            (State::Start, None) if full => self.refuse(e.target),
            (State::Start, None) => self.announce(e),
            (State::Details, Some(_)) => self.narrow(e),
            (State::Details, None) => {}
            (State::End, Some(ban)) => {
                ban.ends = Some((e.at + self.ban_time.as_secs_f64(), now + self.ban_time));
            }
            (State::End, None) => {}
        }
    }

    fn refuse(&self, target: IpAddr) {
        self.counters.refused.fetch_add(1, Relaxed);
        self.log(&format!(
            "{target} not announced: {} announcements active (--max-announcements)",
            self.cap
        ));
    }

    fn announce(&mut self, e: &Episode) {
        let rule = Rule {
            kind: self.kind,
            target: e.target,
            matches: e.matches,
            action: self.action,
        };
        let at = Timestamp::from_secs(e.at);
        match self.announcer.announce(&rule) {
            Ok(()) => {
                self.counters.announced.fetch_add(1, Relaxed);
                self.log(&format!("announce {rule} (episode started {at})"));
                self.active.insert(e.target, Ban { rule, ends: None });
                let n = self.active.len() as u64;
                self.counters.active.store(n, Relaxed);
            }
            Err(why) => {
                self.counters.failed.fetch_add(1, Relaxed);
                self.log(&format!("announce {rule} failed: {why}"));
            }
        }
    }

    /// Replaces an active FlowSpec rule by the narrower one of the
    /// episode's details: the new rule is announced before the old one is
    /// withdrawn, so the victim is never unprotected in between.
    fn narrow(&mut self, e: &Episode) {
        let Some(old) = self.active.get(&e.target).map(|b| b.rule) else {
            return;
        };
        let rule = Rule {
            matches: e.matches,
            ..old
        };
        if self.kind != Kind::Flowspec || rule == old {
            return;
        }
        if let Err(why) = self.announcer.announce(&rule) {
            self.counters.failed.fetch_add(1, Relaxed);
            self.log(&format!("announce {rule} failed: {why}; {old} stays"));
            return;
        }
        self.counters.announced.fetch_add(1, Relaxed);
        self.log(&format!("announce {rule} (the flood's fingerprint)"));
        if let Some(ban) = self.active.get_mut(&e.target) {
            ban.rule = rule;
        }
        self.withdraw_rule(&old, "narrowed");
    }

    /// Withdraws the bans whose time is over at `now` or by the alerts'
    /// clock.
    pub fn expire(&mut self, now: Instant) {
        let clock = self.clock;
        let over: Vec<IpAddr> = self
            .active
            .iter()
            .filter(|(_, b)| b.ends.is_some_and(|(t, w)| t <= clock || w <= now))
            .map(|(ip, _)| *ip)
            .collect();
        for ip in over {
            self.withdraw(ip, "ban time over");
        }
    }

    /// When the next ban ends by the wall clock.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.active
            .values()
            .filter_map(|b| b.ends.map(|e| e.1))
            .min()
    }

    /// Withdraws every announcement (at exit).
    pub fn withdraw_all(&mut self) {
        let all: Vec<IpAddr> = self.active.keys().copied().collect();
        for ip in all {
            self.withdraw(ip, "at exit");
        }
    }

    /// Withdraws the ban of `ip`. A failed withdrawal is logged, counted
    /// and the ban forgotten all the same: the speaker refused it or is
    /// gone, and a retry at exit would only repeat the failure.
    fn withdraw(&mut self, ip: IpAddr, why: &str) {
        let Some(ban) = self.active.remove(&ip) else {
            return;
        };
        let n = self.active.len() as u64;
        self.counters.active.store(n, Relaxed);
        self.withdraw_rule(&ban.rule, why);
    }

    fn withdraw_rule(&mut self, rule: &Rule, why: &str) {
        match self.announcer.withdraw(rule) {
            Ok(()) => {
                self.counters.withdrawn.fetch_add(1, Relaxed);
                self.log(&format!("withdraw {rule} ({why})"));
            }
            Err(e) => {
                self.counters.failed.fetch_add(1, Relaxed);
                self.log(&format!("withdraw {rule} failed: {e}"));
            }
        }
    }

    fn log(&self, what: &str) {
        let dry = if self.announcer.dry_run() {
            " (dry run)"
        } else {
            ""
        };
        eprintln!("floodwatch: mitigation{dry}: {what}");
    }
}

/// The mitigation sink: picks episodes on the scoring thread, acts on them
/// on a worker thread; every announcement is withdrawn at
/// [`finish`](AlertSink::finish), or when dropped (an error or a stop
/// before the end).
#[derive(Debug)]
pub struct Mitigator {
    guard: Guard,
    tx: Option<SyncSender<Episode>>,
    worker: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Mitigator {
    /// Starts the worker over `bans`, with a queue of `queue` events.
    pub fn start<A: Announcer + 'static>(
        guard: Guard,
        bans: Bans<A>,
        queue: usize,
    ) -> io::Result<Self> {
        let counters = Arc::clone(&bans.counters);
        let (tx, rx) = mpsc::sync_channel(queue.max(1));
        let worker = std::thread::Builder::new()
            .name("mitigation".into())
            .spawn(move || work(bans, rx))?;
        Ok(Mitigator {
            guard,
            tx: Some(tx),
            worker: Some(worker),
            counters,
        })
    }

    /// Reads the counts, also after `self` is boxed among the sinks.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(Arc::clone(&self.counters))
    }

    /// Closes the queue and waits for the worker to withdraw everything.
    fn stop(&mut self) {
        self.tx = None;
        if let Some(w) = self.worker.take() {
            // The worker only logs; a panic there has already been printed.
            let _ = w.join();
        }
    }
}

/// The worker: acts on events as they come and on ban ends as they fall
/// due; withdraws everything once the queue is closed.
fn work<A: Announcer>(mut bans: Bans<A>, rx: mpsc::Receiver<Episode>) {
    loop {
        let next = match bans.next_deadline() {
            Some(d) => rx.recv_timeout(d.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(e) => bans.episode(&e, Instant::now()),
            Err(RecvTimeoutError::Timeout) => bans.expire(Instant::now()),
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    bans.withdraw_all();
}

impl AlertSink for Mitigator {
    fn alert(&mut self, alert: &Alert) -> io::Result<()> {
        let (Some(e), Some(tx)) = (self.guard.pick(alert), &self.tx) else {
            return Ok(());
        };
        // Full, or the worker is gone: the event is lost either way.
        if tx.try_send(e).is_err() {
            self.counters.dropped.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.stop();
        Ok(())
    }
}

impl Drop for Mitigator {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::alert::udp_alert;
    use std::sync::mpsc::{Receiver, Sender};
    use std::sync::Mutex;

    /// Records what it is asked; fails announcements of `fail`.
    #[derive(Debug, Default, Clone)]
    struct Fake {
        calls: Arc<Mutex<Vec<String>>>,
        fail: Option<IpAddr>,
    }

    impl Fake {
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl Announcer for Fake {
        fn announce(&mut self, rule: &Rule) -> Result<(), String> {
            if self.fail == Some(rule.target) {
                return Err("refused by the peer".into());
            }
            self.calls.lock().unwrap().push(format!("+{rule}"));
            Ok(())
        }

        fn withdraw(&mut self, rule: &Rule) -> Result<(), String> {
            self.calls.lock().unwrap().push(format!("-{rule}"));
            Ok(())
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ep(target: &str, state: State, at: f64) -> Episode {
        Episode {
            target: ip(target),
            state,
            at,
            matches: Match::protocol(Some(17)),
        }
    }

    fn bans(cap: usize) -> Bans<Fake> {
        Bans::new(
            Fake::default(),
            Kind::Blackhole,
            Duration::from_secs(60),
            cap,
        )
    }

    #[test]
    fn a_ban_ends_ban_time_after_the_episode_by_the_alerts_clock() {
        let mut b = bans(8);
        let now = Instant::now();
        b.episode(&ep("10.0.0.5", State::Start, 100.0), now);
        b.episode(&ep("10.0.0.5", State::End, 130.0), now);
        assert_eq!(b.active(), 1);
        // An unrelated alert 59 s later keeps the ban; one at 60 s ends it.
        b.episode(&ep("10.0.0.9", State::End, 189.0), now);
        assert_eq!(b.active(), 1);
        b.episode(&ep("10.0.0.9", State::End, 190.0), now);
        assert_eq!(b.active(), 0);
        assert_eq!(
            b.announcer().calls(),
            [
                "+10.0.0.5/32 community 65535:666",
                "-10.0.0.5/32 community 65535:666"
            ]
        );
        let s = b.stats_handle().stats();
        assert_eq!((s.announced, s.withdrawn, s.failed), (1, 1, 0));
    }

    #[test]
    fn a_new_start_within_ban_time_keeps_the_announcement() {
        let mut b = bans(8);
        let now = Instant::now();
        b.episode(&ep("10.0.0.5", State::Start, 100.0), now);
        b.episode(&ep("10.0.0.5", State::End, 130.0), now);
        b.episode(&ep("10.0.0.5", State::Start, 150.0), now);
        // The reopened episode has no end yet: no clock ends it.
        b.episode(&ep("10.0.0.9", State::End, 1_000.0), now);
        assert_eq!(b.active(), 1);
        assert_eq!(b.announcer().calls().len(), 1);
        b.withdraw_all();
        assert_eq!(b.announcer().calls().len(), 2);
        assert_eq!(b.active(), 0);
    }

    #[test]
    fn the_wall_clock_ends_a_ban_when_no_alert_follows() {
        let mut b = bans(8);
        let now = Instant::now();
        b.episode(&ep("10.0.0.5", State::Start, 100.0), now);
        assert_eq!(b.next_deadline(), None);
        b.episode(&ep("10.0.0.5", State::End, 130.0), now);
        let due = now + Duration::from_secs(60);
        assert_eq!(b.next_deadline(), Some(due));
        b.expire(due - Duration::from_millis(1));
        assert_eq!(b.active(), 1);
        b.expire(due);
        assert_eq!(b.active(), 0);
        assert_eq!(b.next_deadline(), None);
    }

    #[test]
    fn an_endless_ban_time_is_capped_not_a_panic() {
        let mut b = Bans::new(Fake::default(), Kind::Blackhole, Duration::MAX, 8);
        let now = Instant::now();
        b.episode(&ep("10.0.0.5", State::Start, 1.0), now);
        b.episode(&ep("10.0.0.5", State::End, 2.0), now);
        assert_eq!(b.next_deadline(), Some(now + MAX_BAN_TIME));
        b.episode(&ep("10.0.0.9", State::End, 1e12), now);
        assert_eq!(b.active(), 0, "withdrawn by the alerts' clock");
    }

    #[test]
    fn the_cap_refuses_and_counts_further_victims() {
        let mut b = bans(1);
        let now = Instant::now();
        b.episode(&ep("10.0.0.5", State::Start, 1.0), now);
        b.episode(&ep("10.0.0.6", State::Start, 2.0), now);
        b.episode(&ep("10.0.0.6", State::End, 3.0), now);
        assert_eq!(b.active(), 1);
        assert_eq!(b.stats_handle().stats().refused, 1);
        assert_eq!(b.announcer().calls(), ["+10.0.0.5/32 community 65535:666"]);
    }

    #[test]
    fn a_failed_announcement_is_counted_and_not_active() {
        let fake = Fake {
            fail: Some(ip("10.0.0.5")),
            ..Fake::default()
        };
        let mut b = Bans::new(fake, Kind::Flowspec, Duration::ZERO, 4);
        let now = Instant::now();
        b.episode(&ep("10.0.0.5", State::Start, 1.0), now);
        b.episode(&ep("10.0.0.7", State::Start, 1.0), now);
        assert_eq!(b.active(), 1);
        assert_eq!(b.stats_handle().stats().failed, 1);
        assert_eq!(
            b.announcer().calls(),
            ["+flowspec 10.0.0.7/32 protocol 17 discard"]
        );
    }

    #[test]
    fn details_narrow_a_flowspec_rule_before_the_wide_one_goes() {
        let mut b = Bans::new(Fake::default(), Kind::Flowspec, Duration::ZERO, 4);
        let now = Instant::now();
        b.episode(&ep("10.0.0.5", State::Start, 1.0), now);
        let narrow = Match {
            src_port: Some(53),
            length: Some((100, 1500)),
            ..Match::protocol(Some(17))
        };
        let details = Episode {
            matches: narrow,
            ..ep("10.0.0.5", State::Details, 2.0)
        };
        b.episode(&details, now);
        // Again: the same rule is not announced twice.
        b.episode(&details, now);
        b.episode(&ep("10.0.0.5", State::End, 3.0), now);
        b.expire(now);
        let wide = "flowspec 10.0.0.5/32 protocol 17";
        let narrow = "flowspec 10.0.0.5/32 protocol 17 source-port 53 packet-length 100-1500";
        assert_eq!(
            b.announcer().calls(),
            [
                format!("+{wide} discard"),
                format!("+{narrow} discard"),
                format!("-{wide} discard"),
                format!("-{narrow} discard"),
            ]
        );
        let s = b.stats_handle().stats();
        assert_eq!((s.announced, s.withdrawn, b.active()), (2, 2, 0));
    }

    #[test]
    fn details_leave_a_blackhole_route_as_it_is() {
        let mut b = bans(4);
        let now = Instant::now();
        b.episode(&ep("10.0.0.5", State::Start, 1.0), now);
        let details = Episode {
            matches: Match {
                dest_port: Some(80),
                ..Match::protocol(Some(6))
            },
            ..ep("10.0.0.5", State::Details, 2.0)
        };
        b.episode(&details, now);
        // Details of a target never announced do nothing.
        b.episode(&ep("10.0.0.9", State::Details, 2.0), now);
        assert_eq!(b.announcer().calls(), ["+10.0.0.5/32 community 65535:666"]);
    }

    fn alert(family: Family, src: &str, dst: &str, home: &HomeNet) -> Alert {
        let mut a = udp_alert(State::Start, family, src, dst);
        a.apply_home_net(home);
        a
    }

    #[test]
    fn the_guard_picks_incoming_floods_on_protected_addresses_only() {
        let home = HomeNet::parse("--home-net", &["10.0.0.0/24"]).unwrap();
        let never = HomeNet::parse("--never-mitigate", &["10.0.0.1"]).unwrap();
        let g = Guard::new(home.clone(), never);
        let flood = |dst| alert(Family::FloodTarget, "203.0.113.9", dst, &home);
        assert_eq!(
            g.pick(&flood("10.0.0.5")),
            Some(ep("10.0.0.5", State::Start, 7.5))
        );
        assert_eq!(g.pick(&flood("10.0.0.1")), None, "never-mitigate");
        assert_eq!(g.pick(&flood("10.0.1.5")), None, "outside home");
        let scan = alert(Family::HorizontalScan, "203.0.113.9", "10.0.0.5", &home);
        assert_eq!(g.pick(&scan), None, "source-keyed");
        let anomaly = alert(Family::FloodTarget, "203.0.113.9", "0.0.0.0", &home);
        assert_eq!(g.pick(&anomaly), None, "no target");
    }

    /// Announces only when told to go on: holds the worker busy.
    struct Held {
        entered: Sender<()>,
        go: Receiver<()>,
    }

    impl Announcer for Held {
        fn announce(&mut self, _: &Rule) -> Result<(), String> {
            self.entered.send(()).unwrap();
            self.go.recv().unwrap();
            Ok(())
        }

        fn withdraw(&mut self, _: &Rule) -> Result<(), String> {
            Ok(())
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_finish_withdraws_everything() {
        let (entered_tx, entered) = mpsc::channel();
        let (go, go_rx) = mpsc::channel();
        let held = Held {
            entered: entered_tx,
            go: go_rx,
        };
        let home = HomeNet::parse("--home-net", &["10.0.0.0/24"]).unwrap();
        let bans = Bans::new(held, Kind::Blackhole, Duration::from_secs(600), 8);
        let mut m =
            Mitigator::start(Guard::new(home.clone(), HomeNet::default()), bans, 1).unwrap();
        let flood = |dst| alert(Family::FloodTarget, "203.0.113.9", dst, &home);
        m.alert(&flood("10.0.0.5")).unwrap();
        entered.recv().unwrap();
        // The worker is busy: one event fits in the queue, the next not.
        m.alert(&flood("10.0.0.6")).unwrap();
        m.alert(&flood("10.0.0.7")).unwrap();
        go.send(()).unwrap();
        go.send(()).unwrap();
        let stats = m.stats_handle();
        // Both announced ones are in force until finish withdraws them.
        let t0 = std::time::Instant::now();
        while stats.active() < 2 && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(stats.active(), 2);
        m.finish().unwrap();
        let s = stats.stats();
        assert_eq!((s.announced, s.withdrawn, s.dropped), (2, 2, 1), "{s}");
        assert_eq!(stats.active(), 0);
    }
}
