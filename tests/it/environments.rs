//! Several Dynatrace environments behind one server (`DT_ENVIRONMENTS`): three simulated tenants
//! with their own environment ids, data and credentials, one server in front of them.
//!
//! Each tenant records what it received, so the tests prove that an alias's calls reach only its
//! tenant, with only its credential; that a fan-out merges and labels the answers and survives a
//! tenant that is down or slower than the request's deadline; and that handles and confirmations
//! stay in the environment that issued them.

use std::time::{Duration, Instant};

use dynatrace_mcp::config::Source;
use dynatrace_sandbox::{QueryTiming, Sandbox, SandboxConfig, tenant_platform_token};
use serde_json::{Value, json};

use crate::helpers::{AUTH_TOKEN, TestApp, cut, is_error, serve_source, text_of};

/// The server and its three tenants: prod (tenant 1, platform token), staging (tenant 2, OAuth
/// client), dev (tenant 3, platform token).
struct Three {
    app: TestApp,
    staging: Sandbox,
    dev: Sandbox,
}

impl Three {
    fn prod(&self) -> &Sandbox {
        &self.app.sandbox
    }
}

async fn three(extra: &[(&str, String)]) -> Three {
    three_with(extra, |registry| registry).await
}

async fn three_with(extra: &[(&str, String)], edit: impl FnOnce(Value) -> Value) -> Three {
    three_on(None, extra, edit).await
}

/// `{addr}` in a setting's value becomes the server's address.
async fn three_on(
    listener: Option<tokio::net::TcpListener>,
    extra: &[(&str, String)],
    edit: impl FnOnce(Value) -> Value,
) -> Three {
    let prod = Sandbox::start(SandboxConfig::tenant(1)).await.unwrap();
    let staging = Sandbox::start(SandboxConfig::tenant(2)).await.unwrap();
    let dev = Sandbox::start(SandboxConfig::tenant(3)).await.unwrap();
    // A JSON object keeps its keys sorted; the registry's order matters, so it is written by hand.
    let registry = edit(json!({
        "prod": prod.registry_entry("Production EU"),
        "staging": staging.registry_entry_oauth("Staging"),
        "dev": dev.registry_entry("Development"),
    }));
    let ordered = format!(
        "{{\"prod\": {}, \"staging\": {}, \"dev\": {}}}",
        registry["prod"], registry["staging"], registry["dev"]
    );
    let mut source = Source::from_pairs([("DT_ENVIRONMENTS", ordered)]);
    source.set("MCP_AUTH_TOKEN", AUTH_TOKEN);
    let listener = match listener {
        Some(listener) => listener,
        None => tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    };
    let addr = listener.local_addr().unwrap().to_string();
    for (k, v) in extra {
        source.set(*k, v.replace("{addr}", &addr));
    }
    let app = serve_source(listener, prod, source).await;
    Three { app, staging, dev }
}

async fn call(app: &TestApp, name: &str, arguments: Value) -> Value {
    call_with(app, name, arguments, &[]).await
}

async fn call_with(app: &TestApp, name: &str, arguments: Value, headers: &[(&str, &str)]) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}});
    let mut request = app
        .post("/mcp", &body)
        .header("mcp-protocol-version", "2025-11-25")
        .header("x-mcp-auth-token", AUTH_TOKEN);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let reply = app.send(request).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["result"].clone()
}

