//! BSD loopback headers: `NULL` (link type 0, address family in the byte
//! order of the capturing host) and `LOOP` (108, network byte order).

use super::{Error, Result};

/// Length of the address-family header.
pub const HEADER_LEN: usize = 4;

/// What the address family announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// AF_INET.
    Ipv4,
    /// AF_INET6 (10 on Linux, 24/28/30 on the BSDs and macOS).
    Ipv6,
    /// Anything else.
    Other(u32),
}

/// A view of a loopback header.
#[derive(Debug, Clone, Copy)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps `buffer`, checking its length.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error);
        }
        Ok(Header { buffer })
    }

    /// The address family. The `NULL` header is in the capturing host's byte
    /// order, which the file does not say, so both orders are tried; the
    /// values of interest are small, so they cannot be confused.
    pub fn family(&self) -> Family {
        let b = self.buffer.as_ref();
        let raw = [b[0], b[1], b[2], b[3]];
        let be = u32::from_be_bytes(raw);
        let le = u32::from_le_bytes(raw);
        let small = if be < 0x100 { be } else { le };
        match small {
            2 => Family::Ipv4,
            10 | 24 | 28 | 30 => Family::Ipv6,
            _ => Family::Other(be),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Header<&'a T> {
    /// The bytes after the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_family_in_either_byte_order() {
        let le = Header::new_checked(&[2u8, 0, 0, 0, 0x45][..]).unwrap();
        assert_eq!(le.family(), Family::Ipv4);
        assert_eq!(le.payload(), &[0x45]);
        let be = Header::new_checked(&[0u8, 0, 0, 30][..]).unwrap();
        assert_eq!(be.family(), Family::Ipv6);
        let linux = Header::new_checked(&[10u8, 0, 0, 0][..]).unwrap();
        assert_eq!(linux.family(), Family::Ipv6);
    }

    #[test]
    fn unknown_family_is_other() {
        let h = Header::new_checked(&[0u8, 0, 0, 7][..]).unwrap();
        assert_eq!(h.family(), Family::Other(7));
    }

    #[test]
    fn rejects_truncated() {
        assert!(Header::new_checked(&[2u8, 0, 0][..]).is_err());
    }
}
