#!/usr/bin/env bash
# The benchmark (issues 5 and 12): builds the shipped release binary (no simulated tenant), starts the
# simulated tenant and the server, measures, and prints a table of every figure and of the targets of
# issue 12 (bench/README.md explains each one).
#
#   bench/run.sh [--quick] [--no-wait]
#
#   --quick     fewer runs and shorter load phases (a smoke test of the harness; figures are rough)
#   --no-wait   do not wait for a quiet machine (the table is then marked as taken under load)
#
# Environment (all optional):
#   DTMCP_TOOLS_DIR        where oha and cargo-bloat are installed (default <repo>/.cache/tools; oha goes to
#                          <dir>/oha, cargo-bloat to <dir>/bloat) and where moto_server is looked for
#                          (<dir>/python/bin, installed by scripts/test-tools.sh python)
#   BENCH_COLD_RUNS        cold starts per front door (default 20, plus one discarded warm-up)
#   BENCH_DURATION         seconds per load-generator run with the tenant answering at 0 ms (default 5)
#   BENCH_SLOW_DURATION    seconds per load-generator run at 50 ms (default 10)
#   BENCH_LAMBDA_INVOCATIONS  invocations per body through the Runtime API stand-in (default 200)
#   BENCH_LAMBDA_COLD      Lambda cold starts with the settings read from a local Secrets Manager (moto)
#                          (default 10, plus one discarded warm-up)
#   BENCH_SUSTAINED        seconds of the sustained load (tools/list and execute_dql at once, c=16 each)
#                          after which the server's RSS is read (default 180; --quick: 10); run on the
#                          release build and again on the static musl binary when there is one
#   BENCH_BLOAT            1: the crate-size breakdown (cargo bloat; its own build in <target>/bloat, about
#                          10 minutes the first time); 0: skip it (default 1; --quick: 0)
#   BENCH_IMAGE            1: when the static musl binary exists, build the container image from it as
#                          scripts/check-aws.sh does (FROM scratch, nothing is pulled) to measure its size,
#                          then remove it; 0: do not, measure podman's localhost/dynatrace-mcp image if any
#                          (default 1)
#   BENCH_QUIET_WAIT       longest wait, in seconds, for a quiet machine before measuring (default 600)
#   BENCH_MAX_LOAD         1-minute load average that counts as quiet (default 0.5)
#   DTMCP_BENCH_BIN        measure this binary instead of building target/release/dynatrace-mcp
#                          (e.g. another profile or a musl build); the table names it
#
# The measured binary is what ships: `cargo build --release --locked --no-default-features --bin
# dynatrace-mcp` (the default `sandbox` feature, the simulated tenant, is left out). The tenant the
# benchmark runs against is the harness's (`dtmcp-bench sandbox`).
#
# Output: the table on stdout; everything (raw JSON of every run, logs, the table) in
# bench/results/<UTC timestamp>/, with bench/results/latest pointing at it.
set -euo pipefail

OHA_VERSION=1.16.0
BLOAT_VERSION=0.12.1

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$REPO/bench"
TOOLS_DIR="${DTMCP_TOOLS_DIR:-$REPO/.cache/tools}"
COLD_RUNS="${BENCH_COLD_RUNS:-20}"
DURATION="${BENCH_DURATION:-5}"
SLOW_DURATION="${BENCH_SLOW_DURATION:-10}"
LAMBDA_N="${BENCH_LAMBDA_INVOCATIONS:-200}"
LAMBDA_COLD="${BENCH_LAMBDA_COLD:-10}"
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
  COLD_RUNS=5 DURATION=2 SLOW_DURATION=2 LAMBDA_N=20 LIST_CALLS=2000 DQL_CALLS=200 QUIET_WAIT=0 LAMBDA_COLD=3
fi
# These two keep an explicit setting even with --quick.
SUSTAINED="${BENCH_SUSTAINED:-$([ "$QUICK" = 1 ] && echo 10 || echo 180)}"
BLOAT="${BENCH_BLOAT:-$([ "$QUICK" = 1 ] && echo 0 || echo 1)}"
IMAGE_BUILD="${BENCH_IMAGE:-1}"

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
# set -e stops at a failing command without a word: name it.
trap 'say "ERROR: line $LINENO failed: $BASH_COMMAND"' ERR
trap 'say "interrupted"; exit 130' INT TERM

