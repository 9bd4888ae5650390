//! The `day` profile: a long, varied capture of a home network, with scans,
//! floods and an infected device placed at known times.
//!
//! # Traffic model
//!
//! Hosts: 31 on 192.168.1.0/24 behind the gateway 192.168.1.1 (which is
//! also their DNS resolver): a NAS (.2), a monitoring host (.3), four PCs
//! (.10-.13), three phones (.20-.22), a DVR with telnet open (.23, the
//! device of the `infected` scenario), IoT plugs, bulbs and sensors
//! (.24-.29, .40-.47), an IP camera (.30), three TVs and speakers (.31-.33),
//! and three late-comers (.50-.52).
//!
//! Background chatter: exchanges (request and reply) of DNS, NTP (to an
//! outside server), MQTT keep-alives, HTTPS, HTTP, ARP, and multicast mDNS
//! (224.0.0.251:5353) and SSDP (239.255.255.250:1900), each host kind with
//! its own mix. Exchanges start at Poisson times whose rate follows the
//! time of day, `1 - 0.55 cos(2 pi t / day)`, lowest at the start (a 6 h
//! capture with a 24 h day sees the rate about double), scaled so that the
//! chatter averages `rate` packets per second over the capture.
//!
//! Churn: the three late-comers join after about 20%, 45% and 70% of the
//! capture (DHCP discover, offer, request, ack, then a gratuitous ARP,
//! before their first traffic); two phones (.21, .22) leave for good after
//! about 30% and 60%; most hosts go quiet for 10-60 minutes now and then
//! (about every 2.5 hours) and come back (they still answer pings).
//!
//! Events on top of the chatter, at fixed rates independent of `rate`:
//! bulk transfers (about 2.5 an hour: a PC or the NAS downloading or
//! uploading over TCP 443, or a PC backing up to or restoring from the NAS
//! over 445, at 400-2,000 full-size frames a second for 20-90 s, i.e.
//! 11-260 MB, with an ACK every second frame the other way);
//! software updates (about every 2 hours, 3-6 IoT devices within a minute
//! each look up the update server and fetch 1-6 MB of firmware over HTTP);
//! the monitoring host pinging every host that has joined, one after the
//! other, every 60 s; and, from about a third of the capture on, a new
//! service: the camera streaming RTP over UDP to a cloud address at 30-60
//! packets a second.
//!
//! Attacks start at `attack_at` (by default after the first 40% of the
//! capture) and last `attack_duration` each, one after the other with a
//! pause as long as an attack between them. See [`Scenario`] for what each
//! sends. Memory stays bounded: only pending replies and running events are
//! kept. Everything follows from the seed, and the benign packets are the
//! same with or without attacks (the attacks draw from their own random
//! stream).

mod hosts;
mod scan;
mod traffic;

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::io::{self, Write};
use std::net::Ipv4Addr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{AttackSpan, SynthSummary, SNAPLEN};
use crate::ingest::packets::capture::LinkType;
use crate::ingest::packets::pcap::PcapWriter;
use hosts::{Host, Reply};
use scan::{FloodSource, Scanner};
use traffic::Transfer;

pub use scan::Scenario;

const NS: f64 = 1e9;
/// Depth of the daily swing of the chatter rate.
const SWING: f64 = 0.55;

/// What the `day` profile generates.
#[derive(Debug, Clone, PartialEq)]
pub struct DayConfig {
    /// Mean packets per second of the background chatter.
    pub rate: f64,
    /// Seed of the random generator.
    pub seed: u64,
    /// Time of the first packet, nanoseconds since the Unix epoch.
    pub start_ns: i64,
    /// Length of the capture in nanoseconds (`--duration`).
    pub duration_ns: Option<i64>,
    /// Maximum number of packets (`--packets`); with a duration, whichever
    /// comes first ends the capture.
    pub packets: Option<u64>,
    /// Period of the daily rate swing, nanoseconds (`--day-length`).
    pub day_ns: i64,
    /// Attacks, in the order they start.
    pub attacks: Vec<Scenario>,
    /// Onset of the first attack, nanoseconds after the start
    /// (`--attack-at`; by default 40% of the capture).
    pub attack_at_ns: Option<i64>,
    /// Length of each attack, nanoseconds (`--attack-duration`).
    pub attack_duration_ns: i64,
    /// How scans run.
    pub scan: ScanConfig,
}

/// Parameters of the scans.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanConfig {
    /// Probes per second of each scanner (`--scan-rate`).
    pub rate: f64,
    /// Scanning hosts at once (`--scanners`).
    pub scanners: u32,
    /// Ports of a horizontal scan (`--scan-ports`).
    pub ports: Vec<u16>,
    /// A vertical scan probes ports 1 to this (`--vscan-ports`).
    pub vscan_ports: u16,
    /// Time from the infected device's first scan to its flood,
    /// nanoseconds (`--infected-delay`).
    pub infected_delay_ns: i64,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            rate: 100.0,
            scanners: 1,
            ports: vec![23],
            vscan_ports: 1024,
            infected_delay_ns: 20_000_000_000,
        }
    }
}

