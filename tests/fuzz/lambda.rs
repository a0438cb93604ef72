//! The Lambda event conversion: `lambda_http`'s `LambdaRequest` (API Gateway REST v1, HTTP API
//! v2, ALB, Function URL) into a request, `dynatrace_mcp::lambda::prepare` (stage stripping,
//! deadline, request id, authorizer claims), then the Router, as `lambda::run` does.
//!
//! Inputs: the recorded events of tests/fixtures/lambda with fields replaced, removed or
//! retyped; the same events with bytes changed; and arbitrary bytes as the event.
//! Properties: no panic anywhere; whatever converts is answered like any HTTP request
//! ([`App::call`]'s checks).

use std::sync::OnceLock;

use lambda_http::request::LambdaRequest;
use lambda_http::{Context, RequestExt};
use serde_json::{Map, Value};

use crate::app;
use crate::input::Input;

const FIXTURES: &[&str] = &[
    "alb",
    "apigw-v1-rest",
    "apigw-v2-http",
    "apigw-v2-http-jwt-authorizer",
    "function-url",
];

/// Keys worth replacing: what the conversion and `prepare` read.
const KEYS: &[&str] = &[
    "body",
    "isBase64Encoded",
    "headers",
    "multiValueHeaders",
    "queryStringParameters",
    "multiValueQueryStringParameters",
    "rawPath",
    "rawQueryString",
    "path",
    "httpMethod",
    "requestContext",
    "stage",
    "http",
    "method",
    "authorizer",
    "jwt",
    "claims",
    "scopes",
    "scope",
    "cognito:groups",
    "host",
    "content-type",
    "cookie",
    "cookies",
    "version",
    "routeKey",
    "elb",
    "domainName",
    "requestId",
    "pathParameters",
    "stageVariables",
];

fn fixtures() -> &'static Vec<Value> {
    static FIXTURE_VALUES: OnceLock<Vec<Value>> = OnceLock::new();
    FIXTURE_VALUES.get_or_init(|| {
        FIXTURES
            .iter()
            .map(|name| {
                let path = format!(
                    "{}/tests/fixtures/lambda/{name}.json",
                    env!("CARGO_MANIFEST_DIR")
                );
                serde_json::from_str(&std::fs::read_to_string(path).expect("fixture"))
                    .expect("fixture is JSON")
            })
            .collect()
    })
}

pub fn fuzz_one(data: &[u8]) {
    let mut input = Input::new(data);
    let event: Vec<u8> = match input.below(8) {
        0 => input.rest().to_vec(),
        1 => {
            let mut bytes = serde_json::to_vec(&fixtures()[input.below(FIXTURES.len())]).unwrap();
            for _ in 0..1 + input.below(8) {
                let at = input.below(bytes.len());
                bytes[at] = input.byte();
            }
            bytes
        }
        _ => {
            let mut event = fixtures()[input.below(FIXTURES.len())].clone();
            for _ in 0..1 + input.below(6) {
                mutate(&mut event, &mut input, 0);
            }
            serde_json::to_vec(&event).unwrap()
        }
    };
    // The runtime hands `lambda::run` a JSON value; what does not convert is an InvalidEvent.
    let Ok(mut payload) = serde_json::from_slice::<Value>(&event) else {
        return;
    };
    // What `lambda::run` does first: lambda_http 1.3.2 panics converting an event whose Host
    // header is not a URL host (`Url::parse(..).unwrap()`, lambda_http src/request.rs:553);
    // such a Host is replaced, and the request answered 400. Found by this target.
    dynatrace_mcp::lambda::replace_invalid_host(&mut payload);
    let Ok(request) = serde_json::from_value::<LambdaRequest>(payload) else {
        return;
    };
    // lambda_http also panics on a query or header it cannot put in a URI; `lambda::run` converts
    // under catch_unwind and fails that invocation as `InvalidRequest`, so it is skipped here.
    let Ok(mut request) = std::panic::catch_unwind(|| lambda_http::Request::from(request)) else {
        return;
    };
    if !input.one_in(4) {
        let mut context = Context::default();
        context.request_id = input.string(40);
        context.deadline = match input.below(4) {
            0 => input.u64(),
            1 => u64::from(input.u32()),
            _ => now_ms() + u64::from(input.u16()) * 10,
        };
        request = request.with_lambda_context(context);
    }
    let request = dynatrace_mcp::lambda::prepare(request);
    // Through the Router now and then (a tool call is slower than a conversion).
    if input.one_in(4) {
        app::app().call(request);
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Replaces, removes, retypes or adds one field somewhere in `value`.
fn mutate(value: &mut Value, input: &mut Input, depth: usize) {
    match value {
        Value::Object(map) if !map.is_empty() && depth < 6 => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = keys[input.below(keys.len())].clone();
            match input.below(8) {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    let new_key = input.word(KEYS, 4);
                    map.insert(new_key, replacement(input));
                }
                2 => {
                    map.insert(key, replacement(input));
                }
                _ => mutate(map.get_mut(&key).unwrap(), input, depth + 1),
            }
        }
        Value::Array(items) if !items.is_empty() && depth < 6 => {
            let at = input.below(items.len());
            mutate(&mut items[at], input, depth + 1);
        }
        Value::String(s) => {
            *s = match input.below(4) {
                0 => input.string(64),
                1 => format!("{s}{}", input.string(16)),
                2 => s.replace('/', &input.string(4)),
                _ => {
                    let cut = input.below(s.len() + 1);
                    let mut t: String = s.chars().take(cut).collect();
                    t.push_str(&input.string(8));
                    t
                }
            }
        }
        _ => *value = replacement(input),
    }
}

fn replacement(input: &mut Input) -> Value {
    match input.below(6) {
        0 => Value::Object(Map::new()),
        1 => {
            let mut map = Map::new();
            for _ in 0..input.below(4) {
                map.insert(input.word(KEYS, 2), Value::String(input.string(24)));
            }
            Value::Object(map)
        }
        _ => input.json(2),
    }
}

/// Found by `lambda_event`: lambda_http 1.3.2 panics converting an event whose Host header does
/// not parse as a URL host (`Url::parse(..).unwrap()` in its `build_request_uri`), e.g.
/// `Host: xn--a` (bad punycode), `Host: example.com:abc` or `Host: #`. An ALB passes any Host, so a
/// client could make an invocation fail (a 502 from the load balancer); `lambda::run` now replaces
/// such a Host first and answers 400 (`tests/it/lambda.rs`). This test pins the upstream
/// behaviour: when it fails, lambda_http no longer panics and `replace_invalid_host` may go.
#[test]
fn known_bug_lambda_http_panics_on_a_host_that_is_not_a_url_host() {
    for (fixture, host) in [(0, "xn--a"), (2, "example.com:abc"), (4, "#")] {
        let mut event = fixtures()[fixture].clone();
        event["headers"]["host"] = Value::String(host.to_string());
        let text = event.to_string();
        let converted = std::panic::catch_unwind(|| lambda_http::request::from_str(&text));
        assert!(
            converted.is_err(),
            "lambda_http converts {} with Host {host:?} now: lambda::replace_invalid_host may go",
            FIXTURES[fixture]
        );
    }
}
