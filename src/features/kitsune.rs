//! Kitsune's 100 packet features (Mirsky et al., NDSS 2018), as computed by
//! Kitsune-py's `netStat`/`AfterImage`, and a corrected variant.
//!
//! Four families of damped statistics, each for the decay rates 5, 3, 1, 0.1
//! and 0.01 (see [`crate::features::incstat`]), over the frame's size:
//!
//! | family | stream key                               | per rate |
//! |--------|------------------------------------------|----------|
//! | MI_dir | source MAC + source IP                   | weight, mean, variance |
//! | HH     | source IP, paired with destination IP    | weight, mean, variance, radius, magnitude, covariance, pcc |
//! | HH_jit | source IP + destination IP (value: time since the stream's last packet, 0 on its first) | weight, mean, variance |
//! | HpHp   | source IP + port, paired with destination IP + port (ARP: the MACs) | as HH |
//!
//! Mapping of frames ([`KitsuneInputs::from_packet`]): IP addresses and TCP/UDP
//! ports (ICMP errors: the quoted header's ports); ICMPv4 without a quoted
//! header: protocol `icmp`; ARP: protocol `arp` with the ARP sender/target
//! addresses as IPs; other IP traffic (ICMPv6 included, as tshark's `icmp.type`
//! field is ICMPv4 only): protocol `''`; frames without IP or ARP: the MACs
//! stand in for the IPs. Size is the wire length.
//!
//! # Layout `kitsune`: faithful, quirks included ([`Kitsune`])
//!
//! Reproduces Kitsune-py's outputs (checked against its own outputs in
//! `tests/kitsune_golden.rs`) and its column names, including:
//! - a fragmented IPv4 datagram's ports go to the fragment that completes
//!   it, none to the others, as tshark's reassembly gives them
//!   ([`reassembly`](super::reassembly));
//! - key parts are joined as text with no separator, so distinct streams can
//!   share a key (`192.168.2.1` + port `53` is stream `192.168.2.153` with
//!   no port; ARP socket streams and non-IP streams of a MAC coincide);
//! - the covariance of an existing pair is updated twice per packet: once by
//!   the insert into the source stream (which updates all its links), once
//!   more for the (source, destination) link; every link of the source is
//!   updated on every one of its packets;
//! - a frame whose two keys are equal reports the source stream's *first*
//!   link (its lookup matches any link that has the key at either end);
//! - the columns named `std` hold the variance `|CF2/w - mean^2|`;
//! - mean and variance are read as cached at the stream's last insert.
//!
//! # Layout `kitsune-corrected` ([`KitsuneCorrected`])
//!
//! Same 100 features in the same order, with:
//! - structured keys: fixed-size tagged fields (host: IPv4 / IPv6 / MAC;
//!   service: port / ARP / ICMP / none), so no two streams share a key, and
//!   ARP socket streams (MACs, service ARP) differ from non-IP ones;
//! - each packet updates the covariance of its (source, destination) pair
//!   once, and no other pair: the cost of a packet is O(1) whatever the
//!   source's fan-out (in Kitsune-py a host linked to many peers pays for
//!   all of them on every packet, which a spoofed flood turns into an
//!   algorithmic attack on the extractor);
//! - a frame whose two keys are equal uses its own self pair (covariance 0);
//! - ICMPv6 without a quoted header is service ICMP like ICMPv4;
//! - the variance columns are named `variance` (e.g. `HH_L5_variance`);
//! - decay factors come from `exp2` (a few ulps from Kitsune-py's `pow`,
//!   three times cheaper), and squares are plain products (at most an ulp
//!   from `pow(x, 2)`, without the check that matches its rounding).
//!
//! Both layouts bound every table (see [`crate::features::stream_table`]),
//! and the faithful one bounds its fan-out: a packet updates at most
//! [`TableConfig::fanout_limit`] links of its source (the newest). Below
//! those limits the faithful layout is exact; the shared reference captures
//! stay below the defaults (at most 140 links per sender, 37,624 streams).

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::error::{Error, Result};
use crate::features::incstat::{DecayCache, Stats1D, LAMBDAS, NL};
use crate::features::packet::{
    push_all, put_host, put_service, Endpoints, FeatureExtractor, Host, Service, HOST_LEN,
    SERVICE_LEN,
};
use crate::features::pair_table::{CovUpdates, Table2D};
use crate::features::reassembly::Reassembly;
use crate::features::stream_table::{Key, Table, TableConfig, TableStats};
use crate::ingest::packets::PacketMeta;

