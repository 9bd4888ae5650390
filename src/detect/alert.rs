//! Serialize-only alert types, written as JSON lines in the style of
//! Suricata's EVE, and the scored record the alert logic reads.
//!
//! # The JSON lines format
//!
//! Each alert is one JSON object on one line. Episodes are victim-centric: an
//! episode concerns one *target* (the destination address by default), opens
//! with a `start` event when the majority vote first fires for it and closes
//! with one `end` event. Fields, in this order:
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `timestamp` | string | RFC 3339, UTC, microseconds: `2026-11-25T14:59:51.123456Z`. For `start`, the time of the record that fired the vote; for `end`, the time the episode was closed (`last_seen + timeout` after a timeout, the tracker clock after an eviction or a flush). |
//! | `event_type` | string | always `"alert"` |
//! | `src_ip`, `src_port`, `dest_ip`, `dest_port` | string, number | the flow of the record that fired the vote (`start`) or of the peak-score record (`end`); ports are 0 when the protocol has none |
//! | `proto` | string | `"TCP"`, `"UDP"`, `"ICMP"`, `"IPv6-ICMP"`, `"ARP"`, `""` (not IP) or the IP protocol number |
//! | `alert.action` | string | `"start"` or `"end"` |
//! | `alert.signature` | string | e.g. `"floodwatch anomaly"` |
//! | `alert.category` | string | the attack family when a classifier named one, else the configured default (`"anomaly"`) |
//! | `score` | number | the score of the record that fired the vote (`start`) or the episode's peak score (`end`) |
//! | `threshold` | number | the anomaly threshold the scores are compared to |
//! | `top_features` | array | `{"name": string, "share": number}` of the peak-score record, largest share first; shares of the reconstruction error in [0, 1] |
//! | `episode.start`, `episode.last_seen` | string | RFC 3339 times of the first and last anomalous record of the episode |
//! | `episode.packets`, `episode.bytes` | number | anomalous records towards the target since the vote fired, and their bytes |
//! | `episode.peak_score` | number | highest score in the episode |
//! | `episode.sources` | number | estimated distinct source addresses (exact for a handful, about 9 % error beyond) |
//! | `episode.end_reason` | string | `end` only: `"timeout"`, `"evicted"` (too many open episodes) or `"flush"` (input over) |
//!
//! A `start` event:
//!
//! ```text
//! {"timestamp":"2026-11-25T14:59:51.000000Z","event_type":"alert","src_ip":"10.0.0.9","src_port":4242,"dest_ip":"10.0.0.1","dest_port":80,"proto":"TCP","alert":{"action":"start","signature":"floodwatch anomaly","category":"syn_flood"},"score":0.93,"threshold":0.2,"top_features":[{"name":"syn_rate","share":0.7}],"episode":{"start":"2026-11-25T14:59:51.000000Z","last_seen":"2026-11-25T14:59:51.000000Z","packets":1,"bytes":60,"peak_score":0.93,"sources":1}}
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Serialize, Serializer};

use crate::ingest::packets::{Network, PacketMeta, Transport};

/// The transport protocol of a flow, named as Suricata names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP over IPv4.
    Icmp,
    /// ICMP over IPv6.
    Icmpv6,
    /// ARP (no IP protocol).
    Arp,
    /// Any other IP protocol number.
    Other(u8),
    /// Not IP.
    None,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Proto::Tcp => f.write_str("TCP"),
            Proto::Udp => f.write_str("UDP"),
            Proto::Icmp => f.write_str("ICMP"),
            Proto::Icmpv6 => f.write_str("IPv6-ICMP"),
            Proto::Arp => f.write_str("ARP"),
            Proto::Other(n) => write!(f, "{n}"),
            Proto::None => Ok(()),
        }
    }
}

