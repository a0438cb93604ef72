//! Who is calling, with whose Dynatrace rights: the static token's scopes, pass-through tokens
//! (never crossing between callers), what is bound to a caller, the rate limit, API Gateway
//! authorizer claims on Lambda, and the audit line.

use std::time::Duration;

use dynatrace_mcp::config::{FrontDoor, Settings, Source};
use dynatrace_mcp::{lambda, startup};
use dynatrace_sandbox::{ALL_SCOPES, QueryTiming, Sandbox, SandboxConfig};
use futures::StreamExt;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::helpers::*;

pub const ALICE_DT: &str = "dt0s16.ALICE.platform-token-of-alice";
pub const BOB_DT: &str = "dt0s16.BOB.platform-token-of-bob";
const SIGNING_KEY: &str = "a-signing-key-for-tests-0123456789abcdef";

/// A tenant that knows alice's and bob's platform tokens besides the server's credential (and
/// holds few logs, so a thousand queries stay quick in a debug build).
pub fn two_user_tenant() -> SandboxConfig {
    let mut config = SandboxConfig::demo();
    config.log_records = 200;
    let all: Vec<String> = ALL_SCOPES.iter().map(|s| s.to_string()).collect();
    config.platform_tokens.push((ALICE_DT.into(), all.clone()));
    config.platform_tokens.push((BOB_DT.into(), all));
    config
}

async fn passthrough_app(mode: &str, extra: Vec<(&'static str, String)>) -> TestApp {
    let mut env = vec![
        ("MCP_AUTH_TOKEN", AUTH_TOKEN.to_string()),
        ("DT_TOKEN_PASSTHROUGH", mode.to_string()),
        ("DT_ENABLE_WRITE_TOOLS", "1".to_string()),
    ];
    env.extend(extra);
    spawn_with(Options {
        sandbox: two_user_tenant(),
        env,
    })
    .await
}

/// Calls a tool with the static token and, when given, a caller's own Dynatrace token.
async fn call_as(app: &TestApp, dt_token: Option<&str>, name: &str, arguments: Value) -> Reply {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}});
    let mut request = app
        .post("/mcp", &body)
        .header("mcp-protocol-version", "2025-11-25")
        .header("x-mcp-auth-token", AUTH_TOKEN);
    if let Some(token) = dt_token {
        request = request.header("x-dynatrace-token", token);
    }
    app.send(request).await
}

fn result(reply: &Reply) -> &Value {
    assert_eq!(reply.status, 200, "{}", reply.text);
    &reply.body["result"]
}

