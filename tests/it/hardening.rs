//! Gaps found by trying the server as an attacker and as a browser would: origins and their
//! ports, CORS preflights, bodies announced larger than the limit, echoes of huge input.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

fn list() -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
}

async fn portal_app() -> TestApp {
    spawn_with(Options {
        env: vec![
            ("MCP_AUTH_TOKEN", AUTH_TOKEN.into()),
            ("MCP_ALLOWED_ORIGINS", "https://portal.example.com".into()),
        ],
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn an_origin_written_without_a_port_admits_only_the_default_port() {
    let app = portal_app().await;
    for (origin, status) in [
        ("https://portal.example.com", 200),
        ("https://portal.example.com:443", 200),
        ("https://portal.example.com:8443", 403),
        ("http://portal.example.com", 403),
    ] {
        let reply = app
            .send(
                app.post("/mcp", &list())
                    .header("origin", origin)
                    .header("x-mcp-auth-token", AUTH_TOKEN),
            )
            .await;
        assert_eq!(reply.status, status, "Origin: {origin}: {}", reply.text);
    }
}

#[tokio::test]
async fn a_browser_gets_its_preflight_answered_and_cors_headers_on_answers() {
    let app = portal_app().await;
    // The preflight carries no credentials: it is answered before authentication.
    let response = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/mcp"))
        .header("origin", "https://portal.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, authorization, mcp-protocol-version",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let h = response.headers();
    assert_eq!(
        h["access-control-allow-origin"],
        "https://portal.example.com"
    );
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let allowed = h["access-control-allow-headers"].to_str().unwrap();
    for needed in [
        "content-type",
        "authorization",
        "mcp-protocol-version",
        "x-mcp-auth-token",
    ] {
        assert!(allowed.contains(needed), "{needed} in {allowed}");
    }
    // A foreign origin's preflight is refused.
    let response = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/mcp"))
        .header("origin", "https://evil.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    // Answers to the allowed origin, a 401 included, carry CORS headers and expose the challenge.
    for token in [Some(AUTH_TOKEN), None] {
        let mut request = app
            .post("/mcp", &list())
            .header("origin", "https://portal.example.com");
        if let Some(token) = token {
            request = request.header("x-mcp-auth-token", token);
        }
        let reply = app.send(request).await;
        assert_eq!(reply.status, if token.is_some() { 200 } else { 401 });
        assert_eq!(
            reply.headers["access-control-allow-origin"],
            "https://portal.example.com"
        );
        assert!(
            reply.headers["access-control-expose-headers"]
                .to_str()
                .unwrap()
                .contains("www-authenticate")
        );
    }
}

/// Sends raw bytes and returns the status line, or times out.
async fn raw(app: &TestApp, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_body_announced_larger_than_the_limit_is_refused_at_once() {
    let app = spawn_app().await;
    for expect in ["", "Expect: 100-continue\r\n"] {
        let started = Instant::now();
        let status = raw(
            &app,
            &format!(
                "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                 Accept: application/json, text/event-stream\r\nContent-Length: 100000000\r\n{expect}\r\n{{\"jsonrpc\":\"2.0\"}}"
            ),
        )
        .await;
        assert!(status.contains(" 413 "), "{expect:?}: {status}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "at once: {:?}",
            started.elapsed()
        );
    }
}

/// A name, method or URI a megabyte long is named in the error, cut to a few dozen characters.
#[tokio::test]
async fn huge_names_methods_and_uris_are_not_echoed_back_whole() {
    let app = spawn_app().await;
    let long = "x".repeat(200_000);
    for (method, params, expect) in [
        (
            "tools/call",
            json!({"name": long, "arguments": {}}),
            "unknown tool",
        ),
        (
            "prompts/get",
            json!({"name": long, "arguments": {}}),
            "there is no prompt",
        ),
        (
            "resources/read",
            json!({"uri": long}),
            "there is no resource",
        ),
        (long.as_str(), json!({}), "method not found"),
        (
            &format!("notifications/{long}"),
            json!({}),
            "method not found",
        ),
    ] {
        let reply = app.rpc(method, params).await;
        assert!(
            reply.text.len() < 2_000,
            "{}: answer of {} bytes",
            &method[..20.min(method.len())],
            reply.text.len()
        );
        assert!(reply.text.contains(expect), "{}", reply.text);
    }
}

#[tokio::test]
async fn malformed_json_and_a_malformed_chunked_body_are_answered_400() {
    let app = spawn_app().await;
    let reply = app
        .send(
            app.http
                .post(app.url("/mcp"))
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": "),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.body["error"]["code"], -32700);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1 column")
    );
    let status = raw(
        &app,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    )
    .await;
    assert!(status.contains(" 400 "), "{status}");
}

/// `dynatrace-mcp serve` against a sandbox, with extra settings; returns the child and its port.
async fn demo_sandbox() -> dynatrace_sandbox::Sandbox {
    dynatrace_sandbox::Sandbox::start(dynatrace_sandbox::SandboxConfig::demo())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_client_that_sends_its_headers_a_byte_at_a_time_is_cut_off() {
    let sandbox = demo_sandbox().await;
    let (_child, port) = serve_binary(
        &sandbox,
        &[("MCP_HEADER_READ_TIMEOUT_SECONDS", "2")],
        std::process::Stdio::null(),
    )
    .await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let started = Instant::now();
    let head = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    stream.write_all(head).await.unwrap();
    let mut closed_after = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if stream.write_all(b"a").await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed_after = Some(started.elapsed());
                break;
            }
            Ok(Ok(_)) => {
                closed_after = Some(started.elapsed());
                break;
            }
            Err(_) => {}
        }
    }
    let closed_after = closed_after.expect("the server closed the connection");
    assert!(
        closed_after < Duration::from_secs(5),
        "cut off after {closed_after:?}"
    );
}

#[tokio::test]
async fn sigterm_lets_the_call_in_flight_finish_and_refuses_new_connections() {
    let sandbox = demo_sandbox().await;
    sandbox.set_query_timing(dynatrace_sandbox::QueryTiming::Duration(
        Duration::from_millis(1500),
    ));
    let (mut child, port) = serve_binary(&sandbox, &[], std::process::Stdio::null()).await;
    let in_flight = dql_in_background(port);
    tokio::time::sleep(Duration::from_millis(400)).await;
    sigterm(&child);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "no new connection after SIGTERM"
    );
    let answer = in_flight.await.unwrap();
    assert_eq!(
        answer["result"]["structuredContent"]["status"], "succeeded",
        "{answer}"
    );
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the process exits")
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_huge_or_foreign_upstream_answer_is_refused_with_a_sentence_and_not_held() {
    use dynatrace_sandbox::Route;
    let app = spawn_app().await;
    let huge = bytes::Bytes::from(vec![b' '; 50 * 1024 * 1024]);
    for tool in ["execute_dql", "list_buckets"] {
        app.sandbox
            .inject_body(Route::QueryExecute, 200, huge.clone(), 1);
        let args = if tool == "execute_dql" {
            json!({"dqlStatement": "fetch logs | limit 2"})
        } else {
            json!({})
        };
        let started = Instant::now();
        let result = app.call_tool(tool, args.clone()).await;
        assert!(is_error(&result), "{tool}");
        assert!(
            text_of(&result).contains("more than 24 MiB"),
            "{tool}: {}",
            text_of(&result)
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        // The next call is served normally.
        let result = app.call_tool(tool, args).await;
        assert!(!is_error(&result), "{tool}: {}", text_of(&result));
    }
    // A proxy's HTML page where JSON was expected.
    app.sandbox.inject_body(
        Route::QueryExecute,
        200,
        bytes::Bytes::from_static(b"<html><body>Access denied by proxy</body></html>"),
        1,
    );
    let result = app
        .call_tool(
            "execute_dql",
            json!({"dqlStatement": "fetch logs | limit 2"}),
        )
        .await;
    assert!(is_error(&result));
    assert!(
        text_of(&result).contains("could not read"),
        "{}",
        text_of(&result)
    );
}

/// An upstream answer far larger than any listing (here 20,000 buckets, 5 MB) reaches the client
/// cut to `MCP_RESULT_MAX_BYTES`: the text says what `structuredContent` left out, and what is
/// left still fits the output schema.
#[tokio::test]
async fn structured_content_is_cut_to_the_result_budget() {
    use dynatrace_sandbox::Route;
    let app = spawn_app().await;
    let records: Vec<serde_json::Value> = (0..20_000)
        .map(|i| {
            json!({"name": format!("custom_bucket_{i:05}"), "display_name": "x".repeat(200),
                   "table": "logs", "status": "active", "retention_days": "35",
                   "estimated_uncompressed_bytes": "1000", "records": "10"})
        })
        .collect();
    let body = json!({"state": "SUCCEEDED", "progress": 100, "ttlSeconds": 60,
                      "result": {"records": records, "types": [], "metadata": {}}});
    let body = bytes::Bytes::from(serde_json::to_vec(&body).unwrap());
    assert!(body.len() > 5_000_000);
    app.sandbox.inject_body(Route::QueryExecute, 200, body, 1);
    let reply = app
        .rpc(
            "tools/call",
            json!({"name": "list_buckets", "arguments": {}}),
        )
        .await;
    let budget = 131_072;
    assert!(
        reply.text.len() < budget * 2,
        "answer of {} bytes: {}",
        reply.text.len(),
        &reply.text[..2000]
    );
    let result = &reply.body["result"];
    assert!(!is_error(result), "{}", text_of(result));
    let kept = result["structuredContent"]["buckets"].as_array().unwrap();
    assert!(!kept.is_empty() && kept.len() < 20_000, "{}", kept.len());
    assert_eq!(kept[0]["name"], "custom_bucket_00000");
    assert!(
        text_of(result).contains(&format!("`buckets` keeps {} of 20000 items", kept.len())),
        "{}",
        text_of(result)
    );
}

/// An `execute_dql` call to the `serve` on `port`, sent from a task of its own.
fn dql_in_background(port: u16) -> tokio::task::JoinHandle<serde_json::Value> {
    let url = format!("http://127.0.0.1:{port}/mcp");
    tokio::spawn(async move {
        post_raw(&url, &dql_call(1))
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap()
    })
}

fn dql_call(id: u64) -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "execute_dql", "arguments": {"dqlStatement": "fetch logs | limit 2"}}})
}

