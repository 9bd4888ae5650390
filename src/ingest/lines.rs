//! Lines of a stream (standard input) read by one thread into a bounded
//! queue for `watch`: at most `queue` lines of at most
//! [`MAX_LINE_BYTES`] wait, whatever the input's length. Lines travel in
//! chunks ([`Lines`]: one buffer, one queue slot, one clock reading for up
//! to [`CHUNK_LINES`]); a chunk is sent as soon as the input has nothing
//! more ready, so a trickle of lines is not held back.

use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Instant;

use crate::ingest::csv::MAX_LINE_BYTES;
use crate::ingest::queue::{bounded, Overflow};

/// Most lines a chunk holds.
pub const CHUNK_LINES: usize = 256;

/// Lines read together: one text buffer, where each line ends, and when
/// the first of them arrived.
#[derive(Debug, Clone)]
pub struct Lines {
    text: String,
    ends: Vec<usize>,
    arrived: Instant,
}

impl Lines {
    /// An empty chunk whose lines arrive now.
    pub fn new() -> Lines {
        Lines {
            text: String::new(),
            ends: Vec::new(),
            arrived: Instant::now(),
        }
    }

    /// A chunk of one line.
    pub fn one(line: &str, arrived: Instant) -> Lines {
        let mut l = Lines {
            arrived,
            ..Lines::new()
        };
        l.push(line);
        l
    }

    /// Appends a line (without its end of line).
    pub fn push(&mut self, line: &str) {
        self.text.push_str(line);
        self.ends.push(self.text.len());
    }

    /// Lines held.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether it holds no line.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Line `i` (0-based), if there.
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start..end)
    }

    /// When the first line arrived.
    pub fn arrived(&self) -> Instant {
        self.arrived
    }
}

impl Default for Lines {
    fn default() -> Self {
        Lines::new()
    }
}

/// The reading end of [`spawn`].
#[derive(Debug)]
pub struct LineFeed {
    /// Chunks of lines, ends of line removed.
    pub lines: Receiver<Lines>,
    /// Lines dropped: a full queue under [`Overflow::Drop`], or too long.
    pub dropped: Arc<AtomicU64>,
}

/// Reads `input` line by line on a thread until it ends, fails, or the
/// receiver goes away. `name` labels the warnings (`-` for standard
/// input).
pub fn spawn<R: Read + Send + 'static>(
    input: R,
    name: &str,
    queue: usize,
    overflow: Overflow,
) -> LineFeed {
    let dropped = Arc::new(AtomicU64::new(0));
    // Lines per chunk, and chunks queued: at most `queue` lines wait.
    let most = queue.clamp(1, CHUNK_LINES);
    let (tx, lines) = bounded((queue / most).max(1), overflow, Arc::clone(&dropped));
    let too_long = Arc::clone(&dropped);
    let name = name.to_owned();
    // Nobody joins the thread: at end of input it ends, and on a signal the
    // process exits without waiting for it.
    std::thread::spawn(move || {
        let mut input = BufReader::with_capacity(1 << 16, input);
        let cap = MAX_LINE_BYTES as u64;
        let mut buf = Vec::new();
        let mut line_no = 0u64;
        let mut chunk = Lines::new();
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
                    if chunk.is_empty() {
                        chunk.arrived = Instant::now();
                    }
                    match std::str::from_utf8(&buf) {
                        Ok(line) => chunk.push(line.trim_end()),
                        Err(_) => chunk.push(String::from_utf8_lossy(&buf).trim_end()),
                    }
                }
            }
            // Sent when full, or when the next line would have to wait.
            if chunk.len() >= most || (!chunk.is_empty() && input.buffer().is_empty()) {
                let n = chunk.len() as u64;
                if !tx.push_counted(std::mem::take(&mut chunk), n) {
                    return;
                }
            }
        }
        if !chunk.is_empty() {
            let n = chunk.len() as u64;
            tx.push_counted(chunk, n);
        }
    });
    LineFeed { lines, dropped }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(feed: &LineFeed) -> Vec<String> {
        let chunks: Vec<Lines> = feed.lines.iter().collect();
        assert!(chunks.iter().all(|c| (1..=CHUNK_LINES).contains(&c.len())));
        let lines = chunks
            .iter()
            .flat_map(|c| (0..c.len()).map(|i| c.get(i).unwrap()));
        lines.map(String::from).collect()
    }

    #[test]
    fn chunks_hold_lines_and_a_trickle_is_sent_at_once() {
        let mut c = Lines::new();
        for l in ["a,b", "", "ü,1"] {
            c.push(l);
        }
        assert_eq!(
            (c.len(), c.get(1), c.get(2), c.get(3)),
            (3, Some(""), Some("ü,1"), None)
        );
        // A pipe whose writer waits: each line must arrive before the next
        // is written.
        let (r, mut w) = std::io::pipe().unwrap();
        let feed = spawn(r, "-", 1000, Overflow::Block);
        for i in 0..3 {
            std::io::Write::write_all(&mut w, format!("{i}\n").as_bytes()).unwrap();
            let got = feed
                .lines
                .recv_timeout(std::time::Duration::from_secs(5))
                .unwrap();
            assert_eq!(got.get(0), Some(i.to_string().as_str()));
        }
    }

    #[test]
    fn a_full_queue_drops_whole_chunks_and_counts_their_lines() {
        let text: String = (0..100_000).map(|i| format!("{i}\n")).collect();
        let feed = spawn(std::io::Cursor::new(text), "-", 300, Overflow::Drop);
        std::thread::sleep(std::time::Duration::from_millis(300));
        let kept: usize = feed.lines.iter().map(|c| c.len()).sum();
        assert_eq!(kept as u64 + feed.dropped.load(Relaxed), 100_000);
        assert!(kept <= 600, "{kept} lines kept with a queue of 300 lines");
    }

    #[test]
    fn every_line_arrives_in_order_when_blocking() {
        let text: String = (0..10_000).map(|i| format!("{i},x\r\n")).collect();
        let feed = spawn(std::io::Cursor::new(text), "-", 4, Overflow::Block);
        let got = all(&feed);
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
        assert_eq!(all(&feed), ["a", "b"]);
        assert_eq!(feed.dropped.load(Relaxed), 1);
    }

    #[test]
    fn a_consumer_that_leaves_ends_the_reader() {
        // An endless input: only the receiver going away can end the thread.
        let feed = spawn(std::io::repeat(b'\n'), "-", 2, Overflow::Block);
        let first = feed.lines.recv().unwrap();
        assert_eq!(first.get(0), Some(""));
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
