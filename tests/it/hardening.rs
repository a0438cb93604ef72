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

#[tokio::test]
async fn a_huge_tool_name_is_not_echoed_back_whole() {
    let app = spawn_app().await;
    let name = "x".repeat(200_000);
    let reply = app
        .rpc("tools/call", json!({"name": name, "arguments": {}}))
        .await;
    assert!(
        reply.text.len() < 2_000,
        "answer of {} bytes",
        reply.text.len()
    );
    assert!(reply.text.contains("unknown tool"), "{}", reply.text);
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
