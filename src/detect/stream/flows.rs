//! Flow telemetry as records: export datagrams (a capture or UDP sockets)
//! decoded into flow records, each fed to the `victim` layout with weights
//! ([`crate::features::flow`] says how a flow counts).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

use super::source::{Next, RecordInfo, RecordSource, TableUsage};
use crate::detect::alert::FlowContext;
use crate::features::packet::{FeatureExtractor, TableState};
use crate::features::victim::Victim;
use crate::ingest::flows::udp::allowed;
use crate::ingest::flows::{Arrival, DatagramSource, FlowDecoder, FlowRecord, Rejection};

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

/// A held record's place in the queue: its end time (ordered bits), the
/// order it came in (ties), and its slot in the slab.
type Key = (u64, u32, u32);

/// Held keys, least first: a run of keys that came in order (most of them:
/// sFlow samples and most NetFlow records end in the order they are sent)
/// in a deque, the rest in a heap. Popping the lesser of the two fronts
/// gives the order a single heap gives, without its cache-missing sift on
/// every record (`BinaryHeap::pop` was 7 % of an sFlow replay).
#[derive(Debug, Default)]
struct Held {
    run: VecDeque<Key>,
    heap: BinaryHeap<Reverse<Key>>,
}

impl Held {
    fn push(&mut self, k: Key) {
        if self.run.back().is_none_or(|&b| k > b) {
            self.run.push_back(k);
        } else {
            self.heap.push(Reverse(k));
        }
    }

    fn peek(&self) -> Option<Key> {
        match (self.run.front(), self.heap.peek()) {
            (Some(&r), Some(&Reverse(h))) => Some(r.min(h)),
            (r, h) => r.copied().or(h.map(|h| h.0)),
        }
    }

    fn pop(&mut self) -> Option<Key> {
        let k = self.peek()?;
        if self.run.front() == Some(&k) {
            self.run.pop_front()
        } else {
            self.heap.pop().map(|h| h.0)
        }
    }

