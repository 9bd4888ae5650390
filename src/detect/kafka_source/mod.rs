//! A Kafka consumer group as a [`RecordSource`]: each instance of `watch`
//! reads the partitions the group gives it, keeps one feature state per
//! partition, and commits offsets at least once.
//!
//! **State.** Records are keyed (see [`record`](crate::ingest::kafka::record)) so that one
//! stream's statistics live in one partition, hence on one instance. A packet
//! layout's tables are kept per partition: when a rebalance takes a
//! partition away its state is dropped; a partition gained starts from a
//! fresh state and its first `warmup` records are featured but not scored
//! (counted as warming). With the default (eager) assignment protocol every
//! rebalance revokes all partitions first; those handed back to the same
//! instance keep their state, since nobody else read them meanwhile. Rows
//! (JSON or CSV in a bundle's schema) carry their own features: no state.
//!
//! **Delivery.** Auto-commit is off. An offset is committed only after
//! the hooks given to [`GroupSource::before_commit`] succeeded (the alert
//! producer's flush, which waits for the broker's acknowledgements, and the
//! scores file's flush), and only for records the engine has finished: the
//! engine is synchronous, so every record handed out before a call to
//! [`RecordSource::next`] is done when it runs. Commits happen every
//! `commit_every`, when a partition is revoked, and at [`GroupCloser::close`].
//! A restarted instance resumes from the committed offsets; records
//! processed after the last commit are processed again (duplicates, never
//! losses). A new group starts from the earliest offsets. A partition
//! gained is checked to resume exactly at its committed offset: a broker
//! that answers a fetch from inside a record batch with a later batch
//! (tansu 0.6 does) is made to read again from further back, and the
//! records before the committed offset are dropped (see `Resume`).
//!
//! **Malformed records** are rejected with topic, partition and offset in
//! the message and counted by the engine; they never stop the stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::detect::alert::FlowContext;
use crate::detect::metrics::Metrics;
use crate::detect::stream::source::{Next, RecordInfo, RecordSource, TableUsage, IDLE_WAIT};
use crate::detect::stream::tabular::LineRecords;
use crate::features::packet::FeatureExtractor;
use crate::features::tabular::Schema;
use crate::ingest::kafka::record::{decode_packet, record_id};
use crate::ingest::kafka::{client_config, kafka_err, Options};
use crate::ingest::packets::decode::decode;
use crate::{Error, Result};

mod book;
mod payload;
mod resume;

use book::{lock, Book, Event, GroupContext};
use payload::{Decoded, Decoder};
use resume::{Resume, Verdict, STUCK_AFTER};

/// Makes a fresh packet feature state (one per partition).
pub type LayoutFactory = Box<dyn Fn() -> Result<Box<dyn FeatureExtractor>> + Send>;

/// Runs before every offset commit; an error stops the source without
/// committing (see [`GroupCloser::close`]).
pub type BeforeCommit = Box<dyn FnMut() -> Result<()> + Send>;

/// Records handled per call to `next` before the engine gets a chance to
/// look at its stop flag (warming records are not handed out).
const MAX_SILENT: usize = 1024;

/// What the topic holds.
pub enum Payload {
    /// Raw packet records, featured by a fresh `layout` per partition.
    Packets(LayoutFactory),
    /// JSON objects or CSV lines in a bundle's schema.
    Rows(Schema),
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Payload::Packets(_) => f.write_str("Packets"),
            Payload::Rows(s) => f.debug_tuple("Rows").field(&s.feature_names()).finish(),
        }
    }
}

/// Where and how a [`GroupSource`] reads.
#[derive(Debug, Clone)]
pub struct GroupParams {
    /// Bootstrap brokers, `HOST:PORT[,HOST:PORT...]`.
    pub brokers: String,
    /// The topic read.
    pub topic: String,
    /// The consumer group shared by all instances.
    pub group: String,
    /// librdkafka settings applied last (security, timeouts).
    pub options: Vec<(String, String)>,
    /// Records of a freshly gained partition featured before scoring starts
    /// (packet records only).
    pub warmup: u64,
    /// Time between two periodic offset commits.
    pub commit_every: Duration,
    /// End the stream after this long without records, once assigned
    /// (tests, benchmarks, replays); `None`: run until stopped.
    pub idle_exit: Option<Duration>,
}

/// One partition's feature state.
struct PartState {
    features: Option<Box<dyn FeatureExtractor>>,
    warmup_left: u64,
}

