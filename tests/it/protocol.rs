//! The HTTP transport: health, methods, both protocol eras, the seed's curl example, Host and
//! Origin checks, limits.

use serde_json::json;

use crate::helpers::*;

fn modern_meta() -> serde_json::Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "it", "version": "1"}
    })
}

#[tokio::test]
async fn health_answers_the_seed_shape_without_auth() {
    let app = spawn_with(Options {
        env: vec![("MCP_AUTH_TOKEN", AUTH_TOKEN.into())],
        ..Default::default()
    })
    .await;
    let reply = app.send(app.http.get(app.url("/health"))).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["status"], "healthy");
    assert_eq!(reply.body["server"], "Dynatrace MCP Server");
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
}

#[tokio::test]
async fn seed_curl_example_works_verbatim_against_root() {
    let app = spawn_app().await;
    // curl -X POST http://host:3000/ -H "Content-Type: application/json" -d '{...}'
    // (curl's default Accept is */*; no initialize, no protocol-version header).
    let reply = app
        .send(
            app.http
                .post(app.url("/"))
                .header("content-type", "application/json")
                .header("accept", "*/*")
                .body(r#"{"jsonrpc":"2.0","method":"tools/list","id":1}"#),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let names: Vec<&str> = reply.body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"execute_dql"), "{names:?}");
    assert_eq!(reply.body["id"], 1);
}

#[tokio::test]
async fn get_and_delete_on_the_mcp_path_answer_405() {
    let app = spawn_app().await;
    for path in ["/mcp", "/"] {
        let reply = app
            .send(
                app.http
                    .get(app.url(path))
                    .header("accept", "text/event-stream"),
            )
            .await;
        assert_eq!(reply.status, 405, "GET {path}");
        assert_eq!(reply.headers["allow"], "POST");
        let reply = app.send(app.http.delete(app.url(path))).await;
        assert_eq!(reply.status, 405, "DELETE {path}");
    }
}

#[tokio::test]
async fn notifications_answer_202_without_body() {
    let app = spawn_app().await;
    let reply = app
        .send(app.post(
            "/mcp",
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        ))
        .await;
    assert_eq!(reply.status, 202);
    assert!(reply.text.is_empty());
}

#[tokio::test]
async fn legacy_era_initialize_negotiates_and_needs_no_session() {
    let app = spawn_app().await;
    let reply = app
        .send(app.post(
            "/mcp",
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "it", "version": "1"}
            }}),
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(
        reply.body["result"]["serverInfo"]["name"],
        "Dynatrace MCP Server"
    );
    assert!(reply.body["result"]["capabilities"]["tools"].is_object());
    assert!(
        reply.headers.get("mcp-session-id").is_none(),
        "stateless: no session id"
    );

    // A later request on another connection, with a session id a gateway invented: still served.
    let reply = app
        .send(
            app.post(
                "/mcp",
                &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
            )
            .header("mcp-protocol-version", "2025-06-18")
            .header("mcp-session-id", "made-up-by-a-gateway"),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.body["result"]["tools"].as_array().unwrap().len() >= 3);
}

#[tokio::test]
async fn modern_era_discover_and_call_with_per_request_meta() {
    let app = spawn_app().await;
    let reply = app
        .send(
            app.post(
                "/mcp",
                &json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": modern_meta()}}),
            )
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "server/discover"),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let result = &reply.body["result"];
    assert!(
        result["supportedVersions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "2026-07-28"),
        "{result}"
    );
    assert!(result["capabilities"]["tools"].is_object());

    let reply = app
        .send(
            app.post(
                "/mcp",
                &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                    "_meta": modern_meta(),
                    "name": "verify_dql",
                    "arguments": {"dqlStatement": "fetch logs | limit 1"}
                }}),
            )
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "verify_dql"),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["result"]["resultType"], "complete");
    assert_eq!(reply.body["result"]["structuredContent"]["valid"], true);
}

