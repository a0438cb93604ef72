//! The production Router over a sandbox tenant, built once per process and called in-process
//! (`tower::ServiceExt::oneshot`), as `tests/it/helpers.rs` builds it for a socket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use dynatrace_mcp::config::{FrontDoor, Settings};
use dynatrace_mcp::startup::{self, AppState};
use dynatrace_sandbox::{Sandbox, SandboxConfig};
use http_body_util::{BodyExt, Limited};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// `MCP_RESULT_MAX_BYTES` of the fuzzed server: small, so the size bound below is tight.
pub const RESULT_MAX_BYTES: usize = 16 * 1024;
/// No answer may be larger: two result budgets (text and structured content) plus the envelope.
pub const ANSWER_MAX_BYTES: usize = 2 * RESULT_MAX_BYTES + 64 * 1024;
/// Every answer comes within this (tool calls time out after `MCP_TOOL_TIMEOUT_SECONDS=2`).
pub const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// Statuses the server may answer with. A 500 would be a bug: every failure the server knows of
/// has its own status.
pub const KNOWN_STATUSES: &[u16] = &[
    200, 202, 204, 400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 429, 503,
];

static STATUS_COUNTS: [AtomicU64; KNOWN_STATUSES.len()] =
    [const { AtomicU64::new(0) }; KNOWN_STATUSES.len()];
static TOOL_ERRORS: AtomicU64 = AtomicU64::new(0);

/// How often each status was answered (and how many 200s were tool errors), for a run's figures.
pub fn status_counts() -> String {
    let mut out: Vec<String> = KNOWN_STATUSES
        .iter()
        .zip(&STATUS_COUNTS)
        .filter(|(_, n)| n.load(Ordering::Relaxed) > 0)
        .map(|(s, n)| format!("{s}:{}", n.load(Ordering::Relaxed)))
        .collect();
    out.push(format!(
        "tool-errors:{}",
        TOOL_ERRORS.load(Ordering::Relaxed)
    ));
    out.join(" ")
}

pub struct App {
    pub runtime: tokio::runtime::Runtime,
    pub router: Router,
    pub state: Arc<AppState>,
    pub sandbox: Sandbox,
    /// Tool names and their argument properties (name, JSON type), from `tools/list`.
    pub tools: Vec<(String, Vec<(String, String)>)>,
    pub prompts: Vec<(String, Vec<String>)>,
    pub resources: Vec<String>,
}

static APP: OnceLock<App> = OnceLock::new();

pub fn app() -> &'static App {
    APP.get_or_init(build)
}

fn build() -> App {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (sandbox, router, state) = runtime.block_on(async {
        let sandbox = Sandbox::start(SandboxConfig {
            // Nothing is inspected afterwards; a long run must not accumulate requests.
            record_requests: false,
            log_records: 2_000,
            ..SandboxConfig::demo()
        })
        .await
        .expect("sandbox starts");
        let mut source = dynatrace_mcp::config::Source::from_pairs(sandbox.settings_pairs());
        for (name, value) in [
            ("MCP_TOOL_TIMEOUT_SECONDS", "2".to_string()),
            ("MCP_RESULT_MAX_BYTES", RESULT_MAX_BYTES.to_string()),
            // Write tools only preview without a valid confirmation token, which no fuzzer forges.
            ("DT_ENABLE_WRITE_TOOLS", "1".to_string()),
            ("DT_ENABLE_DAVIS_COPILOT", "1".to_string()),
            ("DT_GRAIL_QUERY_BUDGET_GB", "-1".to_string()),
        ] {
            source.set(name, value);
        }
        let settings = Settings::from_source(&source, FrontDoor::Http).expect("valid settings");
        let options =
            startup::http_options(&settings, FrontDoor::Http, None, CancellationToken::new());
        let state = startup::build_state(settings).expect("state builds");
        let router = dynatrace_mcp::http::router(state.clone(), options);
        (sandbox, router, state)
    });
    let mut app = App {
        runtime,
        router,
        state,
        sandbox,
        tools: Vec::new(),
        prompts: Vec::new(),
        resources: Vec::new(),
    };
    discover(&mut app);
    app
}