/// Number of features of both Kitsune layouts.
pub const N_FEATURES: usize = 100;

const MAC_TEXT: usize = 17;
/// Longest IP text (IPv6 with an embedded IPv4).
const IP_TEXT: usize = 45;
const PROTO_TEXT: usize = 5;

/// Text fields of one frame as Kitsune-py fed them to its statistics: the
/// hook the golden test and benchmark replay Kitsune-py's inputs through.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KitsuneInputs {
    /// Source MAC, `aa:bb:cc:dd:ee:ff`.
    pub src_mac: Key<MAC_TEXT>,
    /// Destination MAC.
    pub dst_mac: Key<MAC_TEXT>,
    /// Source IP text (or the source MAC for non-IP frames).
    pub src_ip: Key<IP_TEXT>,
    /// Source port, `arp`, `icmp` or empty.
    pub src_proto: Key<PROTO_TEXT>,
    /// Destination IP text (or the destination MAC).
    pub dst_ip: Key<IP_TEXT>,
    /// Destination port, `arp`, `icmp` or empty.
    pub dst_proto: Key<PROTO_TEXT>,
    /// Frame size (wire length).
    pub size: f64,
    /// Seconds since the epoch.
    pub timestamp: f64,
}

impl KitsuneInputs {
    /// From text fields in Kitsune's order `[srcMAC, dstMAC, srcIP,
    /// srcProtocol, dstIP, dstProtocol]`; an error names a field too long.
    pub fn new(fields: [&str; 6], size: f64, timestamp: f64) -> Result<Self> {
        const NAMES: [&str; 6] = [
            "srcMAC",
            "dstMAC",
            "srcIP",
            "srcProtocol",
            "dstIP",
            "dstProtocol",
        ];
        let [a, b, c, d, e, f] = fields;
        let too_long = |i: usize| {
            Error::Data(format!(
                "{} '{}' is too long for a stream key",
                NAMES[i], fields[i]
            ))
        };
        Ok(KitsuneInputs {
            src_mac: text(a).ok_or_else(|| too_long(0))?,
            dst_mac: text(b).ok_or_else(|| too_long(1))?,
            src_ip: text(c).ok_or_else(|| too_long(2))?,
            src_proto: text(d).ok_or_else(|| too_long(3))?,
            dst_ip: text(e).ok_or_else(|| too_long(4))?,
            dst_proto: text(f).ok_or_else(|| too_long(5))?,
            size,
            timestamp,
        })
    }

    /// Kitsune-py's mapping of a decoded frame (see the module docs).
    pub fn from_packet(p: &PacketMeta) -> Self {
        let e = Endpoints::of(p);
        let icmp_v6 = matches!(e.src, Host::Ip(IpAddr::V6(_))) && e.src_service == Service::Icmp;
        let proto = |s: &Service| {
            let mut k = Key::new();
            match s {
                Service::Port(port) => push_decimal(&mut k, u32::from(*port)),
                Service::Arp => push_all(&mut k, b"arp"),
                Service::Icmp if !icmp_v6 => push_all(&mut k, b"icmp"),
                Service::Icmp | Service::None => {}
            }
            k
        };
        KitsuneInputs {
            src_mac: mac_text(&p.src_mac),
            dst_mac: mac_text(&p.dst_mac),
            src_ip: host_text(&e.src),
            src_proto: proto(&e.src_service),
            dst_ip: host_text(&e.dst),
            dst_proto: proto(&e.dst_service),
            size: f64::from(p.wire_len),
            timestamp: p.timestamp,
        }
    }
}

fn text<const N: usize>(s: &str) -> Option<Key<N>> {
    let mut k = Key::new();
    k.push(s.as_bytes()).then_some(k)
}

fn mac_text(m: &[u8; 6]) -> Key<MAC_TEXT> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [b':'; MAC_TEXT];
    for (i, b) in m.iter().enumerate() {
        buf[3 * i] = HEX[usize::from(b >> 4)];
        buf[3 * i + 1] = HEX[usize::from(b & 15)];
    }
    let mut k = Key::new();
    push_all(&mut k, &buf);
    k
}

