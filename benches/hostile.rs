//! Hostile-traffic benchmark: throughput and peak memory of every packet
//! feature layout, at the default table caps, on benign traffic, a
//! spoofed-source flood of 5,000,000 distinct sources with random ports, and
//! a flood of 5,000,000 IP fragments from random sources.
//!
//! `cargo bench --bench hostile` prints one JSON line a run. Each run is its
//! own process, so its peak resident memory (VmHWM) is its own.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Instant;

use floodwatch::features::combined::Layout;
use floodwatch::features::stream_table::TableConfig;
use floodwatch::ingest::packets::{Network, PacketMeta, Transport};

const PACKETS: u64 = 5_000_000;
const SCENARIOS: [&str; 3] = ["benign", "spoofed", "fragments"];
const CHILD: &str = "FLOODWATCH_HOSTILE_RUN";

fn main() {
    if let Ok(run) = std::env::var(CHILD) {
        child(&run);
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    for layout in Layout::ALL {
        for scenario in SCENARIOS {
            let out = Command::new(&exe)
                .env(CHILD, format!("{layout}/{scenario}"))
                .output()
                .expect("run child");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
    }
}

fn child(run: &str) {
    let (layout, scenario) = run.split_once('/').expect("layout/scenario");
    let layout = Layout::ALL
        .into_iter()
        .find(|l| l.to_string() == layout)
        .expect("layout");
    let mut x = layout.extractor(TableConfig::default()).expect("extractor");
    let mut out = vec![0.0; x.names().len()];
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let start = Instant::now();
    let mut sink = 0.0;
    for i in 0..PACKETS {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let p = packet(scenario, i, rng);
        x.update(&p, &mut out);
        sink += out[0];
    }
    let secs = start.elapsed().as_secs_f64();
    let max_len: usize = x.table_stats().iter().map(|t| t.len).max().unwrap_or(0);
    let evicted: u64 = x.table_stats().iter().map(|t| t.evicted).sum();
    println!(
        "{{\"layout\":\"{layout}\",\"scenario\":\"{scenario}\",\"packets\":{PACKETS},\
         \"packets_per_s\":{:.0},\"peak_rss_mb\":{:.1},\"largest_table\":{max_len},\
         \"evicted\":{evicted},\"check\":{}}}",
        PACKETS as f64 / secs,
        vm_hwm_kb() as f64 / 1024.0,
        sink.is_finite()
    );
}

/// Peak resident memory of this process, from /proc/self/status.
fn vm_hwm_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn packet(scenario: &str, i: u64, r: u64) -> PacketMeta {
    let t = 1.7e9 + i as f64 * 1e-5;
    let (src, transport) = match scenario {
        // 50 devices talking to 10 servers.
        "benign" => (
            0x0a00_0000 + (r % 50) as u32,
            Transport::Tcp {
                src_port: 40_000 + (r >> 40) as u16 % 8,
                dst_port: 443,
                flags: 0x10,
            },
        ),
        // Distinct sources: i itself, scrambled; random source ports.
        "spoofed" => (
            (i as u32).wrapping_mul(0x9E37_79B1),
            Transport::Tcp {
                src_port: (r >> 32) as u16,
                dst_port: 80,
                flags: 0x02,
            },
        ),
        _ => ((i as u32).wrapping_mul(0x9E37_79B1), Transport::None),
    };
    let dst = if scenario == "benign" {
        0x0a01_0000 + (r >> 20) as u32 % 10
    } else {
        0x0a01_0001
    };
    PacketMeta {
        index: i + 1,
        timestamp: t,
        wire_len: 60,
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        network: Network::Ip {
            src: IpAddr::V4(Ipv4Addr::from(src)),
            dst: IpAddr::V4(Ipv4Addr::from(dst)),
        },
        transport,
        fragment: None,
    }
}
