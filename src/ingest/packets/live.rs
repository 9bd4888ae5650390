//! Live capture from a network interface (cargo feature `live`, libpcap).
//!
//! The capture runs in libpcap's non-blocking mode on its own thread and
//! feeds decoded packets into a bounded queue: when scoring falls behind,
//! packets are dropped and counted rather than buffered without limit. (A
//! blocking read with a timeout was seen to hang on loopback; polling in
//! non-blocking mode with a short sleep when idle does not.)

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::decode::decode_checked;
use super::frame::{FrameTap, LinkType, RawFrame};
use super::PacketMeta;
use crate::ingest::queue::{bounded, Overflow};
use crate::{Error, Result};

/// Bytes kept of each frame: every header the features read fits.
const SNAPLEN: i32 = 256;
/// Sleep when the interface has nothing to read.
const IDLE_SLEEP: Duration = Duration::from_millis(1);

/// An open live capture, not yet reading.
pub struct LiveCapture {
    name: String,
    cap: pcap::Capture<pcap::Active>,
}

impl std::fmt::Debug for LiveCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCapture")
            .field("name", &self.name)
            .finish()
    }
}

/// The reading side of a running capture.
#[derive(Debug)]
pub struct LiveFeed {
    /// Decoded packets with their arrival time.
    pub packets: Receiver<(PacketMeta, Instant)>,
    /// Packets dropped because the queue was full.
    pub dropped: Arc<AtomicU64>,
    /// The capture thread; it ends on the stop flag or a capture error,
    /// which it returns.
    pub thread: JoinHandle<Result<()>>,
}

impl LiveCapture {
    /// Opens `iface` (e.g. `eth0`, `lo`) in non-blocking, immediate mode,
    /// not promiscuous. Needs the capture privilege (root or CAP_NET_RAW).
    pub fn open(iface: &str) -> Result<Self> {
        let err = |e: pcap::Error| Error::Data(format!("live capture on {iface}: {e}"));
        let cap = pcap::Capture::from_device(iface)
            .map_err(err)?
            .promisc(false)
            .snaplen(SNAPLEN)
            .immediate_mode(true)
            .open()
            .map_err(err)?
            .setnonblock()
            .map_err(err)?;
        Ok(LiveCapture {
            name: iface.to_owned(),
            cap,
        })
    }

    /// Starts reading on a thread into a queue of `queue` packets, which
    /// does `overflow` when full, each frame shown to `tap` when there is
    /// one; stops when `stop` is set.
    pub fn spawn(
        self,
        queue: usize,
        overflow: Overflow,
        stop: Arc<AtomicBool>,
        mut tap: Option<Box<dyn FrameTap>>,
    ) -> Result<LiveFeed> {
        let dropped = Arc::new(AtomicU64::new(0));
        let (tx, rx) = bounded(queue, overflow, Arc::clone(&dropped));
        let LiveCapture { name, mut cap } = self;
        let link = LinkType(u16::try_from(cap.get_datalink().0).unwrap_or(u16::MAX));
        let thread = std::thread::Builder::new()
            .name(format!("capture {name}"))
            .spawn(move || {
                let mut index = 0u64;
                while !stop.load(Relaxed) {
                    match cap.next_packet() {
                        Ok(p) => {
                            index += 1;
                            let ts = p.header.ts;
                            // time_t and suseconds_t differ in width across platforms.
                            #[allow(clippy::useless_conversion)]
                            let ts_ns = i64::from(ts.tv_sec) * 1_000_000_000
                                + i64::from(ts.tv_usec) * 1_000;
                            let raw = RawFrame {
                                index,
                                ts_ns,
                                wire_len: p.header.len,
                                link_type: link,
                                interface: 0,
                                data: p.data,
                            };
                            let (meta, _) = decode_checked(&raw);
                            if let Some(tap) = &mut tap {
                                tap.frame(&meta, &raw);
                            }
                            if !tx.push((meta, Instant::now())) {
                                return Ok(());
                            }
                        }
                        Err(pcap::Error::TimeoutExpired) => std::thread::sleep(IDLE_SLEEP),
                        Err(e) => return Err(Error::Data(format!("live capture on {name}: {e}"))),
                    }
                }
                Ok(())
            })
            .map_err(|e| Error::io("capture thread", e))?;
        Ok(LiveFeed {
            packets: rx,
            dropped,
            thread,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_interfaces_are_errors_naming_them() {
        let e = LiveCapture::open("no-such-if0").unwrap_err().to_string();
        assert!(e.contains("no-such-if0"), "{e}");
    }
}
