//! Tests of the day profile.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use super::*;
use crate::ingest::packets::capture::CaptureReader;
use crate::ingest::packets::decode::{decode_checked, DecodeStats};

const MIN: i64 = 60_000_000_000;
const SEC: i64 = 1_000_000_000;

/// The fields of a frame the tests look at.
#[derive(Debug, Clone, Copy)]
struct Pkt {
    /// Nanoseconds since the start.
    t: i64,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    /// 6 TCP, 17 UDP, 1 ICMP; 0 for ARP.
    proto: u8,
    sport: u16,
    dport: u16,
    flags: u8,
    len: usize,
}

fn ip(f: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(f[at], f[at + 1], f[at + 2], f[at + 3])
}

fn parse(t: i64, f: &[u8]) -> Pkt {
    let port = |at: usize| u16::from_be_bytes([f[at], f[at + 1]]);
    if f[12..14] == [0x08, 0x06] {
        let (src, dst) = (ip(f, 28), ip(f, 38));
        return Pkt {
            t,
            src,
            dst,
            proto: 0,
            sport: 0,
            dport: 0,
            flags: 0,
            len: f.len(),
        };
    }
    let proto = f[23];
    let l4 = matches!(proto, 6 | 17);
    Pkt {
        t,
        src: ip(f, 26),
        dst: ip(f, 30),
        proto,
        sport: if l4 { port(34) } else { 0 },
        dport: if l4 { port(36) } else { 0 },
        flags: if proto == 6 { f[47] } else { 0 },
        len: f.len(),
    }
}

/// Runs `cfg`, handing every frame and its label to `each`.
fn run(cfg: &DayConfig, mut each: impl FnMut(Pkt, &str)) -> SynthSummary {
    cfg.validate().unwrap();
    generate(cfg, |t, f, label| {
        each(parse(t - cfg.start_ns, f), label);
        Ok(())
    })
    .unwrap()
}

fn config(minutes: i64, rate: f64, attacks: &[&str]) -> DayConfig {
    DayConfig {
        rate,
        seed: 7,
        duration_ns: Some(minutes * MIN),
        attacks: attacks.iter().map(|a| a.parse().unwrap()).collect(),
        ..DayConfig::default()
    }
}

fn home(octet: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 1, octet)
}

/// A CRC of everything written.
struct Crc(crc32fast::Hasher);

