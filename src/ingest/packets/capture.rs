//! Reading capture files: pcap or pcapng, told apart by their magic number.
//!
//! [`CaptureReader::next_packet`] fills one caller-owned buffer per record,
//! so reading allocates nothing per packet; [`super::decode::decode`] turns
//! the [`RawFrame`] it returns into a [`super::PacketMeta`].
//!
//! ```no_run
//! use floodwatch::ingest::packets::{capture::CaptureReader, decode::decode};
//! # fn main() -> floodwatch::Result<()> {
//! let mut reader = CaptureReader::open("trace.pcap")?;
//! let mut buf = Vec::new();
//! while let Some(raw) = reader.next_packet(&mut buf)? {
//!     let meta = decode(&raw);
//!     println!("{} {}", meta.index, meta.wire_len);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! [`PacketSource`] wraps that loop, counting skipped records and keeping the
//! damage that ends a truncated file:
//!
//! ```no_run
//! use floodwatch::ingest::packets::capture::PacketSource;
//! # fn main() -> floodwatch::Result<()> {
//! let mut packets = PacketSource::open("trace.pcap")?;
//! let bytes: u64 = packets.by_ref().map(|p| u64::from(p.wire_len)).sum();
//! if let Some(damage) = packets.damage() {
//!     eprintln!("warning: {damage}");
//! }
//! eprintln!("{bytes} bytes; {}; {} skipped", packets.stats(), packets.skipped());
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use super::{pcap, pcapng};

/// The largest record accepted: a declared length above it is corruption,
/// never a reason to allocate (Wireshark uses the same 256 KiB bound).
pub const MAX_RECORD: u32 = 256 * 1024;

/// Read buffer of [`CaptureReader::open`]: large reads keep the system-call
/// count low at millions of small packets per second.
const READ_BUFFER: usize = 1 << 20;

/// A link-layer header type (the `LINKTYPE_` values of pcap and pcapng).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkType(pub u16);

impl LinkType {
    /// BSD loopback, address family in host byte order.
    pub const NULL: LinkType = LinkType(0);
    /// Ethernet II.
    pub const ETHERNET: LinkType = LinkType(1);
    /// Raw IP (version from the first nibble).
    pub const RAW: LinkType = LinkType(101);
    /// OpenBSD loopback, address family in network byte order.
    pub const LOOP: LinkType = LinkType(108);
    /// Linux cooked capture v1.
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// Raw IPv4.
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6.
    pub const IPV6: LinkType = LinkType(229);
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: LinkType = LinkType(276);
}

/// One record of a capture, borrowing its bytes from the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawFrame<'a> {
    /// 1-based frame number in the capture (packet records only).
    pub index: u64,
    /// Capture time in nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// Original length on the wire.
    pub wire_len: u32,
    /// Link type of the interface that captured it.
    pub link_type: LinkType,
    /// Interface number (always 0 for classic pcap).
    pub interface: u32,
    /// The captured bytes (possibly fewer than `wire_len`).
    pub data: &'a [u8],
}

impl RawFrame<'_> {
    /// Capture time in seconds since the Unix epoch, as precise as an f64
    /// allows (whole seconds and fraction converted separately).
    pub fn timestamp(&self) -> f64 {
        let secs = self.ts_ns.div_euclid(1_000_000_000);
        let nanos = self.ts_ns.rem_euclid(1_000_000_000);
        secs as f64 + nanos as f64 * 1e-9
    }

    /// Whether the snap length cut the frame.
    pub fn is_truncated(&self) -> bool {
        (self.data.len() as u64) < u64::from(self.wire_len)
    }
}

