//! Alerts to a Kafka topic (`--alerts kafka://TOPIC`): one JSON object a
//! record (the schema of [`Alert`]), keyed by the target's address so that
//! one target's alerts stay in order in one partition.
//!
//! Sending only queues the record; [`KafkaAlerts::flusher`] gives the hook a
//! consumer group runs before it commits offsets, which waits until the
//! broker acknowledged every alert queued so far (at-least-once delivery).

use std::io;

use super::alert::Alert;
use super::sink::AlertSink;
use crate::ingest::kafka::{Options, Publisher};
use crate::Result;

/// Partitions of the alert topic when floodwatch creates it.
pub const ALERT_PARTITIONS: i32 = 4;

/// Writes alerts to a topic; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct KafkaAlerts {
    publisher: Publisher,
    value: Vec<u8>,
}

impl KafkaAlerts {
    /// Alerts to `topic` on `brokers`.
    pub fn new(brokers: &str, topic: &str, options: &Options) -> Result<Self> {
        Ok(KafkaAlerts {
            publisher: Publisher::new(brokers, topic, options)?,
            value: Vec::with_capacity(1024),
        })
    }

    /// Waits for the broker to acknowledge every alert queued so far; fails
    /// when one was refused.
    pub fn flusher(&self) -> impl FnMut() -> Result<()> + Send + 'static {
        let publisher = self.publisher.clone();
        move || publisher.flush()
    }

    /// Alerts acknowledged by the broker.
    pub fn acked(&self) -> u64 {
        self.publisher.deliveries().acked()
    }
}

impl AlertSink for KafkaAlerts {
    fn alert(&mut self, alert: &Alert) -> io::Result<()> {
        self.value.clear();
        serde_json::to_writer(&mut self.value, alert)?;
        let key = alert.dest_ip.to_string();
        self.publisher
            .send(Some(key.as_bytes()), &self.value)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    fn finish(&mut self) -> io::Result<()> {
        self.publisher
            .flush()
            .map_err(|e| io::Error::other(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_brokers_fail_at_flush_not_at_send() {
        let opts = vec![("message.timeout.ms".to_owned(), "200".to_owned())];
        let mut sink = KafkaAlerts::new("127.0.0.1:1", "alerts", &opts).unwrap();
        let mut flush = sink.flusher();
        assert!(flush().is_ok(), "nothing queued yet");
        sink.publisher.send(Some(b"10.0.0.9"), b"{}").unwrap();
        let e = sink.finish().unwrap_err();
        assert!(e.to_string().contains("alerts"), "{e}");
        assert!(flush().is_err());
        assert_eq!(sink.acked(), 0);
    }

    #[test]
    fn bad_settings_are_refused() {
        let opts = vec![("acks".to_owned(), "sometimes".to_owned())];
        assert!(KafkaAlerts::new("127.0.0.1:1", "alerts", &opts).is_err());
    }
}