fn host_text(h: &Host) -> Key<IP_TEXT> {
    let mut k = Key::new();
    match h {
        Host::Ip(IpAddr::V4(a)) => {
            // Dotted quad into a local buffer, pushed once: this runs for
            // both ends of every packet.
            let mut buf = [b'.'; 15];
            let mut n = 0;
            for o in a.octets() {
                if o >= 100 {
                    buf[n] = b'0' + o / 100;
                    n += 1;
                }
                if o >= 10 {
                    buf[n] = b'0' + o / 10 % 10;
                    n += 1;
                }
                buf[n] = b'0' + o % 10;
                n += 2;
            }
            push_all(&mut k, &buf[..n - 1]);
        }
        Host::Ip(IpAddr::V6(a)) => {
            // At most 45 characters, so this cannot fail.
            let _ = write!(k, "{a}");
        }
        Host::Mac(m) => push_all(&mut k, mac_text(m).as_bytes()),
    }
    k
}

fn push_decimal<const N: usize>(k: &mut Key<N>, mut n: u32) {
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    push_all(k, &buf[i..]);
}

fn concat<const N: usize>(parts: &[&[u8]]) -> Key<N> {
    let mut k = Key::new();
    for p in parts {
        push_all(&mut k, p);
    }
    k
}

/// The keys of one packet's streams in the four families.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamKeys<M, H, J, P> {
    pub mi: M,
    pub h: (H, H),
    pub jit: J,
    pub hp: (P, P),
}

/// The four families of tables, generic over the key types.
#[derive(Debug)]
pub(crate) struct AfterImage<M, H, J, P> {
    mi: Table<M, Stats1D>,
    hh: Table2D<H>,
    jit: Table<J, Stats1D>,
    hp: Table2D<P>,
    cache: DecayCache,
}

impl<M, H, J, P> AfterImage<M, H, J, P>
where
    M: std::hash::Hash + Eq,
    H: std::hash::Hash + Eq,
    J: std::hash::Hash + Eq,
    P: std::hash::Hash + Eq,
{
    fn new(config: TableConfig, mode: CovUpdates) -> Result<Self> {
        config.validate()?;
        Ok(AfterImage {
            mi: Table::new(config),
            hh: Table2D::new(config, mode),
            jit: Table::new(config),
            hp: Table2D::new(config, mode),
            cache: DecayCache::new(mode == CovUpdates::Kitsune),
        })
    }

    /// One packet of size `v` at `t`; writes the 100 features in Kitsune's order.
    fn update(&mut self, keys: StreamKeys<M, H, J, P>, v: f64, t: f64, out: &mut [f64]) {
        assert_eq!(out.len(), N_FEATURES, "output slice length");
        let (mi_out, rest) = out.split_at_mut(3 * NL);
        let (hh_out, rest) = rest.split_at_mut(7 * NL);
        let (jit_out, hp_out) = rest.split_at_mut(3 * NL);
        self.mi.prefetch_victim();
        self.hh.prefetch_victims();
        self.jit.prefetch_victim();
        self.hp.prefetch_victims();
        // Every key hashed (and its bucket fetched) before any is used.
        let mi_key = self.mi.hashed(keys.mi);
        let h = (self.hh.hashed(keys.h.0), self.hh.hashed(keys.h.1));
        let jit_key = self.jit.hashed(keys.jit);
        let hp = (self.hp.hashed(keys.hp.0), self.hp.hashed(keys.hp.1));
        let cache = &mut self.cache;

        let i = self.mi.get_or_insert(mi_key, t, || Stats1D::new(t));
        let mi = self.mi.get_mut(i);
        mi.insert(v, t, cache);
        mi.write_1d(mi_out);

        let touched = self.hh.update_hashed(h.0, h.1, v, t, cache);
        write_2d(&self.hh, touched, hh_out);

        let j = self.jit.get_or_insert(jit_key, t, || Stats1D::new(t));
        let jit = self.jit.get_mut(j);
        jit.insert_gap(t, cache);
        jit.write_1d(jit_out);

        let touched = self.hp.update_hashed(hp.0, hp.1, v, t, cache);
        write_2d(&self.hp, touched, hp_out);
    }

    fn stats(&self) -> Vec<TableStats> {
        let mut v = vec![self.mi.stats("MI")];
        v.extend(self.hh.stats("HH"));
        v.push(self.jit.stats("HH_jit"));
        v.extend(self.hp.stats("HpHp"));
        v
    }
}

