#!/usr/bin/env bash
# Third-party MCP client checks against a built dynatrace-mcp binary.
#
#   scripts/test-tools.sh python node && source .cache/tools/env.sh
#   tests/clients/run.sh target/debug/dynatrace-mcp
#
# Starts, on free loopback ports:
#   - `BINARY demo` (MCP over HTTP against the built-in simulated tenant, no auth), and
#   - `BINARY sandbox` + `BINARY serve` with MCP_AUTH_TOKEN set (for the auth checks),
# then runs:
#   1. the official Python `mcp` client (tests/clients/python_client.py): both protocol eras, HTTP and stdio, auth,
#      and three simulated environments (`demo --stdio --environments 3`: enum, fan-out, list_environments);
#   2. the MCP Inspector CLI: tools/list and tools/call over HTTP and stdio, tools/list with the auth header;
#   3. the official conformance suite: `--requirements 2026-07-28` and the legacy-era (2025-11-25) transport
#      scenarios, with the expected failures (missing test fixtures only) in tests/clients/conformance-baseline.yml;
#   4. OAuth: `BINARY serve` as an OAuth resource server of a real OpenID provider (oidc-provider, npm), and the
#      Python `mcp` client's own OAuth support (tests/clients/oauth_client.py) finding the authorization server
#      from the 401, registering, authorizing with PKCE and calling tools, in both protocol eras, with a step-up.
# Everything it started is stopped on exit. Exits non-zero if any check failed.
#
# Needs (from .cache/tools/env.sh): PYTHON, INSPECTOR_CLI, CONFORMANCE, NODE22; and curl.
# Environment: KEEP_ARTIFACTS=1 keeps the work dir (logs, conformance results) even when all checks pass;
#   CONFORMANCE_BASELINE=FILE uses another expected-failures file.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BASELINE="${CONFORMANCE_BASELINE:-$HERE/conformance-baseline.yml}"
# Legacy-era (initialize handshake) scenarios that apply to a stateless, tools-only server. Not run:
#   logging-set-level (no logging capability), server-sse-multiple-streams / server-sse-polling (need a
#   session id: the server is stateless; the first is run on the 2026-07-28 wire), and the fixture scenarios
#   (tools-call-*, resources-*, prompts-*, completion, elicitation-*) that --requirements 2026-07-28 covers.
LEGACY_SCENARIOS=(server-initialize ping tools-list dns-rebinding-protection server-session-lifecycle)
# Pending (unscored) 2026-07-28 scenarios that apply: --requirements runs them without failing on them.
# Not gated: json-schema-2020-12 (fixture tool json_schema_2020_12_tool) and http-custom-header-server-validation
# (untestable: no tool declares an x-mcp-header parameter).
MODERN_PENDING_SCENARIOS=(http-header-validation)
LEGACY_VERSION=2025-11-25
MODERN_VERSION=2026-07-28

die() { printf 'run.sh: %s\n' "$*" >&2; exit 2; }

