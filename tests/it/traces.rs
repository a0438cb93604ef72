//! The server's own traces: the real binary (`serve`, then as a Lambda function) exports spans
//! over OTLP/HTTP to `tests/otlp/receiver.py`, which decodes them with the official OpenTelemetry
//! protobuf definitions (`opentelemetry-proto`). The tests check the spans' names, kinds,
//! attributes and parentage, and that the trace runs on into the simulated tenant: each Dynatrace
//! request carries the `traceparent` of its own client span.
//!
//! Needs the tools' Python (`PYTHON`, with opentelemetry-proto: `scripts/test-tools.sh python`);
//! `scripts/test.sh` runs it. Plain `cargo test` skips it (`#[ignore]`).

use std::process::Stdio;
use std::time::Duration;

use dynatrace_sandbox::runtime_api::RuntimeApi;
use dynatrace_sandbox::{DEMO_CLIENT_SECRET, Sandbox, SandboxConfig};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::helpers::{
    AUTH_TOKEN, binary, lambda_command, serve_binary_with, sigterm, wait_for_port,
};

/// A Lambda function (the binary under the Runtime API stand-in) with the sandbox's settings and `env`.
fn lambda_function(
    sandbox: &Sandbox,
    runtime: std::net::SocketAddr,
    env: &[(&str, &str)],
) -> tokio::process::Child {
    lambda_command(runtime)
        .env("MCP_METRICS", "off")
        .envs(sandbox.settings_pairs())
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// An API Gateway v2 event calling execute_dql, with the static token and `traceparent`.
fn dql_event(id: usize, traceparent: &str) -> Value {
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/lambda/apigw-v2-http.json"
    ))
    .unwrap();
    let mut event: Value = serde_json::from_str(&fixture).unwrap();
    let headers = event["headers"].as_object_mut().unwrap();
    headers.remove("content-length");
    headers.insert(
        "authorization".into(),
        json!(format!("Bearer {AUTH_TOKEN}")),
    );
    headers.insert("traceparent".into(), json!(traceparent));
    event["body"] = json!(
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "execute_dql", "arguments": {"dqlStatement": "fetch logs | limit 1"}}})
        .to_string()
    );
    event
}

/// `tests/otlp/receiver.py`, on a free loopback port.
struct Receiver {
    _child: tokio::process::Child,
    port: u16,
    http: reqwest::Client,
}