# --------------------------------------------------------------------------------------- build
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$REPO/$TARGET_DIR" ;; esac
BIN="$TARGET_DIR/release/dynatrace-mcp"
# What scripts/check-aws.sh leaves: the static musl binary (the image ships it) and the arm64 Lambda zip.
MUSL_BIN="$TARGET_DIR/lambda-musl/dynatrace-mcp/bootstrap"
LAMBDA_ZIP="$TARGET_DIR/lambda/dynatrace-mcp/bootstrap.zip"
HARNESS_DIR="$BENCH/harness"
HARNESS_TARGET="$HARNESS_DIR/target"
HARNESS="$HARNESS_TARGET/release/dtmcp-bench"
OHA="$TOOLS_DIR/oha/bin/oha"

if [ -n "${DTMCP_BENCH_BIN:-}" ]; then
  BIN="$(cd "$(dirname "$DTMCP_BENCH_BIN")" && pwd)/$(basename "$DTMCP_BENCH_BIN")"
  [ -x "$BIN" ] || die "DTMCP_BENCH_BIN=$DTMCP_BENCH_BIN is not an executable"
  say "measuring $BIN (DTMCP_BENCH_BIN; the release build is skipped)"
else
  # What ships: without the `sandbox` feature (the simulated tenant), as the image and the Lambda zip.
  say "building the shipped binary (cargo build --release --locked --no-default-features --bin dynatrace-mcp) ..."
  (cd "$REPO" && cargo build --release --locked --no-default-features --bin dynatrace-mcp) >"$OUT/build.log" 2>&1 \
    || { tail -30 "$OUT/build.log" >&2; die "cargo build --release --locked --no-default-features failed (log: $OUT/build.log)"; }
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

# Crate sizes: cargo bloat on the shipped build, unstripped (symbols are what it attributes), in a target
# dir of its own so the stripped binary in <target>/release is not rebuilt. A failure is reported, not fatal.
BLOAT_BIN="$TOOLS_DIR/bloat/bin/cargo-bloat"
if [ "$BLOAT" = 1 ]; then
  # (cargo-bloat must be run as `cargo bloat`: its --version is then the bare number.)
  if [ ! -x "$BLOAT_BIN" ] || [ "$("$BLOAT_BIN" bloat --version 2>/dev/null | awk '{print $NF}')" != "$BLOAT_VERSION" ]; then
    say "installing cargo-bloat $BLOAT_VERSION into $TOOLS_DIR/bloat (once) ..."
    mkdir -p "$TOOLS_DIR"
    [ -f "$TOOLS_DIR/.gitignore" ] || printf '*\n' >"$TOOLS_DIR/.gitignore"
    cargo install cargo-bloat --version "$BLOAT_VERSION" --locked --root "$TOOLS_DIR/bloat" \
      --target-dir "$TOOLS_DIR/bloat/build" >"$OUT/bloat-install.log" 2>&1 \
      || { tail -30 "$OUT/bloat-install.log" >&2; die "cargo install cargo-bloat $BLOAT_VERSION failed"; }
    rm -rf "$TOOLS_DIR/bloat/build"
  fi
  say "crate sizes: cargo bloat --crates of the shipped build, unstripped (the first time about 10 minutes) ..."
  if (cd "$REPO" && PATH="$TOOLS_DIR/bloat/bin:$PATH" CARGO_PROFILE_RELEASE_STRIP=false \
      cargo bloat --release --locked --no-default-features --bin dynatrace-mcp --crates -n 25 \
      --message-format json --target-dir "$TARGET_DIR/bloat") >"$OUT/bloat.json" 2>"$OUT/bloat.log" \
     && jq -e '.crates | length > 0' "$OUT/bloat.json" >/dev/null 2>&1; then
    :
  else
    say "WARNING: cargo bloat failed (log: $OUT/bloat.log); the crate sizes are not measured"
    jq -n --arg why "cargo bloat failed: see bloat.log" '{not_measured: $why}' >"$OUT/bloat.json"
  fi
else
  jq -n '{not_measured: "BENCH_BLOAT=0"}' >"$OUT/bloat.json"
fi

