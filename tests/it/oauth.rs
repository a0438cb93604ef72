//! The OAuth 2.1 resource server: Protected Resource Metadata, challenges, and tokens issued by
//! real identity providers (oidc-provider, moto's Cognito) deciding who may call what.
//!
//! The tests that start an identity provider need Node 22 and moto from the tools cache; they
//! are `#[ignore]`d for a plain `cargo test` and run by `scripts/test.sh`.

use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::helpers::*;
use crate::idp::{Moto, OidcProvider};

const READ_TOOLS: usize = 17;
const DAVIS_TOOLS: usize = 5;
const WRITE_TOOLS: usize = 6;

fn list() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
}

fn call(name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": arguments}})
}

async fn as_bearer(app: &TestApp, token: &str, body: &Value) -> Reply {
    app.send(
        app.post("/mcp", body)
            .header("mcp-protocol-version", "2025-11-25")
            .bearer_auth(token),
    )
    .await
}

fn tool_count(reply: &Reply) -> usize {
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["result"]["tools"].as_array().unwrap().len()
}

fn challenge(reply: &Reply) -> String {
    reply
        .headers
        .get("www-authenticate")
        .expect("a WWW-Authenticate challenge")
        .to_str()
        .unwrap()
        .to_string()
}

/// A server with OAuth from `issuer`, the static token alongside, and every tool group on.
async fn oauth_app(
    listener: TcpListener,
    issuer: &str,
    extra: Vec<(&'static str, String)>,
) -> TestApp {
    let mut env = vec![
        ("MCP_OAUTH_ISSUER", issuer.to_string()),
        ("MCP_PUBLIC_URL", "http://{addr}/mcp".to_string()),
        ("MCP_AUTH_TOKEN", AUTH_TOKEN.to_string()),
        ("DT_ENABLE_WRITE_TOOLS", "1".to_string()),
        ("DT_ENABLE_DAVIS_COPILOT", "1".to_string()),
    ];
    env.extend(extra);
    spawn_on(
        listener,
        Options {
            env,
            ..Default::default()
        },
    )
    .await
}

#[tokio::test]
async fn protected_resource_metadata_names_the_public_url_and_the_issuer() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = oauth_app(listener, "https://idp.example.com/tenant", vec![]).await;
    let resource = app.url("/mcp");
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let reply = app.send(app.http.get(app.url(path))).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(reply.body["resource"], resource.as_str());
        assert_eq!(
            reply.body["authorization_servers"],
            json!(["https://idp.example.com/tenant"])
        );
        assert_eq!(
            reply.body["scopes_supported"],
            json!(["dynatrace:read", "dynatrace:davis", "dynatrace:write"])
        );
        assert_eq!(reply.body["bearer_methods_supported"], json!(["header"]));
        assert_eq!(
            reply.headers.get("access-control-allow-origin").unwrap(),
            "*"
        );
    }
    // No token: 401 pointing at the metadata, with the scopes to ask for.
    let reply = app.send(app.post("/mcp", &list())).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        challenge(&reply),
        format!(
            "Bearer resource_metadata=\"{}\", scope=\"dynatrace:read dynatrace:davis dynatrace:write\"",
            app.url("/.well-known/oauth-protected-resource/mcp")
        )
    );
    // A token that is not a JWT: 401 invalid_token, and it never comes back in the answer.
    let reply = as_bearer(&app, "opaque-token-value-123", &list()).await;
    assert_eq!(reply.status, 401);
    assert!(challenge(&reply).starts_with("Bearer error=\"invalid_token\""));
    assert!(!reply.text.contains("opaque-token-value-123"));
    // A token in the query string is ignored.
    let reply = app
        .send(
            app.http
                .post(app.url("/mcp?access_token=whatever"))
                .json(&list()),
        )
        .await;
    assert_eq!(reply.status, 401);
    // The static token still works alongside OAuth.
    let reply = app
        .send(
            app.post("/mcp", &list())
                .header("mcp-protocol-version", "2025-11-25")
                .header("x-mcp-auth-token", AUTH_TOKEN),
        )
        .await;
    assert_eq!(tool_count(&reply), READ_TOOLS + DAVIS_TOOLS + WRITE_TOOLS);
}

