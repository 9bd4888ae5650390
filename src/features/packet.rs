//! The packet feature layouts' common ground: the [`FeatureExtractor`] trait
//! and [`Endpoints`], Kitsune's reading of a decoded frame (which addresses
//! and which "service" name a stream). The choice of a layout by name is
//! [`Layout`](super::combined::Layout).

use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::features::stream_table::{Key, TableStats};
use crate::ingest::packets::{Network, PacketMeta, Transport};

/// A layout's saved tables (warm restart): JSON kept as text, so that a
/// table of 100,000 hosts decodes straight into its types on load, not
/// through a JSON tree first (seconds and hundreds of MB at that size). A
/// model file holds it as it is, and a stream model takes it from the file
/// without a scan (see [`ModelFile::decode_but_last`]).
///
/// [`ModelFile::decode_but_last`]: crate::model::file::ModelFile::decode_but_last
#[derive(Debug, Clone)]
pub struct TableState(Json);

/// JSON checked as it was made (serialised, or parsed with the rest of a
/// model), or text taken from a model file unread (checked when restored,
/// and before it is written again).
#[derive(Debug, Clone)]
enum Json {
    Checked(Box<RawValue>),
    Unread(Box<str>),
}

impl TableState {
    /// The tables `tables` as JSON.
    pub fn of<T: Serialize>(tables: &T) -> Option<Self> {
        serde_json::value::to_raw_value(tables)
            .ok()
            .map(|raw| TableState(Json::Checked(raw)))
    }

    /// Tables saved as `json`.
    pub(crate) fn from_json(json: &str) -> Self {
        TableState(Json::Unread(json.into()))
    }

    /// The JSON text, which [`FeatureExtractor::restore`] reads.
    pub fn json(&self) -> &str {
        match &self.0 {
            Json::Checked(raw) => raw.get(),
            Json::Unread(text) => text,
        }
    }
}

impl PartialEq for TableState {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

impl Serialize for TableState {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        match &self.0 {
            Json::Checked(raw) => raw.serialize(s),
            Json::Unread(text) => RawValue::from_string(text.to_string())
                .map_err(S::Error::custom)?
                .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for TableState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(|raw| TableState(Json::Checked(raw)))
    }
}

/// Turns packets, one at a time, into fixed-length feature vectors.
pub trait FeatureExtractor: Send {
    /// Column names, one per feature, in output order.
    fn names(&self) -> &[String];

    /// Updates the statistics with packet `p` and writes its features.
    ///
    /// # Panics
    /// If `out.len()` differs from `names().len()` (a caller bug).
    fn update(&mut self, p: &PacketMeta, out: &mut [f64]);

    /// Occupancy and eviction counts of every stream table.
    fn table_stats(&self) -> Vec<TableStats>;

    /// Which end of the packet each run of features describes; by default
    /// one group, all features, about the destination.
    fn groups(&self) -> Vec<FeatureGroup> {
        vec![FeatureGroup {
            side: Side::Destination,
            range: 0..self.names().len(),
        }]
    }

    /// The tables' contents, to restart warm; `None` when the layout does
    /// not save them.
    fn state(&self) -> Option<TableState> {
        None
    }

    /// Restores tables saved by [`state`](Self::state) (its JSON).
    fn restore(&mut self, _state: &str) -> Result<()> {
        Err(Error::Data("this layout keeps no saved state".into()))
    }
}

/// The end of a packet a feature is about, and so the host an alert names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// What the destination receives: flood victims.
    Destination,
    /// What the source sends: scanners, infected devices.
    Source,
}

/// A run of features about one end of the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureGroup {
    /// Which end.
    pub side: Side,
    /// Where the features are in the vector.
    pub range: std::ops::Range<usize>,
}

/// What stands for a host in stream keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// An IP address (for ARP, the sender/target protocol address).
    Ip(IpAddr),
    /// A MAC address, for frames without IP or ARP.
    Mac([u8; 6]),
}

/// What stands for a port in socket stream keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// A TCP or UDP port (for ICMP errors, from the quoted header).
    Port(u16),
    /// ARP (socket streams are then keyed on MACs).
    Arp,
    /// ICMP without a quoted TCP/UDP header (ICMPv4 or ICMPv6).
    Icmp,
    /// Anything else.
    None,
}

/// Kitsune's reading of a frame: MACs, hosts and services of both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source host.
    pub src: Host,
    /// Destination host.
    pub dst: Host,
    /// Source service.
    pub src_service: Service,
    /// Destination service.
    pub dst_service: Service,
}

impl Endpoints {
    /// Maps a decoded frame: IP addresses and ports (ICMP errors: the quoted
    /// ports); ARP: sender/target addresses and [`Service::Arp`]; no network
    /// layer: the MACs stand in for the hosts.
    pub fn of(p: &PacketMeta) -> Self {
        let (src, dst, services) = match p.network {
            Network::Ip { src, dst } => (Host::Ip(src), Host::Ip(dst), services(&p.transport)),
            Network::Arp { sender, target } => (
                Host::Ip(IpAddr::V4(sender)),
                Host::Ip(IpAddr::V4(target)),
                (Service::Arp, Service::Arp),
            ),
            Network::None => (
                Host::Mac(p.src_mac),
                Host::Mac(p.dst_mac),
                (Service::None, Service::None),
            ),
        };
        Endpoints {
            src_mac: p.src_mac,
            dst_mac: p.dst_mac,
            src,
            dst,
            src_service: services.0,
            dst_service: services.1,
        }
    }
}