/// How long the idle check waits for the broker's offsets.
const LAG_TIMEOUT: Duration = Duration::from_secs(5);

/// Records from a consumer group; see the [module docs](self).
pub struct GroupSource {
    consumer: Arc<BaseConsumer<GroupContext>>,
    book: Arc<Mutex<Book>>,
    params: GroupParams,
    decoder: Decoder,
    names: Vec<String>,
    owned: HashMap<i32, PartState>,
    /// Revoked partitions whose state waits for the next assignment.
    leaving: Vec<i32>,
    /// Partitions gained whose first record owed has not arrived yet, and
    /// when their current read started.
    resuming: HashMap<i32, (Resume, Instant)>,
    metrics: Arc<Metrics>,
    last_commit: Instant,
    /// Since when nothing arrived (a record or a rebalance); `None` before
    /// the first assignment.
    quiet_since: Option<Instant>,
}

impl std::fmt::Debug for GroupSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupSource")
            .field("params", &self.params)
            .field("partitions", &self.owned.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl GroupSource {
    /// Joins the group and subscribes to the topic; the assignment comes
    /// with the first polls (a few seconds). Counts into `metrics.group`.
    pub fn new(params: GroupParams, payload: Payload, metrics: Arc<Metrics>) -> Result<Self> {
        let decoder = Decoder::new(payload);
        let names = decoder.names()?;
        let book = Arc::new(Mutex::new(Book::default()));
        let context = GroupContext {
            book: Arc::clone(&book),
            metrics: Arc::clone(&metrics),
            topic: params.topic.clone(),
        };
        let mut config = client_config(&params.brokers, &[]);
        config
            .set("group.id", &params.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000");
        let options: &Options = &params.options;
        for (k, v) in options {
            config.set(k, v);
        }
        let consumer: BaseConsumer<GroupContext> = config
            .create_with_context(context)
            .map_err(|e| kafka_err(&format!("consumer of topic {}", params.topic), e))?;
        consumer
            .subscribe(&[&params.topic])
            .map_err(|e| kafka_err(&format!("subscribing to topic {}", params.topic), e))?;
        metrics.group.enabled.store(true, Relaxed);
        Ok(GroupSource {
            consumer: Arc::new(consumer),
            book,
            params,
            decoder,
            names,
            owned: HashMap::new(),
            leaving: Vec::new(),
            resuming: HashMap::new(),
            metrics,
            last_commit: Instant::now(),
            quiet_since: None,
        })
    }

    /// Runs `hook` before every commit (e.g. flushing the alert producer).
    pub fn before_commit(&self, hook: BeforeCommit) {
        lock(&self.book).hooks.push(hook);
    }

    /// The handle that commits the last offsets once the engine is done.
    pub fn closer(&self) -> GroupCloser {
        GroupCloser {
            consumer: Arc::clone(&self.consumer),
            book: Arc::clone(&self.book),
            topic: self.params.topic.clone(),
            metrics: Arc::clone(&self.metrics),
        }
    }

    /// Partitions owned now.
    pub fn partitions(&self) -> Vec<i32> {
        let mut p: Vec<i32> = self.owned.keys().copied().collect();
        p.sort_unstable();
        p
    }

    fn apply_events(&mut self) -> Result<()> {
        let events = std::mem::take(&mut lock(&self.book).events);
        for event in events {
            self.quiet_since = Some(Instant::now());
            match event {
                Event::Revoked(parts) => {
                    for p in &parts {
                        self.resuming.remove(p);
                    }
                    self.leaving.extend(parts);
                }
                Event::Assigned(parts) => {
                    for p in std::mem::take(&mut self.leaving) {
                        if !parts.contains(&p) && self.owned.remove(&p).is_some() {
                            self.metrics.group.states_dropped.fetch_add(1, Relaxed);
                        }
                    }
                    for &p in &parts {
                        if !self.owned.contains_key(&p) {
                            let fresh = self.decoder.fresh(self.params.warmup)?;
                            self.owned.insert(p, fresh);
                        }
                    }
                    self.resume_at(&parts);
                }
            }
        }
        let n = self.owned.len() as u64;
        self.metrics.group.partitions.store(n, Relaxed);
        Ok(())
    }

    fn commit_if_due(&mut self) {
        if self.last_commit.elapsed() >= self.params.commit_every {
            self.last_commit = Instant::now();
            self.closer().commit(CommitMode::Async);
        }
    }

    fn is_stopped(&self) -> bool {
        lock(&self.book).fatal.is_some()
    }

    /// Quiet for the idle limit, with every partition gained resumed (or
    /// settled, see [`Resume`]) and every owned partition read to its end:
    /// a slow broker or a late fetch after a rebalance is not a drained
    /// topic, and leaving then would leave records unread.
    fn idle_over(&mut self) -> bool {
        let (Some(limit), Some(since)) = (self.params.idle_exit, self.quiet_since) else {
            return false;
        };
        let settled = self.resuming.values().all(|(r, _)| r.settled());
        if since.elapsed() < limit || !settled {
            return false;
        }
        if self.caught_up() {
            return true;
        }
        self.quiet_since = Some(Instant::now());
        false
    }

    /// True when no owned partition has records past where this instance
    /// stands (its last read, else the group's commit, else the start).
    /// A partition the broker cannot answer for counts as read: the idle
    /// limit then ends the run as it would without this check.
    fn caught_up(&self) -> bool {
        let topic = &self.params.topic;
        let done = lock(&self.book).done.clone();
        let mut unread = TopicPartitionList::new();
        for p in self.owned.keys().filter(|p| !done.contains_key(p)) {
            unread.add_partition(topic, *p);
        }
        let committed = match unread.count() {
            0 => None,
            _ => self.consumer.committed_offsets(unread, LAG_TIMEOUT).ok(),
        };
        let committed_at = |p: i32| match committed.as_ref()?.find_partition(topic, p)?.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        };
        self.owned.keys().all(|&p| {
            let Ok((low, high)) = self.consumer.fetch_watermarks(topic, p, LAG_TIMEOUT) else {
                return true;
            };
            let at = done
                .get(&p)
                .copied()
                .or_else(|| committed_at(p))
                .unwrap_or(low);
            at >= high
        })
    }

    /// Whether a record of `partition` is this instance's to process: on a
    /// partition gained, not before the group's committed offset, and not
    /// past it while records owed are missing (see [`Resume`]).
    fn owed(&mut self, partition: i32, offset: i64) -> bool {
        let Some((resume, _)) = self.resuming.get_mut(&partition) else {
            return true;
        };
        let owed = resume.owed;
        match resume.on_record(offset) {
            Verdict::Take => {
                self.resuming.remove(&partition);
                true
            }
            Verdict::Drop => false,
            Verdict::Seek(from) => {
                eprintln!(
                    "floodwatch: kafka: topic {} partition {partition}: asked from offset \
                     {owed}, the broker answered from {offset}; reading again from {from}",
                    self.params.topic
                );
                // Without the seek, take what came: the gap stays unread.
                !self.seek(partition, from)
            }
        }
    }

    /// Reads `partition` again from `from`; false (and the partition no
    /// longer checked) when the consumer refused.
    fn seek(&mut self, partition: i32, from: i64) -> bool {
        let topic = &self.params.topic;
        match self
            .consumer
            .seek(topic, partition, Offset::Offset(from), LAG_TIMEOUT)
        {
            Ok(()) => {
                if let Some((_, since)) = self.resuming.get_mut(&partition) {
                    *since = Instant::now();
                }
                true
            }
            Err(e) => {
                let owed = self.resuming.remove(&partition).map(|(r, _)| r.owed);
                eprintln!(
                    "floodwatch: kafka: topic {topic} partition {partition}: seek to offset \
                     {from} failed ({e}); records from offset {owed:?} may stay unread"
                );
                false
            }
        }
    }

    /// Looks further back on the partitions gained that delivered nothing
    /// owed while the consumer was quiet: the broker may have skipped the
    /// batch holding the offset owed with no later batch to show it.
    fn unstick(&mut self) {
        if self.quiet_since.is_none_or(|t| t.elapsed() < STUCK_AFTER) {
            return;
        }
        let mut stuck = Vec::new();
        for (&p, (resume, since)) in &mut self.resuming {
            if since.elapsed() >= STUCK_AFTER {
                if let Some(from) = resume.look_back() {
                    stuck.push((p, from));
                }
            }
        }
        for (p, from) in stuck {
            self.seek(p, from);
        }
    }

    /// Starts checking where the partitions gained resume: their committed
    /// offsets (a partition without one starts as `auto.offset.reset` says).
    fn resume_at(&mut self, parts: &[i32]) {
        let topic = &self.params.topic;
        let mut list = TopicPartitionList::new();
        for &p in parts {
            list.add_partition(topic, p);
        }
        let committed = match self.consumer.committed_offsets(list, LAG_TIMEOUT) {
            Ok(c) => c,
            Err(e) => {
                eprintln!(
                    "floodwatch: kafka: topic {topic}: committed offsets unknown ({e}): \
                     where partitions {parts:?} resume is not checked"
                );
                return;
            }
        };
        for e in committed.elements_for_topic(topic) {
            let (p, Offset::Offset(owed)) = (e.partition(), e.offset()) else {
                continue;
            };
            match self.consumer.fetch_watermarks(topic, p, LAG_TIMEOUT) {
                Ok((low, _)) => {
                    self.resuming
                        .insert(p, (Resume::new(owed, low), Instant::now()));
                }
                Err(e) => eprintln!(
                    "floodwatch: kafka: topic {topic} partition {p}: first offset unknown \
                     ({e}): where it resumes is not checked"
                ),
            }
        }
    }

    /// Handles one polled record.
    fn record(
        &mut self,
        partition: i32,
        offset: i64,
        value: Option<&[u8]>,
        out: &mut [f64],
    ) -> Option<Next> {
        let arrived = Instant::now();
        self.quiet_since = Some(arrived);
        if !self.owed(partition, offset) {
            return None;
        }
        lock(&self.book).done.insert(partition, offset + 1);
        let id = record_id(partition, offset);
        if !self.owned.contains_key(&partition) {
            // A record before its assignment event: start the state now.
            match self.decoder.fresh(self.params.warmup) {
                Ok(s) => {
                    self.owned.insert(partition, s);
                }
                Err(e) => {
                    lock(&self.book).fatal.get_or_insert(e.to_string());
                    return Some(Next::End);
                }
            }
        }
        let state = self.owned.get_mut(&partition)?;
        match self.decoder.decode(id, value, state, arrived, out) {
            Decoded::Record(info) => Some(Next::Record(info)),
            Decoded::Warming => {
                self.metrics.group.warming.fetch_add(1, Relaxed);
                None
            }
            Decoded::Bad(msg) => Some(Next::Rejected(Error::Kafka(format!(
                "topic {} partition {partition} offset {offset}: {msg}",
                self.params.topic
            )))),
        }
    }
}

impl RecordSource for GroupSource {
    fn names(&self) -> &[String] {
        &self.names
    }

    fn next(&mut self, out: &mut [f64]) -> Next {
        for _ in 0..MAX_SILENT {
            self.commit_if_due();
            if self.is_stopped() {
                return Next::End;
            }
            let consumer = Arc::clone(&self.consumer);
            let polled = consumer.poll(IDLE_WAIT);
            if let Err(e) = self.apply_events() {
                lock(&self.book).fatal.get_or_insert(e.to_string());
                return Next::End;
            }
            match polled {
                None => {
                    self.unstick();
                    return if self.idle_over() {
                        Next::End
                    } else {
                        Next::Idle
                    };
                }
                Some(Err(e)) => {
                    // Broker or transport trouble, not a record: librdkafka
                    // retries by itself.
                    eprintln!("floodwatch: kafka: topic {}: {e}", self.params.topic);
                    return Next::Idle;
                }
                Some(Ok(m)) => {
                    let (p, o) = (m.partition(), m.offset());
                    if let Some(next) = self.record(p, o, m.payload(), out) {
                        return next;
                    }
                }
            }
        }
        Next::Idle
    }

    fn usage(&self) -> TableUsage {
        let mut u = TableUsage::default();
        for f in self.owned.values().filter_map(|s| s.features.as_ref()) {
            for t in f.table_stats() {
                u.entries += t.len as u64;
                u.evictions += t.evicted;
            }
        }
        u
    }
}

/// Commits a [`GroupSource`]'s last offsets once the engine has finished
/// (its alerts flushed), and reports what stopped the source.
pub struct GroupCloser {
    consumer: Arc<BaseConsumer<GroupContext>>,
    book: Arc<Mutex<Book>>,
    topic: String,
    metrics: Arc<Metrics>,
}

impl GroupCloser {
    /// Runs `hook` before every commit, as [`GroupSource::before_commit`].
    pub fn before_commit(&self, hook: BeforeCommit) {
        lock(&self.book).hooks.push(hook);
    }
}

impl std::fmt::Debug for GroupCloser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCloser")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl GroupCloser {
    fn commit(&self, mode: CommitMode) {
        let mut book = lock(&self.book);
        let offsets = match book.prepare(&self.topic, None) {
            Ok(Some(o)) => o,
            Ok(None) => return,
            Err(e) => {
                book.fatal.get_or_insert(e.to_string());
                return;
            }
        };
        drop(book);
        self.metrics.group.commits.fetch_add(1, Relaxed);
        if let Err(e) = self.consumer.commit(&offsets, mode) {
            // Not committed: the next commit sends these offsets again.
            let mut book = lock(&self.book);
            for e in offsets.elements() {
                book.committed.remove(&e.partition());
            }
            eprintln!("floodwatch: kafka: offset commit failed ({e})");
        }
    }

    /// Flushes through the hooks and commits every finished record
    /// (synchronously).
    ///
    /// # Errors
    /// What stopped the source: a hook that failed (the alerts of the
    /// uncommitted records were not acknowledged; they will be read again).
    pub fn close(&self) -> Result<()> {
        self.commit(CommitMode::Sync);
        match lock(&self.book).fatal.clone() {
            Some(e) => Err(Error::Kafka(format!("topic {}: stopped: {e}", self.topic))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::resume::LOOK_BACK;
    use super::*;
    use crate::features::victim::Victim;
    use crate::ingest::kafka::record::encode_packet;
    use crate::ingest::packets::capture::{LinkType, RawFrame};

    fn packets() -> Decoder {
        Decoder::new(Payload::Packets(Box::new(|| {
            Ok(Box::new(Victim::new(16)?))
        })))
    }

    fn packet_value(ts_ns: i64) -> Vec<u8> {
        let mut data = vec![0u8; 12];
        data.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0]);
        data.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 9]);
        let frame = RawFrame {
            index: 0,
            ts_ns,
            wire_len: data.len() as u32,
            link_type: LinkType::ETHERNET,
            interface: 0,
            data: &data,
        };
        let mut v = Vec::new();
        encode_packet(&frame, &mut v);
        v
    }

    #[test]
    fn packet_records_warm_up_then_score_and_bad_ones_say_why() {
        let mut d = packets();
        let names = d.names().unwrap();
        let mut out = vec![0.0; names.len()];
        let mut state = d.fresh(2).unwrap();
        let now = Instant::now();
        for i in 0..2 {
            let v = packet_value(1_000_000_000 * (i + 1));
            assert!(matches!(
                d.decode(i as u64, Some(&v), &mut state, now, &mut out),
                Decoded::Warming
            ));
        }
        let v = packet_value(3_000_000_000);
        let Decoded::Record(info) = d.decode(record_id(1, 5), Some(&v), &mut state, now, &mut out)
        else {
            panic!("expected a record");
        };
        assert_eq!(info.index, 1_000_000_000_005);
        assert_eq!(info.timestamp, 3.0);
        assert_eq!(info.flow.dest_ip.to_string(), "10.0.0.9");
        assert!(
            matches!(d.decode(0, None, &mut state, now, &mut out), Decoded::Bad(m) if m == "empty record")
        );
        assert!(
            matches!(d.decode(0, Some(b"junk"), &mut state, now, &mut out), Decoded::Bad(m) if m.contains("shorter"))
        );
    }

    fn rows() -> Decoder {
        use crate::features::tabular::{Column, ColumnKind};
        let schema = Schema {
            columns: vec![
                Column {
                    name: "bytes".into(),
                    kind: ColumnKind::Numeric,
                },
                Column {
                    name: "proto".into(),
                    kind: ColumnKind::Categorical {
                        values: vec!["tcp".into(), "udp".into()],
                    },
                },
            ],
        };
        Decoder::new(Payload::Rows(schema))
    }

    #[test]
    fn rows_decode_as_json_or_csv_and_malformed_ones_are_rejected() {
        let mut d = rows();
        let names = d.names().unwrap();
        let mut out = vec![0.0; names.len()];
        let mut state = d.fresh(5).unwrap();
        let now = Instant::now();
        let json = br#"{"dst_ip":"10.0.0.7","dport":80,"bytes":"15","proto":"tcp"}"#;
        let Decoded::Record(info) = d.decode(9, Some(json), &mut state, now, &mut out) else {
            panic!("json row");
        };
        assert_eq!(
            (info.index, info.flow.dest_ip.to_string()),
            (9, "10.0.0.7".to_owned())
        );
        assert_eq!(info.flow.dest_port, 80);
        assert_eq!(out, [15.0, 1.0, 0.0, 0.0]);
        let Decoded::Record(info) = d.decode(10, Some(b"12,udp"), &mut state, now, &mut out) else {
            panic!("csv row");
        };
        assert_eq!(info.index, 10);
        assert_eq!(out, [12.0, 0.0, 1.0, 0.0]);
        for bad in [
            &b"{not json"[..],
            b"1,2,3",
            b"\xff\xfe",
            b"a\nb",
            b"   ",
            b"x,tcp",
        ] {
            assert!(
                matches!(
                    d.decode(11, Some(bad), &mut state, now, &mut out),
                    Decoded::Bad(_)
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_gained_partition_resumes_at_the_offset_owed_even_when_the_broker_skips_ahead() {
        // The broker answers from where it was asked: nothing to do.
        let mut r = Resume::new(10_000, 0);
        assert_eq!(r.on_record(10_000), Verdict::Take);
        // It answered from the next batch: read again from earlier, drop
        // what the previous owner did, take the first record owed.
        let mut r = Resume::new(10_000, 0);
        assert_eq!(r.on_record(12_000), Verdict::Seek(10_000 - LOOK_BACK));
        assert_eq!(r.on_record(7_000), Verdict::Drop);
        assert!(r.settled(), "the batch holding the offset owed comes next");
        assert_eq!(r.on_record(9_999), Verdict::Drop);
        assert_eq!(r.on_record(10_000), Verdict::Take);
        // Still past the batch holding the offset owed: look back twice as far.
        let mut r = Resume::new(10_000, 0);
        assert_eq!(r.on_record(12_000), Verdict::Seek(10_000 - LOOK_BACK));
        assert_eq!(r.on_record(11_000), Verdict::Seek(10_000 - 2 * LOOK_BACK));
        assert_eq!(r.on_record(3_000), Verdict::Drop);
        assert_eq!(r.on_record(10_000), Verdict::Take);
        // Records before the offset owed came, then a later one: the offsets
        // between are absent from the log (compaction, transaction markers).
        let mut r = Resume::new(10_000, 0);
        assert_eq!(r.on_record(10_500), Verdict::Seek(10_000 - LOOK_BACK));
        assert_eq!(r.on_record(9_990), Verdict::Drop);
        assert_eq!(r.on_record(10_500), Verdict::Take);
    }

    #[test]
    fn a_gained_partition_that_delivers_nothing_looks_back_until_settled() {
        // The offset owed lies in the last batch and the broker answered
        // with nothing: look back, further each time, down to the first offset.
        let mut r = Resume::new(10_000, 1_000);
        assert!(!r.settled());
        assert_eq!(r.look_back(), Some(10_000 - LOOK_BACK));
        assert_eq!(r.look_back(), Some(10_000 - 2 * LOOK_BACK));
        assert_eq!(r.look_back(), Some(1_000));
        assert!(r.settled());
        assert_eq!(r.look_back(), None);
        assert_eq!(
            r.on_record(10_700),
            Verdict::Take,
            "read from the start: a gap"
        );
        // Something before the offset owed came: nothing more to look for.
        let mut r = Resume::new(100, 0);
        assert_eq!(r.look_back(), Some(0));
        assert_eq!(r.on_record(60), Verdict::Drop);
        assert_eq!(r.look_back(), None);
        // Committed offset already deleted by retention: start at the first.
        let mut r = Resume::new(10, 50);
        assert!(r.settled());
        assert_eq!(r.on_record(50), Verdict::Take);
        // Nothing before the offset owed: nothing to check.
        assert!(Resume::new(0, 0).settled());
    }

    #[test]
    fn offsets_commit_only_after_the_hooks_and_only_when_new() {
        let mut book = Book::default();
        let flushed = Arc::new(AtomicU64::new(0));
        let f = Arc::clone(&flushed);
        book.hooks.push(Box::new(move || {
            f.fetch_add(1, Relaxed);
            Ok(())
        }));
        assert!(book.prepare("t", None).unwrap().is_none());
        book.done.insert(0, 10);
        book.done.insert(1, 4);
        let list = book.prepare("t", Some(&[1])).unwrap().unwrap();
        assert_eq!(list.count(), 1);
        assert_eq!(flushed.load(Relaxed), 1);
        let list = book.prepare("t", None).unwrap().unwrap();
        assert_eq!(list.elements()[0].offset(), Offset::Offset(10));
        assert!(book.prepare("t", None).unwrap().is_none());
        book.hooks.push(Box::new(|| {
            Err(Error::Kafka("alerts not acknowledged".into()))
        }));
        book.done.insert(0, 11);
        assert!(book.prepare("t", None).is_err());
        assert_eq!(
            book.committed.get(&0),
            Some(&10),
            "nothing committed past a failed hook"
        );
    }
}