#[tokio::test]
async fn modern_era_rejects_headers_that_contradict_the_body() {
    let app = spawn_app().await;
    let reply = app
        .send(
            app.post(
                "/mcp",
                &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": modern_meta()}}),
            )
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call"),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
}

#[tokio::test]
async fn unsupported_protocol_version_header_answers_400() {
    let app = spawn_app().await;
    let reply = app
        .send(
            app.post(
                "/mcp",
                &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            )
            .header("mcp-protocol-version", "1999-01-01"),
        )
        .await;
    assert_eq!(reply.status, 400);
}

#[tokio::test]
async fn unknown_tool_is_a_protocol_error_naming_it() {
    let app = spawn_app().await;
    let reply = app
        .rpc("tools/call", json!({"name": "nope", "arguments": {}}))
        .await;
    assert_eq!(reply.body["error"]["code"], -32602, "{}", reply.text);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nope")
    );
}

#[tokio::test]
async fn loopback_server_refuses_foreign_host_and_origin() {
    let app = spawn_app().await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let reply = app
        .send(app.post("/mcp", &body).header("host", "evil.example.com"))
        .await;
    assert_eq!(reply.status, 403, "Host: {}", reply.text);
    let reply = app
        .send(
            app.post("/mcp", &body)
                .header("origin", "https://evil.example.com"),
        )
        .await;
    assert_eq!(reply.status, 403, "Origin: {}", reply.text);
    let reply = app
        .send(
            app.post("/mcp", &body)
                .header("origin", "http://localhost:6274"),
        )
        .await;
    assert_eq!(
        reply.status, 200,
        "a local Inspector origin: {}",
        reply.text
    );
}

#[tokio::test]
async fn configured_hosts_and_origins_work_behind_a_load_balancer() {
    let app = spawn_with(Options {
        env: vec![
            ("MCP_ALLOWED_HOSTS", "mcp.example.com".into()),
            ("MCP_ALLOWED_ORIGINS", "https://portal.example.com".into()),
        ],
        ..Default::default()
    })
    .await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let reply = app
        .send(app.post("/mcp", &body).header("host", "mcp.example.com"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = app
        .send(
            app.post("/mcp", &body)
                .header("host", "mcp.example.com")
                .header("origin", "https://portal.example.com"),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = app
        .send(app.post("/mcp", &body).header("host", "other.example.com"))
        .await;
    assert_eq!(reply.status, 403);
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let app = spawn_app().await;
    let big = "x".repeat(1024 * 1024 + 10);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "verify_dql", "arguments": {"dqlStatement": big}}});
    let reply = app.send(app.post("/mcp", &body)).await;
    assert_eq!(reply.status, 413);
}

#[tokio::test]
async fn unknown_paths_answer_404_with_a_hint() {
    let app = spawn_app().await;
    let reply = app.send(app.http.get(app.url("/nope"))).await;
    assert_eq!(reply.status, 404);
    assert!(reply.text.contains("/mcp"));
}

#[tokio::test]
async fn non_json_content_type_is_refused() {
    let app = spawn_app().await;
    let reply = app
        .send(
            app.http
                .post(app.url("/mcp"))
                .header("content-type", "text/plain")
                .body(r#"{"jsonrpc":"2.0","method":"tools/list","id":1}"#),
        )
        .await;
    assert_eq!(reply.status, 415);
}

/// Status, headers (every value but the date and the request id, which differ per answer) and
/// body of an answer: what a client sees of it.
async fn seen(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<String>, String) {
    let mut request = app.http.post(app.url(path)).body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let reply = app.send(request).await;
    let mut seen_headers: Vec<String> = reply
        .headers
        .iter()
        .map(|(name, value)| match name.as_str() {
            "date" | "x-request-id" => name.to_string(),
            _ => format!("{name}: {}", value.to_str().unwrap_or("?")),
        })
        .collect();
    seen_headers.sort();
    (reply.status, seen_headers, reply.text)
}

const VERSIONS: [Option<&str>; 5] = [
    None,
    Some("2024-11-05"),
    Some("2025-03-26"),
    Some("2025-06-18"),
    Some("2025-11-25"),
];

fn with_version<'a>(
    version: Option<&'a str>,
    rest: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut headers = rest.to_vec();
    if let Some(v) = version {
        headers.push(("mcp-protocol-version", v));
    }
    headers
}