impl Receiver {
    async fn start() -> Self {
        let python = std::env::var("PYTHON").expect("PYTHON is not set: run scripts/test.sh");
        let mut child = tokio::process::Command::new(python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/otlp/receiver.py"
            ))
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the receiver starts");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the receiver prints its port")
            .unwrap()
            .expect("the receiver prints its port");
        let port = first
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {first}"));
        Self {
            _child: child,
            port,
            http: reqwest::Client::new(),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn get(&self, what: &str) -> Value {
        self.http
            .get(format!("{}/{what}", self.endpoint()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The spans received so far.
    async fn spans(&self) -> Vec<Value> {
        self.get("spans").await.as_array().unwrap().clone()
    }

    /// The spans, once `done` holds of them (at most 15 s).
    async fn spans_when(&self, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let spans = self.spans().await;
            if done(&spans) {
                return spans;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the spans never arrived; got {}",
                serde_json::to_string_pretty(&spans).unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn named<'a>(spans: &'a [Value], name: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["name"] == name).collect()
}

fn in_trace<'a>(spans: &'a [Value], trace_id: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["trace_id"] == trace_id).collect()
}

/// POST /mcp with the static token and `headers`.
async fn post(port: u16, body: Value, headers: &[(&str, &str)]) -> Value {
    let mut request = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/mcp"))
        .bearer_auth(AUTH_TOKEN)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    response.json().await.unwrap()
}

const TRACE_A: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_A: &str = "00f067aa0ba902b7";
const TRACE_META: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_META: &str = "b7ad6b7169203331";
const TRACE_HEADER: &str = "11111111111111111111111111111111";
const PARENT_HEADER: &str = "2222222222222222";

fn traceparent(trace: &str, parent: &str) -> String {
    format!("00-{trace}-{parent}-01")
}

#[tokio::test]
#[ignore = "needs the tools' Python (scripts/test.sh)"]
async fn serve_exports_a_span_per_mcp_request_and_per_dynatrace_request() {
    let receiver = Receiver::start().await;
    let sandbox = Sandbox::start(SandboxConfig::demo()).await.unwrap();
    let endpoint = receiver.endpoint();
    let (child, port) = serve_binary_with(
        &sandbox,
        &[
            ("MCP_AUTH_TOKEN", AUTH_TOKEN),
            ("MCP_METRICS", "off"),
            ("MCP_LOG_LEVEL", "debug"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "Authorization=Api-Token%20dt0c01.test-ingest-token",
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
        Stdio::null(),
        Stdio::piped(),
    )
    .await;

    // A: a query whose trace starts at the caller's HTTP `traceparent`.
    let a = post(
        port,
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "execute_dql", "arguments": {"dqlStatement": "fetch logs | limit 3"}}}),
        &[("traceparent", &traceparent(TRACE_A, PARENT_A))],
    )
    .await;
    assert!(
        a["result"]["isError"].is_null() || a["result"]["isError"] == false,
        "{a}"
    );
    let sandbox_calls_a: Vec<_> = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/platform"))
        .collect();
    sandbox.clear_requests();

    // B: `params._meta` carries the context (the parent), the HTTP header another (a link).
    let b = post(
        port,
        json!({"jsonrpc": "2.0", "id": "b-2", "method": "tools/call",
               "params": {"name": "list_problems", "arguments": {},
                          "_meta": {"traceparent": traceparent(TRACE_META, PARENT_META),
                                    "tracestate": "vendor=opaque"}}}),
        &[("traceparent", &traceparent(TRACE_HEADER, PARENT_HEADER))],
    )
    .await;
    assert!(b["result"].is_object(), "{b}");

    // C: a tool error result; D: a JSON-RPC error; E: tools/list with no context at all.
    let c = post(
        port,
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
               "params": {"name": "execute_dql", "arguments": {"dqlStatement": "fetch nonsense ||"}}}),
        &[],
    )
    .await;
    assert_eq!(c["result"]["isError"], true, "{c}");
    let d = post(
        port,
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
               "params": {"name": "no_such_tool_secret_name", "arguments": {}}}),
        &[],
    )
    .await;
    assert!(d["error"].is_object(), "{d}");
    let e = post(
        port,
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}),
        &[],
    )
    .await;
    assert!(e["result"]["tools"].is_array(), "{e}");

    let spans = receiver
        .spans_when(|spans| {
            !named(spans, "tools/list").is_empty()
                && !named(spans, "tools/call").is_empty()
                && named(spans, "tools/call execute_dql").len() >= 2
                && !named(spans, "tools/call list_problems").is_empty()
        })
        .await;
    assert_eq!(receiver.get("problems").await, json!([]));

    // A's server span: a child of the caller's span, with the MCP and GenAI attributes.
    let a_spans = in_trace(&spans, TRACE_A);
    let server: Vec<_> = a_spans
        .iter()
        .filter(|s| s["kind"] == "SPAN_KIND_SERVER")
        .collect();
    assert_eq!(server.len(), 1, "{a_spans:#?}");
    let server = server[0];
    assert_eq!(server["name"], "tools/call execute_dql");
    assert_eq!(server["parent_span_id"], PARENT_A);
    let attributes = &server["attributes"];
    assert_eq!(attributes["mcp.method.name"], "tools/call");
    assert_eq!(attributes["gen_ai.operation.name"], "execute_tool");
    assert_eq!(attributes["gen_ai.tool.name"], "execute_dql");
    assert_eq!(attributes["jsonrpc.request.id"], "1");
    assert_eq!(attributes["network.transport"], "tcp");
    assert_eq!(attributes["mcp.protocol.version"], "2025-11-25");
    assert_eq!(attributes["dynatrace_mcp.outcome"], "ok");
    assert!(
        attributes["dynatrace_mcp.grail.scanned_bytes"].is_number(),
        "{attributes}"
    );
    assert_eq!(server["status"]["code"], "STATUS_CODE_UNSET");
    assert_eq!(server["resource"]["service.name"], "dynatrace-mcp");
    assert_eq!(
        server["resource"]["service.version"],
        dynatrace_mcp::VERSION
    );
    assert_eq!(
        server["headers"]["authorization"], "Api-Token dt0c01.test-ingest-token",
        "OTEL_EXPORTER_OTLP_HEADERS reach the receiver"
    );

    // A's client spans: one per Dynatrace request, children of the server span; and Dynatrace
    // received each one's context.
    // (The SSO token request of this first call is checked below.)
    let clients: Vec<_> = a_spans
        .iter()
        .filter(|s| {
            s["kind"] == "SPAN_KIND_CLIENT"
                && s["attributes"]["url.full"]
                    .as_str()
                    .is_some_and(|u| u.contains("/platform/"))
        })
        .collect();
    assert!(!clients.is_empty(), "{a_spans:#?}");
    for client in &clients {
        assert_eq!(client["parent_span_id"], server["span_id"], "{client}");
        assert_eq!(client["attributes"]["server.address"], "127.0.0.1");
        assert!(client["attributes"]["http.request.method"].is_string());
        assert!(
            client["attributes"]["http.response.status_code"]
                .as_i64()
                .is_some_and(|s| (200..300).contains(&s)),
            "{client}"
        );
        let url = client["attributes"]["url.full"].as_str().unwrap();
        assert!(
            url.starts_with(&sandbox.url()) && !url.contains('?'),
            "{url}"
        );
    }
    assert_eq!(sandbox_calls_a.len(), clients.len(), "{sandbox_calls_a:#?}");
    for call in &sandbox_calls_a {
        let header = call
            .traceparent
            .as_deref()
            .expect("Dynatrace gets traceparent");
        let parts: Vec<_> = header.split('-').collect();
        assert_eq!(parts.len(), 4, "{header}");
        assert_eq!(parts[1], TRACE_A, "the trace runs on into Dynatrace");
        assert!(
            clients.iter().any(|c| c["span_id"] == parts[2]),
            "{header} names one of the client spans"
        );
    }

    // B: parent from `_meta` (with its tracestate), the HTTP header's context as a link.
    let b_span = named(&spans, "tools/call list_problems")[0];
    assert_eq!(b_span["trace_id"], TRACE_META);
    assert_eq!(b_span["parent_span_id"], PARENT_META);
    assert_eq!(b_span["trace_state"], "vendor=opaque");
    assert_eq!(b_span["attributes"]["jsonrpc.request.id"], "b-2");
    assert_eq!(
        b_span["links"],
        json!([{"trace_id": TRACE_HEADER, "span_id": PARENT_HEADER}])
    );

    // C: a tool's error result is `tool_error`, with this server's kind as the description.
    let c_span = named(&spans, "tools/call execute_dql")
        .into_iter()
        .find(|s| s["attributes"]["jsonrpc.request.id"] == "3")
        .expect("C's span");
    assert_eq!(c_span["status"]["code"], "STATUS_CODE_ERROR");
    assert_eq!(c_span["attributes"]["error.type"], "tool_error");
    assert_eq!(c_span["status"]["message"], "bad_request");
    assert_eq!(c_span["parent_span_id"], "", "no context: a new trace");

    // D: a JSON-RPC error; the unknown tool's name is the caller's: it names no span (a span name
    // must stay low-cardinality) and stays out of the attributes.
    let d_span = named(&spans, "tools/call")[0];
    assert_eq!(d_span["attributes"]["error.type"], "-32602");
    assert_eq!(d_span["attributes"]["rpc.response.status_code"], "-32602");
    assert_eq!(d_span["status"]["code"], "STATUS_CODE_ERROR");
    assert!(d_span["attributes"].get("gen_ai.tool.name").is_none());
    assert!(
        d_span["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("unknown tool"),
        "the description is the JSON-RPC error's message: {d_span}"
    );

    // E: a plain tools/list gets its span too (the cached fast path steps aside).
    let e_span = named(&spans, "tools/list")[0];
    assert_eq!(e_span["kind"], "SPAN_KIND_SERVER");
    assert_eq!(e_span["attributes"]["jsonrpc.request.id"], "5");

    // The first execute_dql fetched an OAuth token from the SSO endpoint: its own CLIENT span.
    assert!(
        spans.iter().any(|s| s["kind"] == "SPAN_KIND_CLIENT"
            && s["attributes"]["url.full"]
                .as_str()
                .is_some_and(|u| u.starts_with(&sandbox.sso_url()))),
        "no span for the token request"
    );

    // SIGTERM: the server flushes what is left and exits. No secret reached a span or the log
    // (at debug level): not the ingest token, the MCP token, nor the Dynatrace client secret.
    sigterm(&child);
    let output = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
        .await
        .expect("the server exits after SIGTERM")
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("traces"),
        "the start-up line names the traces setting: {log}"
    );
    // The audit line of call A names its trace and its server span.
    let audit_a = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["target"] == "audit" && line["trace_id"] == TRACE_A)
        .unwrap_or_else(|| panic!("no audit line with trace_id {TRACE_A}: {log}"));
    assert_eq!(audit_a["span_id"], server["span_id"], "{audit_a}");
    // (The receiver keeps each export's request headers beside its spans: not part of a span.)
    let span_data: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.as_object_mut().unwrap().remove("headers");
            s
        })
        .collect();
    let everything = format!("{log}{}", serde_json::to_string(&span_data).unwrap());
    for secret in ["test-ingest-token", AUTH_TOKEN, DEMO_CLIENT_SECRET] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
}