/// Per rate: weight, mean, variance of the source, then radius, magnitude,
/// covariance, pcc of the pair.
fn write_2d<K: std::hash::Hash + Eq>(
    t: &Table2D<K>,
    touched: crate::features::pair_table::Touched,
    out: &mut [f64],
) {
    let src = t.stream(touched.src);
    for (lane, chunk) in out.chunks_exact_mut(7).enumerate() {
        let l = &src.lanes[lane];
        chunk[..3].copy_from_slice(&[l.w, l.mean, l.var]);
        chunk[3..].copy_from_slice(&t.pair_stats(touched.pair, lane));
    }
}

fn lambda_label(l: f64) -> String {
    format!("{l}")
}

/// Kitsune-py's own column names (`MI_dir_5_std`, `HH_5_radius_0_1`, ...).
pub fn kitsune_names() -> Vec<String> {
    let mut v = Vec::with_capacity(N_FEATURES);
    let one = |fam: &str, v: &mut Vec<String>| {
        for l in LAMBDAS.map(lambda_label) {
            v.extend(["weight", "mean", "std"].map(|s| format!("{fam}_{l}_{s}")));
        }
    };
    let two = |fam: &str, v: &mut Vec<String>| {
        for l in LAMBDAS.map(lambda_label) {
            v.extend(
                [
                    "weight_0",
                    "mean_0",
                    "std_0",
                    "radius_0_1",
                    "magnitude_0_1",
                    "covariance_0_1",
                    "pcc_0_1",
                ]
                .map(|s| format!("{fam}_{l}_{s}")),
            );
        }
    };
    one("MI_dir", &mut v);
    two("HH", &mut v);
    one("HH_jit", &mut v);
    two("HpHp", &mut v);
    v
}

/// Honest column names of the corrected layout (`MI_dir_L5_variance`, `HH_L5_radius`, ...).
pub fn corrected_names() -> Vec<String> {
    let mut v = Vec::with_capacity(N_FEATURES);
    for (fam, stats) in [
        ("MI_dir", &["weight", "mean", "variance"][..]),
        (
            "HH",
            &[
                "weight",
                "mean",
                "variance",
                "radius",
                "magnitude",
                "covariance",
                "pcc",
            ][..],
        ),
        ("HH_jit", &["weight", "mean", "variance"][..]),
        (
            "HpHp",
            &[
                "weight",
                "mean",
                "variance",
                "radius",
                "magnitude",
                "covariance",
                "pcc",
            ][..],
        ),
    ] {
        for l in LAMBDAS.map(lambda_label) {
            v.extend(stats.iter().map(|s| format!("{fam}_L{l}_{s}")));
        }
    }
    v
}

const MI_KEY: usize = MAC_TEXT + IP_TEXT;
const JIT_KEY: usize = 2 * IP_TEXT;
const HP_KEY: usize = IP_TEXT + PROTO_TEXT;

/// Layout `kitsune`: Kitsune-py's features, quirks included (see the module docs).
#[derive(Debug)]
pub struct Kitsune {
    engine: AfterImage<Key<MI_KEY>, Key<IP_TEXT>, Key<JIT_KEY>, Key<HP_KEY>>,
    /// Which IPv4 fragment carries its datagram's ports, as tshark says.
    reassembly: Reassembly,
    names: Vec<String>,
}

impl Kitsune {
    /// An extractor whose tables are bounded by `config`.
    pub fn new(config: TableConfig) -> Result<Self> {
        Ok(Kitsune {
            engine: AfterImage::new(config, CovUpdates::Kitsune)?,
            reassembly: Reassembly::new(config.capacity),
            names: kitsune_names(),
        })
    }

    /// Updates with one frame given as Kitsune-py's inputs and writes its 100 features.
    ///
    /// # Panics
    /// If `out.len()` is not [`N_FEATURES`].
    #[doc(hidden)]
    pub fn update_inputs(&mut self, x: &KitsuneInputs, out: &mut [f64]) {
        let (src_mac, dst_mac) = (x.src_mac.as_bytes(), x.dst_mac.as_bytes());
        let (src_ip, dst_ip) = (x.src_ip.as_bytes(), x.dst_ip.as_bytes());
        let hp = if x.src_proto.as_bytes() == b"arp" {
            (concat(&[src_mac]), concat(&[dst_mac]))
        } else {
            (
                concat(&[src_ip, x.src_proto.as_bytes()]),
                concat(&[dst_ip, x.dst_proto.as_bytes()]),
            )
        };
        let keys = StreamKeys {
            mi: concat(&[src_mac, src_ip]),
            h: (concat(&[src_ip]), concat(&[dst_ip])),
            jit: concat(&[src_ip, dst_ip]),
            hp,
        };
        self.engine.update(keys, x.size, x.timestamp, out);
    }
}

