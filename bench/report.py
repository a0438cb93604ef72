#!/usr/bin/env python3
"""Turns the JSON files bench/run.sh wrote into the markdown tables it prints.

    python3 bench/report.py bench/results/<stamp>      (bench/run.sh calls it)
"""
import json
import statistics
import sys
from pathlib import Path

OUT = Path(sys.argv[1])
MiB = 1048576


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


def size(n):
    return f"{n / MiB:.2f} MiB ({n:,} bytes)"


def not_measured(why):
    return f"not measured ({why})"


meta = load("meta.json")
sizes = load("sizes.json")
mem = load("memory.json")
budget_default = meta.get("default_result_budget", 61440)
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


# ------------------------------------------------------------------------------------ oha runs
def oha(name):
    d = load(f"oha-{name}.json")
    if d is None:
        return None
    s = d["summary"]
    lp = d["latencyPercentiles"]
    total = sum(d["statusCodeDistribution"].values())
    b = d.get("bench", {})
    r = {
        "rps": s["requestsPerSec"],
        "p50": lp["p50"] * 1000,
        "p99": lp["p99"] * 1000,
        "n": total,
        "server_cpu_ms": b.get("server_cpu_s", 0) * 1000 / total if total else 0,
        "server_cpu_pct": 100 * b.get("server_cpu_s", 0) / s["total"],
        "sandbox_cpu_pct": 100 * b.get("sandbox_cpu_s", 0) / s["total"],
        "conns": b.get("tenant_connections"),
        "calls_with_warmup": b.get("calls_with_warmup"),
    }
    r["conns_per_1000"] = (1000 * r["conns"] / r["calls_with_warmup"]
                           if r["conns"] is not None and r["calls_with_warmup"] else None)
    return r


# ------------------------------------------------------------------------------------ figures
p("| measurement | figure |")
p("|---|---|")
cold = {m: load(f"cold-{m}.json") for m in ("true", "version", "stdio", "http")}
cpu_list = load("cpu-cpu-list.json")
cpu_dql = load("cpu-cpu-dql.json")
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
    if "rss_sustained_kib" in musl:
        p(f"| **RSS after {musl['sustained_s']} s of sustained load, static musl binary** (the same load as below, "
          f"{musl['sustained_calls']:,} calls) | {mib(musl['rss_sustained_kib'])} ({mib(musl['rss_anon_sustained_kib'])} "
          f"anonymous); peak (VmHWM) {mib(musl['hwm_sustained_kib'])} |")
else:
    p("| **RSS idle, static musl binary** | not measured (no static musl binary: scripts/check-aws.sh builds it) |")
p(f"| RSS after 500 `tools/list` | {mib(mem['rss_after_500_list_kib'])} |")
p(f"| **RSS after {mem['dql_calls']:,} `execute_dql`** (after {cpu_list['calls']:,}+ `tools/list`) | {mib(mem['rss_after_dql_kib'])} |")
p(f"| **peak RSS (VmHWM)** after those calls / after the whole load phase (c=32) | "
  f"{mib(mem['hwm_after_dql_kib'])} / {mib(mem['hwm_end_kib'])} |")
p(f"| RSS at the end of the load phase | {mib(mem['rss_end_kib'])} |")
sus = load("sustained.json")
if sus:
    p(f"| **RSS after {sus['seconds']} s of sustained load** (`tools/list` c=16 and `execute_dql` c=16 at once, "
      f"{sus['tools_list']['calls']:,} + {sus['execute_dql']['calls']:,} calls, "
      f"{sus['tools_list']['rps']:,.0f} + {sus['execute_dql']['rps']:,.0f} req/s) | "
      f"{mib(sus['rss_kib'])} ({mib(sus['rss_anon_kib'])} anonymous, {mib(sus['rss_file_kib'])} file-backed, "
      f"{sus['threads']} threads; {mib(sus['rss_before_kib'])} before it); peak (VmHWM) {mib(sus['hwm_kib'])} |")


