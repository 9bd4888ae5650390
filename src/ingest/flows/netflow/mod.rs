//! NetFlow v5/v7/v9 and IPFIX. Templates, options and v5/v7 go through
//! `netflow_parser`, one parser per exporter address and v9 source id /
//! IPFIX observation domain; data sets whose template floodwatch compiled
//! ([`plan`]) are read in place. Exporters and templates are LRU-bounded.

mod plan;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use lru::LruCache;
use netflow_parser::scoped_parser::RouterScopedParser;
use netflow_parser::static_versions::{v5::V5, v7::V7};
use netflow_parser::variable_versions::ipfix::lookup::{IANAIPFixField, IPFixField};
use netflow_parser::variable_versions::ipfix::{
    FlowSetBody as IpfixBody, Header as IpfixHeader, IPFix,
};
use netflow_parser::variable_versions::v9::{FlowSetBody as V9Body, V9};
use netflow_parser::{
    FieldValue, NetflowError, NetflowPacket, NetflowParser, TemplateEvent, V9Field, V9FieldPair,
    DEFAULT_MAX_DECODED_FIELD_VALUES_PER_MESSAGE as MAX_VALUES,
    DEFAULT_MAX_RECORDS_PER_FLOWSET as MAX_RECORDS,
};

use super::counters::{ExporterStats, Rejection};
use super::{FlowConfig, FlowRecord};
use crate::{Error, Result};
use plan::Plan;

/// Whom templates belong to: the exporter, the version and the v9 source
/// id or IPFIX observation domain (0 for v5/v7).
type SourceKey = (SocketAddr, u16, u32);

/// The NetFlow/IPFIX half of a [`FlowDecoder`](super::FlowDecoder).
pub(super) struct Netflow {
    parser: RouterScopedParser<SourceKey>,
    /// What floodwatch keeps per source; evicting one drops its parser.
    sources: LruCache<SourceKey, Source>,
    max_plans: usize,
    evicted: Arc<AtomicU64>,
    /// Whether compiled templates read data sets (off in tests that
    /// compare with the crate's decoding).
    in_place: bool,
}

/// A source's clock, sampling rate and compiled data templates.
#[derive(Debug, Default)]
struct Source {
    boot: Option<Boot>,
    /// The sampling rate its options data announced.
    rate: Option<u32>,
    /// Compiled data templates by id, oldest first.
    plans: Vec<(u16, Plan)>,
}

impl Source {
    fn plan(&self, id: u16) -> Option<&Plan> {
        self.plans.iter().find(|(i, _)| *i == id).map(|(_, p)| p)
    }

    /// Forgets template `id` (redefined as one floodwatch does not read in
    /// place).
    fn forget(&mut self, id: u16) {
        self.plans.retain(|(i, _)| *i != id);
    }

    /// Forgets template `id`, then keeps `plan` for it (the oldest goes
    /// when `max` are kept).
    fn learn(&mut self, id: u16, plan: Option<Plan>, max: usize) {
        self.forget(id);
        if let Some(plan) = plan {
            if self.plans.len() >= max {
                self.plans.remove(0);
            }
            self.plans.push((id, plan));
        }
    }

    /// The boot time after a v9 header saying `unix_secs` at `uptime` ms.
    fn boot(&mut self, unix_secs: u32, uptime: u32) -> Boot {
        let boot = Boot::update(self.boot.as_mut(), unix_secs, uptime);
        self.boot = Some(boot);
        boot
    }
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
            .field("sources", &self.sources.len())
            .finish_non_exhaustive()
    }
}

/// The big-endian `u16`/`u32` at `at` (the caller checked the length).
fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

/// The source of a datagram, from its header (`None`: too short for one).
fn source_key(d: &[u8], exporter: SocketAddr) -> Option<SourceKey> {
    let version = be16(d, 0);
    let domain = match version {
        9 if d.len() >= 20 => be32(d, 16),
        10 if d.len() >= 16 => be32(d, 12),
        9 | 10 => return None,
        _ => 0,
    };
    Some((exporter, version, domain))
}

