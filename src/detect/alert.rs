//! Serialize-only alert types, written as JSON lines that validate as
//! Suricata EVE `alert` events, and the scored record the alert logic reads.
//!
//! # The JSON lines format
//!
//! Each alert is one JSON object on one line, valid against Suricata's
//! `etc/schema.json` (the `eve.json` schema: no top-level field Suricata does
//! not know; floodwatch's own fields live in the open `alert.context`).
//! Episodes are about one address: the destination by default (the victim
//! of a flood), or the source (a scanner or an infected host). An episode
//! opens with a `start` event when the majority vote first fires for it,
//! gives its `details` once it has counted `--details-after` anomalous
//! records (its fingerprint then says what to filter: FastNetMon's
//! `attack_details`), and closes with one `end` event; all have
//! `alert.action` `"allowed"` (floodwatch only watches) and tell which they
//! are in `alert.context.state`. Fields, in
//! this order; those starred are left out when unknown or not applicable:
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `timestamp` | string | Suricata's format, UTC, microseconds: `2026-11-25T14:59:51.123456+0000`. For `start`, the time of the record that fired the vote; for `end`, the time the episode was closed (`last_seen + timeout` after a timeout, the tracker clock after an eviction or a flush). Capture time for packets; for table rows the row's time column, else the wall-clock time the row arrived (all there is). |
//! | `flow_id`* | number | a stable id of the flow's 5-tuple, the same both ways (first 63 bits of the SHA-1 behind `community_id`); when both addresses and an IP protocol are known |
//! | `event_type` | string | always `"alert"` |
//! | `src_ip`*, `src_port`*, `dest_ip`*, `dest_port`* | string, number | the flow of the record that fired the vote (`start`) or of the peak-score record (`end`). An unknown address (`0.0.0.0` in [`FlowContext`], e.g. a table without address columns) is left out; ports are written for TCP and UDP, and for other protocols only when not 0 |
//! | `proto`* | string | `"TCP"`, `"UDP"`, `"ICMP"`, `"IPv6-ICMP"`, `"ARP"` or the IP protocol number; left out for frames neither IP nor ARP |
//! | `community_id`* | string | [Community ID](https://github.com/corelight/community-id-spec) v1, seed 0, of the flow; TCP, UDP and other IP protocols without ports (not ICMP: the decoder keeps no ICMP code) |
//! | `alert.action` | string | always `"allowed"` |
//! | `alert.gid` | number | always [`GID`] (1, Suricata's generator id for signatures) |
//! | `alert.signature_id`, `alert.rev` | number | the detection [`Family`] (table there), revision [`REV`] |
//! | `alert.signature` | string | what happened, e.g. `"floodwatch: UDP flood toward 10.0.0.5"`, `"floodwatch: horizontal scan from 192.168.1.23"` |
//! | `alert.category` | string | the attack family when a classifier named one (tables), else the configured default (`"anomaly"`) |
//! | `alert.severity` | number | 1 (high) to 3 (low), by family |
//! | `alert.target.ip`* | string | the victim: the address of a destination-keyed episode (`flood_target`); with `--home-net`, also the flow's destination of an incoming source-keyed episode when it is inside the home net |
//! | `alert.source.ip`* | string | the offender: the address of a source-keyed episode (scans, `infected_host`) |
//! | `alert.context.state` | string | `"start"`, `"details"` or `"end"` of the episode |
//! | `alert.context.direction`* | string | with `--home-net` only: `"incoming"` (a destination-keyed episode whose target is inside the home net, or a source-keyed one whose source is outside) or `"outgoing"` (the rest); see [`Alert::direction`] |
//! | `alert.context.family` | string | `"flood_target"`, `"horizontal_scan"`, `"vertical_scan"`, `"infected_host"` or `"anomaly"` |
//! | `alert.context.score` | number | the score of the record that fired the vote (`start`) or the episode's peak score (`end`) |
//! | `alert.context.threshold` | number | the anomaly threshold the scores are compared to |
//! | `alert.context.top_features` | array | `{"name": string, "share": number}` of the peak-score record, largest share first; shares of the reconstruction error in [0, 1] |
//! | `alert.context.episode.start`, `.last_seen` | string | times (as `timestamp`) of the first and last anomalous record of the episode |
//! | `alert.context.exporter` | string | the flow exporter (router, switch) whose record was the episode's peak; flow telemetry only |
//! | `alert.context.episode.packets`, `.bytes` | number | packets of the episode's anomalous records since the vote fired (one per packet or table row; a flow record's packets times its sampling rate), and their bytes (0 for table rows) |
//! | `alert.context.episode.pps`, `.bps` | number | `packets` and `bytes` × 8 per second over the episode so far: divided by `last_seen - start`, at least 1 s (so a `start` event reports its single record as 1 pps) |
//! | `alert.context.episode.peak_score` | number | highest score in the episode |
//! | `alert.context.episode.sources` | number | estimated distinct source addresses (exact for a handful, about 9 % error beyond) |
//! | `alert.context.episode.end_reason`* | string | `end` only: `"timeout"`, `"evicted"` (too many open episodes) or `"flush"` (input over) |
//!
//! A non-finite score is written as `null`.
//!
//! # Detection families
//!
//! | [`Family`] | `signature_id` | severity | episode keyed by | signature |
//! |---|---|---|---|---|
//! | `flood_target` | 1990001 | 2 | destination (default) | `floodwatch: <proto> flood toward <dest_ip>` |
//! | `horizontal_scan` | 1990002 | 3 | source | `floodwatch: horizontal scan from <src_ip>` |
//! | `vertical_scan` | 1990003 | 3 | source | `floodwatch: vertical scan from <src_ip>[ of <dest_ip>]` |
//! | `infected_host` | 1990004 | 1 | source (default) | `floodwatch: anomalous traffic from <src_ip>, possibly an infected host` |
//! | `anomaly` | 1990005 | 2 | address unknown (table rows without the key's address column) | `floodwatch: anomalous traffic[ from <src_ip>][ toward <dest_ip>]` |
//!
//! The ids are in the range 1000000–1999999 that rule sets leave for local
//! rules, so they cannot collide with Emerging Threats or Suricata rules.
//! Severities follow Suricata's classtypes: attempted-dos (2), network-scan
//! (3), trojan-activity (1), bad-unknown (2).
//!
//! A `start` event:
//!
//! ```text
//! {"timestamp":"2026-11-25T14:59:51.000000+0000","flow_id":288580119728225531,"event_type":"alert","src_ip":"10.0.0.9","src_port":4242,"dest_ip":"10.0.0.1","dest_port":80,"proto":"TCP","community_id":"1:CAJ8LgtH+fbOHtQG4u337cLeAlk=","alert":{"action":"allowed","gid":1,"signature_id":1990001,"rev":1,"signature":"floodwatch: TCP flood toward 10.0.0.1","category":"syn_flood","severity":2,"target":{"ip":"10.0.0.1"},"context":{"state":"start","family":"flood_target","score":0.93,"threshold":0.2,"top_features":[{"name":"syn_rate","share":0.7}],"episode":{"start":"2026-11-25T14:59:51.000000+0000","last_seen":"2026-11-25T14:59:51.000000+0000","packets":1,"bytes":60,"pps":1.0,"bps":480.0,"peak_score":0.93,"sources":1}}}}
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use base64::Engine;
use serde::{Serialize, Serializer};

