//! Flow telemetry in: NetFlow v5, v9 and IPFIX (through `netflow_parser`;
//! data sets of templates floodwatch compiled are read in place) and sFlow
//! v5 (through `flowparser-sflow`, raw packet headers through floodwatch's
//! own [packet decoder](crate::ingest::packets::decode)).
//!
//! A [`FlowDecoder`] takes one export datagram and the address it came
//! from, tells the protocol apart by its first bytes (NetFlow and IPFIX
//! begin with a 16-bit version 5, 7, 9 or 10; sFlow with the 32-bit version
//! 5), and appends one [`FlowRecord`] per flow record or flow sample to the
//! caller's buffer. Templates are kept per exporter and observation domain
//! (NetFlow v9's source id, IPFIX's observation domain id), so a template
//! from one router never decodes another's data. Data that arrives before
//! its template is counted as dropped (`no_template`), as nfdump drops it.
//!
//! Everything is bounded by [`FlowConfig`]: exporters tracked (templates and
//! counts; the least recently heard is forgotten first), templates per
//! exporter, fields per template, samples per sFlow datagram. Everything
//! rejected is counted per exporter and reason in [`FlowCounters`].
//!
//! Where the datagrams come from: [`capture`] reads them out of a capture of
//! export traffic (deterministic replays), [`udp`] receives them live.

#[doc(hidden)]
pub mod build;
pub mod capture;
mod counters;
mod netflow;
mod sflow;
pub mod udp;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

pub use counters::{ExporterStats, FlowCounters, Rejection};

/// One flow record (NetFlow/IPFIX) or flow sample (sFlow), as the features
/// read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowRecord {
    /// The exporter's address (the datagram's source).
    pub exporter: IpAddr,
    /// NetFlow v9 source id, IPFIX observation domain, sFlow sub-agent id
    /// (0 for NetFlow v5).
    pub domain: u32,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (0 without one).
    pub src_port: u16,
    /// Destination port (0 without one).
    pub dst_port: u16,
    /// IP protocol number.
    pub protocol: u8,
    /// TCP flags seen in the flow, OR-ed (FIN=0x01 ... CWR=0x80).
    pub tcp_flags: u8,
    /// Packets the record carries (1 for an sFlow sample).
    pub packets: u64,
    /// Bytes the record carries (the sampled frame's length for sFlow).
    pub bytes: u64,
    /// First packet, seconds since the Unix epoch.
    pub start: f64,
    /// Last packet, seconds since the Unix epoch (at least `start`).
    pub end: f64,
    /// One in how many packets was sampled (1: every packet).
    pub sampling_rate: u32,
}

impl FlowRecord {
    /// An empty record of `exporter` (no addresses, nothing counted).
    fn empty(exporter: IpAddr, domain: u32, at: f64) -> Self {
        let none = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        FlowRecord {
            exporter,
            domain,
            src: none,
            dst: none,
            src_port: 0,
            dst_port: 0,
            protocol: 0,
            tcp_flags: 0,
            packets: 0,
            bytes: 0,
            start: at,
            end: at,
            sampling_rate: 1,
        }
    }

    /// The sampling rate (at least 1).
    pub fn rate(&self) -> u64 {
        u64::from(self.sampling_rate.max(1))
    }

    /// Packets the record stands for: its packets (at least 1) times the
    /// sampling rate.
    pub fn scaled_packets(&self) -> u64 {
        self.packets.max(1).saturating_mul(self.rate())
    }

    /// Bytes the record stands for: its bytes times the sampling rate.
    pub fn scaled_bytes(&self) -> u64 {
        self.bytes.saturating_mul(self.rate())
    }
}

/// The bounds of a [`FlowDecoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowConfig {
    /// Exporters (address and observation domain) whose templates, sampling
    /// rates and counts are kept; the least recently heard goes first.
    pub max_exporters: usize,
    /// Templates kept per exporter and domain (each kind: data, options);
    /// a flood of new templates evicts the oldest.
    pub max_templates: usize,
    /// Fields a template may declare; more is a rejected template.
    pub max_fields: usize,
    /// Flow samples an sFlow datagram may declare; more rejects it.
    pub max_samples: u32,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            max_exporters: 1024,
            max_templates: 256,
            max_fields: 128,
            max_samples: 1024,
        }
    }
}

/// One export datagram, from a capture or a socket.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// What its socket accepts ([`Accept::Any`] from a capture).
    pub accept: Accept,
    /// The exporter: the UDP source.
    pub exporter: SocketAddr,
    /// Capture or receipt time, seconds since the Unix epoch.
    pub at: f64,
    /// When it reached floodwatch (latency is measured from here).
    pub arrived: Instant,
    /// The UDP payload.
    pub payload: &'a [u8],
}

