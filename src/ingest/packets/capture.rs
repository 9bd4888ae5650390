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

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::frame::Source;
pub use super::frame::{CaptureError, ErrorKind, FrameTap, LinkType, RawFrame, MAX_RECORD};
use super::{pcap, pcapng};

/// Read buffer of [`CaptureReader::open`]: large reads keep the system-call
/// count low at millions of small packets per second.
const READ_BUFFER: usize = 1 << 20;

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
    tap: Option<Box<dyn FrameTap>>,
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
            tap: None,
        }
    }

    /// Shows every frame to `tap` as it is decoded.
    pub fn tap(mut self, tap: Box<dyn FrameTap>) -> Self {
        self.tap = Some(tap);
        self
    }

    /// The next decoded packet, or `None` at the end of the capture or at
    /// damage that ends it.
    pub fn next_packet(&mut self) -> Option<super::PacketMeta> {
        loop {
            match self.reader.next_packet(&mut self.buf) {
                Ok(Some(raw)) => {
                    let (meta, bad) = super::decode::decode_checked(&raw);
                    self.stats.record(bad);
                    if let Some(tap) = &mut self.tap {
                        tap.frame(&meta, &raw);
                    }
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
