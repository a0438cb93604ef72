#!/usr/bin/env bash
# Runs the README's "try it" commands exactly as written (only the port is changed to a free one) against
# `dynatrace-mcp demo`: the two MCP Inspector CLI commands and the seed-style curl examples; then the
# several-environments example (127.0.0.1:3001) against `dynatrace-mcp demo --environments 2`.
# Usage: scripts/check-readme.sh BINARY
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:?usage: scripts/check-readme.sh BINARY}
work=$(mktemp -d)
demo_pid=
demo2_pid=
cleanup() {
  [ -n "$demo_pid" ] && kill "$demo_pid" 2>/dev/null
  [ -n "$demo2_pid" ] && kill "$demo2_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$binary" demo --port "$port" >"$work/demo.out" 2>"$work/demo.err" &
demo_pid=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done
grep -q "MCP server at http://127.0.0.1:$port/mcp" "$work/demo.out" || { cat "$work/demo.out" "$work/demo.err"; exit 1; }

# The commands in the README's ```sh blocks that start with one of PREFIXES and talk to HOSTPORT, with
# their backslash-continued lines joined and HOSTPORT replaced by 127.0.0.1:PORT.
readme_commands() {  # HOSTPORT PORT PREFIX...
  python3 - "$@" <<'PY'
import re, sys
hostport, port, prefixes = sys.argv[1], sys.argv[2], tuple(p + " " for p in sys.argv[3:])
text = open("README.md").read()
for block in re.findall(r"```sh\n(.*?)```", text, re.S):
    joined = re.sub(r"\\\n\s*", " ", block)
    for line in joined.splitlines():
        line = line.split("  #")[0].strip()
        if line.startswith(prefixes) and hostport in line:
            print(line.replace(hostport, f"127.0.0.1:{port}"))
PY
}
readme_commands 127.0.0.1:3000 "$port" npx curl >"$work/commands.sh"
count=$(wc -l <"$work/commands.sh")
[ "$count" -ge 4 ] || { echo "check-readme: expected at least 4 README commands, found $count" >&2; exit 1; }

n=0
export MCP_AUTH_TOKEN=unused-by-the-demo-server
while IFS= read -r command; do
  n=$((n + 1))
  out="$work/out.$n"
  (cd "$work" && bash -c "$command") >"$out" 2>"$work/err.$n" || { echo "check-readme: FAILED ($?): $command" >&2; cat "$work/err.$n" >&2; exit 1; }
  python3 - "$out" "$command" <<'PY'
import json, sys
out, command = sys.argv[1], sys.argv[2]
data = json.load(open(out))
if "health" in command:
    assert data["status"] == "healthy", data
elif "tools/call" in command:
    assert data.get("isError") is False, data
    assert data["structuredContent"]["status"] == "succeeded", data
    assert data["structuredContent"]["returnedRecords"] > 0, data
else:
    tools = data["result"]["tools"] if "result" in data else data["tools"]
    assert "execute_dql" in [t["name"] for t in tools], tools
print("check-readme: ok:", command[:110])
PY
done <"$work/commands.sh"

# Several environments: the README's demo command with its port, and the commands that talk to it.
port2=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
grep -q -- "-- demo --environments 2 --port 3001" README.md || { echo "check-readme: the README's two-environment demo command is gone" >&2; exit 1; }
env -u MCP_AUTH_TOKEN "$binary" demo --environments 2 --port "$port2" >"$work/demo2.out" 2>"$work/demo2.err" &
demo2_pid=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port2/health" >/dev/null 2>&1 && break; sleep 0.1; done
grep -q "2 simulated environments: prod at" "$work/demo2.out" || { cat "$work/demo2.out" "$work/demo2.err"; exit 1; }
readme_commands 127.0.0.1:3001 "$port2" npx >"$work/commands2.sh"
[ "$(wc -l <"$work/commands2.sh")" -ge 1 ] || { echo "check-readme: no README command for the two-environment demo" >&2; exit 1; }
while IFS= read -r command; do
  n=$((n + 1))
  out="$work/out.$n"
  (cd "$work" && bash -c "$command") >"$out" 2>"$work/err.$n" || { echo "check-readme: FAILED ($?): $command" >&2; cat "$work/err.$n" >&2; exit 1; }
  python3 - "$out" "$command" <<'PY'
import json, sys
out, command = sys.argv[1], sys.argv[2]
data = json.load(open(out))
assert data.get("isError") is False, data
parts = data["structuredContent"]["environments"]
assert [p["environment"] for p in parts] == ["prod", "staging"], parts
assert all(p["status"] == "ok" for p in parts), parts
print("check-readme: ok:", command[:110])
PY
done <"$work/commands2.sh"
echo "check-readme: $n README commands work as written"
