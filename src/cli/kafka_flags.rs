//! The Kafka flags of `watch`: a topic read by a consumer group as the
//! record source, with per-partition state and at-least-once commits.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args as ClapArgs;

use floodwatch::detect::kafka_source::GroupParams;
use floodwatch::detect::metrics::GroupMetrics;
use floodwatch::ingest::kafka::parse_option;

/// Consumer-group input.
#[derive(Debug, Clone, ClapArgs)]
pub struct KafkaFlags {
    /// Read records from this Kafka topic (raw packet records from
    /// `produce --pcap`, or JSON/CSV rows in the --model bundle's schema),
    /// as one member of --kafka-group.
    #[arg(long, value_name = "TOPIC", requires = "kafka_brokers")]
    pub kafka_topic: Option<String>,
    /// Bootstrap brokers, HOST:PORT[,HOST:PORT...] (also for
    /// `--alerts kafka://TOPIC`).
    #[arg(long, value_name = "HOST:PORT")]
    pub kafka_brokers: Option<String>,
    /// Consumer group: instances in one group share the topic's partitions.
    #[arg(long, value_name = "NAME", default_value = "floodwatch")]
    pub kafka_group: String,
    /// Records of a newly assigned partition that only warm its fresh
    /// feature state up (packet records; counted, not scored).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub kafka_warmup: u64,
    /// Milliseconds between offset commits (each after the alerts and
    /// scores before it are flushed and acknowledged).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub kafka_commit_ms: u64,
    /// End once no record came for this many seconds after the assignment
    /// and every partition held is read to its end (replays, tests); by
    /// default run until stopped.
    #[arg(long, value_name = "SECONDS")]
    pub kafka_idle_exit: Option<f64>,
    /// A librdkafka setting, KEY=VALUE (repeatable): security, timeouts.
    #[arg(long = "kafka-option", value_name = "KEY=VALUE", value_parser = parse_option)]
    pub kafka_options: Vec<(String, String)>,
}

impl KafkaFlags {
    /// The group source's settings, when a topic was given.
    pub fn params(&self) -> anyhow::Result<Option<GroupParams>> {
        let (Some(topic), Some(brokers)) = (&self.kafka_topic, &self.kafka_brokers) else {
            return Ok(None);
        };
        let idle_exit = match self.kafka_idle_exit {
            Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
            Some(s) => {
                anyhow::bail!("--kafka-idle-exit {s}: should be a positive number of seconds")
            }
            None => None,
        };
        Ok(Some(GroupParams {
            brokers: brokers.clone(),
            topic: topic.clone(),
            group: self.kafka_group.clone(),
            options: self.kafka_options.clone(),
            warmup: self.kafka_warmup,
            commit_every: Duration::from_millis(self.kafka_commit_ms.max(1)),
            idle_exit,
        }))
    }
}

/// A writer shared with a commit hook, which flushes it before offsets are
/// committed (so a committed record's score line is on disk).
#[derive(Clone)]
pub struct SharedWriter(pub Arc<Mutex<Box<dyn Write + Send>>>);

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lock()?.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.lock()?.flush()
    }
}

impl SharedWriter {
    fn lock(&self) -> std::io::Result<std::sync::MutexGuard<'_, Box<dyn Write + Send>>> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("scores writer poisoned"))
    }
}

/// One line on the group's partitions, states and commits.
pub fn render(g: &GroupMetrics) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    format!(
        "kafka: {} partitions now ({} assigned, {} revoked, {} states dropped), \
         {} records warming, {} commits ({} failed)\n",
        g.partitions.load(Relaxed),
        g.assigned.load(Relaxed),
        g.revoked.load(Relaxed),
        g.states_dropped.load(Relaxed),
        g.warming.load(Relaxed),
        g.commits.load(Relaxed),
        g.commit_failures.load(Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        flags: KafkaFlags,
    }

    #[test]
    fn params_come_with_a_topic_and_check_the_idle_exit() {
        use clap::Parser;
        let none = Cli::try_parse_from(["w"]).unwrap();
        assert!(none.flags.params().unwrap().is_none());
        let cli = Cli::try_parse_from([
            "w",
            "--kafka-topic",
            "in",
            "--kafka-brokers",
            "h:1",
            "--kafka-idle-exit",
            "2.5",
        ])
        .unwrap();
        let p = cli.flags.params().unwrap().unwrap();
        assert_eq!(
            (p.topic.as_str(), p.group.as_str(), p.warmup),
            ("in", "floodwatch", 1000)
        );
        assert_eq!(p.idle_exit, Some(Duration::from_millis(2500)));
        assert!(
            Cli::try_parse_from(["w", "--kafka-topic", "in"]).is_err(),
            "brokers required"
        );
        let bad = Cli::try_parse_from([
            "w",
            "--kafka-topic",
            "in",
            "--kafka-brokers",
            "h:1",
            "--kafka-idle-exit=-1",
        ])
        .unwrap();
        assert!(bad.flags.params().is_err());
    }

    #[test]
    fn shared_writer_writes_through_and_renders_counts() {
        let buf: Box<dyn Write + Send> = Box::new(Vec::<u8>::new());
        let mut w = SharedWriter(Arc::new(Mutex::new(buf)));
        w.write_all(b"1,2\n").unwrap();
        w.flush().unwrap();
        let g = GroupMetrics::default();
        g.partitions.store(2, std::sync::atomic::Ordering::Relaxed);
        assert!(render(&g).starts_with("kafka: 2 partitions now"));
    }
}
