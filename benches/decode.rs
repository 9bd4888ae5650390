//! Read + decode throughput on a synthetic capture of a million packets.
//!
//! `cargo bench --bench decode`; set `FLOODWATCH_BENCH_PACKETS` to change
//! the size. The capture is written once by `ingest::packets::synth` into a
//! temporary directory (benign IoT traffic with five Mirai-style floods).

mod common;

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use floodwatch::ingest::packets::capture::CaptureReader;
use floodwatch::ingest::packets::decode::{decode_checked, DecodeStats};
use floodwatch::ingest::packets::synth;

fn packets() -> u64 {
    std::env::var("FLOODWATCH_BENCH_PACKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn write_capture(path: &Path, n: u64) {
    let cfg = common::flood_mix(n);
    let out = std::io::BufWriter::new(std::fs::File::create(path).expect("create capture"));
    synth::write(&cfg, out, std::io::sink()).expect("write capture");
}

/// Reads every record; returns the count and the bytes seen.
fn read_only(path: &Path) -> (u64, u64) {
    let mut reader = CaptureReader::open(path).expect("open");
    let mut buf = Vec::new();
    let (mut n, mut bytes) = (0, 0);
    while let Some(raw) = reader.next_packet(&mut buf).expect("read") {
        n += 1;
        bytes += raw.data.len() as u64;
    }
    (n, bytes)
}

/// Reads and decodes every record.
fn read_decode(path: &Path) -> DecodeStats {
    let mut reader = CaptureReader::open(path).expect("open");
    let mut buf = Vec::new();
    let mut stats = DecodeStats::default();
    while let Some(raw) = reader.next_packet(&mut buf).expect("read") {
        let (meta, bad) = decode_checked(&raw);
        black_box(&meta);
        stats.record(bad);
    }
    stats
}

fn bench(c: &mut Criterion) {
    let n = packets();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.pcap");
    write_capture(&path, n);
    let stats = read_decode(&path);
    assert_eq!(stats.frames(), n);
    assert_eq!(stats.malformed(), 0, "{stats}");

    let mut group = c.benchmark_group("capture");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n));
    group.bench_function("read", |b| b.iter(|| black_box(read_only(&path))));
    group.bench_function("read_decode", |b| b.iter(|| black_box(read_decode(&path))));
    group.finish();
    cpu_time_report(&path, n);
}

/// CPU time of this thread in nanoseconds (Linux `schedstat`), if known.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Wall time depends on what else the machine runs; CPU time of the
/// thread does not. Prints one JSON line per measurement.
fn cpu_time_report(path: &Path, n: u64) {
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    for (name, f) in [
        (
            "read",
            (|p: &Path| {
                black_box(read_only(p));
            }) as fn(&Path),
        ),
        ("read_decode", |p: &Path| {
            black_box(read_decode(p));
        }),
    ] {
        let runs = 5;
        let (Some(cpu0), wall0) = (thread_cpu_ns(), std::time::Instant::now()) else {
            return;
        };
        for _ in 0..runs {
            f(path);
        }
        let wall = wall0.elapsed().as_secs_f64();
        let cpu = thread_cpu_ns().map_or(0.0, |c| (c - cpu0) as f64 * 1e-9);
        let total = (n * runs) as f64;
        println!(
            "{{\"bench\":\"capture/{name}\",\"packets\":{n},\"file_bytes\":{bytes},\"runs\":{runs},\"packets_per_cpu_s\":{:.0},\"packets_per_wall_s\":{:.0}}}",
            total / cpu,
            total / wall
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
