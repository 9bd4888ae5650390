//! Ethernet II frames and 802.1Q / 802.1ad VLAN tags.

use super::{be16, Error, Result};

/// EtherType values the decoder dispatches on.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service VLAN tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ outer tag.
    pub const QINQ_OLD: u16 = 0x9100;
    /// Values below this are 802.3 lengths, not EtherTypes.
    pub const MIN_ETHERTYPE: u16 = 0x0600;

    /// Whether `t` announces a VLAN tag.
    pub fn is_vlan(t: u16) -> bool {
        matches!(t, VLAN | QINQ | QINQ_OLD)
    }
}

mod field {
    use crate::ingest::packets::wire::Field;
    pub(super) const DST: Field = 0..6;
    pub(super) const SRC: Field = 6..12;
    pub(super) const ETHERTYPE: usize = 12;
    pub(super) const PAYLOAD: usize = 14;
    pub(super) const TAG_TCI: usize = 0;
    pub(super) const TAG_ETHERTYPE: usize = 2;
    pub(super) const TAG_LEN: usize = 4;
}

/// Length of an Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps `buffer`, checking that it holds a whole header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error);
        }
        Ok(Frame { buffer })
    }

    /// Destination MAC.
    pub fn dst(&self) -> [u8; 6] {
        mac(&self.buffer.as_ref()[field::DST])
    }

    /// Source MAC.
    pub fn src(&self) -> [u8; 6] {
        mac(&self.buffer.as_ref()[field::SRC])
    }

    /// EtherType (or 802.3 length when below 0x0600).
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Frame<&'a T> {
    /// The bytes after the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

/// A view of one 802.1Q / 802.1ad tag (TCI and the next EtherType).
#[derive(Debug, Clone, Copy)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Wraps `buffer`, checking that it holds a whole tag.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < field::TAG_LEN {
            return Err(Error);
        }
        Ok(VlanTag { buffer })
    }

    /// VLAN identifier (low 12 bits of the TCI).
    pub fn vlan_id(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TAG_TCI) & 0x0fff
    }

    /// The EtherType that follows the tag.
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TAG_ETHERTYPE)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> VlanTag<&'a T> {
    /// The bytes after the tag.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::TAG_LEN..]
    }
}

fn mac(b: &[u8]) -> [u8; 6] {
    let mut m = [0; 6];
    m.copy_from_slice(b);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    static FRAME: [u8; 18] = [
        0x4c, 0x09, 0xd4, 0xc6, 0x12, 0x7b, // dst
        0x5c, 0xcf, 0x7f, 0x05, 0xf2, 0xc6, // src
        0x08, 0x00, // IPv4
        0xaa, 0xbb, 0xcc, 0xdd,
    ];

    #[test]
    fn parses_header() {
        let f = Frame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst(), [0x4c, 0x09, 0xd4, 0xc6, 0x12, 0x7b]);
        assert_eq!(f.src(), [0x5c, 0xcf, 0x7f, 0x05, 0xf2, 0xc6]);
        assert_eq!(f.ethertype(), ethertype::IPV4);
        assert_eq!(f.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
    }

    #[test]
    fn rejects_truncated_header() {
        assert_eq!(Frame::new_checked(&FRAME[..13]).err(), Some(Error));
        assert!(Frame::new_checked(&FRAME[..14]).is_ok());
    }

    #[test]
    fn parses_vlan_tag() {
        let tag = VlanTag::new_checked(&[0x20, 0x64, 0x86, 0xdd, 0x60][..]).unwrap();
        assert_eq!(tag.vlan_id(), 100);
        assert_eq!(tag.ethertype(), ethertype::IPV6);
        assert_eq!(tag.payload(), &[0x60]);
        assert!(VlanTag::new_checked(&[0x20, 0x64, 0x86][..]).is_err());
    }

    #[test]
    fn knows_vlan_ethertypes() {
        assert!(ethertype::is_vlan(0x8100));
        assert!(ethertype::is_vlan(0x88a8));
        assert!(ethertype::is_vlan(0x9100));
        assert!(!ethertype::is_vlan(0x0800));
    }
}
