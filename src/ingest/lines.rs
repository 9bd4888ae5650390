//! Lines of a stream (standard input) read by one thread into a bounded
//! queue for `watch`: at most `queue` lines of at most
//! [`MAX_LINE_BYTES`] wait, whatever the input's length.

use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Instant;

use crate::ingest::csv::MAX_LINE_BYTES;
use crate::ingest::queue::{bounded, Overflow};

/// The reading end of [`spawn`].
#[derive(Debug)]
pub struct LineFeed {
    /// Each line, end of line removed, with its arrival time.
    pub lines: Receiver<(String, Instant)>,
    /// Lines dropped: a full queue under [`Overflow::Drop`], or too long.
    pub dropped: Arc<AtomicU64>,
}

/// Reads `input` line by line on a thread until it ends, fails, or the
/// receiver goes away. `name` labels the warnings (`-` for standard
/// input).
pub fn spawn<R: BufRead + Send + 'static>(
    mut input: R,
    name: &str,
    queue: usize,
    overflow: Overflow,
) -> LineFeed {
    let dropped = Arc::new(AtomicU64::new(0));
    let (tx, lines) = bounded(queue, overflow, Arc::clone(&dropped));
    let too_long = Arc::clone(&dropped);
    let name = name.to_owned();
    // Nobody joins the thread: at end of input it ends, and on a signal the
    // process exits without waiting for it.
    std::thread::spawn(move || {
        let cap = MAX_LINE_BYTES as u64;
        let mut buf = Vec::new();
        let mut line_no = 0u64;
        loop {
            buf.clear();
            match (&mut input).take(cap + 1).read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) if buf.len() as u64 > cap && buf.last() != Some(&b'\n') => {
                    // Longer than any record: skipped to its end without
                    // buffering it, and counted as dropped.
                    line_no += 1;
                    if input.skip_until(b'\n').is_err() {
                        break;
                    }
                    too_long.fetch_add(1, Relaxed);
                    eprintln!(
                        "floodwatch: {name}:{line_no}: line longer than {cap} bytes skipped (dropped)"
                    );
                }
                Ok(_) => {
                    line_no += 1;
                    let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                    if !tx.push((line, Instant::now())) {
                        break;
                    }
                }
            }
        }
    });
    LineFeed { lines, dropped }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_arrives_in_order_when_blocking() {
        let text: String = (0..10_000).map(|i| format!("{i},x\r\n")).collect();
        let feed = spawn(std::io::Cursor::new(text), "-", 4, Overflow::Block);
        let got: Vec<String> = feed.lines.iter().map(|(l, _)| l).collect();
        assert_eq!(got.len(), 10_000);
        assert!(got.iter().enumerate().all(|(i, l)| *l == format!("{i},x")));
        assert_eq!(feed.dropped.load(Relaxed), 0);
    }

    #[test]
    fn overlong_lines_are_dropped_and_counted() {
        let mut text = "a\n".to_string();
        text += &"y".repeat(MAX_LINE_BYTES + 10);
        text += "\nb\n";
        let feed = spawn(std::io::Cursor::new(text), "-", 4, Overflow::Block);
        let got: Vec<String> = feed.lines.iter().map(|(l, _)| l).collect();
        assert_eq!(got, ["a", "b"]);
        assert_eq!(feed.dropped.load(Relaxed), 1);
    }

    #[test]
    fn a_consumer_that_leaves_ends_the_reader() {
        // An endless input: only the receiver going away can end the thread.
        let feed = spawn(
            std::io::BufReader::new(std::io::repeat(b'\n')),
            "-",
            2,
            Overflow::Block,
        );
        let first = feed.lines.recv().unwrap();
        assert_eq!(first.0, "");
        drop(feed.lines);
        // The queue's drop count is shared with the thread: once the thread
        // is gone, this is the last reference.
        let t0 = Instant::now();
        while Arc::strong_count(&feed.dropped) > 1 {
            assert!(
                t0.elapsed().as_secs() < 10,
                "the reader outlived its consumer"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
