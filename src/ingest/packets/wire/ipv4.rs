//! IPv4 headers.

use std::net::Ipv4Addr;

use super::{be16, ipv4_at, Error, Result};

mod field {
    pub(super) const VER_IHL: usize = 0;
    pub(super) const TOTAL_LEN: usize = 2;
    pub(super) const IDENT: usize = 4;
    pub(super) const FLAGS_FRAG: usize = 6;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: usize = 10;
    pub(super) const SRC: usize = 12;
    pub(super) const DST: usize = 16;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

/// IP protocol numbers the decoder dispatches on.
pub mod protocol {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// IPv4 in IPv4.
    pub const IPIP: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 in IPv4.
    pub const IPV6: u8 = 41;
    /// GRE.
    pub const GRE: u8 = 47;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
}

/// A view of an IPv4 header.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer`, checking version 4, IHL >= 5, that the header with
    /// its options is present and that the total length covers the header.
    /// A total length beyond the buffer is accepted (frames cut by the snap
    /// length); [`Packet::payload`] stops at the buffer's end.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN || b[field::VER_IHL] >> 4 != 4 {
            return Err(Error);
        }
        let p = Packet { buffer };
        let hl = p.header_len();
        let total = usize::from(p.total_len());
        // Total length 0 is what TCP segmentation offload leaves in frames
        // captured on the sending host: the buffer's length is the truth.
        if hl < HEADER_LEN || hl > p.buffer.as_ref().len() || (total != 0 && total < hl) {
            return Err(Error);
        }
        Ok(p)
    }

    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The total length field.
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TOTAL_LEN)
    }

    /// The identification field (shared by a datagram's fragments).
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }

    /// Fragment offset in 8-byte units.
    pub fn frag_offset(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLAGS_FRAG) & 0x1fff
    }

    /// The more-fragments flag.
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLAGS_FRAG) & 0x2000 != 0
    }

    /// Whether this is any fragment of a fragmented datagram.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The next protocol.
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::SRC)
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::DST)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The bytes after the header, up to the total length (Ethernet padding
    /// excluded) or the end of the buffer, whichever comes first.
    pub fn payload(&self) -> &'a [u8] {
        let b = self.buffer.as_ref();
        let total = usize::from(self.total_len());
        let end = if total == 0 {
            b.len()
        } else {
            total.min(b.len())
        };
        b.get(self.header_len()..end).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 192.168.2.108 -> 52.24.43.67, TCP, total length 24 (20 + 4 payload).
    static PACKET: [u8; 26] = [
        0x45, 0x00, 0x00, 0x18, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 192, 168, 2, 108,
        52, 24, 43, 67, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, // Ethernet padding
    ];

    #[test]
    fn parses_header_and_trims_padding() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 24);
        assert_eq!(p.protocol(), protocol::TCP);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.src(), Ipv4Addr::new(192, 168, 2, 108));
        assert_eq!(p.dst(), Ipv4Addr::new(52, 24, 43, 67));
        assert!(!p.is_fragment());
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn rejects_truncated() {
        assert!(Packet::new_checked(&PACKET[..19]).is_err());
        assert!(Packet::new_checked(&[][..]).is_err());
    }

    #[test]
    fn rejects_bad_version() {
        let mut b = PACKET;
        b[0] = 0x65;
        assert!(Packet::new_checked(&b[..]).is_err());
    }

    #[test]
    fn rejects_ihl_below_five() {
        let mut b = PACKET;
        b[0] = 0x44;
        assert!(Packet::new_checked(&b[..]).is_err());
    }

    #[test]
    fn rejects_options_beyond_buffer() {
        let mut b = PACKET;
        b[0] = 0x4f; // 60-byte header in a 26-byte buffer
        assert!(Packet::new_checked(&b[..]).is_err());
    }

    #[test]
    fn rejects_total_len_below_header() {
        let mut b = PACKET;
        b[3] = 19;
        assert!(Packet::new_checked(&b[..]).is_err());
    }

    #[test]
    fn total_len_beyond_buffer_clips_payload() {
        let mut b = PACKET;
        b[2] = 0x05; // 1304 bytes claimed: a frame cut by the snap length
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 6);
    }

    #[test]
    fn zero_total_len_uses_buffer() {
        let mut b = PACKET;
        b[3] = 0;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 6);
    }

    #[test]
    fn reads_fragment_fields() {
        let mut b = PACKET;
        b[6] = 0x20; // MF
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.more_frags() && p.is_fragment() && p.frag_offset() == 0);
        b[6] = 0x00;
        b[7] = 0xb9; // offset 185 * 8
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.frag_offset(), 185);
        assert!(p.is_fragment());
    }
}