#[tokio::test]
async fn two_callers_interleaving_1000_calls_never_reach_dynatrace_with_each_others_token() {
    let app = passthrough_app("1", vec![]).await;
    let app = &app;
    let outcomes: Vec<()> = futures::stream::iter(0..1000)
        .map(|i| async move {
            let (who, token) = if i % 2 == 0 { ("alice", ALICE_DT) } else { ("bob", BOB_DT) };
            let marker = format!("{who}-{i}");
            // Half run a query, half verify one: both reach Grail with the statement.
            let (tool, args) = if i % 4 < 2 {
                (
                    "execute_dql",
                    json!({"dqlStatement": format!("fetch logs | filter content == \"{marker}\" | limit 1")}),
                )
            } else {
                (
                    "verify_dql",
                    json!({"dqlStatement": format!("fetch logs | filter content == \"{marker}\"")}),
                )
            };
            let reply = call_as(app, Some(token), tool, args).await;
            assert!(!is_error(result(&reply)), "{}", reply.text);
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert_eq!(outcomes.len(), 1000);
    let mut seen = 0;
    let mut crossings = Vec::new();
    for recorded in app.sandbox.requests() {
        if !(recorded.path.ends_with("query:execute") || recorded.path.ends_with("query:verify")) {
            continue;
        }
        let query = recorded.json()["query"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let owner = if query.contains("\"alice-") {
            ALICE_DT
        } else if query.contains("\"bob-") {
            BOB_DT
        } else {
            continue;
        };
        seen += 1;
        if recorded.bearer.as_deref() != Some(owner) {
            crossings.push(query);
        }
    }
    assert_eq!(seen, 1000, "every call reached the tenant once");
    assert!(
        crossings.is_empty(),
        "calls that reached Dynatrace with another caller's token: {crossings:?}"
    );
    // The server's own credential was never used for these calls.
    assert!(app.sandbox.requests_to("/sso/oauth2/token").is_empty());
}

#[tokio::test]
async fn without_passthrough_the_header_is_refused_rather_than_ignored() {
    let app = spawn_with(Options {
        env: vec![("MCP_AUTH_TOKEN", AUTH_TOKEN.into())],
        ..Default::default()
    })
    .await;
    let reply = call_as(&app, Some(ALICE_DT), "get_environment_info", json!({})).await;
    assert_eq!(reply.status, 400);
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("DT_TOKEN_PASSTHROUGH"), "{message}");
    assert!(!reply.text.contains(ALICE_DT));
    assert!(app.sandbox.requests().is_empty());
}

#[tokio::test]
async fn passthrough_required_holds_no_credential_and_says_what_to_send() {
    let app = passthrough_app(
        "required",
        vec![
            ("OAUTH_CLIENT_ID", String::new()),
            ("OAUTH_CLIENT_SECRET", String::new()),
            ("DT_ACCOUNT_URN", String::new()),
            ("MCP_SIGNING_KEY", SIGNING_KEY.to_string()),
        ],
    )
    .await;
    // Listing tools needs no Dynatrace credential.
    let reply = app
        .send(
            app.post(
                "/mcp",
                &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            )
            .header("mcp-protocol-version", "2025-11-25")
            .header("x-mcp-auth-token", AUTH_TOKEN),
        )
        .await;
    assert_eq!(reply.status, 200);
    // A call without the header is refused with a sentence; nothing reaches Dynatrace.
    let reply = call_as(&app, None, "get_environment_info", json!({})).await;
    assert!(is_error(result(&reply)));
    assert!(
        text_of(result(&reply)).contains("X-Dynatrace-Token"),
        "{}",
        reply.text
    );
    assert!(app.sandbox.requests().is_empty());
    // With it, the call reaches Dynatrace with that token only.
    let reply = call_as(&app, Some(ALICE_DT), "get_environment_info", json!({})).await;
    assert!(!is_error(result(&reply)), "{}", reply.text);
    let calls = app.sandbox.requests();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].bearer.as_deref(), Some(ALICE_DT));
    // A token Dynatrace does not accept: the sentence names the header, not the server's setup.
    let reply = call_as(
        &app,
        Some("dt0s16.UNKNOWN.not-a-token"),
        "get_environment_info",
        json!({}),
    )
    .await;
    let text = text_of(result(&reply));
    assert!(
        text.contains("rejected the token you sent for this environment (X-Dynatrace-Token"),
        "{text}"
    );
    assert!(!text.contains("not-a-token"));
}

#[tokio::test]
async fn passthrough_required_refuses_a_server_credential_or_a_missing_signing_key() {
    let sandbox = Sandbox::start(SandboxConfig::demo()).await.unwrap();
    let mut source: Source = Source::from_pairs(sandbox.settings_pairs());
    source.set("DT_TOKEN_PASSTHROUGH", "required");
    let err = Settings::from_source(&source, FrontDoor::Http).unwrap_err();
    assert_eq!(err.variable, "OAUTH_CLIENT_ID");
    for key in ["OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "DT_ACCOUNT_URN"] {
        source.set(key, "");
    }
    let err = Settings::from_source(&source, FrontDoor::Http).unwrap_err();
    assert_eq!(err.variable, "MCP_SIGNING_KEY");
    source.set("MCP_SIGNING_KEY", SIGNING_KEY);
    let settings = Settings::from_source(&source, FrontDoor::Http).unwrap();
    assert!(settings.credentials.is_none());
}

