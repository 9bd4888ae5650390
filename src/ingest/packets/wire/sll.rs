//! Linux "cooked" capture headers: SLL (link type 113) and SLL2 (276).

use super::{be16, Error, Result};

mod field {
    pub(super) const SLL_ADDR_LEN: usize = 4;
    pub(super) const SLL_ADDR: usize = 6;
    pub(super) const SLL_PROTOCOL: usize = 14;
    pub(super) const SLL_LEN: usize = 16;
    pub(super) const SLL2_PROTOCOL: usize = 0;
    pub(super) const SLL2_ADDR_LEN: usize = 11;
    pub(super) const SLL2_ADDR: usize = 12;
    pub(super) const SLL2_LEN: usize = 20;
}

/// Length of an SLL header.
pub const SLL_HEADER_LEN: usize = field::SLL_LEN;
/// Length of an SLL2 header.
pub const SLL2_HEADER_LEN: usize = field::SLL2_LEN;

/// Which of the two cooked formats a view reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `LINKTYPE_LINUX_SLL` (113).
    V1,
    /// `LINKTYPE_LINUX_SLL2` (276).
    V2,
}

/// A view of a Linux cooked header.
#[derive(Debug, Clone, Copy)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
    version: Version,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps `buffer` as a header of `version`, checking its length.
    pub fn new_checked(buffer: T, version: Version) -> Result<Self> {
        if buffer.as_ref().len() < header_len(version) {
            return Err(Error);
        }
        Ok(Header { buffer, version })
    }

    /// The protocol of the payload (an EtherType, or a small Linux value for
    /// 802.2/802.3 frames).
    pub fn protocol(&self) -> u16 {
        let at = match self.version {
            Version::V1 => field::SLL_PROTOCOL,
            Version::V2 => field::SLL2_PROTOCOL,
        };
        be16(self.buffer.as_ref(), at)
    }

    /// The link-layer source address when it is a 6-byte MAC.
    pub fn src_mac(&self) -> Option<[u8; 6]> {
        let b = self.buffer.as_ref();
        let (len, at) = match self.version {
            Version::V1 => (be16(b, field::SLL_ADDR_LEN) as usize, field::SLL_ADDR),
            Version::V2 => (usize::from(b[field::SLL2_ADDR_LEN]), field::SLL2_ADDR),
        };
        if len != 6 {
            return None;
        }
        let mut m = [0; 6];
        m.copy_from_slice(&b[at..at + 6]);
        Some(m)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Header<&'a T> {
    /// The bytes after the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[header_len(self.version)..]
    }
}

fn header_len(version: Version) -> usize {
    match version {
        Version::V1 => field::SLL_LEN,
        Version::V2 => field::SLL2_LEN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SLL: [u8; 17] = [
        0x00, 0x00, // packet type: to us
        0x00, 0x01, // ARPHRD_ETHER
        0x00, 0x06, // address length
        0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0x00, 0x00, // address + padding
        0x08, 0x00, // IPv4
        0x45,
    ];

    static SLL2: [u8; 21] = [
        0x86, 0xdd, // IPv6
        0x00, 0x00, // reserved
        0x00, 0x00, 0x00, 0x02, // interface index
        0x00, 0x01, // ARPHRD_ETHER
        0x04, // packet type: outgoing
        0x06, // address length
        0x02, 0x42, 0xac, 0x11, 0x00, 0x03, 0x00, 0x00, // address + padding
        0x60,
    ];

    #[test]
    fn parses_sll() {
        let h = Header::new_checked(&SLL[..], Version::V1).unwrap();
        assert_eq!(h.protocol(), 0x0800);
        assert_eq!(h.src_mac(), Some([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]));
        assert_eq!(h.payload(), &[0x45]);
    }

    #[test]
    fn parses_sll2() {
        let h = Header::new_checked(&SLL2[..], Version::V2).unwrap();
        assert_eq!(h.protocol(), 0x86dd);
        assert_eq!(h.src_mac(), Some([0x02, 0x42, 0xac, 0x11, 0x00, 0x03]));
        assert_eq!(h.payload(), &[0x60]);
    }

    #[test]
    fn address_of_other_length_is_not_a_mac() {
        let mut b = SLL;
        b[5] = 8;
        let h = Header::new_checked(&b[..], Version::V1).unwrap();
        assert_eq!(h.src_mac(), None);
        b[4] = 0xff; // an impossible length must not index out of range
        let h = Header::new_checked(&b[..], Version::V1).unwrap();
        assert_eq!(h.src_mac(), None);
    }

    #[test]
    fn rejects_truncated() {
        assert!(Header::new_checked(&SLL[..15], Version::V1).is_err());
        assert!(Header::new_checked(&SLL2[..19], Version::V2).is_err());
        // An SLL header is too short for SLL2.
        assert!(Header::new_checked(&SLL[..16], Version::V2).is_err());
    }
}
