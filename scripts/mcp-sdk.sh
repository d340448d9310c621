#!/usr/bin/env bash
# The official MCP SDK for Python (`mcp` on PyPI) in a virtual environment of its own, for
# the tests that drive agnes with a real MCP client. Prints the environment's python.
# Usage: scripts/mcp-sdk.sh   (AGNES_MCP_VENV overrides where it lives)
set -euo pipefail
venv="${AGNES_MCP_VENV:-$HOME/.cache/agnes-mcp-venv}"
version="2.3.0"
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if ! "$venv/bin/python" -c "import mcp, importlib.metadata as m; assert m.version('mcp') == '$version'" 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "mcp==$version" >&2
fi
echo "$venv/bin/python"
