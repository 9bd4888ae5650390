//! sFlow v5 through `flowparser-sflow`: one [`FlowRecord`] per flow sample,
//! from its raw packet header (decoded by floodwatch's packet decoder) or
//! its sampled IPv4/IPv6 record.

use std::net::IpAddr;

use flowparser_sflow::flow_records::raw_packet_header::RawPacketHeader;
use flowparser_sflow::{FlowRecord as SflowRecord, SflowError, SflowParser, SflowSample};

use super::counters::{ExporterStats, Rejection};
use super::{FlowConfig, FlowRecord};
use crate::ingest::packets::decode::decode;
use crate::ingest::packets::frame::{LinkType, RawFrame};
use crate::ingest::packets::{Network, Transport};

/// sFlow's header protocols (sFlow v5, `header_protocol`).
const HEADER_ETHERNET: u32 = 1;
const HEADER_IPV4: u32 = 11;
const HEADER_IPV6: u32 = 12;

/// The sFlow half of a [`FlowDecoder`](super::FlowDecoder).
#[derive(Debug)]
pub(super) struct Sflow {
    parser: SflowParser,
}

/// One flow sample's header fields.
struct Sample<'a> {
    rate: u32,
    records: &'a [SflowRecord],
}

impl Sflow {
    pub(super) fn new(c: &FlowConfig) -> Self {
        Sflow {
            parser: SflowParser::builder()
                .with_max_samples(c.max_samples)
                .build(),
        }
    }

    pub(super) fn decode(
        &mut self,
        datagram: &[u8],
        exporter: IpAddr,
        at: f64,
        out: &mut Vec<FlowRecord>,
        stats: &mut ExporterStats,
    ) {
        let result = self.parser.parse_bytes(datagram);
        for d in &result.datagrams {
            for s in &d.samples {
                let sample = match s {
                    SflowSample::Flow(f) => Sample {
                        rate: f.sampling_rate,
                        records: &f.records,
                    },
                    SflowSample::ExpandedFlow(f) => Sample {
                        rate: f.sampling_rate,
                        records: &f.records,
                    },
                    SflowSample::Counter(_) | SflowSample::ExpandedCounter(_) => {
                        stats.counter_samples += 1;
                        continue;
                    }
                    _ => continue,
                };
                let base = FlowRecord {
                    sampling_rate: sample.rate.max(1),
                    packets: 1,
                    ..FlowRecord::empty(exporter, d.sub_agent_id, at)
                };
                match flow(sample.records, base) {
                    Some(r) => out.push(r),
                    None => stats.reject(Rejection::NoAddress),
                }
            }
        }
        if let Some(e) = &result.error {
            stats.reject(rejection(e));
        }
    }
}

fn rejection(e: &SflowError) -> Rejection {
    match e {
        SflowError::UnsupportedVersion { .. } => Rejection::UnknownVersion,
        SflowError::Incomplete { .. } => Rejection::Truncated,
        SflowError::TooManySamples { .. } => Rejection::BadSample,
        SflowError::ParseError { .. } => Rejection::BadSample,
    }
}

/// The record of a sample: its raw header if it has one that decodes to
/// IP, else its sampled IPv4/IPv6 record.
fn flow(records: &[SflowRecord], base: FlowRecord) -> Option<FlowRecord> {
    let from_header = records.iter().find_map(|r| match r {
        SflowRecord::RawPacketHeader(h) => raw_header(h, base),
        _ => None,
    });
    from_header.or_else(|| {
        records.iter().find_map(|r| match r {
            SflowRecord::SampledIpv4(s) => Some(sampled(
                (IpAddr::V4(s.src_ip), IpAddr::V4(s.dst_ip)),
                [s.src_port, s.dst_port, s.protocol, s.tcp_flags, s.length],
                base,
            )),
            SflowRecord::SampledIpv6(s) => Some(sampled(
                (IpAddr::V6(s.src_ip), IpAddr::V6(s.dst_ip)),
                [s.src_port, s.dst_port, s.protocol, s.tcp_flags, s.length],
                base,
            )),
            _ => None,
        })
    })
}

/// A sampled IPv4 or IPv6 record: its addresses, then source and
/// destination ports, protocol, TCP flags and length.
fn sampled((src, dst): (IpAddr, IpAddr), f: [u32; 5], base: FlowRecord) -> FlowRecord {
    FlowRecord {
        src,
        dst,
        src_port: f[0] as u16,
        dst_port: f[1] as u16,
        protocol: f[2] as u8,
        tcp_flags: f[3] as u8,
        bytes: u64::from(f[4]),
        ..base
    }
}

/// A raw packet header through floodwatch's decoder; `None` when it holds
/// no IP header.
fn raw_header(h: &RawPacketHeader, base: FlowRecord) -> Option<FlowRecord> {
    let link_type = match h.header_protocol {
        HEADER_ETHERNET => LinkType::ETHERNET,
        HEADER_IPV4 | HEADER_IPV6 => LinkType::RAW,
        _ => return None,
    };
    let meta = decode(&RawFrame {
        index: 0,
        ts_ns: 0,
        wire_len: h.frame_length,
        link_type,
        interface: 0,
        data: &h.header,
    });
    let Network::Ip { src, dst } = meta.network else {
        return None;
    };
    let (protocol, src_port, dst_port, tcp_flags) = match meta.transport {
        Transport::Tcp {
            src_port,
            dst_port,
            flags,
        } => (6, src_port, dst_port, flags),
        Transport::Udp { src_port, dst_port } => (17, src_port, dst_port, 0),
        Transport::Icmp { .. } if src.is_ipv6() => (58, 0, 0, 0),
        Transport::Icmp { .. } => (1, 0, 0, 0),
        Transport::Other(n) => (n, 0, 0, 0),
        Transport::None => (0, 0, 0, 0),
    };
    Some(FlowRecord {
        src,
        dst,
        src_port,
        dst_port,
        protocol,
        tcp_flags,
        bytes: u64::from(h.frame_length),
        ..base
    })
}
