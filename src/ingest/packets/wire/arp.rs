//! ARP packets (Ethernet / IPv4 addresses are the only ones read).

use std::net::Ipv4Addr;

use super::{be16, ipv4_at, Error, Result};

mod field {
    pub(super) const HTYPE: usize = 0;
    pub(super) const PTYPE: usize = 2;
    pub(super) const HLEN: usize = 4;
    pub(super) const PLEN: usize = 5;
    pub(super) const OPER: usize = 6;
    pub(super) const ADDRS: usize = 8;
}

/// Length of the fixed part before the addresses.
pub const FIXED_LEN: usize = field::ADDRS;

/// A view of an ARP packet.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer`, checking that the four addresses its length fields
    /// announce are present.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < FIXED_LEN {
            return Err(Error);
        }
        let addrs = 2 * (usize::from(b[field::HLEN]) + usize::from(b[field::PLEN]));
        if b.len() < FIXED_LEN + addrs {
            return Err(Error);
        }
        Ok(Packet { buffer })
    }

    /// Hardware type (1 = Ethernet).
    pub fn hardware_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::HTYPE)
    }

    /// Protocol type (0x0800 = IPv4).
    pub fn protocol_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PTYPE)
    }

    /// Operation (1 request, 2 reply).
    pub fn operation(&self) -> u16 {
        be16(self.buffer.as_ref(), field::OPER)
    }

    /// Sender and target protocol addresses, when they are IPv4 addresses.
    pub fn ipv4_addrs(&self) -> Option<(Ipv4Addr, Ipv4Addr)> {
        let b = self.buffer.as_ref();
        let hlen = usize::from(b[field::HLEN]);
        if b[field::PLEN] != 4 || self.protocol_type() != 0x0800 {
            return None;
        }
        let sender = field::ADDRS + hlen;
        let target = sender + 4 + hlen;
        Some((ipv4_at(b, sender), ipv4_at(b, target)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // fixed
        0x5c, 0xcf, 0x7f, 0x05, 0xf2, 0xc6, 192, 168, 2, 108, // sender
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 168, 2, 1, // target
    ];

    #[test]
    fn parses_request() {
        let p = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.operation(), 1);
        assert_eq!(
            p.ipv4_addrs(),
            Some((
                Ipv4Addr::new(192, 168, 2, 108),
                Ipv4Addr::new(192, 168, 2, 1)
            ))
        );
    }

    #[test]
    fn rejects_truncated_and_impossible_lengths() {
        assert!(Packet::new_checked(&REQUEST[..27]).is_err());
        assert!(Packet::new_checked(&REQUEST[..7]).is_err());
        let mut b = REQUEST;
        b[4] = 0xff;
        assert!(Packet::new_checked(&b[..]).is_err());
    }

    #[test]
    fn non_ipv4_addresses_are_not_read() {
        let mut b = REQUEST;
        b[2] = 0x86;
        b[3] = 0xdd;
        assert_eq!(Packet::new_checked(&b[..]).unwrap().ipv4_addrs(), None);
    }
}
