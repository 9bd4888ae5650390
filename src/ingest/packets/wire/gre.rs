//! GRE headers (RFC 2784 / 2890), enough to find the tunnelled packet.

use super::{be16, Error, Result};

mod field {
    pub(super) const FLAGS: usize = 0;
    pub(super) const PROTOCOL: usize = 2;
}

/// Length of the header without optional fields.
pub const HEADER_LEN: usize = 4;

/// Flag bits of the first 16 bits.
const CHECKSUM_PRESENT: u16 = 0x8000;
const ROUTING_PRESENT: u16 = 0x4000;
const KEY_PRESENT: u16 = 0x2000;
const SEQ_PRESENT: u16 = 0x1000;
const VERSION: u16 = 0x0007;

/// A view of a GRE header (version 0).
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer`, checking version 0, no source routing (obsolete) and
    /// that the optional fields the flags announce are present.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error);
        }
        let p = Packet { buffer };
        let flags = p.flags();
        if flags & VERSION != 0 || flags & ROUTING_PRESENT != 0 {
            return Err(Error);
        }
        if p.header_len() > p.buffer.as_ref().len() {
            return Err(Error);
        }
        Ok(p)
    }

    fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLAGS)
    }

    /// The EtherType of the tunnelled packet.
    pub fn protocol(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PROTOCOL)
    }

    /// Header length including the checksum, key and sequence fields.
    pub fn header_len(&self) -> usize {
        let f = self.flags();
        let opt = |bit: u16| if f & bit != 0 { 4 } else { 0 };
        HEADER_LEN + opt(CHECKSUM_PRESENT) + opt(KEY_PRESENT) + opt(SEQ_PRESENT)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The tunnelled packet.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_keyed_headers() {
        let plain = [0u8, 0, 0x08, 0x00, 0x45];
        let p = Packet::new_checked(&plain[..]).unwrap();
        assert_eq!(p.protocol(), 0x0800);
        assert_eq!(p.payload(), &[0x45]);
        let keyed = [0x20u8, 0, 0x65, 0x58, 0, 0, 0, 7, 0xaa];
        let k = Packet::new_checked(&keyed[..]).unwrap();
        assert_eq!(k.header_len(), 8);
        assert_eq!(k.protocol(), 0x6558);
        assert_eq!(k.payload(), &[0xaa]);
    }

    #[test]
    fn rejects_truncated_and_bad_version() {
        assert!(Packet::new_checked(&[0u8, 0, 0x08][..]).is_err());
        assert!(Packet::new_checked(&[0xb0u8, 0, 0x08, 0x00, 0, 0, 0, 0][..]).is_err());
        assert!(Packet::new_checked(&[0u8, 1, 0x08, 0x00][..]).is_err());
        assert!(Packet::new_checked(&[0x40u8, 0, 0x08, 0x00, 0, 0, 0, 0][..]).is_err());
    }
}