use super::homenet::HomeNet;
use crate::ingest::flows::FlowRecord;
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

impl Proto {
    /// The IP protocol number; `None` for ARP and non-IP frames.
    pub fn number(self) -> Option<u8> {
        match self {
            Proto::Tcp => Some(6),
            Proto::Udp => Some(17),
            Proto::Icmp => Some(1),
            Proto::Icmpv6 => Some(58),
            Proto::Other(n) => Some(n),
            Proto::Arp | Proto::None => None,
        }
    }

    fn is_absent(&self) -> bool {
        matches!(self, Proto::None)
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
    /// Source address (`0.0.0.0` when the record has none; alerts leave
    /// it out then).
    pub src_ip: IpAddr,
    /// Source port (0 when the protocol has none).
    pub src_port: u16,
    /// Destination address (`0.0.0.0` when the record has none; alerts
    /// leave it out then).
    pub dest_ip: IpAddr,
    /// Destination port (0 when the protocol has none).
    pub dest_port: u16,
    /// Transport protocol.
    pub proto: Proto,
    /// Bytes of the record (a packet's wire length, a flow's byte count).
    pub bytes: u64,
    /// TCP flags byte (FIN=0x01 ... CWR=0x80; 0 for other protocols).
    pub tcp_flags: u8,
    /// Packets the record stands for (1 for a packet or a table row; a
    /// flow's packets times its sampling rate).
    pub packets: u64,
    /// The flow exporter that reported the record (flow telemetry only).
    pub exporter: Option<IpAddr>,
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
        let tcp_flags = match p.transport {
            Transport::Tcp { flags, .. } => flags,
            _ => 0,
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
            tcp_flags,
            packets: 1,
            exporter: None,
        }
    }

    /// The fields of a flow record: its packets and bytes scaled by its
    /// sampling rate, its exporter named.
    pub fn from_flow(r: &FlowRecord) -> Self {
        let proto = match r.protocol {
            6 => Proto::Tcp,
            17 => Proto::Udp,
            1 => Proto::Icmp,
            58 => Proto::Icmpv6,
            n => Proto::Other(n),
        };
        let ports = matches!(proto, Proto::Tcp | Proto::Udp);
        FlowContext {
            src_ip: r.src,
            src_port: if ports { r.src_port } else { 0 },
            dest_ip: r.dst,
            dest_port: if ports { r.dst_port } else { 0 },
            proto,
            bytes: r.scaled_bytes(),
            tcp_flags: if proto == Proto::Tcp { r.tcp_flags } else { 0 },
            packets: r.scaled_packets(),
            exporter: Some(r.exporter),
        }
    }
}

