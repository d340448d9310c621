#!/usr/bin/env bash
# Lays out the DuckDB that agnes links, before any cargo command runs.
#
# Why: the DuckDB bundled in crates.io's libduckdb-sys holds only core_functions, parquet and
# json, so time-zone functions (ICU) would be fetched from the internet at run time. The
# Python source distribution of the same DuckDB release carries the complete source tree,
# extension/icu included; libduckdb-sys builds such a tree with CMake (`bundled-cmake`).
# This script puts the crate and that tree together once, in a cache outside the clone,
# and links it where Cargo.toml's [patch.crates-io] looks (.duckdb/libduckdb-sys).
# Nothing third-party is committed; both pieces come from their registries, checksummed.
#
# The cache keeps its files' original times, so every clone on a machine shares one
# compiled DuckDB (cargo sees nothing newer than its last build).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

DUCKDB_VERSION=2.0.0
DUCKDB_SDIST_SHA256=09de511ef0dc76a5213e8d3d87a8b89bb4d3e8a6fe73a9f60dc001269946b44f
SYS_VERSION=1.20000.1
CACHE="${AGNES_DUCKDB_CACHE:-$HOME/.cache/agnes-duckdb}"
SYS_DIR="$CACHE/libduckdb-sys-$SYS_VERSION-duckdb-$DUCKDB_VERSION"
LINK="$ROOT/.duckdb/libduckdb-sys"

if ! command -v cmake >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing cmake (builds DuckDB)…" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake >/dev/null
    else
        echo "error: cmake is needed to build DuckDB; install it (e.g. apt-get install cmake) and rerun" >&2
        exit 1
    fi
fi

if [ ! -f "$SYS_DIR/.agnes-ready" ]; then
    echo "preparing DuckDB $DUCKDB_VERSION sources with ICU in $SYS_DIR…" >&2
    mkdir -p "$CACHE"
    work="$(mktemp -d "$CACHE/.prepare.XXXXXX")"
    trap 'rm -rf "$work"' EXIT

    # The complete DuckDB tree, from the Python source distribution.
    python3 -m pip download --quiet --no-deps --no-binary duckdb "duckdb==$DUCKDB_VERSION" -d "$work/dl"
    sdist="$work/dl/duckdb-$DUCKDB_VERSION.tar.gz"
    echo "$DUCKDB_SDIST_SHA256  $sdist" | sha256sum --check --quiet
    tar -xzf "$sdist" -C "$work" "duckdb-$DUCKDB_VERSION/external/duckdb"

    # The crate, through cargo itself (it verifies the registry checksum).
    mkdir -p "$work/fetch/src"
    touch "$work/fetch/src/lib.rs"
    cat >"$work/fetch/Cargo.toml" <<TOML
[package]
name = "fetch-libduckdb-sys"
version = "0.0.0"
edition = "2021"
[dependencies]
libduckdb-sys = { version = "=$SYS_VERSION", default-features = false }
[workspace]
TOML
    (cd "$work/fetch" && cargo vendor --quiet --versioned-dirs "$work/vendor" >/dev/null)
    cp -a "$work/vendor/libduckdb-sys-$SYS_VERSION" "$work/sys"
    # The crate's own reduced tree is not used by the CMake build.
    rm -f "$work/sys/duckdb.tar.gz" "$work/sys/.cargo-checksum.json"
    mv "$work/duckdb-$DUCKDB_VERSION/external/duckdb" "$work/sys/duckdb-sources"
    # A post-build step for loadable extensions, absent from the sdist; we build none.
    script="$work/sys/duckdb-sources/scripts/create_local_extension_repo.py"
    if [ ! -e "$script" ]; then
        printf '# agnes links extensions statically: no local extension repository to create.\n' >"$script"
        touch -r "$work/sys/duckdb-sources/CMakeLists.txt" "$script"
    fi
    touch "$work/sys/.agnes-ready"
    rm -rf "$SYS_DIR"
    mv "$work/sys" "$SYS_DIR"
fi

mkdir -p "$(dirname "$LINK")"
ln -sfn "$SYS_DIR" "$LINK"
