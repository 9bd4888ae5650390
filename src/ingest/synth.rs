//! Built-in data: a deterministic, labelled table of flow records from a small
//! home IoT network, some of them Mirai floods, in the schema of the dataset
//! of the tool floodwatch descends from:
//!
//! `uid, sourceMac, sourceIp, destIp, destMac, sourcePort, destPort, host, kIn,
//! kOut, inPacketsNo, outPacketsNo, protocol, urgent, ack, push, reset, syn,
//! fin, timestamp, label`
//!
//! One row is one flow seen from the device: `kIn`/`kOut` are kilobytes
//! received/sent, `*PacketsNo` packet counts, the six flag columns count TCP
//! segments with that flag, `timestamp` is Unix seconds, `protocol` is `TCP`,
//! `UDP` or `GRE`.
//!
//! # Benign model
//! Eight devices (`cam-1`, `cam-2`, `thermostat`, `plug-1`, `plug-2`, `hub`,
//! `speaker`, `doorbell`, at 192.168.1.10-17) behind a gateway (192.168.1.1).
//! A flow is one of, with these probabilities:
//! - DNS lookup (30 %): UDP to 192.168.1.1:53, 1-2 packets each way, ~70 B out, ~150 B in;
//! - NTP (5 %): UDP to a pool server port 123, one 76 B packet each way;
//! - MQTT keep-alive / telemetry (30 %): TCP to the broker port 1883,
//!   log-normal packet counts (median 6), small segments, PSH on about half;
//! - HTTPS cloud sync (25 %): TCP to port 443, log-normal counts (median 20), 0.3-1.4 kB segments;
//! - camera upload (10 %, cameras and doorbell; others do HTTPS): TCP 443,
//!   median 400 packets of ~1.2 kB out.
//!
//! TCP flows have one SYN, one or two FIN, ACK on every packet but the first,
//! and a rare RST. Flows start at exponential gaps (mean 0.2 s).
//!
//! # Floods (as Mirai sends them, from one infected device to a victim)
//! - `UDP.flood`: random source and destination ports, ~500 B payloads, median 2,000 packets, nothing back;
//! - `UDP.plain`: one fixed port pair, 512 B payloads, median 3,000 packets, nothing back;
//! - `TCP.SYN.flood`: SYN-only ~60 B segments (median 1,500), the victim answers a few with RST;
//! - `TCP.ACK.flood`: ACK (+PSH) segments of ~560 B (median 1,500), the victim answers a few with RST;
//! - `TCP.HTTP.flood`: complete connections to port 80 with many GET requests
//!   (median 300 packets out, PSH on a third) and responses back;
//! - `GRE.IP`: GRE-encapsulated IP packets of ~580 B (median 1,500), no ports, no flags.
//!
//! Attack rows form a share `attack_fraction` of the rows (default 25 %),
//! spread over the families by the weights of `mix` (default equal).

use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Error, Result};

/// The header of the synthetic table.
pub const COLUMNS: [&str; 21] = [
    "uid",
    "sourceMac",
    "sourceIp",
    "destIp",
    "destMac",
    "sourcePort",
    "destPort",
    "host",
    "kIn",
    "kOut",
    "inPacketsNo",
    "outPacketsNo",
    "protocol",
    "urgent",
    "ack",
    "push",
    "reset",
    "syn",
    "fin",
    "timestamp",
    "label",
];

/// Columns that identify rather than describe a flow (drop them to train).
pub const IDENTIFIERS: [&str; 7] = [
    "uid",
    "sourceMac",
    "sourceIp",
    "destIp",
    "destMac",
    "host",
    "timestamp",
];

/// The label of benign rows.
pub const NORMAL: &str = "normal";

/// A Mirai flood family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    /// `UDP.flood`.
    UdpFlood,
    /// `TCP.ACK.flood`.
    TcpAckFlood,
    /// `TCP.HTTP.flood`.
    TcpHttpFlood,
    /// `TCP.SYN.flood`.
    TcpSynFlood,
    /// `GRE.IP`.
    GreIp,
    /// `UDP.plain`.
    UdpPlain,
}

impl Attack {
    /// Every family.
    pub const ALL: [Attack; 6] = [
        Attack::UdpFlood,
        Attack::TcpAckFlood,
        Attack::TcpHttpFlood,
        Attack::TcpSynFlood,
        Attack::GreIp,
        Attack::UdpPlain,
    ];