/// What went wrong reading a capture.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file starts with neither a pcap nor a pcapng magic number.
    UnknownFormat {
        /// The first four bytes, little-endian.
        magic: u32,
    },
    /// The file ends inside a header or record.
    Truncated {
        /// Bytes the header or record needs.
        needed: u64,
        /// Bytes left in the file.
        available: u64,
    },
    /// A record declares a captured length above the snap length or
    /// [`MAX_RECORD`].
    RecordTooLong {
        /// Declared length.
        len: u64,
        /// The bound it breaks.
        limit: u64,
    },
    /// A record's captured length exceeds its original length. The record
    /// is skipped; reading can go on.
    CapLenExceedsWireLen {
        /// Captured length.
        cap_len: u32,
        /// Original length.
        wire_len: u32,
    },
    /// A pcapng block length is below 12, not a multiple of 4, does not
    /// match its trailing copy, or cannot hold the block's fields.
    BadBlock {
        /// Block type.
        block_type: u32,
        /// Declared total length.
        len: u32,
    },
    /// A pcapng header (section or interface) is invalid.
    BadHeader(&'static str),
    /// A pcapng packet names an interface not described before it. The
    /// record is skipped; reading can go on.
    UnknownInterface {
        /// The interface number.
        id: u32,
    },
    /// The operating system failed to read.
    Io(io::Error),
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::UnknownFormat { magic } => {
                write!(f, "not a pcap or pcapng file (magic number 0x{magic:08x})")
            }
            ErrorKind::Truncated { needed, available } => {
                write!(f, "file truncated: {needed} bytes needed, {available} left")
            }
            ErrorKind::RecordTooLong { len, limit } => {
                write!(f, "record length {len} exceeds the limit {limit}")
            }
            ErrorKind::CapLenExceedsWireLen { cap_len, wire_len } => write!(
                f,
                "captured length {cap_len} exceeds the original length {wire_len}"
            ),
            ErrorKind::BadBlock { block_type, len } => {
                write!(
                    f,
                    "pcapng block 0x{block_type:08x} has an invalid length {len}"
                )
            }
            ErrorKind::BadHeader(what) => write!(f, "invalid pcapng header: {what}"),
            ErrorKind::UnknownInterface { id } => {
                write!(f, "packet of undescribed interface {id}")
            }
            ErrorKind::Io(e) => write!(f, "{e}"),
        }
    }
}

/// A capture reading error: its kind, the record it hit and the byte offset
/// of the header or record where the damage starts.
#[derive(Debug)]
pub struct CaptureError {
    kind: ErrorKind,
    path: PathBuf,
    record: u64,
    offset: u64,
}

impl CaptureError {
    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// 1-based number of the packet record being read.
    pub fn record(&self) -> u64 {
        self.record
    }

    /// Byte offset of the damaged header or record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether reading must stop. After a non-fatal error the bad record
    /// has been skipped and [`CaptureReader::next_packet`] goes on; after a
    /// fatal one it returns `Ok(None)`.
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self.kind,
            ErrorKind::CapLenExceedsWireLen { .. } | ErrorKind::UnknownInterface { .. }
        )
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: record {} at byte {}: {}",
            self.path.display(),
            self.record,
            self.offset,
            self.kind
        )
    }
}

impl std::error::Error for CaptureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<CaptureError> for crate::Error {
    fn from(e: CaptureError) -> Self {
        match e.kind {
            ErrorKind::Io(source) => crate::Error::Io {
                path: e.path,
                source,
            },
            kind => crate::Error::Input {
                file: e.path,
                line: e.record,
                msg: format!("byte {}: {kind}", e.offset),
            },
        }
    }
}

/// The byte source under a reader: counts the offset and knows, for files,
/// how many bytes are left, so a declared length is checked before any
/// buffer grows.
#[derive(Debug)]
pub(crate) struct Source<R> {
    inner: R,
    offset: u64,
    len: Option<u64>,
}

impl<R: Read> Source<R> {
    /// Bytes left, when the total length is known.
    pub(crate) fn remaining(&self) -> Option<u64> {
        self.len.map(|l| l.saturating_sub(self.offset))
    }

    /// Current byte offset.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Fails with [`ErrorKind::Truncated`] when fewer than `n` bytes are
    /// known to be left.
    pub(crate) fn ensure(&self, n: u64) -> Result<(), ErrorKind> {
        match self.remaining() {
            Some(available) if available < n => Err(ErrorKind::Truncated {
                needed: n,
                available,
            }),
            _ => Ok(()),
        }
    }