[ $# -eq 1 ] || die "usage: $0 BINARY   (e.g. target/debug/dynatrace-mcp)"
BIN="$1"
[ -x "$BIN" ] || die "$BIN is not an executable file (build it: cargo build --bin dynatrace-mcp)"
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
for v in PYTHON INSPECTOR_CLI CONFORMANCE NODE22; do
  [ -n "${!v:-}" ] || die "\$$v is not set: install the tools and source their env first:
  scripts/test-tools.sh python node && source \"\${DTMCP_TOOLS_DIR:-.cache/tools}/env.sh\""
  [ -x "${!v}" ] || die "\$$v=${!v} is not executable (re-run scripts/test-tools.sh python node)"
done
command -v curl >/dev/null || die "curl is required"

STARTED_AT=$SECONDS
WORK="$(mktemp -d "${TMPDIR:-/tmp}/dtmcp-clients.XXXXXX")"
PIDS=()
RESULTS=()
FAILED=0

cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$FAILED" -eq 0 ] && [ "$rc" -eq 0 ] && [ "${KEEP_ARTIFACTS:-0}" != 1 ]; then
    rm -rf "$WORK"
  else
    echo "run.sh: logs and conformance results kept in $WORK" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

section() { printf '\n=== %s\n' "$*"; }
record() { # record NAME PASS|FAIL [detail]
  RESULTS+=("$(printf '%-4s %s%s' "$2" "$1" "${3:+ ($3)}")")
  if [ "$2" = PASS ]; then echo "PASS $1"; else FAILED=1; echo "FAIL $1${3:+: $3}"; fi
}

# ------------------------------------------------------------------------------------------- servers
wait_for() { # wait_for SECONDS CMD...: retries CMD every 0.1 s
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.1
  done
}
healthy() { curl -fsS --max-time 2 "$1/health" 2>/dev/null | grep -q '"status":"healthy"'; }
alive() { kill -0 "$1" 2>/dev/null; }
free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

section "starting servers ($BIN)"
"$BIN" demo --port 0 >"$WORK/demo.out" 2>"$WORK/demo.err" &
DEMO_PID=$!; PIDS+=("$DEMO_PID")
demo_url() { head -n1 "$WORK/demo.out" 2>/dev/null | grep -o 'http://127\.0\.0\.1:[0-9]*/mcp'; }
wait_for 20 demo_url >/dev/null || { cat "$WORK/demo.err" >&2; die "demo did not print its URL"; }
DEMO_URL="$(demo_url)"
DEMO_BASE="${DEMO_URL%/mcp}"
wait_for 20 healthy "$DEMO_BASE" || { cat "$WORK/demo.err" >&2; die "demo at $DEMO_BASE/health is not healthy"; }
echo "demo:    $DEMO_URL (pid $DEMO_PID)"

"$BIN" sandbox --port 0 >"$WORK/sandbox.out" 2>"$WORK/sandbox.err" &
SANDBOX_PID=$!; PIDS+=("$SANDBOX_PID")
wait_for 20 grep -qs '^ *export DT_ACCOUNT_URN=' "$WORK/sandbox.out" \
  || { cat "$WORK/sandbox.err" >&2; die "sandbox did not print its settings"; }
SANDBOX_ENV=()
while IFS= read -r kv; do
  key="${kv%%=*}" value="${kv#*=}"
  value="${value#\'}" value="${value%\'}"   # tolerate shell quoting
  SANDBOX_ENV+=("$key=$value")
done < <(sed -n 's/^ *export \([A-Z_][A-Z0-9_]*=.*\)$/\1/p' "$WORK/sandbox.out")
echo "sandbox: ${SANDBOX_ENV[0]} (pid $SANDBOX_PID)"

AUTH_TOKEN="clients-$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')"
for attempt in 1 2 3; do
  SERVE_PORT="$(free_port)"
  # A clean environment: only the sandbox's settings, so no DT_* or AWS settings of the caller leak in.
  env -i PATH="$PATH" HOME="${HOME:-/tmp}" "${SANDBOX_ENV[@]}" MCP_AUTH_TOKEN="$AUTH_TOKEN" \
    "$BIN" serve --port "$SERVE_PORT" >"$WORK/serve.out" 2>"$WORK/serve.err" &
  SERVE_PID=$!; PIDS+=("$SERVE_PID")
  if wait_for 20 eval 'healthy "http://127.0.0.1:$SERVE_PORT" || ! alive "$SERVE_PID"' && alive "$SERVE_PID"; then
    break
  fi
  [ "$attempt" -lt 3 ] || { cat "$WORK/serve.err" >&2; die "serve did not become healthy"; }
done
SERVE_URL="http://127.0.0.1:$SERVE_PORT/mcp"
echo "serve:   $SERVE_URL with MCP_AUTH_TOKEN (pid $SERVE_PID)"

# ------------------------------------------------------------------------------ 1. Python mcp client
section "Python mcp client ($("$PYTHON" -c 'import importlib.metadata as m; print("mcp", m.version("mcp"))'))"
if MCP_AUTH_TOKEN="$AUTH_TOKEN" timeout -k 5 100 "$PYTHON" "$HERE/python_client.py" \
     --binary "$BIN" --url "$DEMO_URL" --auth-url "$SERVE_URL" --log-dir "$WORK" | tee "$WORK/python.out"; then
  record "python client: $(tail -n1 "$WORK/python.out" | sed 's/^python client: //')" PASS
else
  record "python client: $(grep -c '^FAIL' "$WORK/python.out" || true) check(s) failed" FAIL "see FAIL lines above"
fi

# ---------------------------------------------------------------------------------- 2. Inspector CLI
section "MCP Inspector CLI"
# json_check FILE KIND [N]: tools = lists (at least) the three tools; records N = execute_dql result with N records
json_check() {
  "$PYTHON" - "$@" <<'PY'
import json, sys
path, kind = sys.argv[1], sys.argv[2]
doc = json.load(open(path))
if kind == "tools":
    names = [t["name"] for t in doc["tools"]]
    want = ["get_environment_info", "execute_dql", "verify_dql"]  # a subset: more tools may be listed
    assert set(want) <= set(names), f"tools {names}, expected at least {want}"
elif kind == "records":
    n = int(sys.argv[3])
    assert doc.get("isError") is False, f"isError={doc.get('isError')}: {doc.get('content')}"
    sc = doc.get("structuredContent")
    assert isinstance(sc, dict), f"no structuredContent in {list(doc)}"
    assert sc.get("status") == "succeeded", f"status {sc.get('status')}"
    recs = sc.get("records")
    assert isinstance(recs, list) and len(recs) == n, f"{len(recs) if isinstance(recs, list) else recs} records, expected {n}"
    assert sc.get("returnedRecords") == n, f"returnedRecords {sc.get('returnedRecords')}"
PY
}
# inspector NAME KIND [N] -- INSPECTOR ARGS...
inspector() {
  local name="$1" kind="$2" n=""; shift 2
  if [ "$1" != -- ]; then n="$1"; shift; fi
  shift
  local out="$WORK/inspector-${name//[^a-z0-9]/-}"
  local rc=0 detail
  timeout -k 5 30 "$INSPECTOR_CLI" "$@" >"$out.json" 2>"$out.err" || rc=$?
  if [ "$rc" -ne 0 ]; then
    record "inspector: $name" FAIL "exit $rc: $(grep -v 'unknown format' "$out.err" | tail -c 400 | tr '\n' ' ')"
  elif ! detail="$(json_check "$out.json" "$kind" $n 2>&1)"; then
    record "inspector: $name" FAIL "$(printf '%s' "$detail" | tail -n1)"
  else
    record "inspector: $name" PASS
  fi
}
DQL2='fetch logs | limit 2'
inspector "tools/list over HTTP" tools -- \
  "$DEMO_URL" --transport http --method tools/list
inspector "tools/call execute_dql over HTTP" records 2 -- \
  "$DEMO_URL" --transport http --method tools/call --tool-name execute_dql --tool-arg dqlStatement="$DQL2"
inspector "tools/call execute_dql over stdio" records 2 -- \
  "$BIN" demo --stdio --method tools/call --tool-name execute_dql --tool-arg dqlStatement="$DQL2"
inspector "tools/list over HTTP with the auth header (serve)" tools -- \
  "$SERVE_URL" --transport http --method tools/list --header "Authorization: Bearer $AUTH_TOKEN"
# Without the header the CLI must fail to connect (401), not list tools.
if timeout -k 5 30 "$INSPECTOR_CLI" "$SERVE_URL" --transport http --method tools/list \
     >"$WORK/inspector-noauth.json" 2>"$WORK/inspector-noauth.err"; then
  record "inspector: tools/list without the auth header is refused" FAIL "it succeeded"
elif grep -q 'Unauthorized\|401' "$WORK/inspector-noauth.err"; then
  record "inspector: tools/list without the auth header is refused" PASS
else
  record "inspector: tools/list without the auth header is refused" FAIL \
    "no 401/Unauthorized in: $(tail -c 300 "$WORK/inspector-noauth.err" | tr '\n' ' ')"
fi

# ------------------------------------------------------------------------------------- 3. Conformance
section "conformance $("$CONFORMANCE" --version 2>/dev/null || true) against the demo (baseline: ${BASELINE#"$HERE"/})"
strip_colour() { sed 's/\x1b\[[0-9;]*m//g'; }
# conformance_report LOG RESULTS_DIR REQUIRED_LIST: the suite's Total line, the scored/unscored split, the baseline verdict;
# for unexpected failures and stale entries, what each check expected (errorMessage + details).
conformance_report() {
  "$PYTHON" - "$1" "$2" "$3" <<'PY'
import glob, json, os, re, sys
lines = re.sub(r"\x1b\[[0-9;]*m", "", open(sys.argv[1], encoding="utf-8", errors="replace").read()).splitlines()
summary = {}
for l in lines[lines.index("=== SUMMARY ===") + 1 if "=== SUMMARY ===" in lines else len(lines):]:
    m = re.match(r"^[✓✗] (\S+): (\d+) passed, (\d+) failed", l)
    if m:
        summary[m[1]] = (int(m[2]), int(m[3]))
    if l.startswith("Total:"):
        print(l)
        break
required, section = set(), None  # `conformance list --requirements`: the scored server scenarios
for l in re.sub(r"\x1b\[[0-9;]*m", "", open(sys.argv[3], encoding="utf-8").read()).splitlines():
    if l.endswith("scenarios (test against a server):"): section = "server"
    elif l.endswith("(test against a client):"): section = None
    elif section and (m := re.match(r"^  - (\S+)", l)): required.add(m[1])
scored = {k: v for k, v in summary.items() if k in required}
unscored = set(summary) - required
clean = sum(1 for p, f in scored.values() if f == 0)
print(f"scored: {len(scored)} scenarios ({clean} without failures), {sum(p for p, _ in scored.values())} checks passed, "
      f"{sum(f for _, f in scored.values())} failed; not scored (extension/pending): {len(unscored)} scenarios")
block, unexpected = None, []
for l in lines:
    if l.startswith("Expected failures"): block = "expected"
    elif l.startswith("Stale baseline"): block = "stale"
    elif l.startswith("Unexpected failures"): block = "unexpected"
    elif l.startswith(("Baseline", "Unexpected failures detected")): print(l); block = None
    elif block and (m := re.match(r"^  [~✓✗] (\S+)", l)):
        if block == "expected": continue
        print(f"{block}: {m[1]}")
        if block == "unexpected": unexpected.append(m[1])
checks = {}
for f in glob.glob(os.path.join(sys.argv[2], "*", "checks.json")):
    scen = re.sub(r"^server-|-\d{4}-\d\d-\d\dT.*$", "", os.path.basename(os.path.dirname(f)))
    checks[scen] = json.load(open(f))
for entry in unexpected:
    scen, _, cid = entry.partition(":")
    for c in checks.get(scen, []):
        if c["status"] in ("FAILURE", "WARNING") and (not cid or c["id"] == cid):
            print(f"  {scen}:{c['id']} {c['status']}: {c.get('errorMessage') or ''}")
            if c.get("details"):
                print(f"    details: {json.dumps(c['details'])[:1500]}")
PY
}

# 3a. Everything 2026-07-28 requires (stateless wire), frozen at its release.
out="$WORK/conformance-$MODERN_VERSION"
if timeout -k 5 90 "$CONFORMANCE" server --url "$DEMO_URL" --requirements "$MODERN_VERSION" \
     --expected-failures "$BASELINE" -o "$out" >"$out.log" 2>&1; then rc=0; else rc=$?; fi
"$CONFORMANCE" list --requirements "$MODERN_VERSION" >"$out.required" 2>&1 || true
conformance_report "$out.log" "$out" "$out.required" | tee "$out.report"
if [ "$rc" -eq 0 ]; then
  record "conformance --requirements $MODERN_VERSION (with baseline): $(grep -m1 '^Total:' "$out.report"); $(grep -m1 '^scored:' "$out.report" | cut -d';' -f1); every failure is in the baseline" PASS
else
  grep -q '^Total:' "$out.report" || tail -n 20 "$out.log" >&2
  record "conformance --requirements $MODERN_VERSION (with baseline)" FAIL "exit $rc; see $out.log"
fi

# scenario_group TITLE VERSION SCENARIO...: one conformance run per scenario at VERSION, gated on each exit code.
scenario_group() {
  local title="$1" version="$2"; shift 2
  local out="$WORK/conformance-$version-runs" ok=1 scenario log line mark rc total
  for scenario in "$@"; do
    log="$out-$scenario.log"
    if timeout -k 5 60 "$CONFORMANCE" server --url "$DEMO_URL" --scenario "$scenario" --spec-version "$version" \
         --expected-failures "$BASELINE" -o "$out" >"$log" 2>&1; then rc=0; else rc=$?; fi
    line="$(strip_colour <"$log" | grep '^Passed:' || true)"
    line="${line%%$'\n'*}"; line="${line:-no result line}"
    if [ "$rc" -eq 0 ]; then mark='✓'; else mark='✗'; ok=0; fi
    echo "$mark $scenario @ $version: $line"
    if [ "$rc" -ne 0 ]; then
      strip_colour <"$log" | grep -E 'FAILURE|WARNING|^Unexpected|^Stale|^  [✓✗] |rror' >&2 || tail -n 20 "$log" >&2
    fi
  done
  # Total over the checks.json files (SUCCESS = passed; FAILURE = failed; WARNING/INFO/SKIPPED reported).
  total="$("$PYTHON" - "$out" <<'PY'
import glob, json, sys, collections
c = collections.Counter(chk["status"] for f in glob.glob(sys.argv[1] + "/*/checks.json") for chk in json.load(open(f)))
extra = ", ".join(f"{c[s]} {s.lower()}" for s in ("WARNING", "INFO", "SKIPPED") if c[s])
print(f"Total: {c['SUCCESS']} passed, {c['FAILURE']} failed" + (f" ({extra})" if extra else ""))
PY
)"
  echo "$total"
  if [ "$ok" -eq 1 ]; then
    record "conformance $title ($#): $total" PASS
  else
    record "conformance $title" FAIL "$total; logs in $out-*.log"
  fi
}