/// The fingerprint as alerts carry it (`alert.context.episode.fingerprint`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FingerprintSummary {
    /// Anomalous records counted.
    pub records: u64,
    /// Share of each protocol seen.
    pub protocols: Vec<Share>,
    /// The destination ports most hit (TCP and UDP), with the share each
    /// has for sure (at least 1 %; none for random ports).
    pub dest_ports: Vec<PortShare>,
    /// The source ports most used.
    pub src_ports: Vec<PortShare>,
    /// Record sizes in bytes.
    pub size: Sizes,
    /// Share of records with each TCP flag seen.
    pub tcp_flags: Vec<Share>,
    /// Share of IP packets past their first fragment.
    pub fragments: f64,
}

/// A named share.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Share {
    /// What.
    pub name: &'static str,
    /// Its share of the records.
    pub share: f64,
}

/// A share to four decimals, as alerts give them.
pub(crate) fn round_share(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

impl Share {
    /// `share` of the records, to four decimals.
    pub(crate) fn new(name: &'static str, share: f64) -> Self {
        Share {
            name,
            share: round_share(share),
        }
    }
}

/// A port and its share of the records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortShare {
    /// The port.
    pub port: u16,
    /// Its share.
    pub share: f64,
}

/// Smallest, largest and mean size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sizes {
    /// Smallest.
    pub min: u64,
    /// Largest.
    pub max: u64,
    /// Mean, rounded down.
    pub mean: u64,
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
            // Sinks into place, after equal shares (k is small).
            out.push(FeatureShare { feature, share });
            let mut i = out.len() - 1;
            while i > 0 && out[i - 1].share < share {
                out.swap(i - 1, i);
                i -= 1;
            }
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

/// A point in time with microsecond resolution, serialised in UTC as
/// Suricata writes times (ISO 8601 with a numeric offset:
/// `2026-11-25T14:59:51.123456+0000`).
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
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}+0000",
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

/// The `alert.gid` of every floodwatch alert: 1, the generator id Suricata
/// gives its signatures, so tools that key rules by (gid, sid) see ordinary
/// rules.
pub const GID: u32 = 1;

/// The `alert.rev` of every family's signature; raised when the meaning of
/// a family's alerts changes.
pub const REV: u32 = 1;

/// What an episode is about: the detection family, which gives its
/// `signature_id`, severity and the shape of its signature. See the
/// [module docs](self) for the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// One destination receives anomalous traffic: a flood's victim. The
    /// default of destination-keyed episodes.
    FloodTarget,
    /// One source probes many addresses.
    HorizontalScan,
    /// One source probes many ports of one address.
    VerticalScan,
    /// One source sends anomalous traffic. The default of source-keyed
    /// episodes.
    InfectedHost,
    /// Anomalous traffic about no known address (table rows without the
    /// address the episode is keyed by).
    Anomaly,
}

impl Family {
    /// Every family, by `signature_id`.
    pub const ALL: [Family; 5] = [
        Family::FloodTarget,
        Family::HorizontalScan,
        Family::VerticalScan,
        Family::InfectedHost,
        Family::Anomaly,
    ];

    /// The `alert.signature_id`: 1990001 to 1990005, in the range left to
    /// local rules.
    pub fn signature_id(self) -> u32 {
        match self {
            Family::FloodTarget => 1_990_001,
            Family::HorizontalScan => 1_990_002,
            Family::VerticalScan => 1_990_003,
            Family::InfectedHost => 1_990_004,
            Family::Anomaly => 1_990_005,
        }
    }

    /// The family named `name` (as [`name`](Self::name) gives it).
    pub fn from_name(name: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The name in `alert.context.family`, e.g. `"flood_target"`.
    pub fn name(self) -> &'static str {
        match self {
            Family::FloodTarget => "flood_target",
            Family::HorizontalScan => "horizontal_scan",
            Family::VerticalScan => "vertical_scan",
            Family::InfectedHost => "infected_host",
            Family::Anomaly => "anomaly",
        }
    }

    /// The `alert.severity`, 1 (high) to 3 (low), as Suricata's classtypes
    /// attempted-dos, network-scan, trojan-activity and bad-unknown.
    pub fn severity(self) -> u8 {
        match self {
            Family::FloodTarget | Family::Anomaly => 2,
            Family::HorizontalScan | Family::VerticalScan => 3,
            Family::InfectedHost => 1,
        }
    }

    /// Whether the family is about the source of the traffic (the episode is
    /// keyed by source address) rather than its destination.
    pub fn about_source(self) -> bool {
        matches!(
            self,
            Family::HorizontalScan | Family::VerticalScan | Family::InfectedHost
        )
    }