    /// Reads as much of `buf` as the source holds; returns the count.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        let mut done = 0;
        while done < buf.len() {
            match self.inner.read(&mut buf[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ErrorKind::Io(e)),
            }
        }
        self.offset += done as u64;
        Ok(done)
    }

    /// Reads exactly `buf.len()` bytes; running out is truncation.
    pub(crate) fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), ErrorKind> {
        let got = self.fill(buf)?;
        if got < buf.len() {
            return Err(ErrorKind::Truncated {
                needed: buf.len() as u64,
                available: got as u64,
            });
        }
        Ok(())
    }

    /// Skips `n` bytes without buffering them.
    pub(crate) fn skip(&mut self, n: u64) -> Result<(), ErrorKind> {
        self.ensure(n)?;
        let got =
            io::copy(&mut (&mut self.inner).take(n), &mut io::sink()).map_err(ErrorKind::Io)?;
        self.offset += got;
        if got < n {
            return Err(ErrorKind::Truncated {
                needed: n,
                available: got,
            });
        }
        Ok(())
    }
}

/// Resizes `buf` to at least `n` bytes (it only grows, so a reused buffer
/// stops allocating after the largest record) and returns its first `n`.
pub(crate) fn grow(buf: &mut Vec<u8>, n: usize) -> &mut [u8] {
    if buf.len() < n {
        buf.resize(n, 0);
    }
    &mut buf[..n]
}

/// Where a record's bytes sit in the caller's buffer, before borrowing it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    pub(crate) ts_ns: i64,
    pub(crate) wire_len: u32,
    pub(crate) link_type: LinkType,
    pub(crate) interface: u32,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// A reading failure and the byte offset of the header or record at fault.
pub(crate) type Located = (ErrorKind, u64);

/// The file format and its reading state.
#[derive(Debug)]
enum Format {
    Pcap(pcap::Header),
    Pcapng(pcapng::Reader),
}

/// Reads the packet records of a pcap or pcapng capture.
#[derive(Debug)]
pub struct CaptureReader<R = BufReader<File>> {
    source: Source<R>,
    format: Format,
    path: PathBuf,
    records: u64,
    done: bool,
}

impl CaptureReader<BufReader<File>> {
    /// Opens a capture file, detecting its format from the magic number.
    pub fn open(path: impl AsRef<Path>) -> crate::Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| crate::Error::io(path, e))?;
        let len = file
            .metadata()
            .map_err(|e| crate::Error::io(path, e))?
            .len();
        let inner = BufReader::with_capacity(READ_BUFFER, file);
        Ok(Self::start(inner, Some(len), path)?)
    }
}

impl<R: Read> CaptureReader<R> {
    /// Reads a capture from any byte stream; `name` labels errors. The total
    /// length is unknown, so truncation is found when the bytes run out.
    pub fn from_reader(inner: R, name: impl Into<PathBuf>) -> Result<Self, CaptureError> {
        Self::start(inner, None, &name.into())
    }

    fn start(inner: R, len: Option<u64>, path: &Path) -> Result<Self, CaptureError> {
        let mut source = Source {
            inner,
            offset: 0,
            len,
        };
        let fail = |kind| CaptureError {
            kind,
            path: path.to_path_buf(),
            record: 0,
            offset: 0,
        };
        let mut magic = [0u8; 4];
        source.read_exact(&mut magic).map_err(fail)?;
        let format = if magic == pcapng::SHB_TYPE.to_le_bytes() {
            Format::Pcapng(pcapng::Reader::start(&mut source).map_err(fail)?)
        } else if let Some(order) = pcap::Magic::from_bytes(magic) {
            Format::Pcap(pcap::Header::read(&mut source, order).map_err(fail)?)
        } else {
            return Err(fail(ErrorKind::UnknownFormat {
                magic: u32::from_le_bytes(magic),
            }));
        };
        Ok(CaptureReader {
            source,
            format,
            path: path.to_path_buf(),
            records: 0,
            done: false,
        })
    }