async fn post_raw(url: &str, body: &serde_json::Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Past MCP_MAX_CONCURRENT_REQUESTS, a request is answered 503 with Retry-After at once instead
/// of queueing behind the slow ones; those admitted are served normally.
#[tokio::test]
async fn requests_past_the_concurrency_limit_are_shed_at_once_with_retry_after() {
    let app = spawn_with(Options {
        env: vec![("MCP_MAX_CONCURRENT_REQUESTS", "2".into())],
        ..Options::default()
    })
    .await;
    app.sandbox
        .set_query_timing(dynatrace_sandbox::QueryTiming::Duration(
            Duration::from_millis(1500),
        ));
    let url = app.url("/mcp");
    let slow: Vec<_> = (0..2)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move { post_raw(&url, &dql_call(i)).await.status() })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..5 {
        let started = Instant::now();
        let response = post_raw(&url, &dql_call(10 + i)).await;
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(response.headers()["connection"], "close");
        assert!(started.elapsed() < Duration::from_millis(500));
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("MCP_MAX_CONCURRENT_REQUESTS"),
            "{body}"
        );
    }
    // Health checks are never shed.
    let health = reqwest::get(app.url("/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    for task in slow {
        assert_eq!(task.await.unwrap(), 200);
    }
    // Slots are given back: the next request is served.
    assert_eq!(post_raw(&url, &dql_call(99)).await.status(), 200);
}

