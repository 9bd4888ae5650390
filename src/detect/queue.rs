//! The one queue between a live source (interface, standard input) and the
//! scorer: bounded, and lossy by choice. When input outruns scoring, records
//! are dropped and counted rather than buffered without limit.

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

/// The sending side of [`bounded`].
#[derive(Debug)]
pub struct Feeder<T> {
    tx: SyncSender<T>,
    overflow: Overflow,
    dropped: Arc<AtomicU64>,
}

impl<T> Feeder<T> {
    /// Offers one record; `false` once the scorer has gone away.
    pub fn push(&self, item: T) -> bool {
        match self.overflow {
            Overflow::Block => self.tx.send(item).is_ok(),
            Overflow::Drop => match self.tx.try_send(item) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    self.dropped.fetch_add(1, Relaxed);
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
    let (tx, rx) = mpsc::sync_channel(capacity.max(1));
    (
        Feeder {
            tx,
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
        let dropped = Arc::new(AtomicU64::new(0));
        let (tx, rx) = bounded(2, Overflow::Block, dropped.clone());
        let producer = std::thread::spawn(move || (0..1000).all(|i| tx.push(i)));
        let sum: i64 = rx.iter().map(|v: i32| v as i64).sum();
        assert!(producer.join().unwrap());
        assert_eq!(sum, 499_500);
        assert_eq!(dropped.load(Relaxed), 0);
    }
}