# 3b. Legacy wire (initialize handshake): the transport scenarios that apply.
scenario_group "$LEGACY_VERSION transport scenarios" "$LEGACY_VERSION" "${LEGACY_SCENARIOS[@]}"
# 3c. Scenarios --requirements runs but does not score (pending), gated here because they apply.
scenario_group "$MODERN_VERSION pending scenarios" "$MODERN_VERSION" "${MODERN_PENDING_SCENARIOS[@]}"

# ---------------------------------------------------------------------------------------------- 4. OAuth
section "OAuth: the Python mcp client discovers the authorization server (oidc-provider) by itself"
OAUTH_PORT="$(free_port)"
OAUTH_URL="http://127.0.0.1:$OAUTH_PORT/mcp"
"$NODE22" "$HERE/../idp/oidc-provider.mjs" --port 0 --resource "$OAUTH_URL" >"$WORK/idp.out" 2>"$WORK/idp.err" &
IDP_PID=$!; PIDS+=("$IDP_PID")
idp_issuer() { head -n1 "$WORK/idp.out" 2>/dev/null | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["issuer"])' 2>/dev/null; }
wait_for 30 idp_issuer >/dev/null || { cat "$WORK/idp.err" >&2; die "oidc-provider did not start"; }
ISSUER="$(idp_issuer)"
env -i PATH="$PATH" HOME="${HOME:-/tmp}" "${SANDBOX_ENV[@]}" MCP_OAUTH_ISSUER="$ISSUER" MCP_PUBLIC_URL="$OAUTH_URL" \
  DT_ENABLE_WRITE_TOOLS=1 DT_ENABLE_DAVIS_COPILOT=1 \
  "$BIN" serve --port "$OAUTH_PORT" >"$WORK/serve-oauth.out" 2>"$WORK/serve-oauth.err" &
