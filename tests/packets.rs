//! Capture reading and decoding against the shared captures and Kitsune-py's
//! per-packet inputs in ../shared/golden/kitsune.

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::Path;

use floodwatch::ingest::packets::capture::CaptureReader;
use floodwatch::ingest::packets::decode::{decode_checked, DecodeStats};
use floodwatch::ingest::packets::{Network, PacketMeta, Transport};

mod util;
use util::shared;

/// Decodes every packet of a capture; fails on any reading error.
fn decode_all(path: &Path) -> (Vec<PacketMeta>, DecodeStats) {
    let mut reader = CaptureReader::open(path).unwrap();
    let mut buf = Vec::new();
    let mut stats = DecodeStats::default();
    let mut out = Vec::new();
    while let Some(raw) = reader.next_packet(&mut buf).unwrap() {
        let (meta, bad) = decode_checked(&raw);
        stats.record(bad);
        out.push(meta);
    }
    (out, stats)
}

fn mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Checks one packet against a row of Kitsune-py's inputs.
fn check(meta: &PacketMeta, cols: &[&str]) -> Result<(), String> {
    let [idx, ip_type, src_mac, dst_mac, src_ip, src_proto, dst_ip, dst_proto, size, ts] = cols
    else {
        return Err(format!("bad row {cols:?}"));
    };
    let want = |what: &str, got: String, exp: &str| {
        if got == *exp {
            Ok(())
        } else {
            Err(format!("{what}: got {got}, want {exp}"))
        }
    };
    want("index", meta.index.to_string(), idx)?;
    // Kitsune's IP type: 0 for IPv4 (ARP included), 1 for IPv6, nan else.
    let got_type = match meta.network {
        Network::Ip {
            src: IpAddr::V6(_), ..
        } => "1",
        Network::Ip { .. } | Network::Arp { .. } => "0",
        Network::None => "nan",
    };
    want("IPtype", got_type.to_string(), ip_type)?;
    want("srcMAC", mac(&meta.src_mac), src_mac)?;
    want("dstMAC", mac(&meta.dst_mac), dst_mac)?;
    want("size", meta.wire_len.to_string(), size)?;
    let ts: f64 = ts.parse().map_err(|e| format!("timestamp {ts}: {e}"))?;
    if (meta.timestamp - ts).abs() > 1e-6 {
        return Err(format!("timestamp: got {}, want {ts}", meta.timestamp));
    }
    let (got_src, got_dst) = match meta.network {
        Network::Ip { src, dst } => (src.to_string(), dst.to_string()),
        Network::Arp { sender, target } => (sender.to_string(), target.to_string()),
        // Kitsune puts the MACs where the IPs would be.
        Network::None => (mac(&meta.src_mac), mac(&meta.dst_mac)),
    };
    want("srcIP", got_src, src_ip)?;
    want("dstIP", got_dst, dst_ip)?;
    let ports = match meta.transport {
        Transport::Tcp {
            src_port, dst_port, ..
        }
        | Transport::Udp { src_port, dst_port } => Some((src_port, dst_port)),
        Transport::Icmp { quoted, .. } => quoted,
        _ => None,
    };
    match (*src_proto, *dst_proto) {
        ("arp", "arp") => (matches!(meta.network, Network::Arp { .. }))
            .then_some(())
            .ok_or("want ARP".to_string()),
        ("icmp", "icmp") => match (meta.network, meta.transport) {
            (
                Network::Ip {
                    src: IpAddr::V4(_), ..
                },
                Transport::Icmp { quoted: None, .. },
            ) => Ok(()),
            other => Err(format!("want ICMPv4 without quote, got {other:?}")),
        },
        ("", "") => ports
            .is_none()
            .then_some(())
            .ok_or(format!("unexpected ports {ports:?}")),
        (s, d) => want(
            "ports",
            format!("{ports:?}"),
            &format!(
                "{:?}",
                Some((s.parse::<u16>().unwrap_or(0), d.parse::<u16>().unwrap_or(0)))
            ),
        ),
    }
}

