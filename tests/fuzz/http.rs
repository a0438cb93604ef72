//! The HTTP/JSON-RPC request path through the real Router: generated JSON-RPC messages for every
//! method and tool (with arguments shaped after each tool's schema, and not), batches, mutated
//! and raw bodies, and arbitrary methods, paths and headers.
//!
//! Properties (besides those [`App::call`] checks for every answer: no panic, an answer within
//! 30 s, a known status, no answer over the size bound): a 200 from the MCP endpoint is JSON; a
//! well-formed JSON-RPC request with well-formed headers gets 200 and a JSON-RPC answer carrying
//! its id; a notification gets 202 and no body.

use axum::body::Body;
use serde_json::{Map, Value, json};

use crate::app::{self, App};
use crate::input::Input;

const METHODS: &[&str] = &[
    "initialize",
    "tools/list",
    "tools/call",
    "tools/call",
    "tools/call",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "server/discover",
    "ping",
    "completion/complete",
    "logging/setLevel",
    "notifications/initialized",
    "notifications/cancelled",
];

const PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// One generated request, and whether everything about it is well-formed (then the answer must
/// be a JSON-RPC success or error with the request's id).
struct Generated {
    request: http::Request<Body>,
    mcp_path: bool,
    post: bool,
    /// `Some(id)`: a clean request with this id; `Some(Null)` for a clean notification.
    clean: Option<Value>,
    /// The request, for failure messages.
    shown: String,
}

pub fn fuzz_one(data: &[u8]) {
    let app = app::app();
    let mut input = Input::new(data);
    let Some(generated) = generate(app, &mut input) else {
        return;
    };
    let answer = app.call(generated.request);
    let shown = &generated.shown;
    if generated.mcp_path && generated.post && answer.status == 200 {
        let body = answer.json().unwrap_or_else(|| {
            panic!(
                "a 200 from the MCP endpoint is not JSON ({}): {}\nrequest: {shown}",
                answer.content_type,
                answer.text()
            )
        });
        assert!(
            answer.content_type.starts_with("application/json"),
            "a JSON answer is labelled {}",
            answer.content_type
        );
        assert!(
            body.is_object() || body.is_array(),
            "not a JSON-RPC answer: {body}"
        );
    }
    if !answer.body.is_empty() && answer.content_type.starts_with("application/json") {
        assert!(
            answer.json().is_some(),
            "an answer labelled JSON is not JSON: {}",
            answer.text()
        );
    }
    match generated.clean {
        Some(Value::Null) => assert_eq!(
            answer.status,
            202,
            "a notification answered {}\nrequest: {shown}",
            answer.text()
        ),
        // A well-formed request gets a JSON-RPC answer with its id: a result or an error (an
        // error may come with a 4xx status, e.g. a protocol version the method needs metadata for).
        Some(id) => {
            let body = answer.json().unwrap_or_else(|| {
                panic!(
                    "a well-formed request answered {} {}\nrequest: {shown}",
                    answer.status,
                    answer.text()
                )
            });
            assert_eq!(body["jsonrpc"], "2.0", "{body}\nrequest: {shown}");
            assert_eq!(
                body["id"], id,
                "the answer carries another id: {body}\nrequest: {shown}"
            );
            assert!(
                body.get("result").is_some() != body.get("error").is_some(),
                "a JSON-RPC answer has a result or an error: {body}\nrequest: {shown}"
            );
            assert!(
                answer.status == 200 || (answer.status < 500 && body.get("error").is_some()),
                "a well-formed request answered {} {body}\nrequest: {shown}",
                answer.status
            );
        }
        None => {}
    }
}

