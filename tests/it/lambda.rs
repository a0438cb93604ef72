//! Lambda: recorded API Gateway REST (v1), HTTP API (v2), ALB and Function URL events, converted
//! by the real `lambda_http`, through the same Router.
//!
//! Two levels: in-process (the event is parsed by `lambda_http::request::from_str` and routed),
//! and the real binary run as a Lambda function against a stand-in of the Lambda Runtime API, so
//! `lambda_http::run` also converts the answer back into each front door's response payload.

use std::time::Duration;

use dynatrace_mcp::config::{FrontDoor, Settings};
use dynatrace_mcp::{lambda, startup};
use dynatrace_sandbox::runtime_api::RuntimeApi;
use dynatrace_sandbox::{QueryTiming, Sandbox, SandboxConfig};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::helpers::{AUTH_TOKEN, binary, lambda_command};

/// The event with the auth header added, in each payload format's own place.
fn with_token(mut event: Value) -> Value {
    event["headers"]["x-mcp-auth-token"] = json!(AUTH_TOKEN);
    if event.get("multiValueHeaders").is_some_and(Value::is_object) {
        event["multiValueHeaders"]["x-mcp-auth-token"] = json!([AUTH_TOKEN]);
    }
    event
}

const FIXTURES: &[&str] = &["apigw-v1-rest", "apigw-v2-http", "alb", "function-url"];

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/lambda/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture exists")
}

/// The Router as the Lambda front door builds it, against `sandbox`, in process.
fn lambda_router(sandbox: &Sandbox) -> axum::Router {
    let settings = Settings::from_source(
        &dynatrace_mcp::config::Source::from_pairs(sandbox.settings_pairs()),
        FrontDoor::Lambda,
    )
    .unwrap();
    let options =
        startup::http_options(&settings, FrontDoor::Lambda, None, CancellationToken::new());
    dynatrace_mcp::http::router(startup::build_state(settings).unwrap(), options)
}

