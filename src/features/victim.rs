//! Victim-centric damped statistics: what a target sees, whoever sends it.
//!
//! Kitsune keys its statistics on the *source* (MAC-IP, IP, IP pair, socket
//! pair). A flood from spoofed sources then looks like thousands of new
//! benign hosts each sending one packet: every source-keyed stream is fresh
//! and unremarkable. The victim, however, sees its packet rate, its share of
//! SYNs without ACK and the sizes it receives change at once. This family
//! keys damped statistics on the *destination* host (IP, ARP target, or MAC
//! for frames without a network layer).
//!
//! There is deliberately no all-traffic family: with one, every benign packet
//! during a flood scores as anomalous and alerts name bystanders as targets.
//!
//! For each of the five decay rates of Kitsune (λ = 5, 3, 1, 0.1, 0.01 per
//! second), four features:
//!
//! - `weight`: damped packet count (a rate);
//! - `size_mean`, `size_var`: damped mean and variance of the wire length;
//! - `syn_share`: damped share of TCP segments with SYN set and ACK clear.
//!
//! The destination table holds at most `capacity` hosts, evicting the least
//! recently seen one, so memory is bounded whatever the traffic.

use std::net::IpAddr;
use std::num::NonZeroUsize;

use lru::LruCache;

use crate::features::packet::FeatureExtractor;
use crate::features::stream_table::TableStats;
use crate::ingest::packets::{Network, PacketMeta, Transport};
use crate::{Error, Result};

/// Decay rates per second, as Kitsune's windows (fastest first).
const LAMBDAS: [f64; 5] = [5.0, 3.0, 1.0, 0.1, 0.01];
/// Features per key and rate.
const PER_LANE: usize = 4;
/// Number of features of the layout.
pub const N_FEATURES: usize = PER_LANE * LAMBDAS.len();

/// The host a packet is aimed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Target {
    Ip(IpAddr),
    Mac([u8; 6]),
}

impl Target {
    fn of(p: &PacketMeta) -> Self {
        match p.network {
            Network::Ip { dst, .. } => Target::Ip(dst),
            Network::Arp { target, .. } => Target::Ip(IpAddr::V4(target)),
            Network::None => Target::Mac(p.dst_mac),
        }
    }
}

/// Damped sums of one decay rate.
#[derive(Debug, Clone, Copy, Default)]
struct Lane {
    w: f64,
    size: f64,
    size2: f64,
    syn: f64,
}

/// Damped statistics of one key for every rate, on one clock.
#[derive(Debug, Clone, Copy)]
struct Damped {
    last_t: f64,
    lanes: [Lane; LAMBDAS.len()],
}

impl Damped {
    fn new(t: f64) -> Self {
        Damped {
            last_t: t,
            lanes: [Lane::default(); LAMBDAS.len()],
        }
    }

    /// Fades the sums to `t` (packets out of order neither fade nor rewind),
    /// adds the packet and writes the features.
    #[inline]
    fn update(&mut self, t: f64, size: f64, syn: f64, out: &mut [f64]) {
        let dt = t - self.last_t;
        if dt > 0.0 {
            for (lane, lambda) in self.lanes.iter_mut().zip(LAMBDAS) {
                let f = (-lambda * dt).exp2();
                lane.w *= f;
                lane.size *= f;
                lane.size2 *= f;
                lane.syn *= f;
            }
            self.last_t = t;
        }
        for (lane, o) in self.lanes.iter_mut().zip(out.chunks_exact_mut(PER_LANE)) {
            lane.w += 1.0;
            lane.size += size;
            lane.size2 += size * size;
            lane.syn += syn;
            let mean = lane.size / lane.w;
            let var = (lane.size2 / lane.w - mean * mean).max(0.0);
            o.copy_from_slice(&[lane.w, mean, var, lane.syn / lane.w]);
        }
    }
}

/// The victim-centric layout (`victim`); see the [module docs](self).
#[derive(Debug)]
pub struct Victim {
    names: Vec<String>,
    targets: LruCache<Target, Damped>,
    evictions: u64,
}

