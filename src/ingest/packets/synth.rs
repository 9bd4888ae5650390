//! A synthetic capture of an IoT home network, with Mirai-style floods.
//!
//! Benign traffic: a handful of devices behind a home gateway doing what IoT
//! devices do (DNS lookups, NTP, MQTT and HTTPS keep-alives, the odd HTTP
//! request, ARP, pings), each request followed by its reply. Floods: the
//! attack vectors of Mirai's source (UDP, SYN, ACK, HTTP GET, GRE-IP),
//! sent by the infected half of the devices to one victim, with real or
//! spoofed source addresses. Every packet gets a label (`normal` or the
//! flood's name), written as `packet_index,label` for evaluation.
//!
//! Time line: the first 40% of the packets are benign only (a training
//! span); the rest is split into one slot per flood, each with a burst in
//! its middle half, during which packets arrive [`FLOOD_SPEEDUP`] times
//! faster and nine in ten belong to the flood. Everything follows from the
//! seed: the same configuration writes the same bytes.
//!
//! The `day` profile ([`write_day`], [`DayConfig`]) is a longer, varied home
//! network with scans, floods and an infected device at given times; its
//! traffic model is described in its module.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod day;

pub use day::{parse_duration, write_day, DayConfig, ScanConfig, Scenario, MAX_SCANNERS};

use super::capture::LinkType;
use super::pcap::PcapWriter;
use super::wire::{checksum_add, checksum_finish};

/// How much faster packets arrive during a flood than in benign traffic.
pub const FLOOD_SPEEDUP: f64 = 10.0;
/// Share of the capture, from the start, with benign traffic only.
const BENIGN_LEAD: f64 = 0.4;
/// Share of a burst's packets that belong to the flood.
const FLOOD_SHARE: f64 = 0.9;
/// Snap length of the written file.
const SNAPLEN: u32 = 65_535;

/// A Mirai flood vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FloodKind {
    /// UDP datagrams of 512 random bytes to random ports.
    Udp,
    /// TCP SYNs to random ports.
    Syn,
    /// TCP ACKs with 512 random bytes.
    Ack,
    /// HTTP GET requests on established-looking connections.
    Http,
    /// GRE carrying IPv4/UDP with random payloads.
    Gre,
}

/// A flood and whether its sources are spoofed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attack {
    /// The vector.
    pub kind: FloodKind,
    /// Random source addresses instead of the bots' own.
    pub spoofed: bool,
}

impl fmt::Display for Attack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.kind {
            FloodKind::Udp => "udp",
            FloodKind::Syn => "syn",
            FloodKind::Ack => "ack",
            FloodKind::Http => "http",
            FloodKind::Gre => "gre",
        };
        f.write_str(name)?;
        if self.spoofed {
            f.write_str("-spoofed")?;
        }
        Ok(())
    }
}

impl FromStr for Attack {
    type Err = String;

    /// Parses `udp`, `syn`, `ack`, `http` or `gre`, optionally followed by
    /// `-spoofed`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, spoofed) = match s.strip_suffix("-spoofed") {
            Some(n) => (n, true),
            None => (s, false),
        };
        let kind = match name {
            "udp" => FloodKind::Udp,
            "syn" => FloodKind::Syn,
            "ack" => FloodKind::Ack,
            "http" => FloodKind::Http,
            "gre" => FloodKind::Gre,
            _ => {
                return Err(format!(
                    "unknown attack {s:?}: expected udp, syn, ack, http or gre, optionally with -spoofed"
                ))
            }
        };
        Ok(Attack { kind, spoofed })
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    /// Number of packets.
    pub packets: u64,
    /// Benign packets per second (floods run [`FLOOD_SPEEDUP`] times faster).
    pub rate: f64,
    /// Seed of the random generator.
    pub seed: u64,
    /// Floods, in the order they appear; empty for benign traffic only.
    pub attacks: Vec<Attack>,
    /// Time of the first packet, nanoseconds since the Unix epoch.
    pub start_ns: i64,
}

impl SynthConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> crate::Result<()> {
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(crate::Error::Data(format!(
                "packet rate should be a positive number, but is {}",
                self.rate
            )));
        }
        if self.start_ns < 0 {
            return Err(crate::Error::Data(
                "start time should not be before 1970".into(),
            ));
        }
        Ok(())
    }
}