fn golden(capture: &str) {
    let (Some(pcap), Some(tsv)) = (
        shared(&format!("data/pcap/{capture}")),
        shared(&format!("golden/kitsune/{capture}.inputs.tsv.gz")),
    ) else {
        return;
    };
    let (metas, stats) = decode_all(&pcap);
    let file = std::fs::File::open(&tsv).unwrap();
    let lines = BufReader::new(flate2::read::GzDecoder::new(file)).lines();
    let mut rows = 0;
    let mut failures = Vec::new();
    for (i, line) in lines.skip(1).enumerate() {
        let line = line.unwrap();
        let cols: Vec<&str> = line.split('\t').collect();
        let Some(meta) = metas.get(i) else {
            failures.push(format!("row {}: no packet", i + 1));
            continue;
        };
        if let Err(e) = check(meta, &cols) {
            failures.push(format!("packet {}: {e}", i + 1));
        }
        rows += 1;
    }
    assert_eq!(
        rows,
        metas.len(),
        "{capture}: packet count differs from the reference"
    );
    assert!(
        failures.is_empty(),
        "{capture}: {} mismatches, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(stats.malformed(), 0, "{capture}: {stats}");
}

#[test]
fn mirai_matches_kitsune_inputs() {
    golden("mirai_first2000.pcap");
}

#[test]
fn spoofed_synflood_matches_kitsune_inputs() {
    golden("pkt.TCP.synflood.spoofed.pcap");
}

#[test]
fn every_shared_capture_decodes() {
    let Some(dir) = shared("data/pcap") else {
        return;
    };
    let expected = [
        ("CIC-DDoS-2019-SynFlood.pcap", 26_316),
        ("amp.TCP.reflection.SYNACK.pcap", 8_000),
        ("mirai_first2000.pcap", 2_000),
        ("pkt.TCP.DOMINATE.syn.ecn.cwr.pcapng", 9_878),
        ("pkt.TCP.synflood.spoofed.pcap", 37_841),
    ];
    for (name, count) in expected {
        let (metas, stats) = decode_all(&dir.join(name));
        assert_eq!(metas.len(), count, "{name}");
        assert_eq!(stats.malformed(), 0, "{name}: {stats}");
        assert!(
            metas.windows(2).all(|w| w[0].index + 1 == w[1].index),
            "{name}"
        );
        assert!(metas.iter().all(|m| matches!(
            m.network,
            Network::Ip { .. } | Network::Arp { .. } | Network::None
        )));
    }
}

#[test]
fn truncated_copy_of_a_real_capture_reports_the_damage() {
    let Some(src) = shared("data/pcap/mirai_first2000.pcap") else {
        return;
    };
    let bytes = std::fs::read(&src).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let mut reader = CaptureReader::open(&cut).unwrap();
    let mut buf = Vec::new();
    let mut n = 0;
    let err = loop {
        match reader.next_packet(&mut buf) {
            Ok(Some(_)) => n += 1,
            Ok(None) => panic!("truncation not reported"),
            Err(e) => break e,
        }
    };
    assert!(n > 900 && n < 1100, "{n} packets before the damage");
    assert!(err.is_fatal());
    assert_eq!(err.record(), n + 1);
    assert!(err.offset() < bytes.len() as u64 / 2);
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(reader.next_packet(&mut buf).unwrap().is_none());
}

/// Random damage to a valid capture: reading ends (cleanly or with a
/// reported error) and decoding never panics.
fn survive_damage(bytes: &[u8], seed: u64) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..300 {
        let mut damaged = bytes.to_vec();
        for _ in 0..rng.random_range(1..8) {
            let at = rng.random_range(0..damaged.len());
            damaged[at] = rng.random();
        }
        damaged.truncate(rng.random_range(1..=damaged.len()));
        let Ok(mut reader) = CaptureReader::from_reader(&damaged[..], "damaged") else {
            continue;
        };
        let mut buf = Vec::new();
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps <= damaged.len(), "reader does not advance");
            match reader.next_packet(&mut buf) {
                Ok(Some(raw)) => {
                    let _ = decode_checked(&raw);
                }
                Ok(None) => break,
                Err(e) if e.is_fatal() => {
                    assert!(e.offset() <= damaged.len() as u64);
                    assert!(reader.next_packet(&mut buf).unwrap().is_none());
                    break;
                }
                Err(_) => {}
            }
        }
    }
}

