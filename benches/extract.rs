//! Packet feature extraction benchmark, printing one JSON object per line.
//!
//! `cargo bench --bench extract` measures, on one core:
//! - update throughput of every layout over 1,000,000 synthetic frames of
//!   mixed LAN/Internet traffic (TCP, UDP, ICMP, ARP, non-IP), best of 3;
//! - in a child process (so the peak is its own), a flood of 5,000,000
//!   frames from 5,000,000 distinct spoofed sources into the `kitsune` layout
//!   with 100,000 entries per table: throughput, evictions and peak resident
//!   memory (VmHWM).
//!
//! - every layout reading a capture file of 1,000,000 packets written by
//!   `synth` (benign IoT traffic and the five Mirai-style floods, one of
//!   them spoofed): read, decode and update, best of 3;
//! - Kitsune-py's recorded inputs of the two shared reference captures
//!   replayed through the faithful layout (real traffic, small tables).
//!
//! Rates are given per wall second and per CPU second of the thread (the
//! machine is shared; the CPU figure is the one-core cost).
//!
//! `-- --flood N CAP` runs only the flood (N frames, CAP entries per table);
//! `-- --layout NAME` only the throughput of one layout; `-- --file` only
//! the capture file; `-- --golden CAPTURE` only the replay of one
//! reference capture.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Instant;

use flate2::read::GzDecoder;
use floodwatch::features::combined::Layout;
use floodwatch::features::kitsune::{Kitsune, KitsuneInputs};
use floodwatch::features::stream_table::TableConfig;
use floodwatch::ingest::packets::capture::PacketSource;
use floodwatch::ingest::packets::synth;
use floodwatch::ingest::packets::{Network, PacketMeta, Transport};

/// xorshift64*: deterministic and fast enough not to weigh on the figures.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn v4(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(n))
}

fn mac(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x02, 0x00, b[0], b[1], b[2], b[3]]
}

/// Mixed traffic: 5,000 flows between 250 LAN hosts and 20,000 servers,
/// picked with a skew (a few flows carry most packets). With `bursty`, a
/// packet continues one of the 8 most recent flows 3 times out of 4 (packet
/// trains, as in real captures); otherwise every packet picks a flow afresh,
/// the worst case for the caches.
fn mixed_traffic(n: usize, bursty: bool) -> Vec<PacketMeta> {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let flows: Vec<(u32, u32, u16, u16, u8)> = (0..5_000)
        .map(|_| {
            let client = 0xc0a8_0000 | (rng.below(250) as u32 + 2);
            let server = 0x2000_0000 + rng.below(20_000) as u32 * 7919;
            let kind = [6, 6, 6, 17, 17, 1][rng.below(6) as usize];
            (
                client,
                server,
                1024 + rng.below(60_000) as u16,
                [80, 443, 53, 123, 8080][rng.below(5) as usize],
                kind,
            )
        })
        .collect();
    let mut t = 1_600_000_000.0;
    let mut recent = [0usize; 8];
    (0..n)
        .map(|i| {
            t += rng.below(20) as f64 * 1e-6;
            let f = if bursty && rng.below(4) != 0 {
                recent[rng.below(8) as usize]
            } else {
                let u = (rng.below(1 << 20) as f64) / f64::from(1 << 20);
                let f = (u * u * flows.len() as f64) as usize;
                recent[i % 8] = f;
                f
            };
            let (c, s, cp, sp, kind) = flows[f];
            let reply = rng.below(3) == 0;
            let (src, dst, spt, dpt) = if reply {
                (s, c, sp, cp)
            } else {
                (c, s, cp, sp)
            };
            let roll = rng.below(1000);
            let (network, transport) = if roll < 5 {
                (Network::None, Transport::None)
            } else if roll < 15 {
                (
                    Network::Arp {
                        sender: Ipv4Addr::from(c),
                        target: Ipv4Addr::from(0xc0a8_0001),
                    },
                    Transport::None,
                )
            } else {
                let transport = match kind {
                    6 => Transport::Tcp {
                        src_port: spt,
                        dst_port: dpt,
                        flags: 0x18,
                    },
                    17 => Transport::Udp {
                        src_port: spt,
                        dst_port: dpt,
                    },
                    _ => Transport::Icmp {
                        icmp_type: 8,
                        quoted: None,
                    },
                };
                (
                    Network::Ip {
                        src: v4(src),
                        dst: v4(dst),
                    },
                    transport,
                )
            };
            PacketMeta {
                index: i as u64 + 1,
                timestamp: t,
                wire_len: 60 + rng.below(1440) as u32,
                src_mac: mac(src),
                dst_mac: mac(dst),
                network,
                transport,
                fragment: None,
            }
        })
        .collect()
}