    /// Reads the next packet record into `buf` (reused across calls) and
    /// returns a view of it, or `None` at the end of the capture.
    ///
    /// # Errors
    /// A [`CaptureError`] naming the record and byte offset. After a fatal
    /// one (see [`CaptureError::is_fatal`]) the reader returns `Ok(None)`.
    pub fn next_packet<'b>(
        &mut self,
        buf: &'b mut Vec<u8>,
    ) -> Result<Option<RawFrame<'b>>, CaptureError> {
        if self.done {
            return Ok(None);
        }
        let result = match &mut self.format {
            Format::Pcap(header) => header.next_record(&mut self.source, buf),
            Format::Pcapng(reader) => reader.next_record(&mut self.source, buf),
        };
        match result {
            Ok(Some(r)) => {
                self.records += 1;
                Ok(Some(RawFrame {
                    index: self.records,
                    ts_ns: r.ts_ns,
                    wire_len: r.wire_len,
                    link_type: r.link_type,
                    interface: r.interface,
                    data: buf.get(r.start..r.end).unwrap_or(&[]),
                }))
            }
            Ok(None) => {
                self.done = true;
                Ok(None)
            }
            Err((kind, offset)) => {
                // A skipped record still has a frame number: numbering stays
                // that of Wireshark and of the other tools.
                self.records += 1;
                let err = CaptureError {
                    kind,
                    path: self.path.clone(),
                    record: self.records,
                    offset,
                };
                self.done = err.is_fatal();
                Err(err)
            }
        }
    }

    /// Packet records read so far, skipped ones included.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The link type of a classic pcap file, or of the first pcapng
    /// interface described so far.
    pub fn link_type(&self) -> Option<LinkType> {
        match &self.format {
            Format::Pcap(h) => Some(h.link_type),
            Format::Pcapng(r) => r.first_link_type(),
        }
    }

    /// Whether timestamps carry nanoseconds (nanosecond pcap, or any pcapng
    /// file, whose resolution varies per interface).
    pub fn is_nanosecond(&self) -> bool {
        match &self.format {
            Format::Pcap(h) => h.magic.nanos,
            Format::Pcapng(_) => true,
        }
    }
}

/// Skipped-record errors kept for the report; the rest are only counted.
const KEPT_PROBLEMS: usize = 16;

/// Decoded packets of a capture, one at a time: the reading loop every
/// consumer needs. Records the reader skips (see
/// [`CaptureError::is_fatal`]) are counted and the first few kept; damage
/// that ends the file early is kept in [`PacketSource::damage`] and ends the
/// stream, so what came before it is still used.
#[derive(Debug)]
pub struct PacketSource<R = BufReader<File>> {
    reader: CaptureReader<R>,
    buf: Vec<u8>,
    stats: super::decode::DecodeStats,
    skipped: u64,
    problems: Vec<CaptureError>,
    damage: Option<CaptureError>,
}

impl PacketSource<BufReader<File>> {
    /// Opens a capture file.
    pub fn open(path: impl AsRef<Path>) -> crate::Result<Self> {
        Ok(Self::new(CaptureReader::open(path)?))
    }
}

impl<R: Read> PacketSource<R> {
    /// Decodes the packets of `reader`.
    pub fn new(reader: CaptureReader<R>) -> Self {
        PacketSource {
            reader,
            buf: Vec::new(),
            stats: super::decode::DecodeStats::default(),
            skipped: 0,
            problems: Vec::new(),
            damage: None,
        }
    }

    /// The next decoded packet, or `None` at the end of the capture or at
    /// damage that ends it.
    pub fn next_packet(&mut self) -> Option<super::PacketMeta> {
        loop {
            match self.reader.next_packet(&mut self.buf) {
                Ok(Some(raw)) => {
                    let (meta, bad) = super::decode::decode_checked(&raw);
                    self.stats.record(bad);
                    return Some(meta);
                }
                Ok(None) => return None,
                Err(e) if e.is_fatal() => {
                    self.damage = Some(e);
                    return None;
                }
                Err(e) => {
                    self.skipped += 1;
                    if self.problems.len() < KEPT_PROBLEMS {
                        self.problems.push(e);
                    }
                }
            }
        }
    }

    /// Decoding counts: frames and malformed layers.
    pub fn stats(&self) -> &super::decode::DecodeStats {
        &self.stats
    }

    /// Records skipped as unusable (not decoded).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The first skipped records' errors.
    pub fn problems(&self) -> &[CaptureError] {
        &self.problems
    }

