//! The hosts of the day profile and their background chatter.

use std::net::Ipv4Addr;

use rand::Rng;

use super::{Event, Sim, NS};
use crate::ingest::packets::synth::{
    arp_frame, dns, icmp_frame, tcp_frame, udp_frame, BROADCAST, CLOUD, DNS_NAMES, GATEWAY_IP,
    GATEWAY_MAC, MQTT_BROKER, NTP_SERVER,
};

/// Packets an exchange writes on average (request, reply, sometimes an
/// ACK; multicast has no reply), worked out from the mixes and weights below.
pub(super) const PACKETS_PER_EXCHANGE: f64 = 2.5;
/// Mean time between two quiet spells of a host, seconds.
const QUIET_EVERY: f64 = 9000.0;
/// The monitoring host's address (last octet).
pub(super) const MONITOR: u8 = 3;
/// The NAS's address (last octet).
pub(super) const NAS: u8 = 2;
/// The device of the `infected` scenario (last octet).
pub(super) const INFECTED: u8 = 23;
/// The camera that starts streaming (last octet).
pub(super) const CAMERA: u8 = 30;
const MDNS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
const MDNS_MAC: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb];
const SSDP: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);
const SSDP_MAC: [u8; 6] = [0x01, 0x00, 0x5e, 0x7f, 0xff, 0xfa];

/// What a host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Nas,
    Monitor,
    Pc,
    Phone,
    Iot,
    Camera,
    Media,
}

use Kind::*;

/// The hosts: last octet and kind.
const ROSTER: [(u8, Kind); 31] = [
    (NAS, Nas),
    (MONITOR, Monitor),
    (10, Pc),
    (11, Pc),
    (12, Pc),
    (13, Pc),
    (20, Phone),
    (21, Phone),
    (22, Phone),
    (INFECTED, Iot),
    (24, Iot),
    (25, Iot),
    (26, Iot),
    (27, Iot),
    (28, Iot),
    (29, Iot),
    (CAMERA, Camera),
    (31, Media),
    (32, Media),
    (33, Media),
    (40, Iot),
    (41, Iot),
    (42, Iot),
    (43, Iot),
    (44, Iot),
    (45, Iot),
    (46, Iot),
    (47, Iot),
    (50, Phone),
    (51, Iot),
    (52, Pc),
];

/// Late-comers and when they join (share of the capture).
const JOINERS: [(u8, f64); 3] = [(50, 0.2), (51, 0.45), (52, 0.7)];
/// Hosts that leave for good, and when (share of the capture).
const LEAVERS: [(u8, f64); 2] = [(21, 0.3), (22, 0.6)];

/// Background activities.
#[derive(Debug, Clone, Copy)]
enum Activity {
    Dns,
    Ntp,
    Mqtt,
    Https,
    Http,
    Mdns,
    Ssdp,
    Arp,
}

const ACTIVITIES: [Activity; 8] = [
    Activity::Dns,
    Activity::Ntp,
    Activity::Mqtt,
    Activity::Https,
    Activity::Http,
    Activity::Mdns,
    Activity::Ssdp,
    Activity::Arp,
];

impl Kind {
    /// Weights of [`ACTIVITIES`] for this kind.
    fn mix(self) -> [u32; 8] {
        match self {
            Iot => [15, 3, 30, 20, 3, 4, 2, 5],
            Camera => [10, 2, 0, 40, 2, 3, 6, 3],
            Media => [15, 2, 0, 40, 2, 10, 12, 3],
            Pc => [20, 1, 0, 55, 8, 5, 4, 3],
            Phone => [20, 1, 0, 55, 4, 10, 3, 3],
            Nas => [10, 2, 0, 30, 2, 10, 6, 3],
            Monitor => [20, 5, 0, 10, 0, 2, 0, 5],
        }
    }

    /// Share of the chatter a host of this kind starts.
    fn weight(self) -> f64 {
        match self {
            Pc => 3.0,
            Phone => 2.0,
            Media | Nas => 1.5,
            Iot | Camera => 1.0,
            Monitor => 0.5,
        }
    }

    /// Open TCP ports.
    pub(super) fn open_ports(self) -> &'static [u16] {
        match self {
            Nas => &[22, 80, 139, 445, 5000, 5001],
            Monitor => &[22, 3000],
            Pc => &[135, 139, 445],
            Phone => &[],
            Iot => &[80],
            Camera => &[80, 554],
            Media => &[8008, 8009],
        }
    }
}