/// Counts of what was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SynthSummary {
    /// Packets written.
    pub packets: u64,
    /// Of which benign.
    pub normal: u64,
    /// Time of the last packet, nanoseconds since the Unix epoch.
    pub end_ns: i64,
    /// The attacks that sent packets, in the order they began.
    pub attacks: Vec<AttackSpan>,
}

/// When one attack ran, and between whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttackSpan {
    /// Its label in the label file (e.g. `syn-spoofed`, `hscan`).
    pub label: String,
    /// Time of its first packet, nanoseconds since the Unix epoch.
    pub onset_ns: i64,
    /// Time of its last packet, nanoseconds since the Unix epoch.
    pub end_ns: i64,
    /// Addresses of the hosts sending it (for spoofed floods, the bots' own).
    pub attackers: Vec<Ipv4Addr>,
    /// The attacked networks, as (address, prefix length): a /32 for one
    /// host, `0.0.0.0/0` for random Internet addresses.
    pub targets: Vec<(Ipv4Addr, u8)>,
}

/// Writes the capture (classic pcap, Ethernet, microseconds) to `pcap` and
/// the labels (`packet_index,label`, with a header) to `labels`.
pub fn write<P: Write, L: Write>(
    cfg: &SynthConfig,
    pcap: P,
    mut labels: L,
) -> crate::Result<SynthSummary> {
    cfg.validate()?;
    let io = |e: io::Error| crate::Error::Data(format!("writing the synthetic capture: {e}"));
    let mut out = PcapWriter::new(pcap, LinkType::ETHERNET, SNAPLEN, false).map_err(io)?;
    labels.write_all(b"packet_index,label\n").map_err(io)?;
    let mut net = Network::new(cfg.seed);
    let mut frame = Vec::with_capacity(2048);
    let mut summary = SynthSummary::default();
    let mut ts_ns = cfg.start_ns;
    for i in 0..cfg.packets {
        let flood = flood_at(cfg, i);
        let speed = if flood.is_some() { FLOOD_SPEEDUP } else { 1.0 };
        let gap = -(1.0 - net.rng.random::<f64>()).ln() / (cfg.rate * speed);
        // Whole nanoseconds: an f64 of epoch seconds holds only ~0.2 us.
        ts_ns = ts_ns.saturating_add((gap * 1e9) as i64);
        let attack = flood.filter(|_| net.rng.random::<f64>() < FLOOD_SHARE);
        match attack {
            Some(a) => net.flood(a, &mut frame),
            None => net.benign(&mut frame),
        }
        out.write_packet(ts_ns, frame.len() as u32, &frame)
            .map_err(io)?;
        match attack {
            Some(a) => writeln!(labels, "{},{a}", i + 1),
            None => writeln!(labels, "{},normal", i + 1),
        }
        .map_err(io)?;
        summary.packets += 1;
        summary.normal += u64::from(attack.is_none());
        summary.end_ns = ts_ns;
        if let Some(a) = attack {
            note_flood(&mut summary.attacks, &net, a, ts_ns);
        }
    }
    out.finish().map_err(io)?;
    labels.flush().map_err(io)?;
    Ok(summary)
}

/// Extends the span of flood `a` to `ts_ns`, starting it if it is new.
fn note_flood(spans: &mut Vec<AttackSpan>, net: &Network, a: Attack, ts_ns: i64) {
    let label = a.to_string();
    match spans.iter_mut().find(|s| s.label == label) {
        Some(s) => s.end_ns = ts_ns,
        None => spans.push(AttackSpan {
            label,
            onset_ns: ts_ns,
            end_ns: ts_ns,
            attackers: net.devices[..DEVICES / 2].iter().map(|d| d.ip).collect(),
            targets: vec![(VICTIM, 32)],
        }),
    }
}

/// The flood whose burst covers packet `i`, if any.
fn flood_at(cfg: &SynthConfig, i: u64) -> Option<Attack> {
    let n = cfg.attacks.len() as u64;
    let lead = (cfg.packets as f64 * BENIGN_LEAD) as u64;
    if n == 0 || i < lead {
        return None;
    }
    let slot_len = (cfg.packets - lead).div_ceil(n).max(1);
    let slot = (i - lead) / slot_len;
    let pos = (i - lead) % slot_len;
    let burst = slot_len / 4..slot_len - slot_len / 4;
    cfg.attacks
        .get(slot as usize)
        .copied()
        .filter(|_| burst.contains(&pos))
}

