//! Where the streaming engine's records come from: packets (a capture file,
//! paced or not, or a bounded queue fed by a live capture) turned into
//! feature vectors by a packet feature layout.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::detect::alert::FlowContext;
use crate::features::packet::{FeatureExtractor, TableState};
use crate::ingest::packets::capture::PacketSource;
use crate::ingest::packets::{PacketMeta, Transport};
use crate::Error;

/// How long a source waits for input before giving the engine a chance to
/// notice a stop request.
pub const IDLE_WAIT: Duration = Duration::from_millis(50);

/// One record's identity, as the alerts and the scores file need it.
#[derive(Debug, Clone, Copy)]
pub struct RecordInfo {
    /// Packet index in its capture (1-based), or record number.
    pub index: u64,
    /// Capture or record time, seconds since the Unix epoch.
    pub timestamp: f64,
    /// Addresses, ports, protocol and bytes.
    pub flow: FlowContext,
    /// When the record reached floodwatch: latency is measured from here.
    pub arrived: Instant,
}

/// What a source has for the engine.
#[derive(Debug)]
pub enum Next {
    /// A record, its features written to the caller's buffer.
    Record(RecordInfo),
    /// A malformed record, counted as rejected.
    Rejected(Error),
    /// The input cannot be read at all (a header that does not fit the
    /// model): the run stops with this error.
    Failed(Error),
    /// Nothing yet (live input, pacing): ask again.
    Idle,
    /// The input is exhausted.
    End,
}

/// Occupancy and evictions of a layout's state tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableUsage {
    /// Entries held now.
    pub entries: u64,
    /// Entries evicted because a table was full.
    pub evictions: u64,
}

/// A stream of records with fixed-width feature vectors.
pub trait RecordSource {
    /// Names of the features, in output order.
    fn names(&self) -> &[String];

    /// The next record, its features written to `out` (of `names().len()`).
    fn next(&mut self, out: &mut [f64]) -> Next;

    /// State table usage (for the metrics).
    fn usage(&self) -> TableUsage {
        TableUsage::default()
    }

    /// Input records skipped before they became records (unreadable frames).
    fn skipped(&self) -> u64 {
        0
    }

    /// Input records dropped because input outran scoring.
    fn dropped(&self) -> u64 {
        0
    }

    /// The feature tables' contents, for a warm restart.
    fn state(&self) -> Option<TableState> {
        None
    }

    /// Restores tables saved by [`state`](Self::state).
    fn restore(&mut self, _state: &str) -> crate::Result<()> {
        Err(Error::Data("this source keeps no feature tables".into()))
    }

    /// What the reader has to say at the end (per-exporter counts).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// What a packet feed has.
#[derive(Debug)]
pub enum Feed {
    /// A decoded packet and when it arrived.
    Packet(PacketMeta, Instant),
    /// Nothing yet.
    Idle,
    /// No more packets.
    End,
}

/// Decoded packets, one at a time.
pub trait PacketFeed {
    /// The next packet.
    fn next_packet(&mut self) -> Feed;
    /// Frames skipped as unreadable.
    fn skipped(&self) -> u64 {
        0
    }
    /// Packets dropped before the feed (a full queue).
    fn dropped(&self) -> u64 {
        0
    }
}

impl<R: Read> PacketFeed for PacketSource<R> {
    fn next_packet(&mut self) -> Feed {
        let arrived = Instant::now();
        match PacketSource::next_packet(self) {
            Some(p) => Feed::Packet(p, arrived),
            None => Feed::End,
        }
    }