/// A host on the home network.
#[derive(Debug, Clone)]
pub(super) struct Host {
    pub(super) ip: Ipv4Addr,
    pub(super) mac: [u8; 6],
    pub(super) kind: Kind,
    /// Present from `join_ns` until `leave_ns`.
    pub(super) join_ns: i64,
    pub(super) leave_ns: i64,
    /// The current or next quiet spell; never quiet when `quiet_until` is 0.
    quiet_from: i64,
    quiet_until: i64,
    seq: u32,
    mqtt_port: u16,
    https_port: u16,
    /// Its vendor's cloud server.
    cloud: Ipv4Addr,
}

impl Host {
    /// Joined and not left at `t`.
    pub(super) fn present(&self, t: i64) -> bool {
        (self.join_ns..self.leave_ns).contains(&t)
    }

    /// Open TCP ports.
    pub(super) fn open_ports(&self) -> &'static [u16] {
        match self.ip.octets()[3] {
            INFECTED => &[23, 80, 554],
            _ => self.kind.open_ports(),
        }
    }
}

/// The reply half of a background exchange.
#[derive(Debug, Clone, Copy)]
pub(super) enum Reply {
    Dns {
        host: usize,
        port: u16,
        id: u16,
        name: usize,
    },
    Ntp {
        host: usize,
        port: u16,
    },
    /// The server's answer on connection `ports` (host's port, server's);
    /// the host's ACK follows.
    Tcp {
        host: usize,
        remote: Ipv4Addr,
        ports: (u16, u16),
        len: u16,
    },
    /// The host's ACK.
    Ack {
        host: usize,
        remote: Ipv4Addr,
        ports: (u16, u16),
    },
    Arp {
        host: usize,
    },
}

/// Names the hosts look up: the IoT ones, then the PCs' and phones'.
const WEB_NAMES: [&str; 6] = [
    "www.news.example",
    "mail.example.org",
    "cdn.video.example",
    "api.social.example",
    "store.example.net",
    "backup.cloud.example",
];

/// A web server address for a PC or phone (151.101.x.y).
fn web_server(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(151, 101, i / 8, 10 + i % 8 * 7)
}

impl Sim {
    pub(super) fn add_hosts(&mut self) {
        let mut total = 0.0;
        for (i, &(octet, kind)) in ROSTER.iter().enumerate() {
            let join_ns = match JOINERS.iter().find(|j| j.0 == octet) {
                Some(&(_, at)) => self.part(at, at + 0.05),
                None => self.start_ns,
            };
            let leave_ns = match LEAVERS.iter().find(|j| j.0 == octet) {
                Some(&(_, at)) => self.part(at, at + 0.05),
                None => i64::MAX,
            };
            let steady = matches!(kind, Nas | Monitor) || matches!(octet, INFECTED | CAMERA);
            let quiet_from = join_ns + self.exp_ns(QUIET_EVERY);
            let host = Host {
                ip: Ipv4Addr::new(192, 168, 1, octet),
                mac: [0x02, 0x42, 0x1c, 0x00, 0x01, octet],
                kind,
                join_ns,
                leave_ns,
                quiet_from,
                quiet_until: if steady {
                    0
                } else {
                    quiet_from + self.quiet_len()
                },
                seq: self.rng.random(),
                mqtt_port: self.rng.random_range(40_000..60_000),
                https_port: self.rng.random_range(40_000..60_000),
                cloud: Ipv4Addr::new(35, 156, 70 + octet % 5, 12),
            };
            if join_ns > self.start_ns {
                self.at(join_ns - 30_000_000, Event::Join(i, 0));
            }
            self.by_octet[usize::from(octet)] = Some(i);
            total += kind.weight();
            self.weights.push(total);
            self.hosts.push(host);
        }
    }

    /// Length of a quiet spell: 10 to 60 minutes.
    fn quiet_len(&mut self) -> i64 {
        (self.rng.random_range(600.0..3600.0) * NS) as i64
    }

    /// Present and not in a quiet spell at `t`.
    fn active(&mut self, h: usize, t: i64) -> bool {
        if !self.hosts[h].present(t) {
            return false;
        }
        let host = &self.hosts[h];
        if host.quiet_until == 0 || t < host.quiet_from {
            return true;
        }
        while t >= self.hosts[h].quiet_until {
            let from = self.hosts[h].quiet_until + self.exp_ns(QUIET_EVERY);
            let len = self.quiet_len();
            let host = &mut self.hosts[h];
            host.quiet_from = from;
            host.quiet_until = from + len;
        }
        t < self.hosts[h].quiet_from
    }

