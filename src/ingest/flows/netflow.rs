//! NetFlow v5/v7/v9 and IPFIX through `netflow_parser`'s scoped parser:
//! one template cache per exporter address and v9 source id / IPFIX
//! observation domain, LRU-bounded in exporters and templates.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use lru::LruCache;
use netflow_parser::static_versions::{v5::V5, v7::V7};
use netflow_parser::variable_versions::ipfix::lookup::{IANAIPFixField, IPFixField};
use netflow_parser::variable_versions::ipfix::{
    FlowSetBody as IpfixBody, Header as IpfixHeader, IPFix,
};
use netflow_parser::variable_versions::v9::{FlowSetBody as V9Body, V9};
use netflow_parser::{
    AutoScopedParser, FieldValue, NetflowError, NetflowPacket, NetflowParser, TemplateEvent,
    V9Field, V9FieldPair,
};

use super::counters::{ExporterStats, Rejection};
use super::{FlowConfig, FlowRecord};
use crate::{Error, Result};

/// The NetFlow/IPFIX half of a [`FlowDecoder`](super::FlowDecoder).
pub(super) struct Netflow {
    parser: AutoScopedParser,
    /// Sampling rate announced by each exporter and domain's options data.
    rates: LruCache<(SocketAddr, u32), u32>,
    /// NetFlow v9 boot time of each exporter and domain (see [`Boot`]).
    boots: LruCache<(SocketAddr, u32), Boot>,
    evicted: Arc<AtomicU64>,
}

/// An exporter's boot time, Unix ms. A v9 header gives the export time in
/// whole seconds with the uptime in ms, so `export - uptime` falls up to a
/// second before the boot; the latest such estimate since the uptime last
/// went back (a reboot) is the closest.
#[derive(Debug, Clone, Copy)]
struct Boot {
    ms: i64,
    uptime: u32,
}

impl Boot {
    /// The boot time after a header saying `unix_secs` at `uptime` ms.
    fn update(known: Option<&mut Boot>, unix_secs: u32, uptime: u32) -> Boot {
        let estimate = i64::from(unix_secs) * 1000 - i64::from(uptime);
        let fresh = Boot {
            ms: estimate,
            uptime,
        };
        match known {
            // Within a second of the known boot, uptime going on: the same
            // boot.
            Some(b) if uptime >= b.uptime && (estimate - b.ms).abs() < 1_000 => {
                *b = Boot {
                    ms: b.ms.max(estimate),
                    uptime,
                };
                *b
            }
            Some(b) => {
                *b = fresh;
                fresh
            }
            None => fresh,
        }
    }
}

impl std::fmt::Debug for Netflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netflow")
            .field("exporters", &self.parser.source_count())
            .finish_non_exhaustive()
    }
}

