//! pcapng: sections, interfaces with their own link type and timestamp
//! resolution, and the three packet blocks (enhanced, simple, obsolete).
//!
//! Every block is `type, total length, body, total length` (32-bit fields in
//! the section's byte order, given by the section header's byte-order
//! magic). Blocks other than those are skipped without buffering them.

use std::io::Read;

use super::frame::{grow, ErrorKind, LinkType, Located, Record, Source, MAX_RECORD};

/// Section header block type (a palindrome: the same in both byte orders).
pub(crate) const SHB_TYPE: u32 = 0x0a0d_0d0a;
/// Interface description block.
pub(crate) const IDB_TYPE: u32 = 1;
/// Obsolete packet block.
pub(crate) const OPB_TYPE: u32 = 2;
/// Simple packet block.
pub(crate) const SPB_TYPE: u32 = 3;
/// Enhanced packet block.
pub(crate) const EPB_TYPE: u32 = 6;
/// The byte-order magic of a section header.
pub(crate) const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;

/// Packet blocks may carry options after the data; beyond this they are
/// corrupt, not large.
const MAX_PACKET_BLOCK: u32 = MAX_RECORD + 64 * 1024;
/// Interface blocks hold a few options; a bound keeps a corrupt one small.
const MAX_IDB: u32 = 64 * 1024;
/// More interfaces than this in one section is corruption.
const MAX_INTERFACES: usize = 4096;

const OPT_END: u16 = 0;
const OPT_TSRESOL: u16 = 9;
const OPT_TSOFFSET: u16 = 14;

/// One interface of the current section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Interface {
    link_type: LinkType,
    snaplen: u32,
    /// Timestamp units per second (10^n or 2^n).
    units_per_sec: u128,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_s: i64,
}

