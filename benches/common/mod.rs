//! What several benchmarks share.

use floodwatch::ingest::packets::synth::SynthConfig;

/// The benchmarks' capture: `n` packets of benign IoT traffic at 2,000
/// packets/s with the five Mirai-style floods (SYN spoofed), seed 42.
pub fn flood_mix(n: u64) -> SynthConfig {
    SynthConfig {
        packets: n,
        rate: 2_000.0,
        seed: 42,
        attacks: ["udp", "syn-spoofed", "ack", "http", "gre"]
            .iter()
            .map(|a| a.parse().expect("attack name"))
            .collect(),
        start_ns: 1_700_000_000_000_000_000,
    }
}