    /// The signature of an alert of this family on `flow`, after `prefix`
    /// and a colon.
    fn signature(self, prefix: &str, flow: &FlowContext) -> String {
        let (src, dest) = (known(flow.src_ip), known(flow.dest_ip));
        let (s, d) = (flow.src_ip, flow.dest_ip);
        match self {
            Family::FloodTarget => match flow.proto {
                Proto::None => format!("{prefix}: flood toward {d}"),
                Proto::Other(n) => format!("{prefix}: IP protocol {n} flood toward {d}"),
                p => format!("{prefix}: {p} flood toward {d}"),
            },
            Family::HorizontalScan => format!("{prefix}: horizontal scan from {s}"),
            Family::VerticalScan if dest => format!("{prefix}: vertical scan from {s} of {d}"),
            Family::VerticalScan => format!("{prefix}: vertical scan from {s}"),
            Family::InfectedHost => {
                format!("{prefix}: anomalous traffic from {s}, possibly an infected host")
            }
            Family::Anomaly => {
                let mut sig = format!("{prefix}: anomalous traffic");
                if src {
                    sig.push_str(&format!(" from {s}"));
                }
                if dest {
                    sig.push_str(&format!(" toward {d}"));
                }
                sig
            }
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether an address is known: [`FlowContext`] writes `0.0.0.0` for none.
fn known(ip: IpAddr) -> bool {
    !ip.is_unspecified()
}

fn unknown(ip: &IpAddr) -> bool {
    ip.is_unspecified()
}

/// Whether an alert opens an episode, details it or closes it
/// (`alert.context.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The vote fired for a target with no open episode.
    Start,
    /// The episode has counted enough records for its fingerprint to say
    /// what to filter; once per episode.
    Details,
    /// The episode is over.
    End,
}

/// Which way an episode's traffic goes across the home net's edge
/// (`alert.context.direction`, the `--on-alert` direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Toward the protected network: the target is inside it.
    Incoming,
    /// From the protected network, or between outside hosts.
    Outgoing,
}

impl Direction {
    /// `"incoming"` or `"outgoing"`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Incoming => "incoming",
            Direction::Outgoing => "outgoing",
        }
    }
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

/// An address in `alert.source` or `alert.target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// The address.
    pub ip: IpAddr,
}

/// The `alert` object: what happened, Suricata style, with floodwatch's own
/// fields in `context`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertInfo {
    /// Always `"allowed"`: floodwatch watches, it does not drop.
    pub action: &'static str,
    /// Always [`GID`].
    pub gid: u32,
    /// The family's [`signature_id`](Family::signature_id).
    pub signature_id: u32,
    /// Always [`REV`].
    pub rev: u32,
    /// What happened, e.g. `"floodwatch: UDP flood toward 10.0.0.5"`.
    pub signature: String,
    /// The attack family a classifier named, or the default category.
    pub category: String,
    /// The family's [`severity`](Family::severity).
    pub severity: u8,
    /// The offender of a source-keyed episode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Endpoint>,
    /// The victim of a destination-keyed episode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Endpoint>,
    /// floodwatch's own fields.
    pub context: AlertContext,
}

/// The `alert.context` object: the episode and the scores behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertContext {
    /// Start or end of the episode.
    pub state: State,
    /// The detection family.
    pub family: Family,
    /// Across the home net's edge; set by [`Alert::apply_home_net`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// Score of the firing record (`start`) or peak score (`end`).
    pub score: f64,
    /// The anomaly threshold.
    pub threshold: f64,
    /// Features of the peak record, largest share first.
    pub top_features: Vec<NamedShare>,
    /// The flow exporter that reported the peak record (flow telemetry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exporter: Option<IpAddr>,
    /// The episode so far.
    pub episode: EpisodeSummary,
}

/// A feature named with its share of the error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamedShare {
    /// Feature name from the model's schema.
    pub name: String,
    /// Share of the reconstruction error, in [0, 1].
    pub share: f64,
}

/// The `alert.context.episode` object: the attack so far.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpisodeSummary {
    /// First anomalous record of the episode.
    pub start: Timestamp,
    /// Last anomalous record so far.
    pub last_seen: Timestamp,
    /// Anomalous records of the episode since the vote fired.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Records per second over the episode (at least 1 s).
    pub pps: f64,
    /// Bits per second over the episode (at least 1 s).
    pub bps: f64,
    /// Highest score.
    pub peak_score: f64,
    /// Estimated distinct sources.
    pub sources: u64,
    /// Why it ended (`end` events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
    /// What its anomalous records look like, when counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<FingerprintSummary>,
}

impl EpisodeSummary {
    /// The summary of an episode from `start` to `last_seen` (seconds since
    /// the epoch) with its counts; the rates divide by the duration, at
    /// least 1 s.
    pub fn new(
        start: f64,
        last_seen: f64,
        packets: u64,
        bytes: u64,
        peak_score: f64,
        sources: u64,
        end_reason: Option<EndReason>,
    ) -> Self {
        let secs = (last_seen - start).max(1.0);
        let secs = if secs.is_finite() { secs } else { 1.0 };
        EpisodeSummary {
            start: Timestamp::from_secs(start),
            last_seen: Timestamp::from_secs(last_seen),
            packets,
            bytes,
            pps: packets as f64 / secs,
            bps: bytes as f64 * 8.0 / secs,
            peak_score,
            sources,
            end_reason,
            fingerprint: None,
        }
    }

    /// The same with the episode's fingerprint.
    pub fn with_fingerprint(mut self, f: FingerprintSummary) -> Self {
        self.fingerprint = Some(f);
        self
    }
}

