//! The fault suite: every tool × every fault the network, a proxy or Dynatrace can produce,
//! generated from the tool registry (a new tool is covered without editing this file, as long as
//! arguments can be derived from its schema or are listed in [`sample_arguments`]).
//!
//! For each cell: the answer comes within the deadline; it is a tool result, never a JSON-RPC
//! error or a broken HTTP answer; a transient fault (429 or 503, with or without `Retry-After`,
//! an expired token) is retried to success; any other fault is a tool error whose text is a
//! sentence a model can act on (not JSON, not HTML, not empty, not a page long); the answer is
//! bounded in size; and the next call, fault-free, succeeds.
//!
//! `FAULT_TABLE=path cargo test --test it faults -- --nocapture` writes the table (Markdown).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dynatrace_sandbox::{Fault, Misbehaviour, Route, Sandbox};
use serde_json::{Value, json};

use crate::helpers::*;

/// `MCP_TOOL_TIMEOUT_SECONDS` for the suite: short, so hangs cost little.
const DEADLINE: Duration = Duration::from_secs(3);
/// What a call may take past its deadline (answering, scheduling on a busy 2-core machine).
const SLACK: Duration = Duration::from_millis(1500);
/// The result budget (MCP_RESULT_MAX_BYTES default) an answer must stay near.
const BUDGET: usize = 131_072;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Retried to success within the deadline.
    Success,
    /// A tool error with a sentence (or success, when the tool does without that request).
    ErrorOrSuccess,
}

#[derive(Clone, Copy)]
struct FaultCase {
    name: &'static str,
    expect: Expect,
}

const FAULTS: &[FaultCase] = &[
    FaultCase {
        name: "429 Retry-After: 1",
        expect: Expect::Success,
    },
    FaultCase {
        name: "429",
        expect: Expect::Success,
    },
    FaultCase {
        name: "503 Retry-After: 1",
        expect: Expect::Success,
    },
    FaultCase {
        name: "503",
        expect: Expect::Success,
    },
    FaultCase {
        name: "500",
        expect: Expect::ErrorOrSuccess,
    },
    FaultCase {
        name: "502",
        expect: Expect::ErrorOrSuccess,
    },
    FaultCase {
        name: "504",
        expect: Expect::ErrorOrSuccess,
    },
    FaultCase {
        name: "reset",
        expect: Expect::ErrorOrSuccess,
    },
    FaultCase {
        name: "hang",
        expect: Expect::ErrorOrSuccess,
    },
    FaultCase {
        name: "slow drip",
        expect: Expect::ErrorOrSuccess,
    },
    FaultCase {
        name: "truncated",
        expect: Expect::ErrorOrSuccess,
    },
    FaultCase {
        name: "HTML page",
        expect: Expect::ErrorOrSuccess,
    },
    FaultCase {
        name: "50 MB body",
        expect: Expect::ErrorOrSuccess,
    },
    FaultCase {
        name: "401 expired token",
        expect: Expect::Success,
    },
    FaultCase {
        name: "SSO down",
        expect: Expect::ErrorOrSuccess,
    },
    FaultCase {
        name: "SSO hangs",
        expect: Expect::ErrorOrSuccess,
    },
    FaultCase {
        name: "DNS failure",
        expect: Expect::ErrorOrSuccess,
    },
];

/// Sets `fault` up on the tenant so that it hits the tool's next call.
pub(crate) fn inject(sandbox: &Sandbox, fault: &str) {
    let status = |status: u16, retry_after: Option<&str>, times: usize| {
        sandbox.inject(Fault {
            route: Route::Platform,
            status,
            retry_after: retry_after.map(str::to_string),
            times,
        })
    };
    match fault {
        "429 Retry-After: 1" => status(429, Some("1"), 1),
        "429" => status(429, None, 1),
        "503 Retry-After: 1" => status(503, Some("1"), 1),
        "503" => status(503, None, 1),
        "500" => status(500, None, 1),
        "502" => status(502, None, 1),
        "504" => status(504, None, 1),
        "reset" => sandbox.misbehave(Route::Platform, Misbehaviour::Reset, 1),
        "hang" => sandbox.misbehave(Route::Platform, Misbehaviour::Hang, 1),
        "slow drip" => sandbox.misbehave(Route::Platform, Misbehaviour::Drip, 1),
        "truncated" => sandbox.misbehave(Route::Platform, Misbehaviour::Truncated, 1),
        "HTML page" => sandbox.inject_body(
            Route::Platform,
            502,
            bytes::Bytes::from_static(
                b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>",
            ),
            1,
        ),
        "50 MB body" => sandbox.inject_body(Route::Platform, 200, huge_body(), 1),
        "401 expired token" => sandbox.expire_tokens(),
        "SSO down" => {
            sandbox.expire_tokens();
            sandbox.misbehave(Route::Token, Misbehaviour::Reset, 20);
        }
        "SSO hangs" => {
            sandbox.expire_tokens();
            sandbox.misbehave(Route::Token, Misbehaviour::Hang, 20);
        }
        "DNS failure" => {} // a separate server whose DT_ENVIRONMENT does not resolve
        other => panic!("unknown fault {other}"),
    }
}