    fn skipped(&self) -> u64 {
        PacketSource::skipped(self)
    }
}

/// Packets from a bounded queue (live capture): waits at most
/// [`IDLE_WAIT`] per call; ends when the producer hangs up.
#[derive(Debug)]
pub struct QueueFeed {
    rx: Receiver<(PacketMeta, Instant)>,
    dropped: Arc<AtomicU64>,
}

impl QueueFeed {
    /// Reads from `rx`, whose producer counts its drops in `dropped`.
    pub fn new(rx: Receiver<(PacketMeta, Instant)>, dropped: Arc<AtomicU64>) -> Self {
        QueueFeed { rx, dropped }
    }
}

impl PacketFeed for QueueFeed {
    fn next_packet(&mut self) -> Feed {
        match self.rx.recv_timeout(IDLE_WAIT) {
            Ok((p, at)) => Feed::Packet(p, at),
            Err(RecvTimeoutError::Timeout) => Feed::Idle,
            Err(RecvTimeoutError::Disconnected) => Feed::End,
        }
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}

/// Replays a feed at the pace of its timestamps: a packet is released when
/// as much wall time has passed since the first as capture time did.
#[derive(Debug)]
pub struct Paced<F> {
    inner: F,
    start: Option<(Instant, f64)>,
    pending: Option<PacketMeta>,
}

impl<F: PacketFeed> Paced<F> {
    /// Paces `inner`.
    pub fn new(inner: F) -> Self {
        Paced {
            inner,
            start: None,
            pending: None,
        }
    }
}

impl<F: PacketFeed> PacketFeed for Paced<F> {
    fn next_packet(&mut self) -> Feed {
        let p = match self.pending.take() {
            Some(p) => p,
            None => match self.inner.next_packet() {
                Feed::Packet(p, _) => p,
                other => return other,
            },
        };
        let (wall0, ts0) = *self.start.get_or_insert((Instant::now(), p.timestamp));
        // Non-finite or backward timestamps are released at once.
        let due = (p.timestamp - ts0).max(0.0);
        let due = if due.is_finite() { due } else { 0.0 };
        let elapsed = wall0.elapsed().as_secs_f64();
        if elapsed >= due {
            return Feed::Packet(p, Instant::now());
        }
        std::thread::sleep(Duration::from_secs_f64(due - elapsed).min(IDLE_WAIT));
        self.pending = Some(p);
        Feed::Idle
    }

    fn skipped(&self) -> u64 {
        self.inner.skipped()
    }

    fn dropped(&self) -> u64 {
        self.inner.dropped()
    }
}

/// The usual UDP ports of flow export collectors (NetFlow, IPFIX, sFlow).
const EXPORT_PORTS: [u16; 5] = [2055, 4739, 6343, 9995, 9996];

/// Packets turned into records by a feature layout.
#[derive(Debug)]
pub struct PacketRecords<F, X> {
    feed: F,
    features: X,
    packets: u64,
    /// Packets that are UDP to an [`EXPORT_PORTS`] port.
    to_collectors: u64,
}

impl<F: PacketFeed, X: FeatureExtractor> PacketRecords<F, X> {
    /// Reads `feed` through the layout `features`.
    pub fn new(feed: F, features: X) -> Self {
        PacketRecords {
            feed,
            features,
            packets: 0,
            to_collectors: 0,
        }
    }

    /// The feed underneath (for its damage report).
    pub fn feed(&self) -> &F {
        &self.feed
    }
}

impl<F: PacketFeed, X: FeatureExtractor> RecordSource for PacketRecords<F, X> {
    fn names(&self) -> &[String] {
        self.features.names()
    }

    #[inline]
    fn next(&mut self, out: &mut [f64]) -> Next {
        match self.feed.next_packet() {
            Feed::Packet(p, arrived) => {
                self.packets += 1;
                if let Transport::Udp { dst_port, .. } = p.transport {
                    self.to_collectors += u64::from(EXPORT_PORTS.contains(&dst_port));
                }
                self.features.update(&p, out);
                Next::Record(RecordInfo {
                    index: p.index,
                    timestamp: p.timestamp,
                    flow: FlowContext::from_packet(&p),
                    arrived,
                })
            }
            Feed::Idle => Next::Idle,
            Feed::End => Next::End,
        }
    }

