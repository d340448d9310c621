#!/usr/bin/env bash
# Install what the benchmarks need (wrk for HTTP load), then run them.
# Usage: scripts/bench.sh [scenario…]   (default: all; results in BENCHMARKS.md)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk…"
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk; else sudo apt-get update -qq && sudo apt-get install -y -qq wrk; fi
fi

# Build the whole workspace first: the agnes binary is what the serve and auth scenarios start.
cargo build --workspace
exec cargo run -p agnes-bench -- "$@"