OAUTH_PID=$!; PIDS+=("$OAUTH_PID")
wait_for 20 healthy "http://127.0.0.1:$OAUTH_PORT" || { cat "$WORK/serve-oauth.err" >&2; die "the OAuth server is not healthy"; }
echo "idp:     $ISSUER (pid $IDP_PID); serve: $OAUTH_URL with MCP_OAUTH_ISSUER (pid $OAUTH_PID)"
# oauth_check NAME EXPECT -- CLIENT ARGS...: runs oauth_client.py; EXPECT is a Python expression over `r` (its summary).
oauth_check() {
  local name="$1" expect="$2"; shift 3
  local out="$WORK/oauth-${name//[^a-z0-9]/-}" rc=0 detail
  timeout -k 5 90 "$PYTHON" "$HERE/oauth_client.py" "$OAUTH_URL" "$@" >"$out.json" 2>"$out.err" || rc=$?
  if [ "$rc" -ne 0 ]; then
    record "oauth: $name" FAIL "exit $rc: $(tail -c 400 "$out.err" | tr '\n' ' ')"
  elif ! detail="$("$PYTHON" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert eval(sys.argv[2]), sys.argv[2]; print(r["scopes_granted"])' "$out.json" "$expect" 2>&1)"; then
    record "oauth: $name" FAIL "$(printf '%s' "$detail" | tail -n1)"
  else
    record "oauth: $name (granted: $detail)" PASS
  fi
}
oauth_check "discovery from the 401, registration, PKCE, execute_dql (2026-07-28)" \
  'r["http_trace"][0]["status"] == 401 and "resource_metadata=" in r["http_trace"][0]["www_authenticate"] and r["protected_resource_metadata"]["resource"] == r["mcp_url"] and len(r["tools"]) == 28 and not r["tool_call"]["is_error"] and r["tool_call"]["structured_content"]["returnedRecords"] == 2 and not r["step_up"]' \
  -- --tool execute_dql --args '{"dqlStatement": "fetch logs | limit 2"}'