impl Serialize for Proto {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Who sent what to whom: the flow fields of a scored record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowContext {
    /// Source address (`0.0.0.0` when the record has none).
    pub src_ip: IpAddr,
    /// Source port (0 when the protocol has none).
    pub src_port: u16,
    /// Destination address (`0.0.0.0` when the record has none).
    pub dest_ip: IpAddr,
    /// Destination port (0 when the protocol has none).
    pub dest_port: u16,
    /// Transport protocol.
    pub proto: Proto,
    /// Bytes of the record (a packet's wire length, a flow's byte count).
    pub bytes: u64,
}

impl FlowContext {
    /// The flow fields of a decoded frame. ARP uses the sender and target
    /// protocol addresses; frames without addresses use `0.0.0.0`.
    pub fn from_packet(p: &PacketMeta) -> Self {
        let none = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let (src_ip, dest_ip) = match p.network {
            Network::Ip { src, dst } => (src, dst),
            Network::Arp { sender, target } => (IpAddr::V4(sender), IpAddr::V4(target)),
            Network::None => (none, none),
        };
        let (proto, src_port, dest_port) = match p.transport {
            Transport::Tcp {
                src_port, dst_port, ..
            } => (Proto::Tcp, src_port, dst_port),
            Transport::Udp { src_port, dst_port } => (Proto::Udp, src_port, dst_port),
            Transport::Icmp { .. } if src_ip.is_ipv6() => (Proto::Icmpv6, 0, 0),
            Transport::Icmp { .. } => (Proto::Icmp, 0, 0),
            Transport::Other(n) => (Proto::Other(n), 0, 0),
            Transport::None if matches!(p.network, Network::Arp { .. }) => (Proto::Arp, 0, 0),
            Transport::None => (Proto::None, 0, 0),
        };
        FlowContext {
            src_ip,
            src_port,
            dest_ip,
            dest_port,
            proto,
            bytes: u64::from(p.wire_len),
        }
    }
}

/// One feature's share of a record's reconstruction error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeatureShare {
    /// Index of the feature in the model's schema.
    pub feature: usize,
    /// Its share of the error, in [0, 1].
    pub share: f64,
}

impl FeatureShare {
    /// The `k` largest of `shares` (one per feature, by index), largest
    /// first, into `out` (cleared first; reuse it to avoid allocating).
    /// Non-finite shares are skipped.
    pub fn top_k(shares: &[f64], k: usize, out: &mut Vec<FeatureShare>) {
        out.clear();
        if k == 0 {
            return;
        }
        for (feature, &share) in shares.iter().enumerate() {
            if !share.is_finite() {
                continue;
            }
            if out.len() == k {
                match out.last() {
                    Some(last) if share > last.share => {
                        out.pop();
                    }
                    _ => continue,
                }
            }
            // Insertion keeps `out` sorted, largest first; k is small.
            let at = out.partition_point(|f| f.share >= share);
            out.insert(at, FeatureShare { feature, share });
        }
    }
}

/// A record after scoring: what the alert logic reads. Borrows its feature
/// list and family so the per-record path does not allocate.
#[derive(Debug, Clone, Copy)]
pub struct ScoredRecord<'a> {
    /// Capture time, seconds since the Unix epoch.
    pub timestamp: f64,
    /// Anomaly score (higher = more anomalous).
    pub score: f64,
    /// Whether the score is above the threshold.
    pub is_anomaly: bool,
    /// The record's flow.
    pub flow: FlowContext,
    /// The features contributing most to the error, largest share first.
    pub top_features: &'a [FeatureShare],
    /// The attack family, when a classifier named one.
    pub family: Option<&'a str>,
}

/// A point in time with microsecond resolution, serialised as RFC 3339 in
/// UTC (`2026-11-25T14:59:51.123456Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    micros: i64,
}

impl Timestamp {
    /// From seconds since the Unix epoch, rounded to the microsecond;
    /// a non-finite value becomes the epoch and huge values saturate.
    pub fn from_secs(secs: f64) -> Self {
        let micros = if secs.is_finite() {
            (secs * 1e6).round() as i64
        } else {
            0
        };
        Timestamp { micros }
    }

    /// Microseconds since the Unix epoch.
    pub fn micros(self) -> i64 {
        self.micros
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.micros.div_euclid(1_000_000);
        let micros = self.micros.rem_euclid(1_000_000);
        let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            sod / 3600,
            sod % 3600 / 60,
            sod % 60
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Year, month, day of a count of days since 1970-01-01 in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Whether an alert opens or closes an episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The vote fired for a target with no open episode.
    Start,
    /// The episode is over.
    End,
}

/// Why an episode ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// No anomalous record for the target during the episode timeout.
    Timeout,
    /// Closed early to make room: too many open episodes.
    Evicted,
    /// The input ended (or the detector stopped).
    Flush,
}

/// The `alert` object: what happened, Suricata style.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertInfo {
    /// Start or end of the episode.
    pub action: Action,
    /// The rule that fired.
    pub signature: String,
    /// The attack family, or the default category.
    pub category: String,
}

/// A feature named with its share of the error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamedShare {
    /// Feature name from the model's schema.
    pub name: String,
    /// Share of the reconstruction error, in [0, 1].
    pub share: f64,
}

/// The `episode` object: the attack so far.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpisodeSummary {
    /// First anomalous record of the episode.
    pub start: Timestamp,
    /// Last anomalous record so far.
    pub last_seen: Timestamp,
    /// Anomalous records towards the target since the vote fired.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Highest score.
    pub peak_score: f64,
    /// Estimated distinct sources.
    pub sources: u64,
    /// Why it ended (`end` events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
}

