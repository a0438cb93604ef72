#!/usr/bin/env bash
# Real-browser test of the MCP App view src/mcp/ui/results.html (tests/browser/results-view.mjs).
#
#   scripts/browser-test.sh [--demo BIN]
#
#   --demo BIN    start `BIN demo` on a free loopback port and test the view and real execute_dql
#                 results it serves (MCP_URL mode), then stop it
#
# Installs Debian's Chromium if /usr/bin/chromium is missing (apt-get; needs root), makes sure the pinned Node
# tools are installed (scripts/test-tools.sh node: Node 22, playwright-core, esbuild, @modelcontextprotocol/ext-apps),
# then runs the test with that Node. Exits non-zero when a check fails.
#
# Environment (passed through to the test):
#   MCP_URL                       test the view and results served by a running server (e.g. http://127.0.0.1:3000/mcp)
#                                 instead of src/mcp/ui/results.html and tests/browser/fixtures/
#   MCP_AUTH_TOKEN                sent as X-MCP-Auth-Token in MCP_URL mode
#   RESULTS_VIEW_SCREENSHOT_DIR   where the screenshots go (default /tmp)
#   CHROMIUM                      browser binary (default /usr/bin/chromium)
#   DTMCP_TOOLS_DIR               tools cache (default <repo>/.cache/tools)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

say() { printf 'browser-test: %s\n' "$*" >&2; }

if [ ! -x "$CHROMIUM" ]; then
  [ "$CHROMIUM" = /usr/bin/chromium ] || { say "ERROR: CHROMIUM=$CHROMIUM is not an executable"; exit 1; }
  command -v apt-get >/dev/null || { say "ERROR: $CHROMIUM is missing and there is no apt-get to install it"; exit 1; }
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  say "installing chromium (apt-get) ..."
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >&2
  [ -x "$CHROMIUM" ] || { say "ERROR: apt-get install chromium did not provide $CHROMIUM"; exit 1; }
fi

bash "$SCRIPT_DIR/test-tools.sh" node
# shellcheck disable=SC1091
source "${DTMCP_TOOLS_DIR:-$REPO_ROOT/.cache/tools}/env.sh"
[ -x "${NODE22:-}" ] || { say "ERROR: NODE22 not set by env.sh"; exit 1; }

export CHROMIUM
if [ "${1:-}" = --demo ]; then
  BIN="${2:?--demo needs the binary, e.g. target/debug/dynatrace-mcp}"
  PORT=$("$NODE22" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  LOG="$(mktemp)"
  "$BIN" demo --port "$PORT" >"$LOG" 2>&1 &
  DEMO_PID=$!
  trap 'kill "$DEMO_PID" 2>/dev/null || true; wait "$DEMO_PID" 2>/dev/null || true; rm -f "$LOG"' EXIT
  for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/health" 2>/dev/null && break
    sleep 0.1
  done
  curl -fsS -o /dev/null "http://127.0.0.1:$PORT/health" || { say "ERROR: $BIN demo did not start: $(tail -5 "$LOG")"; exit 1; }
  say "against $BIN demo at http://127.0.0.1:$PORT/mcp"
  MCP_URL="http://127.0.0.1:$PORT/mcp" "$NODE22" "$REPO_ROOT/tests/browser/results-view.mjs"
else
  exec "$NODE22" "$REPO_ROOT/tests/browser/results-view.mjs"
fi
