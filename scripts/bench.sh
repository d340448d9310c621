#!/usr/bin/env bash
# Install what the benchmarks need (wrk for HTTP load), then run them.
# Usage: scripts/bench.sh [scenario…]   (default: all; results in BENCHMARKS.md)
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}…"
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}"
fi

scripts/prepare-duckdb.sh
# Build the whole workspace first: the agnes binary is what the serve and auth scenarios start.
cargo build --workspace
exec cargo run -p agnes-bench -- "$@"
