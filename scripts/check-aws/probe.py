"""Talks to a running dynatrace-mcp over HTTP the way a client does, and fails with a clear line otherwise.

usage: python probe.py BASE_URL [--token TOKEN] [--health] [--call-tool] [--expect-401]
  BASE_URL      e.g. http://127.0.0.1:3000 (POSTs go to BASE_URL/mcp)
  --health      GET /health answers {"status": "healthy", ...}
  --token       sent as X-MCP-Auth-Token
  --expect-401  also check that a request without the token is refused with 401
  --call-tool   also call get_environment_info (the simulated tenant answers through the OAuth settings)
Always: POST tools/list answers with a tool list that includes execute_dql.
"""
import argparse
import json
import sys
import time
import urllib.error
import urllib.request


def request(url, body=None, headers=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    req.add_header("Accept", "application/json, text/event-stream")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def parse(text):
    text = text.strip()
    if text.startswith("event:") or text.startswith("data:"):  # an SSE answer: take the last data line
        text = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")][-1]
    return json.loads(text)


def fail(msg):
    print(f"probe: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("--token")
    ap.add_argument("--health", action="store_true")
    ap.add_argument("--expect-401", action="store_true")
    ap.add_argument("--call-tool", action="store_true")
    a = ap.parse_args()
    base = a.base.rstrip("/")
    headers = {"X-MCP-Auth-Token": a.token} if a.token else {}
    started = time.monotonic()

    if a.health:
        status, text = request(f"{base}/health")
        if status != 200 or parse(text).get("status") != "healthy":
            fail(f"GET {base}/health answered {status}: {text[:300]}")
        print(f"probe: GET /health -> 200 {text.strip()[:120]}")

    if a.expect_401:
        status, text = request(f"{base}/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        if status != 401:
            fail(f"POST /mcp without the token answered {status}, expected 401: {text[:300]}")
        print("probe: POST /mcp without X-MCP-Auth-Token -> 401")

    status, text = request(f"{base}/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers)
    if status != 200:
        fail(f"POST {base}/mcp tools/list answered {status}: {text[:500]}")
    try:
        tools = [t["name"] for t in parse(text)["result"]["tools"]]
    except (ValueError, KeyError, TypeError) as e:
        fail(f"tools/list answer is not a tool list ({e}): {text[:500]}")
    if "execute_dql" not in tools:
        fail(f"tools/list has no execute_dql: {tools}")
    print(f"probe: POST /mcp tools/list -> 200, {len(tools)} tools ({', '.join(tools[:4])}, ...)")

    if a.call_tool:
        body = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "get_environment_info", "arguments": {}}}
        status, text = request(f"{base}/mcp", body, headers)
        result = parse(text).get("result") if status == 200 else None
        if not result or result.get("isError"):
            fail(f"tools/call get_environment_info answered {status}: {text[:500]}")
        print(f"probe: POST /mcp tools/call get_environment_info -> ok "
              f"({json.dumps(result.get('structuredContent', {}))[:100]})")
    print(f"probe: done in {time.monotonic() - started:.2f} s")


if __name__ == "__main__":
    main()