/// What a [`DatagramSource`] has.
#[derive(Debug)]
pub enum Arrival<'a> {
    /// A datagram.
    Datagram(Datagram<'a>),
    /// Nothing yet (a socket): ask again.
    Idle,
    /// No more datagrams.
    End,
}

/// Export datagrams, one at a time: [`capture::ExportCapture`] or
/// [`udp::Collector`].
pub trait DatagramSource {
    /// The next datagram.
    fn next_datagram(&mut self) -> Arrival<'_>;
    /// Frames that held no datagram (captures).
    fn skipped(&self) -> u64 {
        0
    }
    /// Datagrams lost before floodwatch read them (full socket buffers).
    fn dropped(&self) -> u64 {
        0
    }
}

/// Which protocols a decoder accepts (a `--netflow` socket refuses sFlow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// NetFlow v5/v7/v9 and IPFIX.
    Netflow,
    /// sFlow v5.
    Sflow,
    /// Both, told apart per datagram (a capture of mixed exports).
    Any,
}

/// Export datagrams to flow records; see the [module docs](self).
#[derive(Debug)]
pub struct FlowDecoder {
    accept: Accept,
    netflow: netflow::Netflow,
    sflow: sflow::Sflow,
    counters: FlowCounters,
}

impl FlowDecoder {
    /// A decoder of the protocols `accept` names, bounded by `config`.
    pub fn new(accept: Accept, config: FlowConfig) -> crate::Result<Self> {
        Ok(FlowDecoder {
            accept,
            netflow: netflow::Netflow::new(&config)?,
            sflow: sflow::Sflow::new(&config),
            counters: FlowCounters::new(config.max_exporters),
        })
    }

    /// Decodes one datagram from `exporter`, received at `at` (seconds since
    /// the Unix epoch: sFlow carries no clock, so its samples take this
    /// time), appending its records to `out`. Returns how many it appended;
    /// what it could not use is counted in [`counters`](Self::counters).
    pub fn decode(
        &mut self,
        datagram: &[u8],
        exporter: SocketAddr,
        at: f64,
        out: &mut Vec<FlowRecord>,
    ) -> usize {
        self.decode_as(self.accept, datagram, exporter, at, out)
    }

    /// [`decode`](Self::decode), accepting what `accept` says (the socket
    /// the datagram came in on) instead of the decoder's own rule.
    pub fn decode_as(
        &mut self,
        accept: Accept,
        datagram: &[u8],
        exporter: SocketAddr,
        at: f64,
        out: &mut Vec<FlowRecord>,
    ) -> usize {
        let before = out.len();
        let kind = Kind::of(datagram);
        let stats = self.counters.datagram(exporter.ip());
        match (kind, accept) {
            (Kind::Netflow, Accept::Netflow | Accept::Any) => {
                self.netflow.decode(datagram, exporter, out, stats)
            }
            (Kind::Sflow, Accept::Sflow | Accept::Any) => {
                self.sflow.decode(datagram, exporter.ip(), at, out, stats)
            }
            (Kind::Short, _) => stats.reject(Rejection::Truncated),
            _ => stats.reject(Rejection::UnknownVersion),
        }
        let added = out.len() - before;
        self.counters.add_records(added as u64);
        added
    }

    /// Counts a datagram refused before decoding (an exporter outside the
    /// allow-list).
    pub fn refuse(&mut self, exporter: IpAddr) {
        self.counters
            .datagram(exporter)
            .reject(Rejection::NotAllowed);
    }

    /// What was decoded and rejected, per exporter and in total.
    pub fn counters(&self) -> &FlowCounters {
        &self.counters
    }

    /// Templates evicted from full per-exporter caches (a template flood),
    /// and exporters forgotten to keep within [`FlowConfig::max_exporters`].
    pub fn template_evictions(&self) -> u64 {
        self.netflow.template_evictions()
    }
}

/// The protocol of a datagram, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Netflow,
    Sflow,
    Unknown,
    Short,
}

impl Kind {
    fn of(d: &[u8]) -> Self {
        if d.len() < 4 {
            return Kind::Short;
        }
        match (u16::from_be_bytes([d[0], d[1]]), &d[..4]) {
            (5 | 7 | 9 | 10, _) => Kind::Netflow,
            (_, [0, 0, 0, 5]) => Kind::Sflow,
            _ => Kind::Unknown,
        }
    }
}

#[cfg(test)]
mod tests;
