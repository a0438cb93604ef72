//! The secret scan: the real binary at every log level, in both log formats, driven through
//! every tool under the faults that make it log and explain the most (errors, resets, cut-off
//! answers, a proxy's page, expired tokens, the SSO endpoint down), plus wrong credentials and
//! forged confirmations. No configured secret may appear in anything it wrote or answered: not
//! whole, not any 12-character piece of it, not its base64. The Dynatrace access tokens the
//! tenant issued during the run are looked for too.

use std::time::{Duration, Instant};

use base64::Engine;
use dynatrace_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::faults::{from_schema, inject, is_write, sample_arguments};
use crate::helpers::*;

/// Faults with no waiting in them (a scan run stays short), each of which makes the server log
/// or explain something about a failed call.
const SCAN_FAULTS: &[&str] = &[
    "",
    "500",
    "reset",
    "truncated",
    "HTML page",
    "401 expired token",
    "SSO down",
];

pub(crate) fn random_secret(prefix: &str) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let body: String = (0..40)
        .map(|_| {
            let n = rng.random_range(0..62u8);
            (match n {
                0..=9 => b'0' + n,
                10..=35 => b'a' + n - 10,
                _ => b'A' + n - 36,
            }) as char
        })
        .collect();
    format!("{prefix}{body}")
}

#[derive(Clone, Copy, Debug)]
enum Credential {
    /// The server holds an OAuth client (id and secret).
    OAuthClient,
    /// The server holds a platform token, and callers may send their own (pass-through).
    PlatformTokens,
}

struct Secrets {
    auth_token: String,
    signing_key: String,
    client_secret: String,
    platform_token: String,
    caller_token: String,
}

/// Everything the scan reads: what the process wrote, and what it answered.
struct Run {
    output: String,
    answers: String,
    calls: usize,
    issued_tokens: Vec<String>,
}

struct Remote {
    url: String,
    auth: String,
    caller_token: Option<String>,
    http: reqwest::Client,
    answers: String,
    calls: usize,
}

