//! The first tools against the simulated tenant: a success, a Dynatrace error and a bad argument
//! for each.

use dynatrace_sandbox::{DEMO_PLATFORM_TOKEN, SandboxConfig};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn get_environment_info_reports_the_real_fields() {
    let app = spawn_app().await;
    let result = app.call_tool("get_environment_info", json!({})).await;
    assert!(!is_error(&result), "{result}");
    let s = &result["structuredContent"];
    assert_eq!(s["environmentId"], "sandbox1");
    assert_eq!(s["state"], "ACTIVE");
    assert_eq!(s["type"], "CUSTOMER");
    assert_eq!(s["environmentUrl"], app.sandbox.url());
    assert!(text_of(&result).contains("sandbox1"));
    let calls = app
        .sandbox
        .requests_to("/platform/management/v1/environment");
    assert_eq!(calls.len(), 1);
    // Grail and the platform record who ran a call: the server and version, and the principal.
    assert_eq!(
        calls[0].client_context.as_deref(),
        Some(concat!(
            "dynatrace-mcp/",
            env!("CARGO_PKG_VERSION"),
            " principal=anonymous source=anonymous"
        ))
    );
    assert!(app.sandbox.unexpected().is_empty());
}

#[tokio::test]
async fn get_environment_info_names_a_missing_scope() {
    let mut sandbox = SandboxConfig::demo();
    sandbox.platform_tokens = vec![("dt0s16.LIMITED".into(), vec!["storage:buckets:read".into()])];
    let app = spawn_with(Options {
        sandbox,
        env: vec![("DT_PLATFORM_TOKEN", "dt0s16.LIMITED".into())],
    })
    .await;
    let result = app.call_tool("get_environment_info", json!({})).await;
    assert!(is_error(&result));
    let text = text_of(&result);
    assert!(
        text.contains("platform-management:environments:read"),
        "{text}"
    );
    assert!(!text.contains("dt0s16.LIMITED"));
}

#[tokio::test]
async fn get_environment_info_refuses_unknown_arguments() {
    let app = spawn_app().await;
    let result = app
        .call_tool("get_environment_info", json!({"verbose": true}))
        .await;
    assert!(is_error(&result));
    assert!(text_of(&result).contains("verbose"), "{}", text_of(&result));
}