def cpu(c):
    kernel = ""
    if "sys_ticks" in c and c["ticks"]:
        kernel = f", {100 * c['sys_ticks'] / c['ticks']:.0f} % of it in the kernel"
    return (f"{c['cpu_ms_per_call']:.4f} ms (utime+stime over {c['calls']:,} calls, {c['ticks']} ticks{kernel}); "
            f"schedstat {c['sched_cpu_ms_per_call']:.4f} ms")


p(f"| **server CPU per `tools/list`** (sequential, keep-alive) | {cpu(cpu_list)} |")
list_c = {c: oha(f"list-c{c}") for c in (1, 32)}
if all(list_c.values()):
    p("| **server CPU per `tools/list`, HTTP under load** (oha, c=1 / c=32; server CPU during the run ÷ answers) | "
      f"{list_c[1]['server_cpu_ms']:.4f} ms / {list_c[32]['server_cpu_ms']:.4f} ms "
      f"({list_c[1]['rps']:,.0f} / {list_c[32]['rps']:,.0f} req/s) |")
p(f"| **server CPU per `execute_dql`** (`fetch logs \\| limit 10`, sequential) | {cpu(cpu_dql)} |")
cpu_health = load("cpu-cpu-health.json")
cpu_ping = load("cpu-cpu-ping.json")
if cpu_health:
    p(f"| floor: server CPU per `GET /health` (hyper + axum + tokio, no MCP) | {cpu(cpu_health)} |")
    p(f"| floor: server CPU per JSON-RPC `ping` (the MCP path, no tool) | {cpu(cpu_ping)} |")
conn_runs = {lat: oha(f"dql-l{lat}-c32") for lat in (0, 50)}
if all(r and r["conns_per_1000"] is not None for r in conn_runs.values()):
    p("| **new upstream connections** of the server, `execute_dql` at c=32 (tenant accepts during warm-up + run) | "
      + "; ".join(f"tenant at {lat} ms: {r['conns']} in {r['calls_with_warmup']:,} calls = "
                  f"{r['conns_per_1000']:.2f} per 1,000" for lat, r in conn_runs.items()) + " |")
p(f"| answer sizes | `tools/list` {human(mem['tools_list_answer_bytes'])}, `execute_dql` 10 records {human(mem['execute_dql_answer_bytes'])} |")
if sizes.get("binary_path"):
    p(f"| binary measured | `{sizes['binary_path']}`"
      + (" (DTMCP_BENCH_BIN)" if sizes.get("binary_from_env") else
         " (`cargo build --release --locked --no-default-features --bin dynatrace-mcp`: what ships, no simulated tenant)")
      + " |")
bin_b = sizes["binary_bytes"]
p(f"| **binary size** (release, stripped as built) | {size(bin_b)}; {sizes['binary_file']} |")
smusl = sizes.get("musl")
if smusl:
    p(f"| **static musl binary** `{smusl['path']}` (the image ships it; built {smusl['built']}) | {size(smusl['bytes'])} |")
else:
    p("| **static musl binary** | not measured (none at `<target>/lambda-musl/dynatrace-mcp/bootstrap`: scripts/check-aws.sh builds it) |")
szip = sizes.get("lambda_zip")
if szip:
    p(f"| **Lambda zip** `{szip['path']}` (built {szip['built']}) | {szip['bytes'] / 1e6:.2f} MB ({szip['bytes']:,} bytes); "
      f"`bootstrap` ({szip['bootstrap_arch']}) {size(szip['bootstrap_bytes'])} unpacked |")
else:
    p("| **Lambda zip** | not measured (none at `<target>/lambda/dynatrace-mcp/bootstrap.zip`: scripts/check-aws.sh builds it) |")
img = sizes.get("image")
if img:
    how = ("built by the benchmark from the static musl binary, as scripts/check-aws.sh does, then removed"
           if img.get("built_by_bench") else "podman")
    p(f"| **container image** `{img['ls'].split('|')[0]}` | {img['ls'].split('|')[1]} ({img['bytes']:,} bytes; {how}) |")
