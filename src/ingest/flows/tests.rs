//! Tests of the flow decoders, on datagrams built field by field.

use super::*;
use std::net::Ipv4Addr;

use super::build::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const A: &str = "192.0.2.1:2055";
const B: &str = "192.0.2.2:2055";

fn decoder() -> FlowDecoder {
    FlowDecoder::new(Accept::Any, FlowConfig::default()).unwrap()
}

fn decode(d: &mut FlowDecoder, dgram: &[u8], from: &str) -> Vec<FlowRecord> {
    let mut out = Vec::new();
    d.decode(dgram, addr(from), 5.0, &mut out);
    out
}

fn stats(d: &FlowDecoder, from: &str) -> ExporterStats {
    *d.counters().exporter(addr(from).ip()).unwrap()
}

#[test]
fn netflow_v5_records_carry_addresses_counts_times_and_sampling() {
    let mut d = decoder();
    let out = decode(&mut d, &v5(&[flow(7, 3), flow(8, 1)], 0x4000 | 100), A);
    assert_eq!(out.len(), 2);
    let r = out[0];
    assert_eq!(r.exporter, addr(A).ip());
    assert_eq!(r.dst, IpAddr::V4(Ipv4Addr::new(192, 168, 1, 7)));
    assert_eq!(
        (r.src_port, r.dst_port, r.protocol, r.tcp_flags),
        (40_000, 80, 6, 2)
    );
    assert_eq!((r.packets, r.bytes, r.sampling_rate), (3, 180, 100));
    // Boot at 1,000,000 s - 10 s; first at uptime 9 s, last at 10 s.
    assert_eq!((r.start, r.end), (999_999.0, 1_000_000.0));
    assert_eq!(r.scaled_packets(), 300);
    assert_eq!(stats(&d, A).records, 2);
}