fn generate(app: &App, input: &mut Input) -> Option<Generated> {
    let mut clean = true;
    let method = if input.one_in(8) {
        clean = false;
        input.pick(&[
            "GET", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD", "TRACE", "CONNECT",
        ])
    } else {
        "POST"
    };
    let path = match input.below(16) {
        15 => {
            clean = false;
            input
                .pick(&[
                    "/health",
                    "/.well-known/oauth-protected-resource",
                    "/.well-known/oauth-protected-resource/mcp",
                    "/mcp/",
                    "/MCP",
                    "/mcp?x=1",
                    "//mcp",
                    "/mcp/../mcp",
                    "/nope",
                ])
                .to_string()
        }
        14 => {
            clean = false;
            format!("/{}", input.string(24))
        }
        12 | 13 => "/".to_string(),
        _ => "/mcp".to_string(),
    };
    let mcp_path = path == "/" || path == "/mcp";
    let mut builder = http::Request::builder().method(method).uri(path.as_str());

    let mut headers: Vec<(&str, String)> = Vec::new();
    if input.one_in(16) {
        clean = false;
    } else {
        let hosts = ["localhost", "mcp.example.com:443"];
        let host = input.word(&hosts, 32);
        clean &= hosts.contains(&host.as_str());
        headers.push(("host", host));
    }
    match input.below(12) {
        11 => clean = false,
        10 => {
            clean = false;
            headers.push((
                "content-type",
                input.word(&["text/plain", "application/x-www-form-urlencoded", ""], 2),
            ));
        }
        9 => headers.push((
            "content-type",
            "application/json; charset=utf-8".to_string(),
        )),
        _ => headers.push(("content-type", "application/json".to_string())),
    }
    match input.below(12) {
        11 => clean = false,
        10 => {
            clean = false;
            headers.push((
                "accept",
                input.word(&["text/html", "text/event-stream", "application/xml"], 2),
            ));
        }
        9 => headers.push(("accept", "*/*".to_string())),
        8 => headers.push(("accept", "application/json".to_string())),
        _ => headers.push(("accept", "application/json, text/event-stream".to_string())),
    }
    match input.below(10) {
        9 => {}
        8 => {
            clean = false;
            headers.push(("mcp-protocol-version", input.string(16)));
        }
        _ => headers.push(("mcp-protocol-version", input.pick(PROTOCOL_VERSIONS).into())),
    }
    // Headers a client, a browser or an attacker might add.
    for _ in 0..input.below(8).saturating_sub(4) {
        clean = false;
        let name = input.pick(&[
            "origin",
            "host",
            "authorization",
            "mcp-session-id",
            "x-dynatrace-token",
            "content-length",
            "content-encoding",
            "transfer-encoding",
            "last-event-id",
            "x-forwarded-for",
            "x-request-id",
            "cookie",
        ]);
        let value = match input.below(4) {
            0 => format!("Bearer {}", input.string(40)),
            1 => input.word(
                &[
                    "http://localhost:3000",
                    "https://evil.example",
                    "null",
                    "localhost",
                    "99999999999999999999",
                    "gzip",
                    "chunked",
                    "0",
                ],
                2,
            ),
            _ => input.string(40),
        };
        headers.push((name, value));
    }
    for (name, value) in &headers {
        // Values a client could not send are skipped, not fuzzed: http refuses to build them.
        if let Ok(value) = http::HeaderValue::from_str(value) {
            builder = builder.header(*name, value);
        }
    }

    let (body, id) = match input.below(10) {
        // Raw bytes.
        9 => {
            clean = false;
            (input.rest().to_vec(), None)
        }
        // A batch (JSON-RPC 2.0 allows it; MCP 2025-06-18 removed it).
        8 => {
            clean = false;
            let n = input.below(4);
            let batch: Vec<Value> = (0..n).map(|_| message(app, input).0).collect();
            (serde_json::to_vec(&batch).unwrap(), None)
        }
        // A message with some bytes changed.
        7 => {
            clean = false;
            let mut bytes = serde_json::to_vec(&message(app, input).0).unwrap();
            for _ in 0..1 + input.below(4) {
                if bytes.is_empty() {
                    break;
                }
                let at = input.below(bytes.len());
                bytes[at] = input.byte();
            }
            (bytes, None)
        }
        // A message that repeats a large argument: nothing of it may come back in full.
        6 if input.one_in(4) => {
            clean = false;
            let big = input.string(8).repeat(20_000 + input.below(40_000));
            let message = json!({
                "jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": input.pick(&["verify_dql", "execute_dql", "find_entity_by_name", "send_email"]),
                           "arguments": {"dqlStatement": big.clone(), "entityNames": [big.clone()], "subject": big}}
            });
            (serde_json::to_vec(&message).unwrap(), None)
        }
        _ => {
            let (message, well_formed) = message(app, input);
            clean &= well_formed;
            let id = message.get("id").cloned().unwrap_or(Value::Null);
            (serde_json::to_vec(&message).unwrap(), Some(id))
        }
    };
    let shown = format!(
        "{method} {path} {headers:?} {}",
        String::from_utf8_lossy(&body[..body.len().min(600)])
    );
    let request = builder.body(Body::from(body)).ok()?;
    let post = method == "POST";
    let clean = if clean && mcp_path { id } else { None };
    Some(Generated {
        request,
        mcp_path,
        post,
        clean,
        shown,
    })
}

