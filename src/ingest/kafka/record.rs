//! What floodwatch reads from a topic, and how records are keyed and named.
//!
//! **Raw packet record** (value; one captured frame):
//!
//! | bytes  | field                                                 |
//! |--------|-------------------------------------------------------|
//! | 0..4   | magic `FWP1`                                          |
//! | 4..6   | link type (pcap LINKTYPE_*), big-endian u16           |
//! | 6..14  | capture time, ns since the Unix epoch, big-endian i64 |
//! | 14..18 | original length on the wire, big-endian u32           |
//! | 18..   | the captured frame bytes                              |
//!
//! **Row records**: one JSON object (keys = the bundle's column names) or
//! one CSV line with the bundle's columns in schema order, no header.
//!
//! **Key**: the text form of an IP address. Destination ([`KeyBy::Dst`])
//! for victim-centric layouts (`victim`, the default of `watch`): all the
//! traffic towards a target lands in one partition, hence on one instance,
//! with its statistics. Source ([`KeyBy::Src`]) for per-host layouts.
//! Frames without an IP (or ARP) address have no key.
//!
//! **Record id**: partition × 10¹² + offset, unique in a topic; it stands in
//! for the record index in `--scores` files.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::ingest::packets::capture::{LinkType, RawFrame};
use crate::ingest::packets::{Network, PacketMeta};

/// First bytes of a raw packet record.
pub const PACKET_MAGIC: [u8; 4] = *b"FWP1";
/// Bytes before the frame in a raw packet record.
pub const PACKET_HEADER: usize = 18;
/// Offsets per partition in a record id.
pub const ID_STRIDE: u64 = 1_000_000_000_000;

/// Which address keys a record (so picks its partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyBy {
    /// Destination address: per-target state (victim layouts).
    Dst,
    /// Source address: per-host state (kitsune, nbaiot).
    Src,
}

impl FromStr for KeyBy {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "dst" => Ok(KeyBy::Dst),
            "src" => Ok(KeyBy::Src),
            _ => Err(crate::Error::Data(format!(
                "unknown key '{s}' (expected dst or src)"
            ))),
        }
    }
}

impl fmt::Display for KeyBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyBy::Dst => "dst",
            KeyBy::Src => "src",
        })
    }
}

/// The address a packet is keyed by, if it has one.
pub fn packet_key(p: &PacketMeta, by: KeyBy) -> Option<IpAddr> {
    match (p.network, by) {
        (Network::Ip { dst, .. }, KeyBy::Dst) => Some(dst),
        (Network::Ip { src, .. }, KeyBy::Src) => Some(src),
        (Network::Arp { target, .. }, KeyBy::Dst) => Some(IpAddr::V4(target)),
        (Network::Arp { sender, .. }, KeyBy::Src) => Some(IpAddr::V4(sender)),
        (Network::None, _) => None,
    }
}

/// Appends the raw packet record of `frame` to `out`.
pub fn encode_packet(frame: &RawFrame<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(&PACKET_MAGIC);
    out.extend_from_slice(&frame.link_type.0.to_be_bytes());
    out.extend_from_slice(&frame.ts_ns.to_be_bytes());
    out.extend_from_slice(&frame.wire_len.to_be_bytes());
    out.extend_from_slice(frame.data);
}

/// Whether `value` is a raw packet record (by its magic).
pub fn is_packet(value: &[u8]) -> bool {
    value.starts_with(&PACKET_MAGIC)
}

/// Reads a raw packet record; the frame's index is `index`.
///
/// # Errors
/// What is wrong: a short header, a wrong magic, a wire length below the
/// captured one.
pub fn decode_packet(value: &[u8], index: u64) -> Result<RawFrame<'_>, String> {
    let (Some(head), Some(data)) = (value.get(..PACKET_HEADER), value.get(PACKET_HEADER..)) else {
        return Err(format!(
            "packet record of {} bytes, shorter than its {PACKET_HEADER}-byte header",
            value.len()
        ));
    };
    if !is_packet(head) {
        return Err("not a packet record (magic is not FWP1)".into());
    }
    let mut link = [0u8; 2];
    let mut ts = [0u8; 8];
    let mut wire = [0u8; 4];
    link.copy_from_slice(&head[4..6]);
    ts.copy_from_slice(&head[6..14]);
    wire.copy_from_slice(&head[14..18]);
    let wire_len = u32::from_be_bytes(wire);
    if (wire_len as usize) < data.len() {
        return Err(format!(
            "wire length {wire_len} below the {} captured bytes",
            data.len()
        ));
    }
    Ok(RawFrame {
        index,
        ts_ns: i64::from_be_bytes(ts),
        wire_len,
        link_type: LinkType(u16::from_be_bytes(link)),
        interface: 0,
        data,
    })
}

/// The id of the record at `offset` in `partition` (see the module docs).
pub fn record_id(partition: i32, offset: i64) -> u64 {
    u64::try_from(partition).unwrap_or(0) * ID_STRIDE + u64::try_from(offset).unwrap_or(0)
}

/// Partition and offset of a record id.
pub fn split_record_id(id: u64) -> (i32, i64) {
    let p = i32::try_from(id / ID_STRIDE).unwrap_or(i32::MAX);
    let o = i64::try_from(id % ID_STRIDE).unwrap_or(i64::MAX);
    (p, o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::packets::decode::decode;
    use std::net::Ipv4Addr;

    /// Ethernet + IPv4 + UDP, 10.0.0.1 -> 10.0.0.9.
    fn frame_bytes() -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 9,
        ];
        ip.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
        f.extend_from_slice(&ip);
        f
    }

    #[test]
    fn packets_round_trip_and_key_by_address() {
        let data = frame_bytes();
        let frame = RawFrame {
            index: 7,
            ts_ns: 1_700_000_000_123_456_789,
            wire_len: 60,
            link_type: LinkType::ETHERNET,
            interface: 0,
            data: &data,
        };
        let mut buf = Vec::new();
        encode_packet(&frame, &mut buf);
        assert!(is_packet(&buf));
        let back = decode_packet(&buf, 42).unwrap();
        assert_eq!(back.index, 42);
        assert_eq!((back.ts_ns, back.wire_len), (frame.ts_ns, 60));
        assert_eq!(back.data, &data[..]);
        let meta = decode(&back);
        let ip = |n| Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)));
        assert_eq!(packet_key(&meta, KeyBy::Dst), ip(9));
        assert_eq!(packet_key(&meta, KeyBy::Src), ip(1));
    }

    #[test]
    fn malformed_packet_records_are_errors() {
        assert!(decode_packet(b"FWP1", 1).unwrap_err().contains("shorter"));
        let mut bad = vec![0u8; PACKET_HEADER + 4];
        assert!(decode_packet(&bad, 1).unwrap_err().contains("magic"));
        bad[..4].copy_from_slice(&PACKET_MAGIC);
        // wire length 0 below 4 captured bytes
        assert!(decode_packet(&bad, 1).unwrap_err().contains("wire length"));
        bad[17] = 4;
        assert!(decode_packet(&bad, 1).is_ok());
    }

    #[test]
    fn ids_and_keys_parse() {
        let id = record_id(3, 42);
        assert_eq!(id, 3_000_000_000_042);
        assert_eq!(split_record_id(id), (3, 42));
        assert_eq!(record_id(-1, -5), 0);
        assert_eq!("dst".parse::<KeyBy>().unwrap(), KeyBy::Dst);
        assert_eq!(KeyBy::Src.to_string(), "src");
        assert!("both".parse::<KeyBy>().is_err());
    }
}
