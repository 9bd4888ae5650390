//! The group's offsets and rebalances: what is done and committed per
//! partition, the hooks run before each commit, and the consumer context
//! that commits on revocation.

use super::*;

/// A rebalance, as the callbacks saw it.
#[derive(Debug)]
pub(super) enum Event {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
}

/// Offsets and hooks shared by the source and its rebalance callbacks.
#[derive(Default)]
pub(super) struct Book {
    /// Next offset to commit, per partition owned.
    pub(super) done: HashMap<i32, i64>,
    /// Last offset committed, per partition owned.
    pub(super) committed: HashMap<i32, i64>,
    pub(super) events: Vec<Event>,
    pub(super) hooks: Vec<BeforeCommit>,
    /// The error that stopped the source.
    pub(super) fatal: Option<String>,
}

impl Book {
    /// The offsets to commit for `only` (all when `None`), once the hooks
    /// succeeded; `None` when nothing is new.
    pub(super) fn prepare(
        &mut self,
        topic: &str,
        only: Option<&[i32]>,
    ) -> Result<Option<TopicPartitionList>> {
        let mut list = TopicPartitionList::new();
        let mut fresh = Vec::new();
        for (&p, &o) in &self.done {
            let wanted = only.is_none_or(|ps| ps.contains(&p));
            if wanted && self.committed.get(&p) != Some(&o) {
                fresh.push((p, o));
            }
        }
        if fresh.is_empty() {
            return Ok(None);
        }
        for hook in &mut self.hooks {
            hook()?;
        }
        for (p, o) in fresh {
            list.add_partition_offset(topic, p, Offset::Offset(o))
                .map_err(|e| kafka_err(&format!("topic {topic} partition {p}"), e))?;
            self.committed.insert(p, o);
        }
        Ok(Some(list))
    }
}

pub(super) fn lock(book: &Mutex<Book>) -> MutexGuard<'_, Book> {
    // A panic elsewhere cannot leave the offsets half written: use them.
    book.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The consumer's context: commits on revocation, records the rebalances.
pub(super) struct GroupContext {
    pub(super) book: Arc<Mutex<Book>>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) topic: String,
}

impl GroupContext {
    pub(super) fn partitions(&self, list: &TopicPartitionList) -> Vec<i32> {
        list.elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect()
    }
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let parts = self.partitions(list);
        let mut book = lock(&self.book);
        // Whoever gets these partitions next starts after what was done here.
        match book.prepare(&self.topic, Some(&parts)) {
            Ok(Some(offsets)) => {
                self.metrics.group.commits.fetch_add(1, Relaxed);
                if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
                    eprintln!(
                        "floodwatch: kafka: commit on revocation failed ({e}): records will be read again"
                    );
                }
            }
            Ok(None) => {}
            Err(e) => {
                book.fatal.get_or_insert(e.to_string());
            }
        }
        for p in &parts {
            book.done.remove(p);
            book.committed.remove(p);
        }
        self.metrics
            .group
            .revoked
            .fetch_add(parts.len() as u64, Relaxed);
        book.events.push(Event::Revoked(parts));
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let parts = self.partitions(list);
                self.metrics
                    .group
                    .assigned
                    .fetch_add(parts.len() as u64, Relaxed);
                lock(&self.book).events.push(Event::Assigned(parts));
            }
            Rebalance::Error(e) => eprintln!("floodwatch: kafka: rebalance failed: {e}"),
            Rebalance::Revoke(_) => {}
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _: &TopicPartitionList) {
        if let Err(e) = result {
            self.metrics.group.commit_failures.fetch_add(1, Relaxed);
            eprintln!("floodwatch: kafka: offset commit failed ({e}): records will be read again");
        }
    }
}
