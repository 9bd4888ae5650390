//! Data templates compiled to byte offsets, so that NetFlow v9 and IPFIX
//! data records are read in place: `netflow_parser` turns every field of
//! every record into an owned value (188 ns a record in `cargo bench
//! --bench flows`), where floodwatch reads a dozen of them.
//!
//! A plan covers only fields whose width it reads exactly as the crate
//! does; a template with any other width of a field floodwatch uses gets
//! no plan, and its data goes through the crate.

use super::Acc;

/// What a field of a record is to floodwatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Src,
    Dst,
    SrcPort,
    DstPort,
    Protocol,
    Flags,
    Packets,
    /// Packets when no earlier field gave them (v9 OUT_PKTS, IPFIX totals).
    PacketsElse,
    Bytes,
    BytesElse,
    /// Exporter uptime (ms) of the first (0) or last (1) packet.
    Up(usize),
    /// Unix seconds of the first or last packet.
    Seconds(usize),
    /// Unix ms of the first or last packet.
    Millis(usize),
    /// NTP time (micro- or nanoseconds fields) of the first or last packet.
    Ntp(usize),
    InitMillis,
    Interval,
    Space,
}

impl Slot {
    /// The meaning of field `id` in NetFlow v9 (`ipfix` false) or IPFIX.
    fn of(id: u16, ipfix: bool) -> Option<Slot> {
        Some(match (id, ipfix) {
            (8 | 27, _) => Slot::Src,
            (12 | 28, _) => Slot::Dst,
            (7, _) => Slot::SrcPort,
            (11, _) => Slot::DstPort,
            (4, _) => Slot::Protocol,
            (6, _) => Slot::Flags,
            (2, _) => Slot::Packets,
            (1, _) => Slot::Bytes,
            (24, false) | (86, true) => Slot::PacketsElse,
            (23, false) | (85, true) => Slot::BytesElse,
            (22, _) => Slot::Up(0),
            (21, _) => Slot::Up(1),
            (150, _) => Slot::Seconds(0),
            (151, _) => Slot::Seconds(1),
            (152, _) => Slot::Millis(0),
            (153, _) => Slot::Millis(1),
            (154 | 156, _) => Slot::Ntp(0),
            (155 | 157, _) => Slot::Ntp(1),
            (160, true) => Slot::InitMillis,
            (34 | 50, _) | (305, true) => Slot::Interval,
            (306, true) => Slot::Space,
            _ => return None,
        })
    }

    /// Whether a field of `len` bytes is read as the crate reads it.
    fn fits(self, id: u16, len: u16) -> bool {
        match self {
            Slot::Src | Slot::Dst => len == if matches!(id, 8 | 12) { 4 } else { 16 },
            Slot::Protocol => len == 1,
            Slot::Flags => matches!(len, 1 | 2),
            Slot::Seconds(_) | Slot::Up(_) => len == 4,
            Slot::Millis(_) | Slot::Ntp(_) | Slot::InitMillis => len == 8,
            _ => matches!(len, 1..=4 | 8),
        }
    }
}

/// One field floodwatch reads: where it lies in the record.
#[derive(Debug, Clone, Copy)]
struct Op {
    at: u16,
    len: u16,
    slot: Slot,
}

/// A data template, compiled.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    /// Bytes a record takes.
    len: usize,
    /// Fields a record has (the crate's decoding budget counts them all).
    values: usize,
    ops: Vec<Op>,
}

impl Plan {
    /// The plan of a template of `(field id, length, enterprise)` fields,
    /// if every field floodwatch uses has a width it reads in place.
    pub(super) fn compile(
        fields: impl IntoIterator<Item = (u16, u16, bool)>,
        ipfix: bool,
    ) -> Option<Plan> {
        let (mut at, mut values, mut ops) = (0usize, 0, Vec::new());
        for (id, len, enterprise) in fields {
            values += 1;
            if len == 0 || len == u16::MAX {
                return None;
            }
            if let Some(slot) = Slot::of(id, ipfix).filter(|_| !enterprise) {
                if !slot.fits(id, len) {
                    return None;
                }
                let at = u16::try_from(at).ok()?;
                ops.push(Op { at, len, slot });
            }
            at += usize::from(len);
        }
        (at > 0).then_some(Plan {
            len: at,
            values,
            ops,
        })
    }

    /// Bytes a record takes.
    pub(super) fn record_len(&self) -> usize {
        self.len
    }

    /// Fields a record has, read or not.
    pub(super) fn values(&self) -> usize {
        self.values
    }

    /// The fields of `record` (exactly [`record_len`](Self::record_len)
    /// bytes).
    pub(super) fn read(&self, record: &[u8]) -> Acc {
        let mut acc = Acc::default();
        for op in &self.ops {
            let at = usize::from(op.at);
            let b = &record[at..at + usize::from(op.len)];
            acc.set(op.slot, b);
        }
        acc
    }
}

/// The big-endian unsigned number in `b` (at most 8 bytes).
fn number(b: &[u8]) -> u64 {
    b.iter().fold(0, |n, &x| n << 8 | u64::from(x))
}

/// Unix ms of an NTP timestamp (seconds, then a 32-bit fraction).
fn ntp(b: &[u8]) -> u64 {
    let v = number(b);
    let ms = (v >> 32) * 1000 + (((v & 0xffff_ffff) * 1000) >> 32);
    ms.saturating_sub(super::NTP_UNIX_MS)
}

fn address(b: &[u8]) -> Option<std::net::IpAddr> {
    match b.len() {
        4 => Some(<[u8; 4]>::try_from(b).ok()?.into()),
        _ => Some(<[u8; 16]>::try_from(b).ok()?.into()),
    }
}

impl Acc {
    fn set(&mut self, slot: Slot, b: &[u8]) {
        match slot {
            Slot::Src => self.src = address(b),
            Slot::Dst => self.dst = address(b),
            Slot::SrcPort => self.src_port = number(b) as u16,
            Slot::DstPort => self.dst_port = number(b) as u16,
            Slot::Protocol => self.protocol = b[0],
            Slot::Flags => self.flags = number(b) as u8,
            Slot::Packets => self.packets = Some(number(b)),
            Slot::PacketsElse => self.packets = self.packets.or(Some(number(b))),
            Slot::Bytes => self.bytes = Some(number(b)),
            Slot::BytesElse => self.bytes = self.bytes.or(Some(number(b))),
            Slot::Up(i) => self.up[i] = Some(number(b)),
            Slot::Seconds(i) => self.abs[i] = Some(number(b) * 1000),
            Slot::Millis(i) => self.abs[i] = Some(number(b)),
            Slot::Ntp(i) => self.abs[i] = Some(ntp(b)),
            Slot::InitMillis => self.init_ms = Some(number(b)),
            Slot::Interval => self.interval = Some(number(b)),
            Slot::Space => self.space = Some(number(b)),
        }
    }
}
