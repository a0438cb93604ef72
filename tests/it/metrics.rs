//! The server's own metrics: the real binary, `serve`, writes one CloudWatch Embedded Metric Format
//! record per tool call on stdout, and `tests/emf/validate.py` checks every record against the EMF
//! specification (JSON Schema and the rules a schema cannot say).
//!
//! Needs the tools' Python (`PYTHON`, with jsonschema: `scripts/test-tools.sh python`);
//! `scripts/test.sh` runs it. Plain `cargo test` skips it (`#[ignore]`).

use std::process::Stdio;
use std::time::Duration;

use dynatrace_sandbox::{Fault, Route, Sandbox, SandboxConfig};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::helpers::{AUTH_TOKEN, call_with_token, serve_binary, sigterm};

/// `tools/call` of `tool` with the static token.
async fn call(http: &reqwest::Client, port: u16, id: u64, tool: &str, arguments: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                      "params": {"name": tool, "arguments": arguments}});
    call_with_token(http, &format!("http://127.0.0.1:{port}"), &body).await
}

/// The records `serve` wrote for three calls (a query, a refused query, a problem list whose
/// first request Dynatrace throttles), with `env`.
async fn records(env_extra: &[(&str, &str)]) -> (Vec<Value>, String) {
    let sandbox = Sandbox::start(SandboxConfig::demo()).await.unwrap();
    let mut env = vec![("MCP_AUTH_TOKEN", AUTH_TOKEN)];
    env.extend_from_slice(env_extra);
    let (child, port) = serve_binary(&sandbox, &env, Stdio::piped()).await;
    let http = reqwest::Client::new();
    let ok = call(
        &http,
        port,
        1,
        "execute_dql",
        json!({"dqlStatement": "fetch logs | limit 3"}),
    )
    .await;
    assert!(
        ok["result"]["isError"].is_null() || ok["result"]["isError"] == false,
        "{ok}"
    );
    let refused = call(
        &http,
        port,
        2,
        "execute_dql",
        json!({"dqlStatement": "fetch nonsense ||"}),
    )
    .await;
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    sandbox.inject(Fault {
        route: Route::Platform,
        status: 429,
        retry_after: Some("0".into()),
        times: 1,
    });
    let problems = call(&http, port, 3, "list_problems", json!({})).await;
    assert!(
        problems["result"]["isError"].is_null() || problems["result"]["isError"] == false,
        "{problems}"
    );

    // SIGTERM: the server drains and exits, and stdout ends.
    sigterm(&child);
    let output = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
        .await
        .expect("the server exits after SIGTERM")
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let records = stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    (records, stdout)
}

async fn validate(stdout: &str) -> Value {
    let python = std::env::var("PYTHON").expect("PYTHON is not set: run scripts/test.sh");
    let mut child = tokio::process::Command::new(python)
        .arg(format!(
            "{}/tests/emf/validate.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdout.as_bytes())
        .await
        .unwrap();
    let output = child.wait_with_output().await.unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        output.status.success(),
        "the EMF validator found problems: {report}"
    );
    report
}

#[tokio::test]
#[ignore = "needs the tools' Python (scripts/test.sh)"]
async fn every_tool_call_writes_one_emf_record_that_the_specification_accepts() {
    let (records, stdout) = records(&[("MCP_METRICS_NAMESPACE", "DynatraceMCP/Test")]).await;
    assert_eq!(
        records.len(),
        3,
        "one record per tool call and nothing else on stdout:\n{stdout}"
    );
    assert_eq!(validate(&stdout).await["records"], 3);

    let directive = &records[0]["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "DynatraceMCP/Test");
    let (query, refused, problems) = (&records[0], &records[1], &records[2]);
    assert_eq!(query["Tool"], "execute_dql");
    assert_eq!(query["Outcome"], "ok");
    assert_eq!(query["Errors"], 0);
    assert_eq!(query["PrincipalClass"], "static_token");
    assert!(query["GrailScannedBytes"].as_u64().unwrap() > 0, "{query}");
    assert!(query["ResultBytes"].as_u64().unwrap() > 0);
    assert!(query["Latency"].as_f64().unwrap() > 0.0);
    assert_eq!(query["UpstreamRetries"], 0);
    assert_eq!(refused["Tool"], "execute_dql");
    assert_ne!(refused["Outcome"], "ok");
    assert_eq!(refused["Errors"], 1);
    assert_eq!(refused["GrailScannedBytes"], 0);
    assert_eq!(problems["Tool"], "list_problems");
    assert_eq!(problems["Outcome"], "ok");
    assert_eq!(
        problems["UpstreamRetries"], 1,
        "the 429 was retried once: {problems}"
    );
}

#[tokio::test]
async fn metrics_off_leaves_stdout_empty() {
    let (records, stdout) = records(&[("MCP_METRICS", "off")]).await;
    assert!(records.is_empty(), "{stdout}");
}
