//! Host-centric damped statistics, both ends of every packet: what a host
//! receives (the *destination* side: flood victims) and what it sends (the
//! *source* side: scanners and infected devices).
//!
//! Kitsune keys its statistics on the *source* (MAC-IP, IP, IP pair, socket
//! pair). A flood from spoofed sources then looks like thousands of new
//! benign hosts each sending one packet. The victim, however, sees the
//! spread of ports and sources it receives, and its SYNs, change at once. A scanner spreads thin over many
//! destinations, each of which sees one probe; but the scanner itself sends
//! to a new address (or port) with nearly every packet. So one table keyed
//! by host (IP, ARP address, or MAC for frames without a network layer)
//! holds both directions, and each packet updates its destination's
//! *received* statistics and its source's *sent* statistics.
//!
//! The features count *events that floods and scans are made of*, not
//! packets or bytes: a benign bulk transfer (one flow, thousands of full
//! frames a second) or a daily swing in volume changes none of them much,
//! while every flood vector and every scan multiplies one of them. For each
//! of four decay rates (λ = 5, 1, 0.1, 0.01 per second; half-lives 0.2 s to
//! 100 s), the destination side gives four features:
//!
//! - `port_changes`: packets per second whose destination port is neither of
//!   the last two distinct ones (random-port floods, vertical scans; a
//!   packet interleaved into a busy flow counts once, not twice);
//! - `src_changes`: the same for sources (spoofed or distributed floods);
//! - `syns`: TCP segments per second with SYN set and ACK clear (SYN floods);
//! - `size_mean`: mean wire length of what it receives;
//!
//! and the source side three:
//!
//! - `new_dsts`: packets per second sent to an address the host has not sent
//!   to in the last two to four minutes (horizontal scans, worms); answers
//!   (TCP RST, SYN-ACK, ICMP errors) do not count, so a scanned host, or a
//!   gateway reporting unreachable addresses, is not a scanner;
//! - `new_services`: the same for (address, port) pairs (vertical scans,
//!   random-port floods from an infected device);
//! - `unanswered_syns`: SYNs it sent to a new (address, port) that nothing
//!   answered (no SYN-ACK, RST or ICMP error came back), a damped count (not a rate): a scanner probing
//!   dead addresses or closed ports piles them up at its probe rate, a
//!   client whose connections are answered within milliseconds keeps it
//!   near zero, however young or busy, and one retrying a silent server
//!   counts it once.
//!
//! A flood that is one flow (one source, one port) is not seen by these
//! features: it is indistinguishable from a bulk transfer without a volume
//! limit, which is the job of a rate limit, not of anomaly detection.
//!
//! **Windows are usable from the first second.** A damped sum of a stream
//! that began `a` seconds ago has only `1 - 2^(-λa)` of its settled weight,
//! so a slow window (λ = 0.01) would need several hundred seconds to settle
//! and a detector learned before then would flag every benign host as its
//! rate "grows". Rates here are divided by the damped length of the host's
//! own life instead (the same sum over time, kept alongside at no extra
//! cost), which makes them unbiased from the start; a host younger than one
//! second counts as one second old, so a burst of first packets does not
//! read as an extreme rate. Means, variances and shares are ratios of damped
//! sums and need no correction.
//!
//! Each packet costs two table lookups (its two hosts) and eight `exp2`
//! (the fade of each host's four windows).
//!
//! "Recently contacted" is a pair of 256-bit Bloom filters per host, the
//! current and the previous generation, swapped every [`GENERATION`]
//! seconds: fixed memory whatever the fan-out, a false "seen" at most a few
//! percent for the dozens of peers a device talks to.
//!
//! The table holds at most `capacity` hosts, evicting the least recently
//! seen one, so memory is bounded whatever the traffic (about 300 bytes a
//! host).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::features::packet::{FeatureExtractor, FeatureGroup, Side, TableState};
use crate::features::stream_table::{Hashed, Table, TableStats};
use crate::ingest::flows::FlowRecord;
use crate::ingest::packets::{Network, PacketMeta, Transport};
use crate::{Error, Result};