/// Nanoseconds this thread has run on a CPU (the machine is shared, so wall
/// time overstates the cost when other processes compete for the cores).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Best of 3 runs of `run`, as (packets per wall second, per CPU second).
fn best_of_3(n: usize, mut run: impl FnMut()) -> (f64, f64) {
    let (mut wall, mut cpu) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..3 {
        let (start, cpu0) = (Instant::now(), thread_cpu_ns());
        run();
        wall = wall.min(start.elapsed().as_secs_f64());
        cpu = cpu.min((thread_cpu_ns() - cpu0) as f64 * 1e-9);
    }
    ((n as f64 / wall).round(), (n as f64 / cpu).round())
}

fn throughput(layout: Layout, packets: &[PacketMeta]) -> (f64, f64, f64) {
    let mut checksum = 0.0;
    let (wall, cpu) = best_of_3(packets.len(), || {
        let mut x = layout
            .extractor(TableConfig::default())
            .expect("default config");
        let mut out = vec![0.0; x.names().len()];
        for p in packets {
            x.update(p, &mut out);
            checksum += out[1];
        }
    });
    (wall, cpu, checksum)
}

/// Writes a `synth` capture of `n` packets: benign IoT traffic at 2,000
/// packets/s with the five floods (SYN spoofed) mixed in.
fn write_capture(path: &std::path::Path, n: u64) {
    let cfg = common::flood_mix(n);
    let out = std::io::BufWriter::new(std::fs::File::create(path).expect("create capture"));
    synth::write(&cfg, out, std::io::sink()).expect("write capture");
}

/// Reads, decodes and extracts every packet of the capture at `path`.
fn from_file(layout: Layout, path: &std::path::Path, n: u64) {
    let mut checksum = 0.0;
    let (wall, cpu) = best_of_3(n as usize, || {
        let mut x = layout
            .extractor(TableConfig::default())
            .expect("default config");
        let mut out = vec![0.0; x.names().len()];
        let mut source = PacketSource::open(path).expect("open capture");
        let mut seen = 0;
        for p in &mut source {
            x.update(&p, &mut out);
            checksum += out[1];
            seen += 1;
        }
        assert_eq!(seen, n, "packets read");
    });
    let json = serde_json::json!({
        "bench": "file_throughput",
        "traffic": "synth capture: benign IoT, udp, syn-spoofed, ack, http, gre floods",
        "layout": layout.to_string(),
        "packets": n,
        "packets_per_sec": wall,
        "packets_per_cpu_sec": cpu,
        "checksum": checksum,
    });
    println!("{json}");
}