    /// The damage that ended the capture early, if any.
    pub fn damage(&self) -> Option<&CaptureError> {
        self.damage.as_ref()
    }

    /// The reader underneath (link type, precision, record count).
    pub fn reader(&self) -> &CaptureReader<R> {
        &self.reader
    }
}

impl<R: Read> Iterator for PacketSource<R> {
    type Item = super::PacketMeta;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_packet()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_keeps_microseconds() {
        let frame = RawFrame {
            index: 1,
            ts_ns: 1_540_446_382_933_899_000,
            wire_len: 60,
            link_type: LinkType::ETHERNET,
            interface: 0,
            data: &[],
        };
        assert!((frame.timestamp() - 1_540_446_382.933_899).abs() < 1e-7);
        assert!(frame.is_truncated());
    }

    #[test]
    fn negative_timestamps_convert() {
        let frame = RawFrame {
            index: 1,
            ts_ns: -1_500_000_000,
            wire_len: 0,
            link_type: LinkType::RAW,
            interface: 0,
            data: &[],
        };
        assert_eq!(frame.timestamp(), -1.5);
        assert!(!frame.is_truncated());
    }

    #[test]
    fn unknown_magic_is_an_error() {
        let err = CaptureReader::from_reader(&b"GIF89a\0\0"[..], "x.gif").unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::UnknownFormat { .. }));
        assert_eq!(err.offset(), 0);
        assert!(err.to_string().contains("x.gif"));
    }

    #[test]
    fn empty_input_is_truncated() {
        let err = CaptureReader::from_reader(&b""[..], "empty").unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Truncated { needed: 4, .. }));
    }

    #[test]
    fn skip_past_end_is_truncation() {
        let mut s = Source {
            inner: &b"abc"[..],
            offset: 0,
            len: None,
        };
        assert!(matches!(
            s.skip(5),
            Err(ErrorKind::Truncated {
                needed: 5,
                available: 3
            })
        ));
        let mut known = Source {
            inner: &b"abc"[..],
            offset: 0,
            len: Some(3),
        };
        assert!(known.ensure(4).is_err());
        assert!(known.skip(2).is_ok());
        assert_eq!(known.remaining(), Some(1));
    }

    #[test]
    fn converts_to_library_error() {
        let err = CaptureError {
            kind: ErrorKind::RecordTooLong {
                len: 1 << 30,
                limit: u64::from(MAX_RECORD),
            },
            path: "a.pcap".into(),
            record: 7,
            offset: 1234,
        };
        assert!(err.is_fatal());
        let lib: crate::Error = err.into();
        let text = lib.to_string();
        assert!(
            text.contains("a.pcap:7") && text.contains("byte 1234"),
            "{text}"
        );
    }

    #[test]
    fn packet_source_counts_skips_and_keeps_damage() {
        use crate::ingest::packets::pcap::PcapWriter;
        let mut w = PcapWriter::new(Vec::new(), LinkType::RAW, 65535, false).unwrap();
        let ip = [
            0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        w.write_packet(1_000, 20, &ip).unwrap();
        w.write_packet(2_000, 20, &[0x45, 0]).unwrap();
        w.write_packet(3_000, 20, &ip).unwrap();
        let mut bytes = w.finish().unwrap();
        // Record 2: captured length 2 above an original length of 1.
        let rec2 = 24 + 16 + 20;
        bytes[rec2 + 12..rec2 + 16].copy_from_slice(&1u32.to_le_bytes());
        // Record 3 cut short.
        bytes.truncate(bytes.len() - 5);
        let reader = CaptureReader::from_reader(&bytes[..], "t.pcap").unwrap();
        let mut source = PacketSource::new(reader);
        let metas: Vec<_> = source.by_ref().collect();
        assert_eq!(metas.len(), 1);
        assert_eq!(metas[0].index, 1);
        assert_eq!(source.skipped(), 1);
        assert_eq!(source.problems().len(), 1);
        assert_eq!(source.stats().frames(), 1);
        assert_eq!(source.damage().map(|d| d.record()), Some(3));
        assert_eq!(source.reader().records(), 3);
        assert!(source.next_packet().is_none());
    }
}
