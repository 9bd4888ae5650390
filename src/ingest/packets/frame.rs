//! What the capture formats share: link-layer types, the raw frame a reader
//! returns, reading errors and where they are, and the byte source that
//! checks a declared length before any buffer grows.

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The largest record accepted: a declared length above it is corruption,
/// never a reason to allocate (Wireshark uses the same 256 KiB bound).
pub const MAX_RECORD: u32 = 256 * 1024;

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

/// Sees every frame a source reads, with its decoded packet: how packet
/// dumps get the raw bytes that the features never keep.
pub trait FrameTap: Send + fmt::Debug {
    /// Called once per frame, right after it is decoded.
    fn frame(&mut self, packet: &super::PacketMeta, raw: &RawFrame<'_>);
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
    pub(crate) kind: ErrorKind,
    pub(crate) path: PathBuf,
    pub(crate) record: u64,
    pub(crate) offset: u64,
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
    /// has been skipped and [`CaptureReader::next_packet`](super::capture::CaptureReader::next_packet) goes on; after a
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
    pub(crate) inner: R,
    pub(crate) offset: u64,
    pub(crate) len: Option<u64>,
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
