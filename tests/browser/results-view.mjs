// Real-browser test of the MCP App view src/mcp/ui/results.html (resource ui://dynatrace-mcp/results.html).
//
// A host page on 127.0.0.1 (tests/browser/host.html) loads the view in an iframe with sandbox="allow-scripts",
// served from a second origin (another port) under the MCP Apps spec's restrictive default CSP, and plays the
// HOST side of the protocol with the reference SDK's AppBridge (@modelcontextprotocol/ext-apps/app-bridge,
// bundled for the browser by esbuild at start-up, see host-entry.mjs). Headless Debian Chromium through
// playwright-core.
//
//   node tests/browser/results-view.mjs        (run by scripts/browser-test.sh with the pinned Node 22)
//
// Environment:
//   MCP_URL                       e.g. http://127.0.0.1:3000/mcp: read the view with resources/read and get real
//                                 results with tools/call execute_dql (stateless JSON-RPC POSTs, no initialize).
//                                 Without it: the view from src/mcp/ui/results.html and tests/browser/fixtures/.
//   MCP_AUTH_TOKEN                sent as X-MCP-Auth-Token in MCP_URL mode, if set
//   RESULTS_VIEW_SCREENSHOT_DIR   where the PNGs go (default /tmp)
//   RESULTS_VIEW_HTML             another view file (fixture mode)
//   CHROMIUM                      the browser (default /usr/bin/chromium)
//   DTMCP_TOOLS_DIR               tools cache holding node/node_modules (default <repo>/.cache/tools)
//
// Prints one "ok - …" / "not ok - …" line per check and ends with "N passed, N failed"; exits 1 on failure.
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "../..");
const TOOLS = process.env.DTMCP_TOOLS_DIR || path.join(REPO, ".cache/tools");
// The Node tools live in the tools cache, not beside this file (see scripts/test-tools.sh).
const require = createRequire(path.join(TOOLS, "node", "package.json"));
const { chromium } = require("playwright-core");
const esbuild = require("esbuild");

const MCP_URL = process.env.MCP_URL || "";
const SHOT_DIR = process.env.RESULTS_VIEW_SCREENSHOT_DIR || "/tmp";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const VIEW_FILE = process.env.RESULTS_VIEW_HTML || path.join(REPO, "src/mcp/ui/results.html");
const RESOURCE_URI = "ui://dynatrace-mcp/results.html";
const RESOURCE_MIME = "text/html;profile=mcp-app";
const MAX_ROWS = 1000; // the view's table cap
const MAX_SERIES = 20; // the view's chart cap
const TIMESERIES_DQL = "timeseries avg(dt.host.cpu.usage), by:{dt.entity.host}";
const LOGS_DQL = "fetch logs | limit 20";
const BIN_DQL = "fetch logs | summarize count(), by:{bin(timestamp, 5m), loglevel}";

// ------------------------------------------------------------------------------------------ reporting
let passed = 0;
let failed = 0;
function check(name, ok, detail) {
  if (ok) {
    passed++;
    console.log(`ok - ${name}`);
  } else {
    failed++;
    console.log(`not ok - ${name}${detail === undefined ? "" : `: ${detail}`}`);
  }
  return ok;
}
const show = (v) => JSON.stringify(v);