fn huge_body() -> bytes::Bytes {
    static BODY: std::sync::OnceLock<bytes::Bytes> = std::sync::OnceLock::new();
    BODY.get_or_init(|| bytes::Bytes::from(vec![b' '; 50 * 1024 * 1024]))
        .clone()
}

/// Arguments that succeed against the simulated tenant, for tools whose schema alone does not
/// say enough (an id that exists, a statement that parses).
pub(crate) fn sample_arguments(tool: &str) -> Option<Value> {
    Some(match tool {
        "get_problem_details" => json!({"problemId": "P-2411120"}),
        "find_entity_by_name" => json!({"entityNames": ["payment"]}),
        "get_entity_name" => json!({"entityIds": ["SERVICE-3E6B5F5CAB4C8D34"]}),
        "execute_dql" => json!({"dqlStatement": "fetch logs | limit 5"}),
        "verify_dql" => json!({"dqlStatement": "fetch logs | limit 5"}),
        "describe_bucket" => json!({"bucket": "default_logs", "sampleSize": 5}),
        "find_entities_by_tag" => json!({"tag": "env:prod"}),
        "generate_dql_from_natural_language" => json!({"text": "error logs of the last hour"}),
        "explain_dql_in_natural_language" => json!({"dql": "fetch logs | limit 5"}),
        "chat_with_davis_copilot" => json!({"text": "What is Grail?"}),
        "execute_davis_analyzer" => json!({
            "analyzerName": "dt.statistics.GenericForecastAnalyzer",
            "input": {"timeSeriesData": {"expression": "timeseries avg(dt.host.cpu.usage)"}, "forecastHorizon": 30},
        }),
        "create_workflow_for_notification" => {
            json!({"problemType": "ERROR", "teamName": "payments", "channel": "#payments-alerts"})
        }
        "send_email" => {
            json!({"toRecipients": ["oncall@example.com"], "subject": "Fault suite", "body": "Hello."})
        }
        "send_slack_message" => json!({"channel": "#ops", "message": "Fault suite."}),
        "create_dynatrace_notebook" => json!({"name": "Fault suite", "content": [
            {"type": "markdown", "text": "## Fault suite"},
            {"type": "dql", "text": "fetch logs | limit 5"},
        ]}),
        "send_event" => json!({"eventType": "CUSTOM_INFO", "title": "Fault suite"}),
        _ => return None,
    })
}

/// Arguments derived from a tool's input schema: each required property gets the first value
/// of its enum, or a plain value of its type.
pub(crate) fn from_schema(schema: &Value) -> Value {
    let mut args = serde_json::Map::new();
    let properties = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for required in schema["required"].as_array().cloned().unwrap_or_default() {
        let name = required.as_str().unwrap_or_default();
        let property = &properties[name];
        let value = if let Some(first) = property["enum"].as_array().and_then(|e| e.first()) {
            first.clone()
        } else {
            match property["type"].as_str() {
                Some("integer" | "number") => json!(1),
                Some("boolean") => json!(false),
                Some("array") => json!(["x"]),
                Some("object") => json!({}),
                _ => json!("x"),
            }
        };
        args.insert(name.to_string(), value);
    }
    Value::Object(args)
}

pub(crate) fn is_write(tool: &Value) -> bool {
    tool["annotations"]["readOnlyHint"] == false
        && tool["inputSchema"]["properties"]["confirmationToken"].is_object()
}