/// Reads the catalogue the server announces, so generated calls name real tools, prompts and
/// resources with their real argument names.
fn discover(app: &mut App) {
    let list = |app: &App, method: &str| -> Value {
        let answer = app.call(rpc_request(method, json!({})));
        assert_eq!(answer.status, 200, "{method}: {}", answer.text());
        serde_json::from_slice::<Value>(&answer.body).expect("JSON")["result"].clone()
    };
    let tools = list(app, "tools/list");
    app.tools = tools["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|tool| {
            let properties = tool["inputSchema"]["properties"]
                .as_object()
                .map(|p| {
                    p.iter()
                        .map(|(name, schema)| (name.clone(), schema_type(schema)))
                        .collect()
                })
                .unwrap_or_default();
            (tool["name"].as_str().unwrap().to_string(), properties)
        })
        .collect();
    let prompts = list(app, "prompts/list");
    app.prompts = prompts["prompts"]
        .as_array()
        .map(|p| {
            p.iter()
                .map(|prompt| {
                    let arguments = prompt["arguments"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x["name"].as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    (prompt["name"].as_str().unwrap().to_string(), arguments)
                })
                .collect()
        })
        .unwrap_or_default();
    let resources = list(app, "resources/list");
    app.resources = resources["resources"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|x| x["uri"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert!(app.tools.len() > 20, "tools/list lists the tools");
}

/// The JSON type a schema asks for (the first non-null one), or `any`.
fn schema_type(schema: &Value) -> String {
    match &schema["type"] {
        Value::String(t) => t.clone(),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("any")
            .to_string(),
        _ => "any".to_string(),
    }
}

/// A POST to `/mcp` as a modern client sends it.
pub fn rpc_request(method: &str, params: Value) -> http::Request<Body> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    http::Request::post("/mcp")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .body(Body::from(body.to_string()))
        .unwrap()
}

pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The `result` of a `tools/call` answered 200.
    pub fn tool_result(&self) -> Value {
        assert_eq!(self.status, 200, "tools/call answered {}", self.text());
        self.json().expect("a JSON answer")["result"].clone()
    }
}

impl App {
    /// Sends one request through the Router and checks what every answer must satisfy: it comes
    /// within [`ANSWER_WITHIN`], with a known status, and is no larger than [`ANSWER_MAX_BYTES`].
    pub fn call<B>(&self, request: http::Request<B>) -> Answer
    where
        B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let router = self.router.clone();
        self.runtime.block_on(async move {
            let answer = tokio::time::timeout(ANSWER_WITHIN, async move {
                let response = router
                    .oneshot(request)
                    .await
                    .expect("the Router is infallible");
                let status = response.status().as_u16();
                let content_type = response
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let body = Limited::new(response.into_body(), ANSWER_MAX_BYTES)
                    .collect()
                    .await
                    .unwrap_or_else(|e| {
                        panic!("answer {status} is over {ANSWER_MAX_BYTES} bytes or broken: {e}")
                    })
                    .to_bytes()
                    .to_vec();
                Answer {
                    status,
                    content_type,
                    body,
                }
            })
            .await
            .unwrap_or_else(|_| panic!("no answer within {ANSWER_WITHIN:?}"));
            let known = KNOWN_STATUSES.iter().position(|s| *s == answer.status);
            assert!(
                known.is_some(),
                "unexpected status {}: {}",
                answer.status,
                answer.text()
            );
            if let Some(i) = known {
                STATUS_COUNTS[i].fetch_add(1, Ordering::Relaxed);
            }
            if answer.status == 200 && answer.text().contains("\"isError\":true") {
                TOOL_ERRORS.fetch_add(1, Ordering::Relaxed);
            }
            answer
        })
    }
}
