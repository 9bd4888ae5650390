//! The one queue between a reading thread (interface, standard input) and
//! the scorer: bounded. When input outruns scoring, a source that can wait
//! waits ([`Overflow::Block`]); a live one drops records and counts them
//! ([`Overflow::Drop`]) rather than buffering without limit.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

/// What a full queue does with a new record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Drop it and count the drop (live sources: never stall capture).
    Drop,
    /// Wait for room (sources that can pause, such as files).
    Block,
}

/// How long a blocked producer sleeps before offering again.
const FULL_WAIT: std::time::Duration = std::time::Duration::from_millis(1);

/// Smallest queue whose blocked producer sleeps [`FULL_WAIT`] rather than
/// waiting for a slot: smaller ones would drain within the sleep.
const BATCHED_WAIT_MIN: usize = 1024;

/// The sending side of [`bounded`].
#[derive(Debug)]
pub struct Feeder<T> {
    tx: SyncSender<T>,
    capacity: usize,
    overflow: Overflow,
    dropped: Arc<AtomicU64>,
}

impl<T> Feeder<T> {
    /// Offers one record; `false` once the scorer has gone away.
    pub fn push(&self, item: T) -> bool {
        self.push_counted(item, 1)
    }

    /// Offers an item that stands for `records` records (a chunk of lines),
    /// all counted as dropped if the item is.
    pub fn push_counted(&self, item: T, records: u64) -> bool {
        match self.overflow {
            Overflow::Block if self.capacity < BATCHED_WAIT_MIN => self.tx.send(item).is_ok(),
            // Waiting for one free slot would wake the producer once per
            // record; a short sleep lets the consumer free many first.
            Overflow::Block => {
                let mut item = item;
                loop {
                    match self.tx.try_send(item) {
                        Ok(()) => return true,
                        Err(TrySendError::Full(back)) => {
                            item = back;
                            std::thread::sleep(FULL_WAIT);
                        }
                        Err(TrySendError::Disconnected(_)) => return false,
                    }
                }
            }
            Overflow::Drop => match self.tx.try_send(item) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    self.dropped.fetch_add(records, Relaxed);
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            },
        }
    }
}

/// A queue of at most `capacity` records whose drops land in `dropped`.
pub fn bounded<T>(
    capacity: usize,
    overflow: Overflow,
    dropped: Arc<AtomicU64>,
) -> (Feeder<T>, Receiver<T>) {
    let capacity = capacity.max(1);
    let (tx, rx) = mpsc::sync_channel(capacity);
    (
        Feeder {
            tx,
            capacity,
            overflow,
            dropped,
        },
        rx,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_and_counts_when_full() {
        let dropped = Arc::new(AtomicU64::new(0));
        let (tx, rx) = bounded(4, Overflow::Drop, dropped.clone());
        for i in 0..10 {
            assert!(tx.push(i));
        }
        assert_eq!(dropped.load(Relaxed), 6);
        let got: Vec<i32> = rx.try_iter().collect();
        assert_eq!(got, vec![0, 1, 2, 3]);
        drop(rx);
        assert!(!tx.push(11));
    }

    #[test]
    fn blocking_loses_nothing() {
        for capacity in [2, BATCHED_WAIT_MIN] {
            let dropped = Arc::new(AtomicU64::new(0));
            let (tx, rx) = bounded(capacity, Overflow::Block, dropped.clone());
            let producer = std::thread::spawn(move || (0..100_000).all(|i| tx.push(i)));
            let got: Vec<i64> = rx.iter().collect();
            assert!(producer.join().unwrap());
            assert!(got.iter().copied().eq(0..100_000));
            assert_eq!(dropped.load(Relaxed), 0);
        }
    }

    #[test]
    fn a_blocked_producer_is_released_when_the_consumer_leaves() {
        for capacity in [2, BATCHED_WAIT_MIN] {
            let (tx, rx) = bounded(capacity, Overflow::Block, Arc::default());
            let (done_tx, done) = mpsc::channel();
            std::thread::spawn(move || done_tx.send((0..).all(|i| tx.push(i))));
            // Let it fill the queue and block, then leave.
            while rx.recv().unwrap() < 3 * capacity as i64 {}
            drop(rx);
            let finished = done.recv_timeout(std::time::Duration::from_secs(10));
            assert_eq!(finished, Ok(false), "the producer outlived its consumer");
        }
    }
}
