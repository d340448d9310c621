#!/usr/bin/env bash
# Lay out DuckDB's sources (first run only), then build and run `agnes demo`: a synthetic
# company synced, users and tokens created, served on 127.0.0.1:8000.
# Usage: scripts/demo.sh [agnes demo flags, e.g. --scale 0.1 --no-serve]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prepare-duckdb.sh
exec cargo run --bin agnes -- demo "$@"
