//! Export datagrams in a capture file: read (the UDP payloads of a pcap or
//! pcapng of export traffic, for deterministic replays) and written (a
//! collector's datagrams saved as raw-IP pcap).

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::path::Path;

use std::time::Instant;

use super::{Accept, Arrival, Datagram, DatagramSource};
use crate::ingest::packets::capture::CaptureReader;
use crate::ingest::packets::frame::{CaptureError, LinkType, RawFrame};
use crate::ingest::packets::wire::{
    checksum_add, checksum_finish, ethernet, ipv4, ipv6, null, sll, udp,
};

/// The UDP datagrams of a capture; frames that are not unfragmented UDP
/// over IPv4/IPv6 are counted in [`skipped`](Self::skipped).
#[derive(Debug)]
pub struct ExportCapture<R = BufReader<File>> {
    reader: CaptureReader<R>,
    buf: Vec<u8>,
    skipped: u64,
    damage: Option<CaptureError>,
}

impl ExportCapture<BufReader<File>> {
    /// Opens a capture file.
    pub fn open(path: impl AsRef<Path>) -> crate::Result<Self> {
        Ok(Self::new(CaptureReader::open(path)?))
    }
}

impl<R: Read> ExportCapture<R> {
    /// The datagrams of `reader`.
    pub fn new(reader: CaptureReader<R>) -> Self {
        ExportCapture {
            reader,
            buf: Vec::new(),
            skipped: 0,
            damage: None,
        }
    }

    /// The next UDP datagram, or `None` at the end of the capture or at
    /// damage that ends it (kept in [`damage`](Self::damage)).
    pub fn next_datagram(&mut self) -> Option<Datagram<'_>> {
        loop {
            // Two passes over the frame: the borrow checker cannot yet see
            // that a skipped frame's borrow ends at the `continue`. So the
            // payload is kept as its address and length, and found in the
            // record buffer (which a pcapng block header starts) after.
            let found = match self.reader.next_packet(&mut self.buf) {
                Ok(Some(raw)) => udp_of(&raw).map(|(exporter, payload)| {
                    let at = payload.as_ptr() as usize;
                    (exporter, raw.timestamp(), at, payload.len())
                }),
                Ok(None) => return None,
                Err(e) if e.is_fatal() => {
                    self.damage = Some(e);
                    return None;
                }
                Err(_) => None,
            };
            match found {
                Some((exporter, at, address, len)) => {
                    let start = address - self.buf.as_ptr() as usize;
                    return Some(Datagram {
                        accept: Accept::Any,
                        exporter,
                        at,
                        arrived: Instant::now(),
                        payload: &self.buf[start..start + len],
                    });
                }
                None => self.skipped += 1,
            }
        }
    }

    /// Frames that held no UDP datagram, or could not be read.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The damage that ended the capture early, if any.
    pub fn damage(&self) -> Option<&CaptureError> {
        self.damage.as_ref()
    }
}

impl<R: Read> DatagramSource for ExportCapture<R> {
    fn next_datagram(&mut self) -> Arrival<'_> {
        match ExportCapture::next_datagram(self) {
            Some(d) => Arrival::Datagram(d),
            None => Arrival::End,
        }
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}

/// The UDP source and payload of a frame.
fn udp_of<'a>(raw: &RawFrame<'a>) -> Option<(SocketAddr, &'a [u8])> {
    let ip = match raw.link_type {
        LinkType::ETHERNET => ether_payload(raw.data)?,
        LinkType::LINUX_SLL => sll::Header::new_checked(raw.data, sll::Version::V1)
            .ok()
            .filter(|h| {
                h.protocol() == ethernet::ethertype::IPV4
                    || h.protocol() == ethernet::ethertype::IPV6
            })?
            .payload(),
        LinkType::LINUX_SLL2 => sll::Header::new_checked(raw.data, sll::Version::V2)
            .ok()?
            .payload(),
        LinkType::NULL | LinkType::LOOP => null::Header::new_checked(raw.data).ok()?.payload(),
        LinkType::RAW | LinkType::IPV4 | LinkType::IPV6 => raw.data,
        _ => return None,
    };
    let (src, l4) = ip_udp(ip)?;
    let u = udp::Packet::new_checked(l4).ok()?;
    Some((SocketAddr::new(src, u.src_port()), u.payload()))
}

fn ether_payload(b: &[u8]) -> Option<&[u8]> {
    let f = ethernet::Frame::new_checked(b).ok()?;
    let (mut t, mut p) = (f.ethertype(), f.payload());
    for _ in 0..2 {
        if !ethernet::ethertype::is_vlan(t) {
            break;
        }
        let tag = ethernet::VlanTag::new_checked(p).ok()?;
        (t, p) = (tag.ethertype(), tag.payload());
    }
    (t == ethernet::ethertype::IPV4 || t == ethernet::ethertype::IPV6).then_some(p)
}

/// The source address and the UDP header onwards of an unfragmented
/// IPv4 or IPv6 (no extension headers) UDP packet.
fn ip_udp(b: &[u8]) -> Option<(IpAddr, &[u8])> {
    const UDP: u8 = 17;
    match b.first()? >> 4 {
        4 => {
            let p = ipv4::Packet::new_checked(b).ok()?;
            (p.protocol() == UDP && !p.is_fragment()).then(|| (IpAddr::V4(p.src()), p.payload()))
        }
        6 => {
            let p = ipv6::Packet::new_checked(b).ok()?;
            (p.next_header() == UDP).then(|| (IpAddr::V6(p.src()), p.payload()))
        }
        _ => None,
    }
}

/// Writes export datagrams as a raw-IP pcap (IPv4 + UDP, microseconds),
/// which [`ExportCapture`] and `watch --pcap FILE --flows` read back.
#[derive(Debug)]
pub struct ExportWriter<W: Write> {
    out: W,
}

impl<W: Write> ExportWriter<W> {
    /// Writes the pcap header.
    pub fn new(mut out: W) -> std::io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&65_535u32.to_le_bytes());
        h.extend_from_slice(&u32::from(LinkType::RAW.0).to_le_bytes());
        out.write_all(&h)?;
        Ok(ExportWriter { out })
    }

    /// Writes one datagram from `from` to `to` sent at `at` (Unix seconds).
    /// Payloads beyond 65,507 bytes (UDP's limit) are an error.
    pub fn write(
        &mut self,
        at: f64,
        from: SocketAddrV4,
        to: SocketAddrV4,
        payload: &[u8],
    ) -> std::io::Result<()> {
        let total = u16::try_from(28 + payload.len()).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "datagram longer than UDP allows",
            )
        })?;
        let (secs, micros) = (at.floor(), ((at - at.floor()) * 1e6).round().min(999_999.0));
        let mut rec = Vec::with_capacity(16 + 28 + payload.len());
        rec.extend_from_slice(&(secs as u32).to_le_bytes());
        rec.extend_from_slice(&(micros as u32).to_le_bytes());
        rec.extend_from_slice(&u32::from(total).to_le_bytes());
        rec.extend_from_slice(&u32::from(total).to_le_bytes());
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&from.ip().octets());
        ip[16..20].copy_from_slice(&to.ip().octets());
        let sum = checksum_finish(checksum_add(0, &ip));
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        rec.extend_from_slice(&ip);
        rec.extend_from_slice(&from.port().to_be_bytes());
        rec.extend_from_slice(&to.port().to_be_bytes());
        rec.extend_from_slice(&(total - 20).to_be_bytes());
        rec.extend_from_slice(&[0, 0]);
        rec.extend_from_slice(payload);
        self.out.write_all(&rec)
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}
