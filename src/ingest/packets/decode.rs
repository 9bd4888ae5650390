//! Decoding a [`RawFrame`] into a [`PacketMeta`]: link layer, VLAN tags,
//! IPv4/IPv6 (with extension headers), TCP, UDP, ICMP, ARP, GRE / IP-in-IP.
//!
//! Decoding never fails as a whole: it goes as far as the bytes allow and
//! reports the first layer that was malformed, so callers count bad frames
//! instead of dropping them. Ports follow the convention of Kitsune (and
//! tshark): they come from the first TCP or UDP header in the frame, which
//! is the one quoted by an ICMP error or carried by a GRE / IP-in-IP tunnel.

use std::fmt;
use std::net::IpAddr;

use super::frame::{LinkType, RawFrame};
use super::wire::ethernet::{self, ethertype};
use super::wire::ipv4::{self, protocol};
use super::wire::{arp, gre, icmp, ipv6, null, sll, tcp, udp};
use super::{Fragment, Network, PacketMeta, Transport};

/// More stacked VLAN tags than this is not a real frame.
const MAX_VLAN_TAGS: usize = 8;
/// More IPv6 extension headers than this is not a real packet.
const MAX_EXT_HEADERS: usize = 8;
/// EtherType of transparent Ethernet bridging in GRE (an inner frame).
const ETHERTYPE_TEB: u16 = 0x6558;
/// Link type of OpenBSD's raw IP (DLT_RAW there).
const LINKTYPE_RAW_OPENBSD: LinkType = LinkType(14);

/// The layer at which a frame stopped decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Malformed {
    /// A link type this decoder does not know.
    UnsupportedLink,
    /// Link-layer header (Ethernet, SLL, loopback) too short.
    Link,
    /// VLAN tag cut short or stacked too deep.
    Vlan,
    /// ARP packet invalid.
    Arp,
    /// IP header invalid (bad version, IHL < 5, lengths).
    Ip,
    /// IPv6 extension header chain invalid.
    Ipv6Ext,
    /// TCP header cut short or with a bad data offset.
    Tcp,
    /// UDP header cut short or with an impossible length.
    Udp,
    /// ICMP header cut short.
    Icmp,
    /// GRE header invalid.
    Gre,
}

impl Malformed {
    /// Every layer, in [`DecodeStats`] order.
    pub const ALL: [Malformed; 10] = [
        Malformed::UnsupportedLink,
        Malformed::Link,
        Malformed::Vlan,
        Malformed::Arp,
        Malformed::Ip,
        Malformed::Ipv6Ext,
        Malformed::Tcp,
        Malformed::Udp,
        Malformed::Icmp,
        Malformed::Gre,
    ];

    /// A short name for summaries.
    pub fn name(self) -> &'static str {
        match self {
            Malformed::UnsupportedLink => "unsupported link type",
            Malformed::Link => "link header",
            Malformed::Vlan => "vlan tag",
            Malformed::Arp => "arp",
            Malformed::Ip => "ip header",
            Malformed::Ipv6Ext => "ipv6 extension header",
            Malformed::Tcp => "tcp header",
            Malformed::Udp => "udp header",
            Malformed::Icmp => "icmp header",
            Malformed::Gre => "gre header",
        }
    }
}

/// Counts of decoded frames and of malformed ones by layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeStats {
    frames: u64,
    by_layer: [u64; Malformed::ALL.len()],
}

impl DecodeStats {
    /// Counts one decoded frame and, when it was malformed, its layer.
    pub fn record(&mut self, malformed: Option<Malformed>) {
        self.frames += 1;
        if let Some(m) = malformed {
            self.by_layer[m as usize] += 1;
        }
    }

    /// Frames decoded.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Frames with a malformed layer.
    pub fn malformed(&self) -> u64 {
        self.by_layer.iter().sum()
    }

    /// Malformed frames that stopped at `layer`.
    pub fn count(&self, layer: Malformed) -> u64 {
        self.by_layer[layer as usize]
    }
}

