//! Flow telemetry as records: export datagrams (a capture or UDP sockets)
//! decoded into flow records, each fed to the `victim` layout with weights
//! ([`crate::features::flow`] says how a flow counts).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;
use std::time::Instant;

use super::source::{Next, RecordInfo, RecordSource, TableUsage};
use crate::detect::alert::FlowContext;
use crate::features::packet::FeatureExtractor;
use crate::features::victim::Victim;
use crate::ingest::flows::{Arrival, DatagramSource, FlowDecoder, FlowRecord};

/// How records are put back in time order: exporters send a flow when it
/// ends or times out, so records arrive out of order by up to the active
/// timeout, and the damped windows want them in order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reorder {
    /// A record is held until one ending this many seconds later arrives
    /// (or the input pauses or ends).
    pub hold: f64,
    /// Most records held; more release the earliest at once.
    pub capacity: usize,
}

impl Default for Reorder {
    fn default() -> Self {
        Reorder {
            hold: 1.0,
            capacity: 1 << 18,
        }
    }
}

/// A held record's place in the heap: its end time (ordered bits), the
/// order it came in (ties), and its slot in the slab.
type Key = Reverse<(u64, u32, u32)>;

/// The bits of `t`, ordered as `t` is (`f64::total_cmp`).
fn ordered(t: f64) -> u64 {
    let b = t.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | 1 << 63
    }
}

/// Flow records of `S`'s datagrams, featured by the `victim` layout.
#[derive(Debug)]
pub struct FlowRecords<S> {
    source: S,
    decoder: FlowDecoder,
    allow: Vec<IpAddr>,
    features: Victim,
    reorder: Reorder,
    buf: Vec<FlowRecord>,
    held: BinaryHeap<Key>,
    /// The held records, by slot, and the free slots.
    slab: Vec<(FlowRecord, Instant)>,
    free: Vec<u32>,
    newest: f64,
    /// The input paused or ended: release everything held.
    draining: bool,
    seq: u32,
    index: u64,
}

impl<S: DatagramSource> FlowRecords<S> {
    /// Decodes `source` with `decoder`, taking datagrams only from the
    /// exporters in `allow` (any when it is empty).
    pub fn new(source: S, decoder: FlowDecoder, allow: Vec<IpAddr>, features: Victim) -> Self {
        FlowRecords {
            source,
            decoder,
            allow,
            features,
            reorder: Reorder::default(),
            buf: Vec::with_capacity(64),
            held: BinaryHeap::new(),
            slab: Vec::new(),
            free: Vec::new(),
            newest: f64::NEG_INFINITY,
            draining: false,
            seq: 0,
            index: 0,
        }
    }

    /// Puts records back in time order as `reorder` says.
    pub fn reorder(mut self, reorder: Reorder) -> Self {
        self.reorder = reorder;
        self
    }

    /// The decoder (its per-exporter counts).
    pub fn decoder(&self) -> &FlowDecoder {
        &self.decoder
    }

    /// The datagram source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The earliest held record and its arrival, if it may go: the input
    /// paused or ended, the hold is full, or a record ending `hold`
    /// seconds later came.
    fn release(&mut self) -> Option<(FlowRecord, Instant)> {
        let Reverse((end, _, _)) = *self.held.peek()?;
        let due = self.draining
            || self.held.len() > self.reorder.capacity
            || end <= ordered(self.newest - self.reorder.hold);
        if !due {
            return None;
        }
        let Reverse((_, _, slot)) = self.held.pop()?;
        self.free.push(slot);
        Some(self.slab[slot as usize])
    }

    /// Decodes the next datagram into the hold; `Some` when the source has
    /// nothing more for now (idle or ended).
    fn take(&mut self) -> Option<Next> {
        let d = match self.source.next_datagram() {
            Arrival::Datagram(d) => d,
            Arrival::Idle => return Some(Next::Idle),
            Arrival::End => return Some(Next::End),
        };
        let ip = d.exporter.ip();
        if !self.allow.is_empty() && !self.allow.contains(&ip) {
            self.decoder.refuse(ip);
            return None;
        }
        let (accept, exporter, at, arrived) = (d.accept, d.exporter, d.at, d.arrived);
        self.buf.clear();
        self.decoder
            .decode_as(accept, d.payload, exporter, at, &mut self.buf);
        self.draining = false;
        for &record in &self.buf {
            self.seq = self.seq.wrapping_add(1);
            self.newest = self.newest.max(record.end);
            let slot = match self.free.pop() {
                Some(slot) => {
                    self.slab[slot as usize] = (record, arrived);
                    slot
                }
                None => {
                    self.slab.push((record, arrived));
                    (self.slab.len() - 1) as u32
                }
            };
            self.held
                .push(Reverse((ordered(record.end), self.seq, slot)));
        }
        None
    }
}

impl<S: DatagramSource> RecordSource for FlowRecords<S> {
    fn names(&self) -> &[String] {
        self.features.names()
    }

    fn next(&mut self, out: &mut [f64]) -> Next {
        let (record, arrived) = loop {
            if let Some(h) = self.release() {
                break h;
            }
            if let Some(pause) = self.take() {
                if self.held.is_empty() {
                    return pause;
                }
                self.draining = true;
            }
        };
        self.index += 1;
        self.features.update_flow(&record, out);
        Next::Record(RecordInfo {
            index: self.index,
            timestamp: record.end,
            flow: FlowContext::from_flow(&record),
            arrived,
        })
    }

    fn usage(&self) -> TableUsage {
        TableUsage {
            entries: self.features.len() as u64,
            evictions: self.features.evictions(),
        }
    }

    fn skipped(&self) -> u64 {
        self.source.skipped() + self.decoder.counters().total().rejected_total()
    }

    fn dropped(&self) -> u64 {
        self.source.dropped()
    }

    fn state(&self) -> Option<serde_json::Value> {
        FeatureExtractor::state(&self.features)
    }

    fn restore(&mut self, state: &serde_json::Value) -> crate::Result<()> {
        FeatureExtractor::restore(&mut self.features, state)
    }

    fn notes(&self) -> Vec<String> {
        let c = self.decoder.counters();
        let mut notes: Vec<String> = c
            .exporters()
            .map(|(ip, s)| format!("exporter {ip}: {s}"))
            .collect();
        let forgotten = c.forgotten();
        if forgotten.datagrams > 0 {
            notes.push(format!("exporters no longer tracked: {forgotten}"));
        }
        let evicted = self.decoder.template_evictions();
        if evicted > 0 {
            notes.push(format!("{evicted} templates evicted from full caches"));
        }
        notes
    }
}