/// Decay rates per second (fastest first).
const LAMBDAS: [f64; 4] = [5.0, 1.0, 0.1, 0.01];
const LANES: usize = LAMBDAS.len();
/// Destination-side features per rate.
const DST_PER_LANE: usize = 4;
/// Source-side features per rate.
const SRC_PER_LANE: usize = 3;
/// Destination-side features.
pub const DST_FEATURES: usize = DST_PER_LANE * LANES;
/// Number of features of the layout.
pub const N_FEATURES: usize = (DST_PER_LANE + SRC_PER_LANE) * LANES;
/// Youngest age (seconds) a host's rates are computed for.
const MIN_AGE: f64 = 1.0;
/// Seconds a Bloom filter generation lasts: two to four minutes of memory,
/// so a device calling its cloud server every few minutes does not meet it
/// anew each time.
pub const GENERATION: f64 = 120.0;

/// A host: the end of a packet a statistic is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum Target {
    Ip(IpAddr),
    Mac([u8; 6]),
}

impl Target {
    fn dst(p: &PacketMeta) -> Self {
        match p.network {
            Network::Ip { dst, .. } => Target::Ip(dst),
            Network::Arp { target, .. } => Target::Ip(IpAddr::V4(target)),
            Network::None => Target::Mac(p.dst_mac),
        }
    }

    fn src(p: &PacketMeta) -> Self {
        match p.network {
            Network::Ip { src, .. } => Target::Ip(src),
            Network::Arp { sender, .. } => Target::Ip(IpAddr::V4(sender)),
            Network::None => Target::Mac(p.src_mac),
        }
    }

    /// A 64-bit hash, stable across runs (FNV-1a).
    fn hash(&self) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        let mut eat = |b: &[u8]| {
            for &x in b {
                h = (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
            }
        };
        match self {
            Target::Ip(IpAddr::V4(a)) => eat(&a.octets()),
            Target::Ip(IpAddr::V6(a)) => eat(&a.octets()),
            Target::Mac(m) => {
                eat(&[0xff]);
                eat(m);
            }
        }
        h
    }
}

/// Damped sums of one decay rate, both directions.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Lane {
    /// Damped length of the host's life (seconds): the rates' divisor.
    life: f64,
    w_in: f64,
    size: f64,
    syn_in: f64,
    port_change: f64,
    src_change: f64,
    unanswered: f64,
    new_dst: f64,
    new_service: f64,
}

/// Two generations of a 256-bit Bloom filter of recently contacted peers.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Recent {
    since: f64,
    now: [u64; 4],
    before: [u64; 4],
}

impl Recent {
    fn bits(h: u64) -> [(usize, u64); 2] {
        let a = (h & 0xff) as usize;
        let b = ((h >> 32) & 0xff) as usize;
        [(a / 64, 1 << (a % 64)), (b / 64, 1 << (b % 64))]
    }

    /// Moves to generation of time `t`.
    fn age(&mut self, t: f64) {
        if t - self.since >= 2.0 * GENERATION {
            *self = Recent {
                since: t,
                ..Recent::default()
            };
        } else if t - self.since >= GENERATION {
            self.before = self.now;
            self.now = [0; 4];
            self.since = t;
        }
    }

    /// Records `h`; whether it was new (in neither generation).
    fn insert(&mut self, h: u64) -> bool {
        let bits = Self::bits(h);
        let seen = |f: &[u64; 4]| bits.iter().all(|&(i, m)| f[i] & m != 0);
        let new = !seen(&self.now) && !seen(&self.before);
        for (i, m) in bits {
            self.now[i] |= m;
        }
        new
    }
}

/// Everything kept about one host.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Host {
    last_t: f64,
    last_dports: [u16; 2],
    last_srcs: [u64; 2],
    lanes: [Lane; LANES],
    recent: Recent,
}