impl fmt::Display for DecodeStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} frames, {} malformed", self.frames, self.malformed())?;
        let mut sep = " (";
        for m in Malformed::ALL {
            let n = self.count(m);
            if n > 0 {
                write!(f, "{sep}{}: {n}", m.name())?;
                sep = ", ";
            }
        }
        if sep == ", " {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Decodes a frame as far as it goes.
pub fn decode(raw: &RawFrame<'_>) -> PacketMeta {
    decode_checked(raw).0
}

/// Decodes a frame as far as it goes and names the first malformed layer.
pub fn decode_checked(raw: &RawFrame<'_>) -> (PacketMeta, Option<Malformed>) {
    let mut d = Decoder {
        meta: PacketMeta {
            index: raw.index,
            timestamp: raw.timestamp(),
            wire_len: raw.wire_len,
            src_mac: [0; 6],
            dst_mac: [0; 6],
            network: Network::None,
            transport: Transport::None,
            fragment: None,
        },
        bad: None,
        tunnelled: false,
    };
    d.link(raw.link_type, raw.data);
    (d.meta, d.bad)
}

struct Decoder {
    meta: PacketMeta,
    bad: Option<Malformed>,
    /// Inside a tunnel: tunnels are not followed twice.
    tunnelled: bool,
}

impl Decoder {
    fn fail(&mut self, layer: Malformed) {
        self.bad.get_or_insert(layer);
    }

    fn link(&mut self, link_type: LinkType, b: &[u8]) {
        match link_type {
            LinkType::ETHERNET => self.ethernet(b),
            LinkType::LINUX_SLL => self.sll(b, sll::Version::V1),
            LinkType::LINUX_SLL2 => self.sll(b, sll::Version::V2),
            LinkType::RAW | LinkType::IPV4 | LinkType::IPV6 | LINKTYPE_RAW_OPENBSD => self.ip(b),
            LinkType::NULL | LinkType::LOOP => match null::Header::new_checked(b) {
                Ok(h) => match h.family() {
                    null::Family::Ipv4 | null::Family::Ipv6 => self.ip(h.payload()),
                    null::Family::Other(_) => {}
                },
                Err(_) => self.fail(Malformed::Link),
            },
            _ => self.fail(Malformed::UnsupportedLink),
        }
    }

    fn ethernet(&mut self, b: &[u8]) {
        match ethernet::Frame::new_checked(b) {
            Ok(f) => {
                self.meta.src_mac = f.src();
                self.meta.dst_mac = f.dst();
                self.ethertype(f.ethertype(), f.payload());
            }
            Err(_) => self.fail(Malformed::Link),
        }
    }

    fn sll(&mut self, b: &[u8], version: sll::Version) {
        match sll::Header::new_checked(b, version) {
            Ok(h) => {
                if let Some(mac) = h.src_mac() {
                    self.meta.src_mac = mac;
                }
                self.ethertype(h.protocol(), h.payload());
            }
            Err(_) => self.fail(Malformed::Link),
        }
    }

    fn ethertype(&mut self, mut t: u16, mut b: &[u8]) {
        let mut tags = 0;
        while ethertype::is_vlan(t) {
            let Ok(tag) = ethernet::VlanTag::new_checked(b).map_err(drop) else {
                return self.fail(Malformed::Vlan);
            };
            tags += 1;
            if tags > MAX_VLAN_TAGS {
                return self.fail(Malformed::Vlan);
            }
            t = tag.ethertype();
            b = tag.payload();
        }
        match t {
            ethertype::IPV4 => self.ipv4(b),
            ethertype::IPV6 => self.ipv6(b),
            ethertype::ARP => self.arp(b),
            // 802.3 lengths, LLDP, STP and friends: only the MACs are known.
            _ => {}
        }
    }

    fn arp(&mut self, b: &[u8]) {
        match arp::Packet::new_checked(b).map(|p| p.ipv4_addrs()) {
            Ok(Some((sender, target))) => self.meta.network = Network::Arp { sender, target },
            Ok(None) => {}
            Err(_) => self.fail(Malformed::Arp),
        }
    }

    fn ip(&mut self, b: &[u8]) {
        match b.first().map(|v| v >> 4) {
            Some(4) => self.ipv4(b),
            Some(6) => self.ipv6(b),
            _ => self.fail(Malformed::Ip),
        }
    }

    fn ipv4(&mut self, b: &[u8]) {
        let Ok(p) = ipv4::Packet::new_checked(b) else {
            return self.fail(Malformed::Ip);
        };
        self.meta.network = Network::Ip {
            src: IpAddr::V4(p.src()),
            dst: IpAddr::V4(p.dst()),
        };
        if p.is_fragment() {
            self.meta.fragment = Some(Fragment {
                id: p.ident(),
                protocol: p.protocol(),
                offset: 8 * u32::from(p.frag_offset()),
                len: u32::from(p.total_len()).saturating_sub(p.header_len() as u32),
                more: p.more_frags(),
            });
        }
        // Only the first fragment carries the transport header.
        if p.frag_offset() != 0 {
            self.meta.transport = Transport::Other(p.protocol());
            return;
        }
        self.transport(p.protocol(), p.payload(), false);
    }

    fn ipv6(&mut self, b: &[u8]) {
        let Ok(p) = ipv6::Packet::new_checked(b) else {
            return self.fail(Malformed::Ip);
        };
        self.meta.network = Network::Ip {
            src: IpAddr::V6(p.src()),
            dst: IpAddr::V6(p.dst()),
        };
        match upper_layer(&p) {
            Ok(Upper::Header(next, payload)) => self.transport(next, payload, true),
            Ok(Upper::LaterFragment(next)) => self.meta.transport = Transport::Other(next),
            Err(()) => self.fail(Malformed::Ipv6Ext),
        }
    }

    fn transport(&mut self, proto: u8, b: &[u8], v6: bool) {
        self.meta.transport = match proto {
            protocol::TCP => match tcp::Packet::new_checked(b) {
                Ok(t) => Transport::Tcp {
                    src_port: t.src_port(),
                    dst_port: t.dst_port(),
                    flags: t.flags(),
                },
                Err(_) => {
                    self.fail(Malformed::Tcp);
                    match tcp::partial(b) {
                        Some((src_port, dst_port, flags)) => Transport::Tcp {
                            src_port,
                            dst_port,
                            flags,
                        },
                        None => Transport::Other(proto),
                    }
                }
            },
            protocol::UDP => {
                if udp::Packet::new_checked(b).is_err() {
                    self.fail(Malformed::Udp);
                }
                match ports(b) {
                    Some((src_port, dst_port)) => Transport::Udp { src_port, dst_port },
                    None => Transport::Other(proto),
                }
            }
            protocol::ICMP if !v6 => self.icmp(b, false),
            protocol::ICMPV6 if v6 => self.icmp(b, true),
            protocol::GRE if !self.tunnelled => self.tunnel(proto, b),
            protocol::IPIP | protocol::IPV6 if !self.tunnelled => self.tunnel(proto, b),
            other => Transport::Other(other),
        };
    }

    fn icmp(&mut self, b: &[u8], v6: bool) -> Transport {
        let Ok(p) = icmp::Packet::new_checked(b) else {
            self.fail(Malformed::Icmp);
            return match b.first() {
                Some(&icmp_type) => Transport::Icmp {
                    icmp_type,
                    quoted: None,
                },
                None => Transport::Other(if v6 { protocol::ICMPV6 } else { protocol::ICMP }),
            };
        };
        let is_error = if v6 { p.is_error_v6() } else { p.is_error_v4() };
        Transport::Icmp {
            icmp_type: p.msg_type(),
            quoted: if is_error {
                quoted_ports(p.payload(), v6)
            } else {
                None
            },
        }
    }

    /// A GRE or IP-in-IP packet: the outer addresses stay, the ports are
    /// those of the tunnelled packet when it has TCP, UDP or ICMP.
    fn tunnel(&mut self, proto: u8, b: &[u8]) -> Transport {
        let outer = (self.meta.network, self.meta.src_mac, self.meta.dst_mac);
        self.tunnelled = true;
        match proto {
            protocol::GRE => match gre::Packet::new_checked(b) {
                Ok(g) if g.protocol() == ETHERTYPE_TEB => self.ethernet(g.payload()),
                Ok(g) => self.ethertype(g.protocol(), g.payload()),
                Err(_) => self.fail(Malformed::Gre),
            },
            _ => self.ip(b),
        }
        let inner = self.meta.transport;
        (self.meta.network, self.meta.src_mac, self.meta.dst_mac) = outer;
        match inner {
            Transport::None | Transport::Other(_) => Transport::Other(proto),
            t => t,
        }
    }
}

/// Where an IPv6 packet's upper layer starts.
enum Upper<'a> {
    /// The upper-layer protocol and its bytes.
    Header(u8, &'a [u8]),
    /// A non-first fragment: no upper-layer header here.
    LaterFragment(u8),
}

/// Walks the extension headers of an IPv6 packet.
fn upper_layer<'a>(p: &ipv6::Packet<&'a [u8]>) -> Result<Upper<'a>, ()> {
    let mut next = p.next_header();
    let mut b = p.payload();
    for _ in 0..MAX_EXT_HEADERS {
        if !ipv6::ext::is_ext(next) {
            return Ok(Upper::Header(next, b));
        }
        let h = ipv6::ExtHeader::new_checked(b, next).map_err(drop)?;
        next = h.next_header();
        if h.frag_offset().is_some_and(|off| off != 0) {
            return Ok(Upper::LaterFragment(next));
        }
        b = h.payload();
    }
    if ipv6::ext::is_ext(next) {
        return Err(());
    }
    Ok(Upper::Header(next, b))
}