#[test]
fn netflow_v9_needs_the_template_of_its_own_exporter_and_domain() {
    let mut d = decoder();
    // A's template 256 is the standard one; B's template 256 swaps the
    // addresses (a different layout behind the same id).
    let mut swapped = V9_FIELDS;
    swapped.swap(0, 1);
    decode(&mut d, &v9(0, &[v9_template_set(256, &V9_FIELDS)]), A);
    decode(&mut d, &v9(0, &[v9_template_set(256, &swapped)]), B);
    let data = v9(0, &[v9_data_set(256, &[flow(7, 2)])]);
    let a = decode(&mut d, &data, A);
    let b = decode(&mut d, &data, B);
    assert_eq!(a[0].dst, IpAddr::V4(Ipv4Addr::new(192, 168, 1, 7)));
    assert_eq!(b[0].dst, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!((a[0].packets, a[0].bytes), (2, 120));
    assert_eq!((a[0].start, a[0].end), (999_999.0, 999_999.0));
    // Same exporter, another source id: no template there.
    let other = decode(&mut d, &v9(7, &[v9_data_set(256, &[flow(7, 2)])]), A);
    assert!(other.is_empty());
    assert_eq!(stats(&d, A).rejected(Rejection::NoTemplate), 1);
}

#[test]
fn data_before_its_template_is_counted_then_decoded_once_it_arrives() {
    let mut d = decoder();
    let data = v9(0, &[v9_data_set(256, &[flow(7, 2)])]);
    assert!(decode(&mut d, &data, A).is_empty());
    assert_eq!(stats(&d, A).rejected(Rejection::NoTemplate), 1);
    decode(&mut d, &v9(0, &[v9_template_set(256, &V9_FIELDS)]), A);
    assert_eq!(decode(&mut d, &data, A).len(), 1);
}

#[test]
fn ipfix_reads_absolute_times_and_the_sampling_options() {
    let mut d = decoder();
    let mut sets = vec![ipfix_template()];
    sets.extend(ipfix_sampling(100));
    sets.push(ipfix_data(&[flow(9, 4)]));
    let out = decode(&mut d, &ipfix(3, &sets), B);
    assert_eq!(out.len(), 1, "{:?}", d.counters().total());
    let r = out[0];
    assert_eq!(
        (r.domain, r.packets, r.bytes, r.sampling_rate),
        (3, 4, 240, 100)
    );
    assert_eq!((r.start, r.end), (999_999.0, 999_999.5));
    // The rate holds for later data of that domain only.
    let later = decode(&mut d, &ipfix(3, &[ipfix_data(&[flow(9, 1)])]), B);
    assert_eq!(later[0].sampling_rate, 100);
    decode(&mut d, &ipfix(4, &[ipfix_template()]), B);
    let other = decode(&mut d, &ipfix(4, &[ipfix_data(&[flow(9, 1)])]), B);
    assert_eq!(other[0].sampling_rate, 1);
}

#[test]
fn sflow_raw_headers_go_through_the_packet_decoder() {
    let mut d = decoder();
    let out = decode(&mut d, &sflow(&[flow(5, 1), flow(6, 1)], 100, None), A);
    assert_eq!(out.len(), 2);
    let r = out[1];
    assert_eq!(r.dst, IpAddr::V4(Ipv4Addr::new(192, 168, 1, 6)));
    assert_eq!(
        (r.src_port, r.dst_port, r.protocol, r.tcp_flags),
        (40_000, 80, 6, 2)
    );
    assert_eq!(
        (r.packets, r.bytes, r.sampling_rate, r.start),
        (1, 60, 100, 5.0)
    );
    assert_eq!(r.domain, 1);
}

#[test]
fn a_netflow_socket_refuses_sflow_and_the_reverse() {
    let mut d = FlowDecoder::new(Accept::Netflow, FlowConfig::default()).unwrap();
    assert!(decode(&mut d, &sflow(&[flow(5, 1)], 1, None), A).is_empty());
    assert_eq!(stats(&d, A).rejected(Rejection::UnknownVersion), 1);
    let mut d = FlowDecoder::new(Accept::Sflow, FlowConfig::default()).unwrap();
    assert!(decode(&mut d, &v5(&[flow(5, 1)], 0), A).is_empty());
    assert_eq!(stats(&d, A).rejected(Rejection::UnknownVersion), 1);
}

#[test]
fn truncated_datagrams_are_counted_and_the_stream_goes_on() {
    let mut d = decoder();
    decode(&mut d, &v9(0, &[v9_template_set(256, &V9_FIELDS)]), A);
    let whole = [
        v5(&[flow(1, 1), flow(2, 1)], 0),
        v9(0, &[v9_data_set(256, &[flow(1, 1), flow(2, 1)])]),
        ipfix(1, &[ipfix_template(), ipfix_data(&[flow(1, 1)])]),
        sflow(&[flow(1, 1), flow(2, 1)], 10, None),
    ];
    for w in &whole {
        for cut in 0..w.len() {
            decode(&mut d, &w[..cut], A);
        }
    }
    let s = stats(&d, A);
    assert!(s.rejected(Rejection::Truncated) > 50, "{s}");
    assert_eq!(decode(&mut d, &whole[0], A).len(), 2, "{s}");
    assert_eq!(decode(&mut d, &whole[3], A).len(), 2, "{s}");
}

#[test]
fn unknown_versions_are_counted_with_the_exporter() {
    let mut d = decoder();
    for v in [1u8, 6, 8, 11, 0xff] {
        let mut dg = v5(&[flow(1, 1)], 0);
        dg[1] = v;
        assert!(decode(&mut d, &dg, B).is_empty());
    }
    let mut sf = sflow(&[flow(1, 1)], 1, None);
    sf[3] = 4;
    assert!(decode(&mut d, &sf, B).is_empty());
    assert_eq!(stats(&d, B).rejected(Rejection::UnknownVersion), 6);
    assert!(d.counters().exporter(addr(A).ip()).is_none());
}

#[test]
fn absurd_templates_are_refused_and_decode_nothing() {
    let mut d = decoder();
    // 4,000 fields of 4 bytes: more than max_fields.
    let many = vec![(8u16, 4u16); 4_000];
    decode(&mut d, &v9(0, &[v9_template_set(256, &many)]), A);
    // A field 65,535 bytes long.
    decode(&mut d, &v9(0, &[v9_template_set(257, &[(8, 65_535)])]), A);
    let s = stats(&d, A);
    assert_eq!(s.rejected(Rejection::BadTemplate), 2, "{s}");
    for id in [256, 257] {
        let got = decode(&mut d, &v9(0, &[v9_data_set(id, &[flow(1, 1)])]), A);
        assert!(got.is_empty());
    }
    // The exporter's good templates still work.
    decode(&mut d, &v9(0, &[v9_template_set(258, &V9_FIELDS)]), A);
    assert_eq!(
        decode(&mut d, &v9(0, &[v9_data_set(258, &[flow(1, 1)])]), A).len(),
        1
    );
}

#[test]
fn a_template_flood_is_capped_per_exporter_and_counted() {
    let config = FlowConfig {
        max_templates: 16,
        ..FlowConfig::default()
    };
    let mut d = FlowDecoder::new(Accept::Any, config).unwrap();
    for id in 256..1256u16 {
        decode(&mut d, &v9(0, &[v9_template_set(id, &V9_FIELDS)]), A);
    }
    assert!(
        d.template_evictions() >= 1000 - 16,
        "{}",
        d.template_evictions()
    );
    // The newest templates decode; the oldest were evicted.
    assert_eq!(
        decode(&mut d, &v9(0, &[v9_data_set(1255, &[flow(1, 1)])]), A).len(),
        1
    );
    assert!(decode(&mut d, &v9(0, &[v9_data_set(256, &[flow(1, 1)])]), A).is_empty());
    // Another exporter is not affected.
    decode(&mut d, &v9(0, &[v9_template_set(256, &V9_FIELDS)]), B);
    assert_eq!(
        decode(&mut d, &v9(0, &[v9_data_set(256, &[flow(1, 1)])]), B).len(),
        1
    );
}

#[test]
fn sflow_claiming_more_samples_than_it_holds_is_counted() {
    let mut d = decoder();
    let lying = sflow(&[flow(1, 1)], 10, Some(1_000_000));
    assert!(decode(&mut d, &lying, A).len() <= 1);
    let under_cap = sflow(&[flow(1, 1)], 10, Some(500));
    assert!(decode(&mut d, &under_cap, A).len() <= 1);
    let s = stats(&d, A);
    assert_eq!(
        s.rejected(Rejection::BadSample) + s.rejected(Rejection::Truncated),
        2,
        "{s}"
    );
    assert_eq!(decode(&mut d, &sflow(&[flow(1, 1)], 10, None), A).len(), 1);
}

#[test]
fn the_exporter_table_is_bounded() {
    let config = FlowConfig {
        max_exporters: 4,
        ..FlowConfig::default()
    };
    let mut d = FlowDecoder::new(Accept::Any, config).unwrap();
    for i in 0..10u8 {
        let from = format!("198.51.100.{i}:2055");
        decode(&mut d, &v5(&[flow(1, 1)], 0), &from);
    }
    let c = d.counters();
    assert_eq!(c.exporters().count(), 4);
    assert_eq!(c.forgotten().datagrams, 6);
    assert_eq!((c.total().datagrams, c.total().records), (10, 10));
}

/// A v9 datagram of `flows` whose header says `unix_secs` at `uptime` ms.
fn v9_at(unix_secs: u32, uptime: u32, flows: &[Flow]) -> Vec<u8> {
    let mut d = v9(0, &[v9_data_set(256, flows)]);
    d[4..8].copy_from_slice(&uptime.to_be_bytes());
    d[8..12].copy_from_slice(&unix_secs.to_be_bytes());
    d
}

/// v9 headers carry whole seconds: the boot time is the latest estimate
/// since the last reboot, so flow times stop jittering by up to a second.
#[test]
fn netflow_v9_times_come_from_the_latest_boot_estimate() {
    let mut d = decoder();
    decode(&mut d, &v9(0, &[v9_template_set(256, &V9_FIELDS)]), A);
    // Booted at 990.0 s: exported at 1000.3 s, then at 1001.9 s.
    let first = decode(&mut d, &v9_at(1_000, 10_300, &[flow(1, 1)]), A);
    let second = decode(&mut d, &v9_at(1_001, 11_900, &[flow(1, 1)]), A);
    // First switched 9,000 ms after boot: 999.0 s; 0.3 s early, then still
    // 0.3 s early (not 0.9 s).
    assert!((first[0].start - 998.7).abs() < 1e-9, "{}", first[0].start);
    assert!(
        (second[0].start - 998.7).abs() < 1e-9,
        "{}",
        second[0].start
    );
    // A reboot (uptime back to 0.5 s at 2000.5 s) starts anew.
    let rebooted = decode(&mut d, &v9_at(2_000, 500, &[flow(1, 1)]), A);
    assert!(
        (rebooted[0].start - 2_008.5).abs() < 1e-9,
        "{}",
        rebooted[0].start
    );
}

/// The records of a little-endian microsecond pcap as a pcapng: a section
/// header, one interface of the pcap's link type, an enhanced packet block
/// per record.
fn as_pcapng(pcap: &[u8]) -> Vec<u8> {
    fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
        let len = (12 + body.len().div_ceil(4) * 4) as u32;
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(body);
        out.resize(out.len() + body.len().div_ceil(4) * 4 - body.len(), 0);
        out.extend_from_slice(&len.to_le_bytes());
    }
    let u32_at = |i: usize| u32::from_le_bytes(pcap[i..i + 4].try_into().unwrap());
    let mut out = Vec::new();
    let shb = [&0x1a2b_3c4du32.to_le_bytes()[..], &[1, 0, 0, 0], &[0xff; 8]].concat();
    block(&mut out, 0x0a0d_0d0a, &shb);
    let idb = [&(u32_at(20) as u16).to_le_bytes()[..], &[0, 0], &[0; 4]].concat();
    block(&mut out, 1, &idb);
    let mut at = 24;
    while at < pcap.len() {
        let (ticks, len) = (
            u64::from(u32_at(at)) * 1_000_000 + u64::from(u32_at(at + 4)),
            u32_at(at + 8),
        );
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend_from_slice(&((ticks >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ticks as u32).to_le_bytes());
        epb.extend_from_slice(&len.to_le_bytes());
        epb.extend_from_slice(&len.to_le_bytes());
        epb.extend_from_slice(&pcap[at + 16..at + 16 + len as usize]);
        block(&mut out, 6, &epb);
        at += 16 + len as usize;
    }
    out
}

#[test]
fn export_captures_read_the_same_datagrams_from_pcap_and_pcapng() {
    let mut w = capture::ExportWriter::new(Vec::new()).unwrap();
    let (from, to) = (
        "192.0.2.1:2055".parse().unwrap(),
        "192.0.2.9:2055".parse().unwrap(),
    );
    let sent: Vec<Vec<u8>> = (1..4u8).map(|n| vec![n; 40 * usize::from(n)]).collect();
    for (i, d) in sent.iter().enumerate() {
        w.write(1_700_000_000.25 + i as f64, from, to, d).unwrap();
    }
    let pcap = w.finish().unwrap();
    for (name, bytes) in [("e.pcap", pcap.clone()), ("e.pcapng", as_pcapng(&pcap))] {
        let reader = crate::ingest::packets::capture::CaptureReader::from_reader(&bytes[..], name);
        let mut cap = capture::ExportCapture::new(reader.unwrap());
        let mut got = Vec::new();
        while let Some(d) = cap.next_datagram() {
            assert_eq!(
                (d.exporter, d.at),
                (addr(A), 1_700_000_000.25 + got.len() as f64)
            );
            got.push(d.payload.to_vec());
        }
        assert_eq!((got, cap.skipped()), (sent.clone(), 0), "{name}");
    }
}
