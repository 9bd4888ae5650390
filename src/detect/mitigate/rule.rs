//! What is announced for a victim: a blackhole route, or a FlowSpec rule
//! whose match narrows to the flood's fingerprint once the episode's
//! `details` alert has one.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::detect::alert::FingerprintSummary;

/// What is announced for a victim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The victim's /32 or /128 with the BLACKHOLE community 65535:666.
    Blackhole,
    /// A FlowSpec rule: destination the victim, and what the flood's
    /// fingerprint pins down; action discard.
    Flowspec,
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "blackhole" => Ok(Kind::Blackhole),
            "flowspec" => Ok(Kind::Flowspec),
            _ => Err(format!("{s:?}: write blackhole or flowspec")),
        }
    }
}

/// RFC 7999's BLACKHOLE community.
pub const BLACKHOLE: &str = "65535:666";

/// The share of an episode's records a protocol or port must hold to enter
/// a FlowSpec match: a rule on it still drops nearly all of the flood.
pub const DOMINANT: f64 = 0.95;

/// Bytes of link-layer header a frame may carry beyond its IP packet:
/// Ethernet (14) with two VLAN tags (8). Fingerprints count frame lengths
/// and FlowSpec matches IP lengths, so a rule's lower length bound is the
/// smallest frame less this: a little wide, never missing the flood.
pub const LINK_SLACK: u64 = 22;

/// What a FlowSpec rule matches beside the victim's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Match {
    /// The IP protocol number.
    pub proto: Option<u8>,
    /// The destination port (TCP, UDP).
    pub dest_port: Option<u16>,
    /// The source port (reflection floods come from one service port).
    pub src_port: Option<u16>,
    /// IP packet lengths, smallest and largest.
    pub length: Option<(u16, u16)>,
}

impl Match {
    /// The protocol only, as a `start` alert knows it.
    pub fn protocol(proto: Option<u8>) -> Self {
        Match {
            proto,
            ..Match::default()
        }
    }

    /// What the fingerprint pins down: the protocol and ports that carry at
    /// least [`DOMINANT`] of the records, and the length range.
    pub fn from_fingerprint(f: &FingerprintSummary, v6: bool) -> Self {
        let proto = f
            .protocols
            .iter()
            .find(|s| s.share >= DOMINANT)
            .and_then(|s| match s.name {
                "tcp" => Some(6),
                "udp" => Some(17),
                "icmp" if v6 => Some(58),
                "icmp" => Some(1),
                _ => None,
            });
        let port = |ports: &[crate::detect::alert::PortShare]| {
            ports.iter().find(|p| p.share >= DOMINANT).map(|p| p.port)
        };
        let ported = matches!(proto, Some(6 | 17));
        let clamp = |n: u64| u16::try_from(n).unwrap_or(u16::MAX);
        let length = (f.records > 0).then(|| {
            let low = f.size.min.saturating_sub(LINK_SLACK).max(20);
            (clamp(low), clamp(f.size.max.max(low)))
        });
        Match {
            proto,
            dest_port: port(&f.dest_ports).filter(|_| ported),
            src_port: port(&f.src_ports).filter(|_| ported),
            length,
        }
    }
}

/// What a FlowSpec rule does to the traffic it matches (RFC 8955's
/// traffic-rate action).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    /// Drop it all (traffic-rate 0).
    #[default]
    Discard,
    /// Let through at most this many bytes per second.
    RateLimit(u64),
}

impl FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?}: write discard or rate-limit:BYTES_PER_SECOND");
        match s.split_once(':') {
            None if s == "discard" => Ok(Action::Discard),
            Some(("rate-limit", n)) => n.parse().map(Action::RateLimit).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

/// One announcement: the rule for one victim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Blackhole route or FlowSpec rule.
    pub kind: Kind,
    /// The victim; the rule covers its /32 or /128.
    pub target: IpAddr,
    /// What a FlowSpec rule matches besides the victim.
    pub matches: Match,
    /// What a FlowSpec rule does.
    pub action: Action,
}

