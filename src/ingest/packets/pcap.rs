//! Classic pcap: the file header, record headers, and a writer.
//!
//! Layout (all fields in the writer's byte order, told by the magic):
//! file header of 24 bytes (magic, version 2.4, reserved, reserved, snaplen,
//! link type), then records of a 16-byte header (seconds, micro- or
//! nanoseconds, captured length, original length) and the captured bytes.

use std::io::{self, Write};

use super::frame::{grow, ErrorKind, LinkType, Located, Record, Source, MAX_RECORD};

/// Magic number of microsecond files, as written by the file's host.
pub const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// Magic number of nanosecond files.
pub const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// Length of the file header.
pub const FILE_HEADER_LEN: usize = 24;
/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = 16;

mod field {
    // File header.
    pub(super) const SNAPLEN: usize = 16;
    pub(super) const LINKTYPE: usize = 20;
    // Record header.
    pub(super) const TS_SEC: usize = 0;
    pub(super) const TS_FRAC: usize = 4;
    pub(super) const CAP_LEN: usize = 8;
    pub(super) const WIRE_LEN: usize = 12;
}

/// Byte order and precision, from the magic number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Magic {
    /// Fields are big-endian.
    pub big_endian: bool,
    /// The fraction counts nanoseconds (else microseconds).
    pub nanos: bool,
}

impl Magic {
    /// Recognises the four magic bytes in either byte order.
    pub fn from_bytes(b: [u8; 4]) -> Option<Magic> {
        let (le, be) = (u32::from_le_bytes(b), u32::from_be_bytes(b));
        let nanos = |m| m == MAGIC_NANOS;
        if le == MAGIC_MICROS || le == MAGIC_NANOS {
            Some(Magic {
                big_endian: false,
                nanos: nanos(le),
            })
        } else if be == MAGIC_MICROS || be == MAGIC_NANOS {
            Some(Magic {
                big_endian: true,
                nanos: nanos(be),
            })
        } else {
            None
        }
    }

    fn u32_at(self, b: &[u8], at: usize) -> u32 {
        let raw = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.big_endian {
            u32::from_be_bytes(raw)
        } else {
            u32::from_le_bytes(raw)
        }
    }
}

/// The file header: what every record is read with.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    /// Byte order and precision.
    pub magic: Magic,
    /// Snap length (0 when the writer left it unset).
    pub snaplen: u32,
    /// Link type of every record.
    pub link_type: LinkType,
}

impl Header {
    /// Reads the rest of the file header after its magic.
    pub(crate) fn read<R: io::Read>(
        source: &mut Source<R>,
        magic: Magic,
    ) -> Result<Self, ErrorKind> {
        let mut b = [0u8; FILE_HEADER_LEN];
        source.read_exact(&mut b[4..])?;
        // The upper bits of the link-type field carry FCS information.
        let link = magic.u32_at(&b, field::LINKTYPE) & 0xffff;
        Ok(Header {
            magic,
            snaplen: magic.u32_at(&b, field::SNAPLEN),
            link_type: LinkType(link as u16),
        })
    }

    /// Reads the next record into `buf`.
    pub(crate) fn next_record<R: io::Read>(
        &self,
        source: &mut Source<R>,
        buf: &mut Vec<u8>,
    ) -> Result<Option<Record>, Located> {
        let at = source.offset();
        let mut h = [0u8; RECORD_HEADER_LEN];
        match source.fill(&mut h) {
            Ok(0) => return Ok(None),
            Ok(n) if n < RECORD_HEADER_LEN => {
                let kind = ErrorKind::Truncated {
                    needed: RECORD_HEADER_LEN as u64,
                    available: n as u64,
                };
                return Err((kind, at));
            }
            Ok(_) => {}
            Err(kind) => return Err((kind, at)),
        }
        let m = self.magic;
        let cap_len = m.u32_at(&h, field::CAP_LEN);
        let wire_len = m.u32_at(&h, field::WIRE_LEN);
        let limit = if self.snaplen == 0 {
            MAX_RECORD
        } else {
            self.snaplen.min(MAX_RECORD)
        };
        if cap_len > limit {
            let kind = ErrorKind::RecordTooLong {
                len: u64::from(cap_len),
                limit: u64::from(limit),
            };
            return Err((kind, at));
        }
        source.ensure(u64::from(cap_len)).map_err(|k| (k, at))?;
        let data = grow(buf, cap_len as usize);
        source.read_exact(data).map_err(|k| (k, at))?;
        if cap_len > wire_len {
            return Err((ErrorKind::CapLenExceedsWireLen { cap_len, wire_len }, at));
        }
        let secs = i64::from(m.u32_at(&h, field::TS_SEC));
        let frac = i64::from(m.u32_at(&h, field::TS_FRAC));
        let frac_ns = if m.nanos { frac } else { frac * 1_000 };
        Ok(Some(Record {
            ts_ns: secs * 1_000_000_000 + frac_ns,
            wire_len,
            link_type: self.link_type,
            interface: 0,
            start: 0,
            end: cap_len as usize,
        }))
    }
}