impl Netflow {
    pub(super) fn new(c: &FlowConfig) -> Result<Self> {
        let evicted = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&evicted);
        let bad = |e: netflow_parser::ConfigError| Error::Data(format!("flow decoder: {e}"));
        let parser = NetflowParser::builder()
            .with_cache_size(c.max_templates.max(1))
            .with_max_field_count(c.max_fields.max(1))
            .with_max_template_total_size(c.max_fields.max(1) * 16)
            .on_template_event(move |e| {
                if matches!(e, TemplateEvent::Evicted { .. }) {
                    count.fetch_add(1, Relaxed);
                }
                Ok(())
            })
            .try_multi_source()
            .map_err(bad)?
            .with_max_sources(c.max_exporters.max(1))
            .map_err(bad)?;
        let cap = NonZeroUsize::new(c.max_exporters.max(1)).unwrap_or(NonZeroUsize::MIN);
        Ok(Netflow {
            parser,
            rates: LruCache::new(cap),
            boots: LruCache::new(cap),
            evicted,
        })
    }

    pub(super) fn template_evictions(&self) -> u64 {
        self.evicted.load(Relaxed)
    }

    pub(super) fn decode(
        &mut self,
        datagram: &[u8],
        exporter: SocketAddr,
        out: &mut Vec<FlowRecord>,
        stats: &mut ExporterStats,
    ) {
        let result = self.parser.parse_from_source(exporter, datagram);
        for packet in &result.packets {
            match packet {
                NetflowPacket::V5(p) => v5(p, exporter.ip(), out),
                NetflowPacket::V7(p) => v7(p, exporter.ip(), out),
                NetflowPacket::V9(p) => self.v9(p, exporter, out, stats),
                NetflowPacket::IPFix(p) => self.ipfix(p, exporter, out, stats),
                _ => stats.reject(Rejection::UnknownVersion),
            }
        }
        if let Some(e) = &result.error {
            let why = match rejection(e) {
                Rejection::Malformed if has_template_set(datagram) => Rejection::BadTemplate,
                why => why,
            };
            stats.reject(why);
        }
    }

    fn v9(
        &mut self,
        p: &V9,
        exporter: SocketAddr,
        out: &mut Vec<FlowRecord>,
        s: &mut ExporterStats,
    ) {
        let h = &p.header;
        let key = (exporter, h.source_id);
        let boot = Boot::update(self.boots.get_mut(&key), h.unix_secs, h.sys_up_time);
        self.boots.put(key, boot);
        let clock = Clock {
            boot_ms: boot.ms,
            export_ms: i64::from(h.unix_secs) * 1000,
        };
        for set in &p.flowsets {
            match &set.body {
                V9Body::Data(d) => {
                    let rate = self.rates.get(&key).copied();
                    for r in &d.fields {
                        let rec = v9_record(r, exporter.ip(), h.source_id, &clock, rate);
                        push(rec, out, s);
                    }
                }
                V9Body::OptionsData(o) => {
                    for f in &o.fields {
                        if let Some(rate) = v9_rate(&f.options_fields) {
                            self.rates.put(key, rate);
                        }
                    }
                }
                V9Body::NoTemplate(_) => s.reject(Rejection::NoTemplate),
                _ => {}
            }
        }
    }

    fn ipfix(
        &mut self,
        p: &IPFix,
        exporter: SocketAddr,
        out: &mut Vec<FlowRecord>,
        s: &mut ExporterStats,
    ) {
        let h: &IpfixHeader = &p.header;
        let clock = Clock {
            boot_ms: i64::MIN,
            export_ms: i64::from(h.export_time) * 1000,
        };
        let domain = h.observation_domain_id;
        let key = (exporter, domain);
        for set in &p.flowsets {
            let rate = self.rates.get(&key).copied();
            match &set.body {
                IpfixBody::Data(d) => {
                    for r in &d.fields {
                        let mut acc = Acc::default();
                        r.iter().for_each(|(f, v)| acc.ipfix(f, v));
                        push(acc.record(exporter.ip(), domain, &clock, rate), out, s);
                    }
                }
                IpfixBody::V9Data(d) => {
                    for r in &d.fields {
                        push(v9_record(r, exporter.ip(), domain, &clock, rate), out, s);
                    }
                }
                IpfixBody::OptionsData(o) => {
                    for f in &o.fields {
                        let mut acc = Acc::default();
                        f.iter().for_each(|(f, v)| acc.ipfix(f, v));
                        if let Some(rate) = acc.rate() {
                            self.rates.put(key, rate);
                        }
                    }
                }
                IpfixBody::V9OptionsData(o) => {
                    for f in &o.fields {
                        if let Some(rate) = v9_rate(&f.options_fields) {
                            self.rates.put(key, rate);
                        }
                    }
                }
                IpfixBody::NoTemplate(_) => s.reject(Rejection::NoTemplate),
                _ => {}
            }
        }
    }
}