impl Rule {
    /// The victim's host prefix, `10.0.0.5/32` or `2001:db8::5/128`.
    pub fn prefix(&self) -> String {
        let len = if self.target.is_ipv4() { 32 } else { 128 };
        format!("{}/{len}", self.target)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == Kind::Blackhole {
            return write!(f, "{} community {BLACKHOLE}", self.prefix());
        }
        write!(f, "flowspec {}", self.prefix())?;
        let m = &self.matches;
        if let Some(p) = m.proto {
            write!(f, " protocol {p}")?;
        }
        if let Some(p) = m.dest_port {
            write!(f, " destination-port {p}")?;
        }
        if let Some(p) = m.src_port {
            write!(f, " source-port {p}")?;
        }
        if let Some((lo, hi)) = m.length {
            write!(f, " packet-length {lo}-{hi}")?;
        }
        match self.action {
            Action::Discard => f.write_str(" discard"),
            Action::RateLimit(n) => write!(f, " rate-limit {n} bytes/s"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::alert::{PortShare, Share, Sizes};

    fn fingerprint(
        protocols: Vec<Share>,
        dest: Vec<PortShare>,
        src: Vec<PortShare>,
    ) -> FingerprintSummary {
        FingerprintSummary {
            records: 100,
            protocols,
            dest_ports: dest,
            src_ports: src,
            size: Sizes {
                min: 60,
                max: 1514,
                mean: 400,
            },
            tcp_flags: vec![],
            fragments: 0.0,
        }
    }

    fn port(port: u16, share: f64) -> PortShare {
        PortShare { port, share }
    }

    #[test]
    fn a_reflection_flood_pins_protocol_source_port_and_lengths() {
        let f = fingerprint(
            vec![Share::new("udp", 1.0)],
            vec![port(4444, 0.3)],
            vec![port(53, 0.99)],
        );
        let m = Match::from_fingerprint(&f, false);
        assert_eq!(
            m,
            Match {
                proto: Some(17),
                dest_port: None,
                src_port: Some(53),
                length: Some((38, 1514)),
            }
        );
        let rule = Rule {
            kind: Kind::Flowspec,
            target: "10.0.0.5".parse().unwrap(),
            matches: m,
            action: Action::Discard,
        };
        assert_eq!(
            rule.to_string(),
            "flowspec 10.0.0.5/32 protocol 17 source-port 53 packet-length 38-1514 discard"
        );
    }

    #[test]
    fn actions_parse() {
        assert_eq!("discard".parse(), Ok(Action::Discard));
        assert_eq!("rate-limit:125000".parse(), Ok(Action::RateLimit(125_000)));
        for bad in ["drop", "rate-limit:", "rate-limit:-1", "rate-limit"] {
            let e = bad.parse::<Action>().unwrap_err();
            assert!(e.contains("rate-limit:BYTES_PER_SECOND"), "{e}");
        }
    }

    #[test]
    fn mixed_protocols_pin_nothing_but_lengths() {
        let f = fingerprint(
            vec![Share::new("tcp", 0.6), Share::new("udp", 0.4)],
            vec![port(80, 0.99)],
            vec![],
        );
        let m = Match::from_fingerprint(&f, false);
        assert_eq!((m.proto, m.dest_port, m.src_port), (None, None, None));
        let icmp = fingerprint(vec![Share::new("icmp", 1.0)], vec![], vec![]);
        assert_eq!(Match::from_fingerprint(&icmp, true).proto, Some(58));
        assert_eq!(Match::from_fingerprint(&icmp, false).proto, Some(1));
    }

    #[test]
    fn tiny_frames_keep_the_smallest_ip_length() {
        let mut f = fingerprint(vec![Share::new("tcp", 1.0)], vec![port(80, 1.0)], vec![]);
        f.size = Sizes {
            min: 30,
            max: 30,
            mean: 30,
        };
        let m = Match::from_fingerprint(&f, false);
        assert_eq!(m.length, Some((20, 30)));
        assert_eq!(m.dest_port, Some(80));
        f.records = 0;
        assert_eq!(Match::from_fingerprint(&f, false).length, None);
    }
}