fn services(t: &Transport) -> (Service, Service) {
    match *t {
        Transport::Tcp {
            src_port, dst_port, ..
        }
        | Transport::Udp { src_port, dst_port } => {
            (Service::Port(src_port), Service::Port(dst_port))
        }
        Transport::Icmp {
            quoted: Some((s, d)),
            ..
        } => (Service::Port(s), Service::Port(d)),
        Transport::Icmp { quoted: None, .. } => (Service::Icmp, Service::Icmp),
        Transport::Other(_) | Transport::None => (Service::None, Service::None),
    }
}

/// Bytes of an encoded [`Host`]: a tag then 16 bytes.
pub const HOST_LEN: usize = 17;
/// Bytes of an encoded [`Service`]: a tag then 2 bytes.
pub const SERVICE_LEN: usize = 3;

/// Appends `h` as a fixed-size tagged field (no two hosts encode alike).
pub fn put_host<const N: usize>(key: &mut Key<N>, h: &Host) {
    let mut buf = [0u8; HOST_LEN];
    match h {
        Host::Ip(IpAddr::V4(a)) => {
            buf[0] = b'4';
            buf[1..5].copy_from_slice(&a.octets());
        }
        Host::Ip(IpAddr::V6(a)) => {
            buf[0] = b'6';
            buf[1..].copy_from_slice(&a.octets());
        }
        Host::Mac(m) => {
            buf[0] = b'M';
            buf[1..7].copy_from_slice(m);
        }
    }
    push_all(key, &buf);
}

/// Appends `s` as a fixed-size tagged field.
pub fn put_service<const N: usize>(key: &mut Key<N>, s: &Service) {
    let buf = match s {
        Service::Port(p) => {
            let [hi, lo] = p.to_be_bytes();
            [b'P', hi, lo]
        }
        Service::Arp => [b'A', 0, 0],
        Service::Icmp => [b'I', 0, 0],
        Service::None => [b'N', 0, 0],
    };
    push_all(key, &buf);
}

/// Appends `bytes`; the key sizes are fixed by the layouts so that every
/// field fits (checked by their tests), hence the debug assertion only.
pub(crate) fn push_all<const N: usize>(key: &mut Key<N>, bytes: &[u8]) {
    let fitted = key.push(bytes);
    debug_assert!(fitted, "key of {N} bytes too small");
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    pub(crate) fn meta(network: Network, transport: Transport) -> PacketMeta {
        PacketMeta {
            index: 1,
            timestamp: 1.5,
            wire_len: 60,
            src_mac: [0x00, 0x14, 0x1c, 0x28, 0xd6, 0x06],
            dst_mac: [0xff; 6],
            network,
            transport,
            fragment: None,
        }
    }

    pub(crate) fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(a))
    }

    #[test]
    fn tcp_and_quoted_icmp_give_ports() {
        let ip = Network::Ip {
            src: v4([10, 0, 0, 1]),
            dst: v4([10, 0, 0, 2]),
        };
        let e = Endpoints::of(&meta(
            ip,
            Transport::Tcp {
                src_port: 1,
                dst_port: 80,
                flags: 2,
            },
        ));
        assert_eq!(
            (e.src_service, e.dst_service),
            (Service::Port(1), Service::Port(80))
        );
        let e = Endpoints::of(&meta(
            ip,
            Transport::Icmp {
                icmp_type: 3,
                quoted: Some((53, 999)),
            },
        ));
        assert_eq!(
            (e.src_service, e.dst_service),
            (Service::Port(53), Service::Port(999))
        );
        let e = Endpoints::of(&meta(
            ip,
            Transport::Icmp {
                icmp_type: 8,
                quoted: None,
            },
        ));
        assert_eq!(e.src_service, Service::Icmp);
        let e = Endpoints::of(&meta(ip, Transport::Other(47)));
        assert_eq!(
            (e.src, e.src_service),
            (Host::Ip(v4([10, 0, 0, 1])), Service::None)
        );
    }

    #[test]
    fn arp_and_non_ip_frames() {
        let arp = Network::Arp {
            sender: Ipv4Addr::new(192, 168, 2, 109),
            target: Ipv4Addr::new(192, 168, 2, 106),
        };
        let e = Endpoints::of(&meta(arp, Transport::None));
        assert_eq!(e.dst, Host::Ip(v4([192, 168, 2, 106])));
        assert_eq!(e.src_service, Service::Arp);
        let e = Endpoints::of(&meta(Network::None, Transport::None));
        assert_eq!(
            (e.src, e.dst),
            (
                Host::Mac([0x00, 0x14, 0x1c, 0x28, 0xd6, 0x06]),
                Host::Mac([0xff; 6])
            )
        );
    }

    #[test]
    fn host_encodings_never_collide() {
        let hosts = [
            Host::Ip(v4([1, 2, 3, 4])),
            Host::Ip(IpAddr::V6(Ipv6Addr::from([
                1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ]))),
            Host::Mac([1, 2, 3, 4, 0, 0]),
        ];
        let keys: Vec<Key<17>> = hosts
            .iter()
            .map(|h| {
                let mut k = Key::new();
                put_host(&mut k, h);
                k
            })
            .collect();
        assert!(keys.iter().all(|k| k.len() == HOST_LEN));
        assert!(keys[0] != keys[1] && keys[1] != keys[2] && keys[0] != keys[2]);
        let mut a: Key<6> = Key::new();
        put_service(&mut a, &Service::Port(0));
        let mut b: Key<6> = Key::new();
        put_service(&mut b, &Service::None);
        assert_ne!(a, b);
    }
}
