//! `dtmcp-bench`: the parts of the benchmark that need a program rather than a shell.
//!
//! ```text
//! dtmcp-bench sandbox [--port N]
//!     The simulated tenant with request recording off, plus a control listener:
//!     `POST <BENCH_SANDBOX_CONTROL>/latency/<ms>` sets the latency of every sandbox answer,
//!     `GET <BENCH_SANDBOX_CONTROL>/connections` answers how many TCP connections the tenant has
//!     accepted since it started.
//!     Prints `export KEY=VALUE` lines (the server's settings, BENCH_SANDBOX_CONTROL,
//!     BENCH_PLATFORM_TOKEN), then a line `ready`; runs until SIGTERM/SIGINT.
//! dtmcp-bench coldstart --bin PATH --mode stdio|http|version --runs N [--log FILE]
//!     Spawns the server N+1 times (the first is a discarded warm-up) and times each run from
//!     spawn to the complete `tools/list` answer. Prints JSON.
//! dtmcp-bench lambda --bin PATH --event FILE --invocations N [--log FILE]
//!     A Lambda Runtime API stand-in: runs the binary as a Lambda function and feeds it the API
//!     Gateway event FILE with a `tools/list` body, then with an `execute_dql` body, N times each.
//!     Prints JSON.
//! dtmcp-bench lambda --bin PATH --event FILE --cold N [--log FILE]
//!     N+1 cold starts (the first is a discarded warm-up), each a fresh Runtime API and a fresh
//!     function with one `tools/list` event queued at spawn: times spawn → first
//!     `/invocation/next` (the init) and spawn → the `/response` POST (the first answer).
//!     AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN and AWS_REGION
//!     pass through to the function (with DT_SECRET_ID: its settings from a local Secrets Manager).
//!     Prints JSON.
//! ```
//!
//! Settings of the server under test come from the environment (run.sh exports the sandbox's).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use dynatrace_sandbox::runtime_api::RuntimeApi;
use dynatrace_sandbox::{DEMO_PLATFORM_TOKEN, Sandbox, SandboxConfig};
use serde_json::{Value, json};

const TOOLS_LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
const EXECUTE_DQL: &str = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"execute_dql","arguments":{"dqlStatement":"fetch logs | limit 10"}}}"#;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("sandbox") => run_async(sandbox(opt(&args, "--port").unwrap_or(0))),
        Some("coldstart") => coldstart(&args),
        Some("lambda") => run_async(lambda(args.clone())),
        _ => Err(anyhow!(
            "usage: dtmcp-bench sandbox [--port N] | coldstart --bin PATH --mode stdio|http|version --runs N | lambda --bin PATH --event FILE (--invocations N | --cold N)"
        )),
    };
    if let Err(e) = result {
        eprintln!("dtmcp-bench: {e:#}");
        std::process::exit(1);
    }
}

fn run_async<F: std::future::Future<Output = Result<()>>>(f: F) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

fn opt<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

/// Where the server's stderr goes: `--log FILE` (appended), else nowhere.
fn log_target(args: &[String]) -> Result<Stdio> {
    match opt::<String>(args, "--log") {
        Some(path) => Ok(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("opening {path}"))?,
        )),
        None => Ok(Stdio::null()),
    }
}

fn req_opt<T: std::str::FromStr>(args: &[String], name: &str) -> Result<T> {
    opt(args, name).ok_or_else(|| anyhow!("missing or malformed {name}"))
}

// ------------------------------------------------------------------------------------- sandbox

