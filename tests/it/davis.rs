//! The Davis tools (listed with DT_ENABLE_DAVIS_COPILOT): CoPilot skills and analyzers.

use std::time::{Duration, Instant};

use dynatrace_sandbox::{Fault, QueryTiming, Route};
use serde_json::json;

use crate::helpers::*;

async fn davis_app() -> TestApp {
    spawn_with(Options {
        env: vec![("DT_ENABLE_DAVIS_COPILOT", "true".into())],
        ..Default::default()
    })
    .await
}

async fn tool_names(app: &TestApp) -> Vec<String> {
    let reply = app.rpc("tools/list", json!({})).await;
    reply.body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn davis_tools_are_listed_only_with_the_switch() {
    let off = spawn_app().await;
    assert!(
        !tool_names(&off)
            .await
            .iter()
            .any(|n| n.contains("davis") || n.contains("natural_language"))
    );
    let on = davis_app().await;
    let names = tool_names(&on).await;
    for tool in [
        "generate_dql_from_natural_language",
        "explain_dql_in_natural_language",
        "chat_with_davis_copilot",
        "list_davis_analyzers",
        "execute_davis_analyzer",
    ] {
        assert!(names.iter().any(|n| n == tool), "{tool} in {names:?}");
    }
}

#[tokio::test]
async fn generate_dql_returns_a_statement_to_verify() {
    let app = davis_app().await;
    let result = app
        .call_tool(
            "generate_dql_from_natural_language",
            json!({"text": "show me error logs"}),
        )
        .await;
    assert!(!is_error(&result), "{result}");
    let dql = result["structuredContent"]["dql"].as_str().unwrap();
    assert!(dql.starts_with("fetch logs"), "{dql}");
    let sent = app.sandbox.requests_to("nl2dql:generate");
    assert_eq!(sent[0].json(), json!({"text": "show me error logs"}));
    let bad = app
        .call_tool("generate_dql_from_natural_language", json!({"text": " "}))
        .await;
    assert!(is_error(&bad) && text_of(&bad).contains("text"));
}

#[tokio::test]
async fn a_tenant_without_the_skill_gets_a_sentence() {
    let app = davis_app().await;
    app.sandbox.set_copilot_skills(vec!["conversation"]);
    let result = app
        .call_tool(
            "generate_dql_from_natural_language",
            json!({"text": "error logs"}),
        )
        .await;
    assert!(is_error(&result));
    let text = text_of(&result);
    assert!(
        text.contains("does not offer the Davis CoPilot skill `nl2dql`"),
        "{text}"
    );
    assert!(!text.contains('{'), "no JSON in the sentence: {text}");
    assert!(app.sandbox.requests_to("nl2dql:generate").is_empty());
}

#[tokio::test]
async fn explain_dql_explains_and_reports_failures() {
    let app = davis_app().await;
    let result = app
        .call_tool(
            "explain_dql_in_natural_language",
            json!({"dql": "fetch logs | filter loglevel == \"ERROR\" | limit 10"}),
        )
        .await;
    assert!(!is_error(&result), "{result}");
    assert!(
        !result["structuredContent"]["summary"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    app.sandbox.inject(Fault {
        route: Route::Any,
        status: 500,
        retry_after: None,
        times: 1,
    });
    let failed = app
        .call_tool(
            "explain_dql_in_natural_language",
            json!({"dql": "fetch logs"}),
        )
        .await;
    assert!(
        is_error(&failed) && text_of(&failed).contains("HTTP 500"),
        "{failed}"
    );
}

#[tokio::test]
async fn chat_sends_context_and_cites_sources() {
    let app = davis_app().await;
    let result = app
        .call_tool("chat_with_davis_copilot", json!({"text": "How do I monitor Kubernetes?", "context": "We run EKS", "instruction": "Be brief"}))
        .await;
    assert!(!is_error(&result), "{result}");
    assert!(
        !result["structuredContent"]["text"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    let body = app.sandbox.requests_to("conversations:message")[0].json();
    assert_eq!(
        body["context"],
        json!([{"type": "supplementary", "value": "We run EKS"}, {"type": "instruction", "value": "Be brief"}])
    );
    let state = result["structuredContent"]["conversationState"].clone();
    assert!(state.is_object(), "{result}");
    let follow_up = app
        .call_tool(
            "chat_with_davis_copilot",
            json!({"text": "And EKS on Fargate?", "conversationState": state}),
        )
        .await;
    assert!(!is_error(&follow_up));
    assert_eq!(
        app.sandbox.requests_to("conversations:message")[1].json()["state"],
        state
    );
}

#[tokio::test]
async fn list_davis_analyzers_shows_categories() {
    let app = davis_app().await;
    let result = app.call_tool("list_davis_analyzers", json!({})).await;
    assert!(!is_error(&result), "{result}");
    let analyzers = result["structuredContent"]["analyzers"].as_array().unwrap();
    assert!(
        analyzers
            .iter()
            .any(|a| a["name"] == "dt.statistics.GenericForecastAnalyzer")
    );
    assert!(
        analyzers.iter().all(|a| a["category"].is_string()),
        "categories are objects on the wire, names here"
    );
    let sent = &app
        .sandbox
        .requests_to("/platform/davis/analyzers/v1/analyzers")[0];
    assert!(sent.query.contains("add-fields=category"), "{}", sent.query);
    let filtered = app
        .call_tool("list_davis_analyzers", json!({"filter": "forecast"}))
        .await;
    assert!(
        filtered["structuredContent"]["analyzers"]
            .as_array()
            .unwrap()
            .len()
            < analyzers.len()
    );
}

fn forecast_input() -> serde_json::Value {
    json!({"timeSeriesData": {"expression": "timeseries avg(dt.host.cpu.usage)"}, "forecastHorizon": 30})
}

#[tokio::test]
async fn execute_davis_analyzer_honours_the_callers_timeframe() {
    let app = davis_app().await;
    let result = app
        .call_tool(
            "execute_davis_analyzer",
            json!({"analyzerName": "dt.statistics.GenericForecastAnalyzer", "input": forecast_input(), "timeframeStart": "now-7d", "timeframeEnd": "now-1d"}),
        )
        .await;
    assert!(!is_error(&result), "{result}");
    assert_eq!(result["structuredContent"]["executionStatus"], "COMPLETED");
    let body = app.sandbox.requests_to(":execute").last().unwrap().json();
    assert_eq!(
        body["generalParameters"]["timeframe"],
        json!({"startTime": "now-7d", "endTime": "now-1d"})
    );
    assert_eq!(body["forecastHorizon"], 30, "the input is the body itself");
    assert!(body.get("input").is_none());
}

#[tokio::test]
async fn execute_davis_analyzer_polls_a_202_and_cancels_at_the_deadline() {
    let app = spawn_with(Options {
        env: vec![
            ("DT_ENABLE_DAVIS_COPILOT", "1".into()),
            ("MCP_TOOL_TIMEOUT_SECONDS", "4".into()),
        ],
        ..Default::default()
    })
    .await;
    app.sandbox.set_analyzer_timing(QueryTiming::Polls(2));
    let args =
        json!({"analyzerName": "dt.statistics.GenericForecastAnalyzer", "input": forecast_input()});
    let result = app.call_tool("execute_davis_analyzer", args.clone()).await;
    assert!(!is_error(&result), "{result}");
    assert_eq!(app.sandbox.requests_to(":poll").len(), 2);

    app.sandbox
        .set_analyzer_timing(QueryTiming::Duration(Duration::from_secs(60)));
    let started = Instant::now();
    let slow = app.call_tool("execute_davis_analyzer", args).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered within the deadline"
    );
    assert!(is_error(&slow));
    assert!(text_of(&slow).contains("cancelled"), "{}", text_of(&slow));
    assert_eq!(app.sandbox.requests_to(":cancel").len(), 1);
}

#[tokio::test]
async fn execute_davis_analyzer_explains_unknown_names_and_bad_times() {
    let app = davis_app().await;
    let unknown = app
        .call_tool("execute_davis_analyzer", json!({"analyzerName": "dt.nope"}))
        .await;
    assert!(
        is_error(&unknown) && text_of(&unknown).contains("list_davis_analyzers"),
        "{unknown}"
    );
    let bad = app.call_tool("execute_davis_analyzer", json!({"analyzerName": "dt.statistics.GenericForecastAnalyzer", "timeframeStart": "yesterday"})).await;
    assert!(
        is_error(&bad) && text_of(&bad).contains("timeframeStart"),
        "{bad}"
    );
}