    /// An active host picked by chatter weight, if one turns up quickly.
    pub(super) fn pick_active(&mut self, t: i64, kinds: &[Kind]) -> Option<usize> {
        let total = *self.weights.last()?;
        for _ in 0..16 {
            let x = self.rng.random_range(0.0..total);
            let h = self.weights.partition_point(|&w| w <= x);
            if kinds.contains(&self.hosts[h].kind) && self.active(h, t) {
                return Some(h);
            }
        }
        None
    }

    /// Chatter exchanges per second at `t`.
    fn chatter_rate(&self, t: i64) -> f64 {
        let phase = std::f64::consts::TAU * (t - self.start_ns) as f64 / self.day_ns;
        self.exchange_rate * (1.0 - super::SWING * phase.cos()) / self.swing_mean
    }

    /// Starts a background exchange and schedules the next one.
    pub(super) fn chatter(&mut self, t: i64, f: &mut Vec<u8>) -> bool {
        let gap = -(1.0 - self.rng.random::<f64>()).ln() / self.chatter_rate(t);
        self.at(t + (gap * NS) as i64 + 1, Event::Chatter);
        let all = [Nas, Monitor, Pc, Phone, Iot, Camera, Media];
        let Some(h) = self.pick_active(t, &all) else {
            return false;
        };
        let i = self.weighted(&self.hosts[h].kind.mix());
        self.request(t, h, ACTIVITIES[i], f);
        true
    }