/// Past MCP_MAX_CONNECTIONS, `serve` answers a new connection 503 and closes it.
#[tokio::test]
async fn connections_past_the_limit_get_a_503_and_are_closed() {
    let sandbox = demo_sandbox().await;
    let (_child, port) = serve_binary(
        &sandbox,
        &[("MCP_MAX_CONNECTIONS", "2")],
        std::process::Stdio::null(),
    )
    .await;
    // serve_binary's readiness probe connected and closed; give the server a moment to notice.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _held: Vec<_> = futures::future::join_all(
        (0..2).map(|_| tokio::net::TcpStream::connect(("127.0.0.1", port))),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let mut third = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(2), third.read_to_string(&mut answer))
        .await
        .expect("answered and closed at once")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("Retry-After: 1"), "{answer}");
    assert!(answer.contains("MCP_MAX_CONNECTIONS"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(1));
    // Once a held connection closes, a new one is served.
    drop(_held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = post_raw(&format!("http://127.0.0.1:{port}/mcp"), &dql_call(1)).await;
    assert_eq!(response.status(), 200);
}

/// A call still running when the shutdown grace period ends is answered (the server is
/// stopping, call again), its Grail query is cancelled, and the process exits cleanly.
#[tokio::test]
async fn after_the_grace_period_running_queries_are_cancelled_in_grail_before_exit() {
    let sandbox = demo_sandbox().await;
    sandbox.set_query_timing(dynatrace_sandbox::QueryTiming::Duration(
        Duration::from_secs(20),
    ));
    let (mut child, port) = serve_binary(
        &sandbox,
        &[("MCP_SHUTDOWN_GRACE_SECONDS", "1")],
        std::process::Stdio::null(),
    )
    .await;
    let in_flight = dql_in_background(port);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let signalled = Instant::now();
    sigterm(&child);
    let answer = tokio::time::timeout(Duration::from_secs(5), in_flight)
        .await
        .expect("answered soon after the grace period")
        .unwrap();
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("shutting down"), "{answer}");
    assert_eq!(answer["result"]["isError"], true);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the process exits")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "{:?}",
        signalled.elapsed()
    );
    assert_eq!(sandbox.cancelled_queries().len(), 1, "cancelled in Grail");
}