async function poll(fn, what, timeoutMs = 5000) {
  const until = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ------------------------------------------------------------------------------------------ MCP over HTTP
let rpcId = 0;
async function mcp(method, params) {
  const id = ++rpcId;
  const headers = {
    Accept: "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-06-18",
  };
  if (process.env.MCP_AUTH_TOKEN) headers["X-MCP-Auth-Token"] = process.env.MCP_AUTH_TOKEN;
  const res = await fetch(MCP_URL, {
    method: "POST",
    headers,
    body: JSON.stringify({ jsonrpc: "2.0", id, method, params }),
    signal: AbortSignal.timeout(60000),
  });
  const body = await res.text();
  if (!res.ok) throw new Error(`${method}: HTTP ${res.status}: ${body.slice(0, 300)}`);
  let msg;
  if ((res.headers.get("content-type") || "").includes("text/event-stream")) {
    // SSE: events separated by blank lines, each with data: lines; take the response to our id.
    for (const event of body.split(/\r?\n\r?\n/)) {
      const data = event.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (!data) continue;
      const m = JSON.parse(data);
      if (m.id === id) msg = m;
    }
    if (!msg) throw new Error(`${method}: no response with id ${id} in the event stream: ${body.slice(0, 300)}`);
  } else {
    msg = JSON.parse(body);
  }
  if (msg.error) throw new Error(`${method}: JSON-RPC error ${msg.error.code}: ${msg.error.message}`);
  return msg.result;
}

// ------------------------------------------------------------------------------------------ inputs
async function loadInputs() {
  const fixture = async (name) => JSON.parse(await readFile(path.join(HERE, "fixtures", name), "utf8"));
  const inputs = {
    binResult: await fixture("summarize-bin.json"),
    errorResult: await fixture("error.json"),
  };
  if (!MCP_URL) {
    inputs.viewHtml = await readFile(VIEW_FILE, "utf8");
    inputs.csp = {};
    inputs.tsResult = await fixture("timeseries.json");
    inputs.logsResult = await fixture("logs.json");
    inputs.source = `${path.relative(REPO, VIEW_FILE)} + tests/browser/fixtures`;
    return inputs;
  }
  const tools = await mcp("tools/list", {});
  const tool = (tools.tools || []).find((t) => t.name === "execute_dql");
  check("tools/list: execute_dql carries _meta.ui.resourceUri", tool?._meta?.ui?.resourceUri === RESOURCE_URI,
    show(tool?._meta));
  const read = await mcp("resources/read", { uri: RESOURCE_URI });
  const c = (read.contents || [])[0] || {};
  check("resources/read: one content item with the view", c.uri === RESOURCE_URI && (c.text || c.blob), show({ uri: c.uri }));
  check(`resources/read: mimeType is ${RESOURCE_MIME}`, c.mimeType === RESOURCE_MIME, c.mimeType);
  const csp = c._meta?.ui?.csp || {};
  check("resources/read: the view declares no connect/resource/frame domains",
    !(csp.connectDomains?.length || csp.resourceDomains?.length || csp.frameDomains?.length), show(csp));
  inputs.viewHtml = c.text ?? Buffer.from(c.blob || "", "base64").toString("utf8");
  inputs.csp = csp;
  inputs.tsResult = await mcp("tools/call", { name: "execute_dql", arguments: { dqlStatement: TIMESERIES_DQL } });
  inputs.logsResult = await mcp("tools/call", { name: "execute_dql", arguments: { dqlStatement: LOGS_DQL } });
  inputs.source = MCP_URL;
  return inputs;
}

// The CSP a host puts on the view (spec 2026-01-26, "Content Security Policy Enforcement"): the restrictive
// default, widened only by the domains the resource declares.
function hostCsp(csp) {
  const res = (csp.resourceDomains || []).join(" ");
  const list = (extra) => (extra ? ` ${extra}` : "");
  return [
    "default-src 'none'",
    `script-src 'self' 'unsafe-inline'${list(res)}`,
    `style-src 'self' 'unsafe-inline'${list(res)}`,
    `img-src 'self' data:${list(res)}`,
    `font-src 'self'${list(res)}`,
    `media-src 'self' data:${list(res)}`,
    csp.connectDomains?.length ? `connect-src 'self' ${csp.connectDomains.join(" ")}` : "connect-src 'none'",
    `frame-src ${(csp.frameDomains || []).join(" ") || "'none'"}`,
    "object-src 'none'",
    `base-uri ${(csp.baseUriDomains || []).join(" ") || "'self'"}`,
  ].join("; ");
}

// ------------------------------------------------------------------------------------------ servers
function listen(handler) {
  return new Promise((resolve, reject) => {
    const server = createServer(handler);
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}
const origin = (server) => `http://127.0.0.1:${server.address().port}`;

async function buildHostBundle() {
  const out = await esbuild.build({
    entryPoints: [path.join(HERE, "host-entry.mjs")],
    bundle: true,
    format: "iife",
    platform: "browser",
    target: "chrome120",
    nodePaths: [path.join(TOOLS, "node", "node_modules")],
    write: false,
    logLevel: "warning",
  });
  return out.outputFiles[0].text;
}

// ------------------------------------------------------------------------------------------ the view, seen from the test
const HOST_VARS = {
  // a host's variables in the spec's style (light-dark() pairs), a subset as real hosts send
  "--color-background-primary": "light-dark(#ffffff, #262624)",
  "--color-background-secondary": "light-dark(#f5f4ed, #30302e)",
  "--color-text-primary": "light-dark(#141413, #faf9f5)",
  "--color-text-secondary": "light-dark(#5e5d59, #bfbdb4)",
  "--color-border-primary": "light-dark(#dedcd1, #4a4944)",
  "--font-sans": "system-ui, sans-serif",
  "--border-radius-md": "8px",
};
function hostContext(withStyles) {
  return {
    theme: "light",
    displayMode: "inline",
    availableDisplayModes: ["inline", "fullscreen"],
    containerDimensions: { width: 900, maxHeight: 1000 },
    locale: "en-US",
    timeZone: "UTC",
    platform: "web",
    userAgent: "dtmcp-browser-test-host/1.0.0",
    toolInfo: { id: 1, tool: { name: "execute_dql", inputSchema: { type: "object" } } },
    ...(withStyles ? { styles: { variables: HOST_VARS } } : {}),
  };
}

function luminance(rgb) {
  const m = /rgba?\((\d+),\s*(\d+),\s*(\d+)/.exec(rgb || "");
  if (!m) return NaN;
  return (0.2126 * m[1] + 0.7152 * m[2] + 0.0722 * m[3]) / 255;
}

function countSeries(sc) {
  let n = 0;
  for (const r of sc?.records || []) {
    for (const k of Object.keys(r || {})) {
      if (Array.isArray(r[k]) && r[k].some((x) => x !== null && x !== "" && Number.isFinite(Number(x)))) n++;
    }
  }
  return n;
}

// A top-level string field of the first record that the view shows verbatim (not a time, number or duration).
function verbatimField(sc) {
  const r = sc?.records?.[0] || {};
  return Object.keys(r).find((k) => typeof r[k] === "string" && r[k].length < 200 && !/^\d{4}-\d\d-\d\dT/.test(r[k])
    && !/^-?\d+(\.\d+)?$/.test(r[k]));
}

const tableState = (frame) => frame.evaluate(() => {
  const keys = [...document.querySelectorAll("thead th")].map((th) => th.dataset.key);
  const rows = [...document.querySelectorAll("tbody tr")].map((tr) => [...tr.children].map((td) => td.textContent));
  return { keys, rows };
});
const column = (state, key) => state.rows.map((r) => r[state.keys.indexOf(key)]);

async function mountView(page, ctx, viewUrl) {
  return page.evaluate(({ viewUrl, ctx }) => window.testHost.mount({ viewUrl, hostContext: ctx }), { viewUrl, ctx });
}

async function viewFrame(page) {
  const handle = await page.waitForSelector("#slot iframe");
  return handle.contentFrame();
}

async function waitRendered(frame) {
  await frame.waitForSelector("#tablewrap:not([hidden]), #text:not([hidden]), #empty:not([hidden])", { timeout: 10000 });
}

// The host follows size-changed: wait until the iframe has the height the View reported last. False when
// that does not happen (no size-changed at all): sizeChecks reports it, the other checks go on.
async function settled(page) {
  const ok = await poll(() => page.evaluate(() => {
    const s = window.testHost.log.sizes;
    const f = document.querySelector("#slot iframe");
    return s.length > 0 && f.clientHeight === s[s.length - 1].height;
  }), "the iframe to take the height of the last size-changed").catch(() => false);
  await page.waitForTimeout(150);
  return ok;
}

const background = (frame) => frame.evaluate(() => getComputedStyle(document.body).backgroundColor);

async function screenshot(page, name, { fixedHeight = false } = {}) {
  const file = path.join(SHOT_DIR, `results-view-${name}.png`);
  if (!fixedHeight) await settled(page);
  else await page.waitForTimeout(150);
  await page.locator("#slot iframe").screenshot({ path: file });
  console.log(`# screenshot ${file}`);
}

async function themeSwitch(page, frame, label) {
  const light = await background(frame);
  check(`${label}: light theme has a light background`, luminance(light) > 0.8, light);
  await screenshot(page, `${label}-light`);
  await page.evaluate(() => window.testHost.setContext({ theme: "dark" }));
  let dark = light;
  try {
    dark = await poll(async () => {
      const bg = await background(frame);
      return bg !== light && bg;
    }, "the background to change after host-context-changed {theme: dark}");
  } catch { /* reported below */ }
  check(`${label}: host-context-changed to dark changes the computed background`, dark !== light && luminance(dark) < 0.2,
    `${light} -> ${dark}`);
  const scheme = await frame.evaluate(() => [document.documentElement.dataset.theme, getComputedStyle(document.documentElement).colorScheme]);
  check(`${label}: dark theme sets data-theme and color-scheme`, scheme[0] === "dark" && scheme[1] === "dark", show(scheme));
  await screenshot(page, `${label}-dark`);
}

async function sizeChecks(page, frame, label) {
  await settled(page);
  const sizes = await page.evaluate(() => window.testHost.log.sizes);
  const last = sizes[sizes.length - 1];
  const content = await frame.evaluate(() => Math.ceil(document.getElementById("app").getBoundingClientRect().height));
  check(`${label}: ui/notifications/size-changed sent`, sizes.length > 0 && last.height > 50 && last.width > 0, show(sizes));
  check(`${label}: reported height matches the content`, last && Math.abs(last.height - content) <= 2,
    `reported ${last?.height}, content ${content}`);
}

// ------------------------------------------------------------------------------------------ scenarios
async function protocolChecks(page, mounted) {
  const fromView = await page.evaluate(() => window.testHost.log.fromView);
  const init = fromView.find((m) => m.method === "ui/initialize");
  const initIdx = fromView.indexOf(init);
  const initializedIdx = fromView.findIndex((m) => m.method === "ui/notifications/initialized");
  check("view sends ui/initialize first, as a request", initIdx === 0 && init.id !== undefined, show(fromView[0]));
  check(`ui/initialize protocolVersion is the SDK's LATEST_PROTOCOL_VERSION (${mounted.hostProtocolVersion})`,
    init?.params?.protocolVersion === mounted.hostProtocolVersion, init?.params?.protocolVersion);
  check("ui/initialize carries appInfo {name, version} and appCapabilities",
    mounted.appInfo?.name === "dynatrace-mcp-results" && typeof mounted.appInfo?.version === "string"
      && typeof init?.params?.appCapabilities === "object", show(init?.params));
  check("view sends ui/notifications/initialized after ui/initialize", initializedIdx > initIdx, show(fromView.map((m) => m.method ?? m.id)));
}

async function timeseriesScenario(page, viewUrl, result) {
  const label = "timeseries";
  const mounted = await mountView(page, hostContext(true), viewUrl);
  await protocolChecks(page, mounted);
  const frame = await viewFrame(page);
  await page.evaluate(({ args, result }) => window.testHost.deliver(args, result), { args: { dqlStatement: TIMESERIES_DQL }, result });
  await waitRendered(frame);
  const sc = result.structuredContent;
  if (!check(`${label}: result has structuredContent and no error`, sc && !result.isError, show(result).slice(0, 300))) return;

  const state = await tableState(frame);
  const want = Math.min(sc.records.length, MAX_ROWS);
  check(`${label}: ${want} rows rendered`, state.rows.length === want, state.rows.length);
  const key = verbatimField(sc);
  check(`${label}: first row shows ${key} = ${show(sc.records[0]?.[key])}`, key && column(state, key)[0] === sc.records[0][key],
    show(column(state, key || "")[0]));
  const series = Math.min(countSeries(sc), MAX_SERIES);
  const paths = await frame.locator("#plot path.series").count();
  check(`${label}: SVG chart has one path per series (${series})`, series > 0 && paths === series, `${paths} paths`);
  const query = await frame.locator("#query").textContent();
  check(`${label}: the DQL statement from tool-input is shown`, query === TIMESERIES_DQL, show(query));
  if (!MCP_URL) {
    check(`${label}: duration field formatted`, column(state, "interval")[0] === "1 min", column(state, "interval")[0]);
    check(`${label}: timeframe flattened and formatted in the host's time zone`,
      column(state, "timeframe.start")[0] === "2026-12-01 10:00:00.000", column(state, "timeframe.start")[0]);
    check(`${label}: numeric array cell shortened`, /^avg [\d.]+ · max [\d.]+ \(60\)$/.test(column(state, "avg(dt.host.cpu.usage)")[0]),
      column(state, "avg(dt.host.cpu.usage)")[0]);
    const legend = await frame.locator("#legend button").allTextContents();
    check(`${label}: legend names the series by dimension`, legend.join("|") === "HOST-A1B2C3D4E5F60001|HOST-A1B2C3D4E5F60002|HOST-A1B2C3D4E5F60003", show(legend));
  }
  // hovering the chart shows the values at that time
  const box = await frame.locator("#plot svg").boundingBox();
  await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2);
  const tip = await poll(() => frame.evaluate(() => !document.getElementById("tip").hidden && document.getElementById("tip").textContent), "the chart tooltip")
    .catch(() => "");
  check(`${label}: hovering the chart shows a tooltip with values`, /\d{4}-\d\d-\d\d \d\d:\d\d/.test(tip), show(tip));
  const head = await frame.locator("header").boundingBox();
  await page.mouse.move(head.x + 5, head.y + 5);
  check(`${label}: tooltip hidden when the pointer leaves the chart`,
    await poll(() => frame.evaluate(() => document.getElementById("tip").hidden), "the tooltip to hide").catch(() => false));
  await sizeChecks(page, frame, label);
  await themeSwitch(page, frame, label);
  const answer = await page.evaluate(() => window.testHost.teardown());
  check(`${label}: ui/resource-teardown answered`, answer && typeof answer === "object", show(answer));
}

async function logsScenario(page, viewUrl, result) {
  const label = "logs";
  await mountView(page, hostContext(false), viewUrl);
  const frame = await viewFrame(page);
  await page.evaluate(({ args, result }) => window.testHost.deliver(args, result), { args: { dqlStatement: LOGS_DQL }, result });
  await waitRendered(frame);
  const sc = result.structuredContent;
  if (!check(`${label}: result has structuredContent and no error`, sc && !result.isError, show(result).slice(0, 300))) return;

  const state = await tableState(frame);
  const want = Math.min(sc.records.length, MAX_ROWS);
  check(`${label}: ${want} rows rendered`, state.rows.length === want && want > 0, state.rows.length);
  const key = verbatimField(sc);
  check(`${label}: first row shows ${key} = ${show(sc.records[0]?.[key])}`, key && column(state, key)[0] === sc.records[0][key],
    show(column(state, key || "")[0]));
  const summary = await frame.locator("#summary").textContent();
  check(`${label}: summary counts the records`, summary.includes(`${sc.returnedRecords ?? sc.records.length} record`), show(summary));
  if (!MCP_URL) {
    for (const part of ["20 records", "more records available", "1.2 MB scanned", "48,213 records scanned", "took 412 ms"]) {
      check(`${label}: summary says "${part}"`, summary.includes(part), show(summary));
    }
    check(`${label}: timestamps formatted in the host's time zone`, column(state, "timestamp")[0] === "2026-12-01 10:59:59.000", column(state, "timestamp")[0]);
    check(`${label}: nested record flattened`, column(state, "k8s.pod.name")[0] === "checkout-0", column(state, "k8s.pod.name")[0]);
    check(`${label}: no chart for records without numeric fields`, await frame.locator("#chart").isHidden());
  }

  // sort: the first text column whose order changes when sorted (fixtures: content)
  const sortKey = MCP_URL
    ? await frame.evaluate(() => {
      const coll = new Intl.Collator("en-US", { numeric: true, sensitivity: "base" });
      const ths = [...document.querySelectorAll("thead th")];
      const rows = [...document.querySelectorAll("tbody tr")];
      for (let i = 0; i < ths.length; i++) {
        if (ths[i].classList.contains("n")) continue;
        const cells = rows.map((tr) => tr.children[i]);
        if (cells.some((td) => td.classList.contains("arr"))) continue;
        const t = cells.map((td) => td.textContent).filter((x) => x !== "");
        if (new Set(t).size > 1 && t.some((x, j) => j && coll.compare(t[j - 1], x) > 0)) return ths[i].dataset.key;
      }
      return null;
    })
    : "content";
  if (check(`${label}: a column to sort by (${sortKey})`, !!sortKey)) {
    const coll = new Intl.Collator("en-US", { numeric: true, sensitivity: "base" });
    const before = column(state, sortKey);
    const header = frame.locator("thead th").nth(state.keys.indexOf(sortKey));
    await header.locator("button").click();
    const asc = column(await tableState(frame), sortKey);
    const ascNonEmpty = asc.filter((x) => x !== "");
    check(`${label}: clicking the ${sortKey} header sorts ascending`,
      ascNonEmpty.every((x, j) => !j || coll.compare(ascNonEmpty[j - 1], x) <= 0) && (await header.getAttribute("aria-sort")) === "ascending",
      show(asc.slice(0, 5)));
    check(`${label}: sorting changed the row order`, show(asc) !== show(before), show(before.slice(0, 3)));
    if (!MCP_URL) check(`${label}: first row after sorting`, asc[0] === "Cache miss for key session:9f1c", asc[0]);
    await header.locator("button").click();
    const desc = column(await tableState(frame), sortKey).filter((x) => x !== "");
    check(`${label}: clicking again sorts descending`,
      desc.every((x, j) => !j || coll.compare(desc[j - 1], x) >= 0) && (await header.getAttribute("aria-sort")) === "descending",
      show(desc.slice(0, 5)));
  }
  await sizeChecks(page, frame, label);
  await themeSwitch(page, frame, label);
  await fullscreenChecks(page, frame, label);
}

// The view's full-screen button: ui/request-display-mode, granted by the host, which then sends
// host-context-changed {displayMode: fullscreen, containerDimensions: {height}}; the view fills the height.
async function fullscreenChecks(page, frame, label) {
  const button = frame.locator("#fs");
  if (!check(`${label}: full-screen button offered (host lists fullscreen)`, await button.isVisible())) return;
  await button.click();
  const filled = await poll(() => frame.evaluate(() => document.documentElement.classList.contains("fill")), "the view to fill the container")
    .catch(() => false);
  const requests = await page.evaluate(() => window.testHost.log.displayModeRequests);
  check(`${label}: ui/request-display-mode {mode: fullscreen} sent and the view fills the fixed height`,
    filled && show(requests) === show(["fullscreen"]), show(requests));
  const geometry = await frame.evaluate(() => ({
    inner: window.innerHeight,
    app: Math.round(document.getElementById("app").getBoundingClientRect().height),
    tableBottom: Math.round(document.getElementById("tablewrap").getBoundingClientRect().bottom),
    button: document.getElementById("fs").textContent,
  }));
  check(`${label}: in full screen the table fills the rest of the height`,
    geometry.inner === 560 && Math.abs(geometry.app - 560) <= 1 && geometry.tableBottom <= 560 && geometry.tableBottom > 480,
    show(geometry));
  await screenshot(page, `${label}-fullscreen-dark`, { fixedHeight: true });
  await button.click();
  const back = await poll(() => frame.evaluate(() => !document.documentElement.classList.contains("fill")), "the view to leave full screen")
    .catch(() => false);
  check(`${label}: back to inline`, back && geometry.button === "Exit full screen");
}

async function binScenario(page, viewUrl, result) {
  const label = "summarize-bin";
  await mountView(page, hostContext(true), viewUrl);
  const frame = await viewFrame(page);
  await page.evaluate(({ result, dqlStatement }) => window.testHost.deliver({ dqlStatement }, result), { result, dqlStatement: BIN_DQL });
  await waitRendered(frame);
  const paths = await frame.locator("#plot path.series").count();
  check(`${label}: time field + numeric field chart, one line per loglevel`, paths === 2, `${paths} paths`);
  const legend = await frame.locator("#legend button").allTextContents();
  check(`${label}: legend names the groups`, legend.join("|") === "ERROR|INFO", show(legend));
  await screenshot(page, `${label}-light`);
}

// A host context without theme or styles: the view follows prefers-color-scheme.
async function noThemeScenario(page, viewUrl, result) {
  const label = "no host theme";
  const ctx = hostContext(false);
  delete ctx.theme;
  await mountView(page, ctx, viewUrl);
  const frame = await viewFrame(page);
  await page.evaluate(({ result, dqlStatement }) => window.testHost.deliver({ dqlStatement }, result), { result, dqlStatement: BIN_DQL });
  await waitRendered(frame);
  const light = await background(frame);
  await page.emulateMedia({ colorScheme: "dark" });
  const dark = await poll(async () => {
    const bg = await background(frame);
    return bg !== light && bg;
  }, "prefers-color-scheme: dark to apply").catch(() => light);
  await screenshot(page, "summarize-bin-dark-no-host-theme");
  await page.emulateMedia({ colorScheme: "light" });
  check(`${label}: follows prefers-color-scheme (light, then dark)`, luminance(light) > 0.8 && luminance(dark) < 0.2, `${light} -> ${dark}`);
}

async function errorScenario(page, viewUrl, result) {
  const label = "error";
  await mountView(page, hostContext(true), viewUrl);
  const frame = await viewFrame(page);
  await page.evaluate(({ result }) => window.testHost.deliver({ dqlStatement: "fetchh logs" }, result), { result });
  await waitRendered(frame);
  const text = await frame.locator("#text").textContent();
  check(`${label}: isError result shown as its text`, text === result.content[0].text, show(text));
  check(`${label}: shown as an error, without table or chart`,
    await frame.evaluate(() => document.getElementById("text").classList.contains("error")
      && document.getElementById("tablewrap").hidden && document.getElementById("chart").hidden));
  await screenshot(page, `${label}-light`);

  // no structuredContent at all: plain text
  await page.evaluate(() => window.testHost.deliver({}, { content: [{ type: "text", text: "Plain answer, no structure." }] }));
  await poll(() => frame.evaluate(() => document.getElementById("text").textContent === "Plain answer, no structure."), "the plain text")
    .then(() => check(`${label}: result without structuredContent shown as text`, true))
    .catch((e) => check(`${label}: result without structuredContent shown as text`, false, e.message));

  // ping and an unknown request, sent raw (the AppBridge has no call for them)
  const [pong, unknown] = await page.evaluate(() => window.testHost.rawRequests([
    { jsonrpc: "2.0", id: "ping-1", method: "ping", params: {} },
    { jsonrpc: "2.0", id: "x-1", method: "tools/list", params: {} },
  ]));
  check("view answers ping with an empty result", pong?.result && Object.keys(pong.result).length === 0 && !pong.error, show(pong));
  check("view answers an unknown request with JSON-RPC error -32601", unknown?.error?.code === -32601, show(unknown));
}

// ------------------------------------------------------------------------------------------ main
async function main() {
  if (!existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM)`);
  await mkdir(SHOT_DIR, { recursive: true });
  const inputs = await loadInputs();
  const bytes = Buffer.byteLength(inputs.viewHtml, "utf8");
  console.log(`# view: ${inputs.source} (${bytes} bytes)`);
  check("view is at most 60 KB", bytes <= 60 * 1024, `${bytes} bytes`);
  check("view loads nothing from the network (no src/href/url()/fetch/eval in its text)",
    !/\b(src|href)\s*=\s*["']?(https?:)?\/\//i.test(inputs.viewHtml) && !/url\(\s*["']?(https?:)?\/\//i.test(inputs.viewHtml)
      && !/\bfetch\(|XMLHttpRequest|WebSocket|\beval\(|new Function\(/.test(inputs.viewHtml));

  const hostPage = await readFile(path.join(HERE, "host.html"), "utf8");
  const bundle = await buildHostBundle();
  const csp = hostCsp(inputs.csp);
  const hostServer = await listen((req, res) => {
    const p = new URL(req.url, "http://x").pathname;
    if (p === "/" || p === "/host.html") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
      res.end(hostPage);
    } else if (p === "/host.js") {
      res.writeHead(200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-store" });
      res.end(bundle);
    } else if (p === "/favicon.ico") {
      res.writeHead(204).end();
    } else {
      res.writeHead(404).end();
    }
  });
  const viewServer = await listen((req, res) => {
    if (new URL(req.url, "http://x").pathname === "/view.html") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-security-policy": csp, "cache-control": "no-store" });
      res.end(inputs.viewHtml);
    } else {
      res.writeHead(404).end();
    }
  });
  const hostOrigin = origin(hostServer);
  const viewOrigin = origin(viewServer);
  const viewUrl = `${viewOrigin}/view.html`;

  const profile = await mkdtemp(path.join(tmpdir(), "dtmcp-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 960, height: 900 },
    deviceScaleFactor: 1,
    colorScheme: "light",
  });
  const requests = [];
  const problems = [];
  context.on("request", (r) => requests.push(r.url()));
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.on("console", (m) => {
      if (m.type() === "error" || /Content Security Policy|Refused to/i.test(m.text())) problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    await page.goto(`${hostOrigin}/host.html`);
    await page.waitForFunction(() => !!window.testHost);

    for (const [name, run, result] of [
      ["timeseries", timeseriesScenario, inputs.tsResult],
      ["logs", logsScenario, inputs.logsResult],
      ["summarize-bin", binScenario, inputs.binResult],
      ["no host theme", noThemeScenario, inputs.binResult],
      ["error", errorScenario, inputs.errorResult],
    ]) {
      try {
        await run(page, viewUrl, result);
      } catch (e) {
        check(`${name}: scenario ran to the end`, false, e.stack || e.message);
      }
    }
    check("no console errors, CSP violations or uncaught exceptions", problems.length === 0, show(problems));
    const foreign = requests.filter((u) => !(u.startsWith(`${hostOrigin}/`) || u === viewUrl));
    check("the browser requested nothing but the host page, its bundle and the view", foreign.length === 0, show(foreign));
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
    hostServer.close();
    viewServer.close();
  }
}

const guard = setTimeout(() => {
  console.log("not ok - the test finished within 180 s");
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}, 180000);
guard.unref();

try {
  await main();
} catch (e) {
  check("test set-up", false, e.stack || e.message);
}
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