impl Remote {
    async fn post(&mut self, body: Value, auth: Option<&str>) -> Value {
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .json(&body);
        if let Some(auth) = auth {
            request = request.header("x-mcp-auth-token", auth);
        }
        if let Some(token) = &self.caller_token {
            request = request.header("x-dynatrace-token", token);
        }
        let response = request.send().await.expect("the server answers");
        for (name, value) in response.headers() {
            self.answers
                .push_str(&format!("{name}: {}\n", value.to_str().unwrap_or_default()));
        }
        let text = response.text().await.unwrap_or_default();
        self.answers.push_str(&text);
        self.answers.push('\n');
        self.calls += 1;
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn call(&mut self, name: &str, arguments: &Value) -> Value {
        let auth = self.auth.clone();
        self.post(
            json!({"jsonrpc": "2.0", "id": self.calls, "method": "tools/call",
                   "params": {"name": name, "arguments": arguments}}),
            Some(&auth),
        )
        .await["result"]
            .clone()
    }

    /// The arguments for a call: a write gets its preview's confirmation token.
    async fn arguments(&mut self, tool: &Value, base: &Value) -> Value {
        let name = tool["name"].as_str().unwrap();
        let mut args = base.clone();
        if name == "make_workflow_public" {
            args = json!({"workflowId": "00000000-0000-0000-0000-000000000000"});
        }
        if is_write(tool) {
            let preview = self.call(name, &args).await;
            if let Some(token) = preview["structuredContent"]["confirmationToken"].as_str() {
                args["confirmationToken"] = json!(token);
            }
        }
        args
    }
}

async fn scan_run(level: &str, format: &str, credential: Credential, secrets: &Secrets) -> Run {
    let mut config = SandboxConfig::demo();
    config.client_secret = secrets.client_secret.clone();
    config.platform_tokens = vec![
        (secrets.platform_token.clone(), config.client_scopes.clone()),
        (secrets.caller_token.clone(), config.client_scopes.clone()),
    ];
    let sandbox = Sandbox::start(config).await.unwrap();
    let mut settings: Vec<(String, String)> = sandbox.settings_pairs();
    let mut caller_token = None;
    if let Credential::PlatformTokens = credential {
        settings.retain(|(k, _)| !k.starts_with("OAUTH_") && k != "DT_ACCOUNT_URN");
        settings.push(("DT_PLATFORM_TOKEN".into(), secrets.platform_token.clone()));
        settings.push(("DT_TOKEN_PASSTHROUGH".into(), "1".into()));
        caller_token = Some(secrets.caller_token.clone());
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!(
        "dtmcp-scan-{}-{level}-{format}-{credential:?}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = tokio::process::Command::new(binary())
        .env_clear()
        .envs(settings)
        .env("MCP_AUTH_TOKEN", &secrets.auth_token)
        .env("MCP_SIGNING_KEY", &secrets.signing_key)
        .env("MCP_LOG_LEVEL", level)
        .env("MCP_LOG_FORMAT", format)
        .env("MCP_TOOL_TIMEOUT_SECONDS", "3")
        .env("DT_ENABLE_WRITE_TOOLS", "1")
        .env("DT_ENABLE_DAVIS_COPILOT", "1")
        .env("SLACK_CONNECTION_ID", "sandbox-slack-connection")
        .args(["serve", "--port", &port.to_string()])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(started.elapsed() < Duration::from_secs(20), "server starts");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut remote = Remote {
        url: format!("http://127.0.0.1:{port}/mcp"),
        auth: secrets.auth_token.clone(),
        caller_token,
        http: reqwest::Client::new(),
        answers: String::new(),
        calls: 0,
    };

    // Wrong credentials: missing, a near miss (the real token with its last character changed),
    // the real token with a suffix.
    let mut near_miss = secrets.auth_token.clone();
    near_miss.pop();
    near_miss.push('#');
    let list = json!({"jsonrpc": "2.0", "id": 0, "method": "tools/list"});
    remote.post(list.clone(), None).await;
    remote.post(list.clone(), Some(&near_miss)).await;
    remote
        .post(list.clone(), Some(&format!("{}x", secrets.auth_token)))
        .await;
    let auth = secrets.auth_token.clone();
    let tools = remote.post(list, Some(&auth)).await["result"]["tools"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(tools.len() >= 28, "{level}/{format}: {} tools", tools.len());

    for tool in &tools {
        let name = tool["name"].as_str().unwrap();
        let base = sample_arguments(name).unwrap_or_else(|| from_schema(&tool["inputSchema"]));
        for fault in SCAN_FAULTS {
            sandbox.clear_faults();
            let args = remote.arguments(tool, &base).await;
            if !fault.is_empty() {
                inject(&sandbox, fault);
            }
            remote.call(name, &args).await;
        }
        sandbox.clear_faults();
        if is_write(tool) {
            // A forged confirmation, and a replayed one.
            let mut forged = base.clone();
            forged["confirmationToken"] = json!(format!("v1.{}", "A".repeat(60)));
            remote.call(name, &forged).await;
        }
    }
    // A forged query handle.
    remote
        .call(
            "execute_dql",
            &json!({"queryHandle": "v1.bm90LWEtaGFuZGxl.c2ln"}),
        )
        .await;

    let pid = child.id().unwrap().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    let output = format!(
        "{}\n{}",
        std::fs::read_to_string(&out_path).unwrap_or_default(),
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    let _ = std::fs::remove_dir_all(&dir);
    let issued_tokens = sandbox
        .requests()
        .iter()
        .filter_map(|r| r.bearer.clone())
        .filter(|b| b != &secrets.platform_token && b != &secrets.caller_token)
        .collect();
    Run {
        output,
        answers: remote.answers,
        calls: remote.calls,
        issued_tokens,
    }
}

/// What must not appear: the secret, every 12-character piece of it, its base64.
pub(crate) fn needles(secret: &str) -> Vec<String> {
    let mut needles = vec![secret.to_string()];
    let chars: Vec<char> = secret.chars().collect();
    for window in chars.windows(12) {
        needles.push(window.iter().collect());
    }
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        needles.push(engine.encode(secret));
    }
    needles
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_reaches_any_log_line_or_answer_at_any_level_or_format() {
    let secrets = Secrets {
        auth_token: random_secret("mcp-"),
        signing_key: random_secret("key-"),
        client_secret: random_secret("dt0s02.SCAN."),
        platform_token: random_secret("dt0s16.SCANP."),
        caller_token: random_secret("dt0s16.SCANC."),
    };
    let mut runs = Vec::new();
    for level in ["error", "warn", "info", "debug", "trace"] {
        for format in ["json", "text"] {
            runs.push((level, format, Credential::OAuthClient));
        }
    }
    for format in ["json", "text"] {
        runs.push(("trace", format, Credential::PlatformTokens));
    }
    let started = Instant::now();
    let secrets = std::sync::Arc::new(secrets);
    let results = futures::future::join_all(runs.iter().map(|&(level, format, credential)| {
        let secrets = secrets.clone();
        tokio::spawn(async move {
            let run = scan_run(level, format, credential, &secrets).await;
            (level, format, credential, run)
        })
    }))
    .await;
    let mut problems = Vec::new();
    let (mut bytes, mut calls) = (0usize, 0usize);
    for result in results {
        let (level, format, credential, run) = result.expect("no panic in a scan run");
        bytes += run.output.len() + run.answers.len();
        calls += run.calls;
        let named = [
            ("MCP_AUTH_TOKEN", &secrets.auth_token),
            ("MCP_SIGNING_KEY", &secrets.signing_key),
            ("OAUTH_CLIENT_SECRET", &secrets.client_secret),
            ("DT_PLATFORM_TOKEN", &secrets.platform_token),
            ("X-Dynatrace-Token", &secrets.caller_token),
        ];
        for (what, secret) in named {
            for needle in needles(secret) {
                for (place, text) in [("output", &run.output), ("answers", &run.answers)] {
                    if text.contains(&needle) {
                        problems.push(format!(
                            "{level}/{format}/{credential:?}: a piece of {what} in the {place}: `{needle}`"
                        ));
                    }
                }
            }
        }
        for token in &run.issued_tokens {
            if run.output.contains(token.as_str()) || run.answers.contains(token.as_str()) {
                problems.push(format!(
                    "{level}/{format}/{credential:?}: an access token the tenant issued"
                ));
            }
        }
        if level == "trace" {
            assert!(
                run.output.len() > 10_000,
                "{level}/{format}: trace wrote only {} bytes",
                run.output.len()
            );
        }
    }
    problems.dedup();
    eprintln!(
        "secret scan: {} runs, {calls} requests, {bytes} bytes of output and answers, in {:?}",
        runs.len(),
        started.elapsed()
    );
    assert!(
        problems.is_empty(),
        "{}",
        problems[..problems.len().min(20)].join("\n")
    );
}
