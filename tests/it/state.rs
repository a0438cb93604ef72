//! Many instances, one DynamoDB table: two (or more) real server processes share moto's DynamoDB
//! (through the real `aws-sdk-dynamodb` and `AWS_ENDPOINT_URL`) and one simulated tenant, and the
//! promises hold across them: a confirmation is used once, a budget is one budget, a rate limit is
//! one limit; and when the table goes away the stated failure policy applies, without a hang.
//!
//! These tests need `moto_server`; they are `#[ignore]`d for a plain `cargo test` and run by
//! `scripts/test.sh`.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use dynatrace_sandbox::{Sandbox, SandboxConfig};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{AUTH_TOKEN, binary};
use crate::idp::Moto;

const TABLE: &str = "dynatrace-mcp-state";
use crate::identity::{ALICE_DT, BOB_DT};

async fn create_table(moto: &Moto) {
    let config = aws_sdk_dynamodb::Config::builder()
        .http_client(dynatrace_mcp::aws::http_client())
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&moto.url)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    client
        .create_table()
        .table_name(TABLE)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("table created");
    client
        .update_time_to_live()
        .table_name(TABLE)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("expires_at")
                .enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("TTL on");
}

fn tenant() -> SandboxConfig {
    crate::identity::two_user_tenant()
}

/// One `dynatrace-mcp serve` process.
struct Instance {
    url: String,
    http: reqwest::Client,
    child: tokio::process::Child,
}

impl Instance {
    async fn start(moto_url: &str, sandbox: &Sandbox, env: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = tokio::process::Command::new(binary());
        command
            .env_clear()
            .envs(sandbox.settings_pairs())
            .env("AWS_ENDPOINT_URL", moto_url)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("MCP_AUTH_TOKEN", AUTH_TOKEN)
            .env("DT_ENABLE_WRITE_TOOLS", "1")
            .env("MCP_LOG_FORMAT", "json")
            .args(["serve", "--port", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if http.get(format!("{url}/health")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { url, http, child }
    }

    /// Calls a tool; returns the JSON-RPC `result`.
    async fn call(&self, dt_token: Option<&str>, name: &str, arguments: Value) -> Value {
        let mut request = self
            .http
            .post(format!("{}/mcp", self.url))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .header("x-mcp-auth-token", AUTH_TOKEN)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}));
        if let Some(token) = dt_token {
            request = request.header("x-dynatrace-token", token);
        }
        let body: Value = request.send().await.unwrap().json().await.unwrap();
        body.get("result")
            .cloned()
            .unwrap_or_else(|| panic!("no result: {body}"))
    }

    async fn logs(mut self) -> String {
        self.child.start_kill().unwrap();
        let output = self.child.wait_with_output().await.unwrap();
        String::from_utf8_lossy(&output.stderr).into_owned()
    }
}

