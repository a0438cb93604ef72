#!/usr/bin/env bash
# The long fuzz run: each target of tests/fuzz for SECONDS, then a table of the figures.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     SECONDS per target (default 300)
#
# Targets (default: all): http_request lambda_event dql_literal signed_handle
#   confirmation_and_query_handle configuration. `cargo test --test fuzz` runs the same targets
#   for a few seconds each (the CI portion); this runs them for as long as asked.
#
# Engine, FUZZ_ENGINE (default random; libfuzzer is opt-in: its build recipe produced the libFuzzer
# figures in RELIABILITY.md, but this script's own libfuzzer path has not yet run end to end):
#   libfuzzer  coverage-guided libFuzzer on the nightly toolchain (`cargo +nightly`): the `fuzz`
#              test target built with cargo-bolero's instrumentation flags (under
#              `--cfg fuzzing_libfuzzer` bolero links libFuzzer), then run by libFuzzer per target.
#              Nothing is installed. The first build compiles the whole dependency tree
#              instrumented into FUZZ_TARGET_DIR: long (most of an hour on two busy cores);
#              later runs rebuild only what changed.
#   random     bolero's random engine on the default (stable) toolchain: the CI test target with
#              BOLERO_RANDOM_TEST_TIME_MS=SECONDS*1000.
#   auto       libfuzzer when `cargo +nightly` works, random otherwise.
# The figures of a run go in RELIABILITY.md, section 4.
# Other settings:
#   FUZZ_SANITIZER   libfuzzer only: NONE (default; the code under test is safe Rust) or address
#   FUZZ_OPT_LEVEL   libfuzzer only: opt-level of the `fuzz` profile (default 1)
#   FUZZ_MAX_LEN     libfuzzer only: longest input in bytes (default 4096)
#   FUZZ_TARGET_DIR  libfuzzer only: where the instrumented build goes (default target/fuzz/libfuzzer)
#   FUZZ_EXE         libfuzzer only: an instrumented fuzz binary built before: no build
#
# Output: target/fuzz-runs/<target>/corpus (kept: the next run starts from it), .../crashes, and
# target/fuzz-runs/<target>.<engine>.log; the table goes to stdout and target/fuzz-runs/summary.<engine>.txt.
# A libFuzzer crash is replayed by running the fuzz binary (named in the output) on the file:
#   BOLERO_LIBFUZZER_ARGS=<crash file> <fuzz binary> <target> --exact --nocapture
# A random-engine failure prints BOLERO_RANDOM_SEED=…; the same variable replays it.
# Exit status: 1 if any target crashed or failed, 0 otherwise.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
cd "$REPO_ROOT"

ALL_TARGETS=(http_request lambda_event dql_literal signed_handle confirmation_and_query_handle configuration)
OUT="$REPO_ROOT/target/fuzz-runs"

say() { printf 'fuzz: %s\n' "$*" >&2; }
die() { printf 'fuzz: ERROR: %s\n' "$*" >&2; exit 2; }

case "${1:-}" in -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;; esac
SECONDS_PER_TARGET="${1:-300}"
[[ "$SECONDS_PER_TARGET" =~ ^[1-9][0-9]*$ ]] || die "SECONDS must be a whole number above 0, got '$SECONDS_PER_TARGET'"
shift || true
TARGETS=("$@")
[ "${#TARGETS[@]}" -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")
for t in "${TARGETS[@]}"; do
  [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || die "unknown target '$t' (targets: ${ALL_TARGETS[*]})"
done

ENGINE="${FUZZ_ENGINE:-random}"
if [ "$ENGINE" = auto ]; then
  if cargo +nightly --version >/dev/null 2>&1; then ENGINE=libfuzzer; else ENGINE=random; fi
fi
case "$ENGINE" in libfuzzer|random) ;; *) die "FUZZ_ENGINE must be libfuzzer, random or auto" ;; esac
mkdir -p "$OUT"

# ------------------------------------------------------------------------------------ libFuzzer build
# cargo-bolero's flags (coverage instrumentation, `--cfg fuzzing_libfuzzer` so bolero links libFuzzer),
# applied to the `fuzz` test target only: `cargo bolero test` builds every test target, and the
# others do not link libFuzzer. `--target` keeps the flags off build scripts and proc macros.
FUZZ_RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module --cfg fuzzing_libfuzzer"
for f in inline-8bit-counters level=4 pc-table trace-compares stack-depth; do
  FUZZ_RUSTFLAGS="$FUZZ_RUSTFLAGS -Cllvm-args=-sanitizer-coverage-$f"
done
[ "${FUZZ_SANITIZER:-NONE}" = NONE ] || FUZZ_RUSTFLAGS="$FUZZ_RUSTFLAGS -Zsanitizer=${FUZZ_SANITIZER}"
FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-$REPO_ROOT/target/fuzz/libfuzzer}"
# FUZZ_EXE: a libFuzzer fuzz binary built before (the log of the last build names it); skips the build.
FUZZ_EXE="${FUZZ_EXE:-}"

