//! `watch --dump-packets DIR`: the first packets to each flood's victim (or
//! from each scanner or infected host) once its episode starts, in a pcap
//! file per episode, as FastNetMon's attack dumps: what an operator opens
//! in Wireshark or tshark to see the attack itself.
//!
//! [`Dumps`] is shared by two ends: a [`DumpSink`] among the alert sinks
//! opens a dump at an episode's `start` and closes it at its `end`; a
//! [`DumpTap`] on the packet source writes each frame of a target being
//! dumped. Packets are taken as they are read, so a dump starts with the
//! packets read after the start alert (at most a micro-batch later than the
//! record that fired it). Bounded by configuration: `packets` per file and
//! at most `max_open` dumps at once (more are refused and counted).

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use super::alert::{Alert, State};
use super::sink::AlertSink;
use crate::ingest::packets::capture::{FrameTap, RawFrame};
use crate::ingest::packets::pcap::PcapWriter;
use crate::ingest::packets::{Network, PacketMeta};

/// Bytes kept of each frame: whole Ethernet jumbo frames.
const SNAPLEN: u32 = 65_535;

/// Where and how much to dump.
#[derive(Debug, Clone)]
pub struct DumpParams {
    /// The folder of the pcap files.
    pub dir: PathBuf,
    /// Packets per episode.
    pub packets: u64,
    /// Episodes dumped at once.
    pub max_open: usize,
}

/// What the dumps did in a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpStats {
    /// Files written.
    pub files: u64,
    /// Packets written in all.
    pub packets: u64,
    /// Dumps cut short by a write error (a full disk).
    pub failed: u64,
    /// Episodes not dumped: `max_open` dumps were open.
    pub refused: u64,
}

impl fmt::Display for DumpStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "packet dumps: {} files, {} packets, {} cut short by write errors, {} episodes \
             refused at the cap",
            self.files, self.packets, self.failed, self.refused
        )
    }
}

/// One episode's dump.
#[derive(Debug)]
struct Dump {
    target: IpAddr,
    /// The target is the packets' source (scans, infected hosts).
    source: bool,
    path: PathBuf,
    writer: Option<PcapWriter<BufWriter<File>>>,
    written: u64,
    done: bool,
}

#[derive(Debug)]
struct Table {
    params: DumpParams,
    dumps: Vec<Dump>,
    stats: DumpStats,
}

/// The dumps in progress, shared by a [`DumpSink`] and a [`DumpTap`].
#[derive(Debug, Clone)]
pub struct Dumps {
    table: Arc<Mutex<Table>>,
    /// Dumps still taking packets: the tap's lock-free fast path.
    taking: Arc<AtomicUsize>,
}

impl Dumps {
    /// Dumps into `params.dir`, created if missing.
    ///
    /// # Errors
    /// The folder cannot be created, named in the message.
    pub fn new(params: DumpParams) -> crate::Result<Self> {
        std::fs::create_dir_all(&params.dir)
            .map_err(|e| crate::Error::io(params.dir.display().to_string(), e))?;
        let table = Table {
            params,
            dumps: Vec::new(),
            stats: DumpStats::default(),
        };
        Ok(Dumps {
            table: Arc::new(Mutex::new(table)),
            taking: Arc::default(),
        })
    }

    /// The alert end: opens and closes dumps.
    pub fn sink(&self) -> DumpSink {
        DumpSink(self.clone())
    }

    /// The packet end: writes the frames of targets being dumped.
    pub fn tap(&self) -> DumpTap {
        DumpTap(self.clone())
    }

    /// The counts so far.
    pub fn stats(&self) -> DumpStats {
        self.lock().stats
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic elsewhere leaves the table consistent: each step is whole.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn recount(&self, t: &Table) {
        self.taking
            .store(t.dumps.iter().filter(|d| !d.done).count(), Relaxed);
    }
}

impl Table {
    fn start(&mut self, alert: &Alert) {
        let Some(target) = alert.subject().map(|ip| ip.to_canonical()) else {
            return;
        };
        if self.dumps.iter().any(|d| d.target == target) {
            return;
        }
        if self.dumps.len() >= self.params.max_open {
            self.stats.refused += 1;
            return;
        }
        let path = self
            .params
            .dir
            .join(file_name(target, &alert.timestamp.to_string()));
        self.dumps.push(Dump {
            target,
            source: alert.family().about_source(),
            path,
            writer: None,
            written: 0,
            done: false,
        });
    }