#[tokio::test]
async fn a_query_handle_and_a_confirmation_serve_only_the_caller_that_got_them() {
    let app = passthrough_app("1", vec![("MCP_TOOL_TIMEOUT_SECONDS", "3".into())]).await;
    app.sandbox
        .set_query_timing(QueryTiming::Duration(Duration::from_millis(3500)));
    let reply = call_as(
        &app,
        Some(ALICE_DT),
        "execute_dql",
        json!({"dqlStatement": "fetch logs | limit 3"}),
    )
    .await;
    let handle = result(&reply)["structuredContent"]["queryHandle"]
        .as_str()
        .expect("a handle")
        .to_string();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let reply = call_as(
        &app,
        Some(BOB_DT),
        "execute_dql",
        json!({"queryHandle": handle}),
    )
    .await;
    assert!(is_error(result(&reply)));
    assert!(
        text_of(result(&reply)).contains("issued to another caller"),
        "{}",
        reply.text
    );
    let reply = call_as(
        &app,
        Some(ALICE_DT),
        "execute_dql",
        json!({"queryHandle": handle}),
    )
    .await;
    assert!(!is_error(result(&reply)), "{}", reply.text);
    assert_eq!(result(&reply)["structuredContent"]["status"], "succeeded");

    let email = json!({"toRecipients": ["ops@example.com"], "subject": "Deploy", "body": "done"});
    let preview = call_as(&app, Some(ALICE_DT), "send_email", email.clone()).await;
    let token = result(&preview)["structuredContent"]["confirmationToken"]
        .as_str()
        .unwrap()
        .to_string();
    let mut confirmed = email.clone();
    confirmed["confirmationToken"] = json!(token);
    let reply = call_as(&app, Some(BOB_DT), "send_email", confirmed.clone()).await;
    assert!(is_error(result(&reply)));
    assert!(text_of(result(&reply)).contains("issued to another caller"));
    assert!(app.sandbox.emails().is_empty());
    let reply = call_as(&app, Some(ALICE_DT), "send_email", confirmed).await;
    assert!(!is_error(result(&reply)), "{}", reply.text);
    assert_eq!(app.sandbox.emails().len(), 1);
    let sent = app.sandbox.requests_to("/platform/email/v1/emails");
    assert_eq!(sent[0].bearer.as_deref(), Some(ALICE_DT));
}