/// What a parse error means for the counts.
fn rejection(e: &NetflowError) -> Rejection {
    match e {
        NetflowError::Incomplete { .. } => Rejection::Truncated,
        NetflowError::UnsupportedVersion { .. } | NetflowError::FilteredVersion { .. } => {
            Rejection::UnknownVersion
        }
        NetflowError::ParseError { context, kind, .. }
            if (context.contains("emplate") || kind.contains("emplate")) =>
        {
            Rejection::BadTemplate
        }
        _ => Rejection::Malformed,
    }
}

/// Whether a NetFlow v9 or IPFIX datagram holds a (options) template set:
/// a parse error in it is then most likely the template's.
fn has_template_set(d: &[u8]) -> bool {
    let (header, templates): (usize, [u16; 2]) = match d.get(..2) {
        Some([0, 9]) => (20, [0, 1]),
        Some([0, 10]) => (16, [2, 3]),
        _ => return false,
    };
    let mut at = header;
    while let Some(set) = d.get(at..at + 4) {
        let id = u16::from_be_bytes([set[0], set[1]]);
        if templates.contains(&id) {
            return true;
        }
        match usize::from(u16::from_be_bytes([set[2], set[3]])) {
            len if len >= 4 => at += len,
            _ => return false,
        }
    }
    false
}

/// A record with addresses is kept; one without is counted.
fn push(rec: Option<FlowRecord>, out: &mut Vec<FlowRecord>, s: &mut ExporterStats) {
    match rec {
        Some(r) => out.push(r),
        None => s.reject(Rejection::NoAddress),
    }
}

/// How a datagram's clock turns record times into Unix milliseconds.
struct Clock {
    /// The exporter's boot, Unix ms (v9 and v5: export time minus uptime;
    /// IPFIX: unknown, `i64::MIN`).
    boot_ms: i64,
    /// The datagram's export time, Unix ms.
    export_ms: i64,
}

fn v5(p: &V5, exporter: IpAddr, out: &mut Vec<FlowRecord>) {
    let h = &p.header;
    let export_ms = i64::from(h.unix_secs) * 1000 + i64::from(h.unix_nsecs / 1_000_000);
    let boot_ms = export_ms - i64::from(h.sys_up_time);
    let rate = u32::from(h.sampling_interval & 0x3fff).max(1);
    for f in &p.flowsets {
        out.push(FlowRecord {
            src: IpAddr::V4(f.src_addr),
            dst: IpAddr::V4(f.dst_addr),
            src_port: f.src_port,
            dst_port: f.dst_port,
            protocol: f.protocol_number,
            tcp_flags: f.tcp_flags,
            packets: u64::from(f.d_pkts),
            bytes: u64::from(f.d_octets),
            sampling_rate: rate,
            ..times(
                exporter,
                0,
                boot_ms + i64::from(f.first),
                boot_ms + i64::from(f.last),
            )
        });
    }
}

fn v7(p: &V7, exporter: IpAddr, out: &mut Vec<FlowRecord>) {
    let h = &p.header;
    let export_ms = i64::from(h.unix_secs) * 1000 + i64::from(h.unix_nsecs / 1_000_000);
    let boot_ms = export_ms - i64::from(h.sys_up_time);
    for f in &p.flowsets {
        out.push(FlowRecord {
            src: IpAddr::V4(f.src_addr),
            dst: IpAddr::V4(f.dst_addr),
            src_port: f.src_port,
            dst_port: f.dst_port,
            protocol: f.protocol_number,
            tcp_flags: f.tcp_flags,
            packets: u64::from(f.d_pkts),
            bytes: u64::from(f.d_octets),
            ..times(
                exporter,
                0,
                boot_ms + i64::from(f.first),
                boot_ms + i64::from(f.last),
            )
        });
    }
}