impl FeatureExtractor for Kitsune {
    fn names(&self) -> &[String] {
        &self.names
    }

    fn update(&mut self, p: &PacketMeta, out: &mut [f64]) {
        let x = match self.reassembly.transport(p) {
            None => KitsuneInputs::from_packet(p),
            Some(transport) => KitsuneInputs::from_packet(&PacketMeta { transport, ..*p }),
        };
        self.update_inputs(&x, out);
    }

    fn table_stats(&self) -> Vec<TableStats> {
        let mut stats = self.engine.stats();
        stats.push(self.reassembly.stats());
        stats
    }
}

const C_MI_KEY: usize = 6 + HOST_LEN;
const C_JIT_KEY: usize = 2 * HOST_LEN;
const C_HP_KEY: usize = HOST_LEN + SERVICE_LEN;

/// Layout `kitsune-corrected`: the same features with the reference's bugs
/// fixed (see the module docs for every difference).
#[derive(Debug)]
pub struct KitsuneCorrected {
    engine: AfterImage<Key<C_MI_KEY>, Key<HOST_LEN>, Key<C_JIT_KEY>, Key<C_HP_KEY>>,
    names: Vec<String>,
}

impl KitsuneCorrected {
    /// An extractor whose tables are bounded by `config`.
    pub fn new(config: TableConfig) -> Result<Self> {
        Ok(KitsuneCorrected {
            engine: AfterImage::new(config, CovUpdates::Once)?,
            names: corrected_names(),
        })
    }
}

fn host_key<const N: usize>(h: &Host) -> Key<N> {
    let mut k = Key::new();
    put_host(&mut k, h);
    k
}

/// The corrected socket key: ARP streams are keyed on the MACs, as in Kitsune.
fn socket_key(mac: &[u8; 6], h: &Host, s: &Service) -> Key<C_HP_KEY> {
    let mut k = Key::new();
    let host = if *s == Service::Arp {
        Host::Mac(*mac)
    } else {
        *h
    };
    put_host(&mut k, &host);
    put_service(&mut k, s);
    k
}

impl FeatureExtractor for KitsuneCorrected {
    fn names(&self) -> &[String] {
        &self.names
    }

    fn update(&mut self, p: &PacketMeta, out: &mut [f64]) {
        let e = Endpoints::of(p);
        let mut mi = Key::new();
        push_all(&mut mi, &e.src_mac);
        put_host(&mut mi, &e.src);
        let mut jit = Key::new();
        put_host(&mut jit, &e.src);
        put_host(&mut jit, &e.dst);
        let keys = StreamKeys {
            mi,
            h: (host_key(&e.src), host_key(&e.dst)),
            jit,
            hp: (
                socket_key(&e.src_mac, &e.src, &e.src_service),
                socket_key(&e.dst_mac, &e.dst, &e.dst_service),
            ),
        };
        self.engine
            .update(keys, f64::from(p.wire_len), p.timestamp, out);
    }