#[tokio::test]
async fn every_front_door_event_reaches_the_mcp_endpoint_in_process() {
    let sandbox = Sandbox::start(SandboxConfig::demo()).await.unwrap();
    let router = lambda_router(&sandbox);
    for name in FIXTURES {
        let request =
            lambda_http::request::from_str(&fixture(name)).expect("lambda_http parses the event");
        let request = lambda::prepare(request);
        assert!(
            request.uri().path() == "/mcp" || request.uri().path() == "/",
            "{name}: routed path {}",
            request.uri().path()
        );
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response.headers().get("content-type").cloned();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(status, 200, "{name}: {}", String::from_utf8_lossy(&body));
        assert_eq!(content_type.unwrap(), "application/json", "{name}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["id"], 7, "{name}");
        assert!(
            body["result"]["tools"].as_array().unwrap().len() >= 3,
            "{name}"
        );
    }
}

/// A Lambda event's `content-length` header is whatever the event says (API Gateway passes the
/// client's on): a body longer than it announced is read as it came, and one over
/// MCP_MAX_REQUEST_BYTES is refused with 413, never a 500.
#[tokio::test]
async fn an_event_whose_body_is_longer_than_its_content_length_is_answered() {
    let sandbox = Sandbox::start(SandboxConfig::demo()).await.unwrap();
    let router = lambda_router(&sandbox);
    let padding = " ".repeat(2 << 20);
    for (body, want) in [
        // Past the 4 KiB a plain tools/list is read for, under the request limit: rmcp answers it.
        (
            format!(
                r#"{{"jsonrpc": "2.0", "id": 7, "method": "tools/list"}}{}"#,
                " ".repeat(8192)
            ),
            200,
        ),
        (
            format!(r#"{{"jsonrpc": "2.0", "id": 7, "method": "tools/list"}}{padding}"#),
            413,
        ),
    ] {
        let mut event: Value = serde_json::from_str(&fixture("apigw-v2-http")).unwrap();
        event["headers"]["content-length"] = json!("5");
        event["body"] = json!(body);
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let response = router
            .clone()
            .oneshot(lambda::prepare(request))
            .await
            .unwrap();
        let status = response.status();
        let answer = response.into_body().collect().await.unwrap().to_bytes();
        let answer = String::from_utf8_lossy(&answer);
        assert_eq!(
            status,
            want,
            "{}",
            dynatrace_mcp::identity::audit::cut(&answer, 300)
        );
        if want == 200 {
            assert!(answer.contains("execute_dql"), "{answer}");
        } else {
            assert!(answer.contains("MCP_MAX_REQUEST_BYTES"), "{answer}");
        }
    }
}

#[tokio::test]
async fn the_binary_runs_as_a_lambda_function_for_every_front_door() {
    let sandbox = Sandbox::start(SandboxConfig::demo()).await.unwrap();
    let (api, runtime_addr) = RuntimeApi::start().await.unwrap();

    let mut child = lambda_command(runtime_addr)
        .envs(sandbox.settings_pairs())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // Without the token the function answers 401, whatever the front door.
    let (_, response) = api
        .invoke(
            "no-token",
            serde_json::from_str(&fixture("apigw-v2-http")).unwrap(),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 401);

    for name in FIXTURES {
        let event = with_token(serde_json::from_str(&fixture(name)).unwrap());
        let (_, response) = api
            .invoke(name, event, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(response["statusCode"], 200, "{name}: {response}");
        let content_type = response["headers"]["content-type"]
            .as_str()
            .or_else(|| response["multiValueHeaders"]["content-type"][0].as_str());
        assert_eq!(content_type, Some("application/json"), "{name}: {response}");
        let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["id"], 7, "{name}");
        assert!(
            body["result"]["tools"].as_array().unwrap().len() >= 3,
            "{name}"
        );
        if *name == "alb" {
            assert_eq!(response["statusDescription"], "200 OK");
        }
    }

    // An event that is no HTTP request gets a short, stable error type, and the function goes on.
    let s3 = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]});
    let (_, response) = api.invoke("s3", s3, Duration::from_secs(30)).await.unwrap();
    let error: Value =
        serde_json::from_str(response["runtimeError"].as_str().unwrap_or("null")).unwrap();
    assert_eq!(error["errorType"], "InvalidEvent", "{response}");
    assert!(
        error["errorMessage"]
            .as_str()
            .unwrap()
            .contains("HTTP events only"),
        "{error}"
    );

    // A Host header that is no host name (an ALB passes any on) is answered 400; lambda_http
    // alone would panic building the URI and the invocation would fail. Found by tests/fuzz.
    for name in FIXTURES {
        for (i, host) in ["xn--a", "example.com:abc", "a b"].into_iter().enumerate() {
            let mut event = with_token(serde_json::from_str(&fixture(name)).unwrap());
            if event["multiValueHeaders"].is_object() {
                event["multiValueHeaders"]["host"] = json!([host]);
            }
            if event["headers"].is_object() {
                event["headers"]["host"] = json!(host);
            }
            let (_, response) = api
                .invoke(&format!("host-{name}-{i}"), event, Duration::from_secs(30))
                .await
                .unwrap();
            assert_eq!(response["statusCode"], 400, "{name} {host}: {response}");
        }
    }

    // A query lambda_http cannot put in a URI: a stable error type, and the function goes on.
    let mut event = with_token(serde_json::from_str(&fixture("apigw-v2-http")).unwrap());
    event["rawQueryString"] = json!("a b");
    let (_, response) = api
        .invoke("bad-query", event, Duration::from_secs(30))
        .await
        .unwrap();
    let error: Value =
        serde_json::from_str(response["runtimeError"].as_str().unwrap_or("null")).unwrap();
    assert_eq!(error["errorType"], "InvalidRequest", "{response}");

    // The invocation's remaining time bounds a tool call: a query still running when it nears
    // comes back as a handle, well before Lambda would cut the invocation off.
    sandbox.set_query_timing(QueryTiming::Duration(Duration::from_secs(20)));
    let mut event = with_token(serde_json::from_str(&fixture("apigw-v2-http")).unwrap());
    event["body"] = Value::String(
        json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "execute_dql", "arguments": {"dqlStatement": "fetch logs | limit 1"}}})
            .to_string(),
    );
    let started = std::time::Instant::now();
    let (_, response) = api
        .invoke("deadline", event, Duration::from_secs(4))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered within the invocation"
    );
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body["result"]["structuredContent"]["status"], "running",
        "{body}"
    );

    child.start_kill().unwrap();
    let output = child.wait_with_output().await.unwrap();
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(
        logs.lines()
            .any(|l| l.starts_with('{') && l.contains("\"message\"")),
        "JSON logs on Lambda: {logs}"
    );
    assert!(
        !logs.contains(dynatrace_sandbox::DEMO_CLIENT_SECRET),
        "no secret in the logs"
    );
}

#[tokio::test]
async fn a_start_up_failure_is_reported_to_the_runtime_api_as_a_json_line() {
    let (api, runtime_addr) = RuntimeApi::start().await.unwrap();
    let output = tokio::process::Command::new(binary())
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime_addr.to_string())
        .env("DT_ENVIRONMENT", "https://abc12345.apps.dynatrace.com")
        .env("DT_PLATFORM_TOKEN", "dt0s16.SECRETSECRET")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let (error_type, body) = api.init_error().expect("an init error was posted");
    assert_eq!(error_type, "Runtime.ConfigurationError");
    assert_eq!(body["errorType"], "Runtime.ConfigurationError");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(message.contains("MCP_AUTH_TOKEN"), "{message}");
    assert!(!message.contains("SECRETSECRET"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last: Value = serde_json::from_str(stderr.lines().last().unwrap()).expect("a JSON line");
    assert_eq!(last["level"], "ERROR");
    assert!(!stderr.contains("SECRETSECRET"));
}

#[tokio::test]
async fn a_lambda_without_an_auth_token_refuses_to_start() {
    let output = tokio::process::Command::new(binary())
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("DT_ENVIRONMENT", "https://abc12345.apps.dynatrace.com")
        .env("DT_PLATFORM_TOKEN", "dt0s16.SECRETSECRET")
        .env("MCP_LOG_LEVEL", "off")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("MCP_AUTH_TOKEN") && stderr.contains("MCP_ALLOW_UNAUTHENTICATED"),
        "{stderr}"
    );
    assert!(!stderr.contains("SECRETSECRET"));
}