/// An empty record spanning `[start_ms, end_ms]` (Unix ms; swapped when
/// backwards).
fn times(exporter: IpAddr, domain: u32, start_ms: i64, end_ms: i64) -> FlowRecord {
    let (a, b) = (start_ms.min(end_ms), start_ms.max(end_ms));
    FlowRecord {
        start: a as f64 / 1000.0,
        end: b as f64 / 1000.0,
        ..FlowRecord::empty(exporter, domain, 0.0)
    }
}

fn v9_record(
    r: &[V9FieldPair],
    exporter: IpAddr,
    domain: u32,
    clock: &Clock,
    rate: Option<u32>,
) -> Option<FlowRecord> {
    let mut acc = Acc::default();
    r.iter().for_each(|(f, v)| acc.v9(*f, v));
    acc.record(exporter, domain, clock, rate)
}

/// The sampling rate in a v9 options record, if it holds one.
fn v9_rate(fields: &[V9FieldPair]) -> Option<u32> {
    let mut acc = Acc::default();
    fields.iter().for_each(|(f, v)| acc.v9(*f, v));
    acc.rate()
}

/// The fields of one record, gathered whatever their order.
#[derive(Debug, Default)]
struct Acc {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    src_port: u16,
    dst_port: u16,
    protocol: u8,
    flags: u8,
    packets: Option<u64>,
    bytes: Option<u64>,
    /// Exporter uptime of the first and last packet (ms).
    up: [Option<u64>; 2],
    /// Unix ms of the first and last packet.
    abs: [Option<u64>; 2],
    /// IPFIX systemInitTimeMilliseconds.
    init_ms: Option<u64>,
    interval: Option<u64>,
    space: Option<u64>,
}

fn num(v: &FieldValue) -> Option<u64> {
    match v {
        FieldValue::TcpControlBits(bits, _) => Some(u64::from(u16::from(*bits))),
        other => other.as_u64(),
    }
}

/// Seconds from the NTP epoch (1900) to the Unix epoch.
const NTP_UNIX_MS: u64 = 2_208_988_800_000;

/// Unix ms of a microsecond or nanosecond time: NTP timestamps count from
/// 1900 (RFC 7011, 6.1.9-10).
fn ntp_ms(v: &FieldValue) -> Option<u64> {
    num(v).map(|ms| ms.saturating_sub(NTP_UNIX_MS))
}

fn ip(v: &FieldValue) -> Option<IpAddr> {
    IpAddr::try_from(v).ok()
}

impl Acc {
    fn v9(&mut self, f: V9Field, v: &FieldValue) {
        let n = || num(v).unwrap_or(0);
        match f {
            V9Field::Ipv4SrcAddr | V9Field::Ipv6SrcAddr => self.src = ip(v),
            V9Field::Ipv4DstAddr | V9Field::Ipv6DstAddr => self.dst = ip(v),
            V9Field::L4SrcPort => self.src_port = n() as u16,
            V9Field::L4DstPort => self.dst_port = n() as u16,
            V9Field::Protocol => self.protocol = v.as_u8().unwrap_or(0),
            V9Field::TcpFlags => self.flags = n() as u8,
            V9Field::InPkts => self.packets = num(v),
            V9Field::OutPkts => self.packets = self.packets.or(num(v)),
            V9Field::InBytes => self.bytes = num(v),
            V9Field::OutBytes => self.bytes = self.bytes.or(num(v)),
            V9Field::FirstSwitched => self.up[0] = num(v),
            V9Field::LastSwitched => self.up[1] = num(v),
            V9Field::FlowStartSeconds | V9Field::FlowStartMilliseconds => self.abs[0] = num(v),
            V9Field::FlowEndSeconds | V9Field::FlowEndMilliseconds => self.abs[1] = num(v),
            V9Field::FlowStartMicroseconds | V9Field::FlowStartNanoseconds => {
                self.abs[0] = ntp_ms(v)
            }
            V9Field::FlowEndMicroseconds | V9Field::FlowEndNanoseconds => self.abs[1] = ntp_ms(v),
            V9Field::SamplingInterval | V9Field::FlowSamplerRandomInterval => {
                self.interval = num(v)
            }
            _ => {}
        }
    }

