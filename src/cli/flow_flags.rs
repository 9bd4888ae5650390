//! The flow telemetry flags of `watch`: NetFlow/IPFIX and sFlow collectors,
//! or a capture of export datagrams, read into the `victim` layout.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use anyhow::bail;
use clap::Args as ClapArgs;

use floodwatch::detect::stream::flows::{FlowRecords, Reorder};
use floodwatch::detect::stream::RecordSource;
use floodwatch::features::combined::PacketLayout;
use floodwatch::features::victim::Victim;
use floodwatch::ingest::flows::capture::ExportCapture;
use floodwatch::ingest::flows::udp::Collector;
use floodwatch::ingest::flows::{Accept, FlowConfig, FlowDecoder};

/// Flow telemetry input.
#[derive(Debug, Clone, ClapArgs)]
pub struct FlowFlags {
    /// Collect NetFlow v5/v9 and IPFIX on this UDP address (repeatable):
    /// the version is told apart per datagram, templates are kept per
    /// exporter and observation domain.
    #[arg(long, value_name = "ADDR:PORT")]
    pub netflow: Vec<SocketAddr>,
    /// Collect sFlow v5 on this UDP address (repeatable).
    #[arg(long, value_name = "ADDR:PORT")]
    pub sflow: Vec<SocketAddr>,
    /// Take flow datagrams only from this exporter (repeatable; others are
    /// counted as not_allowed). Default: any.
    #[arg(long, value_name = "ADDR")]
    pub exporter: Vec<IpAddr>,
    /// With --pcap: the capture holds flow export datagrams (NetFlow, IPFIX
    /// or sFlow over UDP), decoded as a collector would.
    #[arg(long, requires = "pcap")]
    pub flows: bool,
    /// Most exporters (address and observation domain) whose templates and
    /// counts are kept; the least recently heard is forgotten first.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_exporters: usize,
    /// Most templates kept per exporter and domain (a template flood
    /// evicts the oldest, counted).
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_templates: usize,
    /// Seconds a flow record is held to put records back in time order
    /// (exporters send flows as they end); 0 scores each as it comes.
    #[arg(long, value_name = "SECONDS", default_value_t = Reorder::default().hold)]
    pub flow_hold: f64,
    /// Most flow records held for reordering (memory: about 130 bytes
    /// each); more release the earliest at once.
    #[arg(long, value_name = "N", default_value_t = Reorder::default().capacity)]
    pub flow_hold_records: usize,
}

impl FlowFlags {
    /// Whether the input is flow telemetry.
    pub fn active(&self) -> bool {
        self.flows || !self.netflow.is_empty() || !self.sflow.is_empty()
    }

    /// The flow source: a capture (`pcap` with --flows) or the collectors,
    /// featured by the `victim` layout with at most `capacity` hosts.
    pub fn source(
        &self,
        pcap: Option<&Path>,
        layout: &str,
        capacity: usize,
        quiet: bool,
    ) -> anyhow::Result<Box<dyn RecordSource>> {
        if layout != PacketLayout::DEFAULT {
            bail!(
                "flow records feed the `{}` layout only (layout `{layout}` reads packets): \
                 drop --layout, or use a model learned from flows",
                PacketLayout::DEFAULT
            );
        }
        let config = FlowConfig {
            max_exporters: self.max_exporters.max(1),
            max_templates: self.max_templates.max(1),
            ..FlowConfig::default()
        };
        let decoder = FlowDecoder::new(Accept::Any, config)?;
        let victim = Victim::new(capacity)?;
        let allow = self.exporter.clone();
        if !(self.flow_hold >= 0.0 && self.flow_hold.is_finite()) {
            bail!(
                "--flow-hold {}: give a number of seconds, 0 or more",
                self.flow_hold
            );
        }
        let reorder = Reorder {
            hold: self.flow_hold,
            capacity: self.flow_hold_records,
        };
        if let Some(path) = pcap {
            let capture = ExportCapture::open(path)?;
            let records = FlowRecords::new(capture, decoder, allow, victim).reorder(reorder);
            return Ok(Box::new(records));
        }
        let mut addrs: Vec<(SocketAddr, Accept)> =
            self.netflow.iter().map(|&a| (a, Accept::Netflow)).collect();
        addrs.extend(self.sflow.iter().map(|&a| (a, Accept::Sflow)));
        let collector = Collector::bind(&addrs)?;
        for (addr, (_, accept)) in collector
            .local_addrs()
            .iter()
            .zip(&addrs)
            .filter(|_| !quiet)
        {
            eprintln!("floodwatch: collecting {accept:?} on udp {addr}");
        }
        let records = FlowRecords::new(collector, decoder, allow, victim).reorder(reorder);
        Ok(Box::new(records))
    }
}