#[tokio::test]
async fn without_oauth_there_is_no_metadata_and_the_old_challenge() {
    let app = spawn_with(Options {
        env: vec![("MCP_AUTH_TOKEN", AUTH_TOKEN.into())],
        ..Default::default()
    })
    .await;
    let reply = app
        .send(
            app.http
                .get(app.url("/.well-known/oauth-protected-resource/mcp")),
        )
        .await;
    assert_eq!(reply.status, 404);
    let reply = app.send(app.post("/mcp", &list())).await;
    assert_eq!(challenge(&reply), "Bearer realm=\"dynatrace-mcp\"");
}

#[tokio::test]
#[ignore = "needs Node 22 and oidc-provider: run scripts/test.sh"]
async fn oidc_provider_tokens_decide_the_tool_set_and_step_up() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", listener.local_addr().unwrap());
    let idp = OidcProvider::start(&resource).await;
    let app = oauth_app(listener, &idp.issuer, vec![]).await;
    let all = "dynatrace:read dynatrace:davis dynatrace:write";

    // tools/list per scope set.
    let operator = idp.token("operator", all, &resource).await;
    let analyst = idp.token("analyst", all, &resource).await;
    let reader = idp.token("reader", all, &resource).await;
    assert_eq!(
        tool_count(&as_bearer(&app, &operator, &list()).await),
        READ_TOOLS + DAVIS_TOOLS + WRITE_TOOLS
    );
    assert_eq!(
        tool_count(&as_bearer(&app, &analyst, &list()).await),
        READ_TOOLS + DAVIS_TOOLS
    );
    let reply = as_bearer(&app, &reader, &list()).await;
    assert_eq!(tool_count(&reply), READ_TOOLS);
    let names: Vec<&str> = reply.body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"execute_dql") && !names.contains(&"send_email"));

    // A reader calls a read tool: fine, with the server's own Dynatrace credential.
    let reply = as_bearer(&app, &reader, &call("get_environment_info", json!({}))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(!is_error(&reply.body["result"]), "{}", reply.text);

    // A reader calls a write tool: 403 insufficient_scope naming what to ask for (step-up).
    let reply = as_bearer(
        &app,
        &reader,
        &call(
            "send_email",
            json!({"toRecipients": ["a@example.com"], "subject": "s", "body": "b"}),
        ),
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    let c = challenge(&reply);
    assert!(c.starts_with("Bearer error=\"insufficient_scope\""), "{c}");
    assert!(
        c.contains("scope=\"dynatrace:read dynatrace:write\""),
        "{c}"
    );
    assert!(c.contains(&format!(
        "resource_metadata=\"{}\"",
        app.url("/.well-known/oauth-protected-resource/mcp")
    )));
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("dynatrace:write")
    );
    assert!(app.sandbox.emails().is_empty());
    let reply = as_bearer(&app, &reader, &call("list_davis_analyzers", json!({}))).await;
    assert_eq!(reply.status, 403);
    assert!(challenge(&reply).contains("scope=\"dynatrace:read dynatrace:davis\""));

    // The operator may preview the email.
    let reply = as_bearer(
        &app,
        &operator,
        &call(
            "send_email",
            json!({"toRecipients": ["a@example.com"], "subject": "s", "body": "b"}),
        ),
    )
    .await;
    assert_eq!(
        reply.body["result"]["structuredContent"]["status"],
        "confirmation_required"
    );

    // A valid token with none of this server's scopes: 403 on every request.
    let none = idp.token("none", "", &resource).await;
    let reply = as_bearer(&app, &none, &list()).await;
    assert_eq!(reply.status, 403);
    assert!(challenge(&reply).contains("error=\"insufficient_scope\""));

    // A token of the same issuer for another resource: wrong audience, 401.
    let other = idp.token("operator", all, "http://127.0.0.1:9/other").await;
    let reply = as_bearer(&app, &other, &list()).await;
    assert_eq!(reply.status, 401);
    let c = challenge(&reply);
    assert!(
        c.contains("error=\"invalid_token\"") && c.contains("audience"),
        "{c}"
    );

    // The MCP access tokens never reached Dynatrace: only the server's own credential did.
    for recorded in app.sandbox.requests() {
        if let Some(bearer) = recorded.bearer {
            for token in [&operator, &analyst, &reader, &none, &other] {
                assert_ne!(&bearer, token, "an MCP access token was sent upstream");
            }
        }
    }
}

