#!/usr/bin/env bash
# The Kafka integration tests against a real broker: tansu (a Kafka-compatible
# broker) with in-memory storage on 127.0.0.1, started here and stopped by its
# PID on exit. Extra arguments go to `cargo test` (e.g. a test name).
# KAFKA_PORT picks the port (default 9092).
set -euo pipefail
cd "$(dirname "$0")/.."

port="${KAFKA_PORT:-9092}"
tansu="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
if ! [ -x "$tansu" ] && ! tansu="$(command -v tansu)"; then
    # About 25 minutes the first time on 2 cores.
    cargo install tansu --version 0.6.0 --locked --no-default-features --features dynostore
    tansu="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
fi

log="$(mktemp -t tansu.XXXXXX.log)"
"$tansu" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ >"$log" 2>&1 &
broker=$!
trap 'kill "$broker" 2>/dev/null || true; wait "$broker" 2>/dev/null || true; rm -f "$log"' EXIT

# Wait until the port accepts connections (or the broker died).
for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        break
    fi
    if ! kill -0 "$broker" 2>/dev/null; then
        echo "tansu exited:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.1
done

FLOODWATCH_KAFKA_BROKERS="127.0.0.1:$port" \
    cargo test --release --features kafka --test kafka "$@"
