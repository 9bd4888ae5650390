//! Attacks of the day profile: floods, scans and an infected device.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::hosts::{INFECTED, NAS};
use super::{DayConfig, Event, Planned, Sim, NS};
use crate::ingest::packets::synth::{
    flood_frame, tcp_frame, Attack, FloodKind, FLOOD_SPEEDUP, GATEWAY_MAC, VICTIM,
};

/// The IoT devices that flood (last octets).
const BOTS: [u8; 4] = [24, 25, 26, 27];
/// Outside scanners get 203.0.113.10, .11, ...
const FIRST_SCANNER: u8 = 10;
/// Addresses a horizontal scan sweeps: 192.168.1.1 to .254.
const SWEEP: u32 = 254;

/// An attack of the day profile, and its label(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// A Mirai flood (label: its name, e.g. `syn-spoofed`) from four IoT
    /// devices (192.168.1.24-.27) to 198.51.100.23, at ten times `rate`.
    Flood(Attack),
    /// `hscan`: outside scanners (203.0.113.10, .11, ...) send TCP SYNs to
    /// the scan ports of 192.168.1.1 to .254, address after address, then
    /// again with the next port. Hosts answer SYN-ACK (open) or RST;
    /// absent addresses stay silent. Answers are labelled `hscan` too.
    HScan,
    /// `vscan`: the scanners send SYNs to ports 1 to N of the NAS
    /// (192.168.1.2), over and over; it answers as above (label `vscan`).
    VScan,
    /// `infected`: the DVR 192.168.1.23 scans random Internet addresses
    /// on telnet (port 23, one probe in ten 2323, as Mirai; label
    /// `infected-scan`, no answers), and after the infected delay also
    /// floods 198.51.100.23 with UDP (label `infected-udp`), while its
    /// benign traffic goes on.
    Infected,
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scenario::Flood(a) => a.fmt(f),
            Scenario::HScan => f.write_str("hscan"),
            Scenario::VScan => f.write_str("vscan"),
            Scenario::Infected => f.write_str("infected"),
        }
    }
}

impl FromStr for Scenario {
    type Err = String;

    /// Parses a flood name (see [`Attack`]), `hscan`, `vscan` or `infected`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hscan" => Ok(Scenario::HScan),
            "vscan" => Ok(Scenario::VScan),
            "infected" => Ok(Scenario::Infected),
            _ => s.parse().map(Scenario::Flood).map_err(|_| {
                format!(
                    "unknown attack {s:?}: expected udp, syn, ack, http or gre (optionally \
                     with -spoofed), hscan, vscan or infected"
                )
            }),
        }
    }
}

/// What a scanner probes.
#[derive(Debug, Clone)]
enum Sweep {
    /// Every home address on each of these ports.
    Horizontal(Vec<u16>),
    /// Ports 1 to N of one host.
    Vertical(Ipv4Addr, u16),
    /// Random Internet addresses on telnet.
    Internet,
}

/// A scanning host.
#[derive(Debug, Clone)]
pub(super) struct Scanner {
    span: usize,
    sweep: Sweep,
    mac: [u8; 6],
    ip: Ipv4Addr,
    /// Where in the sweep it begins.
    offset: u32,
    sent: u64,
    /// Mean seconds between probes.
    gap: f64,
    end_ns: i64,
}

/// A flood and the hosts that send it.
#[derive(Debug, Clone)]
pub(super) struct FloodSource {
    span: usize,
    attack: Attack,
    bots: Vec<usize>,
    /// Mean seconds between packets.
    gap: f64,
    end_ns: i64,
}

/// An outside scanner's address.
fn scanner_ip(k: u32) -> Ipv4Addr {
    Ipv4Addr::new(203, 0, 113, FIRST_SCANNER + k as u8)
}

/// A random public unicast address.
fn internet_addr(rng: &mut ChaCha8Rng) -> Ipv4Addr {
    loop {
        let a = Ipv4Addr::from(rng.random::<u32>());
        let first = a.octets()[0];
        if !(a.is_private() || a.is_loopback() || a.is_link_local() || first == 0 || first >= 224) {
            return a;
        }
    }
}