#[test]
fn damaged_synthetic_pcap_never_panics() {
    use floodwatch::ingest::packets::synth::{self, SynthConfig};
    let cfg = SynthConfig {
        packets: 40,
        rate: 100.0,
        seed: 5,
        attacks: vec!["gre".parse().unwrap(), "udp-spoofed".parse().unwrap()],
        start_ns: 1_700_000_000_000_000_000,
    };
    let mut pcap = Vec::new();
    synth::write(&cfg, &mut pcap, std::io::sink()).unwrap();
    survive_damage(&pcap, 1);
}

#[test]
fn damaged_pcapng_never_panics() {
    // Section header, one Ethernet interface with nanosecond resolution,
    // two enhanced packet blocks and a simple one, all little-endian.
    fn block(out: &mut Vec<u8>, t: u32, body: &[u8]) {
        let padded = body.len().div_ceil(4) * 4;
        let len = (padded + 12) as u32;
        out.extend_from_slice(&t.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(body);
        out.resize(out.len() + padded - body.len(), 0);
        out.extend_from_slice(&len.to_le_bytes());
    }
    let mut b = Vec::new();
    block(
        &mut b,
        0x0a0d_0d0a,
        &[
            0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
    );
    block(
        &mut b,
        1,
        &[1, 0, 0, 0, 0, 0, 4, 0, 9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0],
    );
    let frame: Vec<u8> = (0u8..60).collect();
    for ts in [1u32, 2] {
        let mut epb = vec![0, 0, 0, 0, 0, 0, 0, 0];
        epb.extend_from_slice(&ts.to_le_bytes());
        epb.extend_from_slice(&60u32.to_le_bytes());
        epb.extend_from_slice(&60u32.to_le_bytes());
        epb.extend_from_slice(&frame);
        block(&mut b, 6, &epb);
    }
    let mut spb = 60u32.to_le_bytes().to_vec();
    spb.extend_from_slice(&frame);
    block(&mut b, 3, &spb);
    let mut reader = CaptureReader::from_reader(&b[..], "ok.pcapng").unwrap();
    let mut buf = Vec::new();
    let mut n = 0;
    while reader.next_packet(&mut buf).unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 3);
    survive_damage(&b, 2);
}

#[test]
fn random_bytes_decode_without_panic_on_every_link_type() {
    use floodwatch::ingest::packets::capture::{LinkType, RawFrame};
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let mut data = [0u8; 128];
    for link in [0u16, 1, 12, 14, 101, 108, 113, 228, 229, 276, 999] {
        for _ in 0..2000 {
            let n = rng.random_range(0..data.len());
            rng.fill(&mut data[..n]);
            // Steer the first bytes towards real headers now and then.
            if n > 14 && rng.random::<bool>() {
                data[12..14].copy_from_slice(
                    &[[0x08, 0x00], [0x86, 0xdd], [0x81, 0x00], [0x08, 0x06]]
                        [rng.random_range(0..4)],
                );
                data[14] = if rng.random() { 0x45 } else { 0x60 };
            }
            let raw = RawFrame {
                index: 1,
                ts_ns: 0,
                wire_len: n as u32,
                link_type: LinkType(link),
                interface: 0,
                data: &data[..n],
            };
            let (meta, _) = decode_checked(&raw);
            assert_eq!(meta.wire_len, n as u32);
        }
    }
}
