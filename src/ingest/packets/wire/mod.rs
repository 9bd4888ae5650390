//! Zero-copy views of the protocol headers a capture holds, in the style of
//! smoltcp's `wire` module.
//!
//! Each protocol has a `Packet<T: AsRef<[u8]>>` (or `Frame`) view over a byte
//! buffer, with its field offsets in a private `field` module. The contract:
//! construct views of untrusted bytes with `new_checked`; once it succeeded,
//! no accessor panics. Errors are the unit [`Error`], so a malformed header
//! costs nothing more than a branch in the decoding hot path.

pub mod arp;
pub mod ethernet;
pub mod gre;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod null;
pub mod sll;
pub mod tcp;
pub mod udp;

use std::fmt;

/// The bytes do not hold a valid header of the protocol asked for (too short,
/// impossible length field, wrong version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed header")
    }
}

impl std::error::Error for Error {}

/// Result of the wire layer.
pub type Result<T> = std::result::Result<T, Error>;

/// A byte range of a header.
type Field = std::ops::Range<usize>;

/// Big-endian u16 at `at`. Callers have checked the length first.
#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Big-endian u32 at `at`. Callers have checked the length first.
#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// An IPv4 address at `at`. Callers have checked the length first.
#[inline]
fn ipv4_at(b: &[u8], at: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// Internet checksum (RFC 1071) of `data`, continuing from `sum`.
pub fn checksum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

/// Folds a running sum into the final one's-complement checksum.
pub fn checksum_finish(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_rfc1071_example() {
        // RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let sum = checksum_add(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
        assert_eq!(checksum_finish(sum), !0xddf2);
    }

    #[test]
    fn checksum_of_odd_length_pads_with_zero() {
        assert_eq!(checksum_add(0, &[0x12]), 0x1200);
        assert_eq!(checksum_finish(0x1_fffe), 0);
    }

    #[test]
    fn error_displays() {
        assert_eq!(Error.to_string(), "malformed header");
    }
}
