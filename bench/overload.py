#!/usr/bin/env python3
"""Overload behaviour of `dynatrace-mcp serve` (issue 10, part 3): what happens past
MCP_MAX_CONCURRENT_REQUESTS.

    bench/overload.py [--bin target/release/dynatrace-mcp] [--limit 16] [--concurrency 64]
                      [--seconds 20] [--latency-ms 200]

Starts `<bin> sandbox --latency-ms N` (every tenant answer delayed, so calls stay in flight) and
`<bin> serve` with MCP_MAX_CONCURRENT_REQUESTS=--limit, then keeps --concurrency clients calling
`execute_dql` back to back for --seconds (a shed client calls again at once: sustained overload,
not the polite wait Retry-After asks for). Then the same without a limit, for comparison.

Prints per run: calls served (200 with a result) and shed (503), throughput, the latency of each
(p50/p95/p99/max), and whether every 503 carried Retry-After. Exits 1 if a call failed otherwise
(not 200 and not 503), a 503 had no Retry-After, or a shed call took longer than 250 ms at p99 (a Python client on a loaded 2-core machine reconnects for each).
Only the Python standard library is used.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time

BODY = json.dumps({
    "jsonrpc": "2.0", "id": 1, "method": "tools/call",
    "params": {"name": "execute_dql", "arguments": {"dqlStatement": "fetch logs | limit 5"}},
}).encode()
HEADERS = {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": "2025-11-25",
}


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sandbox(binary: str, latency_ms: int) -> tuple[subprocess.Popen, dict[str, str]]:
    proc = subprocess.Popen([binary, "sandbox", "--latency-ms", str(latency_ms)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    settings: dict[str, str] = {}
    deadline = time.time() + 20
    while time.time() < deadline:
        line = proc.stdout.readline()
        match = re.match(r"\s*export (\w+)=(.*)", line)
        if match:
            settings[match.group(1)] = match.group(2)
        if "DT_ACCOUNT_URN" in settings:
            return proc, settings
    raise SystemExit("the sandbox did not print its settings")


def start_server(binary: str, settings: dict[str, str], limit: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {"PATH": os.environ.get("PATH", ""), **settings,
           "MCP_MAX_CONCURRENT_REQUESTS": str(limit), "MCP_MAX_CONNECTIONS": "100000",
           "MCP_LOG_LEVEL": "error", "MCP_AUDIT_LOG": "off"}
    proc = subprocess.Popen([binary, "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the server did not start")


def load(port: int, concurrency: int, seconds: float) -> dict:
    served: list[float] = []
    shed: list[float] = []
    other: list[str] = []
    missing_retry_after = [0]
    lock = threading.Lock()
    stop_at = time.time() + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.time() < stop_at:
            started = time.perf_counter()
            try:
                conn.request("POST", "/mcp", BODY, HEADERS)
                response = conn.getresponse()
                body = response.read()
                elapsed = time.perf_counter() - started
                with lock:
                    if response.status == 200 and b'"result"' in body:
                        served.append(elapsed)
                    elif response.status == 503:
                        shed.append(elapsed)
                        if response.getheader("retry-after") is None:
                            missing_retry_after[0] += 1
                    else:
                        other.append(f"HTTP {response.status}: {body[:200]!r}")
                if response.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            except OSError as e:
                with lock:
                    other.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.time() - began
    return {"served": served, "shed": shed, "other": other,
            "missing_retry_after": missing_retry_after[0], "seconds": took}


def summary(name: str, result: dict) -> str:
    def lat(values: list[float]) -> str:
        if not values:
            return "-"
        ms = [v * 1000 for v in values]
        return (f"p50 {percentile(ms, 50):.1f} / p95 {percentile(ms, 95):.1f} / "
                f"p99 {percentile(ms, 99):.1f} / max {max(ms):.1f} ms")
    total = len(result["served"]) + len(result["shed"]) + len(result["other"])
    return (f"{name}: {total} calls in {result['seconds']:.1f} s; "
            f"served {len(result['served'])} ({len(result['served']) / result['seconds']:.0f}/s, {lat(result['served'])}); "
            f"shed {len(result['shed'])} ({lat(result['shed'])}); other {len(result['other'])}; "
            f"503 without Retry-After {result['missing_retry_after']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default="target/release/dynatrace-mcp")
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--latency-ms", type=int, default=200)
    args = parser.parse_args()

    sandbox, settings = start_sandbox(args.bin, args.latency_ms)
    failed = False
    try:
        for name, limit in [(f"limit {args.limit}", args.limit), ("no limit", 100000)]:
            server, port = start_server(args.bin, settings, limit)
            try:
                result = load(port, args.concurrency, args.seconds)
            finally:
                server.terminate()
                server.wait(timeout=40)
            print(summary(f"{name}, concurrency {args.concurrency}, tenant latency {args.latency_ms} ms", result))
            for line in result["other"][:5]:
                print("   other:", line)
            shed_p99 = percentile(result["shed"], 99) * 1000 if result["shed"] else 0
            if result["other"] or result["missing_retry_after"] or shed_p99 > 250:
                failed = True
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