/// A home device.
#[derive(Debug, Clone)]
struct Device {
    mac: [u8; 6],
    ip: Ipv4Addr,
    /// Source port of its MQTT connection.
    mqtt_port: u16,
    /// Source port of its HTTPS connection.
    https_port: u16,
    /// Sequence numbers of those connections (device side).
    seq: u32,
}

const DEVICES: usize = 8;
const GATEWAY_MAC: [u8; 6] = [0x00, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e];
const GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
const NTP_SERVER: Ipv4Addr = Ipv4Addr::new(162, 159, 200, 1);
const MQTT_BROKER: Ipv4Addr = Ipv4Addr::new(52, 28, 10, 5);
const CLOUD: Ipv4Addr = Ipv4Addr::new(35, 156, 77, 12);
const PING_TARGET: Ipv4Addr = Ipv4Addr::new(8, 8, 8, 8);
const VICTIM: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 23);
const BROADCAST: [u8; 6] = [0xff; 6];

/// Benign activities and their weights.
#[derive(Debug, Clone, Copy)]
enum Activity {
    Dns,
    Ntp,
    Mqtt,
    Https,
    Http,
    Arp,
    Ping,
}

const ACTIVITIES: [(Activity, u32); 7] = [
    (Activity::Dns, 18),
    (Activity::Ntp, 4),
    (Activity::Mqtt, 30),
    (Activity::Https, 30),
    (Activity::Http, 6),
    (Activity::Arp, 7),
    (Activity::Ping, 5),
];

/// A packet waiting to be sent: the reply half of an exchange.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Dns {
        dev: usize,
        port: u16,
        id: u16,
        name: usize,
    },
    Ntp {
        dev: usize,
        port: u16,
    },
    Mqtt {
        dev: usize,
    },
    Https {
        dev: usize,
        len: usize,
    },
    Http {
        dev: usize,
        port: u16,
    },
    TcpAck {
        dev: usize,
        remote: Ipv4Addr,
        port: u16,
        remote_port: u16,
    },
    Arp {
        dev: usize,
    },
    Ping {
        dev: usize,
        id: u16,
        seq: u16,
    },
}

/// The simulated network: devices, pending replies and the random source.
struct Network {
    rng: ChaCha8Rng,
    devices: Vec<Device>,
    pending: VecDeque<Reply>,
}

/// Pending replies beyond this are dropped: memory stays bounded.
const MAX_PENDING: usize = 64;