#[tokio::test]
#[ignore = "needs the tools' Python and moto_server (scripts/test.sh)"]
async fn the_ingest_header_from_the_secret_wins_over_the_environment() {
    let receiver = Receiver::start().await;
    let moto = crate::idp::Moto::start().await;
    let sandbox = Sandbox::start(SandboxConfig::demo()).await.unwrap();
    let mut secret: serde_json::Map<String, Value> = sandbox
        .settings_pairs()
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    secret.insert("MCP_AUTH_TOKEN".into(), json!(AUTH_TOKEN));
    secret.insert(
        "OTEL_EXPORTER_OTLP_HEADERS".into(),
        json!("Authorization=Api-Token%20from-the-secret"),
    );
    crate::secrets::create_secret(&moto, "mcp/traced", &Value::Object(secret).to_string()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _child = crate::secrets::command(&moto, "DT_SECRET_ID", "mcp/traced")
        .env("MCP_METRICS", "off")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "Authorization=Api-Token%20stale-env",
        )
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .args(["serve", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port).await;
    let answer = post(
        port,
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        &[],
    )
    .await;
    assert!(answer["result"]["tools"].is_array(), "{answer}");
    let spans = receiver
        .spans_when(|spans| !named(spans, "tools/list").is_empty())
        .await;
    assert_eq!(
        named(&spans, "tools/list")[0]["headers"]["authorization"],
        "Api-Token from-the-secret"
    );
}

#[tokio::test]
#[ignore = "needs the tools' Python (scripts/test.sh)"]
async fn a_lambda_invocation_sends_its_spans_before_it_answers() {
    let receiver = Receiver::start().await;
    let sandbox = Sandbox::start(SandboxConfig::demo()).await.unwrap();
    let (api, runtime_addr) = RuntimeApi::start().await.unwrap();
    let endpoint = receiver.endpoint();
    // The batch timer alone would send nothing for ten minutes: only the flush can.
    let _child = lambda_function(
        &sandbox,
        runtime_addr,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ],
    );
    for (i, trace) in [TRACE_A, TRACE_META].into_iter().enumerate() {
        let event = dql_event(i, &traceparent(trace, PARENT_A));
        let (_, response) = api
            .invoke(&format!("traced-{i}"), event, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(response["statusCode"], 200, "{response}");

        // Read at once: the spans must already be there when the invocation has answered.
        let spans = receiver.spans().await;
        let mine = in_trace(&spans, trace);
        let server = mine
            .iter()
            .find(|s| s["kind"] == "SPAN_KIND_SERVER")
            .unwrap_or_else(|| {
                panic!("invocation {i}: no server span when it answered: {spans:#?}")
            });
        assert_eq!(server["name"], "tools/call execute_dql");
        assert_eq!(server["parent_span_id"], PARENT_A);
        assert!(
            mine.iter().any(
                |s| s["kind"] == "SPAN_KIND_CLIENT" && s["parent_span_id"] == server["span_id"]
            ),
            "{mine:#?}"
        );
        assert_eq!(server["resource"]["faas.name"], "dynatrace-mcp");
        assert_eq!(server["resource"]["cloud.provider"], "aws");
    }
    assert_eq!(receiver.get("problems").await, json!([]));
}

#[tokio::test]
async fn a_receiver_that_hangs_costs_a_lambda_invocation_at_most_the_flush_limit() {
    // Accepts connections and never answers.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", hung.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = hung.accept().await {
            open.push(stream);
        }
    });
    let sandbox = Sandbox::start(SandboxConfig::demo()).await.unwrap();
    let (api, runtime_addr) = RuntimeApi::start().await.unwrap();
    let _child = lambda_function(
        &sandbox,
        runtime_addr,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)],
    );
    for i in 0..2 {
        let (took, response) = api
            .invoke(
                &format!("hung-{i}"),
                dql_event(i, &traceparent(TRACE_A, PARENT_A)),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        assert_eq!(response["statusCode"], 200, "{response}");
        assert!(
            took < Duration::from_millis(3500),
            "invocation {i} took {took:?} with a hung receiver (the flush waits at most 2 s)"
        );
    }
    held.abort();
}

