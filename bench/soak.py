#!/usr/bin/env python3
"""Soak and load test of `dynatrace-mcp serve` against the simulated tenant (issue 10, part 5).

    bench/soak.py [--minutes 30] [--concurrency 64] [--rate 150] [--bin target/release/dynatrace-mcp]
    bench/soak.py --ci            # the short CI version: 1 minute, concurrency 16, the debug binary

Starts `<bin> sandbox` (the simulated tenant) and `<bin> serve` on loopback ports, then sends a mix of
read-tool calls (and `tools/list`) for --minutes at --concurrency connections, paced to --rate calls/s on
average: by default every worker fires at the same tick (bursts of --concurrency calls in flight at
once, one burst every concurrency/rate seconds); `--arrival spread` staggers them instead.

Every --interval seconds (60; 10 with --ci) it samples the server's RSS (/proc/<pid>/status), its CPU
(utime+stime), the tenant's RSS and CPU, the calls completed, their p50/p95/p99 latency, and the errors:

  (a) caused by the tenant or the data: an `isError` tool result with a sentence, on a call the mix
      makes to get one (a DQL syntax error, an unknown problem id or bucket), or whose sentence
      reports an answer of Dynatrace (HTTP 4xx/5xx, "Dynatrace rejected ...");
  (b) anything else: HTTP status other than 200, a JSON-RPC error, a malformed answer, a timeout, a
      connection error, an `isError` that is not the tenant's doing, the server exiting.

Checks (exit status 1 when one fails):
  - (b) errors: none;
  - peak RSS of the server below --rss-max-mb (200);
  - not with --ci: RSS flat after the warm-up: max/min of the samples taken at or after --warmup
    minutes <= --rss-flat (1.10);
  - not with --ci: p99 stable: the last interval's p99 <= --p99-factor (2) x the median of the
    post-warm-up intervals' p99.
--ci keeps only the first two (no latency assertion: a loaded 2-core CI machine must not make it flaky).

Results: a table on stdout; samples.json (everything), samples.csv (one row per interval),
calls.csv.gz (every call: end time, tool, latency, class), server.log.gz and sandbox.log in
bench/results/soak-<UTC time>/ (ignored by git). Only the Python standard library is used.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import csv
import gzip
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
PROTOCOL_VERSION = "2025-11-25"
CALL_TIMEOUT_S = 30.0  # above the server's tool deadline (MCP_TOOL_TIMEOUT_SECONDS, 25 s)

# ----------------------------------------------------------------------------------------- the mix
# (weight, tool, arguments, expect): expect "ok" = succeeds against the simulated tenant, "error" = the
# tenant or the data makes the tool answer isError with a sentence (a class (a) error by design).
# Statements that scan all 20,000 log records of the tenant (filter/summarize/sort before a limit) cost
# the simulated tenant 100-300 ms of CPU each in a release build (seconds in a debug build) and ~10 MB of
# "scanned bytes": they are one call in ~340, and --light (implied by --ci) leaves them out.
LOGS_ERROR = 'fetch logs | filter loglevel == "ERROR" | fields timestamp, content, loglevel | limit 5'
LOGS_COUNT = "fetch logs | summarize count(), by:{loglevel}"
LOGS_5000 = "fetch logs | sort timestamp desc | limit 5000"
HEAVY = {LOGS_ERROR, LOGS_COUNT, LOGS_5000}
MIX = [
    (8, "tools/list", None, "ok"),
    (6, "execute_dql", {"dqlStatement": "fetch logs | limit 20", "outputFormat": "lines", "fields": ["content"]}, "ok"),
    (6, "execute_dql", {"dqlStatement": "fetch logs | limit 3"}, "ok"),
    (5, "execute_dql", {"dqlStatement": "timeseries avg(dt.host.cpu.usage), by:{dt.entity.host}"}, "ok"),
    (4, "execute_dql", {"dqlStatement": 'fetch dt.system.buckets | filter table == "logs" | fields name'}, "ok"),
    (3, "execute_dql", {"dqlStatement": "fetch logs | limit 50 | sort timestamp desc | fields timestamp, content"}, "ok"),
    (0.1, "execute_dql", {"dqlStatement": LOGS_ERROR, "recordLimit": 10}, "ok"),
    (0.1, "execute_dql", {"dqlStatement": LOGS_COUNT}, "ok"),
    (0.1, "execute_dql", {"dqlStatement": LOGS_5000, "recordLimit": 1000}, "ok"),  # a ~130 KiB answer
    (2, "execute_dql", {"dqlStatement": 'fetch logs\n| fitler loglevel == "ERROR"'}, "error"),
    (3, "verify_dql", {"dqlStatement": 'fetch logs | filter loglevel == "ERROR" | limit 10'}, "ok"),
    (6, "list_problems", {"status": "ACTIVE", "timeframe": "2h"}, "ok"),
    (4, "list_problems", {}, "ok"),
    (4, "get_problem_details", {"problemId": "P-2411120"}, "ok"),
    (1, "get_problem_details", {"problemId": "P-0000000"}, "error"),
    (4, "list_vulnerabilities", {"riskScore": 7.0, "maxVulnerabilitiesToDisplay": 50}, "ok"),
    (2, "list_vulnerabilities", {}, "ok"),
    (5, "find_entity_by_name", {"entityNames": ["payment", "checkout-service"]}, "ok"),
    (2, "find_entity_by_name", {"entityNames": ["inventory"], "extendedSearch": True}, "ok"),
    (4, "get_entity_name", {"entityIds": ["SERVICE-3E6B5F5CAB4C8D34", "HOST-8CCED98AFA59084C", "SERVICE-FFFFFFFFFFFFFFFF"]}, "ok"),
    (3, "list_tags", {}, "ok"),
    (3, "find_entities_by_tag", {"tag": "env:prod"}, "ok"),
    (4, "list_buckets", {}, "ok"),
    (1, "list_buckets", {"includeSystem": True}, "ok"),
    (3, "describe_bucket", {"bucket": "default_logs", "sampleSize": 20}, "ok"),
    (1, "describe_bucket", {"bucket": "no_such_bucket"}, "error"),
    (4, "get_kubernetes_events", {}, "ok"),
    (3, "list_exceptions", {"timeframe": "7d", "maxExceptionsToDisplay": 5}, "ok"),
    (2, "find_documents", {"name": "payment"}, "ok"),
    (2, "get_environment_info", {}, "ok"),
    (3, "get_grail_budget", {}, "ok"),
    (1, "list_davis_analyzers", {"filter": "forecast"}, "ok"),
    (1, "execute_davis_analyzer", {"analyzerName": "dt.statistics.GenericForecastAnalyzer",
                                   "input": {"timeSeriesData": {"expression": "timeseries avg(dt.host.cpu.usage)"},
                                             "forecastHorizon": 30}}, "ok"),
    (1, "generate_dql_from_natural_language", {"text": "error logs of the payment service in the last hour"}, "ok"),
]


def is_heavy(arguments) -> bool:
    return isinstance(arguments, dict) and arguments.get("dqlStatement") in HEAVY


# An isError sentence that reports what Dynatrace answered (src/dynatrace/error.rs) or what the data lacks.
TENANT_CAUSED = re.compile(
    r"Dynatrace (rejected|found nothing|answered|refused|is rate|asks)|HTTP [45]\d\d|rate limit|"
    r"no problem with id|there is no bucket|does not offer|missing scope|needs the scope",
    re.IGNORECASE,
)


# ----------------------------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_sample(pid: int) -> dict:
    """RSS figures (KiB) and CPU seconds of a process, from /proc."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                    out[key] = int(value.split()[0])
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out["cpu_s"] = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        pass
    return out


