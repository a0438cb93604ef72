//! Sending notifications: the Email API (`POST /platform/email/v1/emails`) and the Slack app's
//! `slack-send-message` function (`POST /platform/app-engine/app-functions/v1/apps/
//! dynatrace.slack/api/slack-send-message`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::{Call, Inner, Route, not_a_route, violation, violations};

pub(super) fn routes(router: Router<Arc<Inner>>) -> Router<Arc<Inner>> {
    router
        .route("/platform/email/v1/emails", post(send_email))
        .route(
            "/platform/app-engine/app-functions/v1/apps/{app}/api/{function}",
            post(app_function),
        )
}

/// The domain whose addresses bounce, and the one whose recipients complain.
pub const BOUNCING_DOMAIN: &str = "bounce.example.com";
pub const COMPLAINING_DOMAIN: &str = "complaint.example.com";

fn valid_address(address: &str) -> bool {
    match address.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !address.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

async fn send_email(State(inner): State<Arc<Inner>>, call: Call) -> Response {
    if let Err(response) = inner
        .admit(Route::EmailSend, &call, &["email:emails:send"])
        .await
    {
        return response;
    }
    let Some(Value::Object(request)) = call.json() else {
        return violations(
            "The request body is not a valid SendEmailRequest.",
            vec![violation("", "must be a JSON object")],
        );
    };
    let mut problems = Vec::new();
    let mut addresses: Vec<String> = Vec::new();
    let mut recipients = 0;
    for list in ["toRecipients", "ccRecipients", "bccRecipients"] {
        match request.get(list) {
            None | Some(Value::Null) => {}
            Some(Value::Object(lists)) => {
                for (key, value) in lists {
                    if !matches!(
                        key.as_str(),
                        "emailAddresses" | "ssoUserIds" | "ssoGroupIds"
                    ) {
                        problems.push(violation(
                            &format!("{list}.{key}"),
                            "unknown property (expected emailAddresses, ssoUserIds or ssoGroupIds)",
                        ));
                        continue;
                    }
                    match value {
                        Value::Null => {}
                        Value::Array(items) if items.iter().all(Value::is_string) => {
                            recipients += items.len();
                            if key == "emailAddresses" {
                                addresses.extend(
                                    items.iter().filter_map(Value::as_str).map(str::to_string),
                                );
                            }
                        }
                        _ => problems.push(violation(
                            &format!("{list}.{key}"),
                            "must be an array of strings",
                        )),
                    }
                }
            }
            Some(_) => problems.push(violation(list, "must be an object")),
        }
    }
    if recipients == 0 && problems.is_empty() {
        problems.push(violation(
            "toRecipients",
            "at least one recipient is required in toRecipients, ccRecipients or bccRecipients",
        ));
    }
    match request.get("subject") {
        Some(Value::String(s)) if !s.trim().is_empty() => {}
        Some(Value::String(_)) | None | Some(Value::Null) => {
            problems.push(violation("subject", "must not be blank"))
        }
        Some(_) => problems.push(violation("subject", "must be a string")),
    }
    match request.get("body") {
        Some(Value::Object(body)) => {
            match body.get("contentType").and_then(Value::as_str) {
                Some("text/plain" | "text/html") => {}
                Some(other) => problems.push(violation(
                    "body.contentType",
                    &format!("'{other}' is not supported (use text/plain or text/html)"),
                )),
                None => problems.push(violation("body.contentType", "must not be null")),
            }
            if !body.get("body").is_some_and(Value::is_string) {
                problems.push(violation("body.body", "must be a string"));
            }
        }
        _ => problems.push(violation(
            "body",
            "must be an object with contentType and body",
        )),
    }
    if !problems.is_empty() {
        return violations("Invalid request body.", problems);
    }
    let invalid: Vec<&String> = addresses.iter().filter(|a| !valid_address(a)).collect();
    let in_domain = |domain: &str| -> Vec<&String> {
        addresses
            .iter()
            .filter(|a| valid_address(a))
            .filter(|a| {
                a.rsplit_once('@')
                    .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain))
            })
            .collect()
    };
    let bouncing = in_domain(BOUNCING_DOMAIN);
    let complaining = in_domain(COMPLAINING_DOMAIN);
    let mut body = json!({
        "requestId": inner.uuid(),
        "message": "Email send request accepted.",
    });
    if !invalid.is_empty() {
        body["invalidDestinations"] = json!(invalid);
    }
    if !bouncing.is_empty() || !complaining.is_empty() {
        body["rejectedDestinations"] = json!({
            "bouncingDestinations": bouncing,
            "complainingDestinations": complaining,
        });
    }
    inner.emails.lock().unwrap().push(Value::Object(request));
    (StatusCode::ACCEPTED, axum::Json(body)).into_response()
}

/// What the App Functions API answers when a function throws (status 540).
fn crashed(message: &str) -> Response {
    let status = StatusCode::from_u16(540).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        axum::Json(json!({
            "error": {
                "code": 540,
                "message": "Execution crashed.",
                "details": {
                    "logs": format!("Error: {message}\n    at slackSendMessage (dynatrace.slack/api/slack-send-message.js:1:2817)"),
                }
            }
        })),
    )
        .into_response()
}

async fn app_function(
    State(inner): State<Arc<Inner>>,
    Path((app, function)): Path<(String, String)>,
    call: Call,
) -> Response {
    if (app.as_str(), function.as_str()) != ("dynatrace.slack", "slack-send-message") {
        inner.record(&call.method, &call.uri, &call.headers, &call.body);
        let _ = not_a_route(&inner, &call);
        // The App Functions API answers a missing app or function with a plain string.
        return (
            StatusCode::NOT_FOUND,
            format!("App '{app}' is not installed or has no function '{function}'."),
        )
            .into_response();
    }
    if let Err(response) = inner
        .admit(Route::SlackSendMessage, &call, &["app-engine:apps:run"])
        .await
    {
        return response;
    }
    let Some(Value::Object(input)) = call.json() else {
        return crashed("The function input must be a JSON object.");
    };
    let text = |key: &str| {
        input
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    };
    let Some(connection) = text("connection") else {
        return crashed("Input 'connection' is required.");
    };
    let Some(channel) = text("channel") else {
        return crashed("Input 'channel' is required.");
    };
    if text("message").is_none() {
        return crashed("Input 'message' is required.");
    }
    if !inner
        .slack_connections
        .lock()
        .unwrap()
        .contains(&connection)
    {
        // The function reports its own failures inside a 200 body.
        return axum::Json(json!({
            "error": format!("Connection not found: no Slack connection with id '{connection}'."),
        }))
        .into_response();
    }
    let channel_id = format!(
        "C{:08X}",
        channel.bytes().fold(0x811C_9DC5u32, |h, b| (h ^ b as u32)
            .wrapping_mul(0x0100_0193))
    );
    let seconds = inner.now() / 1_000_000_000;
    let ts = format!("{seconds}.{:06}", inner.next_id() % 1_000_000);
    inner
        .slack_messages
        .lock()
        .unwrap()
        .push(Value::Object(input));
    axum::Json(json!({
        "result": { "ok": true, "channel": channel_id, "ts": ts }
    }))
    .into_response()
}
