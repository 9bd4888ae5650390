//! Writing to Kafka: a keyed [`Publisher`] that counts what the broker
//! acknowledged, topic creation, and publishing a capture or a table
//! (`floodwatch produce`).

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::record::{encode_packet, packet_key, KeyBy};
use super::{client_config, kafka_err, Options};
use crate::ingest::columns::{DST_IP, SRC_IP};
use crate::ingest::packets::capture::CaptureReader;
use crate::ingest::packets::decode::decode;
use crate::{Error, Result};

/// How long a flush waits for the broker's acknowledgements.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a full send queue is waited on before giving up.
const QUEUE_FULL_WAIT: Duration = Duration::from_secs(60);

/// Counts delivery reports; keeps the first failure's message.
#[derive(Debug, Default)]
pub struct Deliveries {
    acked: AtomicU64,
    failed: AtomicU64,
    first_failure: Mutex<Option<String>>,
}

impl Deliveries {
    /// Records acknowledged by the broker.
    pub fn acked(&self) -> u64 {
        self.acked.load(Relaxed)
    }

    /// Records the broker refused or that timed out.
    pub fn failed(&self) -> u64 {
        self.failed.load(Relaxed)
    }
}

/// The producer's context: the delivery reports go to [`Deliveries`].
#[derive(Debug, Clone)]
pub struct Counting(Arc<Deliveries>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.0.acked.fetch_add(1, Relaxed);
            }
            Err((e, _)) => {
                self.0.failed.fetch_add(1, Relaxed);
                if let Ok(mut first) = self.0.first_failure.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

/// A keyed producer to one topic. Cheap to clone: clones share the
/// producer and its counts.
#[derive(Clone)]
pub struct Publisher {
    producer: ThreadedProducer<Counting>,
    topic: String,
    deliveries: Arc<Deliveries>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.topic)
            .field("deliveries", &self.deliveries)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A producer to `topic` on `brokers`; every record is acknowledged by
    /// all in-sync replicas (`acks=all`) before it counts as delivered.
    pub fn new(brokers: &str, topic: &str, options: &Options) -> Result<Self> {
        let deliveries = Arc::new(Deliveries::default());
        let mut config = client_config(brokers, &[]);
        config
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000")
            .set("batch.num.messages", "10000");
        for (k, v) in options {
            config.set(k, v);
        }
        let producer = config
            .create_with_context(Counting(Arc::clone(&deliveries)))
            .map_err(|e| kafka_err(&format!("producer for topic {topic}"), e))?;
        Ok(Publisher {
            producer,
            topic: topic.to_owned(),
            deliveries,
        })
    }

    /// The topic written to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The delivery counts.
    pub fn deliveries(&self) -> &Deliveries {
        &self.deliveries
    }

    /// Queues one record; waits while the local queue is full.
    pub fn send(&self, key: Option<&[u8]>, value: &[u8]) -> Result<()> {
        let mut record = BaseRecord::<[u8], [u8]>::to(&self.topic).payload(value);
        if let Some(k) = key {
            record = record.key(k);
        }
        let started = std::time::Instant::now();
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if started.elapsed() < QUEUE_FULL_WAIT =>
                {
                    record = back;
                    self.producer.poll(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(kafka_err(&format!("topic {}", self.topic), e)),
            }
        }
    }

    /// Waits until the broker acknowledged every queued record.
    ///
    /// # Errors
    /// A record was refused or timed out (naming the first failure), or the
    /// wait exceeded [`FLUSH_TIMEOUT`].
    pub fn flush(&self) -> Result<()> {
        self.producer
            .flush(FLUSH_TIMEOUT)
            .map_err(|e| kafka_err(&format!("flushing topic {}", self.topic), e))?;
        let failed = self.deliveries.failed();
        if failed > 0 {
            let first = self
                .deliveries
                .first_failure
                .lock()
                .ok()
                .and_then(|f| f.clone())
                .unwrap_or_default();
            return Err(Error::Kafka(format!(
                "topic {}: {failed} records not acknowledged (first: {first})",
                self.topic
            )));
        }
        Ok(())
    }
}

/// Creates `topic` with `partitions` partitions (replication 1 on a single
/// broker, else the broker's default). Returns false when it already
/// existed.
pub fn create_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
    options: &Options,
) -> Result<bool> {
    let admin: AdminClient<DefaultClientContext> = client_config(brokers, options)
        .create()
        .map_err(|e| kafka_err("admin client", e))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
    let opts = AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(30)))
        .operation_timeout(Some(Duration::from_secs(30)));
    let results = futures_executor::block_on(admin.create_topics([&new], &opts))
        .map_err(|e| kafka_err(&format!("creating topic {topic}"), e))?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(true),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
        Some(Err((_, code))) => Err(kafka_err(&format!("creating topic {topic}"), code)),
        None => Err(Error::Kafka(format!("creating topic {topic}: no answer"))),
    }
}

/// What a publication did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Published {
    /// Records sent and acknowledged.
    pub records: u64,
    /// Of which without a key (no address of the kind asked).
    pub unkeyed: u64,
    /// Input records that could not be read, counted and skipped.
    pub rejected: u64,
}