/// The two ports at the start of a TCP or UDP header, if present.
fn ports(b: &[u8]) -> Option<(u16, u16)> {
    tcp::partial(b).map(|(s, d, _)| (s, d))
}

/// Ports of the TCP or UDP header quoted by an ICMP error message. The quote
/// may stop 8 bytes into the transport header, so only the ports are read.
fn quoted_ports(b: &[u8], v6: bool) -> Option<(u16, u16)> {
    let (proto, payload) = if v6 {
        let p = ipv6::Packet::new_checked(b).ok()?;
        match upper_layer(&p).ok()? {
            Upper::Header(next, payload) => (next, payload),
            Upper::LaterFragment(_) => return None,
        }
    } else {
        let p = ipv4::Packet::new_checked(b).ok()?;
        if p.frag_offset() != 0 {
            return None;
        }
        (p.protocol(), p.payload())
    };
    match proto {
        protocol::TCP | protocol::UDP => ports(payload),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const SRC_MAC: [u8; 6] = [0x5c, 0xcf, 0x7f, 0x05, 0xf2, 0xc6];
    const DST_MAC: [u8; 6] = [0x4c, 0x09, 0xd4, 0xc6, 0x12, 0x7b];
    const A: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 108);
    const B: Ipv4Addr = Ipv4Addr::new(52, 24, 43, 67);

    fn eth(t: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = DST_MAC.to_vec();
        f.extend_from_slice(&SRC_MAC);
        f.extend_from_slice(&t.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn ipv4(proto: u8, src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(payload);
        p
    }

    fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[next, 64]);
        p.extend_from_slice(&Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1).octets());
        p.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).octets());
        p.extend_from_slice(payload);
        p
    }

    fn tcp(sp: u16, dp: u16, flags: u8) -> Vec<u8> {
        let mut t = sp.to_be_bytes().to_vec();
        t.extend_from_slice(&dp.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0x72, 0x10, 0, 0, 0, 0]);
        t
    }

    fn udp(sp: u16, dp: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = sp.to_be_bytes().to_vec();
        u.extend_from_slice(&dp.to_be_bytes());
        u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        u
    }

    fn frame(link_type: LinkType, data: &[u8]) -> (PacketMeta, Option<Malformed>) {
        let raw = RawFrame {
            index: 3,
            ts_ns: 1_500_000_000_250_000_000,
            wire_len: data.len() as u32,
            link_type,
            interface: 0,
            data,
        };
        decode_checked(&raw)
    }

    fn v4(src: Ipv4Addr, dst: Ipv4Addr) -> Network {
        Network::Ip {
            src: IpAddr::V4(src),
            dst: IpAddr::V4(dst),
        }
    }

    #[test]
    fn ethernet_ipv4_tcp() {
        let f = eth(0x0800, &ipv4(6, A, B, &tcp(21074, 80, 0x02)));
        let (m, bad) = frame(LinkType::ETHERNET, &f);
        assert_eq!(bad, None);
        assert_eq!(m.index, 3);
        assert_eq!(m.timestamp, 1_500_000_000.25);
        assert_eq!(m.wire_len, f.len() as u32);
        assert_eq!((m.src_mac, m.dst_mac), (SRC_MAC, DST_MAC));
        assert_eq!(m.network, v4(A, B));
        assert_eq!(
            m.transport,
            Transport::Tcp {
                src_port: 21074,
                dst_port: 80,
                flags: 0x02
            }
        );
    }

    #[test]
    fn vlan_stacks() {
        let inner = ipv4(17, A, B, &udp(5000, 53, b"q"));
        let mut one = vec![0x00, 0x0a, 0x08, 0x00];
        one.extend_from_slice(&inner);
        let (m, bad) = frame(LinkType::ETHERNET, &eth(0x8100, &one));
        assert_eq!(bad, None);
        assert_eq!(
            m.transport,
            Transport::Udp {
                src_port: 5000,
                dst_port: 53
            }
        );
        let mut qinq = vec![0x00, 0x64, 0x81, 0x00];
        qinq.extend_from_slice(&one);
        let (m, bad) = frame(LinkType::ETHERNET, &eth(0x88a8, &qinq));
        assert_eq!(bad, None);
        assert_eq!(m.network, v4(A, B));
        // Nine tags: too deep.
        let mut deep = Vec::new();
        for _ in 0..9 {
            deep.extend_from_slice(&[0x00, 0x01, 0x81, 0x00]);
        }
        deep.extend_from_slice(&inner);
        assert_eq!(
            frame(LinkType::ETHERNET, &eth(0x8100, &deep)).1,
            Some(Malformed::Vlan)
        );
        // A tag cut short.
        let (m, bad) = frame(LinkType::ETHERNET, &eth(0x8100, &[0x00, 0x01]));
        assert_eq!(bad, Some(Malformed::Vlan));
        assert_eq!(m.src_mac, SRC_MAC);
    }

    #[test]
    fn linux_cooked_v1_and_v2() {
        let ip = ipv4(6, A, B, &tcp(1, 2, 0x10));
        let mut sll = vec![0, 0, 0, 1, 0, 6];
        sll.extend_from_slice(&SRC_MAC);
        sll.extend_from_slice(&[0, 0, 0x08, 0x00]);
        sll.extend_from_slice(&ip);
        let (m, bad) = frame(LinkType::LINUX_SLL, &sll);
        assert_eq!(bad, None);
        assert_eq!((m.src_mac, m.dst_mac), (SRC_MAC, [0; 6]));
        assert_eq!(m.network, v4(A, B));
        let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 4, 6];
        sll2.extend_from_slice(&SRC_MAC);
        sll2.extend_from_slice(&[0, 0]);
        sll2.extend_from_slice(&ip);
        let (m, bad) = frame(LinkType::LINUX_SLL2, &sll2);
        assert_eq!(bad, None);
        assert_eq!(m.src_mac, SRC_MAC);
        assert_eq!(
            m.transport,
            Transport::Tcp {
                src_port: 1,
                dst_port: 2,
                flags: 0x10
            }
        );
        assert_eq!(
            frame(LinkType::LINUX_SLL2, &sll2[..19]).1,
            Some(Malformed::Link)
        );
    }

    #[test]
    fn raw_ip_link_types() {
        let v4p = ipv4(17, A, B, &udp(1, 2, &[]));
        let v6p = ipv6(17, &udp(3, 4, &[]));
        for lt in [LinkType::RAW, LinkType::IPV4, LinkType(14)] {
            assert_eq!(frame(lt, &v4p).0.network, v4(A, B));
        }
        for lt in [LinkType::RAW, LinkType::IPV6] {
            let (m, bad) = frame(lt, &v6p);
            assert_eq!(bad, None);
            assert_eq!(
                m.transport,
                Transport::Udp {
                    src_port: 3,
                    dst_port: 4
                }
            );
        }
        assert_eq!(frame(LinkType::RAW, &[0x50, 0, 0]).1, Some(Malformed::Ip));
        assert_eq!(frame(LinkType::RAW, &[]).1, Some(Malformed::Ip));
    }

    #[test]
    fn loopback_link_types() {
        let mut null = vec![2, 0, 0, 0];
        null.extend_from_slice(&ipv4(1, A, B, &[8, 0, 0, 0, 0, 0, 0, 0]));
        let (m, bad) = frame(LinkType::NULL, &null);
        assert_eq!(bad, None);
        assert_eq!(
            m.transport,
            Transport::Icmp {
                icmp_type: 8,
                quoted: None
            }
        );
        let mut lo = vec![0, 0, 0, 24];
        lo.extend_from_slice(&ipv6(6, &tcp(7, 8, 0x12)));
        let (m, _) = frame(LinkType::LOOP, &lo);
        assert_eq!(
            m.transport,
            Transport::Tcp {
                src_port: 7,
                dst_port: 8,
                flags: 0x12
            }
        );
        assert_eq!(
            frame(LinkType::LOOP, &[0, 0, 0, 7, 0x45]).0.network,
            Network::None
        );
        assert_eq!(frame(LinkType::NULL, &[2, 0]).1, Some(Malformed::Link));
    }

    #[test]
    fn unknown_link_type_is_counted() {
        let (m, bad) = frame(LinkType(147), &[1, 2, 3]);
        assert_eq!(bad, Some(Malformed::UnsupportedLink));
        assert_eq!(m.wire_len, 3);
    }

    #[test]
    fn arp_addresses() {
        let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
        a.extend_from_slice(&SRC_MAC);
        a.extend_from_slice(&A.octets());
        a.extend_from_slice(&[0; 6]);
        a.extend_from_slice(&B.octets());
        let (m, bad) = frame(LinkType::ETHERNET, &eth(0x0806, &a));
        assert_eq!(bad, None);
        assert_eq!(
            m.network,
            Network::Arp {
                sender: A,
                target: B
            }
        );
        assert_eq!(m.transport, Transport::None);
        assert_eq!(
            frame(LinkType::ETHERNET, &eth(0x0806, &a[..20])).1,
            Some(Malformed::Arp)
        );
    }

    #[test]
    fn non_ip_frame_keeps_macs() {
        let (m, bad) = frame(LinkType::ETHERNET, &eth(0x0026, &[0x42, 0x42, 0x03]));
        assert_eq!(bad, None);
        assert_eq!(m.network, Network::None);
        assert_eq!(m.dst_mac, DST_MAC);
    }

    #[test]
    fn ipv4_malformed_headers() {
        let good = ipv4(6, A, B, &tcp(1, 2, 0));
        let mut ihl = good.clone();
        ihl[0] = 0x44;
        let mut version = good.clone();
        version[0] = 0x55;
        for bad in [&ihl[..], &version[..], &good[..19]] {
            let (m, b) = frame(LinkType::ETHERNET, &eth(0x0800, bad));
            assert_eq!(b, Some(Malformed::Ip));
            assert_eq!((m.network, m.src_mac), (Network::None, SRC_MAC));
        }
    }

    #[test]
    fn fragments_have_ports_only_in_the_first() {
        let mut first = ipv4(17, A, B, &udp(1000, 2000, &[0; 8]));
        first[6] = 0x20; // MF
        assert_eq!(
            frame(LinkType::RAW, &first).0.transport,
            Transport::Udp {
                src_port: 1000,
                dst_port: 2000
            }
        );
        let mut later = first.clone();
        later[6] = 0x00;
        later[7] = 0x02;
        let (m, bad) = frame(LinkType::RAW, &later);
        assert_eq!(bad, None);
        assert_eq!(m.transport, Transport::Other(17));
        // Where each sits: offsets in bytes, payload from the total length.
        let at = |b: &[u8]| frame(LinkType::RAW, b).0.fragment.unwrap();
        let (f, l) = (at(&first), at(&later));
        assert_eq!((f.offset, f.len, f.more, f.protocol), (0, 16, true, 17));
        assert_eq!((l.offset, l.len, l.more), (16, 16, false));
        assert_eq!(f.id, l.id);
        let whole = ipv4(17, A, B, &udp(1000, 2000, &[0; 8]));
        assert_eq!(frame(LinkType::RAW, &whole).0.fragment, None);
    }

    #[test]
    fn ipv6_extension_headers() {
        // Hop-by-hop, destination options, fragment (first), then TCP.
        let mut chain = vec![60, 0, 1, 4, 0, 0, 0, 0];
        chain.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]);
        chain.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 9]);
        chain.extend_from_slice(&tcp(443, 51000, 0x18));
        let (m, bad) = frame(LinkType::RAW, &ipv6(0, &chain));
        assert_eq!(bad, None);
        assert_eq!(
            m.transport,
            Transport::Tcp {
                src_port: 443,
                dst_port: 51000,
                flags: 0x18
            }
        );
        // A later fragment.
        let later = [17u8, 0, 0x00, 0x10, 0, 0, 0, 9, 1, 2, 3, 4];
        assert_eq!(
            frame(LinkType::RAW, &ipv6(44, &later)).0.transport,
            Transport::Other(17)
        );
        // A routing header claiming more than is there.
        let (m, bad) = frame(LinkType::RAW, &ipv6(43, &[6, 9, 0, 0, 0, 0, 0, 0]));
        assert_eq!(bad, Some(Malformed::Ipv6Ext));
        assert!(matches!(m.network, Network::Ip { .. }));
    }

    #[test]
    fn tcp_bad_data_offset_keeps_ports() {
        let mut t = tcp(1, 2, 0x02);
        t[12] = 0x30;
        let (m, bad) = frame(LinkType::RAW, &ipv4(6, A, B, &t));
        assert_eq!(bad, Some(Malformed::Tcp));
        assert_eq!(
            m.transport,
            Transport::Tcp {
                src_port: 1,
                dst_port: 2,
                flags: 0x02
            }
        );
        let (m, bad) = frame(LinkType::RAW, &ipv4(6, A, B, &t[..2]));
        assert_eq!(bad, Some(Malformed::Tcp));
        assert_eq!(m.transport, Transport::Other(6));
    }

    #[test]
    fn snap_cut_frame_decodes_as_far_as_it_goes() {
        let f = eth(0x0800, &ipv4(6, A, B, &tcp(5, 6, 0x02)));
        let cut = &f[..14 + 20 + 4];
        let raw = RawFrame {
            index: 1,
            ts_ns: 0,
            wire_len: 1514,
            link_type: LinkType::ETHERNET,
            interface: 0,
            data: cut,
        };
        let (m, _) = decode_checked(&raw);
        assert_eq!(m.wire_len, 1514);
        assert_eq!(m.network, v4(A, B));
        assert_eq!(
            m.transport,
            Transport::Tcp {
                src_port: 5,
                dst_port: 6,
                flags: 0
            }
        );
    }

    #[test]
    fn udp_impossible_length() {
        let mut u = udp(1, 2, &[]);
        u[5] = 3;
        let (m, bad) = frame(LinkType::RAW, &ipv4(17, A, B, &u));
        assert_eq!(bad, Some(Malformed::Udp));
        assert_eq!(
            m.transport,
            Transport::Udp {
                src_port: 1,
                dst_port: 2
            }
        );
    }

    #[test]
    fn icmp_errors_quote_ports() {
        let quoted = ipv4(17, B, A, &udp(53, 40000, &[]));
        let mut unreach = vec![3, 3, 0, 0, 0, 0, 0, 0];
        unreach.extend_from_slice(&quoted[..28]);
        let (m, bad) = frame(LinkType::RAW, &ipv4(1, A, B, &unreach));
        assert_eq!(bad, None);
        assert_eq!(
            m.transport,
            Transport::Icmp {
                icmp_type: 3,
                quoted: Some((53, 40000))
            }
        );
        // An echo request's payload is not a quote.
        let mut echo = vec![8, 0, 0, 0, 0, 0, 0, 0];
        echo.extend_from_slice(&quoted);
        assert_eq!(
            frame(LinkType::RAW, &ipv4(1, A, B, &echo)).0.transport,
            Transport::Icmp {
                icmp_type: 8,
                quoted: None
            }
        );
        // ICMPv6 time exceeded quoting TCP.
        let mut exceeded = vec![3, 0, 0, 0, 0, 0, 0, 0];
        exceeded.extend_from_slice(&ipv6(6, &tcp(80, 9999, 0x02)));
        assert_eq!(
            frame(LinkType::RAW, &ipv6(58, &exceeded)).0.transport,
            Transport::Icmp {
                icmp_type: 3,
                quoted: Some((80, 9999))
            }
        );
        // A cut quote is not an error of the outer packet.
        let mut cut = vec![11, 0, 0, 0, 0, 0, 0, 0];
        cut.extend_from_slice(&quoted[..10]);
        let (m, bad) = frame(LinkType::RAW, &ipv4(1, A, B, &cut));
        assert_eq!(
            (m.transport, bad),
            (
                Transport::Icmp {
                    icmp_type: 11,
                    quoted: None
                },
                None
            )
        );
        // An ICMP header cut short.
        let (m, bad) = frame(LinkType::RAW, &ipv4(1, A, B, &[3, 1]));
        assert_eq!(bad, Some(Malformed::Icmp));
        assert_eq!(
            m.transport,
            Transport::Icmp {
                icmp_type: 3,
                quoted: None
            }
        );
    }

    #[test]
    fn gre_and_ipip_take_inner_ports_and_outer_addresses() {
        let inner = ipv4(
            17,
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            &udp(7, 8, b"x"),
        );
        let mut gre = vec![0, 0, 0x08, 0x00];
        gre.extend_from_slice(&inner);
        let (m, bad) = frame(LinkType::ETHERNET, &eth(0x0800, &ipv4(47, A, B, &gre)));
        assert_eq!(bad, None);
        assert_eq!(m.network, v4(A, B));
        assert_eq!(
            m.transport,
            Transport::Udp {
                src_port: 7,
                dst_port: 8
            }
        );
        assert_eq!(m.src_mac, SRC_MAC);
        let (m, _) = frame(LinkType::RAW, &ipv4(4, A, B, &inner));
        assert_eq!(
            (m.network, m.transport),
            (
                v4(A, B),
                Transport::Udp {
                    src_port: 7,
                    dst_port: 8
                }
            )
        );
        // Inner Ethernet (transparent bridging) keeps the outer MACs.
        let mut teb = vec![0, 0, 0x65, 0x58];
        let mut inner_eth = vec![1; 12];
        inner_eth.extend_from_slice(&[0x08, 0x00]);
        inner_eth.extend_from_slice(&inner);
        teb.extend_from_slice(&inner_eth);
        let (m, _) = frame(LinkType::ETHERNET, &eth(0x0800, &ipv4(47, A, B, &teb)));
        assert_eq!(
            (m.src_mac, m.transport),
            (
                SRC_MAC,
                Transport::Udp {
                    src_port: 7,
                    dst_port: 8
                }
            )
        );
        // Malformed GRE, and GRE with a non-IP payload.
        let (m, bad) = frame(LinkType::RAW, &ipv4(47, A, B, &[0, 1]));
        assert_eq!(
            (m.transport, bad),
            (Transport::Other(47), Some(Malformed::Gre))
        );
        let (m, _) = frame(LinkType::RAW, &ipv4(47, A, B, &[0, 0, 0x88, 0xcc, 0]));
        assert_eq!(m.transport, Transport::Other(47));
        // A tunnel inside a tunnel is not followed.
        let nested = ipv4(4, A, B, &ipv4(4, A, B, &inner));
        assert_eq!(
            frame(LinkType::RAW, &nested).0.transport,
            Transport::Other(4)
        );
    }

    #[test]
    fn other_protocols() {
        let (m, bad) = frame(LinkType::RAW, &ipv4(132, A, B, &[0; 12]));
        assert_eq!((m.transport, bad), (Transport::Other(132), None));
    }

    #[test]
    fn never_panics_on_any_prefix() {
        let mut chain = vec![6, 0, 0, 1, 0, 0, 0, 9];
        chain.extend_from_slice(&tcp(1, 2, 3));
        let frames = [
            eth(0x0800, &ipv4(6, A, B, &tcp(1, 2, 3))),
            eth(0x86dd, &ipv6(44, &chain)),
            eth(0x8100, &[0, 1, 0x08, 0x06, 0, 1, 8, 0, 6, 4]),
            eth(0x0800, &ipv4(47, A, B, &[0, 0, 0x08, 0x00, 0x45, 0, 0, 20])),
        ];
        let mut stats = DecodeStats::default();
        for f in &frames {
            for n in 0..=f.len() {
                for lt in [
                    LinkType::ETHERNET,
                    LinkType::RAW,
                    LinkType::LINUX_SLL,
                    LinkType::NULL,
                ] {
                    stats.record(frame(lt, &f[..n]).1);
                }
            }
        }
        assert!(stats.malformed() > 0 && stats.malformed() < stats.frames());
    }

    #[test]
    fn stats_summarise() {
        let mut s = DecodeStats::default();
        s.record(None);
        s.record(Some(Malformed::Tcp));
        s.record(Some(Malformed::Tcp));
        assert_eq!(s.frames(), 3);
        assert_eq!(s.count(Malformed::Tcp), 2);
        assert_eq!(s.to_string(), "3 frames, 2 malformed (tcp header: 2)");
        assert_eq!(DecodeStats::default().to_string(), "0 frames, 0 malformed");
    }
}