else:
    p(f"| **container image** | not measured ({sizes.get('image_not_measured') or 'no `localhost/dynatrace-mcp` in `podman image ls`'}) |")
if smusl or szip or img:
    p("| (note) | scripts/check-aws.sh builds the musl binary, the image and the zip with opt-level 0, no LTO and 16 codegen "
      "units unless `CHECK_AWS_FULL_RELEASE=1`: their sizes are those of the shipped profile only with that setting |")
p("")

# ------------------------------------------------------------------------------------ crate sizes
bloat = load("bloat.json")
if bloat and bloat.get("crates"):
    text = bloat.get("text-section-size") or 0
    crates = bloat["crates"]
    p(f"Crate sizes (`cargo bloat --crates` of the shipped build, unstripped; file {size(bloat.get('file-size', 0))}, "
      f".text {size(text)}):")
    p("")
    p("| crate | bytes of .text | % of .text |")
    p("|---|---:|---:|")
    for c in crates:
        p(f"| {c['name']} | {c['size']:,} | {100 * c['size'] / text:.1f} % |" if text else f"| {c['name']} | {c['size']:,} | – |")
    rest = text - sum(c["size"] for c in crates)
    if text and rest > 0:
        p(f"| (the other crates) | {rest:,} | {100 * rest / text:.1f} % |")
    p("")
else:
    why = (bloat or {}).get("not_measured", "no bloat.json")
    p(f"Crate sizes: {not_measured(why)}.")
    p("")

# ------------------------------------------------------------------------------------ load
p("Throughput and latency (oha, closed loop, HTTP/1.1 keep-alive; "
  f"{meta['duration_s']} s per run at 0 ms, {meta['slow_duration_s']} s at 50 ms):")
p("")
p("| target | body | tenant latency | conc. | req/s | p50 | p99 | p99 added by the server | server CPU/req | server CPU | tenant CPU | new upstream conn. per 1,000 calls |")
p("|---|---|---|---|---|---|---|---|---|---|---|---|")
rows = {}


def conns(r):
    return f"{r['conns_per_1000']:.2f} ({r['conns']})" if r.get("conns_per_1000") is not None else "–"


h = oha("health-c32")
if h:
    p(f"| server | `GET /health` (floor) | – | 32 | {h['rps']:,.0f} | {ms(h['p50'], 3)} | {ms(h['p99'], 3)} | – | "
      f"{h['server_cpu_ms']:.3f} ms | {h['server_cpu_pct']:.0f} % | – | – |")
for c in (1, 32):
    r = oha(f"list-c{c}")
    rows[("list", c)] = r
    p(f"| server | `tools/list` | – | {c} | {r['rps']:,.0f} | {ms(r['p50'], 3)} | {ms(r['p99'], 3)} | – | "
      f"{r['server_cpu_ms']:.3f} ms | {r['server_cpu_pct']:.0f} % | – | – |")
for lat in (0, 50):
    for c in (1, 32):
        g = oha(f"grail-l{lat}-c{c}")
        d = oha(f"dql-l{lat}-c{c}")
        rows[("grail", lat, c)] = g
        rows[("dql", lat, c)] = d
        p(f"| tenant direct | `query:execute` | {lat} ms | {c} | {g['rps']:,.0f} | {ms(g['p50'], 3)} | "
          f"{ms(g['p99'], 3)} | – | – | – | {g['sandbox_cpu_pct']:.0f} % | – |")
        p(f"| server | `execute_dql` | {lat} ms | {c} | {d['rps']:,.0f} | {ms(d['p50'], 3)} | "
          f"{ms(d['p99'], 3)} | **{ms(d['p99'] - g['p99'], 3)}** | {d['server_cpu_ms']:.3f} ms | "
          f"{d['server_cpu_pct']:.0f} % | {d['sandbox_cpu_pct']:.0f} % | {conns(d)} |")
