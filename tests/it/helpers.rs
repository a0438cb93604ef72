//! `spawn_app()` and friends: start the production wiring against a fresh sandbox tenant.

use std::net::SocketAddr;
use std::sync::Arc;

use dynatrace_mcp::config::{FrontDoor, Settings, Source};
use dynatrace_mcp::startup::{self, AppState};
use dynatrace_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const AUTH_TOKEN: &str = "test-auth-token-0123456789abcdef";

pub struct TestApp {
    pub addr: SocketAddr,
    pub sandbox: Sandbox,
    pub state: Arc<AppState>,
    pub http: reqwest::Client,
    _shutdown: tokio_util::sync::DropGuard,
}

pub struct Options {
    pub sandbox: SandboxConfig,
    /// Extra settings, layered over the sandbox's OAuth settings.
    pub env: Vec<(&'static str, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            sandbox: SandboxConfig::demo(),
            env: Vec::new(),
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

pub async fn spawn_with(options: Options) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn_on(listener, options).await
}

/// Serves on `listener`, already bound (so a test can tell an identity provider the server's URL
/// first). `{addr}` in a setting's value becomes the listener's address.
pub async fn spawn_on(listener: tokio::net::TcpListener, options: Options) -> TestApp {
    let sandbox = Sandbox::start(options.sandbox)
        .await
        .expect("sandbox starts");
    let addr = listener.local_addr().unwrap();
    let mut source: Source = Source::from_pairs(sandbox.settings_pairs());
    // In process, EMF records would go to the test runner's own stdout (tests/it/metrics.rs checks
    // them on the real binary); a test can still turn them on.
    source.set("MCP_METRICS", "off");
    for (k, v) in options.env {
        source.set(k, v.replace("{addr}", &addr.to_string()));
    }
    serve_source(listener, sandbox, source).await
}

/// Serves with exactly `source`'s settings; `sandbox` is the tenant the test inspects first.
pub async fn serve_source(
    listener: tokio::net::TcpListener,
    sandbox: Sandbox,
    source: Source,
) -> TestApp {
    let addr = listener.local_addr().unwrap();
    let settings = Settings::from_source(&source, FrontDoor::Http).expect("valid settings");
    let shutdown = CancellationToken::new();
    let http_options =
        startup::http_options(&settings, FrontDoor::Http, Some(addr), shutdown.clone());
    let state = startup::build_state(settings).expect("state builds");
    let router = dynatrace_mcp::http::router(state.clone(), http_options);
    let stop = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .unwrap();
    });
    TestApp {
        addr,
        sandbox,
        state,
        http: reqwest::Client::new(),
        _shutdown: shutdown.drop_guard(),
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs a JSON-RPC message to /mcp as a modern Streamable HTTP client would (legacy headers).
    pub fn post(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .post(self.url(path))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .json(body)
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request is sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn rpc(&self, method: &str, params: Value) -> Reply {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        self.send(
            self.post("/mcp", &body)
                .header("mcp-protocol-version", "2025-11-25"),
        )
        .await
    }

    /// Calls a tool (legacy era, no initialize: the server is stateless) and returns `result`.
    pub async fn call_tool(&self, name: &str, arguments: Value) -> Value {
        let reply = self
            .rpc("tools/call", json!({"name": name, "arguments": arguments}))
            .await;
        assert_eq!(
            reply.status, 200,
            "tools/call answered {}: {}",
            reply.status, reply.text
        );
        reply
            .body
            .get("result")
            .cloned()
            .unwrap_or_else(|| panic!("no result in {}", reply.text))
    }
}

/// The text of a tool result's first content block.
pub fn text_of(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub fn is_error(result: &Value) -> bool {
    result["isError"].as_bool().unwrap_or(false)
}

/// Path of the binary under test (built by cargo for integration tests).
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_dynatrace-mcp")
}

/// Sends SIGTERM, as ECS does.
pub fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// A JSON-RPC call to `base`'s /mcp with the static token ([`AUTH_TOKEN`]); its answer.
pub async fn call_with_token(http: &reqwest::Client, base: &str, call: &Value) -> Value {
    http.post(format!("{base}/mcp"))
        .header("x-mcp-auth-token", AUTH_TOKEN)
        .json(call)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits (up to 5 s) until something accepts connections on `port` of loopback.
pub async fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// The real binary, `serve` on a free loopback port, with `sandbox`'s settings and `env` on top,
/// once it accepts connections; its stderr is dropped and its stdout goes to `stdout`.
pub async fn serve_binary(
    sandbox: &Sandbox,
    env: &[(&str, &str)],
    stdout: std::process::Stdio,
) -> (tokio::process::Child, u16) {
    serve_binary_with(sandbox, env, stdout, std::process::Stdio::null()).await
}

/// [`serve_binary`] with its stderr (the log) going to `stderr`.
pub async fn serve_binary_with(
    sandbox: &Sandbox,
    env: &[(&str, &str)],
    stdout: std::process::Stdio,
    stderr: std::process::Stdio,
) -> (tokio::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new(binary())
        .env_clear()
        .envs(sandbox.settings_pairs())
        .envs(env.iter().copied())
        .args(["serve", "--port", &port.to_string()])
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_port(port).await;
    (child, port)
}

/// At most `max` characters of `text`, for assertion messages.
pub fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((at, _)) => format!("{}…", &text[..at]),
    }
}

/// The binary as a Lambda function would start it, under the Runtime API stand-in at `runtime`:
/// Lambda's variables and the static token, nothing of the caller's environment.
pub fn lambda_command(runtime: std::net::SocketAddr) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(binary());
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", runtime.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "dynatrace-mcp")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/dynatrace-mcp")
        .env("AWS_REGION", "us-east-1")
        .env("MCP_AUTH_TOKEN", AUTH_TOKEN)
        .kill_on_drop(true);
    command
}