impl Netflow {
    pub(super) fn new(c: &FlowConfig) -> Result<Self> {
        let evicted = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&evicted);
        let bad = |e: netflow_parser::ConfigError| Error::Data(format!("flow decoder: {e}"));
        let builder = NetflowParser::builder()
            .with_cache_size(c.max_templates.max(1))
            .with_max_field_count(c.max_fields.max(1))
            .with_max_template_total_size(c.max_fields.max(1) * 16)
            .on_template_event(move |e| {
                if matches!(e, TemplateEvent::Evicted { .. }) {
                    count.fetch_add(1, Relaxed);
                }
                Ok(())
            });
        let sources = c.max_exporters.max(1);
        // One more parser than sources: `sources` decides who goes.
        let parser = RouterScopedParser::try_with_builder(builder)
            .map_err(bad)?
            .with_max_sources(sources + 1)
            .map_err(bad)?;
        let cap = NonZeroUsize::new(sources).unwrap_or(NonZeroUsize::MIN);
        Ok(Netflow {
            parser,
            sources: LruCache::new(cap),
            max_plans: c.max_templates.max(1),
            evicted,
            in_place: true,
        })
    }

    pub(super) fn template_evictions(&self) -> u64 {
        self.evicted.load(Relaxed)
    }

    /// The state of `key`, created if new (forgetting the least recently
    /// heard source, and its parser, when full).
    fn source(&mut self, key: SourceKey) -> &mut Source {
        if !self.sources.contains(&key) {
            if let Some((gone, _)) = self.sources.push(key, Source::default()) {
                self.parser.remove_source(&gone);
            }
        }
        self.sources.get_mut(&key).expect("just ensured")
    }

    pub(super) fn decode(
        &mut self,
        datagram: &[u8],
        exporter: SocketAddr,
        out: &mut Vec<FlowRecord>,
        stats: &mut ExporterStats,
    ) {
        let Some(key) = source_key(datagram, exporter) else {
            return stats.reject(Rejection::Truncated);
        };
        self.source(key);
        if self.in_place && self.read_in_place(datagram, key, out, stats) {
            return;
        }
        let result = self.parser.parse_from_source(key, datagram);
        for packet in &result.packets {
            match packet {
                NetflowPacket::V5(p) => v5(p, exporter.ip(), out),
                NetflowPacket::V7(p) => v7(p, exporter.ip(), out),
                NetflowPacket::V9(p) => self.v9(p, key, out, stats),
                NetflowPacket::IPFix(p) => self.ipfix(p, key, out, stats),
                _ => stats.reject(Rejection::UnknownVersion),
            }
        }
        if let Some(e) = &result.error {
            let why = match rejection(e) {
                Rejection::Malformed if has_template_set(datagram) => Rejection::BadTemplate,
                why => why,
            };
            if why == Rejection::BadTemplate {
                // The crate may have learned part of it: compile nothing
                // of this source until its templates come again.
                self.source(key).plans.clear();
            }
            stats.reject(why);
        }
    }

    /// Reads a v9 or IPFIX datagram of data sets only, all with compiled
    /// templates the crate still holds; `false` (nothing read) otherwise.
    fn read_in_place(
        &mut self,
        d: &[u8],
        key: SourceKey,
        out: &mut Vec<FlowRecord>,
        stats: &mut ExporterStats,
    ) -> bool {
        let header = match key.1 {
            9 => 20,
            10 if usize::from(be16(d, 2)) == d.len() => 16,
            _ => return false,
        };
        let (Some(parser), Some(source)) =
            (self.parser.get_parser(&key), self.sources.peek_mut(&key))
        else {
            return false;
        };
        if !sets_have_plans(d, header, key.1, parser, source) {
            return false;
        }
        let clock = if key.1 == 9 {
            let (uptime, unix_secs) = (be32(d, 4), be32(d, 8));
            Clock {
                boot_ms: source.boot(unix_secs, uptime).ms,
                export_ms: i64::from(unix_secs) * 1000,
            }
        } else {
            Clock {
                boot_ms: i64::MIN,
                export_ms: i64::from(be32(d, 4)) * 1000,
            }
        };
        let mut at = header;
        while at < d.len() {
            let (id, end) = (be16(d, at), at + usize::from(be16(d, at + 2)));
            let plan = source.plan(id).expect("checked");
            for r in d[at + 4..end].chunks_exact(plan.record_len()) {
                let rec = plan.read(r).record(key.0.ip(), key.2, &clock, source.rate);
                push(rec, out, stats);
            }
            at = end;
        }
        true
    }

    fn v9(&mut self, p: &V9, key: SourceKey, out: &mut Vec<FlowRecord>, s: &mut ExporterStats) {
        let h = &p.header;
        let max = self.max_plans;
        let source = self.source(key);
        let boot = source.boot(h.unix_secs, h.sys_up_time);
        let clock = Clock {
            boot_ms: boot.ms,
            export_ms: i64::from(h.unix_secs) * 1000,
        };
        for set in &p.flowsets {
            match &set.body {
                V9Body::Template(ts) => ts.templates.iter().for_each(|t| v9_plan(source, t, max)),
                V9Body::OptionsTemplate(ts) => ts
                    .templates
                    .iter()
                    .for_each(|t| source.forget(t.template_id)),
                V9Body::Data(d) => {
                    for r in &d.fields {
                        let rec = v9_record(r, key.0.ip(), key.2, &clock, source.rate);
                        push(rec, out, s);
                    }
                }
                V9Body::OptionsData(o) => {
                    for f in &o.fields {
                        if let Some(rate) = v9_rate(&f.options_fields) {
                            source.rate = Some(rate);
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
        key: SourceKey,
        out: &mut Vec<FlowRecord>,
        s: &mut ExporterStats,
    ) {
        let h: &IpfixHeader = &p.header;
        let clock = Clock {
            boot_ms: i64::MIN,
            export_ms: i64::from(h.export_time) * 1000,
        };
        let (ip, domain) = (key.0.ip(), key.2);
        let max = self.max_plans;
        let source = self.source(key);
        for set in &p.flowsets {
            match &set.body {
                IpfixBody::Template(t) => ipfix_plan(source, t, max),
                IpfixBody::Templates(ts) => ts.iter().for_each(|t| ipfix_plan(source, t, max)),
                IpfixBody::V9Template(t) => source.forget(t.template_id),
                IpfixBody::V9Templates(ts) => ts.iter().for_each(|t| source.forget(t.template_id)),
                IpfixBody::OptionsTemplate(t) => source.forget(t.template_id),
                IpfixBody::OptionsTemplates(ts) => {
                    ts.iter().for_each(|t| source.forget(t.template_id))
                }
                IpfixBody::V9OptionsTemplate(t) => source.forget(t.template_id),
                IpfixBody::V9OptionsTemplates(ts) => {
                    ts.iter().for_each(|t| source.forget(t.template_id))
                }
                IpfixBody::Data(d) => {
                    for r in &d.fields {
                        let mut acc = Acc::default();
                        r.iter().for_each(|(f, v)| acc.ipfix(f, v));
                        push(acc.record(ip, domain, &clock, source.rate), out, s);
                    }
                }
                IpfixBody::V9Data(d) => {
                    for r in &d.fields {
                        push(v9_record(r, ip, domain, &clock, source.rate), out, s);
                    }
                }
                IpfixBody::OptionsData(o) => {
                    for f in &o.fields {
                        let mut acc = Acc::default();
                        f.iter().for_each(|(f, v)| acc.ipfix(f, v));
                        if let Some(rate) = acc.rate() {
                            source.rate = Some(rate);
                        }
                    }
                }
                IpfixBody::V9OptionsData(o) => {
                    for f in &o.fields {
                        if let Some(rate) = v9_rate(&f.options_fields) {
                            source.rate = Some(rate);
                        }
                    }
                }
                IpfixBody::NoTemplate(_) => s.reject(Rejection::NoTemplate),
                _ => {}
            }
        }
    }
}

/// Whether the sets after `header` of a `version` datagram tile it, are
/// all data of templates `source` compiled and `parser` still holds, and
/// stay within the crate's limits.
fn sets_have_plans(
    d: &[u8],
    header: usize,
    version: u16,
    parser: &NetflowParser,
    source: &Source,
) -> bool {
    let (mut at, mut values) = (header, 0);
    while at < d.len() {
        let Some(set) = d.get(at..at + 4) else {
            return false;
        };
        let (id, len) = (be16(set, 0), usize::from(be16(set, 2)));
        let held = match version {
            9 => parser.has_v9_template(id),
            _ => parser.has_ipfix_template(id),
        };
        let Some(plan) = source.plan(id).filter(|_| held && len >= 4) else {
            return false;
        };
        let records = (len - 4) / plan.record_len();
        values += records * plan.values();
        if at + len > d.len() || records > MAX_RECORDS || values > MAX_VALUES {
            return false;
        }
        at += len;
    }
    true
}

/// Compiles a v9 data template for `source`.
fn v9_plan(source: &mut Source, t: &netflow_parser::variable_versions::v9::Template, max: usize) {
    let fields = t
        .fields
        .iter()
        .map(|f| (f.field_type_number, f.field_length, false));
    source.learn(t.template_id, Plan::compile(fields, false), max);
}

/// Compiles an IPFIX data template for `source`.
fn ipfix_plan(
    source: &mut Source,
    t: &netflow_parser::variable_versions::ipfix::Template,
    max: usize,
) {
    let fields = t.fields.iter().map(|f| {
        let enterprise = f.enterprise_number.is_some();
        (f.field_type_number, f.field_length, enterprise)
    });
    source.learn(t.template_id, Plan::compile(fields, true), max);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::flows::build::{ipfix, v9};
    use rand::{Rng, SeedableRng};

    /// Fields floodwatch reads, and some it skips.
    const IDS: [u16; 30] = [
        8, 12, 27, 28, 7, 11, 4, 6, 2, 1, 24, 23, 86, 85, 22, 21, 150, 151, 152, 153, 154, 155,
        156, 157, 160, 34, 50, 305, 306, 10,
    ];
    const WIDTHS: [u16; 8] = [1, 2, 3, 4, 4, 8, 8, 16];

    fn slot_fits(id: u16, width: u16) -> bool {
        Plan::compile([(id, width, false)], true).is_some()
    }

    fn set(id: u16, body: &[u8]) -> Vec<u8> {
        let mut s = id.to_be_bytes().to_vec();
        s.extend_from_slice(&(4 + body.len() as u16).to_be_bytes());
        s.extend_from_slice(body);
        s
    }

    /// A template set (v9: set 0, IPFIX: set 2) of `fields`; IPFIX
    /// enterprise fields carry enterprise number 9.
    fn template(id: u16, fields: &[(u16, u16, bool)], ipfix: bool) -> Vec<u8> {
        let mut b = id.to_be_bytes().to_vec();
        b.extend_from_slice(&(fields.len() as u16).to_be_bytes());
        for &(t, l, e) in fields {
            b.extend_from_slice(&(t | if e { 0x8000 } else { 0 }).to_be_bytes());
            b.extend_from_slice(&l.to_be_bytes());
            if e {
                b.extend_from_slice(&9u32.to_be_bytes());
            }
        }
        set(if ipfix { 2 } else { 0 }, &b)
    }

    fn decode(n: &mut Netflow, d: &[u8], from: SocketAddr) -> (Vec<FlowRecord>, String) {
        let (mut out, mut stats) = (Vec::new(), ExporterStats::default());
        n.decode(d, from, &mut out, &mut stats);
        (out, stats.to_string())
    }

    /// Random templates of the fields floodwatch reads and skips, at
    /// widths it reads in place and others, ids redefined, and random
    /// records: reading in place gives what the crate's decoding gives.
    #[test]
    fn records_read_in_place_are_those_the_crate_decodes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let from: SocketAddr = "192.0.2.7:2055".parse().unwrap();
        let (mut compiled, mut records) = (0, 0);
        let mut crate_only = Netflow::new(&FlowConfig::default()).unwrap();
        crate_only.in_place = false;
        let mut in_place = Netflow::new(&FlowConfig::default()).unwrap();
        for round in 0..400u16 {
            let ipfix_round = round % 2 == 1;
            // Addresses in most, so that records come out.
            let v6 = rng.random_bool(0.3);
            let mut fields = match round % 7 {
                0 => vec![],
                _ if v6 => vec![(27, 16, false), (28, 16, false)],
                _ => vec![(8, 4, false), (12, 4, false)],
            };
            for _ in 0..rng.random_range(1..8) {
                let id = IDS[rng.random_range(0..IDS.len())];
                let width = match rng.random_bool(0.9) {
                    true => {
                        let fit: Vec<u16> =
                            WIDTHS.into_iter().filter(|&w| slot_fits(id, w)).collect();
                        fit.get(rng.random_range(0..fit.len().max(1)))
                            .copied()
                            .unwrap_or(4)
                    }
                    false => WIDTHS[rng.random_range(0..WIDTHS.len())],
                };
                let at = rng.random_range(0..=fields.len());
                fields.insert(at, (id, width, ipfix_round && rng.random_bool(0.1)));
            }
            let plan = Plan::compile(fields.iter().copied(), ipfix_round);
            compiled += usize::from(plan.is_some());
            let len: usize = fields.iter().map(|f| usize::from(f.1)).sum();
            // Ids come again: each template redefines one before it.
            let id = 256 + round % 5;
            let mut body = vec![0u8; len * rng.random_range(0..5) + rng.random_range(0..3)];
            rng.fill(&mut body[..]);
            let (t, data) = (template(id, &fields, ipfix_round), set(id, &body));
            let (first, then) = match ipfix_round {
                true => (ipfix(3, &[t]), ipfix(3, &[data])),
                false => (v9(3, &[t]), v9(3, &[data])),
            };
            for n in [&mut crate_only, &mut in_place] {
                decode(n, &first, from);
            }
            let want = decode(&mut crate_only, &then, from);
            let got = decode(&mut in_place, &then, from);
            assert_eq!(got, want, "round {round}: {fields:?}");
            records += got.0.len();
        }
        assert!(compiled > 100 && records > 200, "{compiled} {records}");
    }
}
