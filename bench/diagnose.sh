#!/usr/bin/env bash
# The experiments behind the "why missed" notes of bench/README.md (not part of bench/run.sh).
#
#   bench/diagnose.sh [--profile]
#
# Without options (a minute, on the release binary bench/run.sh built):
#   1. cold start over stdio with the system CA store as is, with only the bundle file
#      (SSL_CERT_DIR empty), and with a one-certificate SSL_CERT_FILE: the share of the start-up
#      spent loading the platform's trusted roots;
#   2. the 10,000-record query's peak RSS with glibc's default malloc arenas and with
#      GLIBC_TUNABLES=glibc.malloc.arena_max=1: the share of the peak that is allocator
#      fragmentation rather than live data.
# With --profile (needs `perf` and `valgrind`; builds an unstripped release binary with frame
# pointers into bench/harness/target/profiling once, about 15 minutes on 2 cores):
#   3. perf profiles of `tools/list` and `execute_dql` (5 s each, sequential) and of 40 stdio cold
#      starts;
#   4. a massif heap profile of one 10,000-record query, attributed to the server's own frames.
# Output: bench/results/diagnose-<UTC timestamp>/ (summary.txt and the raw files).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$REPO/bench"
BIN="$REPO/target/release/dynatrace-mcp"
HARNESS="$BENCH/harness/target/release/dtmcp-bench"
OHA="${DTMCP_TOOLS_DIR:-$REPO/.cache/tools}/oha/bin/oha"
PROFILE=0
for arg in "$@"; do
  case "$arg" in
    --profile) PROFILE=1 ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "diagnose: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done
for f in "$BIN" "$HARNESS" "$OHA"; do
  [ -x "$f" ] || { echo "diagnose: $f is missing: run bench/run.sh first" >&2; exit 1; }
done
OUT="$BENCH/results/diagnose-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
note() { printf '%s\n' "$*" | tee -a "$SUMMARY"; }

PIDS=()
cleanup() { local p; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

"$HARNESS" sandbox >"$OUT/sandbox.env" 2>/dev/null &
PIDS+=($!)
for _ in $(seq 200); do grep -qx ready "$OUT/sandbox.env" 2>/dev/null && break; sleep 0.05; done
grep -qx ready "$OUT/sandbox.env" || { echo "diagnose: the sandbox did not start" >&2; exit 1; }
# shellcheck disable=SC1090
source <(grep '^export ' "$OUT/sandbox.env")
note "diagnose: $(date -u +%FT%TZ), commit $(git -C "$REPO" rev-parse --short HEAD), load $(cut -d' ' -f1-3 /proc/loadavg)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { local _; for _ in $(seq 400); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.025; done; return 1; }
kib() { awk -v k="$2:" '$1==k{print $2}' "/proc/$1/status"; }

# ---------------------------------------------------------------------------- 1. trusted roots
note ""
note "1. stdio cold start (spawn -> initialize answer / -> tools/list answer, median of 20) by CA store:"
empty="$OUT/empty-cert-dir"; mkdir -p "$empty"
awk '/BEGIN CERT/{n++} n==1' /etc/ssl/certs/ca-certificates.crt >"$OUT/one-cert.pem"
for variant in system bundle-only one-cert; do
  case $variant in
    system) envs=() ;;
    bundle-only) envs=(SSL_CERT_DIR="$empty" SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt) ;;
    one-cert) envs=(SSL_CERT_DIR="$empty" SSL_CERT_FILE="$OUT/one-cert.pem") ;;
  esac
  env "${envs[@]}" "$HARNESS" coldstart --bin "$BIN" --mode stdio --runs 20 >"$OUT/cold-$variant.json"
  note "   $(printf '%-12s' "$variant") $(jq -r '"\(.first_answer_ms.median*100|round/100) ms / \(.tools_list_ms.median*100|round/100) ms"' "$OUT/cold-$variant.json")"
done
note "   (system: $(find /etc/ssl/certs -maxdepth 1 -name '*.pem' | wc -l) files in /etc/ssl/certs, $(grep -c 'BEGIN CERT' /etc/ssl/certs/ca-certificates.crt) certificates in the bundle)"

# ------------------------------------------------------------------------ 2. malloc arenas
note ""
note "2. 10,000-record execute_dql (MCP_RESULT_MAX_BYTES=5000000), 5 calls on a fresh server: RSS before -> peak"
BODY='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"execute_dql","arguments":{"dqlStatement":"fetch logs | limit 10000","recordLimit":10000,"recordSizeLimitMB":10}}}'
SMALL='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"execute_dql","arguments":{"dqlStatement":"fetch logs | limit 10"}}}'
for tun in "" "glibc.malloc.arena_max=1"; do
  port=$(free_port)
  GLIBC_TUNABLES="$tun" MCP_RESULT_MAX_BYTES=5000000 "$BIN" serve --port "$port" 2>/dev/null &
  pid=$!; PIDS+=("$pid")
  wait_port "$port"
  curl -s -X POST "http://127.0.0.1:$port/mcp" -H 'content-type: application/json' -d "$SMALL" >/dev/null
  before=$(kib "$pid" VmRSS)
  for _ in 1 2 3 4 5; do
    curl -s -o /dev/null -X POST "http://127.0.0.1:$port/mcp" -H 'content-type: application/json' -d "$BODY"
  done
  note "   GLIBC_TUNABLES='${tun}': $((before / 1024)) MiB -> peak $(( $(kib "$pid" VmHWM) / 1024 )) MiB (RSS after: $(( $(kib "$pid" VmRSS) / 1024 )) MiB)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done

