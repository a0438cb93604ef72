//! The Dynatrace client's contract behaviour, through execute_dql: 202 then poll, handles at the
//! deadline, cancellation, token caching and refresh, retries.

use std::time::{Duration, Instant};

use dynatrace_sandbox::{Fault, QueryTiming, Route, SandboxConfig};
use serde_json::json;

use crate::helpers::*;

fn logs(limit: u32) -> serde_json::Value {
    json!({"dqlStatement": format!("fetch logs | limit {limit}"), "recordLimit": limit})
}

#[tokio::test]
async fn a_202_is_polled_until_the_result_arrives() {
    let app = spawn_app().await;
    app.sandbox.set_query_timing(QueryTiming::Polls(3));
    let result = app.call_tool("execute_dql", logs(4)).await;
    assert!(!is_error(&result), "{result}");
    assert_eq!(result["structuredContent"]["returnedRecords"], 4);
    let polls = app.sandbox.requests_to("query:poll");
    assert_eq!(polls.len(), 3);
    assert!(
        polls[0].query.contains("request-token=sandbox-query-"),
        "{}",
        polls[0].query
    );
    assert!(
        polls[0].query.contains("request-timeout-milliseconds="),
        "{}",
        polls[0].query
    );
    assert!(app.sandbox.cancelled_queries().is_empty());
}

#[tokio::test]
async fn a_query_still_running_at_the_deadline_returns_a_handle_that_fetches_the_result() {
    let app = spawn_with(Options {
        env: vec![("MCP_TOOL_TIMEOUT_SECONDS", "3".into())],
        ..Default::default()
    })
    .await;
    app.sandbox
        .set_query_timing(QueryTiming::Duration(Duration::from_millis(3500)));
    let started = Instant::now();
    let first = app.call_tool("execute_dql", logs(2)).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered before the deadline"
    );
    assert!(
        !is_error(&first),
        "a running query is not an error: {first}"
    );
    let s = &first["structuredContent"];
    assert_eq!(s["status"], "running");
    let handle = s["queryHandle"].as_str().expect("a handle").to_string();
    assert!(text_of(&first).contains(&handle));
    assert!(
        app.sandbox.cancelled_queries().is_empty(),
        "a handed-out query keeps running"
    );

    tokio::time::sleep(Duration::from_millis(2600)).await;
    let second = app
        .call_tool("execute_dql", json!({"queryHandle": handle}))
        .await;
    assert!(!is_error(&second), "{second}");
    assert_eq!(second["structuredContent"]["status"], "succeeded");
    assert_eq!(second["structuredContent"]["returnedRecords"], 2);
}

#[tokio::test]
async fn a_tampered_handle_is_refused() {
    let app = spawn_with(Options {
        env: vec![("MCP_TOOL_TIMEOUT_SECONDS", "2".into())],
        ..Default::default()
    })
    .await;
    app.sandbox
        .set_query_timing(QueryTiming::Duration(Duration::from_secs(30)));
    let first = app.call_tool("execute_dql", logs(2)).await;
    let handle = first["structuredContent"]["queryHandle"]
        .as_str()
        .unwrap()
        .to_string();
    let mut forged = handle.clone();
    forged.replace_range(2..3, if &handle[2..3] == "A" { "B" } else { "A" });
    let result = app
        .call_tool("execute_dql", json!({"queryHandle": forged}))
        .await;
    assert!(is_error(&result));
    assert!(
        text_of(&result).contains("not one this server issued"),
        "{}",
        text_of(&result)
    );
}

#[tokio::test]
async fn a_caller_that_goes_away_gets_its_query_cancelled() {
    let app = spawn_app().await;
    app.sandbox
        .set_query_timing(QueryTiming::Duration(Duration::from_secs(60)));
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "execute_dql", "arguments": logs(2)}});
    let impatient = app.post("/mcp", &body).timeout(Duration::from_millis(2500));
    assert!(impatient.send().await.is_err(), "the client gives up");
    let mut waited = Duration::ZERO;
    while app.sandbox.cancelled_queries().is_empty() && waited < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    assert_eq!(
        app.sandbox.cancelled_queries().len(),
        1,
        "query:cancel was called"
    );
    assert_eq!(app.sandbox.requests_to("query:cancel").len(), 1);
}

#[tokio::test]
async fn oauth_tokens_are_cached_per_scope_set() {
    let app = spawn_app().await;
    for _ in 0..3 {
        let result = app.call_tool("execute_dql", logs(1)).await;
        assert!(!is_error(&result), "{result}");
    }
    let sso = app.sandbox.requests_to("/sso/oauth2/token");
    assert_eq!(sso.len(), 1, "one token for three calls");
    assert_eq!(
        sso[0].form("grant_type").as_deref(),
        Some("client_credentials")
    );
    assert_eq!(
        sso[0].form("resource").as_deref(),
        Some(dynatrace_sandbox::DEMO_ACCOUNT_URN)
    );
    assert_eq!(
        sso[0].form("scope").as_deref(),
        Some("storage:buckets:read storage:logs:read")
    );
    // Another scope set gets its own token.
    app.call_tool("get_environment_info", json!({})).await;
    assert_eq!(app.sandbox.requests_to("/sso/oauth2/token").len(), 2);
}