#[tokio::test]
#[ignore = "needs Node 22 and oidc-provider: run scripts/test.sh"]
async fn a_rotated_signing_key_is_fetched_once_and_accepted() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", listener.local_addr().unwrap());
    let idp = OidcProvider::start(&resource).await;
    let app = oauth_app(listener, &idp.issuer, vec![]).await;
    let scope = "dynatrace:read";
    let before = idp.token("reader", scope, &resource).await;
    for _ in 0..5 {
        assert_eq!(
            tool_count(&as_bearer(&app, &before, &list()).await),
            READ_TOOLS
        );
    }
    assert_eq!(idp.jwks_fetches().await, 1, "the key set is cached");
    idp.rotate().await;
    let after = idp.token("reader", scope, &resource).await;
    assert_eq!(
        tool_count(&as_bearer(&app, &after, &list()).await),
        READ_TOOLS
    );
    assert_eq!(idp.jwks_fetches().await, 2, "one fetch for the new kid");
    for _ in 0..5 {
        assert_eq!(
            tool_count(&as_bearer(&app, &after, &list()).await),
            READ_TOOLS
        );
        // The old key is still published, so tokens signed before the rotation still work.
        assert_eq!(
            tool_count(&as_bearer(&app, &before, &list()).await),
            READ_TOOLS
        );
    }
    assert_eq!(idp.jwks_fetches().await, 2);
}

#[tokio::test]
#[ignore = "needs moto_server: run scripts/test.sh"]
async fn cognito_user_pool_tokens_from_moto() {
    let moto = Moto::start().await;
    let pool = moto.cognito_pool().await;
    let other_pool = moto.cognito_pool().await;
    let token =
        |pool: &Value, name: &str| pool["tokens"][name]["token"].as_str().unwrap().to_string();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = oauth_app(
        listener,
        pool["issuer"].as_str().unwrap(),
        vec![
            (
                "MCP_OAUTH_JWKS_URL",
                pool["jwks_url"].as_str().unwrap().to_string(),
            ),
            (
                "MCP_OAUTH_CLIENT_IDS",
                pool["clients"]["public"]["client_id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            ),
            ("MCP_OAUTH_SCOPE_READ", "dynatrace-mcp/read".to_string()),
            ("MCP_OAUTH_SCOPE_DAVIS", "dynatrace-mcp/davis".to_string()),
            ("MCP_OAUTH_SCOPE_WRITE", "dynatrace-mcp/write".to_string()),
        ],
    )
    .await;
    // alice's access token (no aud; client_id; her groups name the read and write scopes).
    let alice = token(&pool, "alice_access");
    let reply = as_bearer(&app, &alice, &list()).await;
    assert_eq!(tool_count(&reply), READ_TOOLS + WRITE_TOOLS);
    let reply = as_bearer(&app, &alice, &call("get_environment_info", json!({}))).await;
    assert!(!is_error(&reply.body["result"]), "{}", reply.text);
    // bob: a valid token without any of the scopes.
    let reply = as_bearer(&app, &token(&pool, "bob_access"), &list()).await;
    assert_eq!(reply.status, 403);
    assert!(
        challenge(&reply)
            .contains("scope=\"dynatrace-mcp/read dynatrace-mcp/davis dynatrace-mcp/write\"")
    );
    // An ID token is not an access token.
    let reply = as_bearer(&app, &token(&pool, "alice_id"), &list()).await;
    assert_eq!(reply.status, 401);
    assert!(
        challenge(&reply).contains("ID token"),
        "{}",
        challenge(&reply)
    );
    // A token of another pool (same moto key, other issuer).
    let reply = as_bearer(&app, &token(&other_pool, "alice_access"), &list()).await;
    assert_eq!(reply.status, 401);
    assert!(
        challenge(&reply).contains("was not issued by"),
        "{}",
        challenge(&reply)
    );
    // A token from the service client, which MCP_OAUTH_CLIENT_IDS does not list.
    let reply = as_bearer(&app, &token(&pool, "alice_admin_access"), &list()).await;
    assert_eq!(reply.status, 401);
    assert!(
        challenge(&reply).contains("client_id"),
        "{}",
        challenge(&reply)
    );
}
