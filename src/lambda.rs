//! The Lambda front door: `lambda_http` converts API Gateway (REST v1 and HTTP API v2), ALB and
//! Function URL events into HTTP requests for the same Router the container serves.
//!
//! Adjustments before routing:
//! - a REST API (or a named HTTP API stage) puts the stage in the path (`/Prod/mcp`); it is
//!   removed so the routes match wherever the API is mounted;
//! - the request gets a deadline: the invocation's remaining time minus a margin, so the answer
//!   leaves before Lambda (and API Gateway's 29–30 s integration timeout) cut it off;
//! - the invocation's request id becomes the request's id (audit lines, `x-request-id`);
//! - what API Gateway's authorizer verified (an HTTP API JWT authorizer's claims and scopes, a
//!   REST API Cognito authorizer's claims) is attached as [`GatewayClaims`]. It comes from the
//!   event's `requestContext`, which only API Gateway writes: no HTTP header can forge it. The
//!   server uses it only with `MCP_TRUST_GATEWAY_AUTHORIZER=1`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use tower::ServiceExt;

use crate::deadline::{Deadline, RequestDeadline};
use crate::identity::audit::RequestId;
use crate::identity::authenticator::GatewayClaims;

/// Kept back from the invocation deadline for serialising and returning the answer.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(1500);

/// The error type an init failure is reported with: a bad or missing setting, or a secret that
/// could not be read, is the function's configuration.
pub const INIT_ERROR_TYPE: &str = "Runtime.ConfigurationError";

/// Tells the Lambda Runtime API why the function could not start (`/runtime/init/error`), so the
/// invocation fails with that reason instead of a bare `Runtime.ExitError`. Best effort: the
/// process exits after it either way. The message is a configuration line, which never holds a
/// secret value.
pub async fn report_init_error(message: &str) {
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        return;
    };
    let body = serde_json::json!({
        "errorMessage": message,
        "errorType": INIT_ERROR_TYPE,
        "stackTrace": [],
    });
    crate::crypto::install();
    let sent = reqwest::Client::new()
        .post(format!("http://{api}/2018-06-01/runtime/init/error"))
        .header("Lambda-Runtime-Function-Error-Type", INIT_ERROR_TYPE)
        .json(&body)
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    if let Err(e) = sent {
        tracing::warn!(error = %e, "could not report the init error to the Lambda Runtime API");
    }
}

/// The error type of an invocation whose event is not an HTTP request (an S3 notification, a
/// test event from the console): short and stable, where the runtime would report a Rust type
/// name.
pub const INVALID_EVENT_ERROR_TYPE: &str = "InvalidEvent";

/// Runs the Router as a Lambda function until the runtime stops it.
pub async fn run(router: Router) -> Result<(), lambda_http::Error> {
    use lambda_http::lambda_runtime::{self, Diagnostic, LambdaEvent};
    use lambda_http::request::LambdaRequest;
    use tower::Service;

    let service = tower::service_fn(move |request: Request| {
        let router = router.clone();
        async move {
            if request
                .headers()
                .get(http::header::HOST)
                .map(|h| h.as_bytes())
                == Some(INVALID_HOST.as_bytes())
            {
                return Ok(invalid_host());
            }
            router.oneshot(prepare(request)).await
        }
    });
    let adapter = lambda_http::Adapter::from(service);
    let handler = lambda_runtime::service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let mut adapter = adapter.clone();
        async move {
            let LambdaEvent {
                mut payload,
                context,
            } = event;
            replace_invalid_host(&mut payload);
            let deadline_ms = context.deadline;
            let request =
                serde_json::from_value::<LambdaRequest>(payload).map_err(|_| invalid_event())?;
            // lambda_http converts the event inside `call` and panics on some malformed ones (a
            // query or header it cannot put in a URI); that invocation fails with a stable error
            // type instead of a Rust panic message.
            let call = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                adapter.call(LambdaEvent::new(request, context))
            }))
            .map_err(|_| invalid_request())?;
            let response = call
                .await
                .map_err(|never: std::convert::Infallible| -> Diagnostic { match never {} });
            // The instance may freeze once the invocation answers: its spans leave first, within
            // the time the invocation has left.
            let left =
                remaining_time(deadline_ms, now_ms()).saturating_sub(Duration::from_millis(300));
            crate::telemetry::flush(left.min(crate::telemetry::MAX_FLUSH_WAIT)).await;
            response
        }
    });
    lambda_runtime::run(handler).await
}

/// Stands in for a `Host` header that is no host name: lambda_http (1.3.2) panics building the
/// request's URI from one (`xn--a`, `a b`, `example.com:abc`; an ALB passes any Host on), and the
/// invocation would fail as a 502. The request is answered 400 instead.
const INVALID_HOST: &str = "invalid-host.dynatrace-mcp.invalid";

