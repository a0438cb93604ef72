//! The read tools against the simulated tenant: for each, a success, a Dynatrace error and a bad
//! argument; and proof that user text cannot change the query Grail receives.

use dynatrace_sandbox::{Fault, Route, SandboxConfig};
use serde_json::{Value, json};

use crate::helpers::*;

/// The DQL statements Grail received, in order.
fn queries(app: &TestApp) -> Vec<String> {
    app.sandbox
        .requests_to("query:execute")
        .iter()
        .map(|r| r.json()["query"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn fails_with(app: &TestApp, tool: &str, args: Value, needle: &str) {
    let result = app.call_tool(tool, args.clone()).await;
    assert!(is_error(&result), "{tool} {args} should fail: {result}");
    let text = text_of(&result);
    assert!(
        text.contains(needle),
        "{tool} {args}: expected `{needle}` in: {text}"
    );
}

async fn dynatrace_500_is_reported(tool: &str, args: Value) {
    let app = spawn_app().await;
    app.sandbox.inject(Fault {
        route: Route::QueryExecute,
        status: 500,
        retry_after: None,
        times: 5,
    });
    fails_with(&app, tool, args, "HTTP 500").await;
}

#[tokio::test]
async fn list_problems_lists_newest_first_with_root_causes() {
    let app = spawn_app().await;
    let result = app
        .call_tool(
            "list_problems",
            json!({"status": "ACTIVE", "timeframe": "2h"}),
        )
        .await;
    assert!(!is_error(&result), "{result}");
    let problems = result["structuredContent"]["problems"].as_array().unwrap();
    assert!(!problems.is_empty());
    assert!(problems.iter().all(|p| p["status"] == "ACTIVE"));
    assert!(problems[0]["rootCauseEntityName"].is_string());
    assert!(
        problems[0]["link"]
            .as_str()
            .unwrap()
            .contains("/ui/apps/dynatrace.davis.problems/problem/")
    );
    let q = &queries(&app)[0];
    assert!(
        q.starts_with("fetch dt.davis.problems, from: now()-2h, to: now()"),
        "{q}"
    );
    assert!(q.contains("| filter event.status == \"ACTIVE\""), "{q}");
}

#[tokio::test]
async fn list_problems_refuses_bad_timeframes_and_piped_filters() {
    let app = spawn_app().await;
    fails_with(
        &app,
        "list_problems",
        json!({"timeframe": "1 day"}),
        "timeframe",
    )
    .await;
    fails_with(
        &app,
        "list_problems",
        json!({"timeframe": "24h | fetch logs"}),
        "timeframe",
    )
    .await;
    fails_with(
        &app,
        "list_problems",
        json!({"additionalFilter": "true | fetch logs"}),
        "additionalFilter",
    )
    .await;
    fails_with(
        &app,
        "list_problems",
        json!({"additionalFilter": "true\n| limit 1"}),
        "additionalFilter",
    )
    .await;
    fails_with(&app, "list_problems", json!({"status": "OPENED"}), "status").await;
    fails_with(
        &app,
        "list_problems",
        json!({"maxProblemsToDisplay": 0}),
        "maxProblemsToDisplay",
    )
    .await;
    assert!(queries(&app).is_empty(), "nothing reached Grail");
}

#[tokio::test]
async fn list_problems_reports_a_dynatrace_failure() {
    dynatrace_500_is_reported("list_problems", json!({})).await;
}

#[tokio::test]
async fn get_problem_details_resolves_entities_and_evidence() {
    let app = spawn_app().await;
    let listed = app
        .call_tool("list_problems", json!({"status": "ACTIVE"}))
        .await;
    let display_id = listed["structuredContent"]["problems"][0]["displayId"]
        .as_str()
        .unwrap()
        .to_string();
    let result = app
        .call_tool("get_problem_details", json!({"problemId": display_id}))
        .await;
    assert!(!is_error(&result), "{result}");
    let s = &result["structuredContent"];
    assert_eq!(s["problem"]["displayId"], display_id);
    assert!(s["rootCauseEntity"]["name"].is_string(), "{s}");
    assert!(
        s["affectedEntities"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["name"].is_string()),
        "{s}"
    );
    assert!(
        !s["evidence"].as_array().unwrap().is_empty(),
        "evidence events: {s}"
    );
    let text = text_of(&result);
    assert!(
        text.contains("Root cause:") && text.contains("Open in Dynatrace:"),
        "{text}"
    );
}

#[tokio::test]
async fn get_problem_details_says_which_id_was_not_found() {
    let app = spawn_app().await;
    fails_with(
        &app,
        "get_problem_details",
        json!({"problemId": "P-0000000"}),
        "P-0000000",
    )
    .await;
    fails_with(
        &app,
        "get_problem_details",
        json!({"problemId": " "}),
        "problemId",
    )
    .await;
    dynatrace_500_is_reported("get_problem_details", json!({"problemId": "P-1"})).await;
}

#[tokio::test]
async fn list_vulnerabilities_keeps_the_latest_open_unmuted_ones_above_the_score() {
    let app = spawn_app().await;
    let result = app
        .call_tool(
            "list_vulnerabilities",
            json!({"riskScore": 7.0, "maxVulnerabilitiesToDisplay": 50}),
        )
        .await;
    assert!(!is_error(&result), "{result}");
    let list = result["structuredContent"]["vulnerabilities"]
        .as_array()
        .unwrap();
    assert!(!list.is_empty());
    let scores: Vec<f64> = list
        .iter()
        .map(|v| v["riskScore"].as_f64().unwrap())
        .collect();
    assert!(scores.iter().all(|s| *s >= 7.0), "{scores:?}");
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "highest first: {scores:?}"
    );
    let mut pairs: Vec<(String, String)> = list
        .iter()
        .map(|v| {
            (
                v["displayId"].as_str().unwrap().to_string(),
                v["affectedEntityId"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let before = pairs.len();
    pairs.sort();
    pairs.dedup();
    assert_eq!(
        before,
        pairs.len(),
        "one entry per vulnerability and entity"
    );
}

#[tokio::test]
async fn list_vulnerabilities_names_the_missing_scope_and_checks_the_score() {
    let mut sandbox = SandboxConfig::demo();
    sandbox.platform_tokens = vec![(
        "dt0s16.NOSECURITY".into(),
        dynatrace_sandbox::ALL_SCOPES
            .iter()
            .filter(|s| **s != "storage:security.events:read")
            .map(|s| s.to_string())
            .collect(),
    )];
    let app = spawn_with(Options {
        sandbox,
        env: vec![("DT_PLATFORM_TOKEN", "dt0s16.NOSECURITY".into())],
    })
    .await;
    fails_with(
        &app,
        "list_vulnerabilities",
        json!({}),
        "storage:security.events:read",
    )
    .await;
    fails_with(
        &app,
        "list_vulnerabilities",
        json!({"riskScore": 11}),
        "riskScore",
    )
    .await;
}

#[tokio::test]
async fn list_exceptions_lists_frontend_errors() {
    let app = spawn_app().await;
    let result = app
        .call_tool(
            "list_exceptions",
            json!({"timeframe": "7d", "maxExceptionsToDisplay": 5}),
        )
        .await;
    assert!(!is_error(&result), "{result}");
    let list = result["structuredContent"]["exceptions"]
        .as_array()
        .unwrap();
    assert!(!list.is_empty() && list.len() <= 5);
    assert!(list.iter().all(|e| e["error.id"].is_string()));
    fails_with(
        &app,
        "list_exceptions",
        json!({"additionalFilter": "os.name == \"iOS\"\n| fetch logs"}),
        "additionalFilter",
    )
    .await;
    dynatrace_500_is_reported("list_exceptions", json!({})).await;
}

#[tokio::test]
async fn get_kubernetes_events_filters_by_cluster_and_type() {
    let app = spawn_app().await;
    let result = app
        .call_tool(
            "get_kubernetes_events",
            json!({"clusterId": "0f6c2b7e-3a41-4c55-9d0e-6b8f1a2c3d4e", "timeframe": "7d", "maxEventsToDisplay": 50}),
        )
        .await;
    assert!(!is_error(&result), "{result}");
    let events = result["structuredContent"]["events"].as_array().unwrap();
    assert!(!events.is_empty());
    assert!(
        events
            .iter()
            .all(|e| e["k8s.cluster.name"] == "prod-eu-west-1"),
        "{events:?}"
    );
    let typed = app
        .call_tool(
            "get_kubernetes_events",
            json!({"eventType": "PROCESS_RESTART", "timeframe": "7d"}),
        )
        .await;
    assert!(!is_error(&typed), "{typed}");
    assert!(queries(&app)[1].contains("event.type == \"PROCESS_RESTART\""));
    fails_with(
        &app,
        "get_kubernetes_events",
        json!({"eventType": "POD_EXPLODED"}),
        "eventType",
    )
    .await;
    dynatrace_500_is_reported("get_kubernetes_events", json!({})).await;
}

#[tokio::test]
async fn find_entity_by_name_finds_ids_types_and_tags() {
    let app = spawn_app().await;
    let result = app
        .call_tool("find_entity_by_name", json!({"entityNames": ["payment"]}))
        .await;
    assert!(!is_error(&result), "{result}");
    let entities = result["structuredContent"]["entities"].as_array().unwrap();
    assert!(
        entities
            .iter()
            .any(|e| e["name"].as_str().unwrap().contains("payment")),
        "{entities:?}"
    );
    fails_with(
        &app,
        "find_entity_by_name",
        json!({"entityNames": []}),
        "entityNames",
    )
    .await;
    fails_with(&app, "find_entity_by_name", json!({}), "entityNames").await;
    dynatrace_500_is_reported("find_entity_by_name", json!({"entityNames": ["x"]})).await;
}

#[tokio::test]
async fn hostile_names_cannot_change_the_query_grail_receives() {
    let app = spawn_app().await;
    let hostile = r#"x") or true | fetch logs | limit 1 //\" \\"#;
    for (tool, args) in [
        ("find_entity_by_name", json!({"entityNames": [hostile]})),
        ("find_entities_by_tag", json!({"tag": hostile})),
        ("get_problem_details", json!({"problemId": hostile})),
        ("get_kubernetes_events", json!({"clusterId": hostile})),
        ("describe_bucket", json!({"bucket": hostile})),
    ] {
        app.sandbox.clear_requests();
        let result = app.call_tool(tool, args).await;
        let sent = queries(&app);
        assert!(!sent.is_empty(), "{tool} queried");
        for q in &sent {
            // The hostile text arrives only as one escaped string literal: outside string literals
            // the statement has no smuggled command.
            assert!(
                !outside_literals(q).contains("fetch logs"),
                "{tool} leaked a pipeline: {q}"
            );
            assert!(
                q.contains(r#"x\") or true | fetch logs | limit 1 //\\\" \\\\"#),
                "{tool} escaped the literal: {q}"
            );
        }
        // No records of logs came back through a smuggled command.
        assert!(
            !text_of(&result).contains("\"loglevel\""),
            "{tool}: {}",
            text_of(&result)
        );
    }
}

/// The statement with every string literal's content removed (escapes honoured).
fn outside_literals(query: &str) -> String {
    let mut out = String::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in query.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    in_string = false;
                    out.push('"');
                }
                _ => {}
            }
        } else {
            if c == '"' {
                in_string = true;
            }
            out.push(c);
        }
    }
    assert!(!in_string, "unterminated literal in {query}");
    out
}

#[tokio::test]
async fn get_entity_name_resolves_ids_and_says_which_are_unknown() {
    let app = spawn_app().await;
    let result = app
        .call_tool("get_entity_name", json!({"entityIds": ["SERVICE-3E6B5F5CAB4C8D34", "HOST-8CCED98AFA59084C", "SERVICE-FFFFFFFFFFFFFFFF"]}))
        .await;
    assert!(!is_error(&result), "{result}");
    let s = &result["structuredContent"];
    let names: Vec<&str> = s["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"payment-service"), "{names:?}");
    assert_eq!(s["notFound"], json!(["SERVICE-FFFFFFFFFFFFFFFF"]));
    fails_with(
        &app,
        "get_entity_name",
        json!({"entityIds": ["payment-service"]}),
        "not an entity id",
    )
    .await;
    dynatrace_500_is_reported(
        "get_entity_name",
        json!({"entityIds": ["SERVICE-3E6B5F5CAB4C8D34"]}),
    )
    .await;
}

#[tokio::test]
async fn list_tags_groups_values_by_key() {
    let app = spawn_app().await;
    let result = app.call_tool("list_tags", json!({})).await;
    assert!(!is_error(&result), "{result}");
    let keys = result["structuredContent"]["keys"].as_array().unwrap();
    let env = keys.iter().find(|k| k["key"] == "env").expect("an env key");
    assert!(
        env["values"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["value"] == "prod")
    );
    let filtered = app
        .call_tool("list_tags", json!({"tagKeyFilter": "ENV"}))
        .await;
    assert!(
        filtered["structuredContent"]["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["key"].as_str().unwrap().contains("env"))
    );
    fails_with(
        &app,
        "list_tags",
        json!({"entityType": "SERVICE\" | fetch logs"}),
        "entityType",
    )
    .await;
    dynatrace_500_is_reported("list_tags", json!({})).await;
}

#[tokio::test]
async fn find_entities_by_tag_matches_exact_values_not_prefixes() {
    let app = spawn_app().await;
    let result = app
        .call_tool("find_entities_by_tag", json!({"tag": "env:prod"}))
        .await;
    assert!(!is_error(&result), "{result}");
    let entities = result["structuredContent"]["entities"].as_array().unwrap();
    assert!(!entities.is_empty());
    assert!(
        entities.iter().all(|e| e["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "env:prod")),
        "{entities:?}"
    );
    let by_key = app
        .call_tool("find_entities_by_tag", json!({"tag": "env"}))
        .await;
    assert!(
        by_key["structuredContent"]["entities"]
            .as_array()
            .unwrap()
            .len()
            > entities.len()
    );
    fails_with(&app, "find_entities_by_tag", json!({"tag": ""}), "tag").await;
    fails_with(
        &app,
        "find_entities_by_tag",
        json!({"tag": "env", "maxResults": 501}),
        "maxResults",
    )
    .await;
    dynatrace_500_is_reported("find_entities_by_tag", json!({"tag": "env"})).await;
}

#[tokio::test]
async fn list_buckets_and_describe_bucket() {
    let app = spawn_app().await;
    let result = app.call_tool("list_buckets", json!({})).await;
    assert!(!is_error(&result), "{result}");
    let buckets = result["structuredContent"]["buckets"].as_array().unwrap();
    assert!(
        buckets
            .iter()
            .any(|b| b["name"] == "default_logs" && b["table"] == "logs"),
        "{buckets:?}"
    );
    assert!(buckets.iter().all(|b| b["system"] == false));
    let all = app
        .call_tool("list_buckets", json!({"includeSystem": true}))
        .await;
    assert!(
        all["structuredContent"]["buckets"]
            .as_array()
            .unwrap()
            .len()
            > buckets.len()
    );

    let described = app
        .call_tool(
            "describe_bucket",
            json!({"bucket": "default_logs", "sampleSize": 20}),
        )
        .await;
    assert!(!is_error(&described), "{described}");
    let s = &described["structuredContent"];
    assert_eq!(s["table"], "logs");
    let fields = s["fields"].as_array().unwrap();
    let timestamp = fields
        .iter()
        .find(|f| f["name"] == "timestamp")
        .expect("a timestamp field");
    assert_eq!(timestamp["type"], "timestamp");
    assert!(
        queries(&app)
            .last()
            .unwrap()
            .contains("dt.system.bucket == \"default_logs\"")
    );

    fails_with(
        &app,
        "describe_bucket",
        json!({"bucket": "no_such_bucket"}),
        "list_buckets",
    )
    .await;
    fails_with(
        &app,
        "describe_bucket",
        json!({"bucket": "default_logs", "sampleSize": 0}),
        "sampleSize",
    )
    .await;
    dynatrace_500_is_reported("list_buckets", json!({})).await;
}

#[tokio::test]
async fn find_documents_searches_titles() {
    let app = spawn_app().await;
    let result = app
        .call_tool("find_documents", json!({"name": "troubleshooting"}))
        .await;
    assert!(!is_error(&result), "{result}");
    let docs = result["structuredContent"]["documents"].as_array().unwrap();
    assert!(!docs.is_empty());
    assert!(docs.iter().all(|d| {
        d["name"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("troubleshooting")
    }));
    assert!(docs[0]["link"].as_str().unwrap().contains("/ui/apps/"));
    let sent = &app.sandbox.requests_to("/platform/document/v1/documents")[0];
    assert!(sent.query.contains("filter="), "{}", sent.query);
    fails_with(
        &app,
        "find_documents",
        json!({"type": "spreadsheet"}),
        "type",
    )
    .await;
    let app = spawn_app().await;
    app.sandbox.inject(Fault {
        route: Route::Any,
        status: 503,
        retry_after: Some("0".into()),
        times: 10,
    });
    fails_with(&app, "find_documents", json!({}), "HTTP 503").await;
}

#[tokio::test]
async fn the_grail_budget_warns_refuses_and_resets() {
    // A budget of 20 kB: a couple of small queries reach it.
    let app = spawn_with(Options {
        env: vec![("DT_GRAIL_QUERY_BUDGET_GB", "0.00002".into())],
        ..Default::default()
    })
    .await;
    let mut refused = None;
    for _ in 0..20 {
        let result = app
            .call_tool(
                "execute_dql",
                json!({"dqlStatement": "fetch logs | limit 20"}),
            )
            .await;
        if is_error(&result) {
            refused = Some(text_of(&result));
            break;
        }
    }
    let refused = refused.expect("the budget ran out");
    assert!(
        refused.contains("budget") && refused.contains("reset_grail_budget"),
        "{refused}"
    );
    let executes = app.sandbox.requests_to("query:execute").len();
    let other = app.call_tool("list_problems", json!({})).await;
    assert!(is_error(&other), "every DQL-backed tool is gated");
    assert_eq!(
        app.sandbox.requests_to("query:execute").len(),
        executes,
        "refused queries never reach Grail"
    );

    let status = app.call_tool("get_grail_budget", json!({})).await;
    assert_eq!(status["structuredContent"]["exhausted"], true);
    let reset = app.call_tool("reset_grail_budget", json!({})).await;
    assert!(!is_error(&reset));
    assert_eq!(reset["structuredContent"]["scannedBytes"], 0);
    let again = app
        .call_tool(
            "execute_dql",
            json!({"dqlStatement": "fetch logs | limit 1"}),
        )
        .await;
    assert!(!is_error(&again), "{again}");
}

#[tokio::test]
async fn the_per_query_scan_limit_is_sent_to_grail() {
    let app = spawn_with(Options {
        env: vec![("DT_QUERY_SCAN_LIMIT_GB", "25".into())],
        ..Default::default()
    })
    .await;
    app.call_tool("list_problems", json!({})).await;
    app.call_tool(
        "execute_dql",
        json!({"dqlStatement": "fetch logs | limit 1"}),
    )
    .await;
    for request in app.sandbox.requests_to("query:execute") {
        assert_eq!(request.json()["defaultScanLimitGbytes"], 25.0);
    }
}