# The container image, as scripts/check-aws.sh builds it (and removes it when it ends): the Dockerfile's
# `prebuilt` target from the static musl binary, FROM scratch, nothing pulled; built here from the musl binary
# measured below (so both figures are of the same build), measured, then removed. Without a musl binary (or
# with BENCH_IMAGE=0): podman's localhost/dynatrace-mcp image, if there is one.
IMAGE_JSON='null' IMAGE_WHY="podman is not installed"
if command -v podman >/dev/null; then
  image="" built=""
  if [ "$IMAGE_BUILD" = 1 ] && [ -x "$MUSL_BIN" ]; then
    say "building the container image from $MUSL_BIN (podman, Dockerfile target prebuilt) to measure it ..."
    ctx="$OUT/image-context"; mkdir -p "$ctx"
    cp "$MUSL_BIN" "$ctx/dynatrace-mcp"
    cp /etc/ssl/certs/ca-certificates.crt "$ctx/ca-certificates.crt"
    built="localhost/dynatrace-mcp:bench-$$"
    if timeout 300 podman build --layers=false --format docker --target prebuilt -t "$built" \
        -f "$REPO/Dockerfile" "$ctx" >"$OUT/image-build.log" 2>&1; then
      image=$(timeout 30 podman image ls --format '{{.Repository}}:{{.Tag}}|{{.Size}}|{{.ID}}|{{.Created}}' 2>/dev/null \
        | grep "^$built|" | head -1 || true)
    else
      say "WARNING: podman build failed (log: $OUT/image-build.log)"
    fi
    rm -rf "$ctx"
  else
    image=$(timeout 30 podman image ls --format '{{.Repository}}:{{.Tag}}|{{.Size}}|{{.ID}}|{{.Created}}' 2>/dev/null \
      | grep '^localhost/dynatrace-mcp:' | head -1 || true)
  fi
  if [ -n "$image" ]; then
    ref=${image%%|*}
    bytes=$(timeout 30 podman image inspect "$ref" --format '{{.Size}}' 2>/dev/null || echo null)
    IMAGE_JSON=$(jq -cn --arg line "$image" --argjson bytes "${bytes:-null}" --argjson built "$([ -n "$built" ] && echo true || echo false)" \
      '{ls: $line, bytes: $bytes, built_by_bench: $built}')
    IMAGE_WHY=""
  elif [ -n "$built" ]; then
    IMAGE_WHY="building the image from the static musl binary failed: see image-build.log"
  elif [ -x "$MUSL_BIN" ]; then
    IMAGE_WHY="BENCH_IMAGE=0 and no localhost/dynatrace-mcp image in podman"
  else
    IMAGE_WHY="no podman image and no static musl binary to build one from: run scripts/check-aws.sh"
  fi
  [ -z "$built" ] || timeout 60 podman rmi -f "$built" >/dev/null 2>&1 || true
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
  # A process that ended meanwhile leaves the loop's status non-zero: not an error (set -e).
  return 0
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
# What the server sends Grail for that call (recordLimit default 50 -> maxResultRecords 51; no `fields`:
# maxResultBytes is the smaller of recordSizeLimitMB (default 1) and 60 % of the result budget (default
# 60 KiB), at least 64 KiB).
DEFAULT_BUDGET=61440
grail_cap() { # result budget -> the maxResultBytes the server asks for without `fields` (at most 10 MiB)
  local cap=$(( $1 * 3 / 5 > 65536 ? $1 * 3 / 5 : 65536 ))
  echo $(( cap < 10485760 ? cap : 10485760 ))
}
GRAIL_BYTES=$(grail_cap "$DEFAULT_BUDGET"); [ "$GRAIL_BYTES" -le 1048576 ] || GRAIL_BYTES=1048576
GRAIL_BODY=$(jq -cn --argjson bytes "$GRAIL_BYTES" \
  '{query:"fetch logs | limit 10",maxResultRecords:51,maxResultBytes:$bytes,requestTimeoutMilliseconds:1000}')

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
connections() { # TCP connections the tenant has accepted since it started
  local n; n=$(curl -sf "$BENCH_SANDBOX_CONTROL/connections") || die "cannot read the sandbox's connection count"
  printf '%s' "${n//[^0-9]/}"
}
# The server runs with its defaults (log level info, JSON logs to a file), nothing else.
unset MCP_LOG_LEVEL MCP_LOG_FORMAT MCP_RESULT_MAX_BYTES DT_PLATFORM_TOKEN DT_SECRET_ID MCP_SECRET_ID || true