/// The bearer tokens a tenant saw on platform routes (not its SSO endpoint).
fn platform_bearers(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/platform"))
        .map(|r| r.bearer.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn each_alias_reaches_only_its_tenant_with_only_its_credential() {
    let t = three(&[]).await;
    for (alias, id, problems) in [
        ("prod", "sandbox1", 8),
        ("staging", "sandbox2", 7),
        ("dev", "sandbox3", 6),
    ] {
        let info = call(
            &t.app,
            "get_environment_info",
            json!({"environment": alias}),
        )
        .await;
        assert!(!is_error(&info), "{info}");
        assert_eq!(info["structuredContent"]["environmentId"], id, "{alias}");
        let listed = call(
            &t.app,
            "list_problems",
            json!({"environment": alias, "status": "ALL", "maxProblemsToDisplay": 50}),
        )
        .await;
        assert!(!is_error(&listed), "{listed}");
        assert_eq!(
            listed["structuredContent"]["problems"]
                .as_array()
                .unwrap()
                .len(),
            problems,
            "{alias}: {}",
            text_of(&listed)
        );
    }
    // Links in answers point into the environment that answered.
    let merged = call(&t.app, "list_problems", json!({"environment": "*"})).await;
    for (part, tenant) in merged["structuredContent"]["environments"]
        .as_array()
        .unwrap()
        .iter()
        .zip([t.prod(), &t.staging, &t.dev])
    {
        let problems = part["result"]["problems"].as_array().unwrap();
        assert!(
            problems.iter().all(|p| p["link"]
                .as_str()
                .is_some_and(|l| l.starts_with(&format!("{}/ui/apps/", tenant.url())))),
            "{part}"
        );
    }
    // Without `environment`: the default (the first alias).
    let info = call(&t.app, "get_environment_info", json!({})).await;
    assert_eq!(info["structuredContent"]["environmentId"], "sandbox1");

    let prod = platform_bearers(t.prod());
    let dev = platform_bearers(&t.dev);
    let staging = platform_bearers(&t.staging);
    assert!(!prod.is_empty() && !dev.is_empty() && !staging.is_empty());
    assert!(
        prod.iter().all(|b| *b == tenant_platform_token(1)),
        "{prod:?}"
    );
    assert!(
        dev.iter().all(|b| *b == tenant_platform_token(3)),
        "{dev:?}"
    );
    // Staging's OAuth client got its tokens from staging's own SSO endpoint, and used only those.
    let sso = t.staging.requests_to("/sso/oauth2/token");
    assert!(!sso.is_empty());
    assert!(
        sso.iter()
            .all(|r| r.form("client_id").as_deref() == Some("dt0s02.SANDBOX2"))
    );
    assert!(
        staging.iter().all(|b| b.starts_with("sandbox.")),
        "{staging:?}"
    );
    assert!(t.prod().requests_to("/sso/oauth2/token").is_empty());
    for sandbox in [t.prod(), &t.staging, &t.dev] {
        assert!(
            sandbox.unexpected().is_empty(),
            "{:?}",
            sandbox.unexpected()
        );
    }
}

#[tokio::test]
async fn schemas_list_the_aliases_and_list_environments_reports_reachability() {
    let t = three(&[]).await;
    let reply = t
        .app
        .send(
            t.app
                .post(
                    "/mcp",
                    &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
                )
                .header("mcp-protocol-version", "2025-11-25")
                .header("x-mcp-auth-token", AUTH_TOKEN),
        )
        .await;
    let tools = reply.body["result"]["tools"].as_array().unwrap().clone();
    let tool = |name: &str| tools.iter().find(|t| t["name"] == name).cloned().unwrap();
    let dql = tool("execute_dql");
    let environment = &dql["inputSchema"]["properties"]["environment"];
    assert_eq!(
        environment["anyOf"][0]["enum"],
        json!(["prod", "staging", "dev", "*"])
    );
    assert_eq!(environment["anyOf"][1]["type"], "array");
    let description = environment["description"].as_str().unwrap();
    assert!(
        description.contains("`prod`: Production EU (default)"),
        "{description}"
    );
    assert!(dql["outputSchema"]["anyOf"].is_array());
    // A tool that works on one environment takes exactly one alias.
    let verify = tool("verify_dql");
    assert_eq!(
        verify["inputSchema"]["properties"]["environment"]["enum"],
        json!(["prod", "staging", "dev"])
    );
    assert!(tool("list_environments")["inputSchema"]["properties"]["environment"].is_null());

    // dev goes down: list_environments says so, the others stay reachable.
    drop(t.dev);
    let listed = call(&t.app, "list_environments", json!({})).await;
    assert!(!is_error(&listed), "{listed}");
    let entries = listed["structuredContent"]["environments"]
        .as_array()
        .unwrap();
    let summary: Vec<(String, bool)> = entries
        .iter()
        .map(|e| {
            (
                e["alias"].as_str().unwrap().to_string(),
                e["reachable"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("prod".into(), true),
            ("staging".into(), true),
            ("dev".into(), false)
        ]
    );
    assert_eq!(entries[0]["default"], true);
    assert_eq!(entries[1]["environmentId"], "sandbox2");
    assert!(
        text_of(&listed).contains("dev: http://127.0.0.1:"),
        "{}",
        text_of(&listed)
    );
}

#[tokio::test]
async fn fan_out_merges_labels_and_survives_a_tenant_that_is_down() {
    let t = three(&[]).await;
    let merged = call(
        &t.app,
        "list_problems",
        json!({"environment": "*", "status": "ALL", "maxProblemsToDisplay": 50}),
    )
    .await;
    assert!(!is_error(&merged), "{merged}");
    let parts = merged["structuredContent"]["environments"]
        .as_array()
        .unwrap();
    let counts: Vec<(String, usize)> = parts
        .iter()
        .map(|p| {
            assert_eq!(p["status"], "ok", "{p}");
            (
                p["environment"].as_str().unwrap().to_string(),
                p["result"]["problems"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [("prod".into(), 8), ("staging".into(), 7), ("dev".into(), 6)]
    );
    let text = text_of(&merged);
    assert!(
        text.contains("=== environment prod (Production EU) ==="),
        "{text}"
    );
    assert!(text.contains("3 answered"), "{text}");

    // A list of aliases asks only those.
    t.dev.clear_requests();
    let two = call(
        &t.app,
        "execute_dql",
        json!({"environment": ["staging", "prod"], "dqlStatement": "fetch logs | summarize n = count()"}),
    )
    .await;
    let parts = two["structuredContent"]["environments"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["environment"], "staging");
    assert!(t.dev.requests().is_empty());

    // dev is down (nothing listens at its address): its failure is reported beside the others'
    // answers.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let t = three_with(&[], |mut registry| {
        registry["dev"]["url"] = json!(format!("http://{closed}"));
        registry
    })
    .await;
    let merged = call(&t.app, "get_environment_info", json!({"environment": "*"})).await;
    assert!(
        !is_error(&merged),
        "one environment down fails only its part: {merged}"
    );
    let parts = merged["structuredContent"]["environments"]
        .as_array()
        .unwrap();
    assert_eq!(parts[0]["result"]["environmentId"], "sandbox1");
    assert_eq!(parts[1]["result"]["environmentId"], "sandbox2");
    assert_eq!(parts[2]["status"], "error");
    let error = parts[2]["error"].as_str().unwrap();
    assert!(error.contains("could not reach Dynatrace"), "{error}");
    assert!(text_of(&merged).contains("=== environment dev (Development): FAILED ==="));
}

#[tokio::test]
async fn a_tenant_slower_than_the_deadline_does_not_hold_up_the_others() {
    let t = three(&[("MCP_TOOL_TIMEOUT_SECONDS", "2".into())]).await;
    t.staging.set_latency(Duration::from_secs(6));
    let started = Instant::now();
    let merged = call(&t.app, "list_problems", json!({"environment": "*"})).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(2500),
        "answered after {took:?}"
    );
    assert!(!is_error(&merged), "{merged}");
    let parts = merged["structuredContent"]["environments"]
        .as_array()
        .unwrap();
    assert_eq!(parts[0]["status"], "ok");
    assert_eq!(parts[1]["status"], "error");
    assert_eq!(parts[2]["status"], "ok");
    let error = parts[1]["error"].as_str().unwrap();
    assert!(
        error.contains("did not finish within") || error.contains("no answer within"),
        "{error}"
    );
}

#[tokio::test]
async fn unknown_aliases_and_fan_out_on_a_single_environment_tool_are_clear_errors() {
    let t = three(&[]).await;
    let result = call(
        &t.app,
        "list_problems",
        json!({"environment": "produktion"}),
    )
    .await;
    assert!(is_error(&result));
    let text = text_of(&result);
    assert!(
        text.contains("unknown environment `produktion`; use one of: prod, staging, dev"),
        "{text}"
    );
    let result = call(
        &t.app,
        "verify_dql",
        json!({"environment": "*", "dqlStatement": "fetch logs"}),
    )
    .await;
    assert!(is_error(&result));
    assert!(text_of(&result).contains("works on one environment at a time"));
    let result = call(&t.app, "get_environment_info", json!({"environment": 3})).await;
    assert!(is_error(&result));
    assert!(text_of(&result).contains("expected an alias"));
    // Aliases match without regard to case.
    let info = call(
        &t.app,
        "get_environment_info",
        json!({"environment": "DEV"}),
    )
    .await;
    assert_eq!(info["structuredContent"]["environmentId"], "sandbox3");
    assert!(t.prod().unexpected().is_empty());
}

#[tokio::test]
async fn a_query_handle_fetches_from_the_environment_that_runs_the_query() {
    let t = three(&[("MCP_TOOL_TIMEOUT_SECONDS", "2".into())]).await;
    t.staging
        .set_query_timing(QueryTiming::Duration(Duration::from_millis(2500)));
    let running = call(
        &t.app,
        "execute_dql",
        json!({"environment": "staging", "dqlStatement": "fetch logs | limit 3"}),
    )
    .await;
    let handle = running["structuredContent"]["queryHandle"]
        .as_str()
        .unwrap_or_else(|| panic!("a handle: {running}"))
        .to_string();
    // Named with another environment: refused, nothing sent there.
    t.prod().clear_requests();
    let wrong = call(
        &t.app,
        "execute_dql",
        json!({"environment": "prod", "queryHandle": handle}),
    )
    .await;
    assert!(is_error(&wrong));
    assert!(
        text_of(&wrong).contains("belongs to a query in the environment `staging`"),
        "{}",
        text_of(&wrong)
    );
    assert!(t.prod().requests().is_empty());
    // Without `environment`: the handle leads to staging.
    let mut done = Value::Null;
    for _ in 0..5 {
        done = call(&t.app, "execute_dql", json!({"queryHandle": handle})).await;
        assert!(!is_error(&done), "{done}");
        if done["structuredContent"]["status"] == "succeeded" {
            break;
        }
    }
    assert_eq!(done["structuredContent"]["status"], "succeeded", "{done}");
    assert!(!t.staging.requests_to("query:poll").is_empty());
    assert!(t.prod().requests().is_empty());
}

#[tokio::test]
async fn a_confirmation_holds_only_in_its_environment() {
    let t = three(&[("DT_ENABLE_WRITE_TOOLS", "1".into())]).await;
    let args = json!({"environment": "dev", "eventType": "CUSTOM_INFO", "title": "deploy 42"});
    let preview = call(&t.app, "send_event", args.clone()).await;
    assert!(!is_error(&preview), "{preview}");
    let token = preview["structuredContent"]["confirmationToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text_of(&preview).contains(&t.dev.url()),
        "the preview names where it would go: {}",
        text_of(&preview)
    );
    let mut elsewhere = args.clone();
    elsewhere["environment"] = json!("prod");
    elsewhere["confirmationToken"] = json!(token);
    let refused = call(&t.app, "send_event", elsewhere).await;
    assert!(is_error(&refused));
    assert!(
        text_of(&refused).contains("issued for the environment `dev`, not `prod`"),
        "{}",
        text_of(&refused)
    );
    assert!(t.prod().ingested_events().is_empty());
    let mut confirmed = args;
    confirmed["confirmationToken"] = json!(token);
    let sent = call(&t.app, "send_event", confirmed).await;
    assert!(!is_error(&sent), "{sent}");
    assert_eq!(t.dev.ingested_events().len(), 1);
    assert!(t.prod().ingested_events().is_empty() && t.staging.ingested_events().is_empty());
}

#[tokio::test]
async fn each_environment_keeps_its_own_grail_budget() {
    // prod may scan almost nothing; staging keeps the server's budget.
    let t = three_with(&[], |mut registry| {
        registry["prod"]["grailBudgetGb"] = json!(0.0000001);
        registry
    })
    .await;
    let query = |env: &str| json!({"environment": env, "dqlStatement": "fetch logs | limit 1"});
    let first = call(&t.app, "execute_dql", query("prod")).await;
    assert!(!is_error(&first), "{first}");
    let refused = call(&t.app, "execute_dql", query("prod")).await;
    assert!(is_error(&refused), "prod's budget is used up: {refused}");
    assert!(
        text_of(&refused)
            .contains("budget of this deployment in the environment `prod` is used up"),
        "{}",
        text_of(&refused)
    );
    let staging = call(&t.app, "execute_dql", query("staging")).await;
    assert!(!is_error(&staging), "staging has its own budget: {staging}");
    let budget = call(
        &t.app,
        "get_grail_budget",
        json!({"environment": "staging"}),
    )
    .await;
    assert!(!is_error(&budget), "{budget}");
}

#[tokio::test]
async fn callers_send_their_own_token_per_environment() {
    let t = three_with(&[("DT_TOKEN_PASSTHROUGH", "1".into())], |r| r).await;
    let own = "dt0s16.CALLER.own-token-for-staging";
    // The sandboxes accept only their configured tokens: staging refuses this one, which proves
    // it was sent there (and nowhere else).
    let result = call_with(
        &t.app,
        "get_environment_info",
        json!({"environment": "staging"}),
        &[("x-dynatrace-tokens", &format!("staging={own}"))],
    )
    .await;
    assert!(is_error(&result));
    assert!(
        text_of(&result).contains("X-Dynatrace-Token"),
        "{}",
        text_of(&result)
    );
    assert!(platform_bearers(&t.staging).iter().any(|b| b == own));
    // prod has no token in the header: the server's credential for it.
    let prod = call_with(
        &t.app,
        "get_environment_info",
        json!({"environment": "prod"}),
        &[("x-dynatrace-tokens", &format!("staging={own}"))],
    )
    .await;
    assert!(!is_error(&prod), "{prod}");
    assert!(platform_bearers(t.prod()).iter().all(|b| b != own));
    // An alias the server does not know: 400 naming the valid ones.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_environment_info", "arguments": {}}});
    let reply = t
        .app
        .send(
            t.app
                .post("/mcp", &body)
                .header("mcp-protocol-version", "2025-11-25")
                .header("x-mcp-auth-token", AUTH_TOKEN)
                .header("x-dynatrace-tokens", "qa=dt0s16.X.y"),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply
            .text
            .contains("its environments are prod, staging, dev"),
        "{}",
        reply.text
    );
    assert!(!reply.text.contains("dt0s16.X.y"));
}

#[tokio::test]
async fn a_single_environment_registry_and_bad_registries() {
    use dynatrace_mcp::config::{FrontDoor, Settings};
    let prod = Sandbox::start(SandboxConfig::tenant(1)).await.unwrap();
    let source = |raw: String| {
        let mut s = Source::from_pairs([("DT_ENVIRONMENTS", raw)]);
        s.set("MCP_AUTH_TOKEN", AUTH_TOKEN);
        s
    };
    // One entry: schemas stay as without a registry; list_environments is offered.
    let settings = Settings::from_source(
        &source(format!("{{\"only\": {}}}", prod.registry_entry("Only"))),
        FrontDoor::Http,
    )
    .unwrap();
    let registry = dynatrace_mcp::tools::registry(&settings);
    assert!(registry.get("list_environments").is_some());
    assert!(
        registry.get("execute_dql").unwrap().input_schema["properties"]
            .get("environment")
            .is_none()
    );
    // "*" on a server with one environment: that environment's answer, in its own shape (the one
    // the published outputSchema describes).
    let single = crate::helpers::spawn_app().await;
    let listed = single
        .call_tool("list_problems", json!({"environment": "*"}))
        .await;
    assert!(!is_error(&listed), "{listed}");
    assert!(
        listed["structuredContent"]["problems"].is_array(),
        "{listed}"
    );
    let named = single
        .call_tool("get_environment_info", json!({"environment": "default"}))
        .await;
    assert_eq!(named["structuredContent"]["environmentId"], "sandbox1");
    // DT_ENVIRONMENT beside DT_ENVIRONMENTS: refused, naming both.
    let mut both = source(format!("{{\"only\": {}}}", prod.registry_entry("Only")));
    both.set("DT_ENVIRONMENT", prod.url());
    let error = Settings::from_source(&both, FrontDoor::Http).unwrap_err();
    assert_eq!(error.variable, "DT_ENVIRONMENT");
    assert!(error.problem.contains("DT_ENVIRONMENTS"), "{error}");
}

#[tokio::test]
#[ignore = "needs Node 22 and oidc-provider: run scripts/test.sh"]
async fn oauth_scopes_decide_which_environments_a_caller_may_use() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", listener.local_addr().unwrap());
    let idp = crate::idp::OidcProvider::start(&resource).await;
    let t = three_on(
        Some(listener),
        &[
            ("MCP_OAUTH_ISSUER", idp.issuer.clone()),
            ("MCP_PUBLIC_URL", "http://{addr}/mcp".to_string()),
            ("MCP_TOOL_TIMEOUT_SECONDS", "2".to_string()),
        ],
        |mut registry| {
            registry["prod"]["scope"] = json!("dynatrace:env.prod");
            registry["staging"]["scope"] = json!("dynatrace:env.staging");
            registry
        },
    )
    .await;
    let as_bearer = |token: String, name: &'static str, arguments: Value| {
        let app = &t.app;
        async move {
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}});
            let reply = app
                .send(
                    app.post("/mcp", &body)
                        .header("mcp-protocol-version", "2025-11-25")
                        .bearer_auth(token),
                )
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            reply.body["result"].clone()
        }
    };
    // The environments' scopes are advertised, so OAuth clients know to ask for them.
    let metadata: Value = reqwest::get(t.app.url("/.well-known/oauth-protected-resource/mcp"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let supported = metadata["scopes_supported"].to_string();
    assert!(
        supported.contains("dynatrace:env.prod") && supported.contains("dynatrace:env.staging"),
        "{metadata}"
    );
    let wanted = "dynatrace:read dynatrace:env.prod dynatrace:env.staging";
    let prodonly = idp.token("prodonly", wanted, &resource).await;
    let reader = idp.token("reader", wanted, &resource).await;

    // prodonly holds prod's scope: prod and dev (no scope) yes, staging no.
    let info = as_bearer(
        prodonly.clone(),
        "get_environment_info",
        json!({"environment": "prod"}),
    )
    .await;
    assert_eq!(
        info["structuredContent"]["environmentId"], "sandbox1",
        "{info}"
    );
    let refused = as_bearer(
        prodonly.clone(),
        "get_environment_info",
        json!({"environment": "staging"}),
    )
    .await;
    assert!(is_error(&refused));
    let text = text_of(&refused);
    assert!(
        text.contains(
            "does not allow the environment `staging` (it needs the scope dynatrace:env.staging)"
        ) && text.contains("you may use prod, dev"),
        "{text}"
    );
    assert!(t.staging.requests().is_empty(), "nothing reached staging");
    let all = as_bearer(
        prodonly.clone(),
        "list_problems",
        json!({"environment": "*"}),
    )
    .await;
    let asked: Vec<&str> = all["structuredContent"]["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["environment"].as_str().unwrap())
        .collect();
    assert_eq!(
        asked,
        ["prod", "dev"],
        "\"*\" means every environment this caller may use"
    );
    let listed = as_bearer(prodonly, "list_environments", json!({})).await;
    assert_eq!(
        listed["structuredContent"]["environments"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // reader holds no environment scope: the default (prod) is refused, dev is fine.
    let refused = as_bearer(reader.clone(), "get_environment_info", json!({})).await;
    assert!(is_error(&refused));
    assert!(
        text_of(&refused).contains("you may use dev"),
        "{}",
        text_of(&refused)
    );
    let dev = as_bearer(
        reader.clone(),
        "get_environment_info",
        json!({"environment": "dev"}),
    )
    .await;
    assert_eq!(
        dev["structuredContent"]["environmentId"], "sandbox3",
        "{dev}"
    );
    assert!(t.staging.requests().is_empty());

    // reader's query in dev outlives the call: the handle alone fetches it, although reader may
    // not use the default environment.
    t.dev
        .set_query_timing(QueryTiming::Duration(Duration::from_millis(2500)));
    let running = as_bearer(
        reader.clone(),
        "execute_dql",
        json!({"environment": "dev", "dqlStatement": "fetch logs | limit 1"}),
    )
    .await;
    let handle = running["structuredContent"]["queryHandle"]
        .as_str()
        .unwrap_or_else(|| panic!("a handle: {running}"))
        .to_string();
    let fetched = as_bearer(reader, "execute_dql", json!({"queryHandle": handle})).await;
    assert!(!is_error(&fetched), "{fetched}");

    // A handle to prod (the default) fetched with a token of the same client that no longer
    // carries prod's scope: refused.
    t.prod()
        .set_query_timing(QueryTiming::Duration(Duration::from_millis(2500)));
    let with_scope = idp.token("prodonly", wanted, &resource).await;
    let running = as_bearer(
        with_scope,
        "execute_dql",
        json!({"dqlStatement": "fetch logs | limit 1"}),
    )
    .await;
    let handle = running["structuredContent"]["queryHandle"]
        .as_str()
        .unwrap_or_else(|| panic!("a handle: {running}"))
        .to_string();
    let without = idp.token("prodonly", "dynatrace:read", &resource).await;
    let refused = as_bearer(without, "execute_dql", json!({"queryHandle": handle})).await;
    assert!(is_error(&refused), "{refused}");
    assert!(
        text_of(&refused)
            .contains("belongs to the environment `prod`, which your credential does not allow"),
        "{}",
        text_of(&refused)
    );
}

#[tokio::test]
async fn a_fan_out_shares_the_result_budget_and_keeps_every_environment() {
    let t = three(&[("MCP_RESULT_MAX_BYTES", "16384".into())]).await;
    let merged = call(
        &t.app,
        "execute_dql",
        json!({"environment": "*", "dqlStatement": "fetch logs | limit 500"}),
    )
    .await;
    assert!(!is_error(&merged), "{merged}");
    let structured = &merged["structuredContent"];
    let parts = structured["environments"].as_array().unwrap();
    assert_eq!(parts.len(), 3, "no environment is cut out: {structured}");
    for part in parts {
        assert_eq!(part["status"], "ok", "{part}");
        assert!(
            !part["result"]["records"].as_array().unwrap().is_empty(),
            "{part}"
        );
    }
    // Text and structured content together, as they travel in the answer.
    let size = structured.to_string().len() + json!(text_of(&merged)).to_string().len() - 2;
    assert!(
        size <= 16384,
        "the answer's text and structuredContent are {size} bytes"
    );
}

/// The real binary at trace level with a registry full of secrets: one environment answering, one
/// with an OAuth client, one down behind a proxy with a password, a caller's own token for one;
/// then a registry that fails validation. No secret appears in a log line or an answer.
#[tokio::test]
async fn no_registry_secret_reaches_a_log_line_or_an_answer() {
    use crate::helpers::binary;
    use crate::secret_scan::{needles, random_secret};
    let platform = random_secret("dt0s16.");
    let client_secret = random_secret("dt0s02.S.");
    let down_token = random_secret("dt0s16.");
    let proxy_password = random_secret("pw");
    let caller = random_secret("dt0s16.");
    let auth = random_secret("auth");
    let mut prod = SandboxConfig::tenant(1);
    prod.platform_tokens = vec![(platform.clone(), prod.client_scopes.clone())];
    let prod = Sandbox::start(prod).await.unwrap();
    let mut staging = SandboxConfig::tenant(2);
    staging.client_secret = client_secret.clone();
    let staging = Sandbox::start(staging).await.unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let registry = format!(
        "{{\"prod\": {{\"url\": \"{}\", \"platformToken\": \"{platform}\"}}, \"staging\": {}, \
         \"dev\": {{\"url\": \"https://dev12345.apps.dynatrace.com\", \"platformToken\": \"{down_token}\", \
         \"proxy\": \"http://mcp:{proxy_password}@{closed}\"}}}}",
        prod.url(),
        staging.registry_entry_oauth("Staging"),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("dtmcp-env-scan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err_path = dir.join("stderr");
    let mut child = tokio::process::Command::new(binary())
        .env_clear()
        .env("DT_ENVIRONMENTS", &registry)
        .env("MCP_AUTH_TOKEN", &auth)
        .env("DT_TOKEN_PASSTHROUGH", "1")
        .env("MCP_LOG_LEVEL", "trace")
        .env("MCP_TOOL_TIMEOUT_SECONDS", "5")
        .args(["serve", "--port", &port.to_string()])
        .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/mcp");
    crate::helpers::wait_for_port(port).await;
    let mut answers = String::new();
    let calls = [
        ("list_problems", json!({"environment": "*"})),
        ("get_environment_info", json!({"environment": "*"})),
        ("list_environments", json!({})),
        ("get_environment_info", json!({"environment": "dev"})),
        (
            "execute_dql",
            json!({"environment": "staging", "dqlStatement": "fetch logs | limit 1"}),
        ),
    ];
    for (name, arguments) in calls {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}});
        let text = http
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .header("x-mcp-auth-token", &auth)
            .header("x-dynatrace-tokens", format!("staging={caller}"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        answers.push_str(&text);
    }
    child.kill().await.unwrap();
    let log = std::fs::read_to_string(&err_path).unwrap();
    assert!(
        log.contains("tool call"),
        "the audit lines were written: {}",
        cut(&log, 500)
    );
    assert!(
        answers.contains("FAILED"),
        "dev's failure is reported: {}",
        cut(&answers, 500)
    );

    // A registry that fails validation, every entry with a secret in it.
    let bad = format!(
        "{{\"a\": {{\"url\": \"https://a.live.dynatrace.com\", \"platformToken\": \"{platform}\"}}, \
         \"b\": {{\"url\": \"https://b.apps.dynatrace.com\", \"oauthClientSecret\": \"{client_secret}\"}}, \
         \"c\": {{\"url\": \"https://c.apps.dynatrace.com\", \"platformToken\": \"{down_token}\", \"proxy\": \"ftp://x:{proxy_password}@p\"}}}}"
    );
    let failed = tokio::process::Command::new(binary())
        .env_clear()
        .env("DT_ENVIRONMENTS", &bad)
        .env("MCP_LOG_LEVEL", "trace")
        .arg("stdio")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!failed.status.success());
    let startup = String::from_utf8_lossy(&failed.stderr).to_string();
    let lines: Vec<&str> = startup
        .lines()
        .filter(|l| l.starts_with("dynatrace-mcp: DT_ENVIRONMENTS: "))
        .collect();
    assert_eq!(lines.len(), 3, "one line per problem: {startup}");

    for secret in [
        &platform,
        &client_secret,
        &down_token,
        &proxy_password,
        &caller,
        &auth,
    ] {
        for needle in needles(secret) {
            for (what, text) in [("log", &log), ("answers", &answers), ("start-up", &startup)] {
                assert!(
                    !text.contains(&needle),
                    "a piece of a secret ({needle}) is in the {what}"
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