    fn len(&self) -> usize {
        self.run.len() + self.heap.len()
    }
}

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
    held: Held,
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
            held: Held::default(),
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

    /// The earliest held record and its arrival, if it may go: the input
    /// paused or ended, the hold is full, or a record ending `hold`
    /// seconds later came.
    fn release(&mut self) -> Option<(FlowRecord, Instant)> {
        let (end, _, _) = self.held.peek()?;
        let due = self.draining
            || self.held.len() > self.reorder.capacity
            || end <= ordered(self.newest - self.reorder.hold);
        if !due {
            return None;
        }
        let (_, _, slot) = self.held.pop()?;
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
        if !allowed(&self.allow, ip) {
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
            self.held.push((ordered(record.end), self.seq, slot));
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
                if self.held.len() == 0 {
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

    fn state(&self) -> Option<TableState> {
        FeatureExtractor::state(&self.features)
    }

    fn restore(&mut self, state: &str) -> crate::Result<()> {
        FeatureExtractor::restore(&mut self.features, state)
    }

    fn notes(&self) -> Vec<String> {
        let c = self.decoder.counters();
        let total = c.total();
        let mut notes = Vec::new();
        if total.datagrams > 0 && total.rejected(Rejection::UnknownVersion) == total.datagrams {
            notes.push(
                "no datagram was NetFlow, IPFIX or sFlow: a capture of packets is read without \
                 --flows"
                    .to_owned(),
            );
        }
        notes.extend(c.exporters().map(|(ip, s)| format!("exporter {ip}: {s}")));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::flows::build::{flow, v5};
    use crate::ingest::flows::{Accept, Datagram, FlowConfig};
    use rand::{Rng, SeedableRng};
    use std::net::SocketAddr;

    #[test]
    fn held_keys_leave_in_the_order_of_one_heap() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (mut held, mut heap) = (Held::default(), BinaryHeap::new());
        let mut t = 1000u64;
        for seq in 0..20_000u32 {
            // Mostly in order, some late by up to 50, runs of ties.
            t += rng.random_range(0..3);
            let late = if rng.random_bool(0.2) {
                rng.random_range(0..50)
            } else {
                0
            };
            let k = (t - late, seq, seq);
            held.push(k);
            heap.push(Reverse(k));
            while rng.random_bool(0.45) && held.len() > 0 {
                assert_eq!(held.pop(), heap.pop().map(|r| r.0));
            }
            assert_eq!(
                (held.len(), held.peek()),
                (heap.len(), heap.peek().map(|r| r.0))
            );
        }
        assert!(held.run.len() > 1000 && !held.heap.is_empty());
        while let Some(k) = held.pop() {
            assert_eq!(Some(k), heap.pop().map(|r| r.0));
        }
        assert!(heap.is_empty());
    }

    /// NetFlow v5 datagrams of one flow each, ending at the given seconds,
    /// with a pause after the `pause_after`-th.
    struct Exports {
        datagrams: Vec<Vec<u8>>,
        next: usize,
        pause_after: usize,
        paused: bool,
    }

    impl DatagramSource for Exports {
        fn next_datagram(&mut self) -> Arrival<'_> {
            if self.next == self.pause_after && !self.paused {
                self.paused = true;
                return Arrival::Idle;
            }
            let Some(payload) = self.datagrams.get(self.next) else {
                return Arrival::End;
            };
            self.next += 1;
            Arrival::Datagram(Datagram {
                accept: Accept::Any,
                exporter: SocketAddr::from(([192, 0, 2, 1], 2055)),
                at: 0.0,
                arrived: Instant::now(),
                payload,
            })
        }
    }

    /// `ends`, as a source of v5 datagrams (the header's export time set).
    fn exports(ends: &[u32], pause_after: usize) -> Exports {
        let datagrams = ends
            .iter()
            .map(|&t| {
                let mut d = v5(&[flow(1, 1)], 0);
                d[8..12].copy_from_slice(&t.to_be_bytes());
                d
            })
            .collect();
        Exports {
            datagrams,
            next: 0,
            pause_after,
            paused: false,
        }
    }

    /// The record times in the order `src` gives them, `Idle` as -1 (a
    /// pause with nothing held).
    fn order(src: &mut dyn RecordSource) -> Vec<f64> {
        let mut out = vec![0.0; src.names().len()];
        let mut got = Vec::new();
        loop {
            match src.next(&mut out) {
                Next::Record(r) => got.push(r.timestamp),
                Next::Idle => got.push(-1.0),
                Next::End => return got,
                other => panic!("{other:?}"),
            }
        }
    }

    fn records(ends: &[u32], pause_after: usize, hold: f64) -> Vec<f64> {
        let decoder = FlowDecoder::new(Accept::Any, FlowConfig::default()).unwrap();
        let victim = Victim::new(16).unwrap();
        let mut src = FlowRecords::new(exports(ends, pause_after), decoder, vec![], victim)
            .reorder(Reorder {
                hold,
                capacity: 1_000,
            });
        order(&mut src)
    }

    #[test]
    fn records_are_scored_in_end_time_order_once_a_later_one_came() {
        // 13 comes in: 5, 3 and 4 may go (ending a second or more before).
        let got = records(&[5, 3, 4, 13, 12, 20], usize::MAX, 1.0);
        assert_eq!(got, vec![3.0, 4.0, 5.0, 12.0, 13.0, 20.0]);
    }

    #[test]
    fn a_pause_releases_what_is_held_and_no_hold_keeps_arrival_order() {
        // The pause after 5 and 3 lets both go, in order, before 4 comes.
        let got = records(&[5, 3, 4, 13], 2, 1.0);
        assert_eq!(got, vec![3.0, 5.0, 4.0, 13.0]);
        assert_eq!(records(&[5, 3, 4], usize::MAX, 0.0), vec![5.0, 3.0, 4.0]);
    }

    #[test]
    fn a_full_hold_releases_the_earliest_at_once() {
        let decoder = FlowDecoder::new(Accept::Any, FlowConfig::default()).unwrap();
        let victim = Victim::new(16).unwrap();
        let mut src = FlowRecords::new(exports(&[9, 8, 7, 6], usize::MAX), decoder, vec![], victim)
            .reorder(Reorder {
                hold: 100.0,
                capacity: 2,
            });
        assert_eq!(order(&mut src), vec![7.0, 6.0, 8.0, 9.0]);
    }
}
