//! UDP headers.

use super::{be16, Error, Result};

mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const LENGTH: usize = 4;
}

/// Length of the header.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP header.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer`, checking that the header is present and that the
    /// length field is not below the header's (0 is allowed: jumbograms).
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error);
        }
        let p = Packet { buffer };
        let len = usize::from(p.len());
        if len != 0 && len < HEADER_LEN {
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

    /// The length field (header included).
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Whether the datagram carries no data.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The datagram's data, up to the length field or the buffer's end.
    pub fn payload(&self) -> &'a [u8] {
        let b = self.buffer.as_ref();
        let len = usize::from(self.len());
        let end = if len == 0 { b.len() } else { len.min(b.len()) };
        &b[HEADER_LEN..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static DATAGRAM: [u8; 12] = [
        0xc0, 0x01, 0x00, 0x35, 0x00, 0x0a, 0x00, 0x00, 0xab, 0xcd, 0, 0,
    ];

    #[test]
    fn parses_header() {
        let p = Packet::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(p.src_port(), 49153);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 10);
        assert!(!p.is_empty());
        assert_eq!(p.payload(), &[0xab, 0xcd]);
    }

    #[test]
    fn rejects_truncated() {
        assert!(Packet::new_checked(&DATAGRAM[..7]).is_err());
    }

    #[test]
    fn rejects_impossible_len() {
        let mut b = DATAGRAM;
        b[5] = 7;
        assert!(Packet::new_checked(&b[..]).is_err());
    }

    #[test]
    fn len_beyond_buffer_clips() {
        let mut b = DATAGRAM;
        b[4] = 0x10;
        assert_eq!(Packet::new_checked(&b[..]).unwrap().payload().len(), 4);
    }
}
