//! The flow decoders (NetFlow v5/v7/v9, IPFIX, sFlow v5) on a sequence of
//! datagrams from two exporters, so templates carry over between datagrams.
//!
//! Input: one byte choosing the bounds (bit 0: one exporter, two templates),
//! then frames of `[h: u8][len: u16 BE][len bytes]` (the last one may be
//! short). `h` bit 0 picks the exporter, bit 1 its source port, the rest the
//! receive time.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use floodwatch::ingest::flows::{Accept, FlowConfig, FlowDecoder, FlowRecord};
use libfuzzer_sys::fuzz_target;

const EXPORTERS: [Ipv4Addr; 2] = [Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let config = if sel & 1 == 1 {
        FlowConfig {
            max_exporters: 1,
            max_templates: 2,
            max_fields: 16,
            max_samples: 4,
        }
    } else {
        FlowConfig::default()
    };
    let mut dec = FlowDecoder::new(Accept::Any, config).expect("valid config");
    let mut out: Vec<FlowRecord> = Vec::new();
    let (mut fed, mut added) = (0u64, 0u64);
    while let [h, a, b, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*a, *b])).min(tail.len());
        let (dgram, next) = tail.split_at(len);
        rest = next;
        let ip = IpAddr::V4(EXPORTERS[usize::from(h & 1)]);
        let port = if h & 2 == 0 { 2055 } else { 4739 };
        let at = 1_700_000_000.0 + f64::from(h >> 2);
        let before = out.len();
        let n = dec.decode(dgram, SocketAddr::new(ip, port), at, &mut out);
        fed += 1;
        added += n as u64;
        assert_eq!(n, out.len() - before, "returned count != appended");
        for r in &out[before..] {
            assert_eq!(r.exporter, ip);
            assert!(r.start <= r.end, "start {} > end {}", r.start, r.end);
            assert!(r.start.is_finite() && r.end.is_finite());
            assert!(r.sampling_rate >= 1);
        }
        // Keep memory flat on long inputs.
        if out.len() > 4096 {
            out.clear();
        }
    }
    let total = dec.counters().total();
    assert_eq!(total.datagrams, fed);
    assert_eq!(total.records, added);
});
