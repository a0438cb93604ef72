#!/usr/bin/env python3
"""Turns the JSON files bench/run.sh wrote into the markdown tables it prints.

    python3 bench/report.py bench/results/<stamp>      (bench/run.sh calls it)
"""
import json
import statistics
import sys
from pathlib import Path

OUT = Path(sys.argv[1])


def load(name):
    path = OUT / name
    return json.loads(path.read_text()) if path.exists() else None


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


def ms(x, digits=2):
    return f"{x:.{digits}f} ms"


def human(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


meta = load("meta.json")
sizes = load("sizes.json")
mem = load("memory.json")
lines = []
p = lines.append

p(f"## dynatrace-mcp benchmark — {meta['date']}, commit {meta['commit']}"
  + (f" (+{meta['src_files_changed_since_commit']} uncommitted changes in src/Cargo)"
     if meta["src_files_changed_since_commit"] else ""))
p("")
p(f"Machine: {meta['nproc']} × {meta['cpu']}, Linux {meta['kernel']}, {meta['rustc']}, oha {meta['oha']}. "
  f"Load average before measuring: **{meta['load_before']}** (CPU busy {meta['cpu_busy_before_pct']} %), "
  f"after: {meta['load_after']}. Other builds seen while measuring: "
  f"{meta['foreign_builds_seen'].strip() or 'none'}."
  + (" **--quick run: rough figures.**" if meta["quick"] else "")
  + ("" if meta["waited_for_quiet"] else " **--no-wait: not checked for a quiet machine.**"))
p("")

# ------------------------------------------------------------------------------------ figures
p("| measurement | figure |")
p("|---|---|")
cold = {m: load(f"cold-{m}.json") for m in ("true", "version", "stdio", "http")}
n = cold["stdio"]["tools_list_ms"]["n"]


def mp(s):
    return f"median {s['median']:.2f} ms, p90 {s['p90']:.2f} ms (min {s['min']:.2f}, max {s['max']:.2f})"


p(f"| exec floor of this machine: spawn → exit of `/bin/true` (n={n}) | {mp(cold['true']['tools_list_ms'])} |")
p(f"| exec floor of the binary: spawn → exit of `dynatrace-mcp --version` (n={n}) | {mp(cold['version']['tools_list_ms'])} |")
p(f"| cold start stdio: spawn → `initialize` answer (n={n}) | {mp(cold['stdio']['first_answer_ms'])} |")
p(f"| **cold start stdio: spawn → `tools/list` answer** (n={n}) | {mp(cold['stdio']['tools_list_ms'])} |")
p(f"| cold start HTTP: spawn → port accepts (n={n}) | {mp(cold['http']['first_answer_ms'])} |")
p(f"| **cold start HTTP: spawn → `tools/list` answer** (n={n}) | {mp(cold['http']['tools_list_ms'])} |")
p(f"| **RSS idle** (`serve` started, no request yet) | {mib(mem['rss_idle_kib'])} "
  f"({mib(mem['rss_anon_idle_kib'])} anonymous, {mib(mem['rss_file_idle_kib'])} file-backed: code and shared libraries) |")
musl = load("musl-idle.json")
if musl:
    p(f"| **RSS idle, static musl binary** (what the image and the x86_64 Lambda zip ship; {human(musl['binary_bytes'])}) | "
      f"{mib(musl['rss_idle_kib'])} ({mib(musl['rss_anon_idle_kib'])} anonymous, {mib(musl['rss_file_idle_kib'])} file-backed) |")
p(f"| RSS after 500 `tools/list` | {mib(mem['rss_after_500_list_kib'])} |")
p(f"| **RSS after {mem['dql_calls']:,} `execute_dql`** (after 20,000+ `tools/list`) | {mib(mem['rss_after_dql_kib'])} |")
p(f"| **peak RSS (VmHWM)** after those calls / after the whole load phase (c=32) | "
  f"{mib(mem['hwm_after_dql_kib'])} / {mib(mem['hwm_end_kib'])} |")
cpu_list = load("cpu-cpu-list.json")
cpu_dql = load("cpu-cpu-dql.json")


def cpu(c):
    kernel = ""
    if "sys_ticks" in c and c["ticks"]:
        kernel = f", {100 * c['sys_ticks'] / c['ticks']:.0f} % of it in the kernel"
    return (f"{c['cpu_ms_per_call']:.4f} ms (utime+stime over {c['calls']:,} calls, {c['ticks']} ticks{kernel}); "
            f"schedstat {c['sched_cpu_ms_per_call']:.4f} ms")


p(f"| **server CPU per `tools/list`** (sequential, keep-alive) | {cpu(cpu_list)} |")
p(f"| **server CPU per `execute_dql`** (`fetch logs \\| limit 10`, sequential) | {cpu(cpu_dql)} |")
cpu_health = load("cpu-cpu-health.json")
cpu_ping = load("cpu-cpu-ping.json")
if cpu_health:
    p(f"| floor: server CPU per `GET /health` (hyper + axum + tokio, no MCP) | {cpu(cpu_health)} |")
    p(f"| floor: server CPU per JSON-RPC `ping` (the MCP path, no tool) | {cpu(cpu_ping)} |")
p(f"| answer sizes | `tools/list` {human(mem['tools_list_answer_bytes'])}, `execute_dql` 10 records {human(mem['execute_dql_answer_bytes'])} |")
bin_b = sizes["binary_bytes"]
if sizes.get("binary_path"):
    p(f"| binary measured | `{sizes['binary_path']}` |")
p(f"| **binary size** (release, stripped as built) | {bin_b / 1048576:.1f} MiB ({bin_b:,} bytes; {sizes['binary_file']}) |")
img = sizes.get("image")
if img:
    p(f"| **container image** `{img['ls'].split('|')[0]}` | {img['ls'].split('|')[1]} ({img['bytes']:,} bytes, podman) |")
else:
    p("| **container image** | not built on this machine (no `localhost/dynatrace-mcp` in `podman image ls`) |")
p("")


# ------------------------------------------------------------------------------------ load
def oha(name):
    d = load(f"oha-{name}.json")
    if d is None:
        return None
    s = d["summary"]
    lp = d["latencyPercentiles"]
    total = sum(d["statusCodeDistribution"].values())
    return {
        "rps": s["requestsPerSec"],
        "p50": lp["p50"] * 1000,
        "p99": lp["p99"] * 1000,
        "n": total,
        "server_cpu_ms": d["bench"]["server_cpu_s"] * 1000 / total if total else 0,
        "server_cpu_pct": 100 * d["bench"]["server_cpu_s"] / s["total"],
        "sandbox_cpu_pct": 100 * d["bench"]["sandbox_cpu_s"] / s["total"],
    }


p("Throughput and latency (oha, closed loop, HTTP/1.1 keep-alive; "
  f"{meta['duration_s']} s per run at 0 ms, {meta['slow_duration_s']} s at 50 ms):")
p("")
p("| target | body | tenant latency | conc. | req/s | p50 | p99 | p99 added by the server | server CPU/req | server CPU | tenant CPU |")
p("|---|---|---|---|---|---|---|---|---|---|---|")
rows = {}
h = oha("health-c32")
if h:
    p(f"| server | `GET /health` (floor) | – | 32 | {h['rps']:,.0f} | {ms(h['p50'], 3)} | {ms(h['p99'], 3)} | – | "
      f"{h['server_cpu_ms']:.3f} ms | {h['server_cpu_pct']:.0f} % | – |")
for c in (1, 32):
    r = oha(f"list-c{c}")
    rows[("list", c)] = r
    p(f"| server | `tools/list` | – | {c} | {r['rps']:,.0f} | {ms(r['p50'], 3)} | {ms(r['p99'], 3)} | – | "
      f"{r['server_cpu_ms']:.3f} ms | {r['server_cpu_pct']:.0f} % | – |")
for lat in (0, 50):
    for c in (1, 32):
        g = oha(f"grail-l{lat}-c{c}")
        d = oha(f"dql-l{lat}-c{c}")
        rows[("grail", lat, c)] = g
        rows[("dql", lat, c)] = d
        p(f"| tenant direct | `query:execute` | {lat} ms | {c} | {g['rps']:,.0f} | {ms(g['p50'], 3)} | "
          f"{ms(g['p99'], 3)} | – | – | – | {g['sandbox_cpu_pct']:.0f} % |")
        p(f"| server | `execute_dql` | {lat} ms | {c} | {d['rps']:,.0f} | {ms(d['p50'], 3)} | "
          f"{ms(d['p99'], 3)} | **{ms(d['p99'] - g['p99'], 3)}** | {d['server_cpu_ms']:.3f} ms | "
          f"{d['server_cpu_pct']:.0f} % | {d['sandbox_cpu_pct']:.0f} % |")
rate = [f for f in OUT.glob("oha-dql-l50-c32-q*.json")]
if rate:
    q = rate[0].name[len("oha-dql-l50-c32-q"):-len(".json")]
    g = oha(f"grail-l50-c32-q{q}")
    d = oha(f"dql-l50-c32-q{q}")
    rows[("grail-open",)] = g
    rows[("dql-open",)] = d
    p(f"| tenant direct, open loop {q} req/s | `query:execute` | 50 ms | 32 | {g['rps']:,.0f} | {ms(g['p50'], 3)} | "
      f"{ms(g['p99'], 3)} | – | – | – | {g['sandbox_cpu_pct']:.0f} % |")
    p(f"| server, open loop {q} req/s | `execute_dql` | 50 ms | 32 | {d['rps']:,.0f} | {ms(d['p50'], 3)} | "
      f"{ms(d['p99'], 3)} | **{ms(d['p99'] - g['p99'], 3)}** | {d['server_cpu_ms']:.3f} ms | "
      f"{d['server_cpu_pct']:.0f} % | {d['sandbox_cpu_pct']:.0f} % |")
p("")
p("CPU percentages are of one core (200 % = both cores); the load generator uses the rest.")
p("")

# ------------------------------------------------------------------------------------ large
large = {k: load(f"large-{k}.json") for k in ("100-default", "10000-default", "100", "10000")}
large = {k: v for k, v in large.items() if v}
p("A large result (`execute_dql` with `recordLimit` = N and `recordSizeLimitMB` 10, at the default result budget "
  "of 128 KiB and at `MCP_RESULT_MAX_BYTES=5000000`; a fresh server per row, 5 calls each; Grail is asked for "
  "the smaller of recordSizeLimitMB and 60 % of the budget, and \"Grail direct\" makes that same request):")
p("")
p("| query | records Grail returned | records in the answer | answer bytes | Grail answer bytes | "
  "time (median) | Grail direct (median) | RSS before → after | peak RSS (VmHWM) | peak − RSS before |")
p("|---|---|---|---|---|---|---|---|---|---|")
for k, d in large.items():
    t = statistics.median(d["runs_us"]) / 1000
    g = statistics.median(d["grail_direct_runs_us"]) / 1000
    label = f"`fetch logs \\| limit {d['records_asked']}`, budget " + (
        "128 KiB (default)" if d.get("result_budget") == 131072 else f"{d.get('result_budget'):,} B")
    p(f"| {label} | {d['grail_records']:,} | {d['returned_records']:,} | "
      f"{d['response_bytes']:,} | {d['grail_bytes']:,} | {t:.1f} ms | {g:.1f} ms | "
      f"{mib(d['rss_before_kib'])} → {mib(d['rss_after_kib'])} | {mib(d['hwm_after_kib'])} | "
      f"{mib(d['hwm_after_kib'] - d['rss_before_kib'])} |")
p("")

# ------------------------------------------------------------------------------------ lambda
lam = load("lambda.json")
li = lam["invocation_ms"]
p(f"Lambda (the binary under a Runtime API stand-in, API Gateway v2 events; {li['tools_list']['n']} warm "
  "invocations per body, time from queueing the event to the `/response` POST):")
p("")
p("| | figure |")
p("|---|---|")
p(f"| init: spawn → first `/invocation/next` | {lam['init_ms']:.2f} ms |")
p(f"| first invocation: `tools/list` / `execute_dql` (incl. the OAuth token) | "
  f"{lam['first_invocation_ms']['tools_list']:.2f} ms / {lam['first_invocation_ms']['execute_dql']:.2f} ms |")
for body in ("tools_list", "execute_dql"):
    s = li[body]
    name = body.replace("_", "/", 1) if body == "tools_list" else body
    p(f"| **per invocation `{name}`** | median {s['median']:.3f} ms, p90 {s['p90']:.3f} ms, p99 {s['p99']:.3f} ms |")
p("")

# ------------------------------------------------------------------------------------ targets
p("Targets of issue 5:")
p("")
p("| target | measured | |")
p("|---|---|---|")


def verdict(ok):
    return "met" if ok else "**missed**"


cs = cold["stdio"]["tools_list_ms"]["median"]
p(f"| ≤ 5 ms from spawn to the first answer over stdio | {cs:.2f} ms median to the `tools/list` answer "
  f"({cold['stdio']['first_answer_ms']['median']:.2f} ms to `initialize`) | {verdict(cs <= 5)} |")
idle = mem["rss_idle_kib"] / 1024
idle_text = f"{idle:.1f} MiB (glibc build)"
if musl:
    idle_musl = musl["rss_idle_kib"] / 1024
    idle_text += f", {idle_musl:.1f} MiB (static musl build, as shipped)"
    idle = min(idle, idle_musl)
p(f"| ≤ 6 MiB idle RSS | {idle_text} | {verdict(idle <= 6)} |")
c1 = cpu_list["cpu_ms_per_call"]
p(f"| ≤ 0.03 ms CPU per `tools/list` | {c1:.4f} ms | {verdict(c1 <= 0.03)} |")
c2 = cpu_dql["cpu_ms_per_call"]
p(f"| ≤ 0.2 ms CPU per `execute_dql` | {c2:.4f} ms | {verdict(c2 <= 0.2)} |")
r32 = rows[("list", 32)]["rps"]
p(f"| ≥ 20,000 `tools/list` req/s at concurrency 32 | {r32:,.0f} req/s | {verdict(r32 >= 20000)} |")
a0 = rows[("dql", 0, 32)]["p99"] - rows[("grail", 0, 32)]["p99"]
a50 = rows[("dql", 50, 32)]["p99"] - rows[("grail", 50, 32)]["p99"]
extra = ""
if ("dql-open",) in rows:
    ao = rows[("dql-open",)]["p99"] - rows[("grail-open",)]["p99"]
    extra = f"; open loop at 50 ms: {ao:.2f} ms ({verdict(ao <= 1)})"
p(f"| ≤ 1 ms p99 added to the upstream's latency at concurrency 32 | closed loop: {a50:.2f} ms with the tenant at 50 ms, "
  f"{a0:.2f} ms at 0 ms{extra} | {verdict(a50 <= 1)} at 50 ms, {verdict(a0 <= 1)} at 0 ms (closed loop) |")
for suffix, what in (("-default", "default budget (128 KiB)"), ("", "budget 5,000,000 B")):
    h100 = large["100" + suffix]["hwm_after_kib"]
    h10k = large["10000" + suffix]["hwm_after_kib"]
    d100 = h100 - large["100" + suffix]["rss_before_kib"]
    d10k = h10k - large["10000" + suffix]["rss_before_kib"]
    p(f"| a 10,000-record query costs ≤ 2× the memory of a 100-record one ({what}) | peak RSS {mib(h10k)} vs "
      f"{mib(h100)} = {h10k / h100:.2f}×; above the warm RSS: {mib(d10k)} vs {mib(d100)} | "
      f"{verdict(h10k <= 2 * h100)} (process peak) |")
p("")
p(f"Total time of bench/run.sh: {meta['seconds']} s, of which {meta.get('measure_seconds', meta['seconds'])} s "
  "measuring (the rest: no-op builds and waiting for a quiet machine).")
print("\n".join(lines))