#[tokio::test]
async fn bad_trace_settings_stop_the_start_with_what_to_change() {
    let sandbox = Sandbox::start(SandboxConfig::demo()).await.unwrap();
    let output = tokio::process::Command::new(binary())
        .env_clear()
        .envs(sandbox.settings_pairs())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318")
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "Authorization Api-Token dt0c01.SECRETVALUE",
        )
        .arg("stdio")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_HEADERS: pair 1 has no ="),
        "{stderr}"
    );
    assert!(!stderr.contains("SECRETVALUE"), "{stderr}");
}

#[tokio::test]
#[ignore = "needs the tools' Python (scripts/test.sh)"]
async fn stdio_sends_what_is_left_when_its_client_closes() {
    use tokio::io::AsyncWriteExt;

    let receiver = Receiver::start().await;
    let sandbox = Sandbox::start(SandboxConfig::demo()).await.unwrap();
    let mut child = tokio::process::Command::new(binary())
        .env_clear()
        .envs(sandbox.settings_pairs())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        // Only the exit can send them.
        .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
        .arg("stdio")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let messages = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "traces-test", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "execute_dql", "arguments": {"dqlStatement": "fetch logs | limit 1"},
            "_meta": {"traceparent": traceparent(TRACE_META, PARENT_META)}}}),
    ];
    for message in &messages {
        stdin
            .write_all(format!("{message}\n").as_bytes())
            .await
            .unwrap();
    }
    loop {
        let line = tokio::time::timeout(Duration::from_secs(15), lines.next_line())
            .await
            .expect("stdio answers")
            .unwrap()
            .expect("stdio answers");
        let answer: Value = serde_json::from_str(&line).unwrap();
        if answer["id"] == 2 {
            assert!(answer["result"].is_object(), "{answer}");
            break;
        }
    }
    assert!(
        receiver.spans().await.is_empty(),
        "nothing is sent before the exit"
    );
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("stdio exits when its input closes")
        .unwrap();
    assert!(status.success());

    let spans = receiver.spans().await;
    let initialize = named(&spans, "initialize");
    assert_eq!(initialize.len(), 1, "{spans:#?}");
    assert_eq!(initialize[0]["attributes"]["network.transport"], "pipe");
    let call = named(&spans, "tools/call execute_dql")[0];
    assert_eq!(call["trace_id"], TRACE_META);
    assert_eq!(call["parent_span_id"], PARENT_META);
    assert_eq!(call["attributes"]["network.transport"], "pipe");
    assert!(
        in_trace(&spans, TRACE_META)
            .iter()
            .any(|s| s["kind"] == "SPAN_KIND_CLIENT" && s["parent_span_id"] == call["span_id"]),
        "{spans:#?}"
    );
}