# ------------------------------------------------------------------------- sizes (no CPU load)
BIN_BYTES=$(stat -c %s "$BIN")
BIN_FILE=$(file -b "$BIN" 2>/dev/null | cut -d, -f1-2,6- | head -c 200 || true)
MUSL_JSON='null' ZIP_JSON='null'
if [ -f "$MUSL_BIN" ]; then
  MUSL_JSON=$(jq -cn --argjson bytes "$(stat -c %s "$MUSL_BIN")" --arg path "${MUSL_BIN#"$REPO"/}" \
    --arg built "$(date -u -r "$MUSL_BIN" +%Y-%m-%dT%H:%M:%SZ)" '{bytes: $bytes, path: $path, built: $built}')
fi
if [ -f "$LAMBDA_ZIP" ]; then
  ZIP_JSON=$(python3 - "$LAMBDA_ZIP" "${LAMBDA_ZIP#"$REPO"/}" <<'PY'
import json, os, sys, time, zipfile
z = zipfile.ZipFile(sys.argv[1])
info = z.getinfo("bootstrap")
head = z.read("bootstrap")[:20]
machine = {183: "aarch64", 62: "x86_64"}.get(int.from_bytes(head[18:20], "little"), "unknown")
print(json.dumps({"bytes": os.path.getsize(sys.argv[1]), "path": sys.argv[2],
                  "bootstrap_bytes": info.file_size, "bootstrap_arch": machine,
                  "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.path.getmtime(sys.argv[1])))}))
PY
) || ZIP_JSON='null'
fi
jq -n --argjson bytes "$BIN_BYTES" --arg file "$BIN_FILE" --argjson image "$IMAGE_JSON" \
  --arg image_why "$IMAGE_WHY" --arg path "${BIN#"$REPO"/}" --argjson musl "$MUSL_JSON" --argjson zip "$ZIP_JSON" \
  --argjson custom "$([ -n "${DTMCP_BENCH_BIN:-}" ] && echo true || echo false)" \
  '{binary_bytes: $bytes, binary_file: $file, binary_path: $path, binary_from_env: $custom,
    musl: $musl, lambda_zip: $zip, image: $image, image_not_measured: $image_why}' >"$OUT/sizes.json"

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
load_run() { # name url body conc seconds [extra]: also the server's and the tenant's CPU during the run,
  # and the TCP connections the tenant accepted during the warm-up and the run (for a run against the server:
  # the server's new upstream connections; against the tenant directly: oha's own)
  local name=$1 url=$2 body=$3 conc=$4 secs=$5 t0 t1 ts0 ts1 c0 c1; shift 5
  c0=$(connections)
  oha "warmup-$name" "$url" "$body" "$conc" -z 1s -w "$@"   # connections, pools, allocator: not recorded
  t0=$(ticks "$MAIN_PID"); ts0=$(ticks "$SANDBOX_PID")
  oha "$name" "$url" "$body" "$conc" -z "${secs}s" -w "$@"
  t1=$(ticks "$MAIN_PID"); ts1=$(ticks "$SANDBOX_PID")
  c1=$(connections)
  jq --argjson st "$((t1 - t0))" --argjson sb "$((ts1 - ts0))" --argjson tick "$TICK" \
    --argjson conns "$((c1 - c0))" --slurpfile warm "$OUT/oha-warmup-$name.json" \
    '. + {bench: {server_cpu_s: ($st / $tick), sandbox_cpu_s: ($sb / $tick),
                  tenant_connections: $conns,
                  calls_with_warmup: ((.statusCodeDistribution | add // 0)
                                      + ($warm[0].statusCodeDistribution | add // 0))}}' \
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

# --------------------------------------------------------------------------------- sustained load
# The same server, SUSTAINED seconds of tools/list and execute_dql at once (two oha processes, 16
# connections each, the tenant at 0 ms), then its memory.
say "sustained load: ${SUSTAINED} s of tools/list (c=16) and execute_dql (c=16) at once, then the server's RSS ..."
t0=$(ticks "$MAIN_PID"); ts0=$(ticks "$SANDBOX_PID"); c0=$(connections); w0=$(now_ns)
rss0=$(status_kib "$MAIN_PID" VmRSS)
oha sustained-list "$MAIN_URL" "$TOOLS_LIST" 16 -z "${SUSTAINED}s" -w &
p_list=$!
oha sustained-dql "$MAIN_URL" "$EXECUTE_DQL" 16 -z "${SUSTAINED}s" -w &
p_dql=$!
ok=1
wait "$p_list" || ok=0
wait "$p_dql" || ok=0
[ "$ok" = 1 ] || die "the sustained load failed (see $OUT/oha-sustained-*.err)"
t1=$(ticks "$MAIN_PID"); ts1=$(ticks "$SANDBOX_PID"); c1=$(connections); w1=$(now_ns)
jq -n --argjson secs "$SUSTAINED" --argjson wall "$((w1 - w0))" --argjson rss0 "$rss0" \
  --argjson rss "$(status_kib "$MAIN_PID" VmRSS)" --argjson anon "$(status_kib "$MAIN_PID" RssAnon)" \
  --argjson file "$(status_kib "$MAIN_PID" RssFile)" --argjson hwm "$(status_kib "$MAIN_PID" VmHWM)" \
  --argjson threads "$(status_kib "$MAIN_PID" Threads)" \
  --argjson st "$((t1 - t0))" --argjson sb "$((ts1 - ts0))" --argjson tick "$TICK" --argjson conns "$((c1 - c0))" \
  --slurpfile list "$OUT/oha-sustained-list.json" --slurpfile dql "$OUT/oha-sustained-dql.json" '
  {seconds: $secs, wall_s: ($wall / 1e9), rss_before_kib: $rss0, rss_kib: $rss, rss_anon_kib: $anon,
   rss_file_kib: $file, hwm_kib: $hwm, threads: $threads,
   server_cpu_s: ($st / $tick), sandbox_cpu_s: ($sb / $tick), tenant_connections: $conns,
   tools_list: {calls: ($list[0].statusCodeDistribution | add // 0), rps: $list[0].summary.requestsPerSec,
                p99_s: $list[0].latencyPercentiles.p99},
   execute_dql: {calls: ($dql[0].statusCodeDistribution | add // 0), rps: $dql[0].summary.requestsPerSec,
                 p99_s: $dql[0].latencyPercentiles.p99}}' >"$OUT/sustained.json"
note_foreign "sustained load"
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

# ----------------------------------------------------------------------------- observability cost
# What the server's own metrics and traces cost per call: the same sequential execute_dql calls (and
# tools/list, which with traces on no longer takes the cached fast path) on a fresh server with
# MCP_METRICS=off, and on one exporting spans to tests/otlp/receiver.py (the tools' Python). The main
# server above ran with the defaults: EMF metrics on, traces off.
say "observability cost: $DQL_CALLS execute_dql with metrics off, then with traces on (and $LIST_CALLS tools/list) ..."
start_server obs-metrics-off MCP_METRICS=off
MAIN_PID=$SERVER_PID MAIN_URL=$SERVER_URL
mcp "$MAIN_URL" "$EXECUTE_DQL" >/dev/null
oha warm-obs-off "$MAIN_URL" "$EXECUTE_DQL" 1 -n 200
per_call cpu-dql-metrics-off "$EXECUTE_DQL" "$DQL_CALLS"
stop_server
RECEIVER_PY="$TOOLS_DIR/python/bin/python"
if [ -x "$RECEIVER_PY" ] && "$RECEIVER_PY" -c 'import opentelemetry.proto' 2>/dev/null; then
  "$RECEIVER_PY" "$REPO/tests/otlp/receiver.py" >"$OUT/otlp-receiver.out" 2>"$OUT/otlp-receiver.err" &
  RECEIVER_PID=$!; PIDS+=("$RECEIVER_PID")
  for _ in $(seq 200); do grep -q '^port ' "$OUT/otlp-receiver.out" 2>/dev/null && break; sleep 0.05; done
  OTLP_URL="http://127.0.0.1:$(sed -n 's/^port //p' "$OUT/otlp-receiver.out")"
  [ "$OTLP_URL" != "http://127.0.0.1:" ] || die "the OTLP receiver did not start: $(cat "$OUT/otlp-receiver.err")"
  start_server obs-traces "OTEL_EXPORTER_OTLP_ENDPOINT=$OTLP_URL"
  MAIN_PID=$SERVER_PID MAIN_URL=$SERVER_URL
  mcp "$MAIN_URL" "$EXECUTE_DQL" >/dev/null
  oha warm-obs-traces "$MAIN_URL" "$EXECUTE_DQL" 1 -n 200
  per_call cpu-dql-traced "$EXECUTE_DQL" "$DQL_CALLS"
  per_call cpu-list-traced "$TOOLS_LIST" "$LIST_CALLS"
  stop_server   # SIGTERM: the server sends what is left
  # Every request of that server had a SERVER span; fewer received means the SDK's queue dropped some.
  curl -sS "$OTLP_URL/summary" | jq --argjson expected "$((1 + 200 + DQL_CALLS + LIST_CALLS))" \
    '{spans, exports, by_kind, server_spans_expected: $expected}' >"$OUT/otlp-serve.json"
  say "Lambda: $LAMBDA_N invocations each of tools/list and execute_dql with traces on (flushed before each answer) ..."
  OTEL_EXPORTER_OTLP_ENDPOINT=$OTLP_URL "$HARNESS" lambda --bin "$BIN" \
    --event "$REPO/tests/fixtures/lambda/apigw-v2-http.json" --invocations "$LAMBDA_N" \
    --log "$OUT/server-lambda-traced.log" >"$OUT/lambda-traced.json" 2>"$OUT/lambda-traced.err" \
    || die "Lambda with traces: $(cat "$OUT/lambda-traced.err")"
  curl -sS "$OTLP_URL/problems" >"$OUT/otlp-problems.json"
  jq -e 'length == 0' "$OUT/otlp-problems.json" >/dev/null \
    || die "the OTLP receiver refused exports: $(cat "$OUT/otlp-problems.json")"
  kill "$RECEIVER_PID" 2>/dev/null || true; wait "$RECEIVER_PID" 2>/dev/null || true
else
  say "no OTLP receiver (scripts/test-tools.sh python installs opentelemetry-proto): the cost of traces is not measured"
fi
note_foreign "observability cost"

# The static musl binary the image and the x86_64 Lambda zip ship (scripts/check-aws.sh builds it):
# idle RSS without glibc's shared libraries and PIE relocations.
if [ -x "$MUSL_BIN" ]; then
  SAVED_BIN=$BIN BIN=$MUSL_BIN
  # With the allocator settings the image's ENV gives it (Dockerfile).
  start_server musl-idle MIMALLOC_ARENA_EAGER_COMMIT=0 MIMALLOC_PURGE_DELAY=0; sleep 0.5
  jq -n --argjson rss "$(status_kib "$SERVER_PID" VmRSS)" --argjson anon "$(status_kib "$SERVER_PID" RssAnon)" \
    --argjson file "$(status_kib "$SERVER_PID" RssFile)" --argjson size "$(stat -c %s "$MUSL_BIN")" \
    '{rss_idle_kib: $rss, rss_anon_idle_kib: $anon, rss_file_idle_kib: $file, binary_bytes: $size}' >"$OUT/musl-idle.json"
  # What the image runs, under the same sustained load as above: musl's allocator is not glibc's.
  say "sustained load on the static musl binary: ${SUSTAINED} s of tools/list (c=16) and execute_dql (c=16), then its RSS ..."
  oha musl-sustained-list "$SERVER_URL" "$TOOLS_LIST" 16 -z "${SUSTAINED}s" -w &
  p_list=$!
  oha musl-sustained-dql "$SERVER_URL" "$EXECUTE_DQL" 16 -z "${SUSTAINED}s" -w &
  p_dql=$!
  ok=1
  wait "$p_list" || ok=0
  wait "$p_dql" || ok=0
  [ "$ok" = 1 ] || die "the sustained load on the musl binary failed (see $OUT/oha-musl-sustained-*.err)"
  jq --argjson secs "$SUSTAINED" --argjson rss "$(status_kib "$SERVER_PID" VmRSS)" \
    --argjson anon "$(status_kib "$SERVER_PID" RssAnon)" --argjson hwm "$(status_kib "$SERVER_PID" VmHWM)" \
    --slurpfile list "$OUT/oha-musl-sustained-list.json" --slurpfile dql "$OUT/oha-musl-sustained-dql.json" \
    '. + {sustained_s: $secs, rss_sustained_kib: $rss, rss_anon_sustained_kib: $anon, hwm_sustained_kib: $hwm,
          sustained_calls: (($list[0].statusCodeDistribution | add // 0) + ($dql[0].statusCodeDistribution | add // 0))}' \
    "$OUT/musl-idle.json" >"$OUT/musl-idle.tmp" && mv "$OUT/musl-idle.tmp" "$OUT/musl-idle.json"
  note_foreign "sustained load, musl"
  stop_server
  BIN=$SAVED_BIN
else
  say "no static musl binary at $MUSL_BIN (scripts/check-aws.sh builds it): its idle RSS is not measured"
fi

# -------------------------------------------------------------------- large result: 10,000 vs 100
say "large result: fetch logs | limit 10000 vs limit 100, at the default result budget and at MCP_RESULT_MAX_BYTES=5000000, and all 10,000 records with fields; a fresh server each ..."
LARGE_RUNS=5
# Every field of a log record, from the record Grail answers to `fetch logs | limit 1`: with `fields`
# the server asks Grail for recordSizeLimitMB (here 10 MiB), so Grail returns all 10,000 records.
LOG_FIELDS=$(curl -sS --fail -X POST "$GRAIL_URL" -H 'content-type: application/json' "${AUTH[@]}" \
  --data-binary '{"query":"fetch logs | limit 1","maxResultRecords":1,"requestTimeoutMilliseconds":1000}' | jq -c '.result.records[0] | keys') \
  || die "cannot read the fields of a log record from the tenant"
[ "$(jq length <<<"$LOG_FIELDS")" -gt 0 ] || die "a log record without fields: $LOG_FIELDS"
for run in 100-default 10000-default 10000-fields 100 10000; do
  n=${run%%-*}
  if [ "$run" != "$n" ]; then
    budget=$DEFAULT_BUDGET; start_server "large-$run"       # the default result budget (60 KiB)
  else
    budget=5000000; start_server "large-$run" MCP_RESULT_MAX_BYTES=$budget
  fi
  sleep 0.3
  mcp "$SERVER_URL" "$EXECUTE_DQL" >/dev/null      # warm: OAuth token, connection pool
  rss0=$(status_kib "$SERVER_PID" VmRSS); hwm0=$(status_kib "$SERVER_PID" VmHWM)
  body=$(dql_body "fetch logs | limit $n" "$n" 10)
  # The same request the server makes: without `fields`, maxResultBytes is the smaller of
  # recordSizeLimitMB (10 MiB here) and 60 % of the result budget (at least 64 KiB); with `fields`,
  # recordSizeLimitMB.
  bytes=$(grail_cap "$budget") fields='null'
  if [ "$run" = 10000-fields ]; then
    fields=$LOG_FIELDS bytes=10485760
    body=$(jq -c --argjson f "$fields" '.params.arguments.fields = $f' <<<"$body")
  fi
  gbody=$(jq -cn --arg q "fetch logs | limit $n" --argjson n "$((n + 1))" --argjson bytes "$bytes" \
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
    --argjson hwm1 "$hwm1" --argjson fields "$fields" --argjson grail_max_bytes "$bytes" \
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
      grail_records: $grail_records, grail_max_result_bytes: $grail_max_bytes, fields: $fields,
      rss_before_kib: $rss0, hwm_before_kib: $hwm0,
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

# Cold starts with the settings in Secrets Manager, as the template deploys the function: a local Secrets
# Manager (moto_server) holds a secret with the tenant's settings; the function gets only DT_SECRET_ID, the
# endpoint and test credentials (no DT_* settings), and each run is a fresh process with a tools/list event
# queued at spawn.
MOTO_SERVER="$TOOLS_DIR/python/bin/moto_server" MOTO_PYTHON="$TOOLS_DIR/python/bin/python"
if [ -x "$MOTO_SERVER" ] && [ -x "$MOTO_PYTHON" ]; then
  say "Lambda cold start with Secrets Manager: $LAMBDA_COLD cold starts, settings from a secret in moto_server ..."
  moto_port=$(free_port)
  "$MOTO_SERVER" -H 127.0.0.1 -p "$moto_port" >"$OUT/moto.log" 2>&1 &
  MOTO_PID=$!; PIDS+=("$MOTO_PID")
  MOTO="http://127.0.0.1:$moto_port"
  for _ in $(seq 200); do curl -fsS -o /dev/null "$MOTO/moto-api/" 2>/dev/null && break; sleep 0.1; done
  curl -fsS -o /dev/null "$MOTO/moto-api/" || die "moto_server did not start: $(tail -5 "$OUT/moto.log")"
  # The secret: the tenant's settings, the `export KEY=VALUE` lines the harness printed (not its own BENCH_*).
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "$MOTO_PYTHON" - "$OUT/sandbox.env" "$MOTO" \
    >"$OUT/moto-secret.log" 2>&1 <<'PY' || die "cannot create the secret in moto: $(tail -5 "$OUT/moto-secret.log")"
import json, re, sys, boto3
settings = {k: v for k, v in re.findall(r"^export (\w+)=(\S+)$", open(sys.argv[1]).read(), re.M)
            if not k.startswith("BENCH_")}
sm = boto3.client("secretsmanager", endpoint_url=sys.argv[2], region_name="us-east-1")
arn = sm.create_secret(Name="mcp/bench", SecretString=json.dumps(settings))["ARN"]
print(f"secret mcp/bench ({arn}) with keys {', '.join(sorted(settings))}")
PY
  # moto's own answer time for that GetSecretValue (curl, unsigned: moto does not check signatures), the
  # floor under the function's read.
  moto_us=()
  for _ in $(seq 10); do
    t=$(curl -sS --fail -X POST "$MOTO/" -H 'content-type: application/x-amz-json-1.1' \
      -H 'x-amz-target: secretsmanager.GetSecretValue' \
      -H 'authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0' \
      --data-binary '{"SecretId":"mcp/bench"}' -o "$OUT/moto-get-secret.json" -w '%{time_total}') \
      || die "GetSecretValue against moto failed: $(cat "$OUT/moto-get-secret.json" 2>/dev/null)"
    moto_us+=("$(awk -v t="$t" 'BEGIN{printf "%d", t * 1e6}')")
  done
  jq -e '.SecretString | fromjson | has("DT_ENVIRONMENT")' "$OUT/moto-get-secret.json" >/dev/null \
    || die "moto's GetSecretValue answered: $(head -c 300 "$OUT/moto-get-secret.json")"
  env -i PATH="$PATH" DT_SECRET_ID=mcp/bench AWS_ENDPOINT_URL="$MOTO" AWS_ACCESS_KEY_ID=testing \
    AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 \
    "$HARNESS" lambda --bin "$BIN" --event "$REPO/tests/fixtures/lambda/apigw-v2-http.json" \
    --cold "$LAMBDA_COLD" --log "$OUT/server-lambda-cold.log" >"$OUT/lambda-cold.tmp" 2>"$OUT/lambda-cold.err" \
    || die "Lambda cold starts with Secrets Manager: $(cat "$OUT/lambda-cold.err"); function log: $(tail -3 "$OUT/server-lambda-cold.log" 2>/dev/null)"
  # Every start must have read the secret; the function logs how long that took.
  secret_ms=$(grep -h 'read settings from Secrets Manager' "$OUT/server-lambda-cold.log" \
    | jq -cs '[.[] | (.elapsed_ms // .fields.elapsed_ms // empty)]' 2>/dev/null || echo '[]')
  reads=$(grep -c 'read settings from Secrets Manager' "$OUT/server-lambda-cold.log" || true)
  [ "$reads" -eq "$((LAMBDA_COLD + 1))" ] \
    || die "the function read the secret $reads times in $((LAMBDA_COLD + 1)) cold starts (log: $OUT/server-lambda-cold.log)"
  jq --argjson secret_ms "$secret_ms" --argjson reads "$reads" \
    --argjson moto_us "$(printf '%s\n' "${moto_us[@]}" | jq -s .)" \
    '. + {secret_reads_logged: $reads, secret_read_logged_ms: $secret_ms, moto_get_secret_us: $moto_us}' \
    "$OUT/lambda-cold.tmp" >"$OUT/lambda-cold.json" && rm -f "$OUT/lambda-cold.tmp"
  kill "$MOTO_PID" 2>/dev/null || true; wait "$MOTO_PID" 2>/dev/null || true
else
  say "no moto_server at $MOTO_SERVER (scripts/test-tools.sh python installs it): the Lambda cold start with Secrets Manager is not measured"
  jq -n '{not_measured: "no moto_server: scripts/test-tools.sh python installs it"}' >"$OUT/lambda-cold.json"
fi
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
  --argjson sustained "$SUSTAINED" --argjson default_budget "$DEFAULT_BUDGET" \
  '{date: $date, commit: $commit, src_files_changed_since_commit: ($dirty|tonumber),
    load_before: $load_before, cpu_busy_before_pct: $busy_before, load_after: $load_after,
    foreign_builds_seen: $foreign, cpu: $cpu, nproc: $nproc, kernel: $kernel, rustc: $rustc,
    oha: $oha, quick: ($quick == 1), waited_for_quiet: ($waited == 1), seconds: $seconds,
    measure_seconds: $measure_seconds,
    cold_runs: $cold_runs, duration_s: $duration, slow_duration_s: $slow, sustained_s: $sustained,
    default_result_budget: $default_budget}' >"$OUT/meta.json"
python3 "$BENCH/report.py" "$OUT" | tee "$OUT/table.md"
say "done in $((FINISHED - STARTED)) s; results in $OUT"
