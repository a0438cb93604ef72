#!/usr/bin/env python3
"""Fan-out across several Dynatrace environments: what `environment: "*"` costs over asking the
slowest environment alone, and what a fan-out answers when one environment is past the deadline.

    bench/fanout.py [--bin target/release/dynatrace-mcp] [--counts 1,3,10] [--calls 30]
                    [--tool list_problems|execute_dql] [--json-out PATH]

For each K in --counts: starts K simulated tenants (`<bin> sandbox --tenant i --latency-ms L`,
tenants 1..K, each its own environment id, token and data), tenant i answering after
20 + 180*(i-1)/(K-1) ms (K = 1: 200 ms), so the slowest always answers after 200 ms and the rows
compare. Builds DT_ENVIRONMENTS from the entries the tenants print (aliases env1..envK, env1 the
default), starts `<bin> serve` with it, waits for /health, makes 2 warm-up calls, then measures
--calls sequential calls of --tool with `environment: "*"` (the fan-out) and as many with
`environment: "envK"` (the slowest tenant alone, the baseline).

Per K it reports the fan-out's p50/p95/max, the slowest-alone p50/p95, and the overhead
(fan-out p50 − slowest-alone p50, in ms and %): what running K calls concurrently and merging
their answers adds beyond the wait for the slowest. Every fan-out answer must hold K entries, one
per alias, all with status "ok" (K = 1: "*" that comes to one environment is answered in that
environment's own shape, which must be a success); every baseline answer must be a success.

Then one run with a tenant past the deadline: K = 3, tenant 3 answering after 8000 ms, the server
at MCP_TOOL_TIMEOUT_SECONDS=3; 5 fan-out calls, each of which must answer in < 3 s with env1 and
env2 "ok" and env3 "error". Reports the answer time p50/max and env3's error text.

Prints a Markdown table (for a README) and the machine line: cores, and the load average from
/proc/loadavg before and after. --json-out writes every figure as JSON. Exits 1 on any failed check.
Child processes are killed at the end, also on Ctrl-C. Only the Python standard library is used.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time

HEADERS = {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": "2025-11-25",
}
TOOL_ARGUMENTS = {
    "list_problems": {},
    "execute_dql": {"dqlStatement": "fetch logs | limit 5"},
}
SLOWEST_MS = 200
LATE_MS = 8000
LATE_TIMEOUT_S = 3
LATE_CALLS = 5
WARMUP = 2

CHILDREN: list[subprocess.Popen] = []


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


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 0


# ------------------------------------------------------------------------------------- processes
def spawn(argv: list[str], **kwargs) -> subprocess.Popen:
    # Its own process group, so a Ctrl-C in the terminal reaches only this script, which then
    # stops the children itself (in order, by pid).
    proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
    CHILDREN.append(proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    if proc in CHILDREN:
        CHILDREN.remove(proc)


def stop_all() -> None:
    for proc in list(CHILDREN):
        try:
            stop(proc)
        except Exception as e:  # keep stopping the others
            print(f"could not stop pid {proc.pid}: {e!r}", file=sys.stderr)


def start_sandbox(binary: str, tenant: int, latency_ms: int) -> tuple[subprocess.Popen, dict]:
    errors = tempfile.NamedTemporaryFile(prefix=f"fanout-sandbox{tenant}-", suffix=".log", delete=False)
    proc = spawn([binary, "sandbox", "--tenant", str(tenant), "--latency-ms", str(latency_ms)],
                 stdout=subprocess.PIPE, stderr=errors, text=True)
    entry = None
    seen: list[str] = []
    deadline = time.time() + 20
    want_entry = False
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:  # exited
            break
        seen.append(line.rstrip())
        if want_entry and line.strip():
            entry = json.loads(line)
            break
        if "as an entry of DT_ENVIRONMENTS" in line:
            want_entry = True
    if entry is None:
        time.sleep(0.2)
        with open(errors.name, errors="replace") as f:
            stderr = f.read()[-1000:]
        raise SystemExit(f"sandbox tenant {tenant} did not print its DT_ENVIRONMENTS entry (exit {proc.poll()}); "
                         f"stdout: {seen}; stderr: {stderr.strip()}")
    # Keep reading its stdout, so a chatty tenant never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, entry


def start_server(binary: str, environments: dict, extra: dict[str, str]) -> tuple[subprocess.Popen, int, str]:
    port = free_port()
    env = {"PATH": os.environ.get("PATH", ""), "DT_ENVIRONMENTS": json.dumps(environments),
           "MCP_MAX_CONNECTIONS": "100000", "MCP_LOG_LEVEL": "error", "MCP_AUDIT_LOG": "off", **extra}
    log = tempfile.NamedTemporaryFile(prefix="fanout-serve-", suffix=".log", delete=False)
    proc = spawn([binary, "serve", "--port", str(port)], env=env,
                 stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            break
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc, port, log.name
        except OSError:
            time.sleep(0.05)
    with open(log.name, errors="replace") as f:
        tail = f.read()[-2000:]
    raise SystemExit(f"the server did not start (exit {proc.poll()}); its stderr ({log.name}):\n{tail}")


# ----------------------------------------------------------------------------------------- calls
class Client:
    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.next_id = 0

    def call(self, tool: str, arguments: dict) -> tuple[float, dict | None, str]:
        """One tools/call: (seconds, the JSON-RPC `result` or None, why it is None)."""
        self.next_id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
                           "params": {"name": tool, "arguments": arguments}}).encode()
        started = time.perf_counter()
        try:
            self.conn.request("POST", "/mcp", body, HEADERS)
            response = self.conn.getresponse()
            data = response.read()
        except OSError as e:
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            return time.perf_counter() - started, None, repr(e)
        elapsed = time.perf_counter() - started
        if response.getheader("connection", "").lower() == "close":
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        if response.status != 200:
            return elapsed, None, f"HTTP {response.status}: {data[:200]!r}"
        try:
            answer = parse_answer(response.getheader("content-type", ""), data, self.next_id)
        except ValueError as e:
            return elapsed, None, str(e)
        if "error" in answer:
            return elapsed, None, f"JSON-RPC error: {json.dumps(answer['error'])[:200]}"
        result = answer.get("result")
        if not isinstance(result, dict):
            return elapsed, None, "no result"
        return elapsed, result, ""


def parse_answer(content_type: str, data: bytes, want_id: int) -> dict:
    """The JSON-RPC answer from a JSON body or an SSE stream (the message with our id)."""
    text = data.decode("utf-8", errors="replace")
    if "text/event-stream" not in content_type.lower():
        try:
            return json.loads(text)
        except ValueError:
            raise ValueError(f"not JSON: {text[:200]!r}") from None
    for event in text.replace("\r\n", "\n").split("\n\n"):
        payload = "\n".join(line[5:].lstrip(" ") for line in event.split("\n") if line.startswith("data:"))
        if not payload:
            continue
        try:
            message = json.loads(payload)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("id") == want_id:
            return message
    raise ValueError(f"no answer with id {want_id} in the event stream: {text[:200]!r}")


def result_text(result: dict) -> str:
    return " ".join(c.get("text", "") for c in result.get("content", []) if isinstance(c, dict))


def check_fanout(result: dict | None, why: str, aliases: list[str]) -> tuple[str, list[dict]]:
    """'' when the fan-out answer holds one "ok" entry per alias, else what is wrong."""
    if result is None:
        return why, []
    if result.get("isError"):
        return "isError: " + result_text(result)[:200], []
    entries = (result.get("structuredContent") or {}).get("environments")
    if len(aliases) == 1 and entries is None:
        # "*" that comes to one environment is answered in that environment's own shape.
        return "", []
    if not isinstance(entries, list):
        return f"no structuredContent.environments: {json.dumps(result)[:200]}", []
    got = sorted(e.get("environment", "?") for e in entries)
    if got != sorted(aliases):
        return f"entries for {got}, expected {sorted(aliases)}", entries
    bad = [f"{e.get('environment')}: {e.get('status')} {str(e.get('error', ''))[:120]}"
           for e in entries if e.get("status") != "ok"]
    if bad:
        return "not ok: " + "; ".join(bad), entries
    return "", entries


def check_single(result: dict | None, why: str) -> str:
    if result is None:
        return why
    if result.get("isError"):
        return "isError: " + result_text(result)[:200]
    return ""


# ------------------------------------------------------------------------------------------ runs
def latencies_for(k: int) -> list[int]:
    if k == 1:
        return [SLOWEST_MS]
    return [round(20 + (SLOWEST_MS - 20) * (i - 1) / (k - 1)) for i in range(1, k + 1)]


def start_tenants(binary: str, latencies: list[int]) -> tuple[list[subprocess.Popen], dict]:
    procs, environments = [], {}
    for i, latency in enumerate(latencies, start=1):
        proc, entry = start_sandbox(binary, i, latency)
        procs.append(proc)
        environments[f"env{i}"] = entry
    return procs, environments


def ms_stats(seconds: list[float]) -> dict:
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "p50": percentile(ms, 50), "p95": percentile(ms, 95),
            "max": max(ms) if ms else float("nan")}


def run_count(binary: str, k: int, tool: str, calls: int) -> dict:
    latencies = latencies_for(k)
    tenants, environments = start_tenants(binary, latencies)
    aliases = list(environments)
    server, port, log = start_server(binary, environments, {})
    try:
        client = Client(port)
        arguments = TOOL_ARGUMENTS[tool]
        for _ in range(WARMUP):
            client.call(tool, {**arguments, "environment": "*"})
            client.call(tool, {**arguments, "environment": f"env{k}"})
        fan, fan_failures, fan_elapsed = [], [], []
        for _ in range(calls):
            elapsed, result, why = client.call(tool, {**arguments, "environment": "*"})
            problem, entries = check_fanout(result, why, aliases)
            fan.append(elapsed)
            if problem:
                fan_failures.append(problem)
            for e in entries:
                if e.get("environment") == f"env{k}" and isinstance(e.get("elapsedMs"), (int, float)):
                    fan_elapsed.append(e["elapsedMs"] / 1000)
        alone, alone_failures = [], []
        for _ in range(calls):
            elapsed, result, why = client.call(tool, {**arguments, "environment": f"env{k}"})
            alone.append(elapsed)
            problem = check_single(result, why)
            if problem:
                alone_failures.append(problem)
    finally:
        stop(server)
        for proc in tenants:
            stop(proc)
    fan_s, alone_s = ms_stats(fan), ms_stats(alone)
    overhead = fan_s["p50"] - alone_s["p50"]
    return {
        "k": k, "latencies_ms": latencies, "tool": tool, "calls": calls,
        "fanout_ms": fan_s, "slowest_alone_ms": alone_s,
        "slowest_part_in_fanout_ms": ms_stats(fan_elapsed) if fan_elapsed else None,
        "overhead_ms": overhead, "overhead_pct": 100 * overhead / alone_s["p50"] if alone_s["p50"] else float("nan"),
        "fanout_failures": fan_failures, "alone_failures": alone_failures, "server_log": log,
    }


def run_late(binary: str, tool: str) -> dict:
    latencies = [20, 110, LATE_MS]
    tenants, environments = start_tenants(binary, latencies)
    server, port, log = start_server(binary, environments,
                                     {"MCP_TOOL_TIMEOUT_SECONDS": str(LATE_TIMEOUT_S)})
    times, failures, late_error = [], [], ""
    try:
        client = Client(port)
        arguments = {**TOOL_ARGUMENTS[tool], "environment": "*"}
        client.call(tool, arguments)  # warm-up: the two fast tenants' first connections
        for _ in range(LATE_CALLS):
            elapsed, result, why = client.call(tool, arguments)
            times.append(elapsed)
            problem, entries = check_fanout(result, why, list(environments))
            status = {e.get("environment"): e.get("status") for e in entries}
            if elapsed >= LATE_TIMEOUT_S:
                failures.append(f"answered after {elapsed:.2f} s, not within {LATE_TIMEOUT_S} s")
            if status != {"env1": "ok", "env2": "ok", "env3": "error"}:
                failures.append(f"expected env1/env2 ok and env3 error, got {status or problem}")
            for e in entries:
                if e.get("environment") == "env3" and e.get("status") == "error" and not late_error:
                    late_error = str(e.get("error", ""))[:200]
    finally:
        stop(server)
        for proc in tenants:
            stop(proc)
    return {"latencies_ms": latencies, "tool": tool, "timeout_s": LATE_TIMEOUT_S, "calls": LATE_CALLS,
            "answer_ms": ms_stats(times), "failures": failures, "late_error": late_error, "server_log": log}


# ---------------------------------------------------------------------------------------- report
def table(rows: list[dict], late: dict | None) -> str:
    out = [
        f"| tenants | tenant latencies (ms) | fan-out `*` p50 / p95 / max (ms) | slowest alone p50 / p95 (ms) "
        f"| overhead at p50 | failures |",
        "|---:|---|---|---|---|---:|",
    ]
    for r in rows:
        lat = r["latencies_ms"]
        lat_text = str(lat[0]) if len(lat) == 1 else (", ".join(map(str, lat)) if len(lat) <= 3
                                                        else f"{lat[0]} … {lat[-1]} (step {lat[1] - lat[0]})")
        f, a = r["fanout_ms"], r["slowest_alone_ms"]
        out.append(f"| {r['k']} | {lat_text} | {f['p50']:.1f} / {f['p95']:.1f} / {f['max']:.1f} "
                   f"| {a['p50']:.1f} / {a['p95']:.1f} | {r['overhead_ms']:+.1f} ms ({r['overhead_pct']:+.1f} %) "
                   f"| {len(r['fanout_failures']) + len(r['alone_failures'])} |")
    if late:
        a = late["answer_ms"]
        out += [
            "",
            f"| one tenant past the deadline | answer p50 / max (ms) | entries | failures |",
            "|---|---|---|---:|",
            f"| 3 tenants at {', '.join(map(str, late['latencies_ms']))} ms, "
            f"MCP_TOOL_TIMEOUT_SECONDS={late['timeout_s']}, {late['calls']} calls | {a['p50']:.1f} / {a['max']:.1f} "
            f"| env1 ok, env2 ok, env3 error | {len(late['failures'])} |",
            "",
            f"env3's error: \"{late['late_error']}\"",
        ]
    return "\n".join(out)


def default_bin() -> str:
    release = "target/release/dynatrace-mcp"
    return release if os.path.exists(release) else "target/debug/dynatrace-mcp"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=default_bin())
    parser.add_argument("--counts", default="1,3,10", help="numbers of environments, comma-separated (1..100)")
    parser.add_argument("--calls", type=int, default=30, help="measured calls per configuration")
    parser.add_argument("--tool", default="list_problems", choices=sorted(TOOL_ARGUMENTS))
    parser.add_argument("--json-out", metavar="PATH")
    parser.add_argument("--skip-late", action="store_true", help="skip the run with a tenant past the deadline")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",") if c.strip()]
    if not counts or any(not 1 <= c <= 100 for c in counts):
        parser.error("--counts: whole numbers between 1 and 100")
    if not os.path.exists(args.bin):
        parser.error(f"--bin {args.bin}: no such file")
    newer = [os.path.join(d, n) for d, _, names in os.walk("src") for n in names
             if os.path.getmtime(os.path.join(d, n)) > os.path.getmtime(args.bin)]
    if newer:
        print(f"warning: {args.bin} is older than {len(newer)} file(s) under src/ (e.g. {newer[0]}); "
              "rebuild it to measure the current code", file=sys.stderr)

    # SIGTERM and SIGHUP like Ctrl-C: unwind through the finally blocks, so the children are stopped.
    def interrupt(*_):
        raise KeyboardInterrupt()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)
    load_before = loadavg()
    rows: list[dict] = []
    late = None
    try:
        for k in counts:
            print(f"K={k}: {args.calls} calls of {args.tool} with environment \"*\", then with env{k} alone …",
                  file=sys.stderr, flush=True)
            rows.append(run_count(args.bin, k, args.tool, args.calls))
        if not args.skip_late:
            print(f"K=3 with env3 at {LATE_MS} ms and MCP_TOOL_TIMEOUT_SECONDS={LATE_TIMEOUT_S}: "
                  f"{LATE_CALLS} calls …", file=sys.stderr, flush=True)
            late = run_late(args.bin, args.tool)
    except KeyboardInterrupt:
        print("interrupted; stopping the child processes", file=sys.stderr)
        return 130
    finally:
        stop_all()
    load_after = loadavg()

    machine = (f"Machine: {cores()} cores ({platform.machine()}, Linux {platform.release()}), "
               f"binary {args.bin}, tool {args.tool}, {args.calls} calls per row. "
               f"Load average before: {load_before}, after: {load_after}.")
    print()
    print(table(rows, late))
    print()
    print(machine)

    failed = False
    for r in rows:
        for name, problems in (("fan-out", r["fanout_failures"]), (f"env{r['k']} alone", r["alone_failures"])):
            if problems:
                failed = True
                print(f"FAILED K={r['k']} {name}: {len(problems)} of {r['calls']} calls; first: {problems[0]}",
                      file=sys.stderr)
    if late and late["failures"]:
        failed = True
        print(f"FAILED past the deadline: {len(late['failures'])} problems; first: {late['failures'][0]}",
              file=sys.stderr)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"machine": machine, "cores": cores(), "load_before": load_before, "load_after": load_after,
                       "bin": args.bin, "tool": args.tool, "rows": rows, "past_deadline": late,
                       "failed": failed}, f, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