/// `tools/list` is answered from the bytes of rmcp's first answer to it (src/http/fast.rs). A
/// differential test: every request below gets the same status, Content-Type and body from a
/// server that has answered `tools/list` in every era before (so it may answer from its cache) as
/// from a fresh one (whose first answer is rmcp's own), ids, eras and refusals included.
#[tokio::test]
async fn a_cached_tools_list_is_rmcps_own_answer_byte_for_byte() {
    const PLAIN: [(&str, &str); 2] = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    let options = || Options {
        env: vec![
            ("MCP_AUTH_TOKEN", AUTH_TOKEN.into()),
            ("MCP_ALLOWED_HOSTS", "127.0.0.1,localhost".into()),
        ],
        ..Default::default()
    };
    let warm = spawn_with(options()).await;
    for version in VERSIONS {
        let headers = with_version(
            version,
            &[PLAIN[0], PLAIN[1], ("x-mcp-auth-token", AUTH_TOKEN)],
        );
        let (status, _, _) = seen(
            &warm,
            "/mcp",
            &headers,
            r#"{"jsonrpc":"2.0","id":0,"method":"tools/list"}"#,
        )
        .await;
        assert_eq!(status, 200);
    }

    let mut cases: Vec<(Vec<(&str, &str)>, String)> = Vec::new();
    // Plain requests in every era, with ids of every shape, with and without empty params.
    for (i, version) in VERSIONS.into_iter().enumerate() {
        for id in [
            r#"7"#,
            r#""abc""#,
            r#""q\"\\\u00e9""#,
            r#"-5"#,
            r#"1.0"#,
            r#"18446744073709551615"#,
            r#"null"#,
        ] {
            let params = if i % 2 == 0 { "" } else { r#","params":{}"# };
            cases.push((
                with_version(
                    version,
                    &[PLAIN[0], PLAIN[1], ("x-mcp-auth-token", AUTH_TOKEN)],
                ),
                format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"{params}}}"#),
            ));
        }
    }
    let plain = |extra: &[(&'static str, &'static str)]| {
        let mut headers = vec![
            PLAIN[0],
            PLAIN[1],
            ("x-mcp-auth-token", AUTH_TOKEN),
            ("mcp-protocol-version", "2025-11-25"),
        ];
        headers.extend_from_slice(extra);
        headers
    };
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_string();
    // What rmcp refuses or answers otherwise must still be rmcp's answer.
    for (headers, body) in [
        (plain(&[("origin", "https://evil.example")]), list.clone()),
        (plain(&[("host", "evil.example")]), list.clone()),
        (plain(&[("host", "localhost:1")]), list.clone()),
        (plain(&[("mcp-method", "tools/list")]), list.clone()),
        (plain(&[("mcp-protocol-version", "2026-07-28")]), list.clone()),
        (plain(&[("accept", "text/html")]), list.clone()),
        (plain(&[("content-type", "text/plain")]), list.clone()),
        (plain(&[("content-type", "application/json; charset=utf-8")]), list.clone()),
        (
            vec![PLAIN[0], PLAIN[1], ("x-mcp-auth-token", AUTH_TOKEN), ("mcp-protocol-version", "2099-01-01")],
            list.clone(),
        ),
        (
            vec![PLAIN[0], ("accept", "application/json;q=0, text/event-stream"), ("x-mcp-auth-token", AUTH_TOKEN)],
            list.clone(),
        ),
        (plain(&[]), r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"x"}}"#.into()),
        (plain(&[]), r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"progressToken":1}}}"#.into()),
        (plain(&[]), r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","extra":true}"#.into()),
        (plain(&[]), r#"{"jsonrpc":"1.0","id":1,"method":"tools/list"}"#.into()),
        (plain(&[]), r#"{"jsonrpc":"2.0","method":"tools/list"}"#.into()),
        (plain(&[]), r#"{"jsonrpc":"2.0","id":1,"method":"tools/list""#.into()),
        (plain(&[]), r#"{"jsonrpc":"2.0","id":{},"method":"tools/list"}"#.into()),
        (plain(&[]), r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nope"}}"#.into()),
        (vec![PLAIN[0], PLAIN[1], ("mcp-protocol-version", "2025-11-25")], list.clone()),
    ] {
        cases.push((headers, body));
    }
    for path in ["/mcp", "/"] {
        for (headers, body) in &cases {
            let fresh = spawn_with(options()).await;
            let expected = seen(&fresh, path, headers, body).await;
            let answered = seen(&warm, path, headers, body).await;
            assert_eq!(answered, expected, "{path} {headers:?} {body}");
        }
    }
}