oauth_check "the same in the initialize era (2025-11-25)" \
  'r["protocol_version"] == "2025-11-25" and len(r["tools"]) == 28 and not r["tool_call"]["is_error"]' \
  -- --mode legacy --tool get_environment_info
oauth_check "a read-only token lists 17 tools and steps up (403 insufficient_scope) for send_email" \
  'len(r["tools"]) == 17 and r["step_up"] and any(t["status"] == 403 and "insufficient_scope" in t.get("www_authenticate", "") for t in r["http_trace"]) and r["tool_call"]["structured_content"]["status"] == "confirmation_required"' \
  -- --scope dynatrace:read --tool send_email --args '{"toRecipients": ["ops@example.com"], "subject": "s", "body": "b"}'
if grep -q '"target":"audit"' "$WORK/serve-oauth.err" && grep '"target":"audit"' "$WORK/serve-oauth.err" | grep -q '"source":"oauth"'; then
  record "oauth: the audit lines name the OAuth principal" PASS
else
  record "oauth: the audit lines name the OAuth principal" FAIL "no audit line with source oauth in $WORK/serve-oauth.err"
fi

# ------------------------------------------------------------------------------------------- summary
section "summary ($((SECONDS - STARTED_AT)) s)"
printf '%s\n' "${RESULTS[@]}"
if [ "$FAILED" -ne 0 ]; then
  echo "run.sh: some client checks FAILED" >&2
  exit 1
fi
echo "run.sh: all client checks passed"
