//! IPv6 headers and the common extension headers.

use std::net::Ipv6Addr;

use super::{be16, Error, Result};

mod field {
    use crate::ingest::packets::wire::Field;
    pub(super) const VERSION: usize = 0;
    pub(super) const PAYLOAD_LEN: usize = 4;
    pub(super) const NEXT_HEADER: usize = 6;
    pub(super) const HOP_LIMIT: usize = 7;
    pub(super) const SRC: Field = 8..24;
    pub(super) const DST: Field = 24..40;
    pub(super) const EXT_NEXT: usize = 0;
    pub(super) const EXT_LEN: usize = 1;
    pub(super) const FRAG_OFFSET: usize = 2;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

/// Extension header numbers walked by [`ExtHeader`].
pub mod ext {
    /// Hop-by-hop options.
    pub const HOP_BY_HOP: u8 = 0;
    /// Routing.
    pub const ROUTING: u8 = 43;
    /// Fragment.
    pub const FRAGMENT: u8 = 44;
    /// Authentication header (length in 4-byte units).
    pub const AUTH: u8 = 51;
    /// No next header.
    pub const NO_NEXT: u8 = 59;
    /// Destination options.
    pub const DEST_OPTS: u8 = 60;

    /// Whether `n` is an extension header this module can walk.
    pub fn is_ext(n: u8) -> bool {
        matches!(n, HOP_BY_HOP | ROUTING | FRAGMENT | AUTH | DEST_OPTS)
    }
}

/// A view of an IPv6 header.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer`, checking version 6 and the fixed header's length.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN || b[field::VERSION] >> 4 != 6 {
            return Err(Error);
        }
        Ok(Packet { buffer })
    }

    /// The payload length field.
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    /// The first next-header value.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::SRC])
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::DST])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The bytes after the fixed header, up to the payload length (padding
    /// excluded) or the buffer's end. A zero length (jumbogram) means the
    /// whole buffer.
    pub fn payload(&self) -> &'a [u8] {
        let b = self.buffer.as_ref();
        let len = usize::from(self.payload_len());
        let end = if len == 0 {
            b.len()
        } else {
            (HEADER_LEN + len).min(b.len())
        };
        &b[HEADER_LEN..end]
    }
}

/// A view of one extension header (hop-by-hop, routing, fragment,
/// destination options, authentication).
#[derive(Debug, Clone, Copy)]
pub struct ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
    kind: u8,
}

impl<T: AsRef<[u8]>> ExtHeader<T> {
    /// Wraps `buffer` as an extension header of type `kind`, checking that
    /// its declared length fits.
    pub fn new_checked(buffer: T, kind: u8) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < 8 || !ext::is_ext(kind) {
            return Err(Error);
        }
        let h = ExtHeader { buffer, kind };
        if h.header_len() > h.buffer.as_ref().len() {
            return Err(Error);
        }
        Ok(h)
    }

    /// The header that follows.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::EXT_NEXT]
    }

    /// This header's length in bytes.
    pub fn header_len(&self) -> usize {
        let n = usize::from(self.buffer.as_ref()[field::EXT_LEN]);
        match self.kind {
            ext::FRAGMENT => 8,
            ext::AUTH => (n + 2) * 4,
            _ => (n + 1) * 8,
        }
    }

    /// For a fragment header, the fragment offset in 8-byte units (0 for the
    /// first fragment); `None` for other headers.
    pub fn frag_offset(&self) -> Option<u16> {
        (self.kind == ext::FRAGMENT).then(|| be16(self.buffer.as_ref(), field::FRAG_OFFSET) >> 3)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> ExtHeader<&'a T> {
    /// The bytes after this header.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

fn addr(b: &[u8]) -> Ipv6Addr {
    let mut a = [0; 16];
    a.copy_from_slice(b);
    Ipv6Addr::from(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0x60, 0, 0, 0];
        b.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        b.extend_from_slice(&[next, 64]);
        b.extend_from_slice(&Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1).octets());
        b.extend_from_slice(&Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets());
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn parses_header() {
        let mut b = packet(17, &[1, 2, 3, 4, 5, 6, 7, 8]);
        b.extend_from_slice(&[0, 0]); // padding
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.next_header(), 17);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src(), "fe80::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst(), "ff02::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload(), &[1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn rejects_truncated_and_bad_version() {
        let b = packet(17, &[]);
        assert!(Packet::new_checked(&b[..39]).is_err());
        let mut v4 = b.clone();
        v4[0] = 0x45;
        assert!(Packet::new_checked(&v4[..]).is_err());
    }

    #[test]
    fn payload_len_beyond_buffer_clips() {
        let mut b = packet(17, &[1, 2]);
        b[4] = 0x10;
        assert_eq!(Packet::new_checked(&b[..]).unwrap().payload(), &[1, 2]);
    }

    #[test]
    fn walks_extension_headers() {
        // Hop-by-hop (8 bytes) then fragment (offset 0) then UDP.
        let hbh = [ext::FRAGMENT, 0, 1, 4, 0, 0, 0, 0];
        let h = ExtHeader::new_checked(&hbh[..], ext::HOP_BY_HOP).unwrap();
        assert_eq!(h.next_header(), ext::FRAGMENT);
        assert_eq!(h.header_len(), 8);
        assert_eq!(h.frag_offset(), None);
        let frag = [17u8, 0, 0x05, 0x39, 0, 0, 0, 1, 0xaa];
        let f = ExtHeader::new_checked(&frag[..], ext::FRAGMENT).unwrap();
        assert_eq!(f.frag_offset(), Some(0xa7));
        assert_eq!(f.payload(), &[0xaa]);
        let auth = [6u8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            ExtHeader::new_checked(&auth[..], ext::AUTH)
                .unwrap()
                .header_len(),
            12
        );
    }

    #[test]
    fn rejects_extension_header_longer_than_buffer() {
        let routing = [17u8, 3, 0, 0, 0, 0, 0, 0]; // claims 32 bytes
        assert!(ExtHeader::new_checked(&routing[..], ext::ROUTING).is_err());
        assert!(ExtHeader::new_checked(&routing[..7], ext::ROUTING).is_err());
        assert!(ExtHeader::new_checked(&routing[..], 17).is_err());
    }
}
