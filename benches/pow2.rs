//! Cost of the decay factors, printing one JSON object per line.
//!
//! `cargo bench --bench pow2` times, on one core, `decay_factors` (five
//! `2^(-lambda dt)`, bit for bit as the C library's `pow`) against five calls
//! of `pow` itself, and the single-lane `pow2` against one `pow`, over
//! 1,000,000 time gaps log-uniform in [1e-7 s, 10 s] (gaps between packets
//! of a stream) passed 10 times (the thread's CPU clock ticks by 4 ms on
//! some machines), best of 3 in CPU time of the thread (the machine is
//! shared). It also counts the arguments the fast path hands to `pow`.

use std::hint::black_box;
use std::time::Instant;

use floodwatch::features::incstat::{decay_factors, LAMBDAS, NL};
use floodwatch::features::pow2::{libm_pow2, pow2, pow2_fast};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CALLS: usize = 1_000_000;

/// Passes over the gaps per timed run.
const PASSES: usize = 10;

/// Log-uniform in [lo, hi).
fn log_uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    lo * (hi / lo).powf(rng.random::<f64>())
}

/// Nanoseconds this thread has run on a CPU.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Best of 3 runs of `run` over `dts`, as (CPU ns, wall ns) per call, and
/// the bits of the sum of what it returned (to compare the two methods).
fn time_per_call<const L: usize>(dts: &[f64], run: impl Fn(f64) -> [f64; L]) -> (f64, f64, u64) {
    let (mut cpu, mut wall, mut sum) = (f64::INFINITY, f64::INFINITY, 0.0);
    for _ in 0..3 {
        let (start, cpu0) = (Instant::now(), thread_cpu_ns());
        sum = 0.0;
        for _ in 0..PASSES {
            for &dt in dts {
                sum += run(black_box(dt)).iter().sum::<f64>();
            }
        }
        black_box(sum);
        wall = wall.min(start.elapsed().as_nanos() as f64);
        cpu = cpu.min((thread_cpu_ns() - cpu0) as f64);
    }
    let n = (dts.len() * PASSES) as f64;
    (cpu / n, wall / n, sum.to_bits())
}

fn main() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_0000_dec4_0001);
    let dts: Vec<f64> = (0..CALLS)
        .map(|_| log_uniform(&mut rng, 1e-7, 10.0))
        .collect();

    let libm = |dt: f64| LAMBDAS.map(|lambda| libm_pow2(-lambda * dt));
    let (libm_cpu, libm_wall, libm_sum) = time_per_call(&dts, libm);
    let (new_cpu, new_wall, new_sum) = time_per_call(&dts, decay_factors);

    let mut misses = [0u64; NL];
    let mut calls_with_miss = 0u64;
    for &dt in &dts {
        let miss = LAMBDAS.map(|lambda| pow2_fast(-lambda * dt).is_none());
        for (m, x) in misses.iter_mut().zip(miss) {
            *m += u64::from(x);
        }
        calls_with_miss += u64::from(miss.contains(&true));
    }
    let rate = |n: u64| n as f64 / CALLS as f64;
    let json = serde_json::json!({
        "bench": "decay_factors",
        "calls": CALLS * PASSES,
        "dt": "log-uniform in [1e-7 s, 10 s]",
        "libm_ns_per_call": libm_cpu,
        "pow2_ns_per_call": new_cpu,
        "speedup": libm_cpu / new_cpu,
        "libm_wall_ns_per_call": libm_wall,
        "pow2_wall_ns_per_call": new_wall,
        "same_bits": libm_sum == new_sum,
        "lambdas": LAMBDAS,
        "fallback_rate_per_lane": misses.map(rate),
        "calls_with_a_fallback": rate(calls_with_miss),
    });
    println!("{json}");

    let slowest = LAMBDAS[NL - 1];
    let (libm_cpu, _, libm_sum) = time_per_call(&dts, |dt| [libm_pow2(-slowest * dt)]);
    let (new_cpu, _, new_sum) = time_per_call(&dts, |dt| [pow2(-slowest * dt)]);
    let json = serde_json::json!({
        "bench": "pow2_single",
        "calls": CALLS * PASSES,
        "y": "-0.01 dt",
        "libm_ns_per_call": libm_cpu,
        "pow2_ns_per_call": new_cpu,
        "speedup": libm_cpu / new_cpu,
        "same_bits": libm_sum == new_sum,
    });
    println!("{json}");
}
