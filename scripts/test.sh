#!/usr/bin/env bash
# Install what the test suite needs, then run every test with cargo-nextest.
# Usage: scripts/test.sh [extra nextest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prepare-duckdb.sh

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "installing cargo-nextest…"
    cargo install cargo-nextest --locked
fi

exec cargo nextest run --workspace "$@"