/// One alert event, a Suricata EVE `alert`; see the [module docs](self) for
/// the JSON lines schema.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// When (Suricata's format, UTC, microseconds).
    pub timestamp: Timestamp,
    /// Id of the flow's 5-tuple, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<u64>,
    /// Always `"alert"`.
    pub event_type: &'static str,
    /// Source address of the representative flow (`0.0.0.0`: unknown, not
    /// written).
    #[serde(skip_serializing_if = "unknown")]
    pub src_ip: IpAddr,
    /// Its source port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// Its destination address (`0.0.0.0`: unknown, not written).
    #[serde(skip_serializing_if = "unknown")]
    pub dest_ip: IpAddr,
    /// Its destination port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_port: Option<u16>,
    /// Its protocol (not written for frames neither IP nor ARP).
    #[serde(skip_serializing_if = "Proto::is_absent")]
    pub proto: Proto,
    /// Community ID v1 of the flow, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub community_id: Option<String>,
    /// What happened, and floodwatch's context.
    pub alert: AlertInfo,
}

impl Alert {
    /// An alert at `at` about `flow` (the firing or peak record of the
    /// episode), signed `"{prefix}: ..."`. A family about an address that
    /// `flow` does not know (`0.0.0.0`) becomes [`Family::Anomaly`], in the
    /// alert and in `context`.
    pub fn new(
        at: Timestamp,
        flow: &FlowContext,
        prefix: &str,
        category: String,
        mut context: AlertContext,
    ) -> Alert {
        let about_source = context.family.about_source();
        let subject = if about_source {
            flow.src_ip
        } else {
            flow.dest_ip
        };
        if !known(subject) {
            context.family = Family::Anomaly;
        }
        let family = context.family;
        let endpoint = (family != Family::Anomaly).then_some(Endpoint { ip: subject });
        let (source, target) = if about_source {
            (endpoint, None)
        } else {
            (None, endpoint)
        };
        let has_ports = matches!(flow.proto, Proto::Tcp | Proto::Udp);
        let port = |p: u16| (has_ports || p != 0).then_some(p);
        let tuple = match flow.proto.number() {
            Some(n) if known(flow.src_ip) && known(flow.dest_ip) => Some(n),
            _ => None,
        };
        // ICMP's Community ID needs the type and code, which the flow lacks;
        // its flow id hashes the addresses alone.
        let ports = has_ports.then_some((flow.src_port, flow.dest_port));
        let digest = tuple.and_then(|n| tuple_digest(0, flow.src_ip, flow.dest_ip, n, ports));
        let icmp = matches!(flow.proto, Proto::Icmp | Proto::Icmpv6);
        Alert {
            timestamp: at,
            flow_id: digest.map(|d| flow_id_of(&d)),
            event_type: "alert",
            src_ip: flow.src_ip,
            src_port: port(flow.src_port),
            dest_ip: flow.dest_ip,
            dest_port: port(flow.dest_port),
            proto: flow.proto,
            community_id: digest.filter(|_| !icmp).map(|d| community_text(&d)),
            alert: AlertInfo {
                action: "allowed",
                gid: GID,
                signature_id: family.signature_id(),
                rev: REV,
                signature: family.signature(prefix, flow),
                category,
                severity: family.severity(),
                source,
                target,
                context,
            },
        }
    }

    /// Start or end of the episode.
    pub fn state(&self) -> State {
        self.alert.context.state
    }

    /// The detection family.
    pub fn family(&self) -> Family {
        self.alert.context.family
    }

    /// The address the episode is about: `alert.source` of a source-keyed
    /// episode, else `alert.target`.
    pub fn subject(&self) -> Option<IpAddr> {
        self.alert.source.or(self.alert.target).map(|e| e.ip)
    }

    /// `alert.context.direction` when a home net set it; otherwise by
    /// family, floodwatch's default without `--home-net`: a
    /// destination-keyed episode (a victim) is incoming, a source-keyed one
    /// (a scanner, an infected host) outgoing.
    pub fn direction(&self) -> Direction {
        match self.alert.context.direction {
            Some(d) => d,
            None if self.family().about_source() => Direction::Outgoing,
            None => Direction::Incoming,
        }
    }

    /// Classifies the episode against `home` (nothing when it is empty):
    /// incoming when its target is inside, or when it is source-keyed and
    /// its source outside; else outgoing. An incoming source-keyed episode
    /// also names the flow's destination in `alert.target` when inside.
    pub fn apply_home_net(&mut self, home: &HomeNet) {
        if home.is_empty() {
            return;
        }
        let info = &mut self.alert;
        let incoming = match (info.source, info.target) {
            (Some(src), _) => !home.contains(src.ip),
            (None, Some(dst)) => home.contains(dst.ip),
            // No address to judge (table rows): the representative flow.
            (None, None) => known(self.dest_ip) && home.contains(self.dest_ip),
        };
        if incoming && info.source.is_some() && known(self.dest_ip) && home.contains(self.dest_ip) {
            info.target = Some(Endpoint { ip: self.dest_ip });
        }
        info.context.direction = Some(if incoming {
            Direction::Incoming
        } else {
            Direction::Outgoing
        });
    }

