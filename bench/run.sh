#!/usr/bin/env bash
# The benchmark of issue 5: builds the release binary, starts the simulated tenant and the server,
# measures, and prints a table of every figure (bench/README.md explains each one).
#
#   bench/run.sh [--quick] [--no-wait]
#
#   --quick     fewer runs and shorter load phases (a smoke test of the harness; figures are rough)
#   --no-wait   do not wait for a quiet machine (the table is then marked as taken under load)
#
# Environment (all optional):
#   DTMCP_TOOLS_DIR        where oha is installed (default <repo>/.cache/tools; oha goes to <dir>/oha)
#   BENCH_COLD_RUNS        cold starts per front door (default 20, plus one discarded warm-up)
#   BENCH_DURATION         seconds per load-generator run with the tenant answering at 0 ms (default 5)
#   BENCH_SLOW_DURATION    seconds per load-generator run at 50 ms (default 10)
#   BENCH_LAMBDA_INVOCATIONS  invocations per body through the Runtime API stand-in (default 200)
#   BENCH_QUIET_WAIT       longest wait, in seconds, for a quiet machine before measuring (default 600)
#   BENCH_MAX_LOAD         1-minute load average that counts as quiet (default 0.5)
#   DTMCP_BENCH_BIN        measure this binary instead of building target/release/dynatrace-mcp
#                          (e.g. another profile or a musl build); the table names it
#
# Output: the table on stdout; everything (raw JSON of every run, logs, the table) in
# bench/results/<UTC timestamp>/, with bench/results/latest pointing at it.
set -euo pipefail

OHA_VERSION=1.16.0

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$REPO/bench"
TOOLS_DIR="${DTMCP_TOOLS_DIR:-$REPO/.cache/tools}"
COLD_RUNS="${BENCH_COLD_RUNS:-20}"
DURATION="${BENCH_DURATION:-5}"
SLOW_DURATION="${BENCH_SLOW_DURATION:-10}"
LAMBDA_N="${BENCH_LAMBDA_INVOCATIONS:-200}"
QUIET_WAIT="${BENCH_QUIET_WAIT:-600}"
MAX_LOAD="${BENCH_MAX_LOAD:-0.5}"
LIST_CALLS=20000     # tools/list calls for the CPU-per-call figure
DQL_CALLS=2000       # execute_dql calls for the CPU-per-call and memory figures
OPEN_RATE=320        # req/s of the open-loop run at 50 ms (about 16 requests in flight)
QUICK=0
WAIT=1
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --no-wait) WAIT=0 ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "bench: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
if [ "$QUICK" = 1 ]; then
  COLD_RUNS=5 DURATION=2 SLOW_DURATION=2 LAMBDA_N=20 LIST_CALLS=2000 DQL_CALLS=200 QUIET_WAIT=0
fi

STARTED=$(date +%s)
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/results/$STAMP"
mkdir -p "$OUT"
ln -sfn "$STAMP" "$BENCH/results/latest"

say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf '\nbench: ERROR: %s\n' "$*" >&2; printf 'bench: logs and partial results are in %s\n' "$OUT" >&2; exit 1; }
for tool in curl jq python3 awk getconf; do
  command -v "$tool" >/dev/null || die "$tool is required"
done

# ------------------------------------------------------------------------------------- cleanup
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# --------------------------------------------------------------------------------------- build
BIN="$REPO/target/release/dynatrace-mcp"
HARNESS_DIR="$BENCH/harness"
HARNESS_TARGET="$HARNESS_DIR/target"
HARNESS="$HARNESS_TARGET/release/dtmcp-bench"
OHA="$TOOLS_DIR/oha/bin/oha"

if [ -n "${DTMCP_BENCH_BIN:-}" ]; then
  BIN="$(cd "$(dirname "$DTMCP_BENCH_BIN")" && pwd)/$(basename "$DTMCP_BENCH_BIN")"
  [ -x "$BIN" ] || die "DTMCP_BENCH_BIN=$DTMCP_BENCH_BIN is not an executable"
  say "measuring $BIN (DTMCP_BENCH_BIN; the release build is skipped)"
