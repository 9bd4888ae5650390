#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) each, with cargo-fuzz
# (libFuzzer + AddressSanitizer) on the stable toolchain: RUSTC_BOOTSTRAP=1
# lets it pass its -Z flags. Seeds come from examples/fuzz_seeds.rs; crashes
# land in fuzz/artifacts/TARGET and fail the run.
#
#   fuzz/run.sh 60              # all targets, 60 s each
#   fuzz/run.sh 600 capture     # one target, 10 minutes
#   FUZZ_RUNS=30000 fuzz/run.sh # CI: a fixed number of runs from seed 1, so
#                               # the same build explores the same inputs
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(capture decode csv bundle kitnet jsonlines flows)
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
# The csv target writes one temporary file per input: keep it in memory.
export TMPDIR="${TMPDIR:-/dev/shm}"
cargo run --quiet --release --example fuzz_seeds -- fuzz/corpus
cd fuzz
cargo fuzz build --release
limit=(-max_total_time="$secs")
if [ -n "${FUZZ_RUNS:-}" ]; then
    limit=(-runs="$FUZZ_RUNS" -seed=1)
fi
for t in "${targets[@]}"; do
    echo "== fuzz target $t: ${limit[*]}"
    # -malloc_limit_mb: a target that allocates what its input claims
    # fails. -rss_limit_mb is the whole process, ASan's quarantine of freed
    # memory included: the csv target reads every input through 1 MiB block
    # buffers and crossed 512 MB on a grown corpus without a leak.
    cargo fuzz run --release "$t" "corpus/$t" -- \
        "${limit[@]}" -malloc_limit_mb=512 -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
        2>&1 | grep -E "^(stat::|Done|==|INFO: (seed|-max_len))|SUMMARY|ERROR|panicked" || true
    # libFuzzer exits non-zero on a crash; its artifact is the proof.
    if compgen -G "artifacts/$t/*" >/dev/null; then
        echo "fuzz target $t: crash inputs in fuzz/artifacts/$t" >&2
        exit 1
    fi
done