rate = [f for f in OUT.glob("oha-dql-l50-c32-q*.json")]
if rate:
    q = rate[0].name[len("oha-dql-l50-c32-q"):-len(".json")]
    g = oha(f"grail-l50-c32-q{q}")
    d = oha(f"dql-l50-c32-q{q}")
    rows[("grail-open",)] = g
    rows[("dql-open",)] = d
    p(f"| tenant direct, open loop {q} req/s | `query:execute` | 50 ms | 32 | {g['rps']:,.0f} | {ms(g['p50'], 3)} | "
      f"{ms(g['p99'], 3)} | – | – | – | {g['sandbox_cpu_pct']:.0f} % | – |")
    p(f"| server, open loop {q} req/s | `execute_dql` | 50 ms | 32 | {d['rps']:,.0f} | {ms(d['p50'], 3)} | "
      f"{ms(d['p99'], 3)} | **{ms(d['p99'] - g['p99'], 3)}** | {d['server_cpu_ms']:.3f} ms | "
      f"{d['server_cpu_pct']:.0f} % | {d['sandbox_cpu_pct']:.0f} % | {conns(d)} |")
p("")
p("CPU percentages are of one core (200 % = both cores); the load generator uses the rest. New upstream "
  "connections: TCP connections the tenant accepted during the run and its 1 s warm-up, per 1,000 answers of both "
  "(in brackets: the count).")
p("")

# ------------------------------------------------------------------------------------ large
large = {k: load(f"large-{k}.json") for k in ("100-default", "10000-default", "10000-fields", "100", "10000")}
large = {k: v for k, v in large.items() if v}
p("A large result (`execute_dql` with `recordLimit` = N and `recordSizeLimitMB` 10, at the default result budget "
  f"of {human(budget_default)} and at `MCP_RESULT_MAX_BYTES=5000000`; a fresh server per row, 5 calls each; without "
  "`fields` Grail is asked for the smaller of recordSizeLimitMB and 60 % of the budget (at least 64 KiB), with "
  "`fields` (every field of a log record) for recordSizeLimitMB; \"Grail direct\" makes that same request):")
p("")
p("| query | Grail asked for | records Grail returned | records in the answer | answer bytes | Grail answer bytes | "
  "time (median) | Grail direct (median) | RSS before → after | peak RSS (VmHWM) | peak − RSS before |")
p("|---|---|---|---|---|---|---|---|---|---|---|")


def budget_label(d):
    b = d.get("result_budget")
    return f"{human(b)} (default)" if b == budget_default else f"{b:,} B"


for k, d in large.items():
    t = statistics.median(d["runs_us"]) / 1000
    g = statistics.median(d["grail_direct_runs_us"]) / 1000
    label = (f"`fetch logs \\| limit {d['records_asked']}`"
             + (f", `fields`: all {len(d['fields'])}" if d.get("fields") else "")
             + f", budget {budget_label(d)}")
    asked = d.get("grail_max_result_bytes")
    p(f"| {label} | {human(asked) if asked else '–'} | {d['grail_records']:,} | {d['returned_records']:,} | "
      f"{d['response_bytes']:,} | {d['grail_bytes']:,} | {t:.1f} ms | {g:.1f} ms | "
      f"{mib(d['rss_before_kib'])} → {mib(d['rss_after_kib'])} | {mib(d['hwm_after_kib'])} | "
      f"{mib(d['hwm_after_kib'] - d['rss_before_kib'])} |")
p("")

# ------------------------------------------------------------------------------------ lambda
lam = load("lambda.json")
lam_cold = load("lambda-cold.json") or {"not_measured": "no lambda-cold.json"}
li = lam["invocation_ms"]
p(f"Lambda (the binary under a Runtime API stand-in, API Gateway v2 events; {li['tools_list']['n']} warm "
  "invocations per body, time from queueing the event to the `/response` POST; cold starts with the settings in "
  "a local Secrets Manager: a fresh process per start, a `tools/list` event queued at spawn):")