else
  say "building the release binary (cargo build --release --locked) ..."
  (cd "$REPO" && cargo build --release --locked) >"$OUT/build.log" 2>&1 \
    || { tail -30 "$OUT/build.log" >&2; die "cargo build --release --locked failed (log: $OUT/build.log)"; }
fi

say "building the harness (bench/harness, its own target dir, the server's Cargo.lock) ..."
# The harness links the server's library: it starts with the server's lock file so every shared
# dependency has the same version; cargo only adds the harness's own entry.
if ! cmp -s "$REPO/Cargo.lock" "$HARNESS_DIR/Cargo.lock.base" 2>/dev/null; then
  cp "$REPO/Cargo.lock" "$HARNESS_DIR/Cargo.lock"
  cp "$REPO/Cargo.lock" "$HARNESS_DIR/Cargo.lock.base"
fi
CARGO_TARGET_DIR="$HARNESS_TARGET" cargo build --release --manifest-path "$HARNESS_DIR/Cargo.toml" \
  >"$OUT/build-harness.log" 2>&1 \
  || { tail -30 "$OUT/build-harness.log" >&2; die "building bench/harness failed (log: $OUT/build-harness.log)"; }

if [ ! -x "$OHA" ] || ! "$OHA" --version 2>/dev/null | grep -q " $OHA_VERSION"; then
  say "installing oha $OHA_VERSION into $TOOLS_DIR/oha (once; a few minutes) ..."
  mkdir -p "$TOOLS_DIR"
  [ -f "$TOOLS_DIR/.gitignore" ] || printf '*\n' >"$TOOLS_DIR/.gitignore"
  cargo install oha --version "$OHA_VERSION" --locked --root "$TOOLS_DIR/oha" \
    --target-dir "$TOOLS_DIR/oha/build" >"$OUT/oha-install.log" 2>&1 \
    || { tail -30 "$OUT/oha-install.log" >&2; die "cargo install oha $OHA_VERSION failed"; }
  rm -rf "$TOOLS_DIR/oha/build"
fi

# ------------------------------------------------------------------------------ quiet machine
TICK=$(getconf CLK_TCK)
BUILDERS='^(cargo|rustc|rustdoc|cc1|cc1plus|cc|ld|ld.lld|rust-lld|zig|podman|buildah|docker|npm|node|pip|sam)$'

builder_ticks() { # "pid comm ticks" of the build/container tools running now
  local pid comm
  ps -eo pid=,comm= | awk -v re="$BUILDERS" '$2 ~ re {print $1, $2}' | while read -r pid comm; do
    [ -r "/proc/$pid/stat" ] && printf '%s %s %s\n' "$pid" "$comm" \
      "$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12+$13}')"
  done
}
BUSY_BUILDERS="" BUSY_PCT=""
sample_machine() { # sets BUSY_PCT (machine-wide busy CPU over $1 seconds) and BUSY_BUILDERS (the
  # build tools that used CPU meanwhile; an idle `cargo run` parent or podman service does not count)
  local a b t0 t1
  t0=$(builder_ticks)
  a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
  sleep "$1"
  b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
  t1=$(builder_ticks)
  BUSY_BUILDERS=$(awk -v secs="$1" -v tick="$TICK" 'NF < 3 {next} NR==FNR {t[$1]=$3; next}
    { used = ($1 in t) ? $3 - t[$1] : $3; if (used > 0.02 * secs * tick || !($1 in t)) printf "%s(%s) ", $2, $1 }' \
    <(printf '%s\n' "$t0") <(printf '%s\n' "$t1") | sed 's/ $//')
  BUSY_PCT=$(awk -v a="$a" -v b="$b" 'BEGIN{split(a,x," ");split(b,y," ");busy=y[1]-x[1];idle=y[2]-x[2];
    printf "%.1f", (busy+idle>0)?100*busy/(busy+idle):0}')
}
load1() { cut -d' ' -f1 /proc/loadavg; }

wait_quiet() {
  [ "$WAIT" = 1 ] || return 0
  local deadline=$(( $(date +%s) + QUIET_WAIT )) b busy l
  while :; do
    sample_machine 2; busy=$BUSY_PCT; b=$BUSY_BUILDERS; l=$(load1)
    if [ -z "$b" ] && awk -v l="$l" -v m="$MAX_LOAD" -v c="$busy" 'BEGIN{exit !(l<=m && c<15)}'; then
      say "machine quiet: load $l, CPU busy ${busy}%"
      return 0
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      say "WARNING: the machine did not get quiet within ${QUIET_WAIT}s (load $l, busy ${busy}%, builders: ${b:-none}); measuring anyway, figures are NOT valid"
      return 0
    fi
    say "waiting for a quiet machine: load $l (want <= $MAX_LOAD), CPU busy ${busy}%, builders: ${b:-none}"
    sleep 10
  done
}

FOREIGN=""
note_foreign() { # remember build processes that used CPU at the end of a phase
  sample_machine 1
  if [ -n "$BUSY_BUILDERS" ]; then
    FOREIGN="$FOREIGN [$1: $BUSY_BUILDERS]"; say "WARNING: other build processes during '$1': $BUSY_BUILDERS"
  fi
}

wait_quiet
MEASURE_STARTED=$(date +%s)
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
sample_machine 1; BUSY_BEFORE=$BUSY_PCT
say "measuring (load average $LOAD_BEFORE, CPU busy ${BUSY_BEFORE}%) -> $OUT"

# ----------------------------------------------------------------------------------- helpers
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12+$13}'; }              # utime+stime
sys_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $13}'; }                # stime
sched_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s+=$1} END{printf "%.0f\n", s}'; } # on-CPU ns, live threads
status_kib() { awk -v k="$2:" '$1==k{print $2}' "/proc/$1/status"; }            # VmRSS, VmHWM ...
now_ns() { date +%s%N; }