impl Network {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let devices = (0..DEVICES)
            .map(|i| Device {
                mac: [0x02, 0x42, 0x1c, 0x00, 0x10, i as u8 + 1],
                ip: Ipv4Addr::new(192, 168, 1, 10 + i as u8),
                mqtt_port: rng.random_range(40_000..60_000),
                https_port: rng.random_range(40_000..60_000),
                seq: rng.random(),
            })
            .collect();
        Network {
            rng,
            devices,
            pending: VecDeque::new(),
        }
    }

    fn reply_later(&mut self, r: Reply) {
        if self.pending.len() < MAX_PENDING {
            self.pending.push_back(r);
        }
    }

    /// Writes the next benign frame: a pending reply, or a new request.
    fn benign(&mut self, f: &mut Vec<u8>) {
        // Replies come soon after their request, not always right after.
        if !self.pending.is_empty() && self.rng.random::<f64>() < 0.8 {
            if let Some(r) = self.pending.pop_front() {
                return self.reply(r, f);
            }
        }
        let dev = self.rng.random_range(0..self.devices.len());
        let total: u32 = ACTIVITIES.iter().map(|a| a.1).sum();
        let mut pick = self.rng.random_range(0..total);
        let mut activity = Activity::Dns;
        for (a, w) in ACTIVITIES {
            if pick < w {
                activity = a;
                break;
            }
            pick -= w;
        }
        self.request(activity, dev, f);
    }

    fn request(&mut self, activity: Activity, dev: usize, f: &mut Vec<u8>) {
        let d = self.devices[dev].clone();
        match activity {
            Activity::Dns => {
                let port = self.rng.random_range(32_768..61_000);
                let id = self.rng.random();
                let name = self.rng.random_range(0..DNS_NAMES.len());
                udp_frame(f, d.mac, GATEWAY_MAC, d.ip, GATEWAY_IP, 64, port, 53, |p| {
                    dns(p, id, DNS_NAMES[name], false)
                });
                self.reply_later(Reply::Dns {
                    dev,
                    port,
                    id,
                    name,
                });
            }
            Activity::Ntp => {
                let port = self.rng.random_range(32_768..61_000);
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
                        p.extend_from_slice(&[0x23]);
                        p.resize(p.len() + 47, 0);
                    },
                );
                self.reply_later(Reply::Ntp { dev, port });
            }
            Activity::Mqtt => {
                // PINGREQ.
                tcp_frame(
                    f,
                    d.mac,
                    GATEWAY_MAC,
                    d.ip,
                    MQTT_BROKER,
                    64,
                    (d.mqtt_port, 1883),
                    d.seq,
                    0x18,
                    &[0xc0, 0x00],
                );
                self.devices[dev].seq = d.seq.wrapping_add(2);
                self.reply_later(Reply::Mqtt { dev });
            }
            Activity::Https => {
                let len = self.rng.random_range(30..400);
                let mut body = vec![0x17, 0x03, 0x03];
                body.extend_from_slice(&(len as u16).to_be_bytes());
                body.resize(5 + len, 0);
                self.rng.fill(&mut body[5..]);
                tcp_frame(
                    f,
                    d.mac,
                    GATEWAY_MAC,
                    d.ip,
                    CLOUD,
                    64,
                    (d.https_port, 443),
                    d.seq,
                    0x18,
                    &body,
                );
                self.devices[dev].seq = d.seq.wrapping_add(body.len() as u32);
                let len = self.rng.random_range(30..1200);
                self.reply_later(Reply::Https { dev, len });
            }
            Activity::Http => {
                let port = self.rng.random_range(32_768..61_000);
                let req = b"GET /firmware/version HTTP/1.1\r\nHost: update.iot-vendor.example\r\nUser-Agent: iot-agent/2.1\r\n\r\n";
                tcp_frame(
                    f,
                    d.mac,
                    GATEWAY_MAC,
                    d.ip,
                    CLOUD,
                    64,
                    (port, 80),
                    d.seq,
                    0x18,
                    req,
                );
                self.reply_later(Reply::Http { dev, port });
            }
            Activity::Arp => {
                arp_frame(
                    f,
                    GATEWAY_MAC,
                    BROADCAST,
                    1,
                    GATEWAY_MAC,
                    GATEWAY_IP,
                    [0; 6],
                    d.ip,
                );
                self.reply_later(Reply::Arp { dev });
            }
            Activity::Ping => {
                let id = self.rng.random();
                let seq = self.rng.random_range(1..1000);
                icmp_frame(f, d.mac, GATEWAY_MAC, d.ip, PING_TARGET, 64, 8, id, seq);
                self.reply_later(Reply::Ping { dev, id, seq });
            }
        }
    }

    fn reply(&mut self, r: Reply, f: &mut Vec<u8>) {
        match r {
            Reply::Dns {
                dev,
                port,
                id,
                name,
            } => {
                let d = &self.devices[dev];
                udp_frame(f, GATEWAY_MAC, d.mac, GATEWAY_IP, d.ip, 64, 53, port, |p| {
                    dns(p, id, DNS_NAMES[name], true)
                });
            }
            Reply::Ntp { dev, port } => {
                let d = &self.devices[dev];
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
            Reply::Mqtt { dev } => {
                let d = &self.devices[dev];
                tcp_frame(
                    f,
                    GATEWAY_MAC,
                    d.mac,
                    MQTT_BROKER,
                    d.ip,
                    52,
                    (1883, d.mqtt_port),
                    d.seq ^ 0x5a5a,
                    0x18,
                    &[0xd0, 0x00],
                );
                self.reply_later(Reply::TcpAck {
                    dev,
                    remote: MQTT_BROKER,
                    port: d.mqtt_port,
                    remote_port: 1883,
                });
            }
            Reply::Https { dev, len } => {
                let d = &self.devices[dev];
                let mut body = vec![0x17, 0x03, 0x03];
                body.extend_from_slice(&(len as u16).to_be_bytes());
                body.resize(5 + len, 0);
                self.rng.fill(&mut body[5..]);
                tcp_frame(
                    f,
                    GATEWAY_MAC,
                    d.mac,
                    CLOUD,
                    d.ip,
                    50,
                    (443, d.https_port),
                    d.seq ^ 0x1234,
                    0x18,
                    &body,
                );
                self.reply_later(Reply::TcpAck {
                    dev,
                    remote: CLOUD,
                    port: d.https_port,
                    remote_port: 443,
                });
            }
            Reply::Http { dev, port } => {
                let d = &self.devices[dev];
                let body =
                    b"HTTP/1.1 304 Not Modified\r\nServer: nginx\r\nConnection: keep-alive\r\n\r\n";
                tcp_frame(
                    f,
                    GATEWAY_MAC,
                    d.mac,
                    CLOUD,
                    d.ip,
                    50,
                    (80, port),
                    1,
                    0x18,
                    body,
                );
            }
            Reply::TcpAck {
                dev,
                remote,
                port,
                remote_port,
            } => {
                let d = &self.devices[dev];
                tcp_frame(
                    f,
                    d.mac,
                    GATEWAY_MAC,
                    d.ip,
                    remote,
                    64,
                    (port, remote_port),
                    d.seq,
                    0x10,
                    &[],
                );
            }
            Reply::Arp { dev } => {
                let d = &self.devices[dev];
                arp_frame(
                    f,
                    d.mac,
                    GATEWAY_MAC,
                    2,
                    d.mac,
                    d.ip,
                    GATEWAY_MAC,
                    GATEWAY_IP,
                );
            }
            Reply::Ping { dev, id, seq } => {
                let d = &self.devices[dev];
                icmp_frame(f, GATEWAY_MAC, d.mac, PING_TARGET, d.ip, 117, 0, id, seq);
            }
        }
    }

    /// Writes one flood frame from a random infected device.
    fn flood(&mut self, a: Attack, f: &mut Vec<u8>) {
        let bot = self.rng.random_range(0..self.devices.len() / 2);
        let (mac, own_ip) = (self.devices[bot].mac, self.devices[bot].ip);
        flood_frame(&mut self.rng, a, mac, own_ip, f);
    }
}

