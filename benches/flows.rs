//! Flow decoding throughput, in records per second on one core.
//!
//! `cargo bench --bench flows`: `FlowDecoder::decode` on batches of 100
//! datagrams of NetFlow v9 and IPFIX (30 records each, the template sent
//! once before), NetFlow v5 (30 records) and sFlow v5 (7 flow samples with
//! raw Ethernet headers).

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use floodwatch::ingest::flows::build::{self, Flow};
use floodwatch::ingest::flows::{Accept, FlowConfig, FlowDecoder, FlowRecord};

/// Datagrams per timed batch.
const DATAGRAMS: usize = 100;

fn flows(n: usize, seed: usize) -> Vec<Flow> {
    (0..n)
        .map(|i| {
            let k = seed * n + i;
            Flow {
                src: [10, 0, (k >> 8) as u8, k as u8],
                ports: (40_000 + (k % 1000) as u16, 80),
                ..build::flow((k % 250) as u8 + 1, 1 + (k % 7) as u32)
            }
        })
        .collect()
}

/// A decoder that has seen `setup`, the batch, and the records per batch.
fn prepare(setup: &[Vec<u8>], batch: Vec<Vec<u8>>) -> (FlowDecoder, Vec<Vec<u8>>, u64) {
    let from = exporter();
    let mut dec = FlowDecoder::new(Accept::Any, FlowConfig::default()).expect("decoder");
    let mut out = Vec::new();
    for d in setup {
        dec.decode(d, from, 0.0, &mut out);
    }
    let mut records = 0;
    for d in &batch {
        out.clear();
        records += dec.decode(d, from, 0.0, &mut out) as u64;
    }
    let rejected = dec.counters().total().rejected_total();
    assert_eq!(rejected, 0, "{}", dec.counters().total());
    (dec, batch, records)
}

fn exporter() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 2055))
}

fn run(dec: &mut FlowDecoder, batch: &[Vec<u8>], out: &mut Vec<FlowRecord>) -> usize {
    let from = exporter();
    let mut n = 0;
    for d in batch {
        out.clear();
        n += dec.decode(d, from, 1_700_000_000.0, out);
        black_box(&out);
    }
    n
}

fn bench(c: &mut Criterion) {
    let v9_setup = vec![build::v9(
        0,
        &[build::v9_template_set(256, &build::V9_FIELDS)],
    )];
    let v9_batch = (0..DATAGRAMS)
        .map(|s| build::v9(0, &[build::v9_data_set(256, &flows(30, s))]))
        .collect();
    let ipfix_setup = vec![build::ipfix(1, &[build::ipfix_template()])];
    let ipfix_batch = (0..DATAGRAMS)
        .map(|s| build::ipfix(1, &[build::ipfix_data(&flows(30, s))]))
        .collect();
    let v5_batch = (0..DATAGRAMS)
        .map(|s| build::v5(&flows(30, s), 0x4000 | 100))
        .collect();
    let sflow_batch = (0..DATAGRAMS)
        .map(|s| build::sflow(&flows(7, s), 100, None))
        .collect();
    let cases = [
        ("netflow_v9", prepare(&v9_setup, v9_batch), 30),
        ("ipfix", prepare(&ipfix_setup, ipfix_batch), 30),
        ("netflow_v5", prepare(&[], v5_batch), 30),
        ("sflow_v5", prepare(&[], sflow_batch), 7),
    ];
    let mut group = c.benchmark_group("flows");
    for (name, (mut dec, batch, records), per) in cases {
        assert_eq!(records, (DATAGRAMS * per) as u64, "{name}");
        let mut out = Vec::new();
        group.throughput(Throughput::Elements(records));
        group.bench_function(name, |b| {
            b.iter(|| run(&mut dec, &batch, &mut out));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