/// What one record (a packet, or a flow record) adds to the host at its
/// destination.
#[derive(Debug, Clone, Copy)]
struct Received {
    /// Packets and bytes the record stands for.
    packets: f64,
    size: f64,
    /// SYN segments among them.
    syn: f64,
    /// 1 for an answer to one of the host's SYNs (SYN-ACK, RST, ICMP error).
    answer: f64,
    dport: u16,
    src: u64,
}

/// What one record adds to the host at its source.
#[derive(Debug, Clone, Copy)]
struct Sent {
    answer: bool,
    /// 1 when the record is a SYN nothing has answered yet.
    syn: f64,
    dst: u64,
    service: u64,
}

/// How a record's counts spread over each window: 1 for a packet; for a
/// flow, what its packets spread evenly over its interval leave at its end
/// (`packets`), and what its first packet leaves (`first`: changes and new
/// peers happen there), each times `flows`, the flows a sampled record
/// stands for.
#[derive(Debug, Clone, Copy)]
struct Spread {
    packets: [f64; LANES],
    first: [f64; LANES],
    flows: f64,
}

impl Spread {
    const PACKET: Spread = Spread {
        packets: [1.0; LANES],
        first: [1.0; LANES],
        flows: 1.0,
    };

    /// A record spanning `d` seconds that stands for `flows` flows.
    fn over(d: f64, flows: f64) -> Self {
        let d = if d.is_finite() { d.max(0.0) } else { 0.0 };
        let mut s = Spread {
            flows,
            ..Spread::PACKET
        };
        for (l, lambda) in LAMBDAS.iter().enumerate() {
            let x = lambda * d;
            if x > 1e-9 {
                s.first[l] = (-x).exp2();
                s.packets[l] = (1.0 - s.first[l]) / (x * std::f64::consts::LN_2);
            }
        }
        s
    }
}

impl Host {
    fn new(t: f64) -> Self {
        Host {
            last_t: t,
            last_dports: [0; 2],
            last_srcs: [0; 2],
            lanes: [Lane::default(); LANES],
            recent: Recent {
                since: t,
                ..Recent::default()
            },
        }
    }

    /// Fades every sum to `t`; packets out of order neither fade nor rewind.
    #[inline]
    fn fade(&mut self, t: f64) {
        let dt = t - self.last_t;
        if dt <= 0.0 {
            return;
        }
        for (lane, lambda) in self.lanes.iter_mut().zip(LAMBDAS) {
            let f = (-lambda * dt).exp2();
            let grow = (1.0 - f) / (lambda * std::f64::consts::LN_2);
            lane.life = lane.life * f + grow;
            for v in [
                &mut lane.w_in,
                &mut lane.size,
                &mut lane.syn_in,
                &mut lane.port_change,
                &mut lane.src_change,
                &mut lane.unanswered,
                &mut lane.new_dst,
                &mut lane.new_service,
            ] {
                *v *= f;
            }
        }
        self.last_t = t;
    }

    #[inline]
    fn receive(&mut self, r: &Received, w: &Spread, floor: &[f64; LANES], out: &mut [f64]) {
        let port_change = f64::from(u8::from(changed(&mut self.last_dports, r.dport))) * w.flows;
        let src_change = f64::from(u8::from(changed(&mut self.last_srcs, r.src))) * w.flows;
        for (l, ((lane, o), floor)) in self
            .lanes
            .iter_mut()
            .zip(out.chunks_exact_mut(DST_PER_LANE))
            .zip(floor)
            .enumerate()
        {
            let (spread, first) = (w.packets[l], w.first[l]);
            lane.w_in += r.packets * spread;
            lane.size += r.size * spread;
            lane.syn_in += r.syn * spread;
            lane.port_change += port_change * first;
            lane.src_change += src_change * first;
            lane.unanswered = (lane.unanswered - r.answer * w.flows).max(0.0);
            let life = lane.life.max(*floor);
            o.copy_from_slice(&[
                lane.port_change / life,
                lane.src_change / life,
                lane.syn_in / life,
                lane.size / lane.w_in,
            ]);
        }
    }