#[tokio::test]
async fn execute_dql_returns_records_types_and_metadata() {
    let app = spawn_app().await;
    let result = app
        .call_tool(
            "execute_dql",
            json!({"dqlStatement": "fetch logs | filter loglevel == \"ERROR\" | fields timestamp, content, loglevel | limit 5", "recordLimit": 10}),
        )
        .await;
    assert!(!is_error(&result), "{result}");
    let s = &result["structuredContent"];
    assert_eq!(s["status"], "succeeded");
    assert_eq!(s["returnedRecords"], 5);
    assert_eq!(s["hasMore"], false);
    assert_eq!(s["records"].as_array().unwrap().len(), 5);
    assert!(
        s["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["loglevel"] == "ERROR")
    );
    assert_eq!(s["types"][0]["indexRange"], json!([0, 4]));
    assert!(s["metadata"]["scannedBytes"].as_u64().unwrap() > 0);
    let text = text_of(&result);
    assert!(text.starts_with("Query finished: 5 records."), "{text}");
    assert!(text.contains("```jsonl"));

    // What Grail received: the statement, and one record more than asked for.
    let sent = app.sandbox.requests_to("query:execute");
    assert_eq!(sent.len(), 1);
    let body = sent[0].json();
    assert_eq!(
        body["query"],
        "fetch logs | filter loglevel == \"ERROR\" | fields timestamp, content, loglevel | limit 5"
    );
    assert_eq!(body["maxResultRecords"], 11);
    // recordSizeLimitMB (1 MB by default) capped at 60 % of the response budget, a fifth more than
    // the text half of the budget shows, but never below 64 KiB: 60 % of the default 60 KiB is less.
    assert_eq!(body["maxResultBytes"], 64 * 1024);
}

#[tokio::test]
async fn execute_dql_pages_with_continue_from() {
    let app = spawn_app().await;
    let statement = "fetch logs | sort timestamp desc | fields timestamp, content | limit 100";
    let first = app
        .call_tool(
            "execute_dql",
            json!({"dqlStatement": statement, "recordLimit": 3}),
        )
        .await;
    let s = &first["structuredContent"];
    assert_eq!(s["hasMore"], true);
    let cursor = s["continueFrom"].as_str().expect("a cursor").to_string();
    assert_eq!(s["records"][2]["timestamp"], cursor);
    let second = app
        .call_tool(
            "execute_dql",
            json!({"dqlStatement": statement, "recordLimit": 3, "continueFrom": cursor}),
        )
        .await;
    assert!(!is_error(&second), "{second}");
    let next = second["structuredContent"]["records"][0]["timestamp"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(next < cursor, "{next} should be older than {cursor}");
    let sent = app.sandbox.requests_to("query:execute");
    assert!(sent[1].json()["query"].as_str().unwrap().contains(&format!(
        "| filter timestamp < toTimestamp(\"{cursor}\")\n| limit 100"
    )));
}

#[tokio::test]
async fn execute_dql_fits_big_results_into_the_budget_and_says_so() {
    let app = spawn_with(Options {
        env: vec![("MCP_RESULT_MAX_BYTES", "20000".into())],
        ..Default::default()
    })
    .await;
    let result = app
        .call_tool(
            "execute_dql",
            json!({"dqlStatement": "fetch logs", "recordLimit": 1000}),
        )
        .await;
    let s = &result["structuredContent"];
    assert_eq!(s["truncated"], true);
    let shown = s["returnedRecords"].as_u64().unwrap();
    assert!(shown > 0 && shown < 1000, "{shown}");
    let text = text_of(&result);
    assert!(
        text.contains("left out to fit the response budget"),
        "{text}"
    );
    assert!(text.len() < 12_000, "{}", text.len());
    assert!(s["continueFrom"].is_string());
}

#[tokio::test]
async fn execute_dql_shows_the_parser_message_and_position() {
    let app = spawn_app().await;
    let result = app
        .call_tool(
            "execute_dql",
            json!({"dqlStatement": "fetch logs\n| fitler loglevel == \"ERROR\""}),
        )
        .await;
    assert!(is_error(&result));
    let text = text_of(&result);
    assert!(
        text.contains("The command `fitler` doesn't exist"),
        "{text}"
    );
    assert!(text.contains("line 2, column 3"), "{text}");
}

#[tokio::test]
async fn execute_dql_rejects_bad_arguments_with_the_argument_name() {
    let app = spawn_app().await;
    for (args, needle) in [
        (json!({}), "dqlStatement is required"),
        (json!({"dqlStatement": "  "}), "dqlStatement is required"),
        (
            json!({"dqlStatement": "fetch logs", "recordLimit": 0}),
            "recordLimit must be between 1 and 10000",
        ),
        (
            json!({"dqlStatement": "fetch logs", "recordLimit": -5}),
            "recordLimit",
        ),
        (
            json!({"dqlStatement": "fetch logs", "recordLimit": "many"}),
            "recordLimit",
        ),
        (
            json!({"dqlStatement": "fetch logs", "recordSizeLimitMB": 11}),
            "recordSizeLimitMB",
        ),
        (
            json!({"dqlStatement": "fetch logs", "outputFormat": "xml"}),
            "outputFormat",
        ),
        (
            json!({"dqlStatement": "fetch logs", "continueFrom": "yesterday\" | fetch x"}),
            "continueFrom",
        ),
        (json!({"dqlStatment": "fetch logs"}), "dqlStatment"),
        (json!({"queryHandle": "forged.handle"}), "queryHandle"),
    ] {
        let result = app.call_tool("execute_dql", args.clone()).await;
        assert!(is_error(&result), "{args} should fail");
        let text = text_of(&result);
        assert!(text.contains(needle), "{args}: {text}");
    }
    assert!(
        app.sandbox.requests_to("query:execute").is_empty(),
        "bad arguments never reach Grail"
    );
}

#[tokio::test]
async fn execute_dql_accepts_numbers_as_models_send_them() {
    let app = spawn_app().await;
    let result = app
        .call_tool(
            "execute_dql",
            json!({"dqlStatement": "fetch logs | limit 3", "recordLimit": 2.0}),
        )
        .await;
    assert!(!is_error(&result), "{result}");
    assert_eq!(result["structuredContent"]["returnedRecords"], 2);
}

#[tokio::test]
async fn execute_dql_lines_format_prints_log_lines() {
    let app = spawn_app().await;
    let result = app
        .call_tool("execute_dql", json!({"dqlStatement": "fetch logs | limit 2", "outputFormat": "lines", "fields": ["content"]}))
        .await;
    let text = text_of(&result);
    assert!(!text.contains("```"), "{text}");
    assert_eq!(
        result["structuredContent"]["records"][0]
            .as_object()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn verify_dql_reports_valid_and_invalid_statements() {
    let app = spawn_app().await;
    let ok = app
        .call_tool(
            "verify_dql",
            json!({"dqlStatement": "fetch logs | limit 1"}),
        )
        .await;
    assert!(!is_error(&ok));
    assert_eq!(ok["structuredContent"]["valid"], true);
    assert!(text_of(&ok).contains("is valid"));

    let bad = app
        .call_tool(
            "verify_dql",
            json!({"dqlStatement": "fetch logs | summarize count(), by:{"}),
        )
        .await;
    assert!(
        !is_error(&bad),
        "an invalid statement is a finding, not a failure"
    );
    assert_eq!(bad["structuredContent"]["valid"], false);
    let n = &bad["structuredContent"]["notifications"][0];
    assert_eq!(n["severity"], "ERROR");
    assert!(n["syntaxPosition"]["start"]["line"].is_number());
    assert!(text_of(&bad).contains("ERROR"));
    assert!(
        app.sandbox.requests_to("query:execute").is_empty(),
        "verify costs no query"
    );
}

#[tokio::test]
async fn verify_dql_requires_a_statement() {
    let app = spawn_app().await;
    let result = app.call_tool("verify_dql", json!({})).await;
    assert!(is_error(&result));
    assert!(text_of(&result).contains("dqlStatement"));
}

#[tokio::test]
async fn platform_token_is_sent_as_bearer_without_sso() {
    let app = spawn_with(Options {
        env: vec![("DT_PLATFORM_TOKEN", DEMO_PLATFORM_TOKEN.into())],
        ..Default::default()
    })
    .await;
    let result = app
        .call_tool("verify_dql", json!({"dqlStatement": "fetch logs"}))
        .await;
    assert!(!is_error(&result), "{result}");
    assert!(app.sandbox.requests_to("/sso/oauth2/token").is_empty());
    let sent = app.sandbox.requests_to("query:verify");
    assert_eq!(sent[0].bearer.as_deref(), Some(DEMO_PLATFORM_TOKEN));
}

/// Without `fields`, Grail is asked for no more bytes than the response budget; the records it
/// leaves out are announced and reachable with continueFrom. With `fields`, recordSizeLimitMB
/// applies as given.
#[tokio::test]
async fn execute_dql_asks_grail_for_no_more_than_the_answer_can_show() {
    let app = spawn_with(Options {
        env: vec![("MCP_RESULT_MAX_BYTES", "200000".into())],
        ..Default::default()
    })
    .await;
    let statement = "fetch logs | sort timestamp desc | limit 5000";
    let result = app
        .call_tool(
            "execute_dql",
            json!({"dqlStatement": statement, "recordLimit": 5000, "recordSizeLimitMB": 10}),
        )
        .await;
    assert!(!is_error(&result), "{result}");
    let sent: serde_json::Value = serde_json::from_str(
        &app.sandbox
            .requests_to("/query:execute")
            .last()
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(sent["maxResultBytes"], 120_000, "{sent}");
    let s = &result["structuredContent"];
    let returned = s["returnedRecords"].as_u64().unwrap();
    assert!((10..5000).contains(&returned), "{returned} records");
    assert_eq!(s["hasMore"], true);
    let cursor = s["continueFrom"].as_str().expect("a continueFrom cursor");
    assert!(text_of(&result).contains(cursor));

    // The next page starts after the cursor.
    let next = app
        .call_tool(
            "execute_dql",
            json!({"dqlStatement": statement, "recordLimit": 5000, "continueFrom": cursor}),
        )
        .await;
    assert!(!is_error(&next), "{next}");
    let first_next = next["structuredContent"]["records"][0]["timestamp"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        first_next.as_str() < cursor,
        "{first_next} follows {cursor}"
    );

    app.call_tool(
        "execute_dql",
        json!({"dqlStatement": statement, "recordLimit": 5000, "recordSizeLimitMB": 2, "fields": ["timestamp"]}),
    )
    .await;
    let sent: serde_json::Value = serde_json::from_str(
        &app.sandbox
            .requests_to("/query:execute")
            .last()
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(sent["maxResultBytes"], 2 * 1024 * 1024, "{sent}");
}