p("")
p("| | figure |")
p("|---|---|")
p(f"| init: spawn → first `/invocation/next` (settings in the environment) | {lam['init_ms']:.2f} ms |")
p(f"| first invocation: `tools/list` / `execute_dql` (incl. the OAuth token) | "
  f"{lam['first_invocation_ms']['tools_list']:.2f} ms / {lam['first_invocation_ms']['execute_dql']:.2f} ms |")
for body in ("tools_list", "execute_dql"):
    s = li[body]
    name = body.replace("_", "/", 1) if body == "tools_list" else body
    p(f"| **per invocation `{name}`** | median {s['median']:.3f} ms, p90 {s['p90']:.3f} ms, p99 {s['p99']:.3f} ms |")
if "init_ms" in lam_cold:
    nc = lam_cold["init_ms"]["n"]
    p(f"| **cold start with Secrets Manager: init** (spawn → first `/invocation/next`, n={nc}) | "
      f"{mp(lam_cold['init_ms'])} |")
    p(f"| **cold start with Secrets Manager: spawn → first answer** (`tools/list` `/response`, n={nc}) | "
      f"{mp(lam_cold['first_answer_ms'])} |")
    logged = lam_cold.get("secret_read_logged_ms") or []
    moto = [u / 1000 for u in lam_cold.get("moto_get_secret_us") or []]
    parts = []
    if logged:
        parts.append(f"the function's own log (`read settings from Secrets Manager`, whole ms): median "
                     f"{statistics.median(logged):.0f} ms, max {max(logged)} ms over {len(logged)} starts")
    if moto:
        parts.append(f"moto's answer to the same `GetSecretValue` (curl): median {statistics.median(moto):.2f} ms")
    if parts:
        p(f"| secret read | {'; '.join(parts)} |")
else:
    p(f"| **cold start with Secrets Manager** | {not_measured(lam_cold['not_measured'])} |")
p("")

# ------------------------------------------------------------------------------ observability
obs_off = load("cpu-cpu-dql-metrics-off.json")
obs_traced = load("cpu-cpu-dql-traced.json")
list_traced = load("cpu-cpu-list-traced.json")
lam_traced = load("lambda-traced.json")
if obs_off:
    p("What the server's own metrics and traces cost (issue 13): sequential calls (c=1) on a fresh server each, "
      "CPU from /proc (utime+stime, less the idle drift), latency as oha sees it. Metrics: one EMF line per tool "
      "call on stdout (the default of `serve`); traces: spans to `tests/otlp/receiver.py` on loopback, batched.")
    p("")
    p("| | CPU per call | p50 latency | p99 latency |")
    p("|---|---|---|---|")

    def obs_row(label, c, name):
        o = oha(name)
        p(f"| {label} | {c['cpu_ms_per_call']:.4f} ms | {ms(o['p50'], 3)} | {ms(o['p99'], 3)} |")

    obs_row("`execute_dql`, metrics off, traces off", obs_off, "cpu-dql-metrics-off")
    obs_row("`execute_dql`, metrics on (the default), traces off", cpu_dql, "cpu-dql")
    if obs_traced:
        obs_row("`execute_dql`, metrics on, traces on", obs_traced, "cpu-dql-traced")
        obs_row("`tools/list`, metrics on, traces off (cached answer)", cpu_list, "cpu-list")
        obs_row("`tools/list`, metrics on, traces on (through rmcp, for its span)", list_traced, "cpu-list-traced")
    if lam_traced:
        for body in ("tools_list", "execute_dql"):
            off, on = li[body], lam_traced["invocation_ms"][body]
            name = "tools/list" if body == "tools_list" else body
            p(f"| Lambda invocation `{name}`: traces off → on (spans flushed before the answer) | – | "
              f"{off['median']:.3f} → {on['median']:.3f} ms | {off['p99']:.3f} → {on['p99']:.3f} ms |")
    if not obs_traced:
        p("| traces | not measured (no OTLP receiver: scripts/test-tools.sh python) | | |")
    p("")
    otlp = load("otlp-serve.json")
    if otlp:
        server_spans = otlp["by_kind"].get("SPAN_KIND_SERVER", 0)
        p(f"The traced server's requests had {otlp['server_spans_expected']:,} SERVER spans; the receiver got "
          f"{server_spans:,} of them ({otlp['spans']:,} spans in all, in {otlp['exports']:,} exports)"
          + ("." if server_spans >= otlp["server_spans_expected"] else
             f": **{otlp['server_spans_expected'] - server_spans:,} dropped** by the SDK's queue "
             "(`OTEL_BSP_MAX_QUEUE_SIZE`, default 2048), which makes the traced CPU figure a little low."))
        p("")