impl Sim {
    /// Sets up the attacks of `cfg` at their onsets.
    pub(super) fn plan_attacks(&mut self, cfg: &DayConfig) {
        for (i, &sc) in cfg.attacks.iter().enumerate() {
            let onset = cfg.onset_ns(i);
            let end = onset.saturating_add(cfg.attack_duration_ns);
            match sc {
                Scenario::Flood(a) => {
                    let bots = BOTS.iter().filter_map(|&o| self.by_octet[usize::from(o)]);
                    let bots: Vec<usize> = bots.collect();
                    let span = self.plan(&a.to_string(), &bots, (VICTIM, 32));
                    self.add_flood(cfg, span, a, bots, (onset, end));
                }
                Scenario::HScan | Scenario::VScan => self.add_scanners(cfg, sc, (onset, end)),
                Scenario::Infected => self.add_infected(cfg, (onset, end)),
            }
        }
    }

    /// Plans an attack span from `hosts` (indices) to `target`.
    fn plan(&mut self, label: &str, hosts: &[usize], target: (Ipv4Addr, u8)) -> usize {
        let ips = hosts.iter().map(|&h| self.hosts[h].ip).collect();
        self.spans.push(Planned::new(label, ips, vec![target]));
        self.spans.len() - 1
    }

    fn add_flood(
        &mut self,
        cfg: &DayConfig,
        span: usize,
        attack: Attack,
        bots: Vec<usize>,
        (onset, end): (i64, i64),
    ) {
        self.floods.push(FloodSource {
            span,
            attack,
            bots,
            gap: 1.0 / (FLOOD_SPEEDUP * cfg.rate),
            end_ns: end,
        });
        self.at(onset, Event::Flood(self.floods.len() - 1));
    }

    /// Outside scanners for a horizontal or vertical scan.
    fn add_scanners(&mut self, cfg: &DayConfig, sc: Scenario, (onset, end): (i64, i64)) {
        let nas = Ipv4Addr::new(192, 168, 1, NAS);
        let (label, sweep, target) = match sc {
            Scenario::VScan => (
                "vscan",
                Sweep::Vertical(nas, cfg.scan.vscan_ports),
                (nas, 32),
            ),
            _ => (
                "hscan",
                Sweep::Horizontal(cfg.scan.ports.clone()),
                (Ipv4Addr::new(192, 168, 1, 0), 24),
            ),
        };
        let ips = (0..cfg.scan.scanners).map(scanner_ip).collect();
        self.spans.push(Planned::new(label, ips, vec![target]));
        for k in 0..cfg.scan.scanners {
            let s = Scanner {
                span: self.spans.len() - 1,
                sweep: sweep.clone(),
                mac: GATEWAY_MAC,
                ip: scanner_ip(k),
                offset: self.attack_rng.random_range(0..SWEEP),
                sent: 0,
                gap: 1.0 / cfg.scan.rate,
                end_ns: end,
            };
            self.add_scanner(s, onset);
        }
    }

    fn add_scanner(&mut self, s: Scanner, onset: i64) {
        let first = onset.saturating_add((self.attack_rng.random_range(0.0..s.gap) * NS) as i64);
        self.scanners.push(s);
        self.at(first, Event::Probe(self.scanners.len() - 1));
    }

    /// The infected device: a telnet scan, then a UDP flood as well.
    fn add_infected(&mut self, cfg: &DayConfig, (onset, end): (i64, i64)) {
        let Some(h) = self.by_octet[usize::from(INFECTED)] else {
            return;
        };
        let span = self.plan("infected-scan", &[h], (Ipv4Addr::UNSPECIFIED, 0));
        let s = Scanner {
            span,
            sweep: Sweep::Internet,
            mac: self.hosts[h].mac,
            ip: self.hosts[h].ip,
            offset: 0,
            sent: 0,
            gap: 1.0 / cfg.scan.rate,
            end_ns: end,
        };
        self.add_scanner(s, onset);
        let span = self.plan("infected-udp", &[h], (VICTIM, 32));
        let flood = Attack {
            kind: FloodKind::Udp,
            spoofed: false,
        };
        let start = onset.saturating_add(cfg.scan.infected_delay_ns);
        if start < end {
            self.add_flood(cfg, span, flood, vec![h], (start, end));
        }
    }