    /// An index into `weights`, picked with those weights.
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let mut pick = self.rng.random_range(0..weights.iter().sum::<u32>());
        for (i, &w) in weights.iter().enumerate() {
            if pick < w {
                return i;
            }
            pick -= w;
        }
        0
    }

    /// Schedules reply `r` within `lo..hi` seconds.
    fn reply_in(&mut self, t: i64, lo_hi: (f64, f64), r: Reply) {
        self.after(t, lo_hi, Event::Reply(r));
    }

    fn request(&mut self, t: i64, h: usize, a: Activity, f: &mut Vec<u8>) {
        let d = self.hosts[h].clone();
        let port = self.rng.random_range(32_768..61_000);
        match a {
            Activity::Dns => self.dns_query(t, h, f),
            Activity::Ntp => {
                udp_frame(
                    f,
                    d.mac,
                    GATEWAY_MAC,
                    d.ip,
                    NTP_SERVER,
                    64,
                    port,
                    123,
                    |p| {
                        p.push(0x23);
                        p.resize(p.len() + 47, 0);
                    },
                );
                self.reply_in(t, (0.01, 0.04), Reply::Ntp { host: h, port });
            }
            Activity::Mqtt => {
                let ports = (d.mqtt_port, 1883);
                self.tcp_out(h, MQTT_BROKER, ports, &[0xc0, 0x00], f);
                let r = Reply::Tcp {
                    host: h,
                    remote: MQTT_BROKER,
                    ports,
                    len: 2,
                };
                self.reply_in(t, (0.02, 0.08), r);
            }
            Activity::Https => self.https(t, h, port, f),
            Activity::Http => {
                let req = b"GET /status HTTP/1.1\r\nHost: api.iot-vendor.example\r\n\r\n";
                self.tcp_out(h, CLOUD, (port, 80), req, f);
                let r = Reply::Tcp {
                    host: h,
                    remote: CLOUD,
                    ports: (port, 80),
                    len: 0,
                };
                self.reply_in(t, (0.02, 0.1), r);
            }
            Activity::Mdns => udp_frame(f, d.mac, MDNS_MAC, d.ip, MDNS, 255, 5353, 5353, |p| {
                dns(p, 0, "_googlecast._tcp.local", false)
            }),
            Activity::Ssdp => {
                let msg = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\nST: ssdp:all\r\n\r\n";
                udp_frame(f, d.mac, SSDP_MAC, d.ip, SSDP, 4, port, 1900, |p| {
                    p.extend_from_slice(msg)
                });
            }
            Activity::Arp => {
                arp_frame(f, d.mac, BROADCAST, 1, d.mac, d.ip, [0; 6], GATEWAY_IP);
                self.reply_in(t, (0.0005, 0.003), Reply::Arp { host: h });
            }
        }
    }

    /// A DNS query from host `h` to the gateway, its answer scheduled.
    pub(super) fn dns_query(&mut self, t: i64, h: usize, f: &mut Vec<u8>) {
        let name = match self.hosts[h].kind {
            Pc | Phone => DNS_NAMES.len() + self.rng.random_range(0..WEB_NAMES.len()),
            _ => self.rng.random_range(0..DNS_NAMES.len()),
        };
        self.lookup(t, h, name, f);
    }

    /// Host `h` looks up name `name` (an index into the IoT then web names).
    pub(super) fn lookup(&mut self, t: i64, h: usize, name: usize, f: &mut Vec<u8>) {
        let d = &self.hosts[h];
        let (port, id) = (self.rng.random_range(32_768..61_000), self.rng.random());
        udp_frame(f, d.mac, GATEWAY_MAC, d.ip, GATEWAY_IP, 64, port, 53, |p| {
            dns(p, id, name_of(name), false)
        });
        let r = Reply::Dns {
            host: h,
            port,
            id,
            name,
        };
        self.reply_in(t, (0.002, 0.03), r);
    }

    /// A TLS record from host `h`; the server answers.
    fn https(&mut self, t: i64, h: usize, port: u16, f: &mut Vec<u8>) {
        let d = &self.hosts[h];
        let (remote, lport) = match d.kind {
            Pc | Phone => (web_server(self.rng.random_range(0..48)), port),
            _ => (d.cloud, d.https_port),
        };
        let len = self.rng.random_range(30..400);
        self.tls_body(len);
        let body = std::mem::take(&mut self.body);
        self.tcp_out(h, remote, (lport, 443), &body, f);
        self.body = body;
        let r = Reply::Tcp {
            host: h,
            remote,
            ports: (lport, 443),
            len: self.rng.random_range(30..1200),
        };
        self.reply_in(t, (0.02, 0.12), r);
    }

    /// Fills `self.body` with a TLS application-data record of `len` bytes.
    fn tls_body(&mut self, len: u16) {
        let at = self
            .rng
            .random_range(0..self.noise.len() - usize::from(len));
        self.body.clear();
        self.body.extend_from_slice(&[0x17, 0x03, 0x03]);
        self.body.extend_from_slice(&len.to_be_bytes());
        self.body
            .extend_from_slice(&self.noise[at..at + usize::from(len)]);
    }

    /// A TCP segment from host `h` to `remote` through the gateway.
    pub(super) fn tcp_out(
        &mut self,
        h: usize,
        remote: Ipv4Addr,
        ports: (u16, u16),
        body: &[u8],
        f: &mut Vec<u8>,
    ) {
        let d = &mut self.hosts[h];
        let flags = if body.is_empty() { 0x10 } else { 0x18 };
        tcp_frame(
            f,
            d.mac,
            GATEWAY_MAC,
            d.ip,
            remote,
            64,
            ports,
            d.seq,
            flags,
            body,
        );
        d.seq = d.seq.wrapping_add(body.len() as u32);
    }

    pub(super) fn reply(&mut self, t: i64, r: Reply, f: &mut Vec<u8>) -> bool {
        match r {
            Reply::Dns {
                host,
                port,
                id,
                name,
            } => {
                let d = &self.hosts[host];
                udp_frame(f, GATEWAY_MAC, d.mac, GATEWAY_IP, d.ip, 64, 53, port, |p| {
                    dns(p, id, name_of(name), true)
                });
            }
            Reply::Ntp { host, port } => {
                let d = &self.hosts[host];
                udp_frame(
                    f,
                    GATEWAY_MAC,
                    d.mac,
                    NTP_SERVER,
                    d.ip,
                    54,
                    123,
                    port,
                    |p| {
                        p.extend_from_slice(&[0x24, 2]);
                        p.resize(p.len() + 46, 0);
                    },
                );
            }
            Reply::Tcp {
                host,
                remote,
                ports,
                len,
            } => {
                self.server_data(host, remote, ports, len, f);
                let ack = Reply::Ack {
                    host,
                    remote,
                    ports,
                };
                self.reply_in(t, (0.0002, 0.002), ack);
            }
            Reply::Ack {
                host,
                remote,
                ports,
            } => self.tcp_out(host, remote, ports, &[], f),
            Reply::Arp { host } => {
                let d = &self.hosts[host];
                arp_frame(
                    f,
                    GATEWAY_MAC,
                    d.mac,
                    2,
                    GATEWAY_MAC,
                    GATEWAY_IP,
                    d.mac,
                    d.ip,
                );
            }
        }
        true
    }

    /// The server's answer on connection `ports` (host's, server's) of
    /// host `h`: an HTTP 304 (`len` 0), an MQTT PINGRESP, or TLS data.
    fn server_data(
        &mut self,
        h: usize,
        remote: Ipv4Addr,
        ports: (u16, u16),
        len: u16,
        f: &mut Vec<u8>,
    ) {
        self.body.clear();
        match (len, ports.1) {
            (0, _) => self
                .body
                .extend_from_slice(b"HTTP/1.1 304 Not Modified\r\nServer: nginx\r\n\r\n"),
            (_, 1883) => self.body.extend_from_slice(&[0xd0, 0x00]),
            _ => self.tls_body(len),
        }
        let d = &self.hosts[h];
        let back = (ports.1, ports.0);
        let seq = d.seq ^ 0x1234;
        tcp_frame(
            f,
            GATEWAY_MAC,
            d.mac,
            remote,
            d.ip,
            50,
            back,
            seq,
            0x18,
            &self.body,
        );
    }

    /// Step `step` of host `h` joining: DHCP discover, offer, request, ack,
    /// then a gratuitous ARP.
    pub(super) fn join(&mut self, t: i64, h: usize, step: u8, f: &mut Vec<u8>) -> bool {
        let d = &self.hosts[h];
        let xid = u32::from_be_bytes([d.mac[2], d.mac[3], d.mac[4], d.mac[5]]);
        let any = Ipv4Addr::UNSPECIFIED;
        let all = Ipv4Addr::BROADCAST;
        match step {
            0 | 2 => udp_frame(f, d.mac, BROADCAST, any, all, 64, 68, 67, |p| {
                dhcp(p, 1, xid, d.mac, any, if step == 0 { 1 } else { 3 })
            }),
            1 | 3 => udp_frame(
                f,
                GATEWAY_MAC,
                BROADCAST,
                GATEWAY_IP,
                all,
                64,
                67,
                68,
                |p| dhcp(p, 2, xid, d.mac, d.ip, if step == 1 { 2 } else { 5 }),
            ),
            _ => arp_frame(f, d.mac, BROADCAST, 1, d.mac, d.ip, [0; 6], d.ip),
        }
        if step < 4 {
            self.after(t, (0.001, 0.005), Event::Join(h, step + 1));
        }
        true
    }

    /// The monitor pings host `h`, then the next; a sweep every minute.
    pub(super) fn poll(&mut self, t: i64, h: usize, f: &mut Vec<u8>) -> bool {
        if h + 1 < self.hosts.len() {
            self.at(t + 10_000_000, Event::Poll(h + 1));
        } else {
            self.poll_start += 60_000_000_000;
            self.at(self.poll_start.max(t + 1), Event::Poll(0));
        }
        let monitor = self.by_octet[usize::from(MONITOR)].unwrap_or(0);
        let (m, d) = (&self.hosts[monitor], &self.hosts[h]);
        if h == monitor || t < d.join_ns {
            return false;
        }
        let seq = ((t - self.start_ns) / 60_000_000_000) as u16;
        icmp_frame(f, m.mac, d.mac, m.ip, d.ip, 64, 8, 0x4d4f, seq);
        if d.present(t) {
            self.after(t, (0.0003, 0.003), Event::Echo(h, seq));
        }
        true
    }

    /// Host `h` answers the monitor's ping.
    pub(super) fn echo(&self, h: usize, seq: u16, f: &mut Vec<u8>) -> bool {
        let monitor = self.by_octet[usize::from(MONITOR)].unwrap_or(0);
        let (m, d) = (&self.hosts[monitor], &self.hosts[h]);
        icmp_frame(f, d.mac, m.mac, d.ip, m.ip, 64, 0, 0x4d4f, seq);
        true
    }
}

/// Name `i` of the IoT names followed by the web names.
fn name_of(i: usize) -> &'static str {
    DNS_NAMES
        .get(i)
        .or_else(|| WEB_NAMES.get(i - DNS_NAMES.len()))
        .copied()
        .unwrap_or(DNS_NAMES[0])
}

/// A DHCP message (`op` 1 from the client, 2 from the server) of type `msg`.
fn dhcp(p: &mut Vec<u8>, op: u8, xid: u32, mac: [u8; 6], yiaddr: Ipv4Addr, msg: u8) {
    p.extend_from_slice(&[op, 1, 6, 0]);
    p.extend_from_slice(&xid.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x80, 0, 0, 0, 0, 0]);
    p.extend_from_slice(&yiaddr.octets());
    p.resize(p.len() + 8, 0);
    p.extend_from_slice(&mac);
    p.resize(p.len() + 10 + 64 + 128, 0);
    p.extend_from_slice(&[99, 130, 83, 99, 53, 1, msg, 255]);
}