def read_settings(proc: subprocess.Popen, timeout: float) -> dict:
    """The `export KEY=VALUE` lines the sandbox prints (until it has been quiet for 0.5 s)."""
    settings: dict = {}
    buf = b""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    last = None
    import select

    while time.monotonic() < deadline:
        if last is not None and time.monotonic() - last > 0.5:
            break
        r, _, _ = select.select([fd], [], [], 0.1)
        if not r:
            if proc.poll() is not None:
                break
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            m = re.match(r"\s*export ([A-Z0-9_]+)=(.*)$", line.decode())
            if m:
                settings[m.group(1)] = m.group(2).strip().strip("'\"")
                last = time.monotonic()
    return settings


# ---------------------------------------------------------------------------------- HTTP client
class Conn:
    """One HTTP/1.1 keep-alive connection (stdlib only, so the load generator stays cheap)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def close(self):
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except Exception:
                pass
        self.reader = self.writer = None

    async def post(self, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = [f"POST {path} HTTP/1.1", f"host: {self.host}:{self.port}", f"content-length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed before the status line")
        status = int(status_line.split()[1])
        length, chunked, close = None, False, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            k, v = k.strip().lower(), v.strip().lower()
            if k == "content-length":
                length = int(v)
            elif k == "transfer-encoding" and "chunked" in v:
                chunked = True
            elif k == "connection" and "close" in v:
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    while (await self.reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            data = b"".join(parts)
        elif length is not None:
            data = await self.reader.readexactly(length)
        else:
            data = await self.reader.read()
            close = True
        if close:
            await self.close()
        return status, data


# ------------------------------------------------------------------------------------- the run
def pct(values: list, p: float):
    if not values:
        return None
    s = sorted(values)  # nearest rank
    return s[max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))]


class Stats:
    def __init__(self):
        self.lat = []
        self.calls = 0
        self.a = 0
        self.a_unplanned = 0
        self.b = 0


class Run:
    def __init__(self, args, url_host: str, port: int, token: str):
        self.args = args
        self.host, self.port = url_host, port
        self.headers = {
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": PROTOCOL_VERSION,
            "x-mcp-auth-token": token,
        }
        self.mix = [m for m in MIX if not (args.light and is_heavy(m[2]))]
        self.weights = [w for w, *_ in self.mix]
        # A label per mix entry: the tool, with #n when the mix calls it with several argument sets.
        seen: collections.Counter = collections.Counter()
        self.labels = []
        for _, tool, _, _ in self.mix:
            seen[tool] += 1
            self.labels.append(f"{tool}#{seen[tool]}")
        self.labels = [lb if seen[lb.split("#")[0]] > 1 else lb.split("#")[0] for lb in self.labels]
        self.rng = random.Random(args.seed)
        self.t0 = 0.0
        self.interval_stats: dict[int, Stats] = collections.defaultdict(Stats)
        self.per_tool: dict[str, Stats] = collections.defaultdict(Stats)
        self.b_examples: collections.Counter = collections.Counter()
        self.a_examples: collections.Counter = collections.Counter()
        self.calls_log = []  # (t_end, tool, latency_ms, class)
        self.in_flight = 0
        self.max_in_flight = 0
        self.skipped_ticks = 0
        self.next_id = 0
        self.stop_at = 0.0
        self.n_intervals = 0

    def interval_of(self, t: float) -> int:
        return min(self.n_intervals, max(1, int((t - self.t0) // self.args.interval) + 1))

    def classify(self, expect: str, status: int, data: bytes) -> tuple[str, str]:
        if status != 200:
            return "b", f"HTTP {status}: {data[:120]!r}"
        try:
            answer = json.loads(data)
        except ValueError:
            return "b", f"not JSON: {data[:120]!r}"
        if "error" in answer:
            return "b", f"JSON-RPC error {answer['error'].get('code')}: {str(answer['error'].get('message'))[:120]}"
        result = answer.get("result")
        if not isinstance(result, dict):
            return "b", "no result"
        if "tools" in result:
            return ("ok", "") if result["tools"] else ("b", "tools/list: empty")
        if "content" not in result:
            return "b", "tools/call answer without content"
        if result.get("isError"):
            text = " ".join(c.get("text", "") for c in result["content"] if isinstance(c, dict))
            if expect == "error":
                return "a", text[:100]
            if TENANT_CAUSED.search(text):
                return "a!", text[:160]
            return "b", "isError: " + text[:160]
        if expect == "error":
            return "b", "expected an isError answer, got a success"
        return "ok", ""

    async def one_call(self, conn: Conn) -> None:
        index = self.rng.choices(range(len(self.mix)), weights=self.weights)[0]
        _, tool, arguments, expect = self.mix[index]
        label = self.labels[index]
        self.next_id += 1
        if tool == "tools/list":
            msg = {"jsonrpc": "2.0", "id": self.next_id, "method": "tools/list"}
        else:
            msg = {"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
                   "params": {"name": tool, "arguments": arguments}}
        body = json.dumps(msg).encode()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        start = time.monotonic()
        try:
            status, data = await asyncio.wait_for(conn.post("/mcp", body, self.headers), CALL_TIMEOUT_S)
            cls, why = self.classify(expect, status, data)
        except asyncio.TimeoutError:
            cls, why = "b", f"timeout after {CALL_TIMEOUT_S:.0f} s"
            await conn.close()
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
            cls, why = "b", f"connection: {type(e).__name__}: {e}"[:160]
            await conn.close()
        end = time.monotonic()
        self.in_flight -= 1
        ms = (end - start) * 1000.0
        for st in (self.interval_stats[self.interval_of(end)], self.per_tool[label]):
            st.calls += 1
            st.lat.append(ms)
            if cls == "a":
                st.a += 1
            elif cls == "a!":
                st.a += 1
                st.a_unplanned += 1
            elif cls == "b":
                st.b += 1
        if cls == "b":
            self.b_examples[f"{label}: {why}"] += 1
        elif cls in ("a", "a!"):
            self.a_examples[f"{label}: {why}"] += 1
        self.calls_log.append((round(end - self.t0, 3), label, round(ms, 2), cls))

    async def worker(self, index: int) -> None:
        conn = Conn(self.host, self.port)
        period = self.args.concurrency / self.args.rate
        offset = 0.0 if self.args.arrival == "burst" else index * period / self.args.concurrency
        k = 0
        try:
            while True:
                at = self.t0 + offset + k * period
                if at >= self.stop_at:
                    break
                delay = at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self.one_call(conn)
                # Skip the ticks this worker missed while its call ran (a closed loop at the cap).
                now = time.monotonic()
                k_next = k + 1
                due = int((now - self.t0 - offset) / period) + 1
                if due > k_next:
                    self.skipped_ticks += due - k_next
                    k_next = due
                k = k_next
        finally:
            await conn.close()


async def wait_healthy(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode} before it answered /health")
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(f"GET /health HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n\r\n".encode())
            await w.drain()
            data = await r.read()
            w.close()
            if data.startswith(b"HTTP/1.1 200"):
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the server did not answer /health in time")


def fmt(v, nd=1):
    return "-" if v is None else f"{v:.{nd}f}"


async def main_async(args, out: Path) -> int:
    bin_path = Path(args.bin)
    if not bin_path.is_absolute():
        bin_path = (REPO / bin_path) if (REPO / bin_path).exists() else bin_path.resolve()
    if not bin_path.exists():
        print(f"soak: no binary at {bin_path} (build it, or pass --bin)", file=sys.stderr)
        return 2
    sandbox_bin = Path(args.sandbox_bin) if args.sandbox_bin else bin_path
    env_base = {k: v for k, v in os.environ.items() if not k.startswith(("DT_", "MCP_", "OAUTH_", "AWS_"))}

    procs = []
    sandbox_log = open(out / "sandbox.log", "wb")
    sandbox_cmd = [str(sandbox_bin), "sandbox", "--port", "0"]
    if args.tenant_latency_ms:
        sandbox_cmd += ["--latency-ms", str(args.tenant_latency_ms)]
    sandbox = subprocess.Popen(sandbox_cmd, stdout=subprocess.PIPE,
                               stderr=sandbox_log, env={**env_base, "MCP_LOG_LEVEL": "warn"},
                               start_new_session=True)
    procs.append(sandbox)
    server = None
    server_log_path = out / "server.log"
    try:
        settings = read_settings(sandbox, 20)
        if "DT_ENVIRONMENT" not in settings:
            print("soak: the sandbox printed no DT_ENVIRONMENT (see sandbox.log)", file=sys.stderr)
            return 2
        port = free_port()
        token = "soak-" + secrets.token_hex(16)
        server_env = {
            **env_base, **settings,
            "MCP_AUTH_TOKEN": token,
            "DT_ENABLE_DAVIS_COPILOT": "1",
            "MCP_LOG_FORMAT": "json",
            "MCP_LOG_LEVEL": "warn",  # warnings, errors and the per-call audit line
        }
        server_log = open(server_log_path, "wb")
        server = subprocess.Popen([str(bin_path), "serve", "--host", "127.0.0.1", "--port", str(port)],
                                  stdout=server_log, stderr=server_log, env=server_env, start_new_session=True)
        procs.append(server)
        await wait_healthy(port, server, 60)

        run = Run(args, "127.0.0.1", port, token)
        total_s = args.minutes * 60.0
        run.n_intervals = max(1, int(round(total_s / args.interval)))
        total_s = run.n_intervals * args.interval
        meta = {
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "commit": git_commit(),
            "binary": str(bin_path),
            "binary_mtime_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(bin_path.stat().st_mtime)),
            "sandbox_binary": str(sandbox_bin), "tenant_latency_ms": args.tenant_latency_ms,
            "minutes": total_s / 60.0, "interval_s": args.interval, "concurrency": args.concurrency,
            "target_rate": args.rate, "arrival": args.arrival, "warmup_min": args.warmup, "ci": args.ci,
            "seed": args.seed, "load_before": os.getloadavg(), "nproc": os.cpu_count(),
            "light": args.light,
            "mix": [{"label": lb, "weight": w, "tool": t, "arguments": a, "expect": e}
                    for lb, (w, t, a, e) in zip(run.labels, run.mix)],
        }
        print(f"soak: {meta['minutes']:g} min, concurrency {args.concurrency}, target {args.rate:g} calls/s "
              f"({args.arrival}), sample every {args.interval:g} s; server {bin_path} pid {server.pid} "
              f"on 127.0.0.1:{port}, tenant pid {sandbox.pid}; results in {out}", flush=True)

        srv0, sbx0 = proc_sample(server.pid), proc_sample(sandbox.pid)
        me0 = os.times()
        samples = [{"interval": 0, "t_s": 0.0, "server": srv0, "tenant": sbx0}]
        run.t0 = time.monotonic()
        run.stop_at = run.t0 + total_s
        workers = [asyncio.create_task(run.worker(i)) for i in range(args.concurrency)]

        print(f"{'t':>6} {'calls':>7} {'rate/s':>7} {'(a)':>5} {'(b)':>4} {'p50 ms':>8} {'p95 ms':>8} "
              f"{'p99 ms':>8} {'max ms':>8} {'RSS MiB':>8} {'CPU %':>6} {'tenant MiB':>10} {'tenant CPU %':>12}",
              flush=True)
        prev_cpu, prev_tcpu, prev_t = srv0.get("cpu_s", 0.0), sbx0.get("cpu_s", 0.0), run.t0
        server_died = False
        for i in range(1, run.n_intervals + 1):
            target = run.t0 + i * args.interval
            await asyncio.sleep(max(0.0, target - time.monotonic()))
            if i == run.n_intervals:
                # The last interval closes when the calls in flight have finished.
                await asyncio.wait(workers, timeout=CALL_TIMEOUT_S + 5)
            now = time.monotonic()
            srv, sbx = proc_sample(server.pid), proc_sample(sandbox.pid)
            if server.poll() is not None:
                server_died = True
            st = run.interval_stats[i]
            span = now - prev_t
            row = {
                "interval": i, "t_s": round(now - run.t0, 2), "calls": st.calls,
                "rate": st.calls / args.interval, "a": st.a, "a_unplanned": st.a_unplanned, "b": st.b,
                "p50_ms": pct(st.lat, 50), "p95_ms": pct(st.lat, 95), "p99_ms": pct(st.lat, 99),
                "max_ms": max(st.lat) if st.lat else None,
                "server": srv, "tenant": sbx,
                "server_cpu_pct": 100.0 * (srv.get("cpu_s", prev_cpu) - prev_cpu) / span,
                "tenant_cpu_pct": 100.0 * (sbx.get("cpu_s", prev_tcpu) - prev_tcpu) / span,
                "load1": os.getloadavg()[0],
            }
            samples.append(row)
            prev_cpu, prev_tcpu, prev_t = srv.get("cpu_s", prev_cpu), sbx.get("cpu_s", prev_tcpu), now
            t_label = f"{row['t_s'] / 60:.1f}m" if args.interval >= 60 else f"{row['t_s']:.0f}s"
            print(f"{t_label:>6} {st.calls:>7} {row['rate']:>7.1f} {st.a:>5} {st.b:>4} {fmt(row['p50_ms']):>8} "
                  f"{fmt(row['p95_ms']):>8} {fmt(row['p99_ms']):>8} {fmt(row['max_ms']):>8} "
                  f"{srv.get('VmRSS', 0) / 1024:>8.1f} {row['server_cpu_pct']:>6.1f} "
                  f"{sbx.get('VmRSS', 0) / 1024:>10.1f} {row['tenant_cpu_pct']:>12.1f}", flush=True)
            if server_died:
                break
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        load_s = time.monotonic() - run.t0
        me1 = os.times()
        srv_end = proc_sample(server.pid)
        if server.poll() is not None:
            server_died = True
    except RuntimeError as e:
        print(f"soak: {e} (logs in {out})", file=sys.stderr)
        return 2
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=40)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        sandbox_log.close()
        if server is not None:
            server_log.close()

    # ------------------------------------------------------------------------------- the verdict
    post = [s for s in samples[1:] if s["t_s"] >= args.warmup * 60.0 - 1e-6 and s["server"].get("VmRSS")]
    rss_post = [s["server"]["VmRSS"] for s in post]
    p99_post = [s["p99_ms"] for s in post if s["p99_ms"] is not None]
    total_calls = sum(s.calls for s in run.interval_stats.values())
    total_a = sum(s.a for s in run.interval_stats.values())
    total_a_unplanned = sum(s.a_unplanned for s in run.interval_stats.values())
    total_b = sum(s.b for s in run.interval_stats.values()) + (1 if server_died else 0)
    peak_kib = max([s["server"].get("VmHWM", 0) for s in samples] + [srv_end.get("VmHWM", 0)])
    server_cpu = srv_end.get("cpu_s", samples[-1]["server"].get("cpu_s", 0.0)) - srv0.get("cpu_s", 0.0)
    gen_cpu = (me1.user - me0.user) + (me1.system - me0.system)
    tenant_cpu = samples[-1]["tenant"].get("cpu_s", 0.0) - sbx0.get("cpu_s", 0.0)

    checks = []
    checks.append(("no (b) errors", total_b == 0,
                   f"{total_b} (b) errors" + (" (the server exited)" if server_died else "")))
    checks.append((f"peak RSS < {args.rss_max_mb:g} MiB", peak_kib / 1024 < args.rss_max_mb,
                   f"VmHWM {peak_kib / 1024:.1f} MiB"))
    if not args.ci:
        if len(rss_post) >= 2:
            ratio = max(rss_post) / min(rss_post)
            checks.append((f"RSS flat after {args.warmup:g} min (max/min <= {args.rss_flat:.2f})",
                           ratio <= args.rss_flat,
                           f"{min(rss_post) / 1024:.1f}-{max(rss_post) / 1024:.1f} MiB over {len(rss_post)} "
                           f"samples, max/min {ratio:.3f}"))
        else:
            checks.append(("RSS flat after the warm-up", False, "fewer than 2 samples after the warm-up"))
        if len(p99_post) >= 2:
            med = statistics.median(p99_post)
            last = samples[-1]["p99_ms"]
            checks.append((f"p99 stable (last interval <= {args.p99_factor:g} x post-warm-up median)",
                           last is not None and last <= args.p99_factor * med,
                           f"last {fmt(last)} ms, median {med:.1f} ms, min {min(p99_post):.1f}, "
                           f"max {max(p99_post):.1f} ms"))
        else:
            checks.append(("p99 stable", False, "fewer than 2 intervals after the warm-up"))

    per_tool = {
        tool: {"calls": st.calls, "a": st.a, "a_unplanned": st.a_unplanned, "b": st.b,
               "p50_ms": pct(st.lat, 50), "p99_ms": pct(st.lat, 99), "max_ms": max(st.lat) if st.lat else None}
        for tool, st in sorted(run.per_tool.items())
    }
    audit = summarize_server_log(server_log_path)
    summary = {
        "calls": total_calls, "load_s": load_s, "rate": total_calls / load_s if load_s else 0.0,
        "a": total_a, "a_unplanned": total_a_unplanned, "b": total_b, "server_died": server_died,
        "server_exit_status": server.returncode if server else None,
        "max_in_flight": run.max_in_flight, "skipped_ticks": run.skipped_ticks,
        "server_cpu_s": server_cpu, "server_cpu_pct": 100.0 * server_cpu / load_s if load_s else 0.0,
        "server_cpu_ms_per_call": 1000.0 * server_cpu / total_calls if total_calls else None,
        "tenant_cpu_s": tenant_cpu, "loadgen_cpu_s": gen_cpu,
        "server_rss_kib": [s["server"].get("VmRSS") for s in samples],
        "server_peak_rss_kib": peak_kib,
        "p99_post_warmup_ms": {"min": min(p99_post), "median": statistics.median(p99_post), "max": max(p99_post)}
        if p99_post else None,
        "a_examples": run.a_examples.most_common(20), "b_examples": run.b_examples.most_common(20),
        "server_log": audit, "load_after": os.getloadavg(),
        "checks": [{"check": c, "passed": ok, "detail": d} for c, ok, d in checks],
    }
    (out / "samples.json").write_text(json.dumps(
        {"meta": meta, "samples": samples, "per_tool": per_tool, "summary": summary}, indent=1))
    with open(out / "samples.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["interval", "t_s", "calls", "rate", "a", "a_unplanned", "b", "p50_ms", "p95_ms", "p99_ms",
                    "max_ms", "server_rss_kib", "server_hwm_kib", "server_cpu_pct", "tenant_rss_kib",
                    "tenant_cpu_pct", "load1"])
        for s in samples[1:]:
            w.writerow([s["interval"], s["t_s"], s["calls"], round(s["rate"], 2), s["a"], s["a_unplanned"], s["b"],
                        *(None if s[k] is None else round(s[k], 2) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
                        s["server"].get("VmRSS"), s["server"].get("VmHWM"), round(s["server_cpu_pct"], 1),
                        s["tenant"].get("VmRSS"), round(s["tenant_cpu_pct"], 1), s["load1"]])
    with gzip.open(out / "calls.csv.gz", "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_end_s", "tool", "latency_ms", "class"])
        w.writerows(run.calls_log)

    # ------------------------------------------------------------------------------- the report
    print()
    print(f"calls {total_calls} in {load_s:.0f} s = {summary['rate']:.1f}/s (target {args.rate:g}); "
          f"max in flight {run.max_in_flight}; ticks skipped (worker still busy) {run.skipped_ticks}")
    print(f"errors: (a) tenant/data {total_a} (of which not planned by the mix: {total_a_unplanned}), "
          f"(b) other {total_b}")
    for text, n in run.b_examples.most_common(10):
        print(f"  (b) {n} x {text}")
    for text, n in run.a_examples.most_common(6):
        print(f"  (a) {n} x {text}")
    print(f"server CPU {server_cpu:.1f} s = {summary['server_cpu_pct']:.1f} % of one core "
          f"({fmt(summary['server_cpu_ms_per_call'], 3)} ms per call); tenant CPU {tenant_cpu:.1f} s; "
          f"load generator CPU {gen_cpu:.1f} s")
    print(f"server RSS (MiB) at each sample: "
          + " ".join(f"{(s['server'].get('VmRSS') or 0) / 1024:.1f}" for s in samples))
    print(f"server peak RSS (VmHWM) {peak_kib / 1024:.1f} MiB; tenant RSS at the end "
          f"{(samples[-1]['tenant'].get('VmRSS') or 0) / 1024:.1f} MiB (informational: an older `sandbox` records every request and grows)")
    if audit:
        print(f"server log: audit outcomes {audit['outcomes']}; warn/error lines {audit['levels']}")
        for line in audit["other_examples"][:5]:
            print(f"  log: {line}")
    print()
    print(f"{'call (#n: the n-th argument set of the mix, samples.json has them)':40} {'calls':>7} {'(a)':>6} {'(b)':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for tool, t in per_tool.items():
        print(f"{tool:40} {t['calls']:>7} {t['a']:>6} {t['b']:>4} {fmt(t['p50_ms']):>8} {fmt(t['p99_ms']):>8} "
              f"{fmt(t['max_ms']):>8}")
    print()
    failed = 0
    for c, ok, d in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {c}: {d}")
        failed += 0 if ok else 1
    print(f"\nsoak: results in {out}")
    return 1 if failed else 0


def summarize_server_log(path: Path) -> dict | None:
    """Counts the audit outcomes and the warn/error lines of the server's JSON log, then gzips it."""
    if not path.exists():
        return None
    outcomes: collections.Counter = collections.Counter()
    levels: collections.Counter = collections.Counter()
    others: list = []
    with open(path, "rb") as f:
        for raw in f:
            try:
                line = json.loads(raw)
            except ValueError:
                levels["non-JSON"] += 1
                if len(others) < 20:
                    others.append(raw.decode(errors="replace").strip()[:200])
                continue
            if line.get("target") == "audit":
                outcomes[line.get("outcome", "?")] += 1
            else:
                levels[line.get("level", "?")] += 1
                if len(others) < 20:
                    others.append(f"{line.get('level')} {line.get('message')} "
                                  f"{json.dumps({k: v for k, v in line.items() if k not in ('timestamp', 'level', 'message')})}"[:200])
    with open(path, "rb") as src, gzip.open(str(path) + ".gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    path.unlink()
    return {"outcomes": dict(outcomes), "levels": dict(levels), "other_examples": others}


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--minutes", type=float, help="length of the load (default 30; 1 with --ci)")
    p.add_argument("--concurrency", type=int, help="workers, one keep-alive connection each (64; 16 with --ci)")
    p.add_argument("--rate", type=float, help="target calls/s over all workers (150; 40 with --ci)")
    p.add_argument("--light", action="store_true",
                   help="leave out the DQL statements that scan the whole log table (implied by --ci)")
    p.add_argument("--arrival", choices=("burst", "spread"), default="burst",
                   help="burst: all workers call at the same tick; spread: staggered (burst)")
    p.add_argument("--bin", help="the server binary (target/release/dynatrace-mcp; target/debug/… with --ci)")
    p.add_argument("--sandbox-bin", help="binary whose `sandbox` subcommand runs the tenant (default --bin; "
                                         "bench/harness's dtmcp-bench works too and records nothing)")
    p.add_argument("--tenant-latency-ms", type=int, default=0,
                   help="delay every answer of the tenant (`sandbox --latency-ms`; 0 = none)")
    p.add_argument("--interval", type=float, help="seconds between samples (60; 10 with --ci)")
    p.add_argument("--warmup", type=float, help="minutes before the RSS and p99 checks look (3; 0 with --ci)")
    p.add_argument("--rss-flat", type=float, default=1.10, help="max/min RSS after the warm-up (1.10)")
    p.add_argument("--rss-max-mb", type=float, default=200.0, help="ceiling of the server's peak RSS, MiB (200)")
    p.add_argument("--p99-factor", type=float, default=2.0, help="last p99 / median p99 limit (2)")
    p.add_argument("--seed", type=int, default=10, help="seed of the call mix (10)")
    p.add_argument("--out", help="results directory (default bench/results/soak-<UTC time>)")
    p.add_argument("--ci", action="store_true",
                   help="the short CI version: defaults 1 minute, concurrency 16, the debug binary, samples every "
                        "10 s, 40 calls/s, --light; checks only (b) errors and the RSS ceiling")
    args = p.parse_args()
    ci = args.ci
    args.minutes = args.minutes if args.minutes is not None else (1.0 if ci else 30.0)
    args.concurrency = args.concurrency or (16 if ci else 64)
    args.rate = args.rate or (40.0 if ci else 150.0)
    args.light = args.light or ci
    args.bin = args.bin or ("target/debug/dynatrace-mcp" if ci else "target/release/dynatrace-mcp")
    args.interval = args.interval or (10.0 if ci or args.minutes <= 2 else 60.0)
    args.warmup = args.warmup if args.warmup is not None else (0.0 if ci else 3.0)
    if args.concurrency < 1 or args.rate <= 0 or args.minutes <= 0 or args.interval <= 0:
        p.error("--concurrency, --rate, --minutes and --interval must be positive")
    out = Path(args.out) if args.out else REPO / "bench" / "results" / ("soak-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    out.mkdir(parents=True, exist_ok=True)
    try:
        return asyncio.run(main_async(args, out))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
