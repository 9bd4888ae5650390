//! Tests of the flow decoders, on datagrams built field by field.

use super::*;
use std::net::Ipv4Addr;

pub(crate) mod build {
    //! Export datagrams, field by field (tests, benchmarks, fuzz seeds).

    /// A NetFlow v9 template: (field type, length) pairs.
    pub(crate) const V9_FIELDS: [(u16, u16); 9] = [
        (8, 4),  // IPV4_SRC_ADDR
        (12, 4), // IPV4_DST_ADDR
        (7, 2),  // L4_SRC_PORT
        (11, 2), // L4_DST_PORT
        (4, 1),  // PROTOCOL
        (6, 1),  // TCP_FLAGS
        (2, 4),  // IN_PKTS
        (1, 4),  // IN_BYTES
        (22, 4), // FIRST_SWITCHED
    ];

    /// A flow for the builders.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Flow {
        pub(crate) src: [u8; 4],
        pub(crate) dst: [u8; 4],
        pub(crate) ports: (u16, u16),
        pub(crate) proto: u8,
        pub(crate) flags: u8,
        pub(crate) packets: u32,
        pub(crate) bytes: u32,
    }

    pub(crate) fn flow(dst_last: u8, packets: u32) -> Flow {
        Flow {
            src: [10, 0, 0, 1],
            dst: [192, 168, 1, dst_last],
            ports: (40_000, 80),
            proto: 6,
            flags: 0x02,
            packets,
            bytes: packets * 60,
        }
    }

    fn set(id: u16, body: &[u8]) -> Vec<u8> {
        let mut s = id.to_be_bytes().to_vec();
        s.extend_from_slice(&(4 + body.len() as u16).to_be_bytes());
        s.extend_from_slice(body);
        s
    }

    /// NetFlow v5: unix time 1,000,000 s, uptime 10 s, flows that began
    /// 1 s before export.
    pub(crate) fn v5(flows: &[Flow], sampling: u16) -> Vec<u8> {
        let mut d = Vec::new();
        for v in [5u16, flows.len() as u16] {
            d.extend_from_slice(&v.to_be_bytes());
        }
        for v in [10_000u32, 1_000_000, 0, 1] {
            d.extend_from_slice(&v.to_be_bytes());
        }
        d.extend_from_slice(&[0, 0]);
        d.extend_from_slice(&sampling.to_be_bytes());
        for f in flows {
            d.extend_from_slice(&f.src);
            d.extend_from_slice(&f.dst);
            d.extend_from_slice(&[0; 8]); // next hop, input, output
            for v in [f.packets, f.bytes, 9_000, 10_000] {
                d.extend_from_slice(&v.to_be_bytes());
            }
            d.extend_from_slice(&f.ports.0.to_be_bytes());
            d.extend_from_slice(&f.ports.1.to_be_bytes());
            d.extend_from_slice(&[0, f.flags, f.proto, 0]);
            d.extend_from_slice(&[0; 8]);
        }
        d
    }

    /// A NetFlow v9 header: uptime 10 s at unix time 1,000,000 s.
    fn v9_header(count: u16, source_id: u32) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(&9u16.to_be_bytes());
        d.extend_from_slice(&count.to_be_bytes());
        for v in [10_000u32, 1_000_000, 1, source_id] {
            d.extend_from_slice(&v.to_be_bytes());
        }
        d
    }

    /// A v9 template flowset with `fields`.
    pub(crate) fn v9_template_set(id: u16, fields: &[(u16, u16)]) -> Vec<u8> {
        let mut b = id.to_be_bytes().to_vec();
        b.extend_from_slice(&(fields.len() as u16).to_be_bytes());
        for (t, l) in fields {
            b.extend_from_slice(&t.to_be_bytes());
            b.extend_from_slice(&l.to_be_bytes());
        }
        set(0, &b)
    }

    /// A v9 datagram of the given flowsets.
    pub(crate) fn v9(source_id: u32, sets: &[Vec<u8>]) -> Vec<u8> {
        let mut d = v9_header(sets.len() as u16, source_id);
        sets.iter().for_each(|s| d.extend_from_slice(s));
        d
    }

    /// A v9 data flowset of template `id` ([`V9_FIELDS`]), first switched
    /// at uptime 9 s.
    pub(crate) fn v9_data_set(id: u16, flows: &[Flow]) -> Vec<u8> {
        let mut b = Vec::new();
        for f in flows {
            b.extend_from_slice(&f.src);
            b.extend_from_slice(&f.dst);
            b.extend_from_slice(&f.ports.0.to_be_bytes());
            b.extend_from_slice(&f.ports.1.to_be_bytes());
            b.extend_from_slice(&[f.proto, f.flags]);
            for v in [f.packets, f.bytes, 9_000] {
                b.extend_from_slice(&v.to_be_bytes());
            }
        }
        set(id, &b)
    }

    /// An IPFIX message (export time 1,000,000 s) of the given sets.
    pub(crate) fn ipfix(domain: u32, sets: &[Vec<u8>]) -> Vec<u8> {
        let len: usize = 16 + sets.iter().map(Vec::len).sum::<usize>();
        let mut d = 10u16.to_be_bytes().to_vec();
        d.extend_from_slice(&(len as u16).to_be_bytes());
        for v in [1_000_000u32, 1, domain] {
            d.extend_from_slice(&v.to_be_bytes());
        }
        sets.iter().for_each(|s| d.extend_from_slice(s));
        d
    }

    /// IPFIX template 300: addresses, ports, protocol, packet and octet
    /// deltas, flowStart/EndMilliseconds.
    pub(crate) fn ipfix_template() -> Vec<u8> {
        let fields: [(u16, u16); 9] = [
            (8, 4),
            (12, 4),
            (7, 2),
            (11, 2),
            (4, 1),
            (2, 8),
            (1, 8),
            (152, 8),
            (153, 8),
        ];
        let mut b = 300u16.to_be_bytes().to_vec();
        b.extend_from_slice(&(fields.len() as u16).to_be_bytes());
        for (t, l) in fields {
            b.extend_from_slice(&t.to_be_bytes());
            b.extend_from_slice(&l.to_be_bytes());
        }
        set(2, &b)
    }

    /// IPFIX data of template 300, from 999,999.0 s to 999,999.5 s.
    pub(crate) fn ipfix_data(flows: &[Flow]) -> Vec<u8> {
        let mut b = Vec::new();
        for f in flows {
            b.extend_from_slice(&f.src);
            b.extend_from_slice(&f.dst);
            b.extend_from_slice(&f.ports.0.to_be_bytes());
            b.extend_from_slice(&f.ports.1.to_be_bytes());
            b.push(f.proto);
            for v in [
                u64::from(f.packets),
                u64::from(f.bytes),
                999_999_000,
                999_999_500,
            ] {
                b.extend_from_slice(&v.to_be_bytes());
            }
        }
        set(300, &b)
    }

    /// IPFIX options template 400 (scope: observation domain) with
    /// samplingInterval, and its data saying one in `rate`.
    pub(crate) fn ipfix_sampling(rate: u32) -> Vec<Vec<u8>> {
        let mut t = 400u16.to_be_bytes().to_vec();
        for v in [2u16, 1, 149, 4, 34, 4] {
            t.extend_from_slice(&v.to_be_bytes());
        }
        let mut data = 1u32.to_be_bytes().to_vec();
        data.extend_from_slice(&rate.to_be_bytes());
        vec![set(3, &t), set(400, &data)]
    }

    /// An Ethernet + IPv4 + TCP header of `f` (the sampled packet).
    pub(crate) fn frame(f: &Flow) -> Vec<u8> {
        let mut p = vec![0x02; 12];
        p.extend_from_slice(&[0x08, 0x00]);
        p.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0, 0, 64, f.proto, 0, 0]);
        p.extend_from_slice(&f.src);
        p.extend_from_slice(&f.dst);
        p.extend_from_slice(&f.ports.0.to_be_bytes());
        p.extend_from_slice(&f.ports.1.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(&[0x50, f.flags, 0xff, 0xff, 0, 0, 0, 0]);
        p
    }

    /// An sFlow v5 datagram of flow samples (one raw header each) at one in
    /// `rate`; `claimed` overrides the sample count.
    pub(crate) fn sflow(flows: &[Flow], rate: u32, claimed: Option<u32>) -> Vec<u8> {
        let mut d = Vec::new();
        for v in [5u32, 1] {
            d.extend_from_slice(&v.to_be_bytes());
        }
        d.extend_from_slice(&[10, 9, 9, 9]);
        let count = claimed.unwrap_or(flows.len() as u32);
        for v in [1u32, 1, 5_000, count] {
            d.extend_from_slice(&v.to_be_bytes());
        }
        for f in flows {
            let hdr = frame(f);
            let mut rec = Vec::new();
            for v in [1u32, 60, 4, hdr.len() as u32] {
                rec.extend_from_slice(&v.to_be_bytes());
            }
            rec.extend_from_slice(&hdr);
            while rec.len() % 4 != 0 {
                rec.push(0);
            }
            let mut sample = Vec::new();
            for v in [1u32, 3, rate, 1_000, 0, 1, 2, 1] {
                sample.extend_from_slice(&v.to_be_bytes());
            }
            sample.extend_from_slice(&1u32.to_be_bytes());
            sample.extend_from_slice(&(rec.len() as u32).to_be_bytes());
            sample.extend_from_slice(&rec);
            d.extend_from_slice(&1u32.to_be_bytes());
            d.extend_from_slice(&(sample.len() as u32).to_be_bytes());
            d.extend_from_slice(&sample);
        }
        d
    }
}

use build::*;

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
    assert_eq!(r.scaled_packets(), 300.0);
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
    assert!(s.rejected_total() >= 2, "{s}");
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