impl Interface {
    fn ts_ns(&self, ticks: u64) -> i64 {
        let ns: u128 = match self.units_per_sec {
            1_000_000 => u128::from(ticks) * 1_000,
            1_000_000_000 => u128::from(ticks),
            units => u128::from(ticks) * 1_000_000_000 / units,
        };
        let total = ns as i128 + i128::from(self.offset_s) * 1_000_000_000;
        total.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

/// Reading state: the current section's byte order and interfaces.
#[derive(Debug)]
pub(crate) struct Reader {
    big_endian: bool,
    interfaces: Vec<Interface>,
    first_link_type: Option<LinkType>,
    /// Time of the last packet, for simple packet blocks, which have none.
    last_ts_ns: i64,
    scratch: Vec<u8>,
}

impl Reader {
    /// Reads the first section header, whose type the caller consumed.
    pub(crate) fn start<R: Read>(source: &mut Source<R>) -> Result<Self, ErrorKind> {
        let mut r = Reader {
            big_endian: false,
            interfaces: Vec::new(),
            first_link_type: None,
            last_ts_ns: 0,
            scratch: Vec::new(),
        };
        r.section(source)?;
        Ok(r)
    }

    /// Link type of the first interface seen.
    pub(crate) fn first_link_type(&self) -> Option<LinkType> {
        self.first_link_type
    }

    fn u32_at(&self, b: &[u8], at: usize) -> u32 {
        let raw = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.big_endian {
            u32::from_be_bytes(raw)
        } else {
            u32::from_le_bytes(raw)
        }
    }

    fn u16_at(&self, b: &[u8], at: usize) -> u16 {
        let raw = [b[at], b[at + 1]];
        if self.big_endian {
            u16::from_be_bytes(raw)
        } else {
            u16::from_le_bytes(raw)
        }
    }

    /// Reads a section header after its type: byte order, version, and
    /// skips its options. A new section forgets the interfaces.
    fn section<R: Read>(&mut self, source: &mut Source<R>) -> Result<(), ErrorKind> {
        let mut b = [0u8; 12]; // length, byte-order magic, major, minor
        source.read_exact(&mut b)?;
        self.big_endian = match u32::from_le_bytes([b[4], b[5], b[6], b[7]]) {
            BYTE_ORDER_MAGIC => false,
            m if m.swap_bytes() == BYTE_ORDER_MAGIC => true,
            _ => return Err(ErrorKind::BadHeader("section byte-order magic")),
        };
        let len = self.u32_at(&b, 0);
        if len < 28 || !len.is_multiple_of(4) {
            return Err(ErrorKind::BadBlock {
                block_type: SHB_TYPE,
                len,
            });
        }
        if self.u16_at(&b, 8) != 1 {
            return Err(ErrorKind::BadHeader("section major version is not 1"));
        }
        // Read so far: type, length, magic, version; left: section length,
        // options, trailer.
        source.skip(u64::from(len) - 20)?;
        self.trailer(source, SHB_TYPE, len)?;
        self.interfaces.clear();
        Ok(())
    }

    fn trailer<R: Read>(
        &self,
        source: &mut Source<R>,
        block_type: u32,
        len: u32,
    ) -> Result<(), ErrorKind> {
        let mut t = [0u8; 4];
        source.read_exact(&mut t)?;
        if self.u32_at(&t, 0) != len {
            return Err(ErrorKind::BadBlock { block_type, len });
        }
        Ok(())
    }

    /// Reads blocks up to the next packet, whose body lands in `buf`.
    pub(crate) fn next_record<R: Read>(
        &mut self,
        source: &mut Source<R>,
        buf: &mut Vec<u8>,
    ) -> Result<Option<Record>, Located> {
        loop {
            let at = source.offset();
            let mut head = [0u8; 8];
            let got = source.fill(&mut head[..4]).map_err(|k| (k, at))?;
            if got == 0 {
                return Ok(None);
            }
            let short = ErrorKind::Truncated {
                needed: 8,
                available: got as u64,
            };
            if got < 4 {
                return Err((short, at));
            }
            let block_type = self.u32_at(&head, 0);
            if block_type == SHB_TYPE {
                self.section(source).map_err(|k| (k, at))?;
                continue;
            }
            source.read_exact(&mut head[4..]).map_err(|k| (k, at))?;
            let len = self.u32_at(&head, 4);
            if len < 12 || !len.is_multiple_of(4) {
                return Err((ErrorKind::BadBlock { block_type, len }, at));
            }
            let body = u64::from(len) - 8; // body and trailer
            source.ensure(body).map_err(|k| (k, at))?;
            match block_type {
                EPB_TYPE | SPB_TYPE | OPB_TYPE => {
                    if len > MAX_PACKET_BLOCK {
                        let kind = ErrorKind::RecordTooLong {
                            len: u64::from(len),
                            limit: u64::from(MAX_PACKET_BLOCK),
                        };
                        return Err((kind, at));
                    }
                    let data = grow(buf, body as usize);
                    source.read_exact(data).map_err(|k| (k, at))?;
                    return self
                        .packet(block_type, len, data)
                        .map(Some)
                        .map_err(|k| (k, at));
                }
                IDB_TYPE => {
                    if len > MAX_IDB {
                        return Err((ErrorKind::BadBlock { block_type, len }, at));
                    }
                    let mut scratch = std::mem::take(&mut self.scratch);
                    let data = grow(&mut scratch, body as usize);
                    let result = source
                        .read_exact(data)
                        .and_then(|()| self.interface(len, data));
                    self.scratch = scratch;
                    result.map_err(|k| (k, at))?;
                }
                _ => {
                    source.skip(body - 4).map_err(|k| (k, at))?;
                    self.trailer(source, block_type, len).map_err(|k| (k, at))?;
                }
            }
        }
    }

    /// Parses an interface description block body (trailer included).
    fn interface(&mut self, len: u32, b: &[u8]) -> Result<(), ErrorKind> {
        let bad = ErrorKind::BadBlock {
            block_type: IDB_TYPE,
            len,
        };
        let end = b.len() - 4;
        if end < 8 || self.u32_at(b, end) != len {
            return Err(bad);
        }
        if self.interfaces.len() >= MAX_INTERFACES {
            return Err(ErrorKind::BadHeader("too many interfaces"));
        }
        let mut iface = Interface {
            link_type: LinkType(self.u16_at(b, 0)),
            snaplen: self.u32_at(b, 4),
            units_per_sec: 1_000_000,
            offset_s: 0,
        };
        let mut at = 8;
        while at + 4 <= end {
            let code = self.u16_at(b, at);
            let olen = usize::from(self.u16_at(b, at + 2));
            let value = b
                .get(at + 4..at + 4 + olen)
                .filter(|_| at + 4 + olen <= end);
            let Some(value) = value else { return Err(bad) };
            match (code, value) {
                (OPT_END, _) => break,
                (OPT_TSRESOL, &[r]) => iface.units_per_sec = resolution(r)?,
                (OPT_TSOFFSET, v) if v.len() == 8 => {
                    // One 64-bit integer in the section's byte order.
                    let first = u64::from(self.u32_at(v, 0));
                    let second = u64::from(self.u32_at(v, 4));
                    let raw = if self.big_endian {
                        (first << 32) | second
                    } else {
                        (second << 32) | first
                    };
                    iface.offset_s = raw as i64;
                }
                _ => {}
            }
            at += 4 + olen.div_ceil(4) * 4;
        }
        self.first_link_type.get_or_insert(iface.link_type);
        self.interfaces.push(iface);
        Ok(())
    }

    /// Parses a packet block body (trailer included) held in `b`.
    fn packet(&mut self, block_type: u32, len: u32, b: &[u8]) -> Result<Record, ErrorKind> {
        let bad = ErrorKind::BadBlock { block_type, len };
        let end = b.len() - 4;
        if self.u32_at(b, end) != len {
            return Err(bad);
        }
        let (id, ts, cap_len, wire_len, start) = match block_type {
            SPB_TYPE => {
                if end < 4 {
                    return Err(bad);
                }
                let wire_len = self.u32_at(b, 0);
                let snap = self
                    .interfaces
                    .first()
                    .map_or(u32::MAX, |i| match i.snaplen {
                        0 => u32::MAX,
                        s => s,
                    });
                let cap = wire_len.min(snap).min((end - 4) as u32);
                (0, None, cap, wire_len, 4)
            }
            _ => {
                if end < 20 {
                    return Err(bad);
                }
                let id = if block_type == OPB_TYPE {
                    u32::from(self.u16_at(b, 0))
                } else {
                    self.u32_at(b, 0)
                };
                let ticks = (u64::from(self.u32_at(b, 4)) << 32) | u64::from(self.u32_at(b, 8));
                (id, Some(ticks), self.u32_at(b, 12), self.u32_at(b, 16), 20)
            }
        };
        if u64::from(cap_len) > (end - start) as u64 {
            return Err(bad);
        }
        let Some(iface) = self.interfaces.get(id as usize) else {
            return Err(ErrorKind::UnknownInterface { id });
        };
        if cap_len > wire_len {
            return Err(ErrorKind::CapLenExceedsWireLen { cap_len, wire_len });
        }
        let ts_ns = ts.map_or(self.last_ts_ns, |t| iface.ts_ns(t));
        self.last_ts_ns = ts_ns;
        Ok(Record {
            ts_ns,
            wire_len,
            link_type: iface.link_type,
            interface: id,
            start,
            end: start + cap_len as usize,
        })
    }
}

/// Units per second of an `if_tsresol` value: 10^n, or 2^n when the top
/// bit is set.
fn resolution(r: u8) -> Result<u128, ErrorKind> {
    let exp = u32::from(r & 0x7f);
    let units = if r & 0x80 == 0 {
        10u128.checked_pow(exp)
    } else {
        1u128.checked_shl(exp)
    };
    units.ok_or(ErrorKind::BadHeader("if_tsresol out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::packets::capture::{CaptureError, CaptureReader};

    /// Builds pcapng blocks in either byte order.
    struct Builder {
        be: bool,
        out: Vec<u8>,
    }

    impl Builder {
        fn new(be: bool) -> Self {
            let mut b = Builder {
                be,
                out: Vec::new(),
            };
            b.shb();
            b
        }
        fn u32(&self, v: u32) -> [u8; 4] {
            if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn u16(&self, v: u16) -> [u8; 2] {
            if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn block(&mut self, block_type: u32, body: &[u8]) {
            let padded = body.len().div_ceil(4) * 4;
            let len = (padded + 12) as u32;
            let (t, l) = (self.u32(block_type), self.u32(len));
            self.out.extend_from_slice(&t);
            self.out.extend_from_slice(&l);
            self.out.extend_from_slice(body);
            self.out.resize(self.out.len() + padded - body.len(), 0);
            self.out.extend_from_slice(&l);
        }
        fn shb(&mut self) {
            let mut body = Vec::new();
            body.extend_from_slice(&self.u32(BYTE_ORDER_MAGIC));
            body.extend_from_slice(&self.u16(1));
            body.extend_from_slice(&self.u16(0));
            body.extend_from_slice(&[0xff; 8]); // section length unknown
            self.block(SHB_TYPE, &body);
        }
        fn idb(&mut self, link: u16, tsresol: Option<u8>, tsoffset: Option<i64>) {
            let mut body = Vec::new();
            body.extend_from_slice(&self.u16(link));
            body.extend_from_slice(&[0, 0]);
            body.extend_from_slice(&self.u32(0));
            // An unknown option first: it must be skipped.
            body.extend_from_slice(&self.u16(2));
            body.extend_from_slice(&self.u16(3));
            body.extend_from_slice(b"eth\0");
            if let Some(r) = tsresol {
                body.extend_from_slice(&self.u16(OPT_TSRESOL));
                body.extend_from_slice(&self.u16(1));
                body.extend_from_slice(&[r, 0, 0, 0]);
            }
            if let Some(o) = tsoffset {
                body.extend_from_slice(&self.u16(OPT_TSOFFSET));
                body.extend_from_slice(&self.u16(8));
                let raw = o as u64;
                let full = if self.be {
                    raw.to_be_bytes()
                } else {
                    raw.to_le_bytes()
                };
                body.extend_from_slice(&full);
            }
            body.extend_from_slice(&[0; 4]); // opt_endofopt
            self.block(IDB_TYPE, &body);
        }
        fn epb(&mut self, iface: u32, ticks: u64, wire: u32, data: &[u8]) {
            let mut body = Vec::new();
            body.extend_from_slice(&self.u32(iface));
            body.extend_from_slice(&self.u32((ticks >> 32) as u32));
            body.extend_from_slice(&self.u32(ticks as u32));
            body.extend_from_slice(&self.u32(data.len() as u32));
            body.extend_from_slice(&self.u32(wire));
            body.extend_from_slice(data);
            self.block(EPB_TYPE, &body);
        }
        fn spb(&mut self, wire: u32, data: &[u8]) {
            let mut body = self.u32(wire).to_vec();
            body.extend_from_slice(data);
            self.block(SPB_TYPE, &body);
        }
    }

    type Frame = (u64, i64, u32, LinkType, u32, Vec<u8>);

    fn read_all(bytes: &[u8]) -> (Vec<Frame>, Vec<CaptureError>) {
        let mut r = CaptureReader::from_reader(bytes, "t.pcapng").unwrap();
        let mut buf = Vec::new();
        let (mut out, mut errs) = (Vec::new(), Vec::new());
        loop {
            match r.next_packet(&mut buf) {
                Ok(Some(f)) => out.push((
                    f.index,
                    f.ts_ns,
                    f.wire_len,
                    f.link_type,
                    f.interface,
                    f.data.to_vec(),
                )),
                Ok(None) => return (out, errs),
                Err(e) => errs.push(e),
            }
        }
    }

    #[test]
    fn two_interfaces_with_different_resolutions() {
        for be in [false, true] {
            let mut b = Builder::new(be);
            b.idb(1, None, None); // microseconds
            b.idb(101, Some(9), Some(100)); // nanoseconds, +100 s
            b.block(0x0bad, b"unknown block body"); // skipped
            b.epb(0, 1_500_000, 60, b"abcde");
            b.epb(1, 2_000_000_007, 40, b"xyz");
            let (frames, errs) = read_all(&b.out);
            assert!(errs.is_empty(), "{errs:?}");
            assert_eq!(
                frames[0],
                (
                    1,
                    1_500_000_000,
                    60,
                    LinkType::ETHERNET,
                    0,
                    b"abcde".to_vec()
                )
            );
            assert_eq!(
                frames[1],
                (2, 102_000_000_007, 40, LinkType::RAW, 1, b"xyz".to_vec())
            );
        }
    }

    #[test]
    fn power_of_two_resolution() {
        let mut b = Builder::new(false);
        b.idb(1, Some(0x80 | 10), None); // 1/1024 s
        b.epb(0, 1024 * 3 + 512, 1, b"a");
        let (frames, errs) = read_all(&b.out);
        assert!(errs.is_empty());
        assert_eq!(frames[0].1, 3_500_000_000);
    }

    #[test]
    fn simple_packet_block_takes_previous_time() {
        let mut b = Builder::new(false);
        b.idb(1, None, None);
        b.epb(0, 7_000_000, 3, b"abc");
        // Padding is indistinguishable from data: the original length says
        // where the frame ends.
        b.spb(10, b"0123456789");
        let (frames, errs) = read_all(&b.out);
        assert!(errs.is_empty());
        assert_eq!(
            frames[1],
            (
                2,
                7_000_000_000,
                10,
                LinkType::ETHERNET,
                0,
                b"0123456789".to_vec()
            )
        );
    }

    #[test]
    fn new_section_switches_byte_order() {
        let mut b = Builder::new(false);
        b.idb(1, None, None);
        b.epb(0, 1, 1, b"a");
        let mut second = Builder::new(true);
        second.idb(113, None, None);
        second.epb(0, 2, 1, b"b");
        b.out.extend_from_slice(&second.out);
        let (frames, errs) = read_all(&b.out);
        assert!(errs.is_empty());
        assert_eq!(frames[1].3, LinkType::LINUX_SLL);
        assert_eq!(frames[1].5, b"b");
    }

    #[test]
    fn packet_of_unknown_interface_is_skipped() {
        let mut b = Builder::new(false);
        b.idb(1, None, None);
        b.epb(3, 1, 1, b"a");
        b.epb(0, 1, 1, b"b");
        let (frames, errs) = read_all(&b.out);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].0, 2);
        assert!(matches!(
            errs[0].kind(),
            ErrorKind::UnknownInterface { id: 3 }
        ));
    }

    #[test]
    fn truncated_file_stops_at_the_damage() {
        let mut b = Builder::new(false);
        b.idb(1, None, None);
        b.epb(0, 1, 4, b"abcd");
        let good = b.out.len();
        b.epb(0, 2, 4, b"efgh");
        b.out.truncate(b.out.len() - 6);
        let (frames, errs) = read_all(&b.out);
        assert_eq!(frames.len(), 1);
        assert_eq!(errs.len(), 1);
        assert!(matches!(errs[0].kind(), ErrorKind::Truncated { .. }));
        assert_eq!(errs[0].offset(), good as u64);
    }

    #[test]
    fn bad_block_lengths_are_fatal() {
        let mut b = Builder::new(false);
        b.idb(1, None, None);
        let at = b.out.len();
        b.epb(0, 1, 4, b"abcd");
        let mut odd = b.out.clone();
        odd[at + 4] = 13; // not a multiple of 4
        let (_, errs) = read_all(&odd);
        assert!(matches!(
            errs[0].kind(),
            ErrorKind::BadBlock { len: 13, .. }
        ));
        let mut huge = b.out.clone();
        huge[at + 4..at + 8].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
        let (_, errs) = read_all(&huge);
        assert!(
            matches!(errs[0].kind(), ErrorKind::RecordTooLong { .. }),
            "{errs:?}"
        );
        let mut trailer = b.out.clone();
        let n = trailer.len();
        trailer[n - 4] = 0;
        let (_, errs) = read_all(&trailer);
        assert!(matches!(errs[0].kind(), ErrorKind::BadBlock { .. }));
    }

    #[test]
    fn caplen_beyond_block_is_bad() {
        let mut b = Builder::new(false);
        b.idb(1, None, None);
        let at = b.out.len();
        b.epb(0, 1, 4, b"abcd");
        b.out[at + 8 + 12] = 200;
        let (frames, errs) = read_all(&b.out);
        assert!(frames.is_empty());
        assert!(matches!(errs[0].kind(), ErrorKind::BadBlock { .. }));
    }

    #[test]
    fn bad_section_header() {
        let mut b = Builder::new(false);
        b.out[8] = 0; // byte-order magic
        let err = CaptureReader::from_reader(&b.out[..], "t").unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::BadHeader(_)));
    }

    #[test]
    fn resolutions() {
        assert_eq!(resolution(6).ok(), Some(1_000_000));
        assert_eq!(resolution(0x80 | 20).ok(), Some(1 << 20));
        assert!(resolution(100).is_err());
    }
}