    fn usage(&self) -> TableUsage {
        self.features
            .table_stats()
            .iter()
            .fold(TableUsage::default(), |u, t| TableUsage {
                entries: u.entries + t.len as u64,
                evictions: u.evictions + t.evicted,
            })
    }

    fn skipped(&self) -> u64 {
        self.feed.skipped()
    }

    fn dropped(&self) -> u64 {
        self.feed.dropped()
    }

    fn state(&self) -> Option<TableState> {
        self.features.state()
    }

    fn restore(&mut self, state: &str) -> crate::Result<()> {
        self.features.restore(state)
    }

    fn notes(&self) -> Vec<String> {
        // Nine in ten packets to a collector's port: flow exports, not traffic.
        if self.packets < 10 || self.to_collectors * 10 < self.packets * 9 {
            return Vec::new();
        }
        vec![format!(
            "{} of {} packets are UDP to a flow collector's port ({}): if they are flow \
             exports, read them with --flows",
            self.to_collectors,
            self.packets,
            EXPORT_PORTS.map(|p| p.to_string()).join(", ")
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::victim::Victim;
    use crate::ingest::packets::{Network, Transport};
    use crate::ingest::queue::{bounded, Overflow};

    fn pkt(index: u64, t: f64) -> PacketMeta {
        PacketMeta {
            index,
            timestamp: t,
            wire_len: 60,
            src_mac: [0; 6],
            dst_mac: [0; 6],
            network: Network::None,
            transport: Transport::None,
            fragment: None,
        }
    }

    /// A feed of fixed packets.
    struct Fixed(std::vec::IntoIter<PacketMeta>);

    impl PacketFeed for Fixed {
        fn next_packet(&mut self) -> Feed {
            match self.0.next() {
                Some(p) => Feed::Packet(p, Instant::now()),
                None => Feed::End,
            }
        }
    }

    #[test]
    fn packet_records_carry_index_time_and_features() {
        let feed = Fixed(vec![pkt(1, 5.0), pkt(2, 6.0)].into_iter());
        let mut src = PacketRecords::new(feed, Victim::new(8).unwrap());
        let mut out = vec![0.0; src.names().len()];
        let Next::Record(r) = src.next(&mut out) else {
            panic!("expected a record")
        };
        assert_eq!((r.index, r.timestamp, r.flow.bytes), (1, 5.0, 60));
        assert!(
            out[3] == 60.0 && out.iter().all(|v| v.is_finite()),
            "size mean {}",
            out[3]
        );
        assert!(matches!(src.next(&mut out), Next::Record(_)));
        assert!(matches!(src.next(&mut out), Next::End));
        assert_eq!(src.usage().entries, 1);
    }

    #[test]
    fn pacing_follows_capture_time_and_survives_bad_timestamps() {
        let feed = Fixed(
            vec![
                pkt(1, 100.0),
                pkt(2, 100.08),
                pkt(3, f64::NAN),
                pkt(4, 50.0),
            ]
            .into_iter(),
        );
        let mut paced = Paced::new(feed);
        let start = Instant::now();
        let mut got = Vec::new();
        loop {
            match paced.next_packet() {
                Feed::Packet(p, _) => got.push(p.index),
                Feed::Idle => continue,
                Feed::End => break,
            }
        }
        assert_eq!(got, vec![1, 2, 3, 4]);
        assert!(start.elapsed() >= Duration::from_millis(80));
    }

    #[test]
    fn queue_feed_idles_then_ends_when_the_producer_leaves() {
        let (tx, rx) = bounded(4, Overflow::Drop, Arc::new(AtomicU64::new(0)));
        let mut feed = QueueFeed::new(rx, Arc::new(AtomicU64::new(3)));
        assert_eq!(feed.dropped(), 3);
        assert!(matches!(feed.next_packet(), Feed::Idle));
        assert!(tx.push((pkt(1, 1.0), Instant::now())));
        assert!(matches!(feed.next_packet(), Feed::Packet(p, _) if p.index == 1));
        drop(tx);
        assert!(matches!(feed.next_packet(), Feed::End));
    }
}