    fn ipfix(&mut self, f: &IPFixField, v: &FieldValue) {
        use IANAIPFixField as F;
        let IPFixField::IANA(f) = f else { return };
        let n = || num(v).unwrap_or(0);
        match f {
            F::SourceIpv4address | F::SourceIpv6address => self.src = ip(v),
            F::DestinationIpv4address | F::DestinationIpv6address => self.dst = ip(v),
            F::SourceTransportPort => self.src_port = n() as u16,
            F::DestinationTransportPort => self.dst_port = n() as u16,
            F::ProtocolIdentifier => self.protocol = v.as_u8().unwrap_or(0),
            F::TcpControlBits => self.flags = n() as u8,
            F::PacketDeltaCount => self.packets = num(v),
            F::PacketTotalCount => self.packets = self.packets.or(num(v)),
            F::OctetDeltaCount => self.bytes = num(v),
            F::OctetTotalCount => self.bytes = self.bytes.or(num(v)),
            F::FlowStartSysUpTime => self.up[0] = num(v),
            F::FlowEndSysUpTime => self.up[1] = num(v),
            F::FlowStartSeconds | F::FlowStartMilliseconds => self.abs[0] = num(v),
            F::FlowEndSeconds | F::FlowEndMilliseconds => self.abs[1] = num(v),
            F::FlowStartMicroseconds | F::FlowStartNanoseconds => self.abs[0] = ntp_ms(v),
            F::FlowEndMicroseconds | F::FlowEndNanoseconds => self.abs[1] = ntp_ms(v),
            F::SystemInitTimeMilliseconds => self.init_ms = num(v),
            F::SamplingInterval | F::SamplerRandomInterval | F::SamplingPacketInterval => {
                self.interval = num(v)
            }
            F::SamplingPacketSpace => self.space = num(v),
            _ => {}
        }
    }

    /// One in how many packets was sampled, if the record says: an
    /// interval N (one in N), or PSAMP's interval I and space S (I taken,
    /// then S skipped: one in (I+S)/I).
    fn rate(&self) -> Option<u32> {
        let interval = self.interval.filter(|&i| i > 0)?;
        let rate = match self.space {
            Some(space) => (interval + space).div_ceil(interval),
            None => interval,
        };
        Some(rate.clamp(1, u64::from(u32::MAX)) as u32)
    }

    /// Unix ms of the first and last packet: absolute times, else uptimes
    /// from the boot (v9 header; IPFIX systemInitTime), else export time.
    fn span(&self, clock: &Clock) -> (i64, i64) {
        let boot = match self.init_ms {
            Some(ms) => i64::try_from(ms).unwrap_or(i64::MAX),
            None => clock.boot_ms,
        };
        let at = |i: usize| {
            let abs = self.abs[i].map(|ms| i64::try_from(ms).unwrap_or(i64::MAX));
            let up = self.up[i].filter(|_| boot != i64::MIN);
            abs.or(up.map(|u| boot.saturating_add(u as i64)))
        };
        let end = at(1).or(at(0)).unwrap_or(clock.export_ms);
        (at(0).unwrap_or(end), end)
    }

    fn record(
        &self,
        exporter: IpAddr,
        domain: u32,
        clock: &Clock,
        rate: Option<u32>,
    ) -> Option<FlowRecord> {
        let (start, end) = self.span(clock);
        Some(FlowRecord {
            src: self.src?,
            dst: self.dst?,
            src_port: self.src_port,
            dst_port: self.dst_port,
            protocol: self.protocol,
            tcp_flags: self.flags,
            packets: self.packets.unwrap_or(1),
            bytes: self.bytes.unwrap_or(0),
            sampling_rate: self.rate().or(rate).unwrap_or(1),
            ..times(exporter, domain, start, end)
        })
    }
}