/// A JSON-RPC message for a known method, and whether it is well-formed (`jsonrpc: "2.0"`, a
/// usable id or none for a notification). Parameters may be anything: a wrong argument is a tool
/// error or a JSON-RPC error, both well-formed answers.
fn message(app: &App, input: &mut Input) -> (Value, bool) {
    let mut well_formed = true;
    let method = input.word(METHODS, 16);
    if !METHODS.contains(&method.as_str()) {
        // An unknown method is answered with -32601, still a JSON-RPC answer.
    }
    let notification = method.starts_with("notifications/");
    let params = match method.as_str() {
        "tools/call" => tool_call(app, input),
        "prompts/get" => {
            let (name, arguments) = if app.prompts.is_empty() || input.one_in(8) {
                (input.string(16), Vec::new())
            } else {
                app.prompts[input.below(app.prompts.len())].clone()
            };
            let mut args = Map::new();
            for argument in arguments {
                if !input.one_in(4) {
                    let value = if input.one_in(8) {
                        input.json(1)
                    } else {
                        Value::String(input.string(40))
                    };
                    args.insert(argument, value);
                }
            }
            json!({"name": name, "arguments": args})
        }
        "resources/read" => {
            let uri = if app.resources.is_empty() || input.one_in(4) {
                format!(
                    "{}{}",
                    input.word(&["dynatrace://", "file:///", "http://", ""], 4),
                    input.string(32)
                )
            } else {
                let known = app.resources[input.below(app.resources.len())].clone();
                if input.one_in(4) {
                    format!("{known}{}", input.string(8))
                } else {
                    known
                }
            };
            json!({"uri": uri})
        }
        "initialize" => json!({
            "protocolVersion": input.word(PROTOCOL_VERSIONS, 4),
            "capabilities": input.json(2),
            "clientInfo": {"name": input.string(16), "version": input.string(8)},
        }),
        "logging/setLevel" => {
            json!({"level": input.word(&["debug", "info", "warning", "error"], 4)})
        }
        "notifications/cancelled" => {
            json!({"requestId": input.json(0), "reason": input.string(16)})
        }
        _ => {
            if input.one_in(4) {
                input.json(2)
            } else {
                json!({})
            }
        }
    };
    let mut message = Map::new();
    if input.one_in(16) {
        well_formed = false;
        message.insert("jsonrpc".into(), input.json(0));
    } else {
        message.insert("jsonrpc".into(), json!("2.0"));
    }
    if !notification || input.one_in(16) {
        let id = match input.below(8) {
            6 => json!(input.string(16)),
            7 => {
                well_formed = false;
                input.json(1)
            }
            _ => json!(input.u32()),
        };
        if !(id.is_string() || id.is_u64()) {
            well_formed = false;
        }
        message.insert("id".into(), id);
    }
    message.insert("method".into(), json!(method));
    if !params.is_object() {
        well_formed = false;
    }
    message.insert("params".into(), params);
    if input.one_in(16) {
        well_formed = false;
        message.insert(input.string(8), input.json(1));
    }
    // An unknown method with an id is still answered; an unknown notification gets 202.
    (Value::Object(message), well_formed)
}

/// `tools/call` of a real tool (or now and then another name), with arguments of the tool's own
/// names and mostly of the types its schema asks for.
fn tool_call(app: &App, input: &mut Input) -> Value {
    let (name, properties) = if input.one_in(16) {
        (input.string(24), Vec::new())
    } else {
        app.tools[input.below(app.tools.len())].clone()
    };
    let mut arguments = Map::new();
    for (property, kind) in properties {
        if input.bool() {
            continue;
        }
        arguments.insert(property.clone(), argument(input, &property, &kind));
    }
    if input.one_in(16) {
        arguments.insert(input.string(12), input.json(1));
    }
    let arguments = if input.one_in(32) {
        input.json(1)
    } else {
        Value::Object(arguments)
    };
    json!({"name": name, "arguments": arguments})
}

fn argument(input: &mut Input, property: &str, kind: &str) -> Value {
    if input.one_in(8) {
        return input.json(2);
    }
    match kind {
        "integer" | "number" => input.number(),
        "boolean" => Value::Bool(input.bool()),
        "array" => {
            let n = input.below(4);
            Value::Array(
                (0..n)
                    .map(|_| Value::String(text(input, property)))
                    .collect(),
            )
        }
        "object" => input.json(2),
        _ => Value::String(text(input, property)),
    }
}

/// A string argument: for the arguments with a syntax of their own, mostly near-valid values.
fn text(input: &mut Input, property: &str) -> String {
    let known: &[&str] = match property {
        "dqlStatement" | "dql" => &[
            "fetch logs | limit 3",
            "fetch logs | filter contains(content, \"error\") | summarize count()",
            "fetch events | sort timestamp desc | limit 1",
            "timeseries avg(dt.host.cpu.usage)",
            "fetch dt.entity.host",
            "data record(a = 1)",
            "smartscapeNodes \"*\"",
        ],
        "timeframe" => &["24h", "7d", "30m", "0h", "100001d", "1y"],
        "continueFrom" => &["2026-11-25T10:15:00.123Z", "1764000000000000000"],
        "additionalFilter" => &["event.category == \"ERROR\"", "true"],
        "outputFormat" => &["json", "table", "csv", "text"],
        "status" => &["ACTIVE", "CLOSED", "ALL"],
        "toRecipients" | "ccRecipients" | "bccRecipients" => &["ops@example.com"],
        "timeframeStart" | "timeframeEnd" | "startTime" | "endTime" => {
            &["now-1h", "2026-11-25T10:00:00Z", "now"]
        }
        _ => &[],
    };
    if known.is_empty() || input.one_in(3) {
        let mut s = input.string(64);
        if !known.is_empty() && input.bool() {
            s = format!("{}{s}", input.pick(known));
        }
        s
    } else {
        input.pick(known).to_string()
    }
}
