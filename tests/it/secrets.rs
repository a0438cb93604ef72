//! Cold start with a Secrets Manager secret: the real binary reads it through the real AWS SDK
//! from a local Secrets Manager API (moto's server), reached with `AWS_ENDPOINT_URL`.
//!
//! These tests need `moto_server` (`MOTO_SERVER`, installed by `scripts/test-tools.sh python`);
//! `scripts/test.sh` runs them. Plain `cargo test` skips them (they are `#[ignore]`d).

use std::process::Stdio;
use std::time::Duration;

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use dynatrace_sandbox::{DEMO_CLIENT_SECRET, Sandbox, SandboxConfig};
use serde_json::json;

use crate::helpers::{AUTH_TOKEN, binary, call_with_token};
use crate::idp::Moto;

pub(crate) async fn create_secret(moto: &Moto, name: &str, value: &str) {
    let config = aws_sdk_secretsmanager::Config::builder()
        .http_client(dynatrace_mcp::aws::http_client())
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&moto.url)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("secret created");
}

pub(crate) fn command(
    moto: &Moto,
    secret_variable: &str,
    secret_id: &str,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(binary());
    command
        .env_clear()
        .env(secret_variable, secret_id)
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .kill_on_drop(true);
    command
}

/// `serve` with its settings in the secret `secret_id`, once healthy: the process and its base URL.
async fn serve_from_secret(moto: &Moto, secret_id: &str) -> (tokio::process::Child, String) {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let server = command(moto, "DT_SECRET_ID", secret_id)
        .args(["serve", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut healthy = false;
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{base}/health")).send().await {
            healthy = r.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        healthy,
        "the server started with settings from the secret {secret_id}"
    );
    (server, base)
}

#[tokio::test]
#[ignore = "needs moto_server: run scripts/test.sh"]
async fn settings_come_from_the_secret_at_cold_start() {
    let moto = Moto::start().await;
    let sandbox = Sandbox::start(SandboxConfig::demo()).await.unwrap();
    let mut secret = serde_json::Map::new();
    for (k, v) in sandbox.settings_pairs() {
        secret.insert(k, json!(v));
    }
    secret.insert("MCP_AUTH_TOKEN".into(), json!(AUTH_TOKEN));
    create_secret(
        &moto,
        "mcp/dynatrace",
        &serde_json::Value::Object(secret).to_string(),
    )
    .await;

    let (_server, base) = serve_from_secret(&moto, "mcp/dynatrace").await;
    let http = reqwest::Client::new();
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_environment_info", "arguments": {}}});
    let refused = http
        .post(format!("{base}/mcp"))
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        401,
        "MCP_AUTH_TOKEN from the secret is enforced"
    );
    let reply = call_with_token(&http, &base, &call).await;
    assert_eq!(
        reply["result"]["structuredContent"]["environmentId"], "sandbox1",
        "{reply}"
    );
    // The OAuth client from the secret was used.
    let sso = sandbox.requests_to("/sso/oauth2/token");
    assert_eq!(
        sso[0].form("client_secret").as_deref(),
        Some(DEMO_CLIENT_SECRET)
    );
}

async fn start_up_error(moto: &Moto, variable: &str, secret_id: &str) -> String {
    let output = command(moto, variable, secret_id)
        .arg("stdio")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "nothing on stdout");
    // Log lines may precede it; the failure itself is one line of its own.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("dynatrace-mcp: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    errors[0].to_string()
}

#[tokio::test]
#[ignore = "needs moto_server: run scripts/test.sh"]
async fn a_missing_secret_stops_start_up_with_a_clear_line() {
    let moto = Moto::start().await;
    let error = start_up_error(&moto, "DT_SECRET_ID", "mcp/does-not-exist").await;
    assert!(error.contains("DT_SECRET_ID"), "{error}");
    assert!(error.contains("mcp/does-not-exist"), "{error}");
    assert!(error.contains("ResourceNotFoundException"), "{error}");
}

