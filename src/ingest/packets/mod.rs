//! Packet captures: pcap / pcapng files and live interfaces, decoded into
//! [`PacketMeta`], the one record the packet feature extractors read.

use std::net::IpAddr;

/// The network layer of a frame, as far as the features need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// No IP or ARP header (e.g. LLDP, STP): only the MACs are known.
    None,
    /// IPv4 or IPv6: the outer header's addresses.
    Ip {
        /// Source address.
        src: IpAddr,
        /// Destination address.
        dst: IpAddr,
    },
    /// ARP: the sender and target protocol addresses (IPv4).
    Arp {
        /// Sender protocol address.
        sender: std::net::Ipv4Addr,
        /// Target protocol address.
        target: std::net::Ipv4Addr,
    },
}

/// The transport of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP with its ports and flags byte (FIN=0x01 ... CWR=0x80).
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Flags byte.
        flags: u8,
    },
    /// UDP with its ports.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// ICMPv4 or ICMPv6. `quoted` holds the ports of a TCP/UDP header quoted
    /// in an ICMP error message, when there is one.
    Icmp {
        /// ICMP type.
        icmp_type: u8,
        /// Ports of the quoted transport header of an error message.
        quoted: Option<(u16, u16)>,
    },
    /// Any other IP protocol number.
    Other(u8),
    /// Not IP (ARP, non-IP frames).
    None,
}

/// One decoded frame: what every packet feature layout reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacketMeta {
    /// 1-based frame number in its capture.
    pub index: u64,
    /// Capture time, seconds since the Unix epoch.
    pub timestamp: f64,
    /// The frame's original length on the wire (not the captured length).
    pub wire_len: u32,
    /// Source MAC (zero for link types without one).
    pub src_mac: [u8; 6],
    /// Destination MAC (zero for link types without one).
    pub dst_mac: [u8; 6],
    /// Network layer.
    pub network: Network,
    /// Transport layer.
    pub transport: Transport,
    /// Where an IPv4 fragment sits in its datagram (`None` for whole
    /// datagrams, and for IPv6).
    pub fragment: Option<Fragment>,
}

/// An IPv4 fragment's place in its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// The datagram's identification field.
    pub id: u16,
    /// The datagram's IP protocol.
    pub protocol: u8,
    /// Offset of this fragment's payload in the datagram, in bytes.
    pub offset: u32,
    /// Payload bytes of this fragment (from the IP total length).
    pub len: u32,
    /// Whether more fragments follow (false on the last).
    pub more: bool,
}

pub mod capture;
pub mod decode;
pub mod frame;
#[cfg(feature = "live")]
pub mod live;
pub mod pcap;
pub(crate) mod pcapng;
pub mod splice;
pub mod synth;
pub mod wire;