/// Runs the operator's `grail-budget` command against the table; it must succeed.
async fn grail_budget_cli(moto: &Moto, args: &[&str], env: &[(&str, &str)]) {
    let output = tokio::process::Command::new(binary())
        .env_clear()
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .envs(env.iter().copied())
        .arg("grail-budget")
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn is_error(result: &Value) -> bool {
    result["isError"].as_bool().unwrap_or(false)
}

fn text(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn email() -> Value {
    json!({"toRecipients": ["ops@example.com"], "subject": "Deploy 42", "body": "rolled out"})
}

async fn confirmed_email(instance: &Instance) -> Value {
    let preview = instance.call(None, "send_email", email()).await;
    let token = preview["structuredContent"]["confirmationToken"]
        .as_str()
        .expect("a preview with a token")
        .to_string();
    let mut args = email();
    args["confirmationToken"] = json!(token);
    args
}

#[tokio::test]
#[ignore = "needs moto_server: run scripts/test.sh"]
async fn a_confirmation_is_used_once_across_instances() {
    let moto = Moto::start().await;
    create_table(&moto).await;
    let sandbox = Sandbox::start(tenant()).await.unwrap();
    let env = [("MCP_STATE_TABLE", TABLE)];
    let a = Instance::start(&moto.url, &sandbox, &env).await;
    let b = Instance::start(&moto.url, &sandbox, &env).await;

    // Used on A, replayed on B: refused, one email.
    let args = confirmed_email(&a).await;
    assert!(!is_error(&a.call(None, "send_email", args.clone()).await));
    let replay = b.call(None, "send_email", args.clone()).await;
    assert!(is_error(&replay));
    assert!(text(&replay).contains("already used"), "{replay}");
    let replay = a.call(None, "send_email", args).await;
    assert!(is_error(&replay));
    assert_eq!(sandbox.emails().len(), 1);

    // 50 confirmations of one token at once, alternating between the instances: one email.
    let args = confirmed_email(&b).await;
    let (a, b) = (&a, &b);
    let results: Vec<Value> = futures::stream::iter(0..50)
        .map(|i| {
            let args = args.clone();
            async move {
                let instance = if i % 2 == 0 { a } else { b };
                instance.call(None, "send_email", args).await
            }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    let performed = results.iter().filter(|r| !is_error(r)).count();
    let refused = results
        .iter()
        .filter(|r| text(r).contains("already used"))
        .count();
    eprintln!(
        "50 concurrent confirmations across 2 instances: {performed} performed, {refused} refused as used"
    );
    assert_eq!(performed, 1);
    assert_eq!(refused, 49);
    assert_eq!(sandbox.emails().len(), 2);
}

#[tokio::test]
#[ignore = "needs moto_server: run scripts/test.sh"]
async fn a_grail_budget_spent_through_one_instance_is_spent_for_all() {
    let moto = Moto::start().await;
    create_table(&moto).await;
    let sandbox = Sandbox::start(tenant()).await.unwrap();
    // About one small query's worth (the sandbox reports what a query scans).
    let env = [
        ("MCP_STATE_TABLE", TABLE),
        ("DT_GRAIL_QUERY_BUDGET_GB", "0.000001"),
    ];
    let a = Instance::start(&moto.url, &sandbox, &env).await;
    let b = Instance::start(&moto.url, &sandbox, &env).await;
    let query = json!({"dqlStatement": "fetch logs | limit 2"});
    let first = a.call(None, "execute_dql", query.clone()).await;
    assert!(!is_error(&first), "{first}");
    let scanned = first["structuredContent"]["metadata"]["scannedBytes"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        scanned >= 1000,
        "one query scans past the budget: {scanned}"
    );
    let refused = b.call(None, "execute_dql", query.clone()).await;
    assert!(is_error(&refused), "{refused}");
    assert!(
        text(&refused).contains("budget of this deployment is used up"),
        "{refused}"
    );
    assert!(text(&refused).contains("grail-budget reset"));
    let status = b.call(None, "get_grail_budget", json!({})).await;
    assert_eq!(status["structuredContent"]["shared"], true);
    assert_eq!(status["structuredContent"]["queries"], 1);
    // The model cannot reset a shared budget; the operator's command can.
    let reset = b.call(None, "reset_grail_budget", json!({})).await;
    assert!(is_error(&reset) && text(&reset).contains("nothing was reset"));
    grail_budget_cli(&moto, &["--table", TABLE, "reset"], &[]).await;
    assert!(!is_error(&b.call(None, "execute_dql", query.clone()).await));

    // Overshoot: 10 queries started at once across the instances, with a fresh budget of one
    // query: those that passed the check before any finished all run.
    grail_budget_cli(&moto, &["reset"], &[("MCP_STATE_TABLE", TABLE)]).await;
    let (a_ref, b_ref) = (&a, &b);
    let results: Vec<Value> = futures::stream::iter(0..10)
        .map(|i| {
            let query = query.clone();
            async move {
                let instance = if i % 2 == 0 { a_ref } else { b_ref };
                instance.call(None, "execute_dql", query).await
            }
        })
        .buffer_unordered(10)
        .collect()
        .await;
    let ran = results.iter().filter(|r| !is_error(r)).count();
    eprintln!(
        "budget of one query, 10 concurrent queries over 2 instances: {ran} ran ({} overshoot), {} refused",
        ran.saturating_sub(1),
        10 - ran
    );
    assert!(ran >= 1);
    // Afterwards every instance refuses.
    assert!(is_error(&a.call(None, "execute_dql", query.clone()).await));
    assert!(is_error(&b.call(None, "execute_dql", query).await));
}

#[tokio::test]
#[ignore = "needs moto_server: run scripts/test.sh"]
async fn per_caller_daily_budgets_and_rate_limits_hold_across_instances() {
    let moto = Moto::start().await;
    create_table(&moto).await;
    let sandbox = Sandbox::start(tenant()).await.unwrap();
    // Anonymous callers told apart by their own Dynatrace token (pass-through).
    let env = [
        ("MCP_STATE_TABLE", TABLE),
        ("MCP_AUTH_TOKEN", ""),
        ("DT_TOKEN_PASSTHROUGH", "1"),
        ("DT_GRAIL_USER_BUDGET_GB", "0.000001"),
        ("MCP_RATE_LIMIT", "4/1h"),
    ];
    let a = Instance::start(&moto.url, &sandbox, &env).await;
    let b = Instance::start(&moto.url, &sandbox, &env).await;
    let query = json!({"dqlStatement": "fetch logs | limit 2"});
    assert!(!is_error(
        &a.call(Some(ALICE_DT), "execute_dql", query.clone()).await
    ));
    let refused = b.call(Some(ALICE_DT), "execute_dql", query.clone()).await;
    assert!(
        text(&refused).contains("your own Grail budget for today is used up"),
        "{refused}"
    );
    // Bob has his own daily budget.
    assert!(!is_error(&b.call(Some(BOB_DT), "execute_dql", query).await));
    // Calls so far: alice 2, bob 1. Two more for alice (4/h across both instances), then refused.
    assert!(!is_error(
        &a.call(Some(ALICE_DT), "get_grail_budget", json!({})).await
    ));
    assert!(!is_error(
        &b.call(Some(ALICE_DT), "get_grail_budget", json!({})).await
    ));
    let limited = a.call(Some(ALICE_DT), "get_grail_budget", json!({})).await;
    assert!(
        text(&limited).contains("rate limit: at most 4 tool calls per 3600 s"),
        "{limited}"
    );
    let limited = b.call(Some(ALICE_DT), "get_grail_budget", json!({})).await;
    assert!(is_error(&limited));
    assert!(!is_error(
        &b.call(Some(BOB_DT), "get_grail_budget", json!({})).await
    ));
}

#[tokio::test]
#[ignore = "needs moto_server: run scripts/test.sh"]
async fn when_the_table_goes_away_writes_fail_closed_and_reads_go_on_without_hanging() {
    let mut moto = Some(Moto::start().await);
    create_table(moto.as_ref().unwrap()).await;
    let moto_url = moto.as_ref().unwrap().url.clone();
    let sandbox = Sandbox::start(tenant()).await.unwrap();
    let open = Instance::start(&moto_url, &sandbox, &[("MCP_STATE_TABLE", TABLE)]).await;
    let closed = Instance::start(
        &moto_url,
        &sandbox,
        &[("MCP_STATE_TABLE", TABLE), ("MCP_STATE_FAIL_CLOSED", "1")],
    )
    .await;
    let args = confirmed_email(&open).await;
    let query = json!({"dqlStatement": "fetch logs | limit 2"});
    assert!(!is_error(
        &open.call(None, "execute_dql", query.clone()).await
    ));

    drop(moto.take()); // moto_server is killed: the table is gone, the port refuses connections.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A write cannot be made single-use: refused, nothing sent.
    let started = Instant::now();
    let refused = open.call(None, "send_email", args).await;
    let write_took = started.elapsed();
    assert!(is_error(&refused), "{refused}");
    assert!(text(&refused).contains("nothing was done"), "{refused}");
    assert!(sandbox.emails().is_empty());
    // A read goes on, with a warning in the answer's metadata.
    let started = Instant::now();
    let read = open.call(None, "execute_dql", query.clone()).await;
    let read_took = started.elapsed();
    assert!(!is_error(&read), "{read}");
    let warnings = read["_meta"]["dynatrace-mcp/warnings"]
        .as_array()
        .expect("warnings in _meta");
    assert!(
        warnings[0].as_str().unwrap().contains("shared state store"),
        "{warnings:?}"
    );
    assert!(
        !read.to_string().contains(TABLE),
        "no table name in the answer"
    );
    // Fail closed: the read is refused too.
    let started = Instant::now();
    let strict = closed.call(None, "execute_dql", query).await;
    let strict_took = started.elapsed();
    assert!(
        is_error(&strict) && text(&strict).contains("MCP_STATE_FAIL_CLOSED"),
        "{strict}"
    );
    eprintln!(
        "table gone: write refused in {write_took:?}, read answered in {read_took:?} (warning), fail-closed read refused in {strict_took:?}"
    );
    for took in [write_took, read_took, strict_took] {
        assert!(took < Duration::from_secs(10), "no hang: {took:?}");
    }
    let logs = open.logs().await;
    assert!(
        logs.contains("could not be used"),
        "a warning line in the log"
    );
    let _ = closed.logs().await;
}

#[tokio::test]
async fn a_table_that_never_answers_costs_one_timeout_then_fails_fast() {
    // An endpoint that accepts connections and never answers (a blackholed VPC endpoint).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let sandbox = Sandbox::start(tenant()).await.unwrap();
    let instance = Instance::start(&endpoint, &sandbox, &[("MCP_STATE_TABLE", TABLE)]).await;
    let query = json!({"dqlStatement": "fetch logs | limit 2"});
    let mut took = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let result = instance.call(None, "execute_dql", query.clone()).await;
        took.push(started.elapsed());
        assert!(!is_error(&result), "{result}");
        assert!(
            result["_meta"]["dynatrace-mcp/warnings"].is_array(),
            "{result}"
        );
    }
    eprintln!("table blackholed: execute_dql answered in {took:?}");
    assert!(
        took[0] < Duration::from_secs(8),
        "one bounded wait: {:?}",
        took[0]
    );
    assert!(took[1] < Duration::from_secs(1), "then fast: {:?}", took[1]);
    assert!(took[2] < Duration::from_secs(1), "then fast: {:?}", took[2]);
    let logs = instance.logs().await;
    assert!(
        logs.contains("not tried again for"),
        "the breaker says so in the log"
    );
}

#[tokio::test]
#[ignore = "needs moto_server: run scripts/test.sh"]
async fn latency_the_table_adds_per_call() {
    let moto = Moto::start().await;
    create_table(&moto).await;
    let sandbox = Sandbox::start(tenant()).await.unwrap();
    let budget = ("DT_GRAIL_QUERY_BUDGET_GB", "1000");
    let memory = Instance::start(&moto.url, &sandbox, &[budget]).await;
    let shared = Instance::start(&moto.url, &sandbox, &[budget, ("MCP_STATE_TABLE", TABLE)]).await;
    let query = json!({"dqlStatement": "fetch logs | limit 2"});
    let mut figures = Vec::new();
    for (name, instance) in [("memory", &memory), ("dynamodb (moto)", &shared)] {
        for _ in 0..5 {
            instance.call(None, "execute_dql", query.clone()).await;
        }
        let started = Instant::now();
        for _ in 0..100 {
            assert!(!is_error(
                &instance.call(None, "execute_dql", query.clone()).await
            ));
        }
        figures.push((name, started.elapsed() / 100));
    }
    eprintln!(
        "execute_dql, mean of 100 sequential calls: {} {:?}, {} {:?}; added by the table (1 GetItem + 1 UpdateItem): {:?}",
        figures[0].0,
        figures[0].1,
        figures[1].0,
        figures[1].1,
        figures[1].1.saturating_sub(figures[0].1)
    );
}