#[tokio::test]
#[ignore = "needs moto_server: run scripts/test.sh"]
async fn a_secret_without_credentials_stops_start_up_naming_what_is_missing() {
    let moto = Moto::start().await;
    create_secret(&moto, "mcp/no-creds", r#"{"DT_ENVIRONMENT":"https://abc12345.apps.dynatrace.com","MCP_AUTH_TOKEN":"a-long-enough-auth-token"}"#).await;
    let error = start_up_error(&moto, "MCP_SECRET_ID", "mcp/no-creds").await;
    assert!(
        error.contains("DT_PLATFORM_TOKEN") && error.contains("OAUTH_CLIENT_ID"),
        "{error}"
    );
    assert!(!error.contains("a-long-enough-auth-token"));
}

#[tokio::test]
#[ignore = "needs moto_server: run scripts/test.sh"]
async fn a_malformed_secret_value_is_refused_without_echoing_it() {
    let moto = Moto::start().await;
    create_secret(&moto, "mcp/not-json", "DT_PLATFORM_TOKEN=dt0s16.VERYSECRET").await;
    let error = start_up_error(&moto, "DT_SECRET_ID", "mcp/not-json").await;
    assert!(error.contains("not JSON"), "{error}");
    assert!(!error.contains("VERYSECRET"), "{error}");
    create_secret(&moto, "mcp/bad-url", r#"{"DT_ENVIRONMENT":"abc12345.live.dynatrace.com","DT_PLATFORM_TOKEN":"dt0s16.VERYSECRET"}"#).await;
    let error = start_up_error(&moto, "DT_SECRET_ID", "mcp/bad-url").await;
    assert!(
        error.contains("DT_ENVIRONMENT (from the secret)"),
        "{error}"
    );
    assert!(!error.contains("VERYSECRET"), "{error}");
}

#[tokio::test]
#[ignore = "needs moto_server: run scripts/test.sh"]
async fn an_environment_reads_its_credential_from_its_own_secret() {
    use dynatrace_sandbox::tenant_platform_token;
    let moto = Moto::start().await;
    let prod = Sandbox::start(SandboxConfig::tenant(1)).await.unwrap();
    let dev = Sandbox::start(SandboxConfig::tenant(3)).await.unwrap();
    create_secret(
        &moto,
        "mcp/dynatrace-dev",
        &json!({"DT_PLATFORM_TOKEN": tenant_platform_token(3)}).to_string(),
    )
    .await;
    // The registry as an object inside the main secret; dev's credential in a secret of its own.
    let registry = format!(
        "{{\"prod\": {}, \"dev\": {{\"url\": \"{}\", \"secretId\": \"mcp/dynatrace-dev\"}}}}",
        prod.registry_entry("Production"),
        dev.url()
    );
    let main = format!("{{\"DT_ENVIRONMENTS\": {registry}, \"MCP_AUTH_TOKEN\": \"{AUTH_TOKEN}\"}}");
    create_secret(&moto, "mcp/dynatrace", &main).await;
    let (_server, base) = serve_from_secret(&moto, "mcp/dynatrace").await;
    let http = reqwest::Client::new();
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_environment_info", "arguments": {"environment": "*"}}});
    let reply = call_with_token(&http, &base, &call).await;
    let parts = &reply["result"]["structuredContent"]["environments"];
    assert_eq!(parts[0]["result"]["environmentId"], "sandbox1", "{reply}");
    assert_eq!(parts[1]["result"]["environmentId"], "sandbox3", "{reply}");
    assert!(
        dev.requests()
            .iter()
            .all(|r| r.bearer.as_deref() == Some(tenant_platform_token(3).as_str()))
    );

    // An entry whose secret does not exist: start-up stops with a line naming the alias.
    let broken = format!(
        "{{\"DT_ENVIRONMENTS\": {{\"prod\": {}, \"qa\": {{\"url\": \"https://qa12345.apps.dynatrace.com\", \"secretId\": \"mcp/missing\"}}}}}}",
        prod.registry_entry("Production")
    );
    create_secret(&moto, "mcp/broken", &broken).await;
    let error = start_up_error(&moto, "DT_SECRET_ID", "mcp/broken").await;
    assert!(
        error.contains(
            "DT_ENVIRONMENTS: qa: reading secret `mcp/missing` failed: ResourceNotFoundException"
        ),
        "{error}"
    );
    assert!(!error.contains(&tenant_platform_token(1)), "{error}");
}