#[tokio::test]
async fn the_static_tokens_scopes_decide_its_tool_set() {
    let app = spawn_with(Options {
        env: vec![
            ("MCP_AUTH_TOKEN", AUTH_TOKEN.into()),
            ("MCP_AUTH_TOKEN_SCOPES", "read".into()),
            ("MCP_AUTH_TOKEN_PRINCIPAL", "ci-readonly".into()),
            ("DT_ENABLE_WRITE_TOOLS", "1".into()),
            ("DT_ENABLE_DAVIS_COPILOT", "1".into()),
        ],
        ..Default::default()
    })
    .await;
    let reply = app
        .send(
            app.post(
                "/mcp",
                &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            )
            .header("mcp-protocol-version", "2025-11-25")
            .header("x-mcp-auth-token", AUTH_TOKEN),
        )
        .await;
    let tools = reply.body["result"]["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 17);
    assert!(tools.iter().all(|t| {
        !["send_email", "send_event", "chat_with_davis_copilot"]
            .contains(&t["name"].as_str().unwrap())
    }));
    let reply = call_as(
        &app,
        None,
        "send_event",
        json!({"eventType": "CUSTOM_INFO", "title": "x"}),
    )
    .await;
    assert!(is_error(result(&reply)));
    let text = text_of(result(&reply));
    assert!(
        text.contains("does not allow the write tools") && text.contains("dynatrace:write"),
        "{text}"
    );
    assert!(app.sandbox.requests().is_empty());
    // The principal's name reaches Dynatrace's records of each call.
    call_as(&app, None, "get_environment_info", json!({})).await;
    let calls = app
        .sandbox
        .requests_to("/platform/management/v1/environment");
    assert!(
        calls[0]
            .client_context
            .as_deref()
            .unwrap()
            .ends_with("principal=ci-readonly source=static_token")
    );
}

#[tokio::test]
async fn a_static_token_whose_groups_are_all_switched_off_gets_403() {
    let app = spawn_with(Options {
        env: vec![
            ("MCP_AUTH_TOKEN", AUTH_TOKEN.into()),
            ("MCP_AUTH_TOKEN_SCOPES", "write".into()),
        ],
        ..Default::default()
    })
    .await;
    let reply = app
        .send(
            app.post(
                "/mcp",
                &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            )
            .header("mcp-protocol-version", "2025-11-25")
            .header("x-mcp-auth-token", AUTH_TOKEN),
        )
        .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
}

#[tokio::test]
async fn the_rate_limit_is_per_caller_and_says_when_to_retry() {
    // One principal (the static token): another Dynatrace token does not buy a fresh allowance.
    let app = passthrough_app("1", vec![("MCP_RATE_LIMIT", "3/60s".into())]).await;
    for _ in 0..3 {
        let reply = call_as(&app, Some(ALICE_DT), "get_grail_budget", json!({})).await;
        assert!(!is_error(result(&reply)));
    }
    let reply = call_as(&app, Some(ALICE_DT), "get_grail_budget", json!({})).await;
    assert!(is_error(result(&reply)));
    let text = text_of(result(&reply));
    assert!(
        text.contains("at most 3 tool calls per 60 s") && text.contains("retry in 20 s"),
        "{text}"
    );
    let reply = call_as(&app, Some(BOB_DT), "get_grail_budget", json!({})).await;
    assert!(
        is_error(result(&reply)),
        "same principal, other token: {}",
        reply.text
    );
    // tools/list is not a tool call.
    let reply = app
        .send(
            app.post(
                "/mcp",
                &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            )
            .header("mcp-protocol-version", "2025-11-25")
            .header("x-mcp-auth-token", AUTH_TOKEN),
        )
        .await;
    assert_eq!(reply.status, 200);

    // Anonymous callers (no other identity) are told apart by their own token.
    let app = spawn_with(Options {
        sandbox: two_user_tenant(),
        env: vec![
            ("DT_TOKEN_PASSTHROUGH", "1".into()),
            ("MCP_RATE_LIMIT", "3/60s".into()),
        ],
    })
    .await;
    for _ in 0..3 {
        assert!(!is_error(result(
            &call_as(&app, Some(ALICE_DT), "get_grail_budget", json!({})).await
        )));
    }
    assert!(is_error(result(
        &call_as(&app, Some(ALICE_DT), "get_grail_budget", json!({})).await
    )));
    assert!(!is_error(result(
        &call_as(&app, Some(BOB_DT), "get_grail_budget", json!({})).await
    )));
}

/// An HTTP API event whose JWT authorizer verified a token with `scope`.
fn authorized_event(scope: &str) -> Value {
    let mut event: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/tests/fixtures/lambda/apigw-v2-http-jwt-authorizer.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    event["requestContext"]["authorizer"]["jwt"]["claims"]["scope"] = json!(scope);
    event
}

async fn lambda_router(env: &[(&str, &str)]) -> (axum::Router, Sandbox) {
    let sandbox = Sandbox::start(SandboxConfig::demo()).await.unwrap();
    let mut source = Source::from_pairs(sandbox.settings_pairs());
    source.set("DT_ENABLE_WRITE_TOOLS", "1");
    for (k, v) in env {
        source.set(*k, *v);
    }
    let settings = Settings::from_source(&source, FrontDoor::Lambda).unwrap();
    let options =
        startup::http_options(&settings, FrontDoor::Lambda, None, CancellationToken::new());
    (
        dynatrace_mcp::http::router(startup::build_state(settings).unwrap(), options),
        sandbox,
    )
}

async fn invoke(router: &axum::Router, event: &Value) -> (u16, Value) {
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let response = router
        .clone()
        .oneshot(lambda::prepare(request))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn on_lambda_the_gateway_authorizers_claims_identify_the_caller_when_trusted() {
    let (router, sandbox) = lambda_router(&[("MCP_TRUST_GATEWAY_AUTHORIZER", "1")]).await;
    let (status, body) = invoke(&router, &authorized_event("openid dynatrace:read")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["tools"].as_array().unwrap().len(), 17);
    let (status, _) = invoke(&router, &authorized_event("dynatrace:read dynatrace:write")).await;
    assert_eq!(status, 200);
    // Claims without any of the scopes: 403.
    let (status, _) = invoke(&router, &authorized_event("openid")).await;
    assert_eq!(status, 403);
    // No authorizer in the event (a route without one) and no other credential: 401.
    let mut event = authorized_event("dynatrace:read");
    event["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    let (status, _) = invoke(&router, &event).await;
    assert_eq!(status, 401);
    // The claims name the principal in what reaches Dynatrace.
    let mut event = authorized_event("dynatrace:read");
    event["body"] = json!(json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "get_environment_info", "arguments": {}}}).to_string());
    let (status, body) = invoke(&router, &event).await;
    assert_eq!(status, 200, "{body}");
    let calls = sandbox.requests_to("/platform/management/v1/environment");
    assert!(
        calls[0]
            .client_context
            .as_deref()
            .unwrap()
            .ends_with("principal=a1b2c3d4-5678-90ab-cdef-EXAMPLE11111 source=gateway"),
        "{:?}",
        calls[0].client_context
    );

    // Not trusted: the same claims count for nothing, the static token is needed.
    let (router, _sandbox) = lambda_router(&[("MCP_AUTH_TOKEN", AUTH_TOKEN)]).await;
    let (status, _) = invoke(&router, &authorized_event("dynatrace:read")).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn audit_lines_name_the_caller_and_the_cost_and_hold_no_secret() {
    let sandbox = Sandbox::start(two_user_tenant()).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(binary())
        .env_clear()
        .envs(sandbox.settings_pairs())
        .env("MCP_AUTH_TOKEN", AUTH_TOKEN)
        .env("MCP_AUTH_TOKEN_PRINCIPAL", "team-sre")
        .env("DT_TOKEN_PASSTHROUGH", "1")
        .env("DT_ENABLE_WRITE_TOOLS", "1")
        .env("MCP_LOG_LEVEL", "trace")
        .env("MCP_LOG_FORMAT", "json")
        .args(["serve", "--port", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http.get(format!("{url}/health")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let post = |body: Value, dt: Option<&'static str>| {
        let mut request = http
            .post(format!("{url}/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .header("x-mcp-auth-token", AUTH_TOKEN)
            .header("x-request-id", "req-audit-1")
            .json(&body);
        if let Some(dt) = dt {
            request = request.header("x-dynatrace-token", dt);
        }
        request.send()
    };
    let call = |name: &str, args: Value| json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": args}});
    post(
        call(
            "execute_dql",
            json!({"dqlStatement": "fetch logs | limit 2"}),
        ),
        Some(ALICE_DT),
    )
    .await
    .unwrap();
    post(
        call("execute_dql", json!({"dqlStatement": "fetch nonsense"})),
        None,
    )
    .await
    .unwrap();
    let email =
        json!({"toRecipients": ["a@example.com"], "subject": "s", "body": "secret body text"});
    let preview: Value = post(call("send_email", email.clone()), Some(BOB_DT))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let confirmation = preview["result"]["structuredContent"]["confirmationToken"]
        .as_str()
        .unwrap()
        .to_string();
    let mut confirmed = email.clone();
    confirmed["confirmationToken"] = json!(confirmation);
    post(call("send_email", confirmed), Some(BOB_DT))
        .await
        .unwrap();

    child.start_kill().unwrap();
    let output = child.wait_with_output().await.unwrap();
    let logs = String::from_utf8_lossy(&output.stderr);
    let audit: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["target"] == "audit")
        .collect();
    assert_eq!(audit.len(), 4, "one audit line per tool call: {logs}");
    let first = &audit[0];
    assert_eq!(first["principal"], "team-sre");
    assert_eq!(first["source"], "static_token");
    assert_eq!(first["tool"], "execute_dql");
    assert_eq!(first["dql"], "fetch logs | limit 2");
    assert_eq!(first["outcome"], "ok");
    assert_eq!(first["client_request_id"], "req-audit-1");
    assert_eq!(
        first["request_id"].as_str().unwrap().len(),
        16,
        "the server's own id"
    );
    assert!(first["scanned_bytes"].as_u64().unwrap() > 0, "{first}");
    assert!(first["result_bytes"].as_u64().unwrap() > 100, "{first}");
    assert!(first["latency_ms"].is_u64());
    assert!(first["timestamp"].is_string());
    assert_eq!(first["dt_token"].as_str().unwrap().len(), 12);
    assert!(
        audit[1]["dt_token"].is_null(),
        "no caller token on the second call"
    );
    assert_eq!(audit[1]["outcome"], "bad_request");
    assert_ne!(
        audit[2]["dt_token"], first["dt_token"],
        "bob's fingerprint differs from alice's"
    );
    assert_eq!(audit[3]["tool"], "send_email");
    // Nothing secret anywhere in the logs, at trace level: no credential, and none of what the
    // tools were sent (an email's body, a confirmation token), which rmcp would log whole.
    for secret in [
        AUTH_TOKEN,
        ALICE_DT,
        BOB_DT,
        dynatrace_sandbox::DEMO_CLIENT_SECRET,
        "secret body text",
        confirmation.as_str(),
    ] {
        assert!(
            !logs.contains(secret),
            "a secret reached the logs: {secret:.12}…"
        );
    }
}
