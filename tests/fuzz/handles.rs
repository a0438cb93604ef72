//! The signed handles clients bring back: `queryHandle` (execute_dql) and `confirmationToken`
//! (every write tool), both `dynatrace_mcp::signing::Signer` envelopes.
//!
//! Properties, on the signer directly: arbitrary strings never panic and are refused; a handle
//! round-trips; a handle with any single byte changed, of another kind, or signed with another
//! key is refused. And end to end through the Router: a real `send_email` confirmation token
//! with one byte changed, or signed with another key, is refused and sends nothing; so is a
//! `queryHandle` changed the same way.

use std::time::Duration;

use dynatrace_mcp::identity::Principal;
use dynatrace_mcp::signing::{HandleError, Signer};
use serde_json::{Value, json};

use crate::app::{self, rpc_request};
use crate::input::Input;

const KINDS: &[&str] = &["dql-query", "write-confirmation"];
const TTL: Duration = Duration::from_secs(300);

pub fn fuzz_signer(data: &[u8]) {
    let mut input = Input::new(data);
    let key = input.bytes(48).to_vec();
    let signer = Signer::new(&key);
    let kind = input.word(KINDS, 4);

    // Arbitrary strings.
    let raw = match input.below(3) {
        0 => input.string(200),
        1 => format!("{}.{}", input.string(120), input.string(30)),
        _ => String::from_utf8_lossy(input.bytes(300)).into_owned(),
    };
    assert!(
        signer.open::<Value>(&kind, &raw).is_err(),
        "an arbitrary string was accepted: {raw:?}"
    );

    // A real handle round-trips, and every change to it is refused.
    let payload = payload(&mut input);
    let handle = signer.issue(&kind, &payload, TTL);
    assert_eq!(signer.open::<Value>(&kind, &handle), Ok(payload.clone()));
    let changed = change_one_byte(&handle, &mut input);
    if let Some(changed) = &changed {
        assert_eq!(
            signer.open::<Value>(&kind, changed),
            Err(HandleError::Invalid),
            "a changed handle was accepted: {handle} -> {changed}"
        );
    }
    let other_kind = format!("{kind}{}", 1 + input.below(9));
    assert_eq!(
        signer.open::<Value>(&other_kind, &handle),
        Err(HandleError::Invalid)
    );
    let mut other_key = key.clone();
    if other_key.is_empty() || input.bool() {
        other_key.push(input.byte());
    } else {
        let at = input.below(other_key.len());
        other_key[at] ^= 1 + input.byte() % 255;
    }
    assert_eq!(
        Signer::new(&other_key).open::<Value>(&kind, &handle),
        Err(HandleError::Invalid),
        "a handle signed with another key was accepted"
    );
}

/// A JSON payload of strings and whole numbers (floats need not round-trip exactly).
fn payload(input: &mut Input) -> Value {
    let mut value = input.json(2);
    normalise(&mut value);
    value
}

fn normalise(value: &mut Value) {
    match value {
        Value::Number(n) if n.as_f64().is_some() && !n.is_i64() && !n.is_u64() => {
            *value = json!(n.to_string())
        }
        Value::Array(items) => items.iter_mut().for_each(normalise),
        Value::Object(map) => map.values_mut().for_each(normalise),
        _ => {}
    }
}

/// `text` with one byte replaced by another value (None when the result is not UTF-8, which no
/// JSON string can carry).
fn change_one_byte(text: &str, input: &mut Input) -> Option<String> {
    let mut bytes = text.as_bytes().to_vec();
    let at = input.below(bytes.len());
    let new = match input.below(3) {
        // Another character of the base64url alphabet, or the separator, or whitespace.
        0 => input.pick(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_. \t"),
        1 => bytes[at] ^ (1 << input.below(7)),
        _ => input.byte(),
    };
    if new == bytes[at] {
        return None;
    }
    bytes[at] = new;
    String::from_utf8(bytes).ok()
}

const EMAIL: &str = "send_email";

fn email_arguments(input: &mut Input) -> Value {
    json!({
        "toRecipients": ["ops@example.com"],
        "subject": format!("s{}", input.string(40)),
        "body": format!("b{}", input.string(80)),
    })
}

/// The confirmation token and the query handle, end to end through the Router.
pub fn fuzz_tokens(data: &[u8]) {
    let app = app::app();
    let mut input = Input::new(data);
    let emails_before = app.sandbox.emails().len();

    let token = match input.below(4) {
        // A real token, one byte changed.
        0 | 1 => {
            let arguments = email_arguments(&mut input);
            let preview = app
                .call(rpc_request(
                    "tools/call",
                    json!({"name": EMAIL, "arguments": arguments}),
                ))
                .tool_result();
            let token = preview["structuredContent"]["confirmationToken"]
                .as_str()
                .unwrap_or_else(|| panic!("a preview with a token: {preview}"))
                .to_string();
            let Some(changed) = change_one_byte(&token, &mut input) else {
                return;
            };
            let mut arguments = arguments;
            arguments["confirmationToken"] = json!(changed);
            refused(app, EMAIL, arguments, "confirmationToken");
            return;
        }
        // A well-formed token signed with another key.
        2 => {
            let other = Signer::new(input.bytes(40));
            other.issue(
                "write-confirmation",
                &json!({"t": EMAIL, "h": input.string(64), "n": input.string(32), "e": input.u64(), "p": Principal::anonymous().binding()}),
                TTL,
            )
        }
        _ => {
            let token = input.string(200);
            if token.trim().is_empty() {
                // No token at all: a preview, which is not what this checks.
                return;
            }
            token
        }
    };
    let mut arguments = email_arguments(&mut input);
    arguments["confirmationToken"] = json!(token);
    refused(app, EMAIL, arguments, "");
    assert_eq!(
        app.sandbox.emails().len(),
        emails_before,
        "an email was sent with a forged token"
    );

    // A query handle the server issued, one byte changed; and one from another key.
    let handle = app.state.signer.issue(
        "dql-query",
        &json!({"t": input.string(36), "n": 10, "s": "storage:logs:read", "p": Principal::anonymous().binding()}),
        TTL,
    );
    if let Some(changed) = change_one_byte(&handle, &mut input) {
        refused(
            app,
            "execute_dql",
            json!({"queryHandle": changed}),
            "queryHandle",
        );
    }
    let foreign = Signer::new(input.bytes(40)).issue(
        "dql-query",
        &json!({"t": "x", "n": 10, "s": "", "p": Principal::anonymous().binding()}),
        TTL,
    );
    refused(
        app,
        "execute_dql",
        json!({"queryHandle": foreign}),
        "queryHandle",
    );
}

/// Calls `tool` and expects an error result that names `argument`.
fn refused(app: &app::App, tool: &str, arguments: Value, argument: &str) {
    let result = app
        .call(rpc_request(
            "tools/call",
            json!({"name": tool, "arguments": arguments}),
        ))
        .tool_result();
    assert_eq!(
        result["isError"], true,
        "{tool} accepted {arguments}: {result}"
    );
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains(argument),
        "{tool}'s refusal does not name {argument}: {text}"
    );
}