# ------------------------------------------------------------------------------------ targets
p("Targets of issue 12:")
p("")
p("| figure | target | measured | |")
p("|---|---|---|---|")


def verdict(ok):
    return "met" if ok else "**missed**"


def row(figure, target, measured, ok):
    p(f"| {figure} | {target} | {measured} | {ok if isinstance(ok, str) else verdict(ok)} |")


c32 = list_c[32]["server_cpu_ms"] if list_c[32] else None
if c32 is not None:
    row("server CPU per `tools/list` (HTTP, c=32)", "≤ 0.03 ms",
        f"{c32:.4f} ms (c=1: {list_c[1]['server_cpu_ms']:.4f} ms; sequential: {cpu_list['cpu_ms_per_call']:.4f} ms)",
        c32 <= 0.03)
else:
    row("server CPU per `tools/list` (HTTP, c=32)", "≤ 0.03 ms", "–", not_measured("no oha-list-c32.json"))
r32 = list_c[32]["rps"]
row("`tools/list` req/s at c=32", "≥ 28,000", f"{r32:,.0f} req/s", r32 >= 28000)
# the shipped binary: the static musl one when there is one, else the release build measured
if smusl:
    row("shipped binary", "≤ 7 MiB", f"{size(smusl['bytes'])}, static musl (release build: {size(bin_b)})",
        smusl["bytes"] <= 7 * MiB)
else:
    row("shipped binary", "≤ 7 MiB", f"{size(bin_b)}, release build (no static musl binary)", bin_b <= 7 * MiB)
if img and img.get("bytes"):
    row("container image", "≤ 8 MiB", size(img["bytes"]), img["bytes"] <= 8 * MiB)
else:
    row("container image", "≤ 8 MiB", "–",
        not_measured(sizes.get("image_not_measured") or "no podman image: run scripts/check-aws.sh"))
if szip:
    row("Lambda zip", "≤ 3 MB", f"{szip['bytes'] / 1e6:.2f} MB ({szip['bytes']:,} bytes)", szip["bytes"] <= 3_000_000)
else:
    row("Lambda zip", "≤ 3 MB", "–", not_measured("no Lambda zip: run scripts/check-aws.sh"))
r = mem["rss_after_dql_kib"]
row(f"RSS after {mem['dql_calls']:,} `execute_dql`", "≤ 10 MiB", mib(r), r <= 10 * 1024)
if musl and "rss_sustained_kib" in musl:
    # `serve` ships in the image, which runs the static musl binary: that is the figure judged.
    rk = musl["rss_sustained_kib"]
    row(f"RSS of the HTTP server after {musl['sustained_s']} s of load", "≤ 14 MiB",
        f"{mib(rk)} (peak {mib(musl['hwm_sustained_kib'])}), static musl binary as the image runs it"
        + (f"; release build (glibc): {mib(sus['rss_kib'])}" if sus else "")
        + ("" if musl["sustained_s"] >= 180 else f"; **{musl['sustained_s']} s, not 3 min**"),
        rk <= 14 * 1024)
elif sus:
    row(f"RSS of the HTTP server after {sus['seconds']} s of load", "≤ 14 MiB",
        f"{mib(sus['rss_kib'])} (peak {mib(sus['hwm_kib'])})"
        + ("" if sus["seconds"] >= 180 else f"; **{sus['seconds']} s, not 3 min**"),
        sus["rss_kib"] <= 14 * 1024)