fn suite_env() -> Vec<(&'static str, String)> {
    vec![
        ("MCP_TOOL_TIMEOUT_SECONDS", DEADLINE.as_secs().to_string()),
        ("DT_ENABLE_WRITE_TOOLS", "1".into()),
        ("DT_ENABLE_DAVIS_COPILOT", "1".into()),
        ("SLACK_CONNECTION_ID", "sandbox-slack-connection".into()),
    ]
}

/// One call as a client sends it, with what the suite checks.
struct Answer {
    elapsed: Duration,
    http_status: u16,
    bytes: usize,
    body: Value,
}

impl Answer {
    fn result(&self) -> &Value {
        &self.body["result"]
    }
}

async fn call(app: &TestApp, name: &str, arguments: &Value) -> Answer {
    let started = Instant::now();
    let reply = app
        .rpc(
            "tools/call",
            json!({"name": name, "arguments": arguments.clone()}),
        )
        .await;
    Answer {
        elapsed: started.elapsed(),
        http_status: reply.status,
        bytes: reply.text.len(),
        body: reply.body,
    }
}

/// The arguments for one call of `tool`: for a write, its preview is called first (fault-free)
/// and the confirmation token added.
async fn arguments_for(app: &TestApp, tool: &Value, base: &Value) -> Result<Value, String> {
    let name = tool["name"].as_str().unwrap();
    let mut args = base.clone();
    if name == "make_workflow_public" {
        let create = sample_arguments("create_workflow_for_notification").unwrap();
        let token = confirmation(app, "create_workflow_for_notification", &create).await?;
        let mut confirmed = create.clone();
        confirmed["confirmationToken"] = json!(token);
        let created = call(app, "create_workflow_for_notification", &confirmed).await;
        let id = created.result()["structuredContent"]["id"]
            .as_str()
            .ok_or_else(|| format!("no workflow created: {}", created.body))?
            .to_string();
        args = json!({"workflowId": id});
    }
    if is_write(tool) {
        let token = confirmation(app, name, &args).await?;
        args["confirmationToken"] = json!(token);
    }
    Ok(args)
}

async fn confirmation(app: &TestApp, name: &str, args: &Value) -> Result<String, String> {
    let preview = call(app, name, args).await;
    preview.result()["structuredContent"]["confirmationToken"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{name}: no confirmation token in {}", preview.body))
}

/// Why `text` is not a sentence a model can act on, if it is not.
pub(crate) fn not_a_sentence(text: &str) -> Option<&'static str> {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    if text.len() < 20 {
        Some("empty or too short")
    } else if text.len() > 4000 {
        Some("longer than 4000 bytes")
    } else if text.starts_with('{') || text.starts_with('[') {
        Some("a JSON dump")
    } else if lower.contains("<html") || lower.contains("<body") {
        Some("an HTML page")
    } else if !text.contains(' ') {
        Some("not words")
    } else {
        None
    }
}

/// How one cell ended, for the table.
#[derive(Clone)]
struct Cell {
    mark: &'static str,
    problem: Option<String>,
    /// The tool error's text, when the cell ended in one.
    text: Option<String>,
}