impl Default for DayConfig {
    fn default() -> Self {
        DayConfig {
            rate: 100.0,
            seed: 0,
            start_ns: 1_700_000_000_000_000_000,
            duration_ns: Some(3_600_000_000_000),
            packets: None,
            day_ns: 86_400_000_000_000,
            attacks: Vec::new(),
            attack_at_ns: None,
            attack_duration_ns: 60_000_000_000,
            scan: ScanConfig::default(),
        }
    }
}

/// Slowest chatter or scan rate, per second.
const MIN_RATE: f64 = 0.001;
/// Fastest chatter or scan rate, per second.
const MAX_RATE: f64 = 1e7;

/// Most scanners at once: each gets its own address in 203.0.113.0/24.
pub const MAX_SCANNERS: u32 = 200;

fn bad(msg: String) -> crate::Error {
    crate::Error::Data(msg)
}

impl DayConfig {
    /// Checks the configuration; errors name the command-line flag.
    pub fn validate(&self) -> crate::Result<()> {
        if !(MIN_RATE..=MAX_RATE).contains(&self.rate) {
            return Err(bad(format!(
                "--rate should be {MIN_RATE} to {MAX_RATE} packets per second, not {}",
                self.rate
            )));
        }
        if self.start_ns < 0 {
            return Err(bad("--start should not be before 1970".into()));
        }
        match (self.duration_ns, self.packets) {
            (None, None) => {
                return Err(bad("the day profile needs --duration or --packets".into()))
            }
            (Some(d), _) if d <= 0 => return Err(bad("--duration should be positive".into())),
            _ => {}
        }
        let durations = [
            (self.day_ns, "--day-length"),
            (self.attack_duration_ns, "--attack-duration"),
        ];
        if let Some((_, flag)) = durations.iter().find(|(d, _)| *d <= 0) {
            return Err(bad(format!("{flag} should be positive")));
        }
        if self.attack_at_ns.is_some_and(|t| t < 0) || self.scan.infected_delay_ns < 0 {
            return Err(bad(
                "--attack-at and --infected-delay should not be negative".into(),
            ));
        }
        self.scan.validate()
    }

    /// The expected length of the capture, nanoseconds: the duration, or
    /// the packet count at the chatter rate, whichever is shorter.
    fn span_ns(&self) -> i64 {
        let by_packets = self.packets.map(|n| (n as f64 / self.rate * NS) as i64);
        let span = match (self.duration_ns, by_packets) {
            (Some(d), Some(p)) => d.min(p),
            (d, p) => d.or(p).unwrap_or(0),
        };
        span.max(1)
    }

    /// Onset of attack `i`, nanoseconds since the epoch.
    fn onset_ns(&self, i: usize) -> i64 {
        let first = self
            .attack_at_ns
            .unwrap_or((self.span_ns() as f64 * super::BENIGN_LEAD) as i64);
        let step = self.attack_duration_ns.saturating_mul(2);
        self.start_ns
            .saturating_add(first)
            .saturating_add(step.saturating_mul(i as i64))
    }
}

impl ScanConfig {
    fn validate(&self) -> crate::Result<()> {
        if !(MIN_RATE..=MAX_RATE).contains(&self.rate) {
            return Err(bad(format!(
                "--scan-rate should be {MIN_RATE} to {MAX_RATE} probes per second, not {}",
                self.rate
            )));
        }
        if !(1..=MAX_SCANNERS).contains(&self.scanners) {
            return Err(bad(format!(
                "--scanners should be 1 to {MAX_SCANNERS}, not {}",
                self.scanners
            )));
        }
        if self.ports.is_empty() || self.ports.contains(&0) {
            return Err(bad("--scan-ports should list ports from 1 to 65535".into()));
        }
        if self.vscan_ports == 0 {
            return Err(bad("--vscan-ports should be at least 1".into()));
        }
        Ok(())
    }
}

/// Parses a duration such as `45s`, `90m`, `6h`, `1.5h`, `250ms` or `30`
/// (seconds) into nanoseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale = match unit {
        "ms" => 1e6,
        "" | "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        "d" => 86_400e9,
        _ => return Err(format!("unknown unit in {s:?}: use ms, s, m, h or d")),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 45s, 90m or 6h"))?;
    let ns = v * scale;
    if !(ns.is_finite() && (0.0..9e18).contains(&ns)) {
        return Err(format!("duration {s:?} is out of range"));
    }
    Ok(ns as i64)
}