build_libfuzzer() {
  local triple log="$OUT/build.libfuzzer.log"
  triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
  say "building the fuzz target with libFuzzer (nightly, $triple) into $FUZZ_TARGET_DIR; log: $log"
  # The `fuzz` profile is defined here, not in Cargo.toml.
  if ! CARGO_PROFILE_FUZZ_INHERITS=dev \
      CARGO_PROFILE_FUZZ_OPT_LEVEL="${FUZZ_OPT_LEVEL:-1}" \
      CARGO_PROFILE_FUZZ_DEBUG_ASSERTIONS=true \
      CARGO_PROFILE_FUZZ_OVERFLOW_CHECKS=true \
      CARGO_PROFILE_FUZZ_INCREMENTAL=false \
      RUSTFLAGS="$FUZZ_RUSTFLAGS" RUSTDOCFLAGS="$FUZZ_RUSTFLAGS" BOLERO_FUZZER=libfuzzer \
      cargo +nightly test --target "$triple" --profile fuzz --target-dir "$FUZZ_TARGET_DIR" \
        --test fuzz --no-run --keep-going --message-format=json >"$log.json" 2>"$log"; then
    # Expected: cargo also links the package's binary for an integration test, and the binary,
    # instrumented but without libFuzzer, does not link (undefined __sanitizer_cov_* symbols).
    # The fuzz test binary is what counts.
    say "cargo reported a failure (the instrumented server binary cannot link; expected); looking for the fuzz binary"
  fi
  FUZZ_EXE=$(grep -o '"executable":"[^"]*/deps/fuzz-[0-9a-f]*"' "$log.json" | tail -1 | sed 's/^"executable":"//; s/"$//')
  [ -n "$FUZZ_EXE" ] && [ -x "$FUZZ_EXE" ] || die "the libFuzzer build produced no fuzz test binary; see $log"
  say "fuzz binary: $FUZZ_EXE"
}

# ------------------------------------------------------------------------------------ one target
SUMMARY=()
FAILED=0

run_libfuzzer() {
  local target="$1" log="$OUT/$1.libfuzzer.log" corpus="$OUT/$1/corpus" crashes="$OUT/$1/crashes"
  mkdir -p "$corpus" "$crashes"
  local before after started ended execs status=ok
  before=$(find "$crashes" -type f | wc -l)
  started=$(date +%s)
  # bolero-libfuzzer hands BOLERO_LIBFUZZER_ARGS (split on spaces) to libFuzzer.
  if ! BOLERO_TEST_NAME="$target" BOLERO_LIBTEST_HARNESS=1 \
      BOLERO_LIBFUZZER_ARGS="$corpus $crashes -artifact_prefix=$crashes/ -timeout=60 -max_total_time=$SECONDS_PER_TARGET -max_len=${FUZZ_MAX_LEN:-4096}" \
      "$FUZZ_EXE" "$target" --exact --nocapture --quiet --test-threads 1 >"$log" 2>&1; then
    status=failed
  fi
  ended=$(date +%s)
  after=$(find "$crashes" -type f | wc -l)
  # libFuzzer's closing line: "Done 12345 runs in 60 second(s)"; after a crash, its last "#N" line.
  local done_line secs
  done_line=$(grep -aoE '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 || true)
  execs=$(printf '%s' "$done_line" | grep -oE '[0-9]+' | head -1 || true)
  secs=$(printf '%s' "$done_line" | grep -oE '[0-9]+' | sed -n 2p || true)
  [ -n "$execs" ] || execs=$(grep -aoE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
  # Without a closing line (a crash), the wall time, which includes the build.
  [ -n "$secs" ] || secs="$((ended - started))"
  [ "$after" -gt "$before" ] && status=crashed
  [ "$status" = ok ] || FAILED=1
  SUMMARY+=("$(printf '%-31s %-22s %7s %12s %8s  %s' "$target" "libFuzzer (nightly)" "$secs" "${execs:-?}" "$((after - before))" "$status")")
  [ "$status" = ok ] || say "$target: $status; see $log and $crashes"
}

run_random() {
  local target="$1" log="$OUT/$1.random.log" started ended execs secs status=ok
  started=$(date +%s)
  if ! BOLERO_RANDOM_TEST_TIME_MS="$((SECONDS_PER_TARGET * 1000))" \
      cargo test --test fuzz "$target" -- --exact --nocapture >"$log" 2>&1; then
    status=failed
  fi
  ended=$(date +%s)
  execs=$(grep -aoE "fuzz-figures target=$target engine=random executions=[0-9]+" "$log" | grep -oE '[0-9]+$' || true)
  # The target's own time (the wall time also counts building and starting the test binary).
  secs=$(grep -aoE "fuzz-figures target=$target engine=random executions=[0-9]+ seconds=[0-9]+" "$log" | grep -oE '[0-9]+$' || true)
  [ -n "$secs" ] || secs="$((ended - started))"
  [ "$status" = ok ] || { FAILED=1; say "$target: failed; see $log (BOLERO_RANDOM_SEED=… replays it)"; }
  SUMMARY+=("$(printf '%-31s %-22s %7s %12s %8s  %s' "$target" "random (stable)" "$secs" "${execs:-?}" "$([ "$status" = ok ] && echo 0 || echo 1)" "$status")")
}

if [ "$ENGINE" = libfuzzer ]; then
  [ -n "$FUZZ_EXE" ] || build_libfuzzer
  say "libFuzzer, ${SECONDS_PER_TARGET}s per target: ${TARGETS[*]}"
else
  say "random engine (stable), ${SECONDS_PER_TARGET}s per target: ${TARGETS[*]}"
  cargo build --tests >&2
fi
for target in "${TARGETS[@]}"; do
  say "$target ..."
  "run_$ENGINE" "$target"
  say "${SUMMARY[-1]}"
done

{
  printf '%-31s %-22s %7s %12s %8s  %s\n' target engine seconds executions crashes status
  printf '%s\n' "${SUMMARY[@]}"
  printf '(%s, %s, commit %s)\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc) cores" "$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
} | tee "$OUT/summary.$ENGINE.txt"
exit "$FAILED"
