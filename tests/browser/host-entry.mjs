// The HOST side of the MCP Apps protocol for tests/browser/results-view.mjs, built on the reference
// SDK's AppBridge and PostMessageTransport (@modelcontextprotocol/ext-apps/app-bridge). Bundled for the
// browser by esbuild at test time and served as /host.js to host.html.
//
// window.testHost is driven by the Node test through page.evaluate():
//   mount({viewUrl, hostContext, sandbox})  iframe + AppBridge; resolves after ui/notifications/initialized
//   deliver(args, result)                   ui/notifications/tool-input, then ui/notifications/tool-result
//   setContext(partial)                     AppBridge.setHostContext: host-context-changed with the diff
//   teardown()                              ui/resource-teardown request; resolves with the View's answer
//   rawRequests(messages)                   closes the bridge, posts raw JSON-RPC requests, collects answers
//   log                                     {initialized, sizes[], fromView[], displayModeRequests[]}
// A ui/request-display-mode for a mode in availableDisplayModes is granted: the host switches the container
// (fixed 900x560 for fullscreen, flexible height inline) and tells the View with host-context-changed.
import {
  AppBridge,
  PostMessageTransport,
  LATEST_PROTOCOL_VERSION,
} from "@modelcontextprotocol/ext-apps/app-bridge";

const HOST_INFO = { name: "dtmcp-browser-test-host", version: "1.0.0" };
const HOST_CAPABILITIES = { openLinks: {}, logging: {} };

let bridge = null;
let iframe = null;
let ctx = {};
const log = { initialized: false, sizes: [], fromView: [], displayModeRequests: [] };
const FULLSCREEN = { width: 900, height: 560 };
const INLINE = { width: 900, maxHeight: 1000 };

// Every message the View posts, as the host receives it (the AppBridge's transport sees the same ones).
window.addEventListener("message", (ev) => {
  if (iframe && ev.source === iframe.contentWindow) log.fromView.push(ev.data);
});

function withTimeout(promise, ms, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)),
  ]);
}

async function unmount() {
  if (bridge) {
    try { await bridge.close(); } catch { /* already closed */ }
  }
  if (iframe) iframe.remove();
  bridge = null;
  iframe = null;
}

async function mount({ viewUrl, hostContext, sandbox = "allow-scripts" }) {
  await unmount();
  log.initialized = false;
  log.sizes = [];
  log.fromView = [];
  log.displayModeRequests = [];
  ctx = { ...hostContext };
  document.body.dataset.theme = ctx.theme || "light";

  iframe = document.createElement("iframe");
  iframe.setAttribute("sandbox", sandbox);
  iframe.setAttribute("title", "MCP App");
  iframe.src = viewUrl;
  document.getElementById("slot").appendChild(iframe);

  bridge = new AppBridge(null, HOST_INFO, HOST_CAPABILITIES, { hostContext: ctx });
  bridge.onsizechange = ({ width, height }) => {
    log.sizes.push({ width, height });
    // With a flexible height (maxHeight) the host follows the View's height; a fixed height stays.
    if (typeof height === "number" && typeof ctx.containerDimensions?.height !== "number") {
      iframe.style.height = `${height}px`;
    }
  };
  bridge.onrequestdisplaymode = ({ mode }) => {
    log.displayModeRequests.push(mode);
    if (!(ctx.availableDisplayModes || []).includes(mode)) return { mode: ctx.displayMode || "inline" };
    setContext({ displayMode: mode, containerDimensions: mode === "fullscreen" ? FULLSCREEN : INLINE });
    return { mode };
  };
  const initialized = new Promise((resolve) => {
    bridge.oninitialized = () => {
      log.initialized = true;
      resolve();
    };
  });
  await bridge.connect(new PostMessageTransport(iframe.contentWindow, iframe.contentWindow));
  await withTimeout(initialized, 10000, "ui/notifications/initialized from the View");
  return {
    appInfo: bridge.getAppVersion(),
    appCapabilities: bridge.getAppCapabilities(),
    hostProtocolVersion: LATEST_PROTOCOL_VERSION,
  };
}

async function deliver(args, result) {
  await bridge.sendToolInput({ arguments: args });
  await bridge.sendToolResult(result);
}

function setContext(partial) {
  ctx = { ...ctx, ...partial };
  document.body.dataset.theme = ctx.theme || "light";
  const fixed = ctx.containerDimensions?.height;
  if (typeof fixed === "number") iframe.style.height = `${fixed}px`;
  bridge.setHostContext(ctx);
}

async function teardown() {
  return withTimeout(bridge.teardownResource({}), 5000, "answer to ui/resource-teardown");
}

// Requests the AppBridge API has no call for (ping from the host, a method the View does not know).
// The bridge is closed first so that it does not see answers to ids it never sent.
async function rawRequests(messages) {
  if (bridge) { await bridge.close(); bridge = null; }
  const target = iframe.contentWindow;
  const answers = new Map();
  const done = new Promise((resolve) => {
    const listener = (ev) => {
      if (ev.source !== target || !ev.data || ev.data.id === undefined) return;
      answers.set(ev.data.id, ev.data);
      if (answers.size === messages.length) {
        window.removeEventListener("message", listener);
        resolve();
      }
    };
    window.addEventListener("message", listener);
  });
  for (const m of messages) target.postMessage(m, "*");
  await withTimeout(done, 5000, "answers to raw requests");
  return messages.map((m) => answers.get(m.id));
}

window.testHost = { mount, deliver, setContext, teardown, rawRequests, unmount, log };