/// Replaces a `Host` header (single- or multi-value) that does not parse as a URL's host.
pub fn replace_invalid_host(event: &mut serde_json::Value) {
    let valid = |host: &str| url::Url::parse(&format!("https://{host}/")).is_ok();
    for map in ["headers", "multiValueHeaders"] {
        let Some(headers) = event.get_mut(map).and_then(|h| h.as_object_mut()) else {
            continue;
        };
        for (name, value) in headers.iter_mut() {
            if !name.eq_ignore_ascii_case("host") {
                continue;
            }
            match value {
                serde_json::Value::String(host) if !valid(host) => {
                    *host = INVALID_HOST.to_string();
                }
                serde_json::Value::Array(hosts) => {
                    for host in hosts.iter_mut() {
                        if host.as_str().is_some_and(|h| !valid(h)) {
                            *host = serde_json::Value::String(INVALID_HOST.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn invalid_host() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        http::StatusCode::BAD_REQUEST,
        axum::Json(serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {"code": -32600, "message": "Bad request: the Host header is not a valid host name"},
        })),
    )
        .into_response()
}

fn invalid_request() -> lambda_http::lambda_runtime::Diagnostic {
    lambda_http::lambda_runtime::Diagnostic {
        error_type: "InvalidRequest".to_string(),
        error_message: "the HTTP request in the event could not be converted: its path, query or \
            headers cannot form a request URI"
            .to_string(),
    }
}

fn invalid_event() -> lambda_http::lambda_runtime::Diagnostic {
    lambda_http::lambda_runtime::Diagnostic {
        error_type: INVALID_EVENT_ERROR_TYPE.to_string(),
        error_message: "this function answers HTTP events only: API Gateway (REST or HTTP API), \
            an Application Load Balancer or a Function URL; the event was none of them"
            .to_string(),
    }
}

/// Strips the stage prefix and attaches the deadline. Public for the tests, which feed recorded
/// events through the real `lambda_http` conversion and then this.
pub fn prepare(mut request: Request) -> Request {
    if let Some(stage) = stage_of(&request) {
        strip_stage(&mut request, &stage);
    }
    if let Some(context) = request.lambda_context_ref() {
        let remaining = remaining_time(context.deadline, now_ms());
        let deadline = Deadline::after(remaining.saturating_sub(DEADLINE_MARGIN));
        let id = RequestId {
            id: context.request_id.clone(),
            client: None,
        };
        request.extensions_mut().insert(RequestDeadline(deadline));
        request.extensions_mut().insert(id);
    }
    if let Some(claims) = gateway_claims(&request) {
        request.extensions_mut().insert(claims);
    }
    request
}

/// The identity API Gateway's authorizer verified: an HTTP API (v2) JWT authorizer's claims and
/// scopes, or a REST API (v1) Cognito user-pool authorizer's claims.
fn gateway_claims(request: &Request) -> Option<GatewayClaims> {
    let (claims, scopes): (HashMap<String, String>, Vec<String>) =
        match request.request_context_ref()? {
            RequestContext::ApiGatewayV2(ctx) => {
                let jwt = ctx.authorizer.as_ref()?.jwt.as_ref()?;
                (jwt.claims.clone(), jwt.scopes.clone().unwrap_or_default())
            }
            RequestContext::ApiGatewayV1(ctx) => {
                let object = ctx.authorizer.fields.get("claims")?.as_object()?;
                let claims = object
                    .iter()
                    .map(|(k, v)| match v {
                        serde_json::Value::String(s) => (k.clone(), s.clone()),
                        other => (k.clone(), other.to_string()),
                    })
                    .collect();
                (claims, Vec::new())
            }
            _ => return None,
        };
    let mut all_scopes = scopes;
    for key in ["scope", "scp", "roles", "cognito:groups"] {
        if let Some(value) = claims.get(key) {
            // HTTP APIs render array claims as `[a b]`.
            let value = value.trim_start_matches('[').trim_end_matches(']');
            all_scopes.extend(
                value
                    .split(|c: char| c.is_whitespace() || c == ',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
        }
    }
    let id_token = claims.get("token_use").is_some_and(|u| u == "id")
        || ["nonce", "at_hash", "c_hash"]
            .iter()
            .any(|k| claims.contains_key(*k));
    Some(GatewayClaims {
        id_token,
        subject: claims.get("sub").cloned(),
        name: [
            "username",
            "cognito:username",
            "preferred_username",
            "email",
        ]
        .iter()
        .find_map(|k| claims.get(*k).cloned()),
        client_id: ["client_id", "azp", "appid"]
            .iter()
            .find_map(|k| claims.get(*k).cloned()),
        issuer: claims.get("iss").cloned(),
        scopes: all_scopes,
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Time left in the invocation. Lambda's `Lambda-Runtime-Deadline-Ms` is an epoch time in
/// milliseconds; `cargo lambda watch` (1.9) sends a duration instead (600000). A value that cannot
/// be an epoch time in this century is read as a duration, so local development behaves like Lambda.
fn remaining_time(deadline_ms: u64, now_ms: u64) -> Duration {
    const YEAR_2001_MS: u64 = 978_307_200_000;
    if deadline_ms < YEAR_2001_MS {
        Duration::from_millis(deadline_ms)
    } else {
        Duration::from_millis(deadline_ms.saturating_sub(now_ms))
    }
}

fn stage_of(request: &Request) -> Option<String> {
    let stage = match request.request_context_ref()? {
        RequestContext::ApiGatewayV1(ctx) => ctx.stage.clone(),
        RequestContext::ApiGatewayV2(ctx) => ctx.stage.clone(),
        _ => None,
    }?;
    (!stage.is_empty() && stage != "$default").then_some(stage)
}

fn strip_stage(request: &mut Request, stage: &str) {
    let uri = request.uri();
    let path = uri.path();
    let prefix = format!("/{stage}");
    let stripped = if path == prefix {
        "/".to_string()
    } else if let Some(rest) = path.strip_prefix(&format!("{prefix}/")) {
        format!("/{rest}")
    } else {
        return;
    };
    let path_and_query = match uri.query() {
        Some(q) => format!("{stripped}?{q}"),
        None => stripped,
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(new_uri) = http::Uri::from_parts(parts) {
            *request.uri_mut() = new_uri;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_epoch_times_or_cargo_lambda_durations() {
        let now = 1_764_000_000_000;
        assert_eq!(remaining_time(now + 25_000, now), Duration::from_secs(25));
        assert_eq!(remaining_time(now - 5, now), Duration::ZERO);
        assert_eq!(remaining_time(600_000, now), Duration::from_secs(600));
    }
}