/// Writes a classic little-endian pcap file.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    nanos: bool,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header: link type, snap length and precision
    /// (nanosecond magic when `nanos`, else microsecond).
    pub fn new(mut out: W, link_type: LinkType, snaplen: u32, nanos: bool) -> io::Result<Self> {
        let magic = if nanos { MAGIC_NANOS } else { MAGIC_MICROS };
        let mut h = [0u8; FILE_HEADER_LEN];
        h[0..4].copy_from_slice(&magic.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        h[16..20].copy_from_slice(&snaplen.to_le_bytes());
        h[20..24].copy_from_slice(&u32::from(link_type.0).to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter {
            out,
            nanos,
            snaplen,
        })
    }

    /// Writes one record. `data` longer than the snap length is cut to it;
    /// `wire_len` below the captured length is raised to it.
    ///
    /// # Errors
    /// `InvalidInput` when the time does not fit pcap's unsigned 32-bit
    /// seconds (before 1970 or after 2106).
    pub fn write_packet(&mut self, ts_ns: i64, wire_len: u32, data: &[u8]) -> io::Result<()> {
        let secs = ts_ns.div_euclid(1_000_000_000);
        let nanos = ts_ns.rem_euclid(1_000_000_000);
        let secs = u32::try_from(secs).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("timestamp {ts_ns} ns does not fit a pcap record"),
            )
        })?;
        let frac = if self.nanos { nanos } else { nanos / 1_000 } as u32;
        let cap = data.len().min(self.snaplen as usize);
        let cap_len = cap as u32;
        let mut h = [0u8; RECORD_HEADER_LEN];
        h[0..4].copy_from_slice(&secs.to_le_bytes());
        h[4..8].copy_from_slice(&frac.to_le_bytes());
        h[8..12].copy_from_slice(&cap_len.to_le_bytes());
        h[12..16].copy_from_slice(&wire_len.max(cap_len).to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&data[..cap])
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::packets::capture::CaptureReader;

    /// A file header and records, in the byte order and precision asked.
    fn file(big_endian: bool, nanos: bool, records: &[(u32, u32, u32, u32, &[u8])]) -> Vec<u8> {
        let w = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let w16 = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut b = Vec::new();
        b.extend_from_slice(&w(if nanos { MAGIC_NANOS } else { MAGIC_MICROS }));
        b.extend_from_slice(&w16(2));
        b.extend_from_slice(&w16(4));
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&w(65535));
        b.extend_from_slice(&w(1));
        for &(sec, frac, cap, wire, data) in records {
            for v in [sec, frac, cap, wire] {
                b.extend_from_slice(&w(v));
            }
            b.extend_from_slice(data);
        }
        b
    }

    /// Frame number, time, wire length, bytes.
    type Frame = (u64, i64, u32, Vec<u8>);

    fn read_all(bytes: &[u8]) -> (Vec<Frame>, Option<CaptureError>) {
        let mut r = CaptureReader::from_reader(bytes, "t.pcap").unwrap();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            match r.next_packet(&mut buf) {
                Ok(Some(f)) => out.push((f.index, f.ts_ns, f.wire_len, f.data.to_vec())),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    use crate::ingest::packets::capture::CaptureError;

    #[test]
    fn reads_each_byte_order_and_precision() {
        for big_endian in [false, true] {
            for nanos in [false, true] {
                let b = file(
                    big_endian,
                    nanos,
                    &[(10, 5, 3, 60, b"abc"), (11, 0, 1, 1, b"d")],
                );
                let (frames, err) = read_all(&b);
                assert!(err.is_none(), "{big_endian} {nanos}: {err:?}");
                let frac = if nanos { 5 } else { 5_000 };
                assert_eq!(frames[0], (1, 10_000_000_000 + frac, 60, b"abc".to_vec()));
                assert_eq!(frames[1], (2, 11_000_000_000, 1, b"d".to_vec()));
                let r = CaptureReader::from_reader(&b[..], "t.pcap").unwrap();
                assert_eq!(r.link_type(), Some(LinkType::ETHERNET));
                assert_eq!(r.is_nanosecond(), nanos);
            }
        }
    }

    #[test]
    fn reports_truncated_record_with_offset() {
        let b = file(false, false, &[(1, 0, 4, 4, b"abcd"), (2, 0, 4, 4, b"ef")]);
        let (frames, err) = read_all(&b);
        assert_eq!(frames.len(), 1);
        let err = err.unwrap();
        assert!(err.is_fatal());
        assert!(matches!(err.kind(), ErrorKind::Truncated { .. }));
        assert_eq!(err.record(), 2);
        assert_eq!(
            err.offset(),
            (FILE_HEADER_LEN + RECORD_HEADER_LEN + 4) as u64
        );
    }

    #[test]
    fn reports_truncated_record_header() {
        let mut b = file(false, false, &[(1, 0, 1, 1, b"a")]);
        b.extend_from_slice(&[1, 2, 3]);
        let (frames, err) = read_all(&b);
        assert_eq!(frames.len(), 1);
        assert!(matches!(
            err.unwrap().kind(),
            ErrorKind::Truncated {
                needed: 16,
                available: 3
            }
        ));
    }

    #[test]
    fn rejects_absurd_length_without_allocating() {
        let b = file(false, false, &[(1, 0, 0x7fff_ffff, 0x7fff_ffff, b"")]);
        let (frames, err) = read_all(&b);
        assert!(frames.is_empty());
        assert!(matches!(
            err.unwrap().kind(),
            ErrorKind::RecordTooLong { limit: 65535, .. }
        ));
    }

    #[test]
    fn caplen_above_wire_len_skips_the_record_only() {
        let b = file(true, false, &[(1, 0, 4, 2, b"abcd"), (2, 0, 1, 1, b"e")]);
        let mut r = CaptureReader::from_reader(&b[..], "t.pcap").unwrap();
        let mut buf = Vec::new();
        let err = r.next_packet(&mut buf).unwrap_err();
        assert!(!err.is_fatal());
        assert_eq!(err.record(), 1);
        let next = r.next_packet(&mut buf).unwrap().unwrap();
        assert_eq!((next.index, next.data), (2, &b"e"[..]));
        assert!(r.next_packet(&mut buf).unwrap().is_none());
    }

    #[test]
    fn snap_cut_frame_keeps_wire_len() {
        let b = file(false, true, &[(1, 0, 3, 1500, b"abc")]);
        let (frames, _) = read_all(&b);
        assert_eq!(frames[0].2, 1500);
        assert_eq!(frames[0].3.len(), 3);
    }

    #[test]
    fn writer_round_trips() {
        for nanos in [false, true] {
            let mut w = PcapWriter::new(Vec::new(), LinkType::ETHERNET, 4, nanos).unwrap();
            w.write_packet(1_600_000_000_123_456_789, 100, b"abcdef")
                .unwrap();
            w.write_packet(1_600_000_001_000_000_000, 0, b"xy").unwrap();
            let bytes = w.finish().unwrap();
            let (frames, err) = read_all(&bytes);
            assert!(err.is_none());
            let ts = if nanos {
                1_600_000_000_123_456_789
            } else {
                1_600_000_000_123_456_000
            };
            assert_eq!(frames[0], (1, ts, 100, b"abcd".to_vec()));
            assert_eq!(frames[1], (2, 1_600_000_001_000_000_000, 2, b"xy".to_vec()));
        }
    }

    #[test]
    fn writer_rejects_times_before_1970() {
        let mut w = PcapWriter::new(Vec::new(), LinkType::ETHERNET, 65535, false).unwrap();
        assert!(w.write_packet(-1, 1, b"a").is_err());
    }

    #[test]
    fn recognises_magic() {
        assert_eq!(
            Magic::from_bytes([0xd4, 0xc3, 0xb2, 0xa1]),
            Some(Magic {
                big_endian: false,
                nanos: false
            })
        );
        assert_eq!(
            Magic::from_bytes([0xa1, 0xb2, 0x3c, 0x4d]),
            Some(Magic {
                big_endian: true,
                nanos: true
            })
        );
        assert_eq!(Magic::from_bytes([0, 0, 0, 0]), None);
    }
}