    fn end(&mut self, alert: &Alert) {
        let Some(target) = alert.subject().map(|ip| ip.to_canonical()) else {
            return;
        };
        if let Some(i) = self.dumps.iter().position(|d| d.target == target) {
            let mut d = self.dumps.swap_remove(i);
            d.close(&mut self.stats);
        }
    }

    /// Writes `raw` to the dumps of its addresses; returns whether one of
    /// them is now done (full, or cut short).
    fn frame(&mut self, p: &PacketMeta, raw: &RawFrame<'_>) -> bool {
        let Network::Ip { src, dst } = p.network else {
            return false;
        };
        let (src, dst) = (src.to_canonical(), dst.to_canonical());
        let limit = self.params.packets;
        let mut finished = false;
        for d in self.dumps.iter_mut().filter(|d| !d.done) {
            if d.target == if d.source { src } else { dst } {
                d.write(raw, limit, &mut self.stats);
                finished |= d.done;
            }
        }
        finished
    }

    fn close_all(&mut self) {
        for mut d in self.dumps.drain(..) {
            d.close(&mut self.stats);
        }
    }
}

impl Dump {
    /// Writes one frame; the file is created at the first. A write error
    /// ends this dump, says so once and is counted.
    fn write(&mut self, raw: &RawFrame<'_>, limit: u64, stats: &mut DumpStats) {
        let result = match &mut self.writer {
            Some(w) => w.write_packet(raw.ts_ns, raw.wire_len, raw.data),
            None => create(&self.path, raw).map(|w| {
                stats.files += 1;
                self.writer = Some(w);
            }),
        };
        if let Err(e) = result {
            eprintln!(
                "floodwatch: --dump-packets: {}: {e}; this dump stops",
                self.path.display()
            );
            stats.failed += 1;
            self.writer = None;
            self.done = true;
            return;
        }
        self.written += 1;
        stats.packets += 1;
        if self.written >= limit {
            self.close(stats);
        }
    }