TOOLS_LIST='{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
dql_body() { # statement, recordLimit, recordSizeLimitMB
  jq -cn --arg q "$1" --argjson n "$2" --argjson mb "$3" \
    '{jsonrpc:"2.0",id:1,method:"tools/call",params:{name:"execute_dql",arguments:{dqlStatement:$q,recordLimit:$n,recordSizeLimitMB:$mb}}}'
}
EXECUTE_DQL="$(jq -cn '{jsonrpc:"2.0",id:1,method:"tools/call",params:{name:"execute_dql",arguments:{dqlStatement:"fetch logs | limit 10"}}}')"
# What the server sends Grail for that call (recordLimit default 50 -> maxResultRecords 51).
GRAIL_BODY='{"query":"fetch logs | limit 10","maxResultRecords":51,"maxResultBytes":78643,"requestTimeoutMilliseconds":1000}'

SERVER_PID="" SERVER_URL="" SERVER_PORT=""
start_server() { # name [VAR=value ...]: `serve` on a free port, logs to $OUT/<name>.log
  local name=$1 try; shift
  for try in 1 2 3; do
    SERVER_PORT=$(free_port)
    env "$@" "$BIN" serve --host 127.0.0.1 --port "$SERVER_PORT" >"$OUT/server-$name.log" 2>&1 &
    SERVER_PID=$!; PIDS+=("$SERVER_PID")
    SERVER_URL="http://127.0.0.1:$SERVER_PORT/mcp"
    for _ in $(seq 400); do
      # a bare connect, so "idle" memory is measured before any request
      if (exec 3<>"/dev/tcp/127.0.0.1/$SERVER_PORT") 2>/dev/null; then return 0; fi
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.025
    done
    kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true
    say "server '$name' did not start on port $SERVER_PORT (try $try): $(tail -3 "$OUT/server-$name.log")"
  done
  die "the server would not start (log: $OUT/server-$name.log)"
}
stop_server() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }

mcp() { # url body -> answer on stdout; fails on HTTP errors and JSON-RPC/tool errors
  local answer
  answer=$(curl -sS --fail-with-body -X POST "$1" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' --data-binary "$2") || die "POST $1 failed: $answer"
  jq -e '.result and (.result.isError != true)' >/dev/null <<<"$answer" \
    || die "unexpected answer to $2: $(head -c 400 <<<"$answer")"
  printf '%s' "$answer"
}

oha() { # name url body concurrency (-z <s> | -n <N>) [extra oha args]: JSON to $OUT/oha-<name>.json
  # An empty body means GET.
  local name=$1 url=$2 body=$3 conc=$4 request; shift 4
  if [ -n "$body" ]; then
    request=(-m POST -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' -d "$body")
  else
    request=(-m GET)
  fi
  "$OHA" --no-tui --output-format json -c "$conc" "$@" "${request[@]}" "$url" \
    >"$OUT/oha-$name.json" 2>"$OUT/oha-$name.err" \
    || die "oha $name failed: $(tail -5 "$OUT/oha-$name.err")"
  # every answer must be a 200
  jq -e '(.statusCodeDistribution | keys) == ["200"]' "$OUT/oha-$name.json" >/dev/null \
    || die "oha $name: not every answer was 200: $(jq -c '.statusCodeDistribution, .errorDistribution' "$OUT/oha-$name.json")"
}

# ------------------------------------------------------------------------------ the sandbox
say "starting the simulated tenant (request recording off) ..."
"$HARNESS" sandbox >"$OUT/sandbox.env" 2>"$OUT/sandbox.log" &
SANDBOX_PID=$!; PIDS+=("$SANDBOX_PID")
for _ in $(seq 200); do grep -qx ready "$OUT/sandbox.env" 2>/dev/null && break; sleep 0.05; done
grep -qx ready "$OUT/sandbox.env" || die "the sandbox did not start: $(cat "$OUT/sandbox.log")"
# shellcheck disable=SC1090
source <(grep '^export ' "$OUT/sandbox.env")
GRAIL_URL="$BENCH_SANDBOX_URL/platform/storage/query/v1/query:execute"
latency() { curl -sf -X POST "$BENCH_SANDBOX_CONTROL/latency/$1" >/dev/null || die "cannot set the sandbox latency"; }
# The server runs with its defaults (log level info, JSON logs to a file), nothing else.
unset MCP_LOG_LEVEL MCP_LOG_FORMAT MCP_RESULT_MAX_BYTES DT_PLATFORM_TOKEN DT_SECRET_ID MCP_SECRET_ID || true

# ------------------------------------------------------------------------- sizes (no CPU load)
BIN_BYTES=$(stat -c %s "$BIN")
BIN_FILE=$(file -b "$BIN" 2>/dev/null | cut -d, -f1-2,6- | head -c 200 || true)
IMAGE_JSON='null'
if command -v podman >/dev/null; then
  image=$(timeout 30 podman image ls --format '{{.Repository}}:{{.Tag}}|{{.Size}}|{{.ID}}|{{.Created}}' 2>/dev/null \
    | grep '^localhost/dynatrace-mcp:' | head -1 || true)
  if [ -n "$image" ]; then
    ref=${image%%|*}
    bytes=$(timeout 30 podman image inspect "$ref" --format '{{.Size}}' 2>/dev/null || echo null)
    IMAGE_JSON=$(jq -cn --arg line "$image" --argjson bytes "${bytes:-null}" '{ls: $line, bytes: $bytes}')
  fi
fi
jq -n --argjson bytes "$BIN_BYTES" --arg file "$BIN_FILE" --argjson image "$IMAGE_JSON" \
  --arg path "${BIN#"$REPO"/}" \
  '{binary_bytes: $bytes, binary_file: $file, binary_path: $path, image: $image}' >"$OUT/sizes.json"

# ------------------------------------------------------------------------------- cold start
say "cold start: $COLD_RUNS runs each of /bin/true and --version (exec floors), stdio and HTTP ..."
"$HARNESS" coldstart --bin /bin/true --mode version --runs "$COLD_RUNS" >"$OUT/cold-true.json" \
  2>"$OUT/cold-true.err" || die "cold start (/bin/true): $(cat "$OUT/cold-true.err")"
for mode in version stdio http; do
  "$HARNESS" coldstart --bin "$BIN" --mode "$mode" --runs "$COLD_RUNS" --log "$OUT/server-cold-$mode.log" \
    >"$OUT/cold-$mode.json" 2>"$OUT/cold-$mode.err" \
    || die "cold start ($mode): $(cat "$OUT/cold-$mode.err"); server log: $(tail -3 "$OUT/server-cold-$mode.log" 2>/dev/null)"
done
note_foreign "cold start"

# ------------------------------------------------------------------ memory and CPU per call
say "memory and CPU per call: $LIST_CALLS tools/list, then $DQL_CALLS execute_dql, one connection ..."
start_server main
MAIN_PID=$SERVER_PID MAIN_URL=$SERVER_URL
sleep 0.5
RSS_IDLE=$(status_kib "$MAIN_PID" VmRSS); HWM_IDLE=$(status_kib "$MAIN_PID" VmHWM)
ANON_IDLE=$(status_kib "$MAIN_PID" RssAnon); FILE_IDLE=$(status_kib "$MAIN_PID" RssFile)
# idle drift: CPU the server uses doing nothing, per second
t0=$(ticks "$MAIN_PID"); s0=$(sched_ns "$MAIN_PID"); w0=$(now_ns); sleep 2
t1=$(ticks "$MAIN_PID"); s1=$(sched_ns "$MAIN_PID"); w1=$(now_ns)
IDLE_TICKS_PER_S=$(awk -v a="$t0" -v b="$t1" -v w="$((w1 - w0))" 'BEGIN{print (b-a)/(w/1e9)}')
IDLE_NS_PER_S=$(awk -v a="$s0" -v b="$s1" -v w="$((w1 - w0))" 'BEGIN{print (b-a)/(w/1e9)}')

mcp "$MAIN_URL" "$TOOLS_LIST" >"$OUT/answer-tools-list.json"
mcp "$MAIN_URL" "$EXECUTE_DQL" >"$OUT/answer-execute-dql.json"   # also fetches the OAuth token
LIST_BYTES=$(stat -c %s "$OUT/answer-tools-list.json")
DQL_BYTES=$(stat -c %s "$OUT/answer-execute-dql.json")
oha warm-list "$MAIN_URL" "$TOOLS_LIST" 1 -n 500
RSS_WARM=$(status_kib "$MAIN_PID" VmRSS)

per_call() { # name body calls [url] -> JSON with CPU per call
  local name=$1 body=$2 n=$3 url=${4:-$MAIN_URL} t0 t1 s0 s1 w0 w1 k0 k1
  t0=$(ticks "$MAIN_PID"); k0=$(sys_ticks "$MAIN_PID"); s0=$(sched_ns "$MAIN_PID"); w0=$(now_ns)
  oha "$name" "$url" "$body" 1 -n "$n"
  t1=$(ticks "$MAIN_PID"); k1=$(sys_ticks "$MAIN_PID"); s1=$(sched_ns "$MAIN_PID"); w1=$(now_ns)
  jq -n --argjson n "$n" --argjson t "$((t1 - t0))" --argjson s "$((s1 - s0))" --argjson k "$((k1 - k0))" \
    --argjson wall "$((w1 - w0))" --argjson tick "$TICK" \
    --argjson idle_t "$IDLE_TICKS_PER_S" --argjson idle_s "$IDLE_NS_PER_S" '
    ($wall / 1e9) as $secs |
    { calls: $n, wall_s: $secs, ticks: $t, sys_ticks: $k, clk_tck: $tick,
      cpu_ms_per_call: ((($t - $idle_t * $secs) / $tick * 1000) / $n),
      sched_cpu_ms_per_call: ((($s - $idle_s * $secs) / 1e6) / $n) }' >"$OUT/cpu-$name.json"
}
HEALTH_URL="http://127.0.0.1:$SERVER_PORT/health"
PING='{"jsonrpc":"2.0","id":1,"method":"ping"}'
per_call cpu-list "$TOOLS_LIST" "$LIST_CALLS"
per_call cpu-dql "$EXECUTE_DQL" "$DQL_CALLS"
RSS_AFTER_DQL=$(status_kib "$MAIN_PID" VmRSS); HWM_AFTER_DQL=$(status_kib "$MAIN_PID" VmHWM)
# Floors, for comparison: the HTTP stack alone (GET /health) and rmcp's JSON-RPC path alone (ping).
per_call cpu-health "" "$LIST_CALLS" "$HEALTH_URL"
per_call cpu-ping "$PING" "$LIST_CALLS"
note_foreign "memory and CPU per call"

# ------------------------------------------------------------------- throughput and latency
say "throughput: oha against the server and the tenant, concurrency 1 and 32, tenant at 0 and 50 ms ..."
load_run() { # name url body conc seconds [extra]: also the server's CPU during the run
  local name=$1 url=$2 body=$3 conc=$4 secs=$5 t0 t1 ts0 ts1; shift 5
  oha "warmup-$name" "$url" "$body" "$conc" -z 1s -w "$@"   # connections, pools, allocator: not recorded
  t0=$(ticks "$MAIN_PID"); ts0=$(ticks "$SANDBOX_PID")
  oha "$name" "$url" "$body" "$conc" -z "${secs}s" -w "$@"
  t1=$(ticks "$MAIN_PID"); ts1=$(ticks "$SANDBOX_PID")
  jq --argjson st "$((t1 - t0))" --argjson sb "$((ts1 - ts0))" --argjson tick "$TICK" \
    '. + {bench: {server_cpu_s: ($st / $tick), sandbox_cpu_s: ($sb / $tick)}}' \
    "$OUT/oha-$name.json" >"$OUT/oha-$name.tmp" && mv "$OUT/oha-$name.tmp" "$OUT/oha-$name.json"
}
AUTH=(-H "authorization: Bearer $BENCH_PLATFORM_TOKEN")
for c in 1 32; do
  load_run "list-c$c" "$MAIN_URL" "$TOOLS_LIST" "$c" "$DURATION"
done
load_run "health-c32" "$HEALTH_URL" "" 32 "$DURATION"
for lat in 0 50; do
  latency "$lat"
  secs=$DURATION; [ "$lat" = 0 ] || secs=$SLOW_DURATION
  for c in 1 32; do
    load_run "grail-l$lat-c$c" "$GRAIL_URL" "$GRAIL_BODY" "$c" "$secs" "${AUTH[@]}"
    load_run "dql-l$lat-c$c" "$MAIN_URL" "$EXECUTE_DQL" "$c" "$secs"
  done
done
# Open loop: 32 connections but a fixed, evenly spaced arrival rate (oha -q, with latency
# correction), so the 32 clients do not move in lock-step bursts as they do in the closed loop.
latency 50
load_run "grail-l50-c32-q$OPEN_RATE" "$GRAIL_URL" "$GRAIL_BODY" 32 "$SLOW_DURATION" -q "$OPEN_RATE" --latency-correction "${AUTH[@]}"
load_run "dql-l50-c32-q$OPEN_RATE" "$MAIN_URL" "$EXECUTE_DQL" 32 "$SLOW_DURATION" -q "$OPEN_RATE" --latency-correction
latency 0
RSS_END=$(status_kib "$MAIN_PID" VmRSS); HWM_END=$(status_kib "$MAIN_PID" VmHWM)
note_foreign "throughput"
jq -n --argjson idle "$RSS_IDLE" --argjson hwm_idle "$HWM_IDLE" --argjson warm "$RSS_WARM" \
  --argjson after "$RSS_AFTER_DQL" --argjson hwm_after "$HWM_AFTER_DQL" --argjson rss_end "$RSS_END" \
  --argjson hwm_end "$HWM_END" --argjson dql_calls "$DQL_CALLS" --argjson list_bytes "$LIST_BYTES" \
  --argjson dql_bytes "$DQL_BYTES" --argjson anon "$ANON_IDLE" --argjson file "$FILE_IDLE" \
  '{rss_idle_kib: $idle, hwm_idle_kib: $hwm_idle, rss_after_500_list_kib: $warm,
    rss_anon_idle_kib: $anon, rss_file_idle_kib: $file,
    rss_after_dql_kib: $after, hwm_after_dql_kib: $hwm_after, dql_calls: $dql_calls,
    rss_end_kib: $rss_end, hwm_end_kib: $hwm_end, tools_list_answer_bytes: $list_bytes,
    execute_dql_answer_bytes: $dql_bytes}' >"$OUT/memory.json"
stop_server

# The static musl binary the image and the x86_64 Lambda zip ship (scripts/check-aws.sh builds it):
# idle RSS without glibc's shared libraries and PIE relocations.
MUSL_BIN="${CARGO_TARGET_DIR:-$REPO/target}/lambda-musl/dynatrace-mcp/bootstrap"
if [ -x "$MUSL_BIN" ]; then
  SAVED_BIN=$BIN BIN=$MUSL_BIN
  start_server musl-idle; sleep 0.5
  jq -n --argjson rss "$(status_kib "$SERVER_PID" VmRSS)" --argjson anon "$(status_kib "$SERVER_PID" RssAnon)" \
    --argjson file "$(status_kib "$SERVER_PID" RssFile)" --argjson size "$(stat -c %s "$MUSL_BIN")" \
    '{rss_idle_kib: $rss, rss_anon_idle_kib: $anon, rss_file_idle_kib: $file, binary_bytes: $size}' >"$OUT/musl-idle.json"
  stop_server
  BIN=$SAVED_BIN
else
  say "no static musl binary at $MUSL_BIN (scripts/check-aws.sh builds it): its idle RSS is not measured"
fi

# -------------------------------------------------------------------- large result: 10,000 vs 100
say "large result: fetch logs | limit 10000 vs limit 100, at the default result budget and at MCP_RESULT_MAX_BYTES=5000000, a fresh server each ..."
LARGE_RUNS=5
for run in 100-default 10000-default 100 10000; do
  n=${run%%-*}
  if [ "$run" != "$n" ]; then
    budget=131072; start_server "large-$run"       # the default result budget (128 KiB)
  else
    budget=5000000; start_server "large-$run" MCP_RESULT_MAX_BYTES=$budget
  fi
  sleep 0.3
  mcp "$SERVER_URL" "$EXECUTE_DQL" >/dev/null      # warm: OAuth token, connection pool
  rss0=$(status_kib "$SERVER_PID" VmRSS); hwm0=$(status_kib "$SERVER_PID" VmHWM)
  body=$(dql_body "fetch logs | limit $n" "$n" 10)
  # The same request the server makes: without `fields`, maxResultBytes is the smaller of
  # recordSizeLimitMB (10 MiB here) and 60 % of the result budget (at least 64 KiB).
  cap=$(( budget * 3 / 5 > 65536 ? budget * 3 / 5 : 65536 ))
  gbody=$(jq -cn --arg q "fetch logs | limit $n" --argjson n "$((n + 1))" \
    --argjson bytes "$(( cap < 10485760 ? cap : 10485760 ))" \
    '{query:$q,maxResultRecords:$n,maxResultBytes:$bytes,requestTimeoutMilliseconds:1000}')
  times=() gtimes=() rss_after=()
  for _ in $(seq "$LARGE_RUNS"); do
    t=$(curl -sS --fail -X POST "$SERVER_URL" -H 'content-type: application/json' \
      -H 'accept: application/json, text/event-stream' --data-binary "$body" \
      -o "$OUT/answer-large-$run.json" -w '%{time_total}') || die "execute_dql ($run) failed"
    times+=("$(awk -v t="$t" 'BEGIN{printf "%d", t * 1e6}')")
    rss_after+=("$(status_kib "$SERVER_PID" VmRSS)")
    t=$(curl -sS --fail -X POST "$GRAIL_URL" -H 'content-type: application/json' "${AUTH[@]}" \
      --data-binary "$gbody" -o "$OUT/grail-large-$run.json" -w '%{time_total}') || die "direct Grail query failed"
    gtimes+=("$(awk -v t="$t" 'BEGIN{printf "%d", t * 1e6}')")
  done
  jq -e '.result and (.result.isError != true)' "$OUT/answer-large-$run.json" >/dev/null \
    || die "execute_dql ($run) answered: $(head -c 400 "$OUT/answer-large-$run.json")"
  hwm1=$(status_kib "$SERVER_PID" VmHWM); rss1=$(status_kib "$SERVER_PID" VmRSS)
  jq -n --argjson n "$n" --argjson rss0 "$rss0" --argjson hwm0 "$hwm0" --argjson rss1 "$rss1" \
    --argjson hwm1 "$hwm1" \
    --argjson us "$(printf '%s\n' "${times[@]}" | jq -s .)" \
    --argjson gus "$(printf '%s\n' "${gtimes[@]}" | jq -s .)" \
    --argjson rss_each "$(printf '%s\n' "${rss_after[@]}" | jq -s .)" \
    --argjson bytes "$(stat -c %s "$OUT/answer-large-$run.json")" \
    --argjson grail_bytes "$(stat -c %s "$OUT/grail-large-$run.json")" \
    --argjson returned "$(jq '.result.structuredContent.returnedRecords // null' "$OUT/answer-large-$run.json")" \
    --argjson text_bytes "$(jq '[.result.content[]?.text // "" | length] | add' "$OUT/answer-large-$run.json")" \
    --argjson grail_records "$(jq '.result.records | length' "$OUT/grail-large-$run.json")" \
    '{records_asked: $n, runs_us: $us, grail_direct_runs_us: $gus, response_bytes: $bytes,
      text_chars: $text_bytes, returned_records: $returned, grail_bytes: $grail_bytes,
      grail_records: $grail_records, rss_before_kib: $rss0, hwm_before_kib: $hwm0,
      rss_after_each_kib: $rss_each, rss_after_kib: $rss1, hwm_after_kib: $hwm1,
      result_budget: $budget}' --argjson budget "$budget" >"$OUT/large-$run.json"
  stop_server