async fn sandbox(port: u16) -> Result<()> {
    let sandbox = Arc::new(
        Sandbox::start(SandboxConfig {
            port,
            record_requests: false,
            ..SandboxConfig::demo()
        })
        .await?,
    );
    let control = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let control_addr = control.local_addr()?;
    let app = axum::Router::new()
        .route(
            "/latency/{ms}",
            axum::routing::post(
                |axum::extract::State(sb): axum::extract::State<Arc<Sandbox>>,
                 axum::extract::Path(ms): axum::extract::Path<u64>| async move {
                    sb.set_latency(Duration::from_millis(ms));
                    format!("latency {ms} ms\n")
                },
            ),
        )
        .route(
            "/connections",
            axum::routing::get(
                |axum::extract::State(sb): axum::extract::State<Arc<Sandbox>>| async move {
                    format!("{}\n", sb.connections())
                },
            ),
        )
        .with_state(sandbox.clone());
    tokio::spawn(async move { axum::serve(control, app).await });
    let mut out = std::io::stdout().lock();
    for (key, value) in sandbox.settings_pairs() {
        writeln!(out, "export {key}={value}")?;
    }
    writeln!(out, "export BENCH_SANDBOX_URL={}", sandbox.url())?;
    writeln!(out, "export BENCH_SANDBOX_CONTROL=http://{control_addr}")?;
    writeln!(out, "export BENCH_PLATFORM_TOKEN={DEMO_PLATFORM_TOKEN}")?;
    writeln!(out, "ready")?;
    out.flush()?;
    drop(out);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

// ----------------------------------------------------------------------------------- coldstart

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn stats(mut v: Vec<f64>) -> Value {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| -> f64 {
        if v.is_empty() {
            return f64::NAN;
        }
        // nearest-rank
        let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
        v[rank.min(v.len()) - 1]
    };
    let median = if v.is_empty() {
        f64::NAN
    } else if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    json!({
        "n": v.len(),
        "median": median,
        "p90": pct(90.0),
        "p99": pct(99.0),
        "min": v.first().copied().unwrap_or(f64::NAN),
        "max": v.last().copied().unwrap_or(f64::NAN),
        "mean": v.iter().sum::<f64>() / v.len().max(1) as f64,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Reaper(Child);
impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn coldstart(args: &[String]) -> Result<()> {
    let bin: String = req_opt(args, "--bin")?;
    let mode: String = req_opt(args, "--mode")?;
    let runs: usize = req_opt(args, "--runs")?;
    let mut firsts = Vec::new();
    let mut totals = Vec::new();
    for i in 0..=runs {
        let (first, total) = match mode.as_str() {
            "stdio" => cold_stdio(&bin, log_target(args)?),
            "http" => cold_http(&bin, log_target(args)?),
            "version" => cold_version(&bin),
            other => bail!("unknown mode {other}"),
        }
        .with_context(|| format!("cold start run {i} ({mode})"))?;
        if i > 0 {
            firsts.push(ms(first));
            totals.push(ms(total));
        }
    }
    let out =
        json!({ "mode": mode, "first_answer_ms": stats(firsts), "tools_list_ms": stats(totals) });
    println!("{out}");
    Ok(())
}

/// Spawn to exit of `--version`: the floor of exec + dynamic loading + argument parsing.
fn cold_version(bin: &str) -> Result<(Duration, Duration)> {
    let t0 = Instant::now();
    let status = Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    let t = t0.elapsed();
    if !status.success() {
        bail!("--version failed: {status}");
    }
    Ok((t, t))
}

/// A client's opening over stdio, as MCP clients do it: `initialize`, wait for its answer, then
/// `notifications/initialized` and `tools/list`. Times to the initialize answer and to the
/// complete tools/list answer.
fn cold_stdio(bin: &str, log: Stdio) -> Result<(Duration, Duration)> {
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"dtmcp-bench","version":"0"}}}"#;
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let t0 = Instant::now();
    let child = Command::new(bin)
        .arg("stdio")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .with_context(|| format!("spawning {bin}"))?;
    let mut child = Reaper(child);
    let mut stdin = child.0.stdin.take().unwrap();
    stdin.write_all(format!("{init}\n").as_bytes())?;
    stdin.flush()?;
    let mut reader = BufReader::new(child.0.stdout.take().unwrap());
    let mut first = None;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("the server closed stdout before answering tools/list");
        }
        let now = t0.elapsed();
        let v: Value = serde_json::from_str(&line).context("a stdout line is not JSON")?;
        if v["id"] == 1 && first.is_none() {
            first = Some(now);
            if v.get("result").is_none() {
                bail!("initialize failed: {}", line.trim());
            }
            stdin.write_all(format!("{initialized}\n{TOOLS_LIST}\n").as_bytes())?;
            stdin.flush()?;
            continue;
        }
        if v["id"] == 2 {
            if v["result"]["tools"].as_array().map_or(0, Vec::len) == 0 {
                bail!("tools/list answer without tools: {}", line.trim());
            }
            drop(stdin);
            let first = first.ok_or_else(|| anyhow!("tools/list answered before initialize"))?;
            return Ok((first, now));
        }
    }
}