else:
    row("RSS of the HTTP server after 3 min of load", "≤ 14 MiB", "–", not_measured("no sustained.json"))
lf = large.get("10000-fields")
if lf:
    row(f"peak RSS when Grail returns {lf['grail_records']:,} records ({lf['grail_bytes'] / 1e6:.1f} MB)", "≤ 24 MiB",
        f"{mib(lf['hwm_after_kib'])} ({mib(lf['hwm_after_kib'] - lf['rss_before_kib'])} above the RSS before)",
        lf["hwm_after_kib"] <= 24 * 1024)
else:
    row("peak RSS when Grail returns 10,000 records", "≤ 24 MiB", "–", not_measured("no large-10000-fields.json"))
ld = large.get("10000-default")
if ld:
    extra = f"; all 10,000 records with `fields`: {lf['response_bytes']:,} bytes" if lf else ""
    row("answer to a 10,000-record `execute_dql` at the defaults", "≤ 64 kB (64,000 bytes)",
        f"{ld['response_bytes']:,} bytes (`fetch logs \\| limit 10000`, {ld['returned_records']:,} records shown){extra}",
        ld["response_bytes"] <= 64000)
else:
    row("answer to a 10,000-record `execute_dql` at the defaults", "≤ 64 kB", "–", not_measured("no large-10000-default.json"))
if "first_answer_ms" in lam_cold:
    fa = lam_cold["first_answer_ms"]["median"]
    moto_us = sorted(lam_cold.get("moto_get_secret_us") or [])
    # moto's own GetSecretValue time (curl, same machine) is part of the figure; the rest is the server's.
    moto_text = ""
    if moto_us:
        moto_ms = moto_us[len(moto_us) // 2] / 1000
        moto_text = f"; moto answers GetSecretValue in {moto_ms:.2f} ms, so the server's own share is {fa - moto_ms:.2f} ms"
    row("Lambda: spawn → first answer after a cold start, against a local Secrets Manager", "≤ 6 ms",
        f"{fa:.2f} ms median (init {lam_cold['init_ms']['median']:.2f} ms{moto_text})", fa <= 6)
else:
    row("Lambda: spawn → first answer after a cold start, against a local Secrets Manager", "≤ 6 ms", "–",
        not_measured(lam_cold["not_measured"]))
cs = cold["stdio"]["tools_list_ms"]["median"]
row("cold start (stdio spawn → `tools/list` answer)", "≤ 3 ms", f"{cs:.2f} ms median", cs <= 3)
c2 = cpu_dql["cpu_ms_per_call"]
row("CPU per `execute_dql`", "≤ 0.15 ms", f"{c2:.4f} ms (sequential)", c2 <= 0.15)
if musl:
    idle_kib = musl["rss_idle_kib"]
    idle_text = f"{mib(idle_kib)}, static musl binary (release build: {mib(mem['rss_idle_kib'])})"
else:
    idle_kib = mem["rss_idle_kib"]
    idle_text = f"{mib(idle_kib)}, release build (no static musl binary)"
row("idle RSS of the shipped binary", "≤ 6 MiB", idle_text, idle_kib <= 6 * 1024)
if all(r and r["conns_per_1000"] is not None for r in conn_runs.values()):
    worst = max(r["conns_per_1000"] for r in conn_runs.values())
    row("new upstream connections at c=32", "≤ 1 per 1,000 calls",
        "; ".join(f"{r['conns_per_1000']:.2f} per 1,000 at {lat} ms ({r['conns']} in {r['calls_with_warmup']:,})"
                  for lat, r in conn_runs.items()), worst <= 1)
else:
    row("new upstream connections at c=32", "≤ 1 per 1,000 calls", "–",
        not_measured("the tenant's connection count was not recorded"))
p("")
p(f"Total time of bench/run.sh: {meta['seconds']} s, of which {meta.get('measure_seconds', meta['seconds'])} s "
  "measuring (the rest: builds and waiting for a quiet machine).")
print("\n".join(lines))