/// Writes one frame of flood `a` from the bot at `mac` / `own_ip` to [`VICTIM`].
fn flood_frame(rng: &mut ChaCha8Rng, a: Attack, mac: [u8; 6], own_ip: Ipv4Addr, f: &mut Vec<u8>) {
    let src = if a.spoofed {
        Ipv4Addr::from(rng.random::<u32>())
    } else {
        own_ip
    };
    let sport = rng.random_range(1024..65_535);
    let seq = rng.random();
    let ttl = 64;
    match a.kind {
        FloodKind::Udp => {
            let dport = rng.random();
            udp_frame(f, mac, GATEWAY_MAC, src, VICTIM, ttl, sport, dport, |p| {
                random_bytes(p, rng, 512)
            });
        }
        FloodKind::Syn => {
            let dport = rng.random();
            tcp_frame(
                f,
                mac,
                GATEWAY_MAC,
                src,
                VICTIM,
                ttl,
                (sport, dport),
                seq,
                0x02,
                &[],
            );
        }
        FloodKind::Ack => {
            let dport = rng.random();
            let mut body = vec![0; 512];
            rng.fill(&mut body[..]);
            tcp_frame(
                f,
                mac,
                GATEWAY_MAC,
                src,
                VICTIM,
                ttl,
                (sport, dport),
                seq,
                0x10,
                &body,
            );
        }
        FloodKind::Http => {
            let req = b"GET / HTTP/1.1\r\nHost: 198.51.100.23\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64)\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n";
            tcp_frame(
                f,
                mac,
                GATEWAY_MAC,
                src,
                VICTIM,
                ttl,
                (sport, 80),
                seq,
                0x18,
                req,
            );
        }
        FloodKind::Gre => {
            let inner_src = Ipv4Addr::from(rng.random::<u32>());
            let dport = rng.random();
            f.clear();
            eth(f, mac, GATEWAY_MAC, 0x0800);
            let outer = ipv4_begin(f, src, VICTIM, ttl, 47);
            f.extend_from_slice(&[0, 0, 0x08, 0x00]);
            let inner = ipv4_begin(f, inner_src, VICTIM, ttl, 17);
            udp_header(f, sport, dport);
            random_bytes(f, rng, 512);
            ipv4_end(f, inner);
            ipv4_end(f, outer);
        }
    }
}

fn random_bytes(f: &mut Vec<u8>, rng: &mut ChaCha8Rng, n: usize) {
    let start = f.len();
    f.resize(start + n, 0);
    rng.fill(&mut f[start..]);
}

/// Names the devices look up (reserved `.example` domains).
const DNS_NAMES: [&str; 6] = [
    "mqtt.iot-vendor.example",
    "api.iot-vendor.example",
    "pool.ntp.example",
    "update.iot-vendor.example",
    "stream.camera-cloud.example",
    "telemetry.plug-maker.example",
];