#[tokio::test]
async fn tokens_are_refreshed_before_they_expire() {
    let mut sandbox = SandboxConfig::demo();
    sandbox.token_lifetime = Duration::from_secs(2);
    let app = spawn_with(Options {
        sandbox,
        ..Default::default()
    })
    .await;
    app.call_tool("execute_dql", logs(1)).await;
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let result = app.call_tool("execute_dql", logs(1)).await;
    assert!(!is_error(&result), "{result}");
    assert_eq!(app.sandbox.requests_to("/sso/oauth2/token").len(), 2);
    assert_eq!(
        app.sandbox.requests_to("query:execute").len(),
        2,
        "no request was refused"
    );
}

#[tokio::test]
async fn a_401_triggers_one_refresh_and_a_retry() {
    let app = spawn_app().await;
    app.call_tool("execute_dql", logs(1)).await;
    app.sandbox.expire_tokens();
    let result = app.call_tool("execute_dql", logs(1)).await;
    assert!(!is_error(&result), "{result}");
    assert_eq!(app.sandbox.requests_to("/sso/oauth2/token").len(), 2);
    let executes = app.sandbox.requests_to("query:execute");
    assert_eq!(executes.len(), 3, "first call, refused call, retried call");
    assert_ne!(executes[1].bearer, executes[2].bearer);
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after() {
    let app = spawn_app().await;
    app.sandbox.inject(Fault {
        route: Route::QueryExecute,
        status: 429,
        retry_after: Some("1".into()),
        times: 1,
    });
    let started = Instant::now();
    let result = app.call_tool("execute_dql", logs(1)).await;
    assert!(!is_error(&result), "{result}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(app.sandbox.requests_to("query:execute").len(), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_is_reported_not_waited_for() {
    let app = spawn_app().await;
    app.sandbox.inject(Fault {
        route: Route::QueryExecute,
        status: 429,
        retry_after: Some("120".into()),
        times: 1,
    });
    let started = Instant::now();
    let result = app.call_tool("execute_dql", logs(1)).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(is_error(&result));
    assert!(
        text_of(&result).contains("try again in 120 s"),
        "{}",
        text_of(&result)
    );
}

#[tokio::test]
async fn repeated_503s_end_in_a_clear_error_after_bounded_retries() {
    let app = spawn_app().await;
    app.sandbox.inject(Fault {
        route: Route::QueryVerify,
        status: 503,
        retry_after: Some("0".into()),
        times: 10,
    });
    let result = app
        .call_tool("verify_dql", json!({"dqlStatement": "fetch logs"}))
        .await;
    assert!(is_error(&result));
    assert!(
        text_of(&result).contains("HTTP 503"),
        "{}",
        text_of(&result)
    );
    assert_eq!(
        app.sandbox.requests_to("query:verify").len(),
        4,
        "one call and three retries"
    );
}

#[tokio::test]
async fn a_500_is_reported_without_retrying() {
    let app = spawn_app().await;
    app.sandbox.inject(Fault {
        route: Route::Environment,
        status: 500,
        retry_after: None,
        times: 1,
    });
    let result = app.call_tool("get_environment_info", json!({})).await;
    assert!(is_error(&result));
    assert!(
        text_of(&result).contains("HTTP 500"),
        "{}",
        text_of(&result)
    );
    assert_eq!(app.sandbox.requests_to("/environment").len(), 1);
}

#[tokio::test]
async fn a_wrong_client_secret_is_explained_without_revealing_it() {
    let app = spawn_with(Options {
        env: vec![(
            "OAUTH_CLIENT_SECRET",
            "dt0s02.SANDBOX.wrong-secret-value".into(),
        )],
        ..Default::default()
    })
    .await;
    let result = app.call_tool("get_environment_info", json!({})).await;
    assert!(is_error(&result));
    let text = text_of(&result);
    assert!(text.contains("invalid_client"), "{text}");
    assert!(text.contains("OAUTH_CLIENT_SECRET"), "{text}");
    assert!(!text.contains("wrong-secret-value"));
}

#[tokio::test]
async fn an_unreachable_environment_is_a_clear_network_error() {
    let app = spawn_with(Options {
        env: vec![("DT_ENVIRONMENT", "http://127.0.0.1:9".into())],
        ..Default::default()
    })
    .await;
    let result = app
        .call_tool("verify_dql", json!({"dqlStatement": "fetch logs"}))
        .await;
    assert!(is_error(&result));
    assert!(
        text_of(&result).contains("could not reach Dynatrace"),
        "{}",
        text_of(&result)
    );
}

#[tokio::test]
async fn scanned_bytes_are_counted_across_calls() {
    let app = spawn_app().await;
    let mut expected = 0;
    for statement in ["fetch logs | limit 3", "fetch spans | limit 2"] {
        let result = app
            .call_tool("execute_dql", json!({"dqlStatement": statement}))
            .await;
        expected += result["structuredContent"]["metadata"]["scannedBytes"]
            .as_u64()
            .unwrap();
    }
    let count = app
        .state
        .store
        .get(
            dynatrace_mcp::tools::budget::DEPLOYMENT_KEY,
            dynatrace_mcp::deadline::Deadline::after(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert_eq!(count.amount, expected);
    assert_eq!(count.events, 2);
    let status = app.call_tool("get_grail_budget", json!({})).await;
    assert_eq!(status["structuredContent"]["scannedBytes"], expected);
    assert_eq!(status["structuredContent"]["shared"], false);
}