    /// Its label in the table.
    pub fn label(self) -> &'static str {
        match self {
            Attack::UdpFlood => "UDP.flood",
            Attack::TcpAckFlood => "TCP.ACK.flood",
            Attack::TcpHttpFlood => "TCP.HTTP.flood",
            Attack::TcpSynFlood => "TCP.SYN.flood",
            Attack::GreIp => "GRE.IP",
            Attack::UdpPlain => "UDP.plain",
        }
    }
}

impl FromStr for Attack {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Attack::ALL
            .into_iter()
            .find(|a| a.label().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let names: Vec<&str> = Attack::ALL.iter().map(|a| a.label()).collect();
                Error::Data(format!(
                    "unknown attack '{s}': expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// Parses an attack mix `LABEL=WEIGHT,...` (e.g. `UDP.flood=2,GRE.IP=1`).
pub fn parse_mix(s: &str) -> Result<Vec<(Attack, f64)>> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|part| {
            let (name, w) = part.split_once('=').unwrap_or((part, "1"));
            let w: f64 = w.trim().parse().map_err(|_| {
                Error::Data(format!("attack weight in '{part}' should be a number"))
            })?;
            if !(w.is_finite() && w >= 0.0) {
                return Err(Error::Data(format!(
                    "attack weight in '{part}' should be >= 0"
                )));
            }
            Ok((name.parse()?, w))
        })
        .collect()
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthParams {
    /// Data rows.
    pub rows: usize,
    /// Random seed: equal seeds give equal files.
    pub seed: u64,
    /// Share of attack rows, in `[0, 1]`.
    pub attack_fraction: f64,
    /// Relative weights of the families.
    pub mix: Vec<(Attack, f64)>,
}

impl Default for SynthParams {
    /// 10,000 rows, seed 42, 25 % attacks spread equally.
    fn default() -> Self {
        SynthParams {
            rows: 10_000,
            seed: 42,
            attack_fraction: 0.25,
            mix: Attack::ALL.iter().map(|&a| (a, 1.0)).collect(),
        }
    }
}

const DEVICES: [&str; 8] = [
    "cam-1",
    "cam-2",
    "thermostat",
    "plug-1",
    "plug-2",
    "hub",
    "speaker",
    "doorbell",
];
const GATEWAY_MAC: &str = "02:00:5e:00:00:01";

/// One generated flow.
struct Flow {
    dest_ip: String,
    dest_mac: String,
    sport: u16,
    dport: u16,
    k_in: f64,
    k_out: f64,
    pk_in: u64,
    pk_out: u64,
    proto: &'static str,
    /// urgent, ack, push, reset, syn, fin.
    flags: [u64; 6],
}

/// A log-normal draw with the given median and log-scale spread.
fn lognormal(rng: &mut ChaCha8Rng, median: f64, sigma: f64) -> f64 {
    // Box-Muller: one standard normal from two uniforms.
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    median * (sigma * z).exp()
}

fn count(rng: &mut ChaCha8Rng, median: f64, sigma: f64) -> u64 {
    lognormal(rng, median, sigma).round().max(1.0) as u64
}

fn ephemeral(rng: &mut ChaCha8Rng) -> u16 {
    rng.random_range(32768..=60999)
}

fn external(rng: &mut ChaCha8Rng, pool: &[&str]) -> (String, String) {
    let ip = pool[rng.random_range(0..pool.len())].to_string();
    (ip, GATEWAY_MAC.to_string())
}

/// TCP flags of an ordinary connection of `pk` packets.
fn tcp_session(rng: &mut ChaCha8Rng, pk: u64, push_share: f64) -> [u64; 6] {
    let push = (pk as f64 * push_share * rng.random_range(0.6..1.4)).round() as u64;
    let reset = u64::from(rng.random_bool(0.02));
    let fin = rng.random_range(1..=2).min(pk);
    [0, pk.saturating_sub(1), push.min(pk), reset, 1, fin]
}

fn benign(rng: &mut ChaCha8Rng, device: usize) -> Flow {
    let films = matches!(device, 0 | 1 | 7);
    let r: f64 = rng.random();
    let sport = ephemeral(rng);
    if r < 0.30 {
        let (pk_out, pk_in) = (rng.random_range(1..=2), rng.random_range(1..=2));
        return Flow {
            dest_ip: "192.168.1.1".into(),
            dest_mac: GATEWAY_MAC.into(),
            sport,
            dport: 53,
            k_in: pk_in as f64 * lognormal(rng, 0.15, 0.3),
            k_out: pk_out as f64 * lognormal(rng, 0.07, 0.2),
            pk_in,
            pk_out,
            proto: "UDP",
            flags: [0; 6],
        };
    }
    if r < 0.35 {
        let (dest_ip, dest_mac) = external(rng, &["162.159.200.1", "216.239.35.0"]);
        return Flow {
            dest_ip,
            dest_mac,
            sport: 123,
            dport: 123,
            k_in: 0.076,
            k_out: 0.076,
            pk_in: 1,
            pk_out: 1,
            proto: "UDP",
            flags: [0; 6],
        };
    }
    let (median, seg_out, seg_in, dport, push, pool): (f64, f64, f64, u16, f64, &[&str]) =
        if r < 0.65 {
            (6.0, 0.08, 0.07, 1883, 0.5, &["192.168.1.5"])
        } else if r < 0.90 || !films {
            (
                20.0,
                0.3,
                1.4,
                443,
                0.3,
                &["52.94.236.248", "35.186.224.25", "13.107.42.14"],
            )
        } else {
            (400.0, 1.2, 0.06, 443, 0.1, &["52.94.236.248"])
        };
    let pk_out = count(rng, median, 0.6);
    let pk_in = count(rng, median * if dport == 443 { 0.8 } else { 1.0 }, 0.4);
    let (dest_ip, dest_mac) = if dport == 1883 {
        ("192.168.1.5".to_string(), "02:00:00:00:00:05".to_string())
    } else {
        external(rng, pool)
    };
    Flow {
        dest_ip,
        dest_mac,
        sport,
        dport,
        k_in: pk_in as f64 * lognormal(rng, seg_in, 0.3),
        k_out: pk_out as f64 * lognormal(rng, seg_out, 0.3),
        pk_in,
        pk_out,
        proto: "TCP",
        flags: tcp_session(rng, pk_out + pk_in, push),
    }
}

fn flood(rng: &mut ChaCha8Rng, attack: Attack) -> Flow {
    let victims = ["203.0.113.7", "198.51.100.23", "192.168.1.5"];
    let v = victims[rng.random_range(0..victims.len())];
    let dest_mac = if v.starts_with("192.168.") {
        "02:00:00:00:00:05"
    } else {
        GATEWAY_MAC
    };
    let mut f = Flow {
        dest_ip: v.into(),
        dest_mac: dest_mac.into(),
        sport: rng.random_range(1024..=65535),
        dport: rng.random_range(1..=65535),
        k_in: 0.0,
        k_out: 0.0,
        pk_in: 0,
        pk_out: 0,
        proto: "TCP",
        flags: [0; 6],
    };
    match attack {
        Attack::UdpFlood => {
            f.proto = "UDP";
            f.pk_out = count(rng, 2000.0, 0.5);
            f.k_out = f.pk_out as f64 * rng.random_range(0.50..0.56);
        }
        Attack::UdpPlain => {
            f.proto = "UDP";
            f.pk_out = count(rng, 3000.0, 0.4);
            f.k_out = f.pk_out as f64 * 0.54;
        }
        Attack::TcpSynFlood => {
            f.pk_out = count(rng, 1500.0, 0.5);
            f.k_out = f.pk_out as f64 * rng.random_range(0.058..0.062);
            f.pk_in = (f.pk_out as f64 * rng.random_range(0.0..0.05)) as u64;
            f.k_in = f.pk_in as f64 * 0.054;
            f.flags = [0, 0, 0, f.pk_in, f.pk_out, 0];
        }
        Attack::TcpAckFlood => {
            f.pk_out = count(rng, 1500.0, 0.5);
            f.k_out = f.pk_out as f64 * rng.random_range(0.55..0.57);
            f.pk_in = (f.pk_out as f64 * rng.random_range(0.0..0.05)) as u64;
            f.k_in = f.pk_in as f64 * 0.054;
            let push = (f.pk_out as f64 * rng.random_range(0.0..0.5)) as u64;
            f.flags = [0, f.pk_out, push, f.pk_in, 0, 0];
        }
        Attack::TcpHttpFlood => {
            f.dport = 80;
            f.pk_out = count(rng, 300.0, 0.5);
            f.pk_in = count(rng, f.pk_out as f64 * 0.9, 0.2);
            f.k_out = f.pk_out as f64 * rng.random_range(0.25..0.35);
            f.k_in = f.pk_in as f64 * lognormal(rng, 0.9, 0.3);
            f.flags = tcp_session(rng, f.pk_out + f.pk_in, 0.33);
        }
        Attack::GreIp => {
            f.proto = "GRE";
            f.sport = 0;
            f.dport = 0;
            f.pk_out = count(rng, 1500.0, 0.5);
            f.k_out = f.pk_out as f64 * rng.random_range(0.57..0.59);
        }
    }
    f
}

impl SynthParams {
    fn check(&self) -> Result<f64> {
        if !(0.0..=1.0).contains(&self.attack_fraction) {
            return Err(Error::Data(format!(
                "attack fraction should be in [0, 1], but is {}",
                self.attack_fraction
            )));
        }
        let total: f64 = self.mix.iter().map(|m| m.1).sum();
        if self.attack_fraction > 0.0 && total <= 0.0 {
            return Err(Error::Data("attack mix has no positive weight".into()));
        }
        Ok(total)
    }

    fn pick(&self, rng: &mut ChaCha8Rng, total: f64) -> Option<Attack> {
        if !rng.random_bool(self.attack_fraction) {
            return None;
        }
        let mut x = rng.random_range(0.0..total);
        for &(a, w) in &self.mix {
            if x < w {
                return Some(a);
            }
            x -= w;
        }
        self.mix.last().map(|m| m.0)
    }

    /// Writes the header and `rows` rows as CSV to `out`.
    pub fn write_to<W: Write>(&self, out: W) -> std::io::Result<()> {
        let total = self.check().map_err(std::io::Error::other)?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut w = csv::Writer::from_writer(out);
        w.write_record(COLUMNS)?;
        let mut ts = 1_500_000_000.0_f64;
        for uid in 0..self.rows {
            ts += -0.2 * (1.0 - rng.random::<f64>()).ln();
            let attack = self.pick(&mut rng, total);
            let device = rng.random_range(0..DEVICES.len());
            let f = match attack {
                None => benign(&mut rng, device),
                Some(a) => flood(&mut rng, a),
            };
            let label = attack.map_or(NORMAL, Attack::label);
            let [urg, ack, psh, rst, syn, fin] = f.flags;
            w.write_record([
                uid.to_string(),
                format!("02:00:00:00:01:{device:02x}"),
                format!("192.168.1.{}", 10 + device),
                f.dest_ip,
                f.dest_mac,
                f.sport.to_string(),
                f.dport.to_string(),
                DEVICES[device].to_string(),
                format!("{:.3}", f.k_in),
                format!("{:.3}", f.k_out),
                f.pk_in.to_string(),
                f.pk_out.to_string(),
                f.proto.to_string(),
                urg.to_string(),
                ack.to_string(),
                psh.to_string(),
                rst.to_string(),
                syn.to_string(),
                fin.to_string(),
                format!("{ts:.6}"),
                label.to_string(),
            ])?;
        }
        w.flush()
    }

    /// Writes the table to `path` (through a temporary file and a rename).
    pub fn write_file(&self, path: &Path) -> Result<()> {
        self.check()?;
        crate::util::write_atomically(path, |f| self.write_to(std::io::BufWriter::new(f)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate(p: &SynthParams) -> String {
        let mut buf = Vec::new();
        p.write_to(&mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn deterministic_and_labelled() {
        let p = SynthParams {
            rows: 2000,
            ..SynthParams::default()
        };
        let a = generate(&p);
        assert_eq!(a, generate(&p));
        let other = generate(&SynthParams {
            seed: 7,
            ..p.clone()
        });
        assert_ne!(a, other);
        let mut lines = a.lines();
        assert_eq!(lines.next().unwrap(), COLUMNS.join(","));
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), 2000);
        assert!(rows.iter().all(|r| r.len() == COLUMNS.len()));
        let attacks = rows.iter().filter(|r| r[20] != NORMAL).count();
        assert!((400..600).contains(&attacks), "{attacks} attacks");
        for a in Attack::ALL {
            assert!(rows.iter().any(|r| r[20] == a.label()), "{}", a.label());
        }
    }

    #[test]
    fn mix_parsing_and_bad_params() {
        let mix = parse_mix("udp.flood=2, GRE.IP").unwrap();
        assert_eq!(mix, [(Attack::UdpFlood, 2.0), (Attack::GreIp, 1.0)]);
        assert!(parse_mix("Smurf=1").is_err());
        assert!(parse_mix("GRE.IP=-1").is_err());
        assert!(parse_mix("GRE.IP=x").is_err());
        let only = SynthParams {
            rows: 300,
            mix: vec![(Attack::GreIp, 1.0)],
            ..SynthParams::default()
        };
        let text = generate(&only);
        assert!(text
            .lines()
            .skip(1)
            .all(|l| l.ends_with(",normal") || l.ends_with(",GRE.IP")));
        let bad = SynthParams {
            attack_fraction: 1.5,
            ..SynthParams::default()
        };
        assert!(bad.write_to(Vec::new()).is_err());
        let none = SynthParams {
            mix: vec![],
            ..SynthParams::default()
        };
        assert!(none.write_to(Vec::new()).is_err());
    }
}