/// A DNS query, or its response with one A record, for `name`.
fn dns(p: &mut Vec<u8>, id: u16, name: &str, response: bool) {
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(if response {
        &[0x81, 0x80, 0, 1, 0, 1]
    } else {
        &[0x01, 0x00, 0, 1, 0, 0]
    });
    p.extend_from_slice(&[0, 0, 0, 0]);
    for label in name.split('.') {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.extend_from_slice(&[0, 0, 1, 0, 1]);
    if response {
        p.extend_from_slice(&[
            0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 93, 184, 216, 34,
        ]);
    }
}

fn eth(f: &mut Vec<u8>, src: [u8; 6], dst: [u8; 6], ethertype: u16) {
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
}

/// Starts an IPv4 header; [`ipv4_end`] fills in lengths and checksums.
fn ipv4_begin(f: &mut Vec<u8>, src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, proto: u8) -> usize {
    let at = f.len();
    f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, ttl, proto, 0, 0]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    at
}

/// Completes the IPv4 header at `at` and its TCP, UDP or ICMP checksum.
fn ipv4_end(f: &mut [u8], at: usize) {
    let total = f.len() - at;
    let (header, l4) = f[at..].split_at_mut(20);
    header[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    // A plausible identification: derived from the addresses and length.
    let id = (checksum_add(total as u32, &header[12..20]) & 0xffff) as u16;
    header[4..6].copy_from_slice(&id.to_be_bytes());
    let sum = checksum_finish(checksum_add(0, header));
    header[10..12].copy_from_slice(&sum.to_be_bytes());
    let proto = header[9];
    let l4_len = l4.len();
    let pseudo = checksum_add(u32::from(proto) + l4_len as u32, &header[12..20]);
    let (field, sum) = match proto {
        6 => (16, pseudo),
        17 => {
            l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            (6, pseudo)
        }
        1 => (2, 0),
        _ => return,
    };
    if l4.len() < field + 2 {
        return;
    }
    l4[field..field + 2].fill(0);
    let c = checksum_finish(checksum_add(sum, l4));
    // UDP transmits an all-zero checksum as all ones.
    let c = if proto == 17 && c == 0 { 0xffff } else { c };
    l4[field..field + 2].copy_from_slice(&c.to_be_bytes());
}

fn udp_header(f: &mut Vec<u8>, sport: u16, dport: u16) {
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0]);
}

#[allow(clippy::too_many_arguments)]
fn udp_frame(
    f: &mut Vec<u8>,
    smac: [u8; 6],
    dmac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    sport: u16,
    dport: u16,
    payload: impl FnOnce(&mut Vec<u8>),
) {
    f.clear();
    eth(f, smac, dmac, 0x0800);
    let ip = ipv4_begin(f, src, dst, ttl, 17);
    udp_header(f, sport, dport);
    payload(f);
    ipv4_end(f, ip);
    pad(f);
}

