//! The tools that change things: off by default, and behind a confirmation that works without
//! sessions.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

async fn write_app(extra: Vec<(&'static str, String)>) -> TestApp {
    let mut env = vec![
        ("DT_ENABLE_WRITE_TOOLS", "1".to_string()),
        (
            "SLACK_CONNECTION_ID",
            "sandbox-slack-connection".to_string(),
        ),
    ];
    env.extend(extra);
    spawn_with(Options {
        env,
        ..Default::default()
    })
    .await
}

/// Calls a write tool, expects a preview, and returns its confirmation token.
async fn preview(app: &TestApp, tool: &str, args: &Value) -> String {
    let result = app.call_tool(tool, args.clone()).await;
    assert!(!is_error(&result), "{tool} preview: {result}");
    let s = &result["structuredContent"];
    assert_eq!(s["status"], "confirmation_required", "{result}");
    assert!(text_of(&result).contains("confirmationToken"));
    s["confirmationToken"].as_str().unwrap().to_string()
}

fn with_token(args: &Value, token: &str) -> Value {
    let mut args = args.clone();
    args["confirmationToken"] = json!(token);
    args
}

#[tokio::test]
async fn writes_are_not_listed_unless_enabled() {
    let app = spawn_app().await;
    let reply = app.rpc("tools/list", json!({})).await;
    let names: Vec<&str> = reply.body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for write in [
        "send_email",
        "send_slack_message",
        "create_workflow_for_notification",
        "make_workflow_public",
        "create_dynatrace_notebook",
        "send_event",
    ] {
        assert!(
            !names.contains(&write),
            "{write} listed without DT_ENABLE_WRITE_TOOLS"
        );
    }
    let reply = app
        .rpc("tools/call", json!({"name": "send_email", "arguments": {}}))
        .await;
    assert_eq!(
        reply.body["error"]["code"], -32602,
        "an unlisted tool cannot be called: {}",
        reply.text
    );
}

#[tokio::test]
async fn send_email_previews_then_sends_exactly_what_was_confirmed() {
    let app = write_app(vec![]).await;
    let args = json!({"toRecipients": ["oncall@example.com"], "ccRecipients": ["lead@example.com"], "subject": "Payments degraded", "body": "Failure rate 12.8 %"});
    let token = preview(&app, "send_email", &args).await;
    assert!(app.sandbox.emails().is_empty(), "a preview sends nothing");
    let sent = app.call_tool("send_email", with_token(&args, &token)).await;
    assert!(!is_error(&sent), "{sent}");
    let emails = app.sandbox.emails();
    assert_eq!(emails.len(), 1);
    assert_eq!(
        emails[0]["toRecipients"]["emailAddresses"],
        json!(["oncall@example.com"])
    );
    assert_eq!(
        emails[0]["body"],
        json!({"contentType": "text/plain", "body": "Failure rate 12.8 %"})
    );

    // The same token again: a replay.
    let replay = app.call_tool("send_email", with_token(&args, &token)).await;
    assert!(
        is_error(&replay) && text_of(&replay).contains("already used"),
        "{replay}"
    );
    assert_eq!(app.sandbox.emails().len(), 1);
}

#[tokio::test]
async fn a_changed_argument_or_another_tools_token_is_refused() {
    let app = write_app(vec![]).await;
    let args = json!({"toRecipients": ["oncall@example.com"], "subject": "Payments degraded", "body": "x"});
    let token = preview(&app, "send_email", &args).await;
    let mut changed = with_token(&args, &token);
    changed["toRecipients"] = json!(["someone-else@example.com"]);
    let refused = app.call_tool("send_email", changed).await;
    assert!(
        is_error(&refused) && text_of(&refused).contains("arguments differ"),
        "{refused}"
    );
    let slack = json!({"channel": "#ops", "message": "hi", "confirmationToken": token});
    let refused = app.call_tool("send_slack_message", slack).await;
    assert!(
        is_error(&refused) && text_of(&refused).contains("issued for send_email"),
        "{refused}"
    );
    let forged = app
        .call_tool("send_email", with_token(&args, "abc.def"))
        .await;
    assert!(
        is_error(&forged) && text_of(&forged).contains("not one this server issued"),
        "{forged}"
    );
    assert!(app.sandbox.emails().is_empty());
}

#[tokio::test]
async fn an_expired_confirmation_is_refused() {
    let app = write_app(vec![("MCP_CONFIRMATION_TTL_SECONDS", "1".into())]).await;
    let args = json!({"channel": "#ops", "message": "deploy done"});
    let token = preview(&app, "send_slack_message", &args).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = app
        .call_tool("send_slack_message", with_token(&args, &token))
        .await;
    assert!(
        is_error(&expired) && text_of(&expired).contains("expired"),
        "{expired}"
    );
    assert!(app.sandbox.slack_messages().is_empty());
}

#[tokio::test]
async fn send_email_caps_recipients_and_checks_addresses() {
    let app = write_app(vec![]).await;
    let many: Vec<String> = (0..11).map(|i| format!("u{i}@example.com")).collect();
    let result = app
        .call_tool(
            "send_email",
            json!({"toRecipients": many, "subject": "s", "body": "b"}),
        )
        .await;
    assert!(
        is_error(&result) && text_of(&result).contains("at most 10"),
        "{result}"
    );
    let result = app
        .call_tool(
            "send_email",
            json!({"toRecipients": ["not-an-address"], "subject": "s", "body": "b"}),
        )
        .await;
    assert!(
        is_error(&result) && text_of(&result).contains("not an email address"),
        "{result}"
    );
}

#[tokio::test]
async fn send_email_reports_invalid_destinations_from_dynatrace() {
    let app = write_app(vec![]).await;
    let args = json!({"toRecipients": ["ok@example.com", "someone@bounce.example.com"], "subject": "s", "body": "b"});
    let token = preview(&app, "send_email", &args).await;
    let sent = app.call_tool("send_email", with_token(&args, &token)).await;
    assert!(!is_error(&sent), "{sent}");
    assert!(
        text_of(&sent).contains("bounce.example.com"),
        "{}",
        text_of(&sent)
    );
}

#[tokio::test]
async fn send_slack_message_posts_through_the_connection() {
    let app = write_app(vec![]).await;
    let args = json!({"channel": "#ops-alerts", "message": "*Payments* recovered"});
    let token = preview(&app, "send_slack_message", &args).await;
    let sent = app
        .call_tool("send_slack_message", with_token(&args, &token))
        .await;
    assert!(!is_error(&sent), "{sent}");
    let messages = app.sandbox.slack_messages();
    assert_eq!(messages[0]["connection"], "sandbox-slack-connection");
    assert_eq!(messages[0]["channel"], "#ops-alerts");
}

#[tokio::test]
async fn send_slack_message_explains_a_missing_or_unknown_connection() {
    let app = spawn_with(Options {
        env: vec![("DT_ENABLE_WRITE_TOOLS", "1".into())],
        ..Default::default()
    })
    .await;
    let result = app
        .call_tool(
            "send_slack_message",
            json!({"channel": "#ops", "message": "x"}),
        )
        .await;
    assert!(
        is_error(&result) && text_of(&result).contains("SLACK_CONNECTION_ID"),
        "{result}"
    );
    let app = write_app(vec![("SLACK_CONNECTION_ID", "no-such-connection".into())]).await;
    let args = json!({"channel": "#ops", "message": "x"});
    let token = preview(&app, "send_slack_message", &args).await;
    let result = app
        .call_tool("send_slack_message", with_token(&args, &token))
        .await;
    assert!(
        is_error(&result) && text_of(&result).contains("Slack app refused"),
        "{result}"
    );
}

#[tokio::test]
async fn create_workflow_for_notification_creates_a_trigger_and_a_slack_task() {
    let app = write_app(vec![]).await;
    let args = json!({"problemType": "ERROR", "teamName": "payments", "channel": "#payments-alerts", "isPrivate": true});
    let token = preview(&app, "create_workflow_for_notification", &args).await;
    assert!(app.sandbox.workflows().is_empty());
    let created = app
        .call_tool(
            "create_workflow_for_notification",
            with_token(&args, &token),
        )
        .await;
    assert!(!is_error(&created), "{created}");
    let workflows = app.sandbox.workflows();
    assert_eq!(workflows.len(), 1);
    let wf = &workflows[0];
    assert_eq!(
        wf["trigger"]["eventTrigger"]["triggerConfiguration"]["type"],
        "davis-problem"
    );
    assert_eq!(
        wf["trigger"]["eventTrigger"]["triggerConfiguration"]["value"]["categories"],
        json!({"error": true})
    );
    let task = wf["tasks"]["notify_slack"].clone();
    assert_eq!(task["action"], "dynatrace.slack:slack-send-message");
    assert_eq!(task["input"]["channel"], "#payments-alerts");
    assert!(
        text_of(&created).contains("make_workflow_public"),
        "{}",
        text_of(&created)
    );

    let id = created["structuredContent"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let args = json!({"workflowId": id});
    let token = preview(&app, "make_workflow_public", &args).await;
    let public = app
        .call_tool("make_workflow_public", with_token(&args, &token))
        .await;
    assert!(!is_error(&public), "{public}");
    assert_eq!(app.sandbox.workflows()[0]["isPrivate"], false);
    let patch = app
        .sandbox
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .expect("a PATCH");
    assert_eq!(patch.json(), json!({"isPrivate": false}));
}

#[tokio::test]
async fn make_workflow_public_says_which_id_is_unknown() {
    let app = write_app(vec![]).await;
    let args = json!({"workflowId": "00000000-0000-0000-0000-000000000000"});
    let token = preview(&app, "make_workflow_public", &args).await;
    let result = app
        .call_tool("make_workflow_public", with_token(&args, &token))
        .await;
    assert!(
        is_error(&result) && text_of(&result).contains("00000000-0000-0000-0000-000000000000"),
        "{result}"
    );
    let bad = app
        .call_tool(
            "create_workflow_for_notification",
            json!({"problemType": "WEATHER", "teamName": "x", "channel": "#x"}),
        )
        .await;
    assert!(
        is_error(&bad) && text_of(&bad).contains("problemType"),
        "{bad}"
    );
}

#[tokio::test]
async fn create_dynatrace_notebook_uploads_the_sections() {
    let app = write_app(vec![]).await;
    let args = json!({"name": "Payments incident", "description": "Findings", "content": [
        {"type": "markdown", "text": "## Root cause\nConnection refused to payment-db"},
        {"type": "dql", "text": "fetch logs | filter loglevel == \"ERROR\" | limit 20"}
    ]});
    let token = preview(&app, "create_dynatrace_notebook", &args).await;
    let created = app
        .call_tool("create_dynatrace_notebook", with_token(&args, &token))
        .await;
    assert!(!is_error(&created), "{created}");
    assert!(
        created["structuredContent"]["link"]
            .as_str()
            .unwrap()
            .contains("dynatrace.notebooks/notebook/")
    );
    let docs = app.sandbox.documents();
    let doc = docs
        .iter()
        .find(|d| d["name"] == "Payments incident")
        .expect("the notebook was stored");
    assert_eq!(doc["type"], "notebook");
    let upload = app
        .sandbox
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/documents"))
        .unwrap();
    assert!(
        upload
            .body
            .contains("Content-Disposition: form-data; name=\"content\""),
        "multipart upload"
    );
    let bad = app
        .call_tool(
            "create_dynatrace_notebook",
            json!({"name": "x", "content": []}),
        )
        .await;
    assert!(is_error(&bad) && text_of(&bad).contains("content"));
}

#[tokio::test]
async fn send_event_previews_the_risk_and_ingests() {
    let app = write_app(vec![]).await;
    let args = json!({"eventType": "CUSTOM_ALERT", "title": "Manual alert", "properties": {"team": "payments"}});
    let result = app.call_tool("send_event", args.clone()).await;
    assert!(
        text_of(&result).contains("can open a Davis problem"),
        "{}",
        text_of(&result)
    );
    let token = result["structuredContent"]["confirmationToken"]
        .as_str()
        .unwrap()
        .to_string();
    let sent = app.call_tool("send_event", with_token(&args, &token)).await;
    assert!(!is_error(&sent), "{sent}");
    let events = app.sandbox.ingested_events();
    assert_eq!(events[0]["eventType"], "CUSTOM_ALERT");
    assert_eq!(events[0]["properties"], json!({"team": "payments"}));
    let bad = app
        .call_tool("send_event", json!({"eventType": "PARTY", "title": "x"}))
        .await;
    assert!(is_error(&bad) && text_of(&bad).contains("eventType"));
}

#[tokio::test]
async fn write_tools_carry_truthful_annotations() {
    let app = write_app(vec![]).await;
    let reply = app.rpc("tools/list", json!({})).await;
    for tool in reply.body["result"]["tools"].as_array().unwrap() {
        let name = tool["name"].as_str().unwrap();
        let a = &tool["annotations"];
        let writes = [
            "send_email",
            "send_slack_message",
            "create_workflow_for_notification",
            "make_workflow_public",
            "create_dynatrace_notebook",
            "send_event",
            "reset_grail_budget",
        ];
        if writes.contains(&name) {
            assert_eq!(a["readOnlyHint"], false, "{name}");
        } else {
            assert_eq!(a["readOnlyHint"], true, "{name} reads only");
        }
        if name == "send_event" {
            assert_eq!(a["destructiveHint"], true);
        }
    }
}
