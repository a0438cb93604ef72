//! stdio: the real binary, spawned; only JSON-RPC on stdout, logs on stderr; both eras.

use std::time::Duration;

use dynatrace_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::helpers::binary;

#[tokio::test]
async fn stdio_carries_only_jsonrpc_on_stdout() {
    let sandbox = Sandbox::start(SandboxConfig::demo()).await.unwrap();
    let mut child = tokio::process::Command::new(binary())
        .arg("stdio")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MCP_LOG_LEVEL", "debug")
        .envs(sandbox.settings_pairs())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();

    let messages = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "it", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "execute_dql", "arguments": {"dqlStatement": "fetch logs | limit 2"}}}),
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "get_environment_info", "arguments": {}}}),
    ];
    for message in &messages {
        stdin
            .write_all(format!("{message}\n").as_bytes())
            .await
            .unwrap();
    }
    stdin.flush().await.unwrap();

    let mut replies = Vec::new();
    while replies.len() < 4 {
        let line = tokio::time::timeout(Duration::from_secs(20), stdout.next_line())
            .await
            .expect("a reply in time")
            .unwrap()
            .expect("stdout stays open");
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("not JSON-RPC on stdout: {line}"));
        assert_eq!(value["jsonrpc"], "2.0", "{line}");
        replies.push(value);
    }
    let by_id = |id: i64| replies.iter().find(|r| r["id"] == id).cloned().unwrap();
    assert_eq!(by_id(1)["result"]["protocolVersion"], "2025-11-25");
    assert!(by_id(2)["result"]["tools"].as_array().unwrap().len() >= 3);
    assert_eq!(
        by_id(3)["result"]["structuredContent"]["returnedRecords"],
        2
    );
    assert_eq!(
        by_id(4)["result"]["structuredContent"]["environmentId"],
        "sandbox1"
    );

    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("exits when stdin closes")
        .unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    let rest = String::from_utf8_lossy(&output.stdout);
    assert!(rest.trim().is_empty(), "nothing else on stdout: {rest}");
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(logs.contains("tool call"), "logs go to stderr: {logs}");
    assert!(!logs.contains(dynatrace_sandbox::DEMO_CLIENT_SECRET));
}

#[tokio::test]
async fn stdio_serves_the_stateless_2026_era_too() {
    let sandbox = Sandbox::start(SandboxConfig::demo()).await.unwrap();
    let mut child = tokio::process::Command::new(binary())
        .arg("stdio")
        .env_clear()
        .envs(sandbox.settings_pairs())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
    for message in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta}}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"_meta": meta, "name": "verify_dql", "arguments": {"dqlStatement": "fetch logs"}}}),
    ] {
        stdin
            .write_all(format!("{message}\n").as_bytes())
            .await
            .unwrap();
    }
    let mut replies = Vec::new();
    while replies.len() < 2 {
        let line = tokio::time::timeout(Duration::from_secs(20), stdout.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        replies.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    let discover = replies.iter().find(|r| r["id"] == 1).unwrap();
    assert!(
        discover["result"]["supportedVersions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "2026-07-28"),
        "{discover}"
    );
    let call = replies.iter().find(|r| r["id"] == 2).unwrap();
    assert_eq!(call["result"]["structuredContent"]["valid"], true, "{call}");
}

#[tokio::test]
async fn a_missing_setting_stops_start_up_with_one_clear_line() {
    let output = tokio::process::Command::new(binary())
        .arg("stdio")
        .env_clear()
        .env("DT_ENVIRONMENT", "https://abc12345.live.dynatrace.com")
        .env("DT_PLATFORM_TOKEN", "dt0s16.SECRETSECRET")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "nothing on stdout");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DT_ENVIRONMENT"), "{stderr}");
    assert!(
        stderr.contains("https://abc12345.apps.dynatrace.com"),
        "{stderr}"
    );
    assert!(!stderr.contains("SECRETSECRET"));
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[tokio::test]
async fn serve_refuses_a_public_address_without_an_auth_token() {
    let output = tokio::process::Command::new(binary())
        .args(["serve", "--host", "0.0.0.0", "--port", "0"])
        .env_clear()
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
}