#[allow(clippy::too_many_arguments)]
fn tcp_frame(
    f: &mut Vec<u8>,
    smac: [u8; 6],
    dmac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    (sport, dport): (u16, u16),
    seq: u32,
    flags: u8,
    payload: &[u8],
) {
    f.clear();
    eth(f, smac, dmac, 0x0800);
    let ip = ipv4_begin(f, src, dst, ttl, 6);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    let ack = if flags & 0x10 != 0 {
        seq.rotate_left(7)
    } else {
        0
    };
    f.extend_from_slice(&ack.to_be_bytes());
    f.extend_from_slice(&[0x50, flags, 0xfa, 0xf0, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    ipv4_end(f, ip);
    pad(f);
}

#[allow(clippy::too_many_arguments)]
fn icmp_frame(
    f: &mut Vec<u8>,
    smac: [u8; 6],
    dmac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    icmp_type: u8,
    id: u16,
    seq: u16,
) {
    f.clear();
    eth(f, smac, dmac, 0x0800);
    let ip = ipv4_begin(f, src, dst, ttl, 1);
    f.extend_from_slice(&[icmp_type, 0, 0, 0]);
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend((0..32u8).map(|i| b'a' + i % 23));
    ipv4_end(f, ip);
}

#[allow(clippy::too_many_arguments)]
fn arp_frame(
    f: &mut Vec<u8>,
    smac: [u8; 6],
    dmac: [u8; 6],
    op: u16,
    sha: [u8; 6],
    spa: Ipv4Addr,
    tha: [u8; 6],
    tpa: Ipv4Addr,
) {
    f.clear();
    eth(f, smac, dmac, 0x0806);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa.octets());
    f.extend_from_slice(&tha);
    f.extend_from_slice(&tpa.octets());
    pad(f);
}

/// Pads to Ethernet's 60-byte minimum (without FCS).
fn pad(f: &mut Vec<u8>) {
    if f.len() < 60 {
        f.resize(60, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::packets::capture::CaptureReader;
    use crate::ingest::packets::decode::{decode_checked, DecodeStats};
    use crate::ingest::packets::wire::ipv4;
    use crate::ingest::packets::{Network as Net, Transport};

    fn config(packets: u64, attacks: &[&str]) -> SynthConfig {
        SynthConfig {
            packets,
            rate: 100.0,
            seed: 7,
            attacks: attacks.iter().map(|a| a.parse().unwrap()).collect(),
            start_ns: 1_700_000_000_000_000_000,
        }
    }

    fn generate(cfg: &SynthConfig) -> (Vec<u8>, String) {
        let (mut pcap, mut labels) = (Vec::new(), Vec::new());
        write(cfg, &mut pcap, &mut labels).unwrap();
        (pcap, String::from_utf8(labels).unwrap())
    }

    #[test]
    fn is_deterministic() {
        let cfg = config(500, &["udp", "syn-spoofed"]);
        assert_eq!(generate(&cfg), generate(&cfg));
        let other = SynthConfig {
            seed: 8,
            ..cfg.clone()
        };
        assert_ne!(generate(&cfg).0, generate(&other).0);
    }

    #[test]
    fn decodes_cleanly_with_valid_checksums_and_labels() {
        let cfg = config(3000, &["udp", "syn", "ack", "http", "gre-spoofed"]);
        let (pcap, labels) = generate(&cfg);
        let mut reader = CaptureReader::from_reader(&pcap[..], "synth").unwrap();
        let mut buf = Vec::new();
        let mut stats = DecodeStats::default();
        let mut last = 0;
        let label_rows: Vec<&str> = labels.lines().skip(1).collect();
        let mut seen = std::collections::HashSet::new();
        while let Some(raw) = reader.next_packet(&mut buf).unwrap() {
            assert!(raw.ts_ns >= last, "time goes forward");
            last = raw.ts_ns;
            let (meta, bad) = decode_checked(&raw);
            stats.record(bad);
            let row = label_rows[meta.index as usize - 1];
            let label = row.split_once(',').map(|(i, l)| {
                assert_eq!(i, meta.index.to_string());
                l
            });
            let label = label.unwrap();
            seen.insert(label.to_string());
            if let Net::Ip { .. } = meta.network {
                let ip = ipv4::Packet::new_checked(&raw.data[14..]).unwrap();
                let header = &raw.data[14..14 + ip.header_len()];
                assert_eq!(checksum_finish(checksum_add(0, header)), 0, "ip checksum");
                let l4 = ip.payload();
                if matches!(ip.protocol(), 6 | 17) {
                    let pseudo =
                        checksum_add(u32::from(ip.protocol()) + l4.len() as u32, &header[12..20]);
                    assert_eq!(checksum_finish(checksum_add(pseudo, l4)), 0, "l4 checksum");
                }
            }
            match label {
                "syn" => assert!(matches!(meta.transport, Transport::Tcp { flags: 0x02, .. })),
                "http" => assert!(matches!(
                    meta.transport,
                    Transport::Tcp { dst_port: 80, .. }
                )),
                "udp" | "gre-spoofed" => assert!(matches!(meta.transport, Transport::Udp { .. })),
                _ => {}
            }
        }
        assert_eq!(stats.frames(), 3000);
        assert_eq!(stats.malformed(), 0, "{stats}");
        for l in ["normal", "udp", "syn", "ack", "http", "gre-spoofed"] {
            assert!(seen.contains(l), "{l} missing");
        }
        // The benign lead has no attack.
        assert!(label_rows[..1200].iter().all(|r| r.ends_with(",normal")));
    }

    #[test]
    fn benign_mix_has_every_protocol() {
        let (pcap, labels) = generate(&config(2000, &[]));
        assert!(labels.lines().skip(1).all(|l| l.ends_with(",normal")));
        let mut reader = CaptureReader::from_reader(&pcap[..], "synth").unwrap();
        let mut buf = Vec::new();
        let (mut arp, mut icmp, mut dns, mut mqtt, mut https) = (0, 0, 0, 0, 0);
        while let Some(raw) = reader.next_packet(&mut buf).unwrap() {
            let meta = decode_checked(&raw).0;
            match (meta.network, meta.transport) {
                (Net::Arp { .. }, _) => arp += 1,
                (_, Transport::Icmp { .. }) => icmp += 1,
                (_, Transport::Udp { dst_port: 53, .. } | Transport::Udp { src_port: 53, .. }) => {
                    dns += 1
                }
                (
                    _,
                    Transport::Tcp { dst_port: 1883, .. } | Transport::Tcp { src_port: 1883, .. },
                ) => mqtt += 1,
                (
                    _,
                    Transport::Tcp { dst_port: 443, .. } | Transport::Tcp { src_port: 443, .. },
                ) => https += 1,
                _ => {}
            }
        }
        assert!(
            arp > 20 && icmp > 20 && dns > 100 && mqtt > 100 && https > 100,
            "{arp} {icmp} {dns} {mqtt} {https}"
        );
    }

    #[test]
    fn spoofed_floods_use_many_sources() {
        let cfg = config(2000, &["syn-spoofed"]);
        let (pcap, _) = generate(&cfg);
        let mut reader = CaptureReader::from_reader(&pcap[..], "synth").unwrap();
        let mut buf = Vec::new();
        let mut sources = std::collections::HashSet::new();
        while let Some(raw) = reader.next_packet(&mut buf).unwrap() {
            if let Net::Ip { src, .. } = decode_checked(&raw).0.network {
                sources.insert(src);
            }
        }
        assert!(sources.len() > 400, "{}", sources.len());
    }

    #[test]
    fn parses_attack_names() {
        assert_eq!(
            "gre".parse::<Attack>(),
            Ok(Attack {
                kind: FloodKind::Gre,
                spoofed: false
            })
        );
        assert_eq!(
            "ack-spoofed".parse::<Attack>().map(|a| a.to_string()),
            Ok("ack-spoofed".into())
        );
        assert!("smurf".parse::<Attack>().is_err());
    }

    #[test]
    fn rejects_bad_rate() {
        let cfg = SynthConfig {
            rate: 0.0,
            ..config(10, &[])
        };
        assert!(write(&cfg, Vec::new(), Vec::new()).is_err());
        let cfg = SynthConfig {
            rate: f64::NAN,
            ..config(10, &[])
        };
        assert!(cfg.validate().is_err());
    }

    /// The bytes this profile wrote before the day profile existed.
    #[test]
    fn iot_profile_bytes_are_unchanged() {
        let (pcap, labels) = generate(&config(
            20_000,
            &["udp", "syn-spoofed", "ack", "http", "gre"],
        ));
        let benign = generate(&SynthConfig {
            seed: 99,
            rate: 1000.0,
            ..config(5000, &[])
        });
        let got = [
            (
                pcap.len(),
                crc32fast::hash(&pcap),
                crc32fast::hash(labels.as_bytes()),
            ),
            (
                benign.0.len(),
                crc32fast::hash(&benign.0),
                crc32fast::hash(benign.1.as_bytes()),
            ),
        ];
        assert_eq!(
            got,
            [
                (4_914_439, 1_420_354_993, 1_665_878_995),
                (899_428, 1_227_985_552, 1_971_861_880)
            ]
        );
    }

    #[test]
    fn summary_lists_the_floods() {
        let cfg = config(3000, &["udp", "syn-spoofed"]);
        let s = write(&cfg, io::sink(), io::sink()).unwrap();
        let labels: Vec<_> = s.attacks.iter().map(|a| a.label.as_str()).collect();
        assert_eq!(labels, ["udp", "syn-spoofed"]);
        let (udp, syn) = (&s.attacks[0], &s.attacks[1]);
        assert!(udp.onset_ns < udp.end_ns && udp.end_ns < syn.onset_ns);
        assert_eq!(
            (syn.attackers.len(), &syn.targets),
            (4, &vec![(VICTIM, 32)])
        );
    }

    #[test]
    fn zero_packets_is_an_empty_capture() {
        let (pcap, labels) = generate(&config(0, &["udp"]));
        assert_eq!(pcap.len(), 24);
        assert_eq!(labels, "packet_index,label\n");
    }
}