async fn run_cell(app: &TestApp, tool: &Value, base: &Value, fault: FaultCase) -> Cell {
    let name = tool["name"].as_str().unwrap();
    let fail = |problem: String| Cell {
        mark: "FAIL",
        problem: Some(problem),
        text: None,
    };
    app.sandbox.clear_faults();
    let args = match arguments_for(app, tool, base).await {
        Ok(args) => args,
        Err(e) => return fail(format!("setup: {e}")),
    };
    inject(&app.sandbox, fault.name);
    let pending = app.sandbox.pending_faults();
    app.sandbox.clear_requests();
    let answer = call(app, name, &args).await;
    let token_requests = app
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/oauth2/token"))
        .count();
    // The fault reached the tool's call when the call consumed it (an expired token: when the
    // call had to fetch a new one).
    let reached = if fault.name == "401 expired token" {
        token_requests > 0
    } else {
        app.sandbox.pending_faults() < pending
    };
    app.sandbox.clear_faults();

    if answer.elapsed > DEADLINE + SLACK {
        return fail(format!("answered after {:?}", answer.elapsed));
    }
    if answer.http_status != 200 || !answer.body["result"].is_object() {
        return fail(format!(
            "not a tool result: HTTP {} {}",
            answer.http_status,
            crate::helpers::cut(&answer.body.to_string(), 300)
        ));
    }
    if answer.bytes > 2 * BUDGET + 65_536 {
        return fail(format!("answer of {} bytes", answer.bytes));
    }
    let result = answer.result();
    let text = is_error(result).then(|| text_of(result));
    let mark = if is_error(result) {
        let text = text_of(result);
        if let Some(why) = not_a_sentence(&text) {
            return fail(format!(
                "error text is {why}: {}",
                crate::helpers::cut(&text, 300)
            ));
        }
        if fault.expect == Expect::Success && reached {
            return fail(format!(
                "a transient fault was not retried to success: {}",
                crate::helpers::cut(&text, 300)
            ));
        }
        "error"
    } else if !reached {
        "n/a"
    } else if fault.expect == Expect::Success {
        "retried"
    } else {
        "ok"
    };

    // The next call, fault-free, is served normally.
    let args = match arguments_for(app, tool, base).await {
        Ok(args) => args,
        Err(e) => return fail(format!("after the fault: {e}")),
    };
    let next = call(app, name, &args).await;
    if is_error(next.result()) || next.http_status != 200 {
        return fail(format!(
            "the next call failed: {}",
            crate::helpers::cut(&next.body.to_string(), 300)
        ));
    }
    Cell {
        mark: if reached { mark } else { "n/a" },
        problem: None,
        text,
    }
}

/// Every fault for one tool, on its own server and tenant (so tools run in parallel).
async fn run_tool(tool: Value, dns: bool) -> (String, BTreeMap<&'static str, Cell>) {
    let name = tool["name"].as_str().unwrap().to_string();
    let base = sample_arguments(&name).unwrap_or_else(|| from_schema(&tool["inputSchema"]));
    let mut cells = BTreeMap::new();
    let app = spawn_with(Options {
        env: suite_env(),
        ..Options::default()
    })
    .await;
    // The baseline: without a fault the call succeeds, or the suite's arguments are wrong.
    let args = arguments_for(&app, &tool, &base).await;
    let baseline = match &args {
        Ok(args) => call(&app, &name, args).await,
        Err(e) => panic!("{name}: {e}"),
    };
    assert!(
        !is_error(baseline.result()) && baseline.http_status == 200,
        "{name} fails without a fault, so the suite's arguments are wrong: add working ones to \
         sample_arguments() in tests/it/faults.rs ({})",
        baseline.body
    );
    for fault in FAULTS {
        if fault.name == "DNS failure" {
            continue;
        }
        cells.insert(fault.name, run_cell(&app, &tool, &base, *fault).await);
    }
    if dns {
        let mut env = suite_env();
        env.push(("DT_ENVIRONMENT", "https://dtmcp-fault-suite.invalid".into()));
        let broken = spawn_with(Options {
            env,
            ..Options::default()
        })
        .await;
        let fault = FAULTS.iter().find(|f| f.name == "DNS failure").unwrap();
        // Writes need their preview, which may itself need Dynatrace: the cell then judges the
        // preview's answer.
        let args = if is_write(&tool) {
            let preview = call(&broken, &name, &base).await;
            match preview.result()["structuredContent"]["confirmationToken"].as_str() {
                Some(token) => {
                    let mut args = base.clone();
                    args["confirmationToken"] = json!(token);
                    args
                }
                None => base.clone(),
            }
        } else {
            base.clone()
        };
        let answer = call(&broken, &name, &args).await;
        let cell = |mark, problem: Option<String>, text| Cell {
            mark,
            problem,
            text,
        };
        let cell = if answer.elapsed > DEADLINE + SLACK {
            cell(
                "FAIL",
                Some(format!("answered after {:?}", answer.elapsed)),
                None,
            )
        } else if !answer.body["result"].is_object() {
            cell(
                "FAIL",
                Some(format!("not a tool result: {}", answer.body)),
                None,
            )
        } else if is_error(answer.result()) {
            let text = text_of(answer.result());
            match not_a_sentence(&text) {
                Some(why) => cell("FAIL", Some(format!("error text is {why}")), None),
                None => cell("error", None, Some(text)),
            }
        } else {
            let mark = if fault.expect == Expect::Success {
                "ok"
            } else {
                "n/a"
            };
            cell(mark, None, None)
        };
        cells.insert(fault.name, cell);
    }
    (name, cells)
}