/// One alert event; see the [module docs](self) for the JSON lines schema.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// When (RFC 3339, UTC, microseconds).
    pub timestamp: Timestamp,
    /// Always `"alert"`.
    pub event_type: &'static str,
    /// Source address of the representative flow.
    pub src_ip: IpAddr,
    /// Its source port.
    pub src_port: u16,
    /// The target.
    pub dest_ip: IpAddr,
    /// Its destination port.
    pub dest_port: u16,
    /// Its protocol.
    pub proto: Proto,
    /// Action, signature and category.
    pub alert: AlertInfo,
    /// Score of the firing record (`start`) or peak score (`end`).
    pub score: f64,
    /// The anomaly threshold.
    pub threshold: f64,
    /// Features of the peak record, largest share first.
    pub top_features: Vec<NamedShare>,
    /// The episode so far.
    pub episode: EpisodeSummary,
}

impl Alert {
    /// The alert as one JSON line, without the newline.
    pub fn to_json(&self) -> String {
        // Serialising plain structs of strings and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn timestamps_format_as_rfc3339_utc_micros() {
        let t = |s: f64| Timestamp::from_secs(s).to_string();
        assert_eq!(t(0.0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(t(1_780_000_000.25), "2026-05-28T20:26:40.250000Z");
        assert_eq!(t(951_782_400.000_001), "2000-02-29T00:00:00.000001Z");
        assert_eq!(t(-1.5), "1969-12-31T23:59:58.500000Z");
        assert_eq!(t(f64::NAN), "1970-01-01T00:00:00.000000Z");
        assert_eq!(t(253_402_300_799.5), "9999-12-31T23:59:59.500000Z");
        // Saturates instead of overflowing.
        assert!(t(1e300).starts_with("29"));
    }

    #[test]
    fn top_k_keeps_the_largest_shares_in_order() {
        let mut out = Vec::with_capacity(3);
        let shares = [0.1, 0.4, f64::NAN, 0.05, 0.3, 0.15];
        FeatureShare::top_k(&shares, 3, &mut out);
        let got: Vec<_> = out.iter().map(|f| (f.feature, f.share)).collect();
        assert_eq!(got, [(1, 0.4), (4, 0.3), (5, 0.15)]);
        FeatureShare::top_k(&shares, 0, &mut out);
        assert!(out.is_empty());
        FeatureShare::top_k(&[], 3, &mut out);
        assert!(out.is_empty());
        // Ties keep the lower index first.
        FeatureShare::top_k(&[0.5, 0.5, 0.5], 2, &mut out);
        let got: Vec<_> = out.iter().map(|f| f.feature).collect();
        assert_eq!(got, [0, 1]);
    }

    #[test]
    fn civil_dates_round_the_leap_rules() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-719_468), (0, 3, 1));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
    }

    fn meta(network: Network, transport: Transport) -> PacketMeta {
        PacketMeta {
            index: 1,
            timestamp: 1.0,
            wire_len: 60,
            src_mac: [0; 6],
            dst_mac: [0; 6],
            network,
            transport,
        }
    }

    #[test]
    fn flow_context_from_packets() {
        let v6 = Network::Ip {
            src: IpAddr::V6(Ipv6Addr::LOCALHOST),
            dst: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let icmp = Transport::Icmp {
            icmp_type: 128,
            quoted: None,
        };
        let f = FlowContext::from_packet(&meta(v6, icmp));
        assert_eq!((f.proto, f.bytes, f.src_port), (Proto::Icmpv6, 60, 0));
        let arp = Network::Arp {
            sender: Ipv4Addr::new(10, 0, 0, 1),
            target: Ipv4Addr::new(10, 0, 0, 2),
        };
        let f = FlowContext::from_packet(&meta(arp, Transport::None));
        assert_eq!(f.proto, Proto::Arp);
        assert_eq!(f.dest_ip, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        let f = FlowContext::from_packet(&meta(Network::None, Transport::None));
        assert_eq!(
            (f.proto.to_string(), f.src_ip.is_unspecified()),
            (String::new(), true)
        );
        let tcp = Transport::Tcp {
            src_port: 1,
            dst_port: 2,
            flags: 2,
        };
        let v4 = Network::Ip {
            src: IpAddr::V4(Ipv4Addr::LOCALHOST),
            dst: IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        let f = FlowContext::from_packet(&meta(v4, tcp));
        assert_eq!((f.proto, f.src_port, f.dest_port), (Proto::Tcp, 1, 2));
        assert_eq!(Proto::Other(47).to_string(), "47");
    }
}