    fn table_stats(&self) -> Vec<TableStats> {
        self.engine.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::packet::tests::{meta, v4};
    use crate::ingest::packets::{Network, Transport};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn fields(x: &KitsuneInputs) -> [String; 6] {
        [
            String::from_utf8_lossy(x.src_mac.as_bytes()).into_owned(),
            String::from_utf8_lossy(x.dst_mac.as_bytes()).into_owned(),
            String::from_utf8_lossy(x.src_ip.as_bytes()).into_owned(),
            String::from_utf8_lossy(x.src_proto.as_bytes()).into_owned(),
            String::from_utf8_lossy(x.dst_ip.as_bytes()).into_owned(),
            String::from_utf8_lossy(x.dst_proto.as_bytes()).into_owned(),
        ]
    }

    #[test]
    fn maps_udp_tcp_and_quoted_icmp() {
        let ip = Network::Ip {
            src: v4([192, 168, 2, 115]),
            dst: v4([192, 168, 2, 1]),
        };
        let x = KitsuneInputs::from_packet(&meta(
            ip,
            Transport::Udp {
                src_port: 2440,
                dst_port: 53,
            },
        ));
        assert_eq!(
            fields(&x),
            [
                "00:14:1c:28:d6:06",
                "ff:ff:ff:ff:ff:ff",
                "192.168.2.115",
                "2440",
                "192.168.2.1",
                "53"
            ]
        );
        assert_eq!((x.size, x.timestamp), (60.0, 1.5));
        let x = KitsuneInputs::from_packet(&meta(
            ip,
            Transport::Icmp {
                icmp_type: 3,
                quoted: Some((0, 65535)),
            },
        ));
        assert_eq!(
            fields(&x)[3..],
            ["0".to_string(), "192.168.2.1".into(), "65535".into()]
        );
    }

    #[test]
    fn maps_icmp_arp_other_and_non_ip() {
        let ip = Network::Ip {
            src: v4([192, 168, 2, 101]),
            dst: v4([192, 168, 2, 110]),
        };
        let x = KitsuneInputs::from_packet(&meta(
            ip,
            Transport::Icmp {
                icmp_type: 8,
                quoted: None,
            },
        ));
        assert_eq!(fields(&x)[3], "icmp");
        let x = KitsuneInputs::from_packet(&meta(ip, Transport::Other(2)));
        assert_eq!(fields(&x)[3], "");
        let arp = Network::Arp {
            sender: Ipv4Addr::new(192, 168, 2, 109),
            target: Ipv4Addr::new(192, 168, 2, 106),
        };
        let x = KitsuneInputs::from_packet(&meta(arp, Transport::None));
        assert_eq!(
            fields(&x)[2..],
            [
                "192.168.2.109".to_string(),
                "arp".into(),
                "192.168.2.106".into(),
                "arp".into()
            ]
        );
        let x = KitsuneInputs::from_packet(&meta(Network::None, Transport::None));
        assert_eq!(
            fields(&x)[2..],
            [
                "00:14:1c:28:d6:06".to_string(),
                "".into(),
                "ff:ff:ff:ff:ff:ff".into(),
                "".into()
            ]
        );
    }

    #[test]
    fn maps_ipv6_and_icmpv6() {
        let src = IpAddr::V6("fe80::1".parse::<Ipv6Addr>().expect("literal"));
        let dst = IpAddr::V6("ff02::1".parse::<Ipv6Addr>().expect("literal"));
        let x = KitsuneInputs::from_packet(&meta(
            Network::Ip { src, dst },
            Transport::Icmp {
                icmp_type: 134,
                quoted: None,
            },
        ));
        assert_eq!(
            fields(&x)[2..],
            [
                "fe80::1".to_string(),
                "".into(),
                "ff02::1".into(),
                "".into()
            ]
        );
        let long = IpAddr::V6(
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
                .parse::<Ipv6Addr>()
                .expect("literal"),
        );
        let x = KitsuneInputs::from_packet(&meta(
            Network::Ip {
                src: long,
                dst: long,
            },
            Transport::None,
        ));
        assert_eq!(x.src_ip.len(), 39);
    }

    #[test]
    fn inputs_reject_overlong_fields() {
        let ok = KitsuneInputs::new(["a", "b", "1.2.3.4", "80", "5.6.7.8", "443"], 60.0, 0.0);
        assert!(ok.is_ok());
        let err = KitsuneInputs::new(["a", "b", "1.2.3.4", "123456", "5.6.7.8", "443"], 60.0, 0.0);
        assert!(matches!(err, Err(Error::Data(m)) if m.contains("srcProtocol")));
    }

    #[test]
    fn names_have_kitsune_and_honest_forms() {
        let k = kitsune_names();
        let c = corrected_names();
        assert_eq!((k.len(), c.len()), (N_FEATURES, N_FEATURES));
        assert_eq!(k[2], "MI_dir_5_std");
        assert_eq!(k[18], "HH_5_radius_0_1");
        assert_eq!(k[50 + 9], "HH_jit_0.1_weight");
        assert_eq!(c[2], "MI_dir_L5_variance");
        assert_eq!(c[99], "HpHp_L0.01_pcc");
    }

    #[test]
    fn concatenated_keys_collide_only_in_the_faithful_layout() {
        // 192.168.2.1 port 53 and 192.168.2.153 with no port share a HpHp key
        // in Kitsune-py; the corrected layout keeps them apart.
        let a = meta(
            Network::Ip {
                src: v4([192, 168, 2, 1]),
                dst: v4([10, 0, 0, 1]),
            },
            Transport::Udp {
                src_port: 53,
                dst_port: 7,
            },
        );
        let b = meta(
            Network::Ip {
                src: v4([192, 168, 2, 153]),
                dst: v4([10, 0, 0, 2]),
            },
            Transport::Other(47),
        );
        let mut out = [0.0; N_FEATURES];
        let mut faithful = Kitsune::new(TableConfig::default()).expect("config");
        let mut corrected = KitsuneCorrected::new(TableConfig::default()).expect("config");
        for x in [&mut faithful as &mut dyn FeatureExtractor, &mut corrected] {
            x.update(&a, &mut out);
            x.update(&b, &mut out);
        }
        let hp_streams =
            |s: Vec<TableStats>| s.iter().find(|t| t.name == "HpHp.streams").map(|t| t.len);
        assert_eq!(
            hp_streams(faithful.table_stats()),
            Some(3),
            "collision: 3 distinct streams, not 4"
        );
        assert_eq!(hp_streams(corrected.table_stats()), Some(4));
    }

    #[test]
    fn million_spoofed_sources_keep_every_table_at_its_cap() {
        let cap = 10_000;
        let config = TableConfig {
            capacity: cap,
            ..TableConfig::default()
        };
        let mut faithful = Kitsune::new(config).expect("config");
        let mut corrected = KitsuneCorrected::new(config).expect("config");
        let mut out = [0.0; N_FEATURES];
        for i in 0..1_000_000u32 {
            let src = v4(i.wrapping_mul(0x9e37_79b1).to_be_bytes());
            let mut p = meta(
                Network::Ip {
                    src,
                    dst: v4([10, 10, 10, 10]),
                },
                Transport::Tcp {
                    src_port: (i % 60_000) as u16,
                    dst_port: 80,
                    flags: 2,
                },
            );
            p.timestamp = 1e9 + f64::from(i) * 1e-6;
            let x: &mut dyn FeatureExtractor = if i % 2 == 0 {
                &mut faithful
            } else {
                &mut corrected
            };
            x.update(&p, &mut out);
        }
        assert!(out.iter().all(|v| v.is_finite()));
        for x in [&faithful as &dyn FeatureExtractor, &corrected] {
            // The faithful layout's fragment table sees no fragments here.
            let tables: Vec<_> = x
                .table_stats()
                .into_iter()
                .filter(|t| t.name != "IP.fragments")
                .collect();
            assert_eq!(tables.len(), 6);
            for t in &tables {
                assert!(t.len <= cap, "{t:?}");
                // 500,000 distinct sources each: all but the last cap evicted
                // (the victim's own streams stay).
                assert!(t.evicted >= 500_000 - cap as u64, "{t:?}");
            }
        }
    }

    #[test]
    fn faithful_and_corrected_agree_on_simple_traffic() {
        // One TCP conversation, no collisions: only the covariance differs.
        let ip = |s, d| Network::Ip {
            src: v4(s),
            dst: v4(d),
        };
        let mut faithful = Kitsune::new(TableConfig::default()).expect("config");
        let mut corrected = KitsuneCorrected::new(TableConfig::default()).expect("config");
        let (mut a, mut b) = ([0.0; N_FEATURES], [0.0; N_FEATURES]);
        for k in 0..50u32 {
            let (s, d, sp, dp) = if k % 3 == 0 {
                ([10, 0, 0, 2], [10, 0, 0, 1], 80, 4000)
            } else {
                ([10, 0, 0, 1], [10, 0, 0, 2], 4000, 80)
            };
            let mut p = meta(
                ip(s, d),
                Transport::Tcp {
                    src_port: sp,
                    dst_port: dp,
                    flags: 0x10,
                },
            );
            p.timestamp = 100.0 + f64::from(k) * 0.01;
            p.wire_len = 60 + (k * 97) % 1400;
            faithful.update(&p, &mut a);
            corrected.update(&p, &mut b);
            let covariance_or_pcc = |i: usize| match i {
                15..=49 => (i - 15) % 7 >= 5,
                65..=99 => (i - 65) % 7 >= 5,
                _ => false,
            };
            for i in (0..N_FEATURES).filter(|&i| !covariance_or_pcc(i)) {
                assert!(
                    (a[i] - b[i]).abs() <= 1e-9 * a[i].abs().max(1.0),
                    "packet {k} feature {i}: {} vs {}",
                    a[i],
                    b[i]
                );
            }
        }
        assert!(a.iter().chain(&b).all(|v| v.is_finite()));
    }
}
