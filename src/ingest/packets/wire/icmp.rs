//! ICMPv4 and ICMPv6 headers.

use super::{Error, Result};

mod field {
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
}

/// Length of the fixed header (type, code, checksum, 4 bytes of rest).
pub const HEADER_LEN: usize = 8;

/// A view of an ICMP or ICMPv6 header.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer`, checking that the fixed header is present.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error);
        }
        Ok(Packet { buffer })
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Whether an ICMPv4 message of this type quotes the offending datagram
    /// (destination unreachable, source quench, redirect, time exceeded,
    /// parameter problem).
    pub fn is_error_v4(&self) -> bool {
        matches!(self.msg_type(), 3 | 4 | 5 | 11 | 12)
    }

    /// Whether an ICMPv6 message of this type quotes the offending packet
    /// (destination unreachable, packet too big, time exceeded, parameter
    /// problem).
    pub fn is_error_v6(&self) -> bool {
        matches!(self.msg_type(), 1..=4)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The bytes after the fixed header: the quoted datagram of an error.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_echo_request() {
        let b = [8u8, 0, 0xf7, 0xff, 0, 1, 0, 0, 0xaa];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), 8);
        assert_eq!(p.code(), 0);
        assert!(!p.is_error_v4());
        assert_eq!(p.payload(), &[0xaa]);
    }

    #[test]
    fn knows_error_types() {
        let unreach = Packet::new_checked(&[3u8, 3, 0, 0, 0, 0, 0, 0][..]).unwrap();
        assert!(unreach.is_error_v4());
        let v6_exceeded = Packet::new_checked(&[3u8, 0, 0, 0, 0, 0, 0, 0][..]).unwrap();
        assert!(v6_exceeded.is_error_v6());
        let v6_echo = Packet::new_checked(&[128u8, 0, 0, 0, 0, 0, 0, 0][..]).unwrap();
        assert!(!v6_echo.is_error_v6());
    }

    #[test]
    fn rejects_truncated() {
        assert!(Packet::new_checked(&[3u8, 3, 0, 0, 0, 0, 0][..]).is_err());
    }
}