/// Replays Kitsune-py's recorded inputs of a shared capture through the
/// faithful layout, a fresh extractor per replay, until 1,000,000 packets.
fn golden_replay(capture: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../shared/golden/kitsune/{capture}.inputs.tsv.gz"));
    let Ok(file) = std::fs::File::open(&path) else {
        eprintln!("skipping golden replay: {} not found", path.display());
        return;
    };
    let mut rejected = 0usize;
    let inputs: Vec<KitsuneInputs> = BufReader::new(GzDecoder::new(file))
        .lines()
        .skip(1)
        .map_while(Result::ok)
        .filter_map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let parsed = match f[..] {
                [_, _, a, b, c, d, e, g, size, ts] => match (size.parse(), ts.parse()) {
                    (Ok(size), Ok(ts)) => KitsuneInputs::new([a, b, c, d, e, g], size, ts).ok(),
                    _ => None,
                },
                _ => None,
            };
            rejected += usize::from(parsed.is_none());
            parsed
        })
        .collect();
    if rejected > 0 {
        eprintln!(
            "golden replay: {rejected} malformed rows of {} rejected",
            path.display()
        );
    }
    let replays = 1_000_000usize.div_ceil(inputs.len().max(1));
    let (wall, cpu) = best_of_3(replays * inputs.len(), || {
        let mut out = [0.0; 100];
        for _ in 0..replays {
            let mut x = Kitsune::new(TableConfig::default()).expect("default config");
            for i in &inputs {
                x.update_inputs(i, &mut out);
            }
        }
    });
    let json = serde_json::json!({
        "bench": "golden_replay",
        "layout": "kitsune",
        "capture": capture,
        "packets": replays * inputs.len(),
        "packets_per_sec": wall,
        "packets_per_cpu_sec": cpu,
    });
    println!("{json}");
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn flood(n: u64, cap: usize) {
    let config = TableConfig {
        capacity: cap,
        ..TableConfig::default()
    };
    let mut x = Layout::Kitsune.extractor(config).expect("valid config");
    let mut out = vec![0.0; x.names().len()];
    let mut rng = Rng(0xf100_d000_0000_0001);
    let victim = v4(0x0a0a_0a0a);
    let (start, cpu0) = (Instant::now(), thread_cpu_ns());
    for i in 0..n {
        // i * odd constant is a bijection on u32: every source is distinct.
        let src = (i as u32).wrapping_mul(0x9e37_79b1);
        let p = PacketMeta {
            index: i + 1,
            timestamp: 1_600_000_000.0 + i as f64 * 1e-6,
            wire_len: 60,
            src_mac: [0x44, 0xf4, 0x77, 0x0f, 0xea, 0x49],
            dst_mac: [0x4c, 0x72, 0xb9, 0x7c, 0xb5, 0xb7],
            network: Network::Ip {
                src: v4(src),
                dst: victim,
            },
            transport: Transport::Tcp {
                src_port: rng.below(65_536) as u16,
                dst_port: 80,
                flags: 0x02,
            },
            fragment: None,
        };
        x.update(&p, &mut out);
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = (thread_cpu_ns() - cpu0) as f64 * 1e-9;
    let tables = x.table_stats();
    let json = serde_json::json!({
        "bench": "spoofed_flood",
        "layout": "kitsune",
        "packets": n,
        "distinct_sources": n.min(1 << 32),
        "table_capacity": cap,
        "packets_per_sec": (n as f64 / secs).round(),
        "packets_per_cpu_sec": (n as f64 / cpu).round(),
        "peak_rss_mib": vm_hwm_kib() as f64 / 1024.0,
        "max_table_len": tables.iter().map(|t| t.len).max(),
        "evicted": tables.iter().map(|t| t.evicted).sum::<u64>(),
        "reclaimed": tables.iter().map(|t| t.reclaimed).sum::<u64>(),
        "tables": tables,
    });
    println!("{json}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--flood") {
        let n = args
            .get(i + 1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(5_000_000);
        let cap = args
            .get(i + 2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(100_000);
        flood(n, cap);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--golden") {
        golden_replay(
            args.get(i + 1)
                .map_or("mirai_first2000.pcap", String::as_str),
        );
        return;
    }
    let only: Option<Layout> = args
        .iter()
        .position(|a| a == "--layout")
        .and_then(|i| args.get(i + 1)?.parse().ok());
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("bench.pcap");
    write_capture(&capture, 1_000_000);
    for layout in Layout::ALL
        .into_iter()
        .filter(|l| only.is_none() || only == Some(*l))
    {
        from_file(layout, &capture, 1_000_000);
    }
    if args.iter().any(|a| a == "--file") {
        return;
    }
    for bursty in [true, false] {
        let packets = mixed_traffic(1_000_000, bursty);
        let traffic = if bursty {
            "bursty mix: 5,000 flows, 250 LAN hosts, 20,000 servers, packet trains"
        } else {
            "uniform mix: same flows, no packet trains"
        };
        for layout in Layout::ALL
            .into_iter()
            .filter(|l| only.is_none() || only == Some(*l))
        {
            let (wall, cpu, checksum) = throughput(layout, &packets);
            let json = serde_json::json!({
                "bench": "update_throughput",
                "traffic": traffic,
                "layout": layout.to_string(),
                "packets": packets.len(),
                "packets_per_sec": wall,
                "packets_per_cpu_sec": cpu,
                "checksum": checksum,
            });
            println!("{json}");
        }
    }
    if only.is_some() {
        return;
    }
    for capture in ["mirai_first2000.pcap", "pkt.TCP.synflood.spoofed.pcap"] {
        golden_replay(capture);
    }
    match std::env::current_exe() {
        Ok(exe) => match Command::new(exe)
            .args(["--flood", "5000000", "100000"])
            .status()
        {
            Ok(s) if s.success() => {}
            other => eprintln!("flood child failed: {other:?}"),
        },
        Err(e) => eprintln!("cannot re-run the bench for the flood: {e}"),
    }
}
