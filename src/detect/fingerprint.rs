//! What an episode's anomalous records look like: protocol mix, the ports
//! most hit and most used, packet sizes, TCP flags and later fragments,
//! each with the share of the records it accounts for. What an operator
//! needs to write a filter, and what a FlowSpec rule carries. Fixed size
//! per episode: nothing is allocated per record.

use super::alert::{round_share, FingerprintSummary, FlowContext, PortShare, Proto, Share, Sizes};

/// Ports tracked per direction (space-saving: the heavy ones stay).
const PORTS: usize = 8;
/// Ports reported per direction.
const REPORTED: usize = 3;
/// TCP flags reported, by bit: FIN, SYN, RST, PSH, ACK, URG.
const FLAGS: [(&str, u8); 6] = [
    ("fin", 0x01),
    ("syn", 0x02),
    ("rst", 0x04),
    ("psh", 0x08),
    ("ack", 0x10),
    ("urg", 0x20),
];

/// Counts of an episode's records, by what an operator filters on.
#[derive(Debug, Clone, Default)]
pub struct Fingerprint {
    records: u64,
    /// TCP, UDP, ICMP (v4 or v6), other.
    protos: [u64; 4],
    /// IP packets past the first fragment (no transport header).
    fragments: u64,
    dst_ports: TopPorts,
    src_ports: TopPorts,
    size_min: u64,
    size_max: u64,
    size_sum: u64,
    flags: [u64; FLAGS.len()],
}

impl Fingerprint {
    /// Counts one record.
    pub fn add(&mut self, f: &FlowContext) {
        self.records += 1;
        let slot = match f.proto {
            Proto::Tcp => 0,
            Proto::Udp => 1,
            Proto::Icmp | Proto::Icmpv6 => 2,
            _ => 3,
        };
        self.protos[slot] += 1;
        // TCP and UDP are decoded unless a later fragment hides them.
        self.fragments += u64::from(matches!(f.proto, Proto::Other(6 | 17)));
        if matches!(f.proto, Proto::Tcp | Proto::Udp) {
            self.dst_ports.add(f.dest_port);
            self.src_ports.add(f.src_port);
        }
        // A flow's packets count at their mean size.
        let size = f.bytes / f.packets.max(1);
        self.size_min = if self.records == 1 {
            size
        } else {
            self.size_min.min(size)
        };
        self.size_max = self.size_max.max(size);
        self.size_sum = self.size_sum.saturating_add(size);
        for (n, (_, bit)) in self.flags.iter_mut().zip(FLAGS) {
            *n += u64::from(f.tcp_flags & bit != 0);
        }
    }

    /// The shares, for an alert.
    pub fn summary(&self) -> FingerprintSummary {
        let share = |n: u64| n as f64 / self.records.max(1) as f64;
        let names = ["tcp", "udp", "icmp", "other"];
        FingerprintSummary {
            records: self.records,
            protocols: names
                .iter()
                .zip(self.protos)
                .filter(|(_, n)| *n > 0)
                .map(|(name, n)| Share::new(name, share(n)))
                .collect(),
            dest_ports: self.dst_ports.top(share),
            src_ports: self.src_ports.top(share),
            size: Sizes {
                min: self.size_min,
                max: self.size_max,
                mean: share(self.size_sum) as u64,
            },
            tcp_flags: FLAGS
                .iter()
                .zip(self.flags)
                .filter(|(_, n)| *n > 0)
                .map(|((name, _), n)| Share::new(name, share(n)))
                .collect(),
            fragments: round_share(share(self.fragments)),
        }
    }

    /// The destination port of at least `min_share` of the records, if
    /// one is.
    pub fn dominant_dest_port(&self, min_share: f64) -> Option<u16> {
        let (port, n) = self.dst_ports.heaviest()?;
        (n as f64 >= min_share * self.records as f64).then_some(port)
    }
}