impl Victim {
    /// An empty extractor whose destination table holds at most `capacity`
    /// hosts (at least 1).
    pub fn new(capacity: usize) -> Result<Self> {
        let cap = NonZeroUsize::new(capacity)
            .ok_or_else(|| Error::Data("victim table capacity should be at least 1".into()))?;
        Ok(Victim {
            names: names(),
            targets: LruCache::new(cap),
            evictions: 0,
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
        let size = f64::from(p.wire_len);
        let syn = match p.transport {
            Transport::Tcp { flags, .. } if flags & 0x12 == 0x02 => 1.0,
            _ => 0.0,
        };
        let key = Target::of(p);
        match self.targets.get_mut(&key) {
            Some(d) => d.update(t, size, syn, out),
            None => {
                let mut d = Damped::new(t);
                d.update(t, size, syn, out);
                if self.targets.push(key, d).is_some_and(|(k, _)| k != key) {
                    self.evictions += 1;
                }
            }
        }
    }

    /// Destination hosts held now.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether no destination has been seen (or all were evicted).
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Most destination hosts held.
    pub fn capacity(&self) -> usize {
        self.targets.cap().get()
    }

    /// Destination hosts evicted because the table was full.
    pub fn evictions(&self) -> u64 {
        self.evictions
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
        vec![TableStats {
            name: "dst".into(),
            len: self.len(),
            capacity: self.capacity(),
            evicted: self.evictions,
            reclaimed: 0,
        }]
    }
}

/// `dst_L5_weight`, ..., `dst_L0.01_syn_share`.
fn names() -> Vec<String> {
    let mut names = Vec::with_capacity(N_FEATURES);
    for l in LAMBDAS {
        for s in ["weight", "size_mean", "size_var", "syn_share"] {
            names.push(format!("dst_L{l}_{s}"));
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn pkt(t: f64, dst: u8, flags: u8, len: u32) -> PacketMeta {
        PacketMeta {
            index: 1,
            timestamp: t,
            wire_len: len,
            src_mac: [0; 6],
            dst_mac: [0; 6],
            network: Network::Ip {
                src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, dst)),
            },
            transport: Transport::Tcp {
                src_port: 1,
                dst_port: 80,
                flags,
            },
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
        assert_eq!(v.names()[0], "dst_L5_weight");
    }

    #[test]
    fn a_syn_burst_raises_the_victims_rate_and_syn_share() {
        let mut v = Victim::new(16).unwrap();
        let mut out = vec![0.0; N_FEATURES];
        v.update(&pkt(0.0, 2, 0x10, 100), &mut out);
        let w = col(&v, "dst_L1_weight");
        let syn = col(&v, "dst_L1_syn_share");
        assert_eq!(out[w], 1.0);
        assert_eq!(out[syn], 0.0);
        for k in 0..100 {
            v.update(&pkt(1.0 + k as f64 * 1e-3, 2, 0x02, 60), &mut out);
        }
        assert!(out[w] > 50.0, "{}", out[w]);
        assert!(out[syn] > 0.95, "{}", out[syn]);
        // Another target is unaffected.
        v.update(&pkt(1.2, 3, 0x10, 100), &mut out);
        assert_eq!(out[w], 1.0);
        let mean = col(&v, "dst_L0.01_size_mean");
        assert_eq!(out[mean], 100.0);
        assert_eq!(out[col(&v, "dst_L0.01_size_var")], 0.0);
    }

    #[test]
    fn statistics_fade_with_time_and_ignore_reordering() {
        let mut v = Victim::new(16).unwrap();
        let mut out = vec![0.0; N_FEATURES];
        v.update(&pkt(10.0, 2, 0, 60), &mut out);
        v.update(&pkt(11.0, 2, 0, 60), &mut out);
        // λ = 1: the first packet weighs 1/2 one second later.
        assert!((out[col(&v, "dst_L1_weight")] - 1.5).abs() < 1e-12);
        v.update(&pkt(5.0, 2, 0, 60), &mut out);
        assert!((out[col(&v, "dst_L1_weight")] - 2.5).abs() < 1e-12);
        assert!(out.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn the_table_is_bounded_and_counts_evictions() {
        let mut v = Victim::new(3).unwrap();
        let mut out = vec![0.0; N_FEATURES];
        for d in 0..10 {
            v.update(&pkt(d as f64, d, 0, 60), &mut out);
        }
        assert_eq!(v.len(), 3);
        assert_eq!(v.capacity(), 3);
        assert_eq!(v.evictions(), 7);
        assert!(Victim::new(0).is_err());
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