done
note_foreign "large result"

# ------------------------------------------------------------------------------- Lambda path
say "Lambda: $LAMBDA_N invocations each of tools/list and execute_dql through a Runtime API stand-in ..."
"$HARNESS" lambda --bin "$BIN" --event "$REPO/tests/fixtures/lambda/apigw-v2-http.json" \
  --invocations "$LAMBDA_N" --log "$OUT/server-lambda.log" >"$OUT/lambda.json" 2>"$OUT/lambda.err" \
  || die "Lambda path: $(cat "$OUT/lambda.err"); function log: $(tail -3 "$OUT/server-lambda.log" 2>/dev/null)"
note_foreign "lambda"

# ----------------------------------------------------------------------------------- report
FINISHED=$(date +%s)
jq -n --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg commit "$(git -C "$REPO" rev-parse --short HEAD)" \
  --arg dirty "$(git -C "$REPO" status --porcelain -- src Cargo.toml Cargo.lock | wc -l)" \
  --arg load_before "$LOAD_BEFORE" --arg busy_before "$BUSY_BEFORE" \
  --arg load_after "$(cut -d' ' -f1-3 /proc/loadavg)" --arg foreign "$FOREIGN" \
  --arg cpu "$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)" --arg nproc "$(nproc)" \
  --arg kernel "$(uname -r)" --arg rustc "$(rustc --version)" --arg oha "$OHA_VERSION" \
  --argjson quick "$QUICK" --argjson waited "$WAIT" --argjson seconds "$((FINISHED - STARTED))" \
  --argjson measure_seconds "$((FINISHED - MEASURE_STARTED))" \
  --argjson cold_runs "$COLD_RUNS" --argjson duration "$DURATION" --argjson slow "$SLOW_DURATION" \
  '{date: $date, commit: $commit, src_files_changed_since_commit: ($dirty|tonumber),
    load_before: $load_before, cpu_busy_before_pct: $busy_before, load_after: $load_after,
    foreign_builds_seen: $foreign, cpu: $cpu, nproc: $nproc, kernel: $kernel, rustc: $rustc,
    oha: $oha, quick: ($quick == 1), waited_for_quiet: ($waited == 1), seconds: $seconds,
    measure_seconds: $measure_seconds,
    cold_runs: $cold_runs, duration_s: $duration, slow_duration_s: $slow}' >"$OUT/meta.json"
python3 "$BENCH/report.py" "$OUT" | tee "$OUT/table.md"
say "done in $((FINISHED - STARTED)) s; results in $OUT"