    #[inline]
    fn send(&mut self, s: &Sent, w: &Spread, t: f64, floor: &[f64; LANES], out: &mut [f64]) {
        self.recent.age(t);
        let (mut new_dst, mut new_service) = (0.0, 0.0);
        if !s.answer {
            new_dst = f64::from(u8::from(self.recent.insert(s.dst))) * w.flows;
            new_service = f64::from(u8::from(self.recent.insert(s.service))) * w.flows;
        }
        for (l, ((lane, o), floor)) in self
            .lanes
            .iter_mut()
            .zip(out.chunks_exact_mut(SRC_PER_LANE))
            .zip(floor)
            .enumerate()
        {
            let first = w.first[l];
            lane.unanswered += s.syn * new_service;
            lane.new_dst += new_dst * first;
            lane.new_service += new_service * first;
            let life = lane.life.max(*floor);
            o.copy_from_slice(&[
                lane.new_dst / life,
                lane.new_service / life,
                lane.unanswered,
            ]);
        }
    }
}

/// The hash of a host's service `port`.
#[inline]
fn service(host: u64, port: u16) -> u64 {
    host ^ (u64::from(port) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Whether `v` is neither of the last two distinct values, which it
/// becomes the latest of: a packet interleaved into a busy flow changes
/// once, not twice.
#[inline]
fn changed<T: Copy + PartialEq>(last: &mut [T; 2], v: T) -> bool {
    if v == last[0] {
        return false;
    }
    let new = v != last[1];
    *last = [v, last[0]];
    new
}

/// The damped length of [`MIN_AGE`] seconds of life in each window: the
/// least a rate is divided by.
fn min_lives() -> [f64; LANES] {
    LAMBDAS.map(|l| (1.0 - (-l * MIN_AGE).exp2()) / (l * std::f64::consts::LN_2))
}

/// The host-centric layout (`victim`); see the [module docs](self).
#[derive(Debug)]
pub struct Victim {
    names: Vec<String>,
    hosts: Table<Target, Host>,
    /// Each window's [`min_lives`], computed once.
    min_life: [f64; LANES],
}

/// The saved state of a [`Victim`]: hosts, least recently seen first.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    hosts: Vec<(Target, Host)>,
    evictions: u64,
}

impl Victim {
    /// An empty extractor whose host table holds at most `capacity` hosts
    /// (at least 2).
    pub fn new(capacity: usize) -> Result<Self> {
        Ok(Victim {
            names: names(),
            hosts: host_table(capacity)?,
            min_life: min_lives(),
        })
    }

    /// Column names, one per feature, in output order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Updates the statistics with packet `p` and writes its features.
    ///
    /// # Panics
    /// If `out.len()` is not [`N_FEATURES`] (a caller bug).
    pub fn update(&mut self, p: &PacketMeta, out: &mut [f64]) {
        assert_eq!(out.len(), N_FEATURES, "output slice length");
        let t = p.timestamp;
        let (dst, src) = (Target::dst(p), Target::src(p));
        let (dst_h, src_h) = (dst.hash(), src.hash());
        // Answers (SYN-ACK, RST, ICMP errors) reach no new peer of the
        // sender's choice, and answer the receiver's connection attempts.
        let (syn, dport, answer) = match p.transport {
            Transport::Tcp {
                flags, dst_port, ..
            } => (
                f64::from(u8::from(flags & 0x12 == 0x02)),
                dst_port,
                flags & 0x04 != 0 || flags & 0x12 == 0x12,
            ),
            Transport::Udp { dst_port, .. } => (0.0, dst_port, false),
            Transport::Icmp { quoted, .. } => (0.0, 0, quoted.is_some()),
            _ => (0.0, 0, false),
        };
        let (dst_out, src_out) = out.split_at_mut(DST_FEATURES);
        let received = Received {
            packets: 1.0,
            size: f64::from(p.wire_len),
            syn,
            answer: f64::from(u8::from(answer)),
            dport,
            src: src_h,
        };
        let floor = self.min_life;
        let one = &Spread::PACKET;
        let (dst, src) = (self.hosts.hashed(dst), self.hosts.hashed(src));
        self.host(dst, t).receive(&received, one, &floor, dst_out);
        let sent = Sent {
            answer,
            syn,
            dst: dst_h,
            service: service(dst_h, dport),
        };
        self.host(src, t).send(&sent, one, t, &floor, src_out);
    }

    /// Updates the statistics with flow record `r` and writes its features;
    /// see [`flow`](super::flow) for how a flow counts.
    ///
    /// # Panics
    /// If `out.len()` is not [`N_FEATURES`] (a caller bug).
    pub fn update_flow(&mut self, r: &FlowRecord, out: &mut [f64]) {
        assert_eq!(out.len(), N_FEATURES, "output slice length");
        let t = r.end;
        let (dst, src) = (Target::Ip(r.dst), Target::Ip(r.src));
        let (dst_h, src_h) = (dst.hash(), src.hash());
        let c = super::flow::Counts::of(r);
        let spread = Spread::over(r.end - r.start, c.flows);
        let dport = if c.ports { r.dst_port } else { 0 };
        let received = Received {
            packets: c.packets,
            size: c.bytes,
            syn: c.syns,
            answer: f64::from(u8::from(c.answer)),
            dport,
            src: src_h,
        };
        let floor = self.min_life;
        let (dst_out, src_out) = out.split_at_mut(DST_FEATURES);
        let (dst, src) = (self.hosts.hashed(dst), self.hosts.hashed(src));
        self.host(dst, t)
            .receive(&received, &spread, &floor, dst_out);
        let sent = Sent {
            answer: c.answer,
            syn: f64::from(u8::from(c.probe)),
            dst: dst_h,
            service: service(dst_h, dport),
        };
        self.host(src, t).send(&sent, &spread, t, &floor, src_out);
    }

    /// The host `key`, faded to `t` (created if new, evicting the least
    /// recently seen when full).
    #[inline]
    fn host(&mut self, key: Hashed<Target>, t: f64) -> &mut Host {
        let i = self.hosts.get_or_insert_evicting(key, || Host::new(t));
        let h = self.hosts.get_mut(i);
        h.fade(t);
        h
    }

    /// Hosts held now.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether no host has been seen (or all were evicted).
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Most hosts held.
    pub fn capacity(&self) -> usize {
        self.hosts.capacity()
    }

    /// Hosts evicted because the table was full.
    pub fn evictions(&self) -> u64 {
        self.hosts.evicted()
    }
}

impl FeatureExtractor for Victim {
    fn names(&self) -> &[String] {
        Victim::names(self)
    }

    fn update(&mut self, p: &PacketMeta, out: &mut [f64]) {
        Victim::update(self, p, out)
    }

    fn table_stats(&self) -> Vec<TableStats> {
        vec![self.hosts.stats("hosts")]
    }

    fn groups(&self) -> Vec<FeatureGroup> {
        vec![
            FeatureGroup {
                side: Side::Destination,
                range: 0..DST_FEATURES,
            },
            FeatureGroup {
                side: Side::Source,
                range: DST_FEATURES..N_FEATURES,
            },
        ]
    }

    fn state(&self) -> Option<TableState> {
        let hosts = self.hosts.oldest_first().map(|(k, h)| (*k, *h)).collect();
        let s = State {
            hosts,
            evictions: self.hosts.evicted(),
        };
        TableState::of(&s)
    }

    fn restore(&mut self, state: &str) -> Result<()> {
        let s = serde_json::from_str::<State>(state)
            .map_err(|e| Error::Data(format!("the saved victim table is unreadable: {e}")))?;
        self.hosts = host_table(self.hosts.capacity())?;
        for (k, h) in s.hosts {
            let key = self.hosts.hashed(k);
            let i = self.hosts.get_or_insert_evicting(key, || h);
            *self.hosts.get_mut(i) = h;
        }
        self.hosts.set_evicted(s.evictions);
        Ok(())
    }
}

/// A host table of `capacity` hosts (evicted, never reclaimed: a faded
/// host's Bloom filters still matter).
fn host_table(capacity: usize) -> Result<Table<Target, Host>> {
    Table::evicting(capacity).map_err(|e| Error::Data(format!("victim host {e}")))
}

/// `dst_L5_rate`, ..., `src_L0.01_syn_share`.
fn names() -> Vec<String> {
    let mut names = Vec::with_capacity(N_FEATURES);
    for l in LAMBDAS {
        for s in ["port_changes", "src_changes", "syns", "size_mean"] {
            names.push(format!("dst_L{l}_{s}"));
        }
    }
    for l in LAMBDAS {
        for s in ["new_dsts", "new_services", "unanswered_syns"] {
            names.push(format!("src_L{l}_{s}"));
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn pkt_from(t: f64, src: u8, dst: u8, flags: u8, len: u32, dport: u16) -> PacketMeta {
        PacketMeta {
            index: 1,
            timestamp: t,
            wire_len: len,
            src_mac: [0; 6],
            dst_mac: [0; 6],
            network: Network::Ip {
                src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, src)),
                dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, dst)),
            },
            transport: Transport::Tcp {
                src_port: 1,
                dst_port: dport,
                flags,
            },
            fragment: None,
        }
    }

    fn pkt(t: f64, dst: u8, flags: u8, len: u32) -> PacketMeta {
        pkt_from(t, 1, dst, flags, len, 80)
    }

    fn flow_rec(t: (f64, f64), src: u8, flags: u8, packets: u64, dport: u16) -> FlowRecord {
        FlowRecord {
            exporter: IpAddr::V4(Ipv4Addr::LOCALHOST),
            domain: 0,
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, src)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)),
            src_port: 1,
            dst_port: dport,
            protocol: 6,
            tcp_flags: flags,
            packets,
            bytes: packets * 60,
            start: t.0,
            end: t.1,
            sampling_rate: 1,
        }
    }

    /// A flood of one-packet flows gives the features of its packets.
    #[test]
    fn one_packet_flows_give_the_features_of_their_packets() {
        let (mut a, mut b) = (Victim::new(64).unwrap(), Victim::new(64).unwrap());
        let (mut fa, mut fb) = (vec![0.0; N_FEATURES], vec![0.0; N_FEATURES]);
        for i in 0..500u16 {
            let t = 10.0 + f64::from(i) * 0.002;
            let src = (i % 200) as u8 + 20;
            a.update(&pkt_from(t, src, 9, 0x02, 60, 80 + i % 7), &mut fa);
            b.update_flow(&flow_rec((t, t), src, 0x02, 1, 80 + i % 7), &mut fb);
        }
        assert_eq!(fa, fb);
    }

    /// A flow's packets spread over its interval give what the windows
    /// would hold had they seen the packets one by one.
    #[test]
    fn a_long_flow_counts_as_its_packets_spread_over_its_interval() {
        let (mut a, mut b) = (Victim::new(64).unwrap(), Victim::new(64).unwrap());
        let (mut fa, mut fb) = (vec![0.0; N_FEATURES], vec![0.0; N_FEATURES]);
        // Warm both up identically, then 1,000 SYNs over one second.
        for v in [&mut a, &mut b] {
            v.update(&pkt_from(0.0, 3, 9, 0x10, 60, 80), &mut fa);
        }
        for k in 0..1_000 {
            let t = 5.0 + f64::from(k + 1) / 1_000.0;
            a.update(&pkt_from(t, 3, 9, 0x02, 60, 80), &mut fa);
        }
        b.update_flow(&flow_rec((5.0, 6.0), 3, 0x02, 1_000, 80), &mut fb);
        for lambda in ["5", "1", "0.1", "0.01"] {
            let c = col(&a, &format!("dst_L{lambda}_syns"));
            let rel = (fb[c] / fa[c] - 1.0).abs();
            assert!(rel < 0.01, "L{lambda}: flow {} packets {}", fb[c], fa[c]);
            let m = col(&a, &format!("dst_L{lambda}_size_mean"));
            assert!((fb[m] - fa[m]).abs() < 1e-6);
        }
    }

    fn col(v: &Victim, name: &str) -> usize {
        v.names().iter().position(|n| n == name).unwrap()
    }

    #[test]
    fn names_are_unique_and_match_the_width() {
        let v = Victim::new(4).unwrap();
        assert_eq!(v.names().len(), N_FEATURES);
        let mut n = v.names().to_vec();
        n.sort();
        n.dedup();
        assert_eq!(n.len(), N_FEATURES);
        assert_eq!(v.names()[0], "dst_L5_port_changes");
        assert_eq!(v.names()[DST_FEATURES], "src_L5_new_dsts");
    }

    #[test]
    fn a_syn_burst_raises_the_victims_syns_and_port_changes() {
        let mut v = Victim::new(16).unwrap();
        let mut out = vec![0.0; N_FEATURES];
        v.update(&pkt(0.0, 2, 0x10, 100), &mut out);
        let syns = col(&v, "dst_L1_syns");
        let ports = col(&v, "dst_L1_port_changes");
        assert_eq!(out[syns], 0.0);
        for k in 0..1000u16 {
            let p = pkt_from(1.0 + f64::from(k) * 1e-3, 1, 2, 0x02, 60, k);
            v.update(&p, &mut out);
        }
        assert!(out[syns] > 300.0, "{}", out[syns]);
        assert!(out[ports] > 300.0, "{}", out[ports]);
        // Another target is unaffected.
        v.update(&pkt(2.0, 3, 0x10, 100), &mut out);
        assert_eq!(out[syns], 0.0);
        assert_eq!(out[col(&v, "dst_L0.01_size_mean")], 100.0);
    }

    #[test]
    fn one_busy_flow_changes_nothing() {
        // A bulk transfer: 2,000 full frames a second, one source, one port.
        let mut v = Victim::new(16).unwrap();
        let mut out = vec![0.0; N_FEATURES];
        for k in 0..4000 {
            v.update(
                &pkt_from(f64::from(k) * 5e-4, 7, 2, 0x10, 1514, 50_000),
                &mut out,
            );
        }
        for name in ["dst_L5_port_changes", "dst_L5_src_changes", "dst_L5_syns"] {
            assert!(out[col(&v, name)] < 1.0, "{name}: {}", out[col(&v, name)]);
        }
        assert!(out[col(&v, "src_L5_new_services")] < 1.0);
    }

    #[test]
    fn rates_are_unbiased_from_the_start_in_every_window() {
        // SYNs at a steady 10 a second: every window reads about 10 after
        // 5 s, long before the slow one (half-life 100 s) has settled.
        let mut v = Victim::new(16).unwrap();
        let mut out = vec![0.0; N_FEATURES];
        for k in 0..=50 {
            v.update(&pkt(f64::from(k) * 0.1, 2, 0x02, 60), &mut out);
        }
        for l in ["5", "1", "0.1", "0.01"] {
            let r = out[col(&v, &format!("dst_L{l}_syns"))];
            assert!((r - 10.0).abs() < 2.5, "lambda {l}: {r}");
        }
    }

    #[test]
    fn a_horizontal_scan_raises_the_scanners_new_destinations() {
        let mut v = Victim::new(4096).unwrap();
        let mut out = vec![0.0; N_FEATURES];
        let new_dst = col(&v, "src_L1_new_dsts");
        // A device talking to the same two peers: no new destinations.
        for k in 0..200 {
            v.update(
                &pkt_from(f64::from(k) * 0.05, 7, 2 + (k % 2) as u8, 0x10, 90, 443),
                &mut out,
            );
        }
        assert!(out[new_dst] < 0.05, "{}", out[new_dst]);
        // A scanner: 50 probes/s, each to a new address.
        for k in 0..100u32 {
            let mut p = pkt_from(10.0 + f64::from(k) * 0.02, 9, 0, 0x02, 60, 23);
            p.network = Network::Ip {
                src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)),
                dst: IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + k)),
            };
            v.update(&p, &mut out);
        }
        assert!(out[new_dst] > 20.0, "{}", out[new_dst]);
        assert!(out[col(&v, "src_L1_unanswered_syns")] > 20.0);
    }

    #[test]
    fn answered_syns_are_not_counted_and_unanswered_ones_pile_up() {
        let mut v = Victim::new(64).unwrap();
        let mut out = vec![0.0; N_FEATURES];
        let unanswered = col(&v, "src_L0.1_unanswered_syns");
        // A client opening 20 connections a second, each answered.
        for k in 0..200 {
            let t = f64::from(k) * 0.05;
            v.update(&pkt_from(t, 7, 2, 0x02, 60, 443), &mut out);
            assert!(out[unanswered] <= 1.0, "{}", out[unanswered]);
            v.update(&pkt_from(t + 0.001, 2, 7, 0x12, 60, 40_000), &mut out);
        }
        // A client retrying a silent server: its SYNs count once.
        for k in 0..10 {
            v.update(&pkt_from(15.0 + f64::from(k), 7, 4, 0x02, 60, 80), &mut out);
        }
        assert!(out[unanswered] <= 1.0, "{}", out[unanswered]);
        // A scanner at 10 probes a second, none answered: about 50 after 5 s.
        for k in 0..50u16 {
            v.update(
                &pkt_from(20.0 + f64::from(k) * 0.1, 9, 3, 0x02, 60, k),
                &mut out,
            );
        }
        assert!(out[unanswered] > 35.0, "{}", out[unanswered]);
    }

    #[test]
    fn statistics_fade_with_time_and_ignore_reordering() {
        let mut v = Victim::new(16).unwrap();
        let mut out = vec![0.0; N_FEATURES];
        v.update(&pkt(10.0, 2, 0x02, 60), &mut out);
        v.update(&pkt(20.0, 2, 0x02, 60), &mut out);
        let slow = out[col(&v, "dst_L1_syns")];
        v.update(&pkt(5.0, 2, 0x02, 60), &mut out);
        assert!(out[col(&v, "dst_L1_syns")] > slow);
        assert!(out.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn the_table_is_bounded_and_counts_evictions() {
        let mut v = Victim::new(3).unwrap();
        let mut out = vec![0.0; N_FEATURES];
        for d in 0..10 {
            v.update(&pkt(f64::from(d), d + 10, 0, 60), &mut out);
        }
        assert_eq!(v.len(), 3);
        assert_eq!(v.capacity(), 3);
        assert!(v.evictions() >= 7, "{}", v.evictions());
        assert!(Victim::new(0).is_err());
    }

    #[test]
    fn saved_state_restores_the_same_features() {
        let mut a = Victim::new(64).unwrap();
        let mut out = vec![0.0; N_FEATURES];
        for k in 0..300 {
            a.update(
                &pkt_from(k as f64 * 0.01, k as u8 % 5, 20, 0x10, 80, 443),
                &mut out,
            );
        }
        let mut b = Victim::new(64).unwrap();
        b.restore(a.state().unwrap().json()).unwrap();
        let (mut x, mut y) = (vec![0.0; N_FEATURES], vec![0.0; N_FEATURES]);
        let p = pkt_from(3.5, 2, 20, 0x10, 80, 443);
        a.update(&p, &mut x);
        b.update(&p, &mut y);
        assert_eq!(x, y);
        assert_eq!(a.len(), b.len());
        assert!(b.restore(r#"{"hosts": 3}"#).is_err());
    }

    #[test]
    fn frames_without_ip_are_keyed_on_the_mac() {
        let mut v = Victim::new(4).unwrap();
        let mut out = vec![0.0; N_FEATURES];
        let mut p = pkt(0.0, 2, 0, 60);
        p.network = Network::None;
        p.transport = Transport::None;
        v.update(&p, &mut out);
        p.dst_mac = [1; 6];
        v.update(&p, &mut out);
        assert_eq!(v.len(), 2);
        assert!(out.iter().all(|x| x.is_finite()));
    }
}