/// Writes the capture (classic pcap, Ethernet, microseconds) to `pcap` and
/// the labels (`packet_index,label`, with a header) to `labels`.
pub fn write_day<P: Write, L: Write>(
    cfg: &DayConfig,
    pcap: P,
    mut labels: L,
) -> crate::Result<SynthSummary> {
    cfg.validate()?;
    let io = |e: io::Error| bad(format!("writing the synthetic capture: {e}"));
    let mut out = PcapWriter::new(pcap, LinkType::ETHERNET, SNAPLEN, false).map_err(io)?;
    labels.write_all(b"packet_index,label\n").map_err(io)?;
    let mut n = 0u64;
    let summary = generate(cfg, |ts, frame, label| {
        n += 1;
        out.write_packet(ts, frame.len() as u32, frame)?;
        writeln!(labels, "{n},{label}")
    })
    .map_err(io)?;
    out.finish().map_err(io)?;
    labels.flush().map_err(io)?;
    Ok(summary)
}

/// Runs the simulation, handing every frame with its time and label to
/// `emit`. The configuration must be valid.
fn generate(
    cfg: &DayConfig,
    mut emit: impl FnMut(i64, &[u8], &str) -> io::Result<()>,
) -> io::Result<SynthSummary> {
    let mut sim = Sim::new(cfg);
    let end = cfg
        .duration_ns
        .map_or(i64::MAX, |d| cfg.start_ns.saturating_add(d));
    let limit = cfg.packets.unwrap_or(u64::MAX);
    let mut f = Vec::with_capacity(2048);
    let mut summary = SynthSummary::default();
    while summary.packets < limit {
        let Some(Reverse(due)) = sim.queue.pop() else {
            break;
        };
        if due.t > end {
            break;
        }
        let Some(tag) = sim.fire(due.t, due.ev, &mut f) else {
            continue;
        };
        let label = match tag {
            Some(i) => sim.spans[i].note(due.t),
            None => "normal",
        };
        emit(due.t, &f, label)?;
        summary.packets += 1;
        summary.normal += u64::from(tag.is_none());
        summary.end_ns = due.t;
    }
    summary.attacks = sim.spans.into_iter().filter_map(|p| p.seen).collect();
    summary.attacks.sort_by_key(|s| s.onset_ns);
    Ok(summary)
}

/// An attack planned at the start, and its packets seen so far.
struct Planned {
    plan: AttackSpan,
    seen: Option<AttackSpan>,
}

impl Planned {
    fn new(label: &str, attackers: Vec<Ipv4Addr>, targets: Vec<(Ipv4Addr, u8)>) -> Self {
        Planned {
            plan: AttackSpan {
                label: label.to_string(),
                onset_ns: 0,
                end_ns: 0,
                attackers,
                targets,
            },
            seen: None,
        }
    }

    /// Counts a packet at `t`; returns the label.
    fn note(&mut self, t: i64) -> &str {
        let seen = self.seen.get_or_insert_with(|| AttackSpan {
            onset_ns: t,
            ..self.plan.clone()
        });
        seen.end_ns = t;
        &self.plan.label
    }
}

/// Something due to happen: most write one frame.
#[derive(Debug, Clone, Copy)]
enum Event {
    /// A host starts a background exchange.
    Chatter,
    /// The reply half of an exchange.
    Reply(Reply),
    /// Step `1` of host `0` joining (DHCP, then ARP).
    Join(usize, u8),
    /// The monitor pings host `0`.
    Poll(usize),
    /// Host `0` answers ping sequence `1`.
    Echo(usize, u16),
    /// A bulk transfer begins.
    Bulk,
    /// A wave of software updates begins.
    UpdateWave,
    /// Host `0` looks up the update server (step 0) or asks for firmware.
    Update(usize, u8),
    /// Data of transfer slot `0` (with its id `1`).
    Data(usize, u64),
    /// An ACK of transfer slot `0` (with its id `1`).
    Ack(usize, u64),
    /// A frame of the camera's RTP stream.
    Rtp,
    /// Scanner `0` sends a probe.
    Probe(usize),
    /// Host `host` answers scanner `scanner`'s probe of `port`.
    Answer {
        scanner: usize,
        host: usize,
        port: u16,
        sport: u16,
    },
    /// Flood source `0` sends a packet.
    Flood(usize),
}

/// An event and when it is due; `n` orders events due at the same time.
struct Due {
    t: i64,
    n: u64,
    ev: Event,
}

impl PartialEq for Due {
    fn eq(&self, o: &Self) -> bool {
        (self.t, self.n) == (o.t, o.n)
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Due {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.t, self.n).cmp(&(o.t, o.n))
    }
}