/// Space-saving top ports: (port, count, overcount). A port that takes a
/// full set's smallest slot inherits its count as overcount, so
/// `count - overcount` never exceeds the port's true count.
#[derive(Debug, Clone, Copy, Default)]
struct TopPorts {
    entries: [(u16, u64, u64); PORTS],
    len: usize,
}

/// Smallest share a reported port has for sure (random ports report none).
const MIN_PORT_SHARE: f64 = 0.01;

impl TopPorts {
    fn add(&mut self, port: u16) {
        let held = &mut self.entries[..self.len];
        if let Some(e) = held.iter_mut().find(|e| e.0 == port) {
            e.1 += 1;
        } else if self.len < PORTS {
            self.entries[self.len] = (port, 1, 0);
            self.len += 1;
        } else if let Some(e) = held.iter_mut().min_by_key(|e| e.1) {
            *e = (port, e.1 + 1, e.1);
        }
    }

    /// Ports by the count each has for sure, largest first.
    fn sure(&self) -> Vec<(u16, u64)> {
        let mut v: Vec<(u16, u64)> = self.entries[..self.len]
            .iter()
            .map(|&(port, n, over)| (port, n - over))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    fn heaviest(&self) -> Option<(u16, u64)> {
        self.sure().first().copied()
    }

    fn top(&self, share: impl Fn(u64) -> f64) -> Vec<PortShare> {
        self.sure()
            .into_iter()
            .filter(|&(_, n)| share(n) >= MIN_PORT_SHARE)
            .take(REPORTED)
            .map(|(port, n)| PortShare {
                port,
                share: round_share(share(n)),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn flow(proto: Proto, dest_port: u16, bytes: u64, flags: u8) -> FlowContext {
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        FlowContext {
            src_ip: ip,
            src_port: 40_000 + dest_port,
            dest_ip: ip,
            dest_port,
            proto,
            bytes,
            tcp_flags: flags,
            packets: 1,
            exporter: None,
        }
    }

    #[test]
    fn a_syn_flood_reads_as_one() {
        let mut f = Fingerprint::default();
        for _ in 0..95 {
            f.add(&flow(Proto::Tcp, 80, 60, 0x02));
        }
        for _ in 0..5 {
            f.add(&flow(Proto::Udp, 53, 120, 0));
        }
        let s = f.summary();
        assert_eq!(s.records, 100);
        assert_eq!(
            s.protocols,
            [Share::new("tcp", 0.95), Share::new("udp", 0.05)]
        );
        assert_eq!(
            s.dest_ports[0],
            PortShare {
                port: 80,
                share: 0.95
            }
        );
        assert_eq!(s.tcp_flags, [Share::new("syn", 0.95)]);
        assert_eq!(
            s.size,
            Sizes {
                min: 60,
                max: 120,
                mean: 63
            }
        );
        assert_eq!(s.fragments, 0.0);
        assert_eq!(f.dominant_dest_port(0.9), Some(80));
        assert_eq!(f.dominant_dest_port(0.99), None);
    }

    #[test]
    fn heavy_ports_survive_many_light_ones_and_fragments_count() {
        let mut f = Fingerprint::default();
        for i in 0..1000u16 {
            f.add(&flow(Proto::Udp, 123, 400, 0));
            f.add(&flow(Proto::Udp, 1000 + i, 400, 0));
        }
        f.add(&flow(Proto::Other(17), 0, 1500, 0));
        let s = f.summary();
        assert_eq!(s.dest_ports.len(), 1, "{s:?}");
        assert_eq!(s.dest_ports[0].port, 123);
        // At least the 1,000 of 2,001 it had for sure, at most all of them.
        assert!((0.45..=0.5).contains(&s.dest_ports[0].share), "{s:?}");
        // The heavy flow's source port stays; the random ones are not sure.
        assert_eq!(s.src_ports.len(), 1, "{s:?}");
        assert_eq!(s.src_ports[0].port, 40_123);
        assert_eq!(s.fragments, 0.0005);
        assert!(s.tcp_flags.is_empty());
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["dest_ports"][0]["port"], 123);
        assert_eq!(json["protocols"][1]["name"], "other");
    }
}