    fn close(&mut self, stats: &mut DumpStats) {
        self.done = true;
        if let Some(w) = self.writer.take() {
            if let Err(e) = w.finish() {
                eprintln!("floodwatch: --dump-packets: {}: {e}", self.path.display());
                stats.failed += 1;
            }
        }
    }
}

/// A new pcap file of `raw`'s link type, with `raw` in it.
fn create(path: &Path, raw: &RawFrame<'_>) -> io::Result<PcapWriter<BufWriter<File>>> {
    let file = File::create(path)?;
    let mut w = PcapWriter::new(BufWriter::new(file), raw.link_type, SNAPLEN, true)?;
    w.write_packet(raw.ts_ns, raw.wire_len, raw.data)?;
    Ok(w)
}

/// `198.51.100.23_20261125T145951.123456.pcap` (IPv6 colons as `-`).
fn file_name(target: IpAddr, timestamp: &str) -> String {
    let time: String = timestamp
        .trim_end_matches("+0000")
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let ip = target.to_string().replace(':', "-");
    format!("{ip}_{time}.pcap")
}

/// Opens a dump at each episode's start, closes it at its end.
#[derive(Debug)]
pub struct DumpSink(Dumps);

impl AlertSink for DumpSink {
    fn alert(&mut self, alert: &Alert) -> io::Result<()> {
        let mut t = self.0.lock();
        match alert.state() {
            State::Start => t.start(alert),
            State::End => t.end(alert),
            State::Details => return Ok(()),
        }
        self.0.recount(&t);
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        let mut t = self.0.lock();
        t.close_all();
        self.0.recount(&t);
        Ok(())
    }
}

/// Writes the frames of targets being dumped.
#[derive(Debug)]
pub struct DumpTap(Dumps);

impl FrameTap for DumpTap {
    fn frame(&mut self, packet: &PacketMeta, raw: &RawFrame<'_>) {
        if self.0.taking.load(Relaxed) == 0 {
            return;
        }
        let mut t = self.0.lock();
        if t.frame(packet, raw) {
            self.0.recount(&t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::alert::{udp_alert, Family};
    use crate::ingest::packets::capture::{LinkType, PacketSource};
    use crate::ingest::packets::Transport;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn alert(state: State, family: Family, src: &str, dst: &str) -> Alert {
        udp_alert(state, family, src, dst)
    }

    /// Shows the tap one raw-IP frame from `src` to `dst`.
    fn frame(tap: &mut DumpTap, src: &str, dst: &str, n: u8) {
        let meta = PacketMeta {
            index: u64::from(n),
            timestamp: f64::from(n),
            wire_len: 28,
            src_mac: [0; 6],
            dst_mac: [0; 6],
            network: Network::Ip {
                src: ip(src),
                dst: ip(dst),
            },
            transport: Transport::Other(253),
            fragment: None,
        };
        let data = [n; 28];
        let raw = RawFrame {
            index: u64::from(n),
            ts_ns: i64::from(n) * 1_000_000_000,
            wire_len: 28,
            link_type: LinkType::RAW,
            interface: 0,
            data: &data,
        };
        tap.frame(&meta, &raw);
    }

    fn dumps(dir: &Path, packets: u64, max_open: usize) -> Dumps {
        Dumps::new(DumpParams {
            dir: dir.to_path_buf(),
            packets,
            max_open,
        })
        .unwrap()
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut f: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        f.sort();
        f
    }

    #[test]
    fn each_episode_gets_its_first_packets_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dumps(tmp.path(), 3, 8);
        let (mut sink, mut tap) = (d.sink(), d.tap());
        // Nothing is open: nothing is written.
        frame(&mut tap, "10.9.9.9", "10.0.0.5", 1);
        sink.alert(&alert(
            State::Start,
            Family::FloodTarget,
            "10.9.9.9",
            "10.0.0.5",
        ))
        .unwrap();
        sink.alert(&alert(
            State::Start,
            Family::InfectedHost,
            "10.0.0.7",
            "10.2.2.2",
        ))
        .unwrap();
        for n in 2..10 {
            frame(&mut tap, "10.9.9.9", "10.0.0.5", n);
            frame(&mut tap, "10.0.0.5", "10.9.9.9", n);
        }
        // The infected host's dump ends with its episode, short.
        frame(&mut tap, "10.0.0.7", "10.3.3.3", 20);
        sink.alert(&alert(
            State::End,
            Family::InfectedHost,
            "10.0.0.7",
            "10.2.2.2",
        ))
        .unwrap();
        frame(&mut tap, "10.0.0.7", "10.3.3.3", 21);
        sink.finish().unwrap();
        let f = files(tmp.path());
        assert_eq!(f.len(), 2, "{f:?}");
        let times = |p: &Path| -> Vec<f64> {
            PacketSource::open(p)
                .unwrap()
                .map(|m| m.timestamp)
                .collect()
        };
        assert_eq!(times(&f[0]), [2.0, 3.0, 4.0], "{f:?}");
        assert_eq!(times(&f[1]), [20.0], "{f:?}");
        let s = d.stats();
        assert_eq!((s.files, s.packets, s.failed, s.refused), (2, 4, 0, 0));
        assert_eq!(d.taking.load(Relaxed), 0);
    }

    #[test]
    fn the_cap_refuses_and_a_write_error_stops_one_dump() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dumps(&tmp.path().join("gone"), 5, 1);
        let (mut sink, mut tap) = (d.sink(), d.tap());
        sink.alert(&alert(
            State::Start,
            Family::FloodTarget,
            "10.9.9.9",
            "10.0.0.5",
        ))
        .unwrap();
        sink.alert(&alert(
            State::Start,
            Family::FloodTarget,
            "10.9.9.9",
            "10.0.0.6",
        ))
        .unwrap();
        std::fs::remove_dir(tmp.path().join("gone")).unwrap();
        frame(&mut tap, "10.9.9.9", "10.0.0.5", 1);
        frame(&mut tap, "10.9.9.9", "10.0.0.5", 2);
        let s = d.stats();
        assert_eq!((s.files, s.packets, s.failed, s.refused), (0, 0, 1, 1));
        assert_eq!(d.taking.load(Relaxed), 0);
    }

    #[test]
    fn file_names_are_the_target_and_the_start_time() {
        let ip: IpAddr = "2001:db8::5".parse().unwrap();
        assert_eq!(
            file_name(ip, "2026-11-25T14:59:51.123456+0000"),
            "2001-db8--5_20261125T145951.123456.pcap"
        );
    }
}
