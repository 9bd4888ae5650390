//! Hostile traffic against the packet feature extractors: a spoofed-source
//! flood, a flood of IP fragments and a slow trickle of new keys. Every
//! stream table stays within its configured capacity and every feature stays
//! finite. (Memory and speed at 5,000,000 sources: `cargo bench --bench hostile`.)

use std::net::{IpAddr, Ipv4Addr};

use floodwatch::features::combined::Layout;
use floodwatch::features::stream_table::TableConfig;
use floodwatch::ingest::packets::{Network, PacketMeta, Transport};

/// A deterministic xorshift generator (no dependency on the test order).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const VICTIM: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn packet(i: u64, t: f64, src: u32, transport: Transport) -> PacketMeta {
    PacketMeta {
        index: i,
        timestamp: t,
        wire_len: 60,
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        network: Network::Ip {
            src: IpAddr::V4(Ipv4Addr::from(src)),
            dst: IpAddr::V4(VICTIM),
        },
        transport,
        fragment: None,
    }
}

/// Feeds `n` packets from `make` to every layout with tables of `capacity`
/// and checks occupancy and features after each 1,000 packets.
fn run(n: u64, capacity: usize, mut make: impl FnMut(u64) -> PacketMeta) -> u64 {
    let config = TableConfig {
        capacity,
        ..TableConfig::default()
    };
    let packets: Vec<PacketMeta> = (0..n).map(&mut make).collect();
    let mut removed = 0;
    for layout in Layout::ALL {
        let mut x = layout.extractor(config).unwrap();
        let mut out = vec![0.0; x.names().len()];
        for (i, p) in packets.iter().enumerate() {
            x.update(p, &mut out);
            if i % 1000 == 999 {
                assert!(out.iter().all(|v| v.is_finite()), "{layout}: {out:?}");
                for t in x.table_stats() {
                    assert!(
                        t.len <= t.capacity && t.capacity <= capacity,
                        "{layout}: {t:?}"
                    );
                }
            }
        }
        removed += x
            .table_stats()
            .iter()
            .map(|t| t.evicted + t.reclaimed)
            .sum::<u64>();
    }
    removed
}

#[test]
fn spoofed_source_flood_stays_within_the_caps() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let removed = run(60_000, 2_000, |i| {
        let r = rng.next();
        packet(
            i,
            1e9 + i as f64 * 1e-5,
            r as u32,
            Transport::Tcp {
                src_port: (r >> 32) as u16,
                dst_port: 80,
                flags: 0x02,
            },
        )
    });
    // 60,000 distinct sources through tables of 2,000: most were evicted.
    assert!(removed > 50_000, "{removed}");
}

#[test]
fn fragment_flood_stays_within_the_caps() {
    // Non-first fragments carry no transport header.
    let mut rng = Rng(7);
    let removed = run(40_000, 1_000, |i| {
        packet(i, 1e9 + i as f64 * 1e-5, rng.next() as u32, Transport::None)
    });
    assert!(removed > 30_000, "{removed}");
}

#[test]
fn slow_trickle_of_new_keys_is_reclaimed_or_evicted() {
    // One new source a second for 30,000 s of capture time, against a
    // steady conversation: old keys fade out, the tables stay at the cap.
    let removed = run(60_000, 500, |i| {
        let t = 1e9 + i as f64 * 0.5;
        let src = if i % 2 == 0 {
            0x0a00_0001
        } else {
            0x0b00_0000 + i as u32
        };
        packet(
            i,
            t,
            src,
            Transport::Udp {
                src_port: 5353,
                dst_port: 53,
            },
        )
    });
    assert!(removed > 20_000, "{removed}");
}
