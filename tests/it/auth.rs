//! `MCP_AUTH_TOKEN`: missing, wrong and right tokens, in both header forms.

use serde_json::json;

use crate::helpers::*;

async fn app_with_token() -> TestApp {
    spawn_with(Options {
        env: vec![("MCP_AUTH_TOKEN", AUTH_TOKEN.into())],
        ..Default::default()
    })
    .await
}

fn list() -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
}

#[tokio::test]
async fn missing_token_gets_401_with_a_jsonrpc_body() {
    let app = app_with_token().await;
    let reply = app.send(app.post("/mcp", &list())).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body["jsonrpc"], "2.0");
    assert_eq!(reply.body["error"]["code"], -32001);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("X-MCP-Auth-Token")
    );
    assert!(reply.headers.contains_key("www-authenticate"));
    // The seed's root path is protected too.
    let reply = app.send(app.post("/", &list())).await;
    assert_eq!(reply.status, 401);
}

#[tokio::test]
async fn wrong_token_gets_401_in_either_header() {
    let app = app_with_token().await;
    let reply = app
        .send(
            app.post("/mcp", &list())
                .header("x-mcp-auth-token", "wrong"),
        )
        .await;
    assert_eq!(reply.status, 401);
    let reply = app
        .send(app.post("/mcp", &list()).bearer_auth("wrong"))
        .await;
    assert_eq!(reply.status, 401);
    let almost = format!("{AUTH_TOKEN}x");
    let reply = app
        .send(app.post("/mcp", &list()).header("x-mcp-auth-token", almost))
        .await;
    assert_eq!(reply.status, 401);
    assert!(
        !reply.text.contains(AUTH_TOKEN),
        "the token never appears in an answer"
    );
}

#[tokio::test]
async fn right_token_is_accepted_in_either_header() {
    let app = app_with_token().await;
    let reply = app
        .send(
            app.post("/mcp", &list())
                .header("x-mcp-auth-token", AUTH_TOKEN),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = app
        .send(app.post("/mcp", &list()).bearer_auth(AUTH_TOKEN))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = app
        .send(
            app.post("/", &list())
                .header("X-MCP-Auth-Token", AUTH_TOKEN),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}