    /// The next probe of scanner `s`; schedules the one after and the
    /// answer. `None` once the scan is over.
    pub(super) fn probe(&mut self, t: i64, s: usize, f: &mut Vec<u8>) -> Option<usize> {
        let sc = &self.scanners[s];
        if t >= sc.end_ns {
            return None;
        }
        let i = sc.sent + u64::from(sc.offset);
        let planned = match &sc.sweep {
            Sweep::Horizontal(ports) => {
                let addr = 1 + (i % u64::from(SWEEP)) as u8;
                let port = ports[(i / u64::from(SWEEP)) as usize % ports.len()];
                Some((Ipv4Addr::new(192, 168, 1, addr), port))
            }
            Sweep::Vertical(host, n) => Some((*host, 1 + (sc.sent % u64::from(*n)) as u16)),
            Sweep::Internet => None,
        };
        let (dst, port) = planned.unwrap_or_else(|| {
            let port = if self.attack_rng.random_bool(0.9) {
                23
            } else {
                2323
            };
            (internet_addr(&mut self.attack_rng), port)
        });
        let home = dst.octets()[..3] == [192, 168, 1];
        let host = self.by_octet[usize::from(dst.octets()[3])].filter(|_| home);
        let dmac = match host {
            Some(h) => self.hosts[h].mac,
            None if home => [0x02, 0x42, 0x1c, 0x00, 0x01, dst.octets()[3]],
            None => GATEWAY_MAC,
        };
        let sport = self.attack_rng.random_range(1024..65_535);
        let seq = self.attack_rng.random();
        let sc = &mut self.scanners[s];
        // Outside scanners are some hops away.
        let ttl = if sc.mac == GATEWAY_MAC { 47 } else { 64 };
        tcp_frame(
            f,
            sc.mac,
            dmac,
            sc.ip,
            dst,
            ttl,
            (sport, port),
            seq,
            0x02,
            &[],
        );
        sc.sent += 1;
        let (span, gap) = (sc.span, sc.gap);
        let next = t + (gap * self.attack_rng.random_range(0.5..1.5) * NS) as i64;
        self.at(next, Event::Probe(s));
        if let Some(host) = host.filter(|&h| self.hosts[h].present(t)) {
            let answer = Event::Answer {
                scanner: s,
                host,
                port,
                sport,
            };
            let delay = self.attack_rng.random_range(0.0002..0.002);
            self.at(t + (delay * NS) as i64, answer);
        }
        Some(span)
    }

    /// Host `h`'s SYN-ACK (open port) or RST (closed) to scanner `s`.
    pub(super) fn answer(
        &mut self,
        s: usize,
        h: usize,
        port: u16,
        sport: u16,
        f: &mut Vec<u8>,
    ) -> usize {
        let seq = self.attack_rng.random();
        let (sc, d) = (&self.scanners[s], &self.hosts[h]);
        let flags = if d.open_ports().contains(&port) {
            0x12
        } else {
            0x14
        };
        tcp_frame(
            f,
            d.mac,
            sc.mac,
            d.ip,
            sc.ip,
            64,
            (port, sport),
            seq,
            flags,
            &[],
        );
        sc.span
    }

    /// The next packet of flood source `s`. `None` once it is over.
    pub(super) fn flood(&mut self, t: i64, s: usize, f: &mut Vec<u8>) -> Option<usize> {
        let src = &self.floods[s];
        if t >= src.end_ns {
            return None;
        }
        let (span, gap, attack) = (src.span, src.gap, src.attack);
        let bot = src.bots[self.attack_rng.random_range(0..src.bots.len())];
        let (mac, ip) = (self.hosts[bot].mac, self.hosts[bot].ip);
        flood_frame(&mut self.attack_rng, attack, mac, ip, f);
        let gap_ns = -(1.0 - self.attack_rng.random::<f64>()).ln() * gap * NS;
        self.at(t + gap_ns as i64 + 1, Event::Flood(s));
        Some(span)
    }
}