[ "$PROFILE" = 1 ] || { note ""; note "(perf and massif profiles: bench/diagnose.sh --profile)"; exit 0; }

# ------------------------------------------------------------------------------ 3. profiles
PROF_TARGET="$BENCH/harness/target/profiling"
PB="$PROF_TARGET/release/dynatrace-mcp"
echo "diagnose: building the profiling binary (unstripped, line tables, frame pointers) into $PROF_TARGET ..." >&2
(cd "$REPO" && CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
  RUSTFLAGS="-C force-frame-pointers=yes" CARGO_TARGET_DIR="$PROF_TARGET" \
  cargo build --release --locked) >"$OUT/build-profiling.log" 2>&1 \
  || { tail -20 "$OUT/build-profiling.log" >&2; exit 1; }

top() { # perf.data -> the hottest inclusive frames of the server's code and its libraries
  perf report -i "$1" --children --sort symbol --stdio -g none --percent-limit 1.5 2>/dev/null \
    | grep '%' | sed 's/  */ /g' | cut -c1-160 \
    | grep -E 'dynatrace_mcp|serde_json::(ser::to_vec|de)|rmcp::(transport|service::serve)|reqwest|rustls|writev|malloc|_int_free' \
    | head -25
}
port=$(free_port)
"$PB" serve --port "$port" 2>/dev/null &
pid=$!; PIDS+=("$pid")
wait_port "$port"
URL="http://127.0.0.1:$port/mcp"
for case in tools-list execute-dql; do
  body='{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
  [ "$case" = execute-dql ] && body="$SMALL"
  "$OHA" --no-tui -n 300 -c 1 -m POST -H 'content-type: application/json' -d "$body" "$URL" >/dev/null
  perf record -F 4999 -g -p "$pid" -o "$OUT/perf-$case.data" -- sleep 6 2>/dev/null &
  rec=$!
  sleep 0.2
  "$OHA" --no-tui -z 5s -c 1 -m POST -H 'content-type: application/json' -d "$body" "$URL" >/dev/null
  wait "$rec" || true
  note ""
  note "3. perf, $case (inclusive % of the server's samples):"
  top "$OUT/perf-$case.data" | tee -a "$SUMMARY" >/dev/null
done
kill "$pid"; wait "$pid" 2>/dev/null || true
perf record -F 20000 -g -o "$OUT/perf-cold.data" -- "$HARNESS" coldstart --bin "$PB" --mode stdio --runs 40 >/dev/null 2>&1
note ""
note "3. perf, 40 stdio cold starts (inclusive % of all samples, the harness included):"
top "$OUT/perf-cold.data" | tee -a "$SUMMARY" >/dev/null

# ------------------------------------------------------------------------------- 4. massif
port=$(free_port)
MCP_RESULT_MAX_BYTES=5000000 valgrind --tool=massif --massif-out-file="$OUT/massif.out" \
  "$PB" serve --port "$port" 2>"$OUT/massif.log" &
pid=$!; PIDS+=("$pid")
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
curl -s -X POST "http://127.0.0.1:$port/mcp" -H 'content-type: application/json' -d "$SMALL" >/dev/null
curl -s -o /dev/null -X POST "http://127.0.0.1:$port/mcp" -H 'content-type: application/json' -d "$BODY"
kill "$pid"; wait "$pid" 2>/dev/null || true
note ""
note "4. massif, one 10,000-record query: live heap by the server frame that allocated it"
python3 - "$OUT/massif.out" <<'EOF' | tee -a "$SUMMARY"
import collections, re, sys
text = open(sys.argv[1]).read().split("\n")
snaps, cur = [], None
for line in text:
    if line.startswith("snapshot="):
        cur = {"n": int(line.split("=")[1]), "heap": 0, "tree": []}
        snaps.append(cur)
    elif cur is not None and line.startswith("mem_heap_B="):
        cur["heap"] = int(line.split("=")[1])
    elif cur is not None and re.match(r"^ *n\d+: ", line):
        cur["tree"].append(line)
detailed = [s for s in snaps if s["tree"]]
def attribute(tree):
    out, stack = collections.Counter(), []
    for line in tree:
        m = re.match(r"^( *)n(\d+): (\d+) (.*)$", line)
        depth, children, size, desc = len(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        stack.append((depth, desc))
        if children == 0:
            key = "other (runtime, hyper, tokio, start-up data)"
            for _, d in stack:  # from the allocation towards main: the first server frame
                m2 = re.search(r"(dynatrace_mcp::[A-Za-z_:]+).*?\(([a-z_]+\.rs:\d+)\)", d)
                if m2:
                    key = f"{m2.group(1).rstrip(':')} ({m2.group(2)})"
                    break
            out[key] += size
    return out
peak = max(detailed, key=lambda s: s["heap"])
print(f"   peak heap {peak['heap']/1e6:.1f} MB (snapshot {peak['n']}); at the peak:")
for k, v in attribute(peak["tree"]).most_common(6):
    print(f"   {v/1e6:7.2f} MB  {k}")
late = detailed[-2] if len(detailed) > 1 else peak
print(f"   a later snapshot ({late['n']}, {late['heap']/1e6:.1f} MB, while the answer is built):")
for k, v in attribute(late["tree"]).most_common(6):
    print(f"   {v/1e6:7.2f} MB  {k}")
EOF
echo "diagnose: results in $OUT" >&2