impl Write for Crc {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn crc(cfg: &DayConfig) -> (u32, u32) {
    let (mut p, mut l) = (Crc(Default::default()), Crc(Default::default()));
    write_day(cfg, &mut p, &mut l).unwrap();
    (p.0.finalize(), l.0.finalize())
}

#[test]
fn is_deterministic_per_seed() {
    let cfg = DayConfig {
        attack_at_ns: Some(2 * MIN),
        attack_duration_ns: 20 * SEC,
        ..config(6, 30.0, &["hscan", "infected", "udp-spoofed"])
    };
    assert_eq!(crc(&cfg), crc(&cfg));
    let other = DayConfig {
        seed: 8,
        ..cfg.clone()
    };
    assert_ne!(crc(&cfg).0, crc(&other).0);
}

/// A CRC of the benign frames and their times.
fn benign_crc(cfg: &DayConfig) -> (u32, u64) {
    let mut h = crc32fast::Hasher::new();
    let mut n = 0;
    generate(cfg, |t, f, label| {
        if label == "normal" {
            h.update(&t.to_le_bytes());
            h.update(f);
            n += 1;
        }
        Ok(())
    })
    .unwrap();
    (h.finalize(), n)
}

#[test]
fn attacks_leave_the_benign_traffic_as_it_was() {
    let benign = config(5, 40.0, &[]);
    let attacked = DayConfig {
        attack_at_ns: Some(MIN),
        attack_duration_ns: 30 * SEC,
        ..config(5, 40.0, &["hscan", "vscan", "infected", "syn-spoofed"])
    };
    assert_eq!(benign_crc(&benign), benign_crc(&attacked));
}

#[test]
fn decodes_cleanly() {
    let cfg = DayConfig {
        attack_at_ns: Some(5 * SEC),
        attack_duration_ns: 5 * SEC,
        scan: ScanConfig {
            infected_delay_ns: 2 * SEC,
            ..ScanConfig::default()
        },
        ..config(
            1,
            50.0,
            &["hscan", "vscan", "infected", "gre-spoofed", "http"],
        )
    };
    let (mut pcap, mut labels) = (Vec::new(), Vec::new());
    let summary = write_day(&cfg, &mut pcap, &mut labels).unwrap();
    let mut reader = CaptureReader::from_reader(&pcap[..], "day").unwrap();
    let (mut buf, mut stats, mut last) = (Vec::new(), DecodeStats::default(), 0);
    while let Some(raw) = reader.next_packet(&mut buf).unwrap() {
        assert!(raw.ts_ns >= last, "time goes forward");
        last = raw.ts_ns;
        stats.record(decode_checked(&raw).1);
    }
    assert_eq!(stats.frames(), summary.packets);
    assert_eq!(stats.malformed(), 0, "{stats}");
    let text = String::from_utf8(labels).unwrap();
    assert_eq!(text.lines().count() as u64, summary.packets + 1);
    for l in [
        "normal",
        "hscan",
        "vscan",
        "infected-scan",
        "infected-udp",
        "gre-spoofed",
        "http",
    ] {
        assert!(text.contains(&format!(",{l}\n")), "{l} missing");
    }
}

/// Counts of a 6 h run at a low rate.
#[derive(Default)]
struct Day {
    /// DNS queries per 10 minutes.
    dns: Vec<u32>,
    /// Time of each host's first and last frame it sent (not ICMP).
    first_last: HashMap<Ipv4Addr, (i64, i64)>,
    /// Longest silence of each host (not counting its ping answers).
    longest_gap: HashMap<Ipv4Addr, i64>,
    /// First time the host's address shows up at all, and in what protocol.
    first_seen: HashMap<Ipv4Addr, (i64, u8)>,
    /// DHCP messages.
    dhcp: u32,
    /// Full-size frames per 10 s per (source, destination port).
    bulk: HashMap<(Ipv4Addr, u16, i64), u32>,
    /// Hosts the monitor pinged in the first two minutes.
    polled: HashSet<Ipv4Addr>,
    /// Time of the first RTP frame, and their count.
    rtp: (i64, u64),
}

fn six_hours() -> Day {
    let mut d = Day {
        dns: vec![0; 36],
        rtp: (i64::MAX, 0),
        ..Day::default()
    };
    run(&config(360, 20.0, &[]), |p, label| {
        assert_eq!(label, "normal");
        let bin = (p.t / (10 * MIN)).min(35) as usize;
        d.dns[bin] += u32::from(p.proto == 17 && p.dport == 53);
        for a in [p.src, p.dst] {
            d.first_seen.entry(a).or_insert((p.t, p.proto));
        }
        d.dhcp += u32::from(p.proto == 17 && matches!(p.sport, 67 | 68));
        if p.proto != 1 {
            let e = d.first_last.entry(p.src).or_insert((p.t, p.t));
            let gap = d.longest_gap.entry(p.src).or_default();
            *gap = (*gap).max(p.t - e.1);
            e.1 = p.t;
        }
        if p.len >= 1500 {
            *d.bulk
                .entry((p.src, p.sport.min(p.dport), p.t / (10 * SEC)))
                .or_default() += 1;
        }
        if p.proto == 1 && p.src == home(3) && p.t < 2 * MIN {
            d.polled.insert(p.dst);
        }
        if p.proto == 17 && p.dport == 5004 {
            d.rtp.0 = d.rtp.0.min(p.t);
            d.rtp.1 += 1;
        }
    });
    d
}

#[test]
fn day_profile_varies() {
    let d = six_hours();
    // The daily swing: the last hour is about twice as busy as the first.
    let first: u32 = d.dns[..6].iter().sum();
    let last: u32 = d.dns[30..].iter().sum();
    let ratio = f64::from(last) / f64::from(first);
    assert!((1.6..2.5).contains(&ratio), "{ratio} {:?}", d.dns);
    // Late-comers appear after a fifth of the capture: DHCP, then an ARP
    // announcement before anything else.
    assert_eq!(d.dhcp, 12);
    for o in [50, 51, 52] {
        let (t, proto) = d.first_seen[&home(o)];
        assert!(t > 70 * MIN && proto == 0, "{o} at {t} in {proto}");
    }
    // Leavers stop.
    for o in [21, 22] {
        let last = d.first_last[&home(o)].1;
        assert!(last < 360 * MIN * 2 / 3, "{o} still there at {last}");
    }
    // Hosts go quiet for 10 minutes or more, then come back.
    let quiet = d.longest_gap.values().filter(|&&g| g >= 10 * MIN).count();
    assert!(quiet >= 5, "{quiet} hosts went quiet");
    // Bulk: hundreds of full-size frames a second from one source.
    let busiest = d.bulk.values().max().copied().unwrap_or(0);
    assert!(busiest > 3000, "{busiest} frames in 10 s");
    // The monitor pings every host present from the start.
    let present = [2, 10, 11, 12, 13, 20, 21, 22, 23, 24, 30, 31, 40, 47];
    assert!(
        present.iter().all(|&o| d.polled.contains(&home(o))),
        "{:?}",
        d.polled
    );
    assert!(d.polled.len() >= 27, "{}", d.polled.len());
    // The camera starts streaming part-way, 30-60 packets a second.
    let (from, n) = d.rtp;
    let pps = n as f64 / ((360 * MIN - from) as f64 / 1e9);
    assert!(
        from > 100 * MIN && (28.0..62.0).contains(&pps),
        "{from} {pps}"
    );
}

/// Probes (SYNs) and answers of a scan, from a 5-minute capture.
fn scan(cfg: &DayConfig, label: &str) -> (Vec<Pkt>, Vec<Pkt>, SynthSummary) {
    let (mut probes, mut answers) = (Vec::new(), Vec::new());
    let summary = run(cfg, |p, l| {
        if l == label {
            if p.flags == 0x02 {
                probes.push(p);
            } else {
                answers.push(p);
            }
        }
    });
    (probes, answers, summary)
}

#[test]
fn hscan_from_k_scanners_at_the_requested_rate() {
    let cfg = DayConfig {
        attack_at_ns: Some(MIN),
        attack_duration_ns: 30 * SEC,
        scan: ScanConfig {
            rate: 200.0,
            scanners: 3,
            ports: vec![23, 2323],
            ..ScanConfig::default()
        },
        ..config(5, 20.0, &["hscan"])
    };
    let (probes, answers, summary) = scan(&cfg, "hscan");
    let sources: HashSet<_> = probes.iter().map(|p| p.src).collect();
    let targets: HashSet<_> = probes.iter().map(|p| p.dst).collect();
    assert_eq!(sources.len(), 3);
    assert_eq!(targets.len(), 254);
    for s in &sources {
        let n = probes.iter().filter(|p| p.src == *s).count() as f64;
        assert!((n / 30.0 - 200.0).abs() < 15.0, "{s}: {n} probes");
    }
    assert!(probes.iter().all(|p| (MIN..MIN + 30 * SEC).contains(&p.t)));
    let ports: HashSet<_> = probes.iter().map(|p| p.dport).collect();
    assert_eq!(ports, HashSet::from([23, 2323]));
    // The DVR's telnet is open; absent addresses never answer.
    assert!(answers
        .iter()
        .any(|p| p.src == home(23) && p.sport == 23 && p.flags == 0x12));
    assert!(answers.iter().any(|p| p.flags == 0x14));
    assert!(answers
        .iter()
        .all(|p| p.src != home(100) && p.src != home(60)));
    let span = &summary.attacks[0];
    assert_eq!((span.label.as_str(), span.attackers.len()), ("hscan", 3));
    assert!(span.onset_ns - cfg.start_ns - MIN < 10_000_000, "{span:?}");
}

#[test]
fn vscan_probes_many_ports_of_one_host() {
    let cfg = DayConfig {
        attack_at_ns: Some(MIN),
        attack_duration_ns: 30 * SEC,
        scan: ScanConfig {
            vscan_ports: 500,
            ..ScanConfig::default()
        },
        ..config(3, 20.0, &["vscan"])
    };
    let (probes, answers, summary) = scan(&cfg, "vscan");
    let targets: HashSet<_> = probes.iter().map(|p| p.dst).collect();
    let ports: HashSet<_> = probes.iter().map(|p| p.dport).collect();
    assert_eq!(targets, HashSet::from([home(2)]));
    assert_eq!(ports.len(), 500);
    let open: HashSet<_> = answers
        .iter()
        .filter(|p| p.flags == 0x12)
        .map(|p| p.sport)
        .collect();
    assert_eq!(open, HashSet::from([22, 80, 139, 445]));
    assert_eq!(summary.attacks[0].targets, vec![(home(2), 32)]);
}

#[test]
fn infected_device_scans_then_floods() {
    let cfg = DayConfig {
        attack_at_ns: Some(MIN),
        attack_duration_ns: 60 * SEC,
        ..config(3, 50.0, &["infected"])
    };
    let mut by_label: HashMap<String, Vec<Pkt>> = HashMap::new();
    let summary = run(&cfg, |p, l| {
        by_label.entry(l.to_string()).or_default().push(p)
    });
    let scan = &by_label["infected-scan"];
    let flood = &by_label["infected-udp"];
    assert!(scan
        .iter()
        .all(|p| p.src == home(23) && p.proto == 6 && p.flags == 0x02));
    assert!(scan
        .iter()
        .all(|p| !p.dst.is_private() && matches!(p.dport, 23 | 2323)));
    assert!(flood.iter().all(|p| p.src == home(23) && p.proto == 17));
    assert!(flood
        .iter()
        .all(|p| p.dst == Ipv4Addr::new(198, 51, 100, 23)));
    let delay = flood[0].t - scan[0].t;
    assert!((19 * SEC..21 * SEC).contains(&delay), "{delay}");
    assert!(flood.len() > 15_000, "{}", flood.len());
    // Its benign traffic goes on.
    let during = |p: &&Pkt| (MIN..2 * MIN).contains(&p.t) && p.src == home(23);
    assert!(by_label["normal"].iter().filter(during).count() > 5);
    let labels: Vec<_> = summary.attacks.iter().map(|a| a.label.as_str()).collect();
    assert_eq!(labels, ["infected-scan", "infected-udp"]);
}

#[test]
fn floods_start_at_the_given_time() {
    let cfg = DayConfig {
        attack_at_ns: Some(2 * MIN),
        attack_duration_ns: 20 * SEC,
        ..config(4, 50.0, &["syn-spoofed", "ack"])
    };
    let mut counts: HashMap<String, (u64, i64, i64)> = HashMap::new();
    let summary = run(&cfg, |p, l| {
        let e = counts.entry(l.to_string()).or_insert((0, p.t, p.t));
        *e = (e.0 + 1, e.1.min(p.t), e.2.max(p.t));
    });
    let (n, from, to) = counts["syn-spoofed"];
    assert!((9_000..11_000).contains(&n), "{n}");
    assert!(from >= 2 * MIN && to < 2 * MIN + 20 * SEC);
    // The next attack follows after a pause as long as an attack.
    assert!(counts["ack"].1 >= 2 * MIN + 40 * SEC);
    assert_eq!(summary.attacks.len(), 2);
}

#[test]
fn packet_limit_ends_the_capture_first() {
    let cfg = DayConfig {
        packets: Some(1000),
        ..config(60, 50.0, &[])
    };
    let s = run(&cfg, |_, _| {});
    assert_eq!((s.packets, s.normal), (1000, 1000));
}

#[test]
fn rejects_bad_configurations_naming_the_flag() {
    let cases: [(DayConfig, &str); 6] = [
        (
            DayConfig {
                duration_ns: None,
                ..DayConfig::default()
            },
            "--duration",
        ),
        (
            DayConfig {
                rate: 0.0,
                ..DayConfig::default()
            },
            "--rate",
        ),
        (
            DayConfig {
                day_ns: 0,
                ..DayConfig::default()
            },
            "--day-length",
        ),
        (
            DayConfig {
                scan: ScanConfig {
                    scanners: 0,
                    ..ScanConfig::default()
                },
                ..DayConfig::default()
            },
            "--scanners",
        ),
        (
            DayConfig {
                scan: ScanConfig {
                    rate: f64::NAN,
                    ..ScanConfig::default()
                },
                ..DayConfig::default()
            },
            "--scan-rate",
        ),
        (
            DayConfig {
                scan: ScanConfig {
                    ports: vec![],
                    ..ScanConfig::default()
                },
                ..DayConfig::default()
            },
            "--scan-ports",
        ),
    ];
    for (cfg, flag) in cases {
        let e = write_day(&cfg, io::sink(), io::sink())
            .unwrap_err()
            .to_string();
        assert!(e.contains(flag), "{e}");
    }
}

#[test]
fn parses_durations_and_attacks() {
    assert_eq!(parse_duration("45s"), Ok(45 * SEC));
    assert_eq!(parse_duration("90m"), Ok(90 * MIN));
    assert_eq!(parse_duration("6h"), Ok(360 * MIN));
    assert_eq!(parse_duration("1.5h"), Ok(90 * MIN));
    assert_eq!(parse_duration("250ms"), Ok(SEC / 4));
    assert_eq!(parse_duration("30"), Ok(30 * SEC));
    for bad in ["6x", "-1s", "", "h", "1e30h"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
    assert_eq!("hscan".parse(), Ok(Scenario::HScan));
    assert_eq!(
        "infected".parse::<Scenario>().map(|s| s.to_string()),
        Ok("infected".into())
    );
    let syn: Scenario = "syn-spoofed".parse().unwrap();
    assert_eq!(syn.to_string(), "syn-spoofed");
    assert!("smurf".parse::<Scenario>().unwrap_err().contains("hscan"));
}

#[test]
fn memory_stays_bounded() {
    let cfg = config(360, 50.0, &["hscan", "infected", "udp"]);
    let end = cfg.start_ns + 360 * MIN;
    let mut sim = Sim::new(&cfg);
    let (mut f, mut most, mut events) = (Vec::new(), 0, 0u64);
    while let Some(Reverse(due)) = sim.queue.pop() {
        if due.t > end {
            break;
        }
        sim.fire(due.t, due.ev, &mut f);
        most = most.max(sim.queue.len());
        events += 1;
    }
    assert!(events > 3_000_000, "{events}");
    assert!(
        most < 1000 && sim.transfers.len() < 10,
        "{most} {}",
        sim.transfers.len()
    );
}
