#!/usr/bin/env bash
# Debian's Chromium and ChromeDriver, for the web UI's browser tests. Installs them when
# missing (as root, or through sudo) and prints chromedriver's path.
# Usage: scripts/browser.sh
set -euo pipefail
lock="${TMPDIR:-/tmp}/agnes-browser.lock"
exec 9>"$lock"
flock 9
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >&2 || true
    $sudo apt-get install -y -qq chromium chromium-driver >&2
fi
command -v chromedriver