/// The simulated network.
struct Sim {
    /// Randomness of the benign traffic.
    rng: ChaCha8Rng,
    /// Randomness of the attacks, apart so that the benign packets are the
    /// same with and without attacks.
    attack_rng: ChaCha8Rng,
    queue: BinaryHeap<Reverse<Due>>,
    n: u64,
    start_ns: i64,
    span_ns: i64,
    hosts: Vec<Host>,
    /// Index into `hosts` by the last octet of the address.
    by_octet: [Option<usize>; 256],
    /// Cumulative chatter weights of the hosts.
    weights: Vec<f64>,
    /// Chatter exchanges per second, before the daily swing.
    exchange_rate: f64,
    day_ns: f64,
    /// Mean of the swing over the capture.
    swing_mean: f64,
    transfers: Vec<Option<Transfer>>,
    next_transfer_id: u64,
    poll_start: i64,
    rtp: traffic::Rtp,
    scanners: Vec<Scanner>,
    floods: Vec<FloodSource>,
    spans: Vec<Planned>,
    /// Random bytes that payloads are cut from.
    noise: Vec<u8>,
    body: Vec<u8>,
}

impl Sim {
    fn new(cfg: &DayConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let span_ns = cfg.span_ns();
        let mut noise = vec![0; 8192];
        rng.fill(&mut noise[..]);
        let phase = std::f64::consts::TAU * span_ns as f64 / cfg.day_ns as f64;
        let mut attack_rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        attack_rng.set_stream(1);
        let mut sim = Sim {
            rng,
            attack_rng,
            queue: BinaryHeap::new(),
            n: 0,
            start_ns: cfg.start_ns,
            span_ns,
            hosts: Vec::new(),
            by_octet: [None; 256],
            weights: Vec::new(),
            exchange_rate: cfg.rate / hosts::PACKETS_PER_EXCHANGE,
            day_ns: cfg.day_ns as f64,
            swing_mean: 1.0 - SWING * phase.sin() / phase,
            transfers: Vec::new(),
            next_transfer_id: 0,
            poll_start: cfg.start_ns,
            rtp: traffic::Rtp::default(),
            scanners: Vec::new(),
            floods: Vec::new(),
            spans: Vec::new(),
            noise,
            body: Vec::with_capacity(2048),
        };
        sim.add_hosts();
        sim.schedule_traffic();
        sim.plan_attacks(cfg);
        sim
    }

    /// Schedules `ev` at `t`.
    fn at(&mut self, t: i64, ev: Event) {
        self.n += 1;
        self.queue.push(Reverse(Due { t, n: self.n, ev }));
    }

    /// Schedules `ev` a random `lo..hi` seconds after `t`.
    fn after(&mut self, t: i64, (lo, hi): (f64, f64), ev: Event) {
        let gap = self.rng.random_range(lo..hi);
        self.at(t + (gap * NS) as i64, ev);
    }

    /// A random time between shares `lo` and `hi` of the capture.
    fn part(&mut self, lo: f64, hi: f64) -> i64 {
        let frac = self.rng.random_range(lo..hi);
        self.start_ns + (self.span_ns as f64 * frac) as i64
    }

    /// Exponential gap with mean `mean` seconds, in nanoseconds.
    fn exp_ns(&mut self, mean: f64) -> i64 {
        (-(1.0 - self.rng.random::<f64>()).ln() * mean * NS) as i64
    }

    /// Writes the frame of `ev` at `t` into `f`, scheduling what follows.
    /// `None`: no frame; `Some(None)`: benign; `Some(Some(i))`: attack `i`.
    fn fire(&mut self, t: i64, ev: Event, f: &mut Vec<u8>) -> Option<Option<usize>> {
        match ev {
            Event::Chatter => self.chatter(t, f).then_some(None),
            Event::Reply(r) => self.reply(t, r, f).then_some(None),
            Event::Join(h, step) => self.join(t, h, step, f).then_some(None),
            Event::Poll(h) => self.poll(t, h, f).then_some(None),
            Event::Echo(h, seq) => self.echo(h, seq, f).then_some(None),
            Event::Bulk => self.bulk(t, f).then_some(None),
            Event::UpdateWave => self.update_wave(t).then_some(None),
            Event::Update(h, step) => self.update(t, h, step, f).then_some(None),
            Event::Data(slot, id) => self.data(t, slot, id, f).then_some(None),
            Event::Ack(slot, id) => self.ack(slot, id, f).then_some(None),
            Event::Rtp => self.rtp(t, f).then_some(None),
            Event::Probe(s) => self.probe(t, s, f).map(Some),
            Event::Answer {
                scanner,
                host,
                port,
                sport,
            } => Some(Some(self.answer(scanner, host, port, sport, f))),
            Event::Flood(s) => self.flood(t, s, f).map(Some),
        }
    }
}

#[cfg(test)]
mod tests;