fn http_post(stream: &mut TcpStream, body: &str) -> Result<Vec<u8>> {
    write!(
        stream,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf)?;
    Ok(buf)
}

/// `serve` on a free port: spawn, connect as soon as the port accepts, POST tools/list.
fn cold_http(bin: &str, log: Stdio) -> Result<(Duration, Duration)> {
    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let t0 = Instant::now();
    let child = Command::new(bin)
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("spawning {bin}"))?;
    let mut child = Reaper(child);
    let mut stream = loop {
        match TcpStream::connect(addr) {
            Ok(s) => break s,
            Err(_) => {
                if let Some(status) = child.0.try_wait()? {
                    bail!("the server exited ({status}) before listening on {addr}");
                }
                if t0.elapsed() > Duration::from_secs(10) {
                    bail!("the server did not listen on {addr} within 10 s");
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    };
    stream.set_nodelay(true)?;
    let accepted = t0.elapsed();
    let response = http_post(&mut stream, TOOLS_LIST)?;
    let t = t0.elapsed();
    let text = String::from_utf8_lossy(&response);
    if !text.starts_with("HTTP/1.1 200") || !text.contains("\"tools\":[") {
        bail!(
            "unexpected tools/list answer: {}",
            text.chars().take(300).collect::<String>()
        );
    }
    Ok((accepted, t))
}

// -------------------------------------------------------------------------------------- lambda

/// A function must have an auth token (or MCP_ALLOW_UNAUTHENTICATED): every event carries it, so
/// the per-invocation time includes the token check, as in production.
const LAMBDA_AUTH_TOKEN: &str = "dtmcp-bench-auth-token-0123456789abcdef";

/// The API Gateway event of FILE with `body` (and the auth token header).
fn lambda_event(template: &Value, body: &str) -> Value {
    let mut e = template.clone();
    e["body"] = Value::String(body.to_string());
    e["headers"]["content-length"] = Value::String(body.len().to_string());
    e["headers"]["x-mcp-auth-token"] = Value::String(LAMBDA_AUTH_TOKEN.to_string());
    e
}

/// The function's command: an environment as Lambda's (nothing of the caller's but the server's
/// DT_/OAUTH_/MCP_/OTEL_ settings and the AWS endpoint and credentials, if set).
fn lambda_command(bin: &str, runtime_addr: SocketAddr, log: Stdio) -> Command {
    let mut command = Command::new(bin);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", runtime_addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "dynatrace-mcp")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/dynatrace-mcp")
        .env("AWS_REGION", "us-east-1")
        .env("MCP_AUTH_TOKEN", LAMBDA_AUTH_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    for (key, value) in std::env::vars() {
        let aws = matches!(
            key.as_str(),
            "AWS_ENDPOINT_URL"
                | "AWS_ACCESS_KEY_ID"
                | "AWS_SECRET_ACCESS_KEY"
                | "AWS_SESSION_TOKEN"
                | "AWS_REGION"
        );
        if aws
            || key.starts_with("OTEL_")
            || ((key.starts_with("DT_") || key.starts_with("OAUTH_") || key.starts_with("MCP_"))
                && key != "MCP_AUTH_TOKEN")
        {
            command.env(key, value);
        }
    }
    command
}

/// Checks a function's answer to an API Gateway event: HTTP 200 and a JSON-RPC result.
fn check_lambda_answer(name: &str, i: usize, response: &Value) -> Result<()> {
    if response["statusCode"] != 200 {
        bail!("{name} invocation {i}: {response}");
    }
    let payload = response["body"].as_str().unwrap_or_default();
    let rpc: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
    if rpc.get("result").is_none() || rpc["result"]["isError"] == true {
        bail!("{name} invocation {i} failed: {payload}");
    }
    Ok(())
}

async fn lambda(args: Vec<String>) -> Result<()> {
    let bin: String = req_opt(&args, "--bin")?;
    let event_file: String = req_opt(&args, "--event")?;
    let template: Value = serde_json::from_str(
        &std::fs::read_to_string(&event_file).with_context(|| format!("reading {event_file}"))?,
    )?;
    if let Some(runs) = opt::<usize>(&args, "--cold") {
        return lambda_cold(&bin, &template, runs, &args).await;
    }
    let n: usize = req_opt(&args, "--invocations")?;
    let event_with = |body: &str| lambda_event(&template, body);

    let (api, runtime_addr) = RuntimeApi::start().await?;

    let mut command = lambda_command(&bin, runtime_addr, log_target(&args)?);
    let spawned = Instant::now();
    let child = Reaper(command.spawn().with_context(|| format!("spawning {bin}"))?);

    // Wait for the function to finish its init and ask for work, so the first timed invocation
    // does not include the init.
    let waited = Instant::now();
    let mut child = child;
    while api.first_next().is_none() {
        if let Some(status) = child.0.try_wait()? {
            bail!("the function exited ({status}) before asking for an invocation");
        }
        if waited.elapsed() > Duration::from_secs(10) {
            bail!("the function did not call /invocation/next within 10 s");
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let mut results = serde_json::Map::new();
    let mut first_invocation = serde_json::Map::new();
    let mut seq = 0u64;
    for (name, body) in [("tools_list", TOOLS_LIST), ("execute_dql", EXECUTE_DQL)] {
        let event = event_with(body);
        let mut times = Vec::with_capacity(n);
        // One extra invocation first: the cold one (and, for execute_dql, the OAuth token fetch).
        for i in 0..=n {
            seq += 1;
            let id = format!("bench-{seq}");
            let (took, response) = api
                .invoke(&id, event.clone(), Duration::from_secs(30))
                .await
                .map_err(|e| anyhow!(e))?;
            check_lambda_answer(name, i, &response)?;
            if i == 0 {
                first_invocation.insert(name.to_string(), json!(ms(took)));
            } else {
                times.push(ms(took));
            }
        }
        results.insert(name.to_string(), stats(times));
    }
    let init = api.first_next().map(|t| ms(t.duration_since(spawned)));
    drop(child);
    println!(
        "{}",
        json!({
            "init_ms": init,
            "first_invocation_ms": first_invocation,
            "invocation_ms": results,
        })
    );
    Ok(())
}

/// Cold starts: for each run a fresh Runtime API, one `tools/list` event queued at spawn, and the
/// function's init (spawn → first `/invocation/next`) and first answer (spawn → `/response`).
async fn lambda_cold(bin: &str, template: &Value, runs: usize, args: &[String]) -> Result<()> {
    let event = lambda_event(template, TOOLS_LIST);
    let mut inits = Vec::new();
    let mut answers = Vec::new();
    for i in 0..=runs {
        let (api, runtime_addr) = RuntimeApi::start().await?;
        let mut command = lambda_command(bin, runtime_addr, log_target(args)?);
        let spawned = Instant::now();
        let mut child = Reaper(command.spawn().with_context(|| format!("spawning {bin}"))?);
        // The event waits in the queue from the spawn on: the function takes it with its first
        // `/invocation/next`, as a cold start triggered by a request does.
        let id = format!("cold-{i}");
        let invoke = api.invoke(&id, event.clone(), Duration::from_secs(10));
        tokio::pin!(invoke);
        let (_took, response) = loop {
            tokio::select! {
                answer = &mut invoke => break answer.map_err(|e| anyhow!(e))?,
                _ = tokio::time::sleep(Duration::from_millis(2)) => {
                    if let Some(status) = child.0.try_wait()? {
                        let init_error = api.init_error();
                        bail!("cold run {i}: the function exited ({status}) before answering; init error: {init_error:?}");
                    }
                }
            }
        };
        let answered = spawned.elapsed();
        check_lambda_answer("tools_list (cold)", i, &response)?;
        let init = api
            .first_next()
            .ok_or_else(|| anyhow!("cold run {i}: answered without /invocation/next"))?
            .duration_since(spawned);
        drop(child);
        if i > 0 {
            inits.push(ms(init));
            answers.push(ms(answered));
        }
    }
    println!(
        "{}",
        json!({
            "cold_runs": runs,
            "init_ms": stats(inits),
            "first_answer_ms": stats(answers),
            "secret_id": std::env::var("DT_SECRET_ID").ok(),
        })
    );
    Ok(())
}
