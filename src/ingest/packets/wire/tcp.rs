//! TCP headers.

use super::{be16, be32, Error, Result};

mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const SEQ: usize = 4;
    pub(super) const ACK: usize = 8;
    pub(super) const DATA_OFF: usize = 12;
    pub(super) const FLAGS: usize = 13;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Bytes that hold the two ports, enough to use a header cut short.
pub const PORTS_LEN: usize = 4;
/// Bytes up to and including the flags.
pub const FLAGS_LEN: usize = field::FLAGS + 1;

/// TCP flag bits.
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// ECE.
    pub const ECE: u8 = 0x40;
    /// CWR.
    pub const CWR: u8 = 0x80;
}

/// A view of a TCP header.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer`, checking that the whole header is present and that
    /// the data offset is at least 5 words and within the buffer.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error);
        }
        let p = Packet { buffer };
        let hl = p.header_len();
        if hl < HEADER_LEN || hl > p.buffer.as_ref().len() {
            return Err(Error);
        }
        Ok(p)
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Sequence number.
    pub fn seq(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ)
    }

    /// Acknowledgement number.
    pub fn ack(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK)
    }

    /// Header length in bytes (data offset * 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The flags byte (FIN=0x01 ... CWR=0x80).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The segment's data.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

/// The ports (and the flags when present) of a header too short or too
/// malformed for [`Packet::new_checked`]: what a frame cut by the snap length
/// still tells.
pub fn partial(b: &[u8]) -> Option<(u16, u16, u8)> {
    if b.len() < PORTS_LEN {
        return None;
    }
    let flags = if b.len() >= FLAGS_LEN {
        b[field::FLAGS]
    } else {
        0
    };
    Some((be16(b, field::SRC_PORT), be16(b, field::DST_PORT), flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    // 21074 -> 80, SYN, data offset 6 (one 4-byte option), one data byte.
    static SEGMENT: [u8; 25] = [
        0x52, 0x52, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0x72,
        0x10, 0x00, 0x00, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x99,
    ];

    #[test]
    fn parses_header() {
        let p = Packet::new_checked(&SEGMENT[..]).unwrap();
        assert_eq!(p.src_port(), 21074);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq(), 1);
        assert_eq!(p.ack(), 0);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.flags(), flags::SYN);
        assert_eq!(p.payload(), &[0x99]);
    }

    #[test]
    fn rejects_truncated() {
        assert!(Packet::new_checked(&SEGMENT[..19]).is_err());
    }

    #[test]
    fn rejects_malformed_data_offset() {
        let mut b = SEGMENT;
        b[12] = 0x40; // 16 bytes < minimum
        assert!(Packet::new_checked(&b[..]).is_err());
        b[12] = 0xf0; // 60 bytes > buffer
        assert!(Packet::new_checked(&b[..]).is_err());
    }

    #[test]
    fn partial_header_still_gives_ports() {
        assert_eq!(partial(&SEGMENT[..4]), Some((21074, 80, 0)));
        assert_eq!(partial(&SEGMENT[..14]), Some((21074, 80, flags::SYN)));
        assert_eq!(partial(&SEGMENT[..3]), None);
    }
}