    /// The alert as one JSON line, without the newline.
    pub fn to_json(&self) -> String {
        // Serialising plain structs of strings and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The [Community ID](https://github.com/corelight/community-id-spec) v1 of
/// a flow, `"1:"` and the base64 of a SHA-1: the same for both directions.
/// `src_port` and `dst_port` are the ports for TCP (6), UDP (17) and SCTP
/// (132), the type and code for ICMP (1) and ICMPv6 (58), and ignored for
/// other protocols. `None` when the addresses are of different families.
pub fn community_id(
    seed: u16,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    src_port: u16,
    dst_port: u16,
) -> Option<String> {
    let ports = match proto {
        1 | 58 => {
            // Requests and replies map onto one two-way flow: the type as
            // source port, its counterpart as destination port. Other types
            // are one-way: type and code, never reordered.
            match icmp_counterpart(proto == 58, src_port) {
                Some(other) => Some((src_port, other)),
                None => {
                    let bytes = endpoint_bytes(seed, src, dst, proto, Some((src_port, dst_port)));
                    return bytes.map(|b| community_text(&sha1(&b)));
                }
            }
        }
        6 | 17 | 132 => Some((src_port, dst_port)),
        _ => None,
    };
    tuple_digest(seed, src, dst, proto, ports).map(|d| community_text(&d))
}

/// The ICMP (or ICMPv6) type answering `icmp_type`, for the request and
/// reply pairs of the Community ID spec.
fn icmp_counterpart(v6: bool, icmp_type: u16) -> Option<u16> {
    const V4: [(u16, u16); 5] = [(8, 0), (13, 14), (15, 16), (10, 9), (17, 18)];
    const V6: [(u16, u16); 6] = [
        (128, 129),
        (133, 134),
        (135, 136),
        (130, 131),
        (139, 140),
        (144, 145),
    ];
    let pairs: &[(u16, u16)] = if v6 { &V6 } else { &V4 };
    pairs.iter().find_map(|&(a, b)| {
        if a == icmp_type {
            Some(b)
        } else if b == icmp_type {
            Some(a)
        } else {
            None
        }
    })
}

/// SHA-1 of the flow tuple ordered so that both directions give the same
/// bytes: the smaller (address, port) end first.
fn tuple_digest(
    seed: u16,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ports: Option<(u16, u16)>,
) -> Option<[u8; 20]> {
    let (sp, dp) = ports.unwrap_or((0, 0));
    let forward = match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (a.octets(), sp) <= (b.octets(), dp),
        (IpAddr::V6(a), IpAddr::V6(b)) => (a.octets(), sp) <= (b.octets(), dp),
        _ => return None,
    };
    let bytes = if forward {
        endpoint_bytes(seed, src, dst, proto, ports)
    } else {
        endpoint_bytes(seed, dst, src, proto, ports.map(|(s, d)| (d, s)))
    };
    bytes.map(|b| sha1(&b))
}

/// The Community ID hash input: seed, addresses, protocol, a zero pad byte,
/// then the ports when the protocol has them; all in network byte order.
fn endpoint_bytes(
    seed: u16,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ports: Option<(u16, u16)>,
) -> Option<Vec<u8>> {
    let mut b = Vec::with_capacity(40);
    b.extend_from_slice(&seed.to_be_bytes());
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            b.extend_from_slice(&s.octets());
            b.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            b.extend_from_slice(&s.octets());
            b.extend_from_slice(&d.octets());
        }
        _ => return None,
    }
    b.extend_from_slice(&[proto, 0]);
    if let Some((s, d)) = ports {
        b.extend_from_slice(&s.to_be_bytes());
        b.extend_from_slice(&d.to_be_bytes());
    }
    Some(b)
}

fn community_text(digest: &[u8; 20]) -> String {
    format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The first 63 bits of the digest: positive as Suricata's signed flow ids.
fn flow_id_of(digest: &[u8; 20]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) >> 1
}