async fn registry() -> Vec<Value> {
    let app = spawn_with(Options {
        env: suite_env(),
        ..Options::default()
    })
    .await;
    let reply = app.rpc("tools/list", json!({})).await;
    reply.body["result"]["tools"].as_array().unwrap().clone()
}

fn table(rows: &[(String, BTreeMap<&'static str, Cell>)]) -> String {
    let mut out = String::from("| tool |");
    for fault in FAULTS {
        out.push_str(&format!(" {} |", fault.name));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(FAULTS.len()));
    out.push('\n');
    for (tool, cells) in rows {
        out.push_str(&format!("| `{tool}` |"));
        for fault in FAULTS {
            let mark = cells.get(fault.name).map_or("-", |c| c.mark);
            out.push_str(&format!(" {mark} |"));
        }
        out.push('\n');
    }
    // What a model reads: one tool's error for each fault.
    if let Some((tool, cells)) = rows.iter().find(|(tool, _)| tool == "execute_dql") {
        out.push_str(&format!(
            "\nWhat `{tool}` answers:\n\n| fault | tool error text |\n|---|---|\n"
        ));
        for fault in FAULTS {
            let text = cells
                .get(fault.name)
                .and_then(|c| c.text.as_deref())
                .unwrap_or("(success)");
            out.push_str(&format!(
                "| {} | {} |\n",
                fault.name,
                text.replace('|', "\\|").replace('\n', " ")
            ));
        }
    }
    out
}

/// Every tool × every fault. `FAULT_TOOLS=a,b` narrows it to some tools.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_tool_answers_every_fault_within_its_deadline_with_a_sentence() {
    let only: Option<Vec<String>> = std::env::var("FAULT_TOOLS")
        .ok()
        .map(|v| v.split(',').map(str::to_string).collect());
    let tools: Vec<Value> = registry()
        .await
        .into_iter()
        .filter(|t| {
            only.as_ref()
                .is_none_or(|o| o.iter().any(|n| t["name"] == n.as_str()))
        })
        .collect();
    assert!(only.is_some() || tools.len() >= 28, "{} tools", tools.len());
    let started = Instant::now();
    let rows = futures::future::join_all(
        tools
            .into_iter()
            .map(|tool| tokio::spawn(run_tool(tool, true))),
    )
    .await
    .into_iter()
    .map(|r| r.expect("no panic in the suite"))
    .collect::<Vec<_>>();
    let table = table(&rows);
    let failures: Vec<String> = rows
        .iter()
        .flat_map(|(tool, cells)| {
            cells.iter().filter_map(move |(fault, cell)| {
                cell.problem
                    .as_ref()
                    .map(|p| format!("{tool} × {fault}: {p}"))
            })
        })
        .collect();
    eprintln!(
        "{table}\n{} cells in {:?}",
        rows.iter().map(|(_, c)| c.len()).sum::<usize>(),
        started.elapsed()
    );
    if let Ok(path) = std::env::var("FAULT_TABLE") {
        std::fs::write(&path, &table).unwrap();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Secrets Manager down (nothing listens) or hanging (accepts, never answers) at cold start: the
/// process stops within Lambda's 10 s init limit with one line naming the secret and what to
/// check.
#[tokio::test]
async fn secrets_manager_down_or_hanging_at_cold_start_stops_start_up_in_time() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hanging_url = format!("http://{}", hanging.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = hanging.accept().await {
            held.push(stream);
        }
    });
    for (what, url) in [("down", closed_url), ("hanging", hanging_url)] {
        let started = Instant::now();
        let output = tokio::process::Command::new(binary())
            .env_clear()
            .env("DT_SECRET_ID", "mcp/dynatrace")
            .env("AWS_ENDPOINT_URL", &url)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .arg("stdio")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .unwrap();
        let elapsed = started.elapsed();
        assert!(!output.status.success(), "{what}");
        assert!(elapsed < Duration::from_secs(10), "{what}: {elapsed:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let line = stderr
            .lines()
            .find(|l| l.starts_with("dynatrace-mcp: "))
            .unwrap_or_else(|| panic!("{what}: {stderr}"));
        assert!(line.contains("mcp/dynatrace"), "{what}: {line}");
        assert!(not_a_sentence(line).is_none(), "{what}: {line}");
    }
}