/// Publishes every frame of a capture as a raw packet record, keyed by
/// address; unreadable frames are counted as rejected (their error is
/// passed to `warn`). Waits for the acknowledgements.
pub fn publish_capture<R: Read>(
    mut reader: CaptureReader<R>,
    key_by: KeyBy,
    publisher: &Publisher,
    warn: &mut dyn FnMut(String),
) -> Result<Published> {
    let mut out = Published::default();
    let mut buf = Vec::new();
    let mut value = Vec::with_capacity(2048);
    let mut key = String::with_capacity(40);
    loop {
        let frame = match reader.next_packet(&mut buf) {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                out.rejected += 1;
                warn(e.to_string());
                continue;
            }
        };
        value.clear();
        encode_packet(&frame, &mut value);
        key.clear();
        let k = packet_key(&decode(&frame), key_by);
        if let Some(ip) = k {
            use std::fmt::Write as _;
            let _ = write!(key, "{ip}");
        }
        publisher.send(k.map(|_| key.as_bytes()), &value)?;
        out.records += 1;
        out.unkeyed += u64::from(k.is_none());
    }
    publisher.flush()?;
    Ok(out)
}

/// Publishes a CSV table (with a header) as one JSON object a row (every
/// field a string, keyed by column name), keyed by the column named like
/// `dst_ip` (or `src_ip`); rows that do not parse are counted as rejected.
/// Waits for the acknowledgements.
pub fn publish_table(
    path: &Path,
    key_by: KeyBy,
    publisher: &Publisher,
    warn: &mut dyn FnMut(String),
) -> Result<Published> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| Error::Data(format!("{}: {e}", path.display())))?;
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| Error::Data(format!("{}: header: {e}", path.display())))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let names: &[&str] = match key_by {
        KeyBy::Dst => &DST_IP,
        KeyBy::Src => &SRC_IP,
    };
    let key_col = header.iter().position(|h| {
        let n = h.to_ascii_lowercase().replace([' ', '-'], "_");
        names.contains(&n.as_str())
    });
    let mut out = Published::default();
    let mut rec = csv::StringRecord::new();
    let mut line = 1u64;
    loop {
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                line += 1;
                out.rejected += 1;
                warn(format!("{}:{line}: {e}", path.display()));
                continue;
            }
        }
        line = rec.position().map_or(line + 1, |p| p.line());
        if rec.len() != header.len() {
            out.rejected += 1;
            warn(format!(
                "{}:{line}: {} fields, the header has {}",
                path.display(),
                rec.len(),
                header.len()
            ));
            continue;
        }
        let obj: serde_json::Map<String, serde_json::Value> = header
            .iter()
            .zip(rec.iter())
            .map(|(h, v)| (h.clone(), serde_json::Value::String(v.trim().to_owned())))
            .collect();
        let value = serde_json::to_vec(&obj).map_err(|e| Error::Data(e.to_string()))?;
        let key = key_col
            .and_then(|c| rec.get(c))
            .map(str::trim)
            .filter(|k| !k.is_empty());
        publisher.send(key.map(str::as_bytes), &value)?;
        out.records += 1;
        out.unkeyed += u64::from(key.is_none());
    }
    publisher.flush()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_counts_keep_the_first_failure() {
        let d = Deliveries::default();
        d.acked.fetch_add(2, Relaxed);
        d.failed.fetch_add(1, Relaxed);
        *d.first_failure.lock().unwrap() = Some("timed out".into());
        assert_eq!((d.acked(), d.failed()), (2, 1));
    }

    #[test]
    fn a_publisher_needs_a_valid_configuration() {
        // librdkafka checks settings when the client is created, before any
        // connection: no broker is needed here.
        let bad = vec![("linger.ms".to_owned(), "not a number".to_owned())];
        let e = Publisher::new("127.0.0.1:1", "t", &bad).unwrap_err();
        assert!(e.to_string().contains("producer for topic t"), "{e}");
        let p = Publisher::new("127.0.0.1:1", "t", &[]).unwrap();
        assert_eq!(p.topic(), "t");
        p.send(Some(b"10.0.0.1"), b"x").unwrap();
        assert_eq!(p.deliveries().acked(), 0);
    }

    #[test]
    fn malformed_rows_are_counted_before_any_broker_is_needed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "dst_ip,a\n").unwrap();
        let p = Publisher::new(
            "127.0.0.1:1",
            "t",
            &[("message.timeout.ms".into(), "100".into())],
        )
        .unwrap();
        let mut warned = Vec::new();
        let got = publish_table(&path, KeyBy::Dst, &p, &mut |w| warned.push(w)).unwrap();
        assert_eq!(got, Published::default());
        std::fs::write(&path, "dst_ip,a\n10.0.0.1\n").unwrap();
        let got = publish_table(&path, KeyBy::Dst, &p, &mut |w| warned.push(w)).unwrap();
        assert_eq!(got.rejected, 1);
        assert!(warned[0].contains(":2: 1 fields"), "{warned:?}");
    }
}