/// SHA-1 (FIPS 180-4) of a short message: the hash the Community ID spec
/// names. Not for security.
fn sha1(msg: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut data = msg.to_vec();
    data.push(0x80);
    while data.len() % 64 != 56 {
        data.push(0);
    }
    data.extend_from_slice(&((msg.len() as u64) * 8).to_be_bytes());
    for block in data.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, &wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// A UDP alert from `src` to `dst` at 7.5 s, for the sinks' tests.
#[cfg(test)]
pub(crate) fn udp_alert(state: State, family: Family, src: &str, dst: &str) -> Alert {
    let flow = FlowContext {
        src_ip: src.parse().unwrap(),
        src_port: 1,
        dest_ip: dst.parse().unwrap(),
        dest_port: 53,
        proto: Proto::Udp,
        bytes: 60,
        tcp_flags: 0,
        packets: 1,
        exporter: None,
    };
    let context = AlertContext {
        state,
        family,
        direction: None,
        score: 1.0,
        threshold: 0.5,
        top_features: vec![],
        exporter: None,
        episode: EpisodeSummary::new(1.0, 3.0, 1_000, 60_000, 1.0, 1, None),
    };
    Alert::new(Timestamp::from_secs(7.5), &flow, "s", "c".into(), context)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn timestamps_format_as_suricata_utc_micros() {
        let t = |s: f64| Timestamp::from_secs(s).to_string();
        assert_eq!(t(0.0), "1970-01-01T00:00:00.000000+0000");
        assert_eq!(t(1_780_000_000.25), "2026-05-28T20:26:40.250000+0000");
        assert_eq!(t(951_782_400.000_001), "2000-02-29T00:00:00.000001+0000");
        assert_eq!(t(-1.5), "1969-12-31T23:59:58.500000+0000");
        assert_eq!(t(f64::NAN), "1970-01-01T00:00:00.000000+0000");
        assert_eq!(t(253_402_300_799.5), "9999-12-31T23:59:59.500000+0000");
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
            fragment: None,
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

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn sha1_matches_the_fips_examples() {
        let hex = |d: [u8; 20]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        let two_blocks = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(
            hex(sha1(two_blocks)),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
    }

    /// The spec's published vectors (its baseline, and Zeek's tests of its
    /// `community_id_v1`), both directions where the flow is two-way.
    #[test]
    fn community_id_matches_the_spec_vectors() {
        let (a, b) = (v4(1, 2, 3, 4), v4(5, 6, 7, 8));
        let (a6, b6): (IpAddr, IpAddr) = (
            "fe80:0001:0203:0405:0607:0809:0A0B:0C0D".parse().unwrap(),
            "fe80:1011:1213:1415:1617:1819:1A1B:1C1D".parse().unwrap(),
        );
        let cases = [
            (0, a, b, 6, 1122, 3344, "1:wCb3OG7yAFWelaUydu0D+125CLM="),
            (0, b, a, 6, 3344, 1122, "1:wCb3OG7yAFWelaUydu0D+125CLM="),
            (0, a, b, 17, 1122, 3344, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg="),
            (0, b, a, 17, 3344, 1122, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg="),
            (0, a, b, 1, 8, 0, "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="),
            (0, b, a, 1, 0, 0, "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="),
            (0, a6, b6, 58, 128, 0, "1:0bf7hyMJUwt3fMED7z8LIfRpBeo="),
            (0, b6, a6, 58, 129, 0, "1:0bf7hyMJUwt3fMED7z8LIfRpBeo="),
            (0, a, b, 46, 0, 0, "1:ikv3kmf89luf73WPz1jOs49S768="),
            (1, a, b, 6, 1122, 3344, "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="),
            (1, a, b, 17, 1122, 3344, "1:OShq+iKDAMVouh/4bMxB9Sz4amw="),
            (1, a, b, 1, 8, 0, "1:9pr4ZGTICiuZoIh90RRYE2RyXpU="),
            (1, a6, b6, 58, 128, 0, "1:IO27GQzPuCtNnwFvjWALMHu5tJE="),
        ];
        for (seed, src, dst, proto, sp, dp, want) in cases {
            let got = community_id(seed, src, dst, proto, sp, dp);
            assert_eq!(got.as_deref(), Some(want), "{seed} {src} {dst} {proto}");
        }
        assert_eq!(community_id(0, a, a6, 6, 1, 2), None);
    }

    #[test]
    fn families_have_distinct_ids_and_names() {
        let mut ids: Vec<u32> = Family::ALL.iter().map(|f| f.signature_id()).collect();
        ids.dedup();
        assert_eq!(ids, [1_990_001, 1_990_002, 1_990_003, 1_990_004, 1_990_005]);
        for f in Family::ALL {
            assert_eq!(serde_json::to_value(f).unwrap(), f.name());
            assert!((1..=3).contains(&f.severity()));
        }
        assert!(Family::InfectedHost.about_source() && !Family::FloodTarget.about_source());
    }

    fn context(family: Family) -> AlertContext {
        AlertContext {
            state: State::Start,
            family,
            direction: None,
            score: 2.0,
            threshold: 1.0,
            top_features: vec![],
            exporter: None,
            episode: EpisodeSummary::new(10.0, 10.5, 100, 6_000, 2.0, 3, None),
        }
    }

    fn flow(src: IpAddr, dest: IpAddr, proto: Proto) -> FlowContext {
        FlowContext {
            src_ip: src,
            src_port: 1122,
            dest_ip: dest,
            dest_port: 3344,
            proto,
            bytes: 60,
            tcp_flags: 0,
            packets: 1,
            exporter: None,
        }
    }

    #[test]
    fn home_net_tells_incoming_from_outgoing() {
        let (inside, outside) = (v4(10, 0, 0, 5), v4(198, 51, 100, 7));
        let home = HomeNet::parse("--home-net", &["10.0.0.0/8"]).unwrap();
        let at = Timestamp::from_secs(10.0);
        let direction = |src, dest, family| {
            let mut a = Alert::new(
                at,
                &flow(src, dest, Proto::Udp),
                "fw",
                "c".into(),
                context(family),
            );
            let default = a.direction();
            a.apply_home_net(&home);
            (
                default,
                a.direction(),
                a.alert.source.map(|e| e.ip),
                a.alert.target.map(|e| e.ip),
            )
        };
        use Direction::{Incoming as In, Outgoing as Out};
        // A victim inside, and outside (our host floods someone).
        assert_eq!(
            direction(outside, inside, Family::FloodTarget),
            (In, In, None, Some(inside))
        );
        assert_eq!(
            direction(inside, outside, Family::FloodTarget),
            (In, Out, None, Some(outside))
        );
        // A scanner outside probing us names our host as target; ours scanning out is outgoing.
        let scan = Family::HorizontalScan;
        assert_eq!(
            direction(outside, inside, scan),
            (Out, In, Some(outside), Some(inside))
        );
        assert_eq!(
            direction(inside, outside, scan),
            (Out, Out, Some(inside), None)
        );
        assert_eq!(
            direction(outside, outside, scan),
            (Out, In, Some(outside), None)
        );
        // Without a home net nothing changes.
        let mut a = Alert::new(
            at,
            &flow(inside, outside, Proto::Udp),
            "fw",
            "c".into(),
            context(scan),
        );
        let before = a.clone();
        a.apply_home_net(&HomeNet::default());
        assert_eq!(a, before);
        assert!(!a.to_json().contains("direction"));
        a.apply_home_net(&home);
        assert!(a.to_json().contains(r#""direction":"outgoing""#));
    }

    #[test]
    fn alerts_name_their_subject_and_flow() {
        let (s, d) = (v4(1, 2, 3, 4), v4(5, 6, 7, 8));
        let at = Timestamp::from_secs(10.0);
        let f = flow(s, d, Proto::Udp);
        let a = Alert::new(
            at,
            &f,
            "floodwatch",
            "anomaly".into(),
            context(Family::FloodTarget),
        );
        assert_eq!(a.alert.signature, "floodwatch: UDP flood toward 5.6.7.8");
        assert_eq!(
            (a.alert.signature_id, a.alert.gid, a.alert.rev),
            (1_990_001, 1, 1)
        );
        assert_eq!(
            (a.alert.target, a.alert.source),
            (Some(Endpoint { ip: d }), None)
        );
        assert_eq!(a.subject(), Some(d));
        assert_eq!(
            a.community_id.as_deref(),
            Some("1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=")
        );
        // The flow id is the same both ways and differs between flows.
        let back = flow(d, s, Proto::Udp);
        let back = FlowContext {
            src_port: 3344,
            dest_port: 1122,
            ..back
        };
        let b = Alert::new(at, &back, "fw", "c".into(), context(Family::InfectedHost));
        assert_eq!(a.flow_id, b.flow_id);
        assert!(a.flow_id.unwrap() < 1 << 63);
        assert_eq!(
            b.alert.signature,
            "fw: anomalous traffic from 5.6.7.8, possibly an infected host"
        );
        assert_eq!(
            (b.alert.source, b.alert.target),
            (Some(Endpoint { ip: d }), None)
        );
        let tcp = Alert::new(
            at,
            &flow(s, d, Proto::Tcp),
            "fw",
            "c".into(),
            context(Family::FloodTarget),
        );
        assert_ne!(tcp.flow_id, a.flow_id);
        // Rates over the episode, at least one second.
        let e = &a.alert.context.episode;
        assert_eq!((e.pps, e.bps), (100.0, 48_000.0));
        let scan = Alert::new(at, &f, "fw", "c".into(), context(Family::HorizontalScan));
        assert_eq!(scan.alert.signature, "fw: horizontal scan from 1.2.3.4");
        let v = Alert::new(at, &f, "fw", "c".into(), context(Family::VerticalScan));
        assert_eq!(
            v.alert.signature,
            "fw: vertical scan from 1.2.3.4 of 5.6.7.8"
        );
    }

    #[test]
    fn unknown_addresses_are_left_out() {
        let none = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let at = Timestamp::from_secs(10.0);
        let f = FlowContext {
            src_port: 0,
            dest_port: 0,
            ..flow(none, none, Proto::None)
        };
        let a = Alert::new(
            at,
            &f,
            "floodwatch",
            "UDP.flood".into(),
            context(Family::FloodTarget),
        );
        assert_eq!(a.family(), Family::Anomaly);
        assert_eq!(a.alert.signature_id, 1_990_005);
        assert_eq!(a.alert.signature, "floodwatch: anomalous traffic");
        assert_eq!(a.subject(), None);
        let v: serde_json::Value = serde_json::from_str(&a.to_json()).unwrap();
        for key in [
            "src_ip",
            "dest_ip",
            "src_port",
            "dest_port",
            "proto",
            "flow_id",
            "community_id",
        ] {
            assert!(v.get(key).is_none(), "{key} in {v}");
        }
        assert!(v["alert"].get("target").is_none() && v["alert"].get("source").is_none());
        assert_eq!(v["alert"]["category"], "UDP.flood");
        assert_eq!(v["alert"]["context"]["family"], "anomaly");
        assert_eq!(v["timestamp"], "1970-01-01T00:00:10.000000+0000");
        // ICMP: addresses and a flow id, no ports and no Community ID.
        let icmp = flow(v4(10, 0, 0, 1), v4(10, 0, 0, 2), Proto::Icmp);
        let icmp = FlowContext {
            src_port: 0,
            dest_port: 0,
            ..icmp
        };
        let a = Alert::new(at, &icmp, "fw", "c".into(), context(Family::FloodTarget));
        assert_eq!(a.alert.signature, "fw: ICMP flood toward 10.0.0.2");
        assert!(a.flow_id.is_some() && a.community_id.is_none());
        assert_eq!((a.src_port, a.dest_port), (None, None));
    }
}
