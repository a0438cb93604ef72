//! A simulated Dynatrace tenant: an HTTP server on loopback that answers the real routes with the
//! real shapes and status codes (taken from Dynatrace's typed clients, `@dynatrace-sdk/*`), and
//! enforces the real auth rules (Bearer tokens, OAuth scopes, token expiry).
//!
//! It serves `dynatrace-mcp demo`, the integration tests and the benchmark. Tests drive it through
//! [`Sandbox`]: it records every request it received (so a test can assert on the DQL a tool
//! sent), counts unexpected calls, and can inject latency, 429 with `Retry-After`, 5xx, token
//! expiry and slow queries (202 then N polls, or a wall-clock duration).
//!
//! Routes: `POST /sso/oauth2/token`, `GET /platform/management/v1/environment`, and the Grail
//! query API `POST query:execute`, `GET query:poll`, `POST query:cancel`, `POST query:verify`.

pub mod data;
pub mod dql;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::Source as SettingsSource;

/// The demo OAuth client the sandbox accepts.
pub const DEMO_CLIENT_ID: &str = "dt0s02.SANDBOX";
pub const DEMO_CLIENT_SECRET: &str = "dt0s02.SANDBOX.demo-client-secret-not-a-real-one";
pub const DEMO_ACCOUNT_URN: &str = "urn:dtaccount:00000000-0000-4000-8000-000000000001";
/// A platform token the sandbox accepts, with every scope.
pub const DEMO_PLATFORM_TOKEN: &str = "dt0s16.SANDBOX.platform-token-not-a-real-one";

/// Every scope the sandbox knows; the demo client and token have all of them.
pub const ALL_SCOPES: &[&str] = &[
    "platform-management:environments:read",
    "app-engine:apps:run",
    "storage:buckets:read",
    "storage:logs:read",
    "storage:events:read",
    "storage:metrics:read",
    "storage:spans:read",
    "storage:bizevents:read",
    "storage:entities:read",
    "storage:smartscape:read",
    "storage:system:read",
    "storage:security.events:read",
    "storage:user.events:read",
    "storage:user.sessions:read",
];

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// 0 picks a free port.
    pub port: u16,
    pub environment_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub account_urn: String,
    /// Scopes the OAuth client may be granted.
    pub client_scopes: Vec<String>,
    /// Platform tokens and their scopes.
    pub platform_tokens: Vec<(String, Vec<String>)>,
    /// `expires_in` of issued OAuth tokens.
    pub token_lifetime: Duration,
    /// How many records `fetch logs` holds.
    pub log_records: usize,
    /// Record requests for later inspection (off in the benchmark).
    pub record_requests: bool,
}

impl SandboxConfig {
    pub fn demo() -> Self {
        let all: Vec<String> = ALL_SCOPES.iter().map(|s| s.to_string()).collect();
        Self {
            port: 0,
            environment_id: "sandbox1".to_string(),
            client_id: DEMO_CLIENT_ID.to_string(),
            client_secret: DEMO_CLIENT_SECRET.to_string(),
            account_urn: DEMO_ACCOUNT_URN.to_string(),
            client_scopes: all.clone(),
            platform_tokens: vec![(DEMO_PLATFORM_TOKEN.to_string(), all)],
            token_lifetime: Duration::from_secs(300),
            log_records: 20_000,
            record_requests: true,
        }
    }
}

/// One request the sandbox received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: String,
    /// The bearer token presented, if any.
    pub bearer: Option<String>,
    pub client_context: Option<String>,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// A form field of an SSO request.
    pub fn form(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}

/// Which route a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Token,
    Environment,
    QueryExecute,
    QueryPoll,
    QueryCancel,
    QueryVerify,
    Any,
}

/// An injected failure: the next `times` requests to `route` get `status` (with `Retry-After`).
#[derive(Debug, Clone)]
pub struct Fault {
    pub route: Route,
    pub status: u16,
    pub retry_after: Option<String>,
    pub times: usize,
}

/// How long queries take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryTiming {
    /// `query:execute` answers 200 with the result.
    Immediate,
    /// `query:execute` answers 202; the result comes on the Nth poll.
    Polls(u32),
    /// The query runs this long in wall-clock time; execute and poll long-poll as Grail does.
    Duration(Duration),
}

struct IssuedToken {
    expires_at: Instant,
    scopes: Vec<String>,
}

struct RunningQuery {
    result: Value,
    polls_left: u32,
    finish_at: Instant,
}

struct Inner {
    config: SandboxConfig,
    /// The tenant's "now" when it started, in nanoseconds (sample data is relative to it).
    data_now: i128,
    started_wall: i128,
    started: Instant,
    tokens: Mutex<HashMap<String, IssuedToken>>,
    queries: Mutex<HashMap<String, RunningQuery>>,
    recorded: Mutex<Vec<Recorded>>,
    unexpected: Mutex<Vec<String>>,
    faults: Mutex<Vec<Fault>>,
    latency: Mutex<Duration>,
    timing: Mutex<QueryTiming>,
    cancelled: Mutex<Vec<String>>,
    counter: AtomicU64,
}

/// A running simulated tenant. Dropping it stops the server.
pub struct Sandbox {
    addr: SocketAddr,
    inner: Arc<Inner>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Sandbox {
    /// Starts the tenant on `127.0.0.1:<config.port>`.
    pub async fn start(config: SandboxConfig) -> anyhow::Result<Sandbox> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await?;
        let addr = listener.local_addr()?;
        let now = wall_nanos();
        let inner = Arc::new(Inner {
            config,
            data_now: now - now % 1_000_000_000,
            started_wall: now,
            started: Instant::now(),
            tokens: Mutex::default(),
            queries: Mutex::default(),
            recorded: Mutex::default(),
            unexpected: Mutex::default(),
            faults: Mutex::default(),
            latency: Mutex::new(Duration::ZERO),
            timing: Mutex::new(QueryTiming::Immediate),
            cancelled: Mutex::default(),
            counter: AtomicU64::new(1),
        });
        let router = router(inner.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Sandbox {
            addr,
            inner,
            _stop: stop,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn sso_url(&self) -> String {
        format!("http://{}/sso/oauth2/token", self.addr)
    }

    /// Settings that point this server at the sandbox with the demo OAuth client.
    pub fn settings_pairs(&self) -> Vec<(String, String)> {
        vec![
            ("DT_ENVIRONMENT".into(), self.url()),
            ("DT_SSO_URL".into(), self.sso_url()),
            (
                "OAUTH_CLIENT_ID".into(),
                self.inner.config.client_id.clone(),
            ),
            (
                "OAUTH_CLIENT_SECRET".into(),
                self.inner.config.client_secret.clone(),
            ),
            (
                "DT_ACCOUNT_URN".into(),
                self.inner.config.account_urn.clone(),
            ),
        ]
    }

    pub fn settings_source(&self) -> SettingsSource {
        SettingsSource::from_pairs(self.settings_pairs())
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.recorded.lock().unwrap().clone()
    }

    /// Requests whose path ends with `suffix` (e.g. `query:execute`).
    pub fn requests_to(&self, suffix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with(suffix))
            .collect()
    }

    pub fn clear_requests(&self) {
        self.inner.recorded.lock().unwrap().clear();
    }

    /// Requests to routes the real API does not have.
    pub fn unexpected(&self) -> Vec<String> {
        self.inner.unexpected.lock().unwrap().clone()
    }

    /// Request tokens of queries cancelled through `query:cancel`.
    pub fn cancelled_queries(&self) -> Vec<String> {
        self.inner.cancelled.lock().unwrap().clone()
    }

    pub fn inject(&self, fault: Fault) {
        self.inner.faults.lock().unwrap().push(fault);
    }

    pub fn set_latency(&self, latency: Duration) {
        *self.inner.latency.lock().unwrap() = latency;
    }

    pub fn set_query_timing(&self, timing: QueryTiming) {
        *self.inner.timing.lock().unwrap() = timing;
    }

    /// Revokes every OAuth token issued so far: their next use gets 401.
    pub fn expire_tokens(&self) {
        self.inner.tokens.lock().unwrap().clear();
    }
}

fn wall_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

const QUERY: &str = "/platform/storage/query/v1";

fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/sso/oauth2/token", post(token))
        .route("/platform/management/v1/environment", get(environment))
        .route(&format!("{QUERY}/query:execute"), post(query_execute))
        .route(&format!("{QUERY}/query:poll"), get(query_poll))
        .route(&format!("{QUERY}/query:cancel"), post(query_cancel))
        .route(&format!("{QUERY}/query:verify"), post(query_verify))
        .fallback(unexpected)
        .with_state(inner)
}

impl Inner {
    fn record(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) {
        if !self.config.record_requests {
            return;
        }
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        self.recorded.lock().unwrap().push(Recorded {
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().unwrap_or_default().to_string(),
            body: String::from_utf8_lossy(body).into_owned(),
            bearer,
            client_context: headers
                .get("dt-client-context")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        });
    }

    /// Latency, then an injected fault if one is pending for `route`.
    async fn before(&self, route: Route) -> Option<Response> {
        let latency = *self.latency.lock().unwrap();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let mut faults = self.faults.lock().unwrap();
        let index = faults
            .iter()
            .position(|f| f.times > 0 && (f.route == route || f.route == Route::Any))?;
        let fault = &mut faults[index];
        fault.times -= 1;
        let status =
            StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = match fault.status {
            429 => "Too many requests.",
            503 => "Service is unavailable.",
            500 => "An internal server error has occurred.",
            _ => "Injected failure.",
        };
        let mut response = envelope(status, message, None);
        if let Some(retry_after) = &fault.retry_after
            && let Ok(value) = HeaderValue::from_str(retry_after)
        {
            response.headers_mut().insert("retry-after", value);
        }
        if fault.times == 0 {
            faults.remove(index);
        }
        Some(response)
    }

    fn next_id(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// Checks the bearer token and its scopes as the platform's API gateway does.
    fn authorize(&self, headers: &HeaderMap, required: &[&str]) -> Result<(), Box<Response>> {
        let header = headers.get("authorization").and_then(|v| v.to_str().ok());
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return Err(deny(envelope(
                StatusCode::UNAUTHORIZED,
                "Unsupported authorization scheme. Dynatrace platform APIs require the authorization scheme 'Bearer'",
                None,
            )));
        };
        let scopes: Vec<String> = if let Some((_, scopes)) =
            self.config.platform_tokens.iter().find(|(t, _)| t == token)
        {
            scopes.clone()
        } else {
            let tokens = self.tokens.lock().unwrap();
            match tokens.get(token) {
                Some(issued) if issued.expires_at > Instant::now() => issued.scopes.clone(),
                Some(_) => {
                    return Err(deny(envelope(
                        StatusCode::UNAUTHORIZED,
                        "Authentication failed: the token has expired",
                        None,
                    )));
                }
                None => {
                    return Err(deny(envelope(
                        StatusCode::UNAUTHORIZED,
                        "Authentication failed",
                        None,
                    )));
                }
            }
        };
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|r| !scopes.iter().any(|s| s == r))
            .collect();
        if !missing.is_empty() {
            return Err(deny(envelope(
                StatusCode::FORBIDDEN,
                "The authorization token does not provide the necessary permissions.",
                Some(json!({ "missingScopes": missing })),
            )));
        }
        Ok(())
    }
}

fn envelope(status: StatusCode, message: &str, details: Option<Value>) -> Response {
    let mut error = json!({ "code": status.as_u16(), "message": message });
    if let Some(details) = details {
        error["details"] = details;
    }
    (status, axum::Json(json!({ "error": error }))).into_response()
}

/// A refusal by the API gateway, boxed for `Result`.
fn deny(response: Response) -> Box<Response> {
    Box::new(gateway(response))
}

/// Marks a response as answered by the API gateway (auth, scopes), as the platform does.
fn gateway(mut response: Response) -> Response {
    response.headers_mut().insert(
        "dynatrace-response-source",
        HeaderValue::from_static("API Gateway"),
    );
    response
}

async fn unexpected(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.record(&method, &uri, &headers, &body);
    inner
        .unexpected
        .lock()
        .unwrap()
        .push(format!("{method} {}", uri.path()));
    envelope(
        StatusCode::NOT_FOUND,
        "Not found: this route does not exist in the simulated tenant",
        None,
    )
}

async fn token(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.record(&method, &uri, &headers, &body);
    if let Some(fault) = inner.before(Route::Token).await {
        return fault;
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let sso_error = |error: &str, description: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "errorCode": 400,
                "message": "Bad Request",
                "issueId": format!("sandbox-{}", inner.next_id()),
                "error": error,
                "error_description": description,
            })),
        )
            .into_response()
    };
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return sso_error("unsupported_grant_type", "");
    }
    let config = &inner.config;
    if form.get("client_id") != Some(&config.client_id)
        || form.get("client_secret") != Some(&config.client_secret)
    {
        return sso_error("invalid_client", "");
    }
    if form.get("resource") != Some(&config.account_urn) {
        return sso_error(
            "invalid_request",
            "The resource parameter must name the account (urn:dtaccount:...)",
        );
    }
    let requested: Vec<String> = form
        .get("scope")
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_else(|| config.client_scopes.clone());
    if let Some(unknown) = requested.iter().find(|s| !config.client_scopes.contains(s)) {
        return sso_error(
            "invalid_scope",
            &format!("scope {unknown} is not granted to this client"),
        );
    }
    let access_token = format!("sandbox.{}.{:016x}", inner.next_id(), wall_nanos() as u64);
    inner.tokens.lock().unwrap().insert(
        access_token.clone(),
        IssuedToken {
            expires_at: Instant::now() + config.token_lifetime,
            scopes: requested.clone(),
        },
    );
    axum::Json(json!({
        "token_type": "Bearer",
        "resource": config.account_urn,
        "access_token": access_token,
        "expires_in": config.token_lifetime.as_secs(),
        "scope": requested.join(" "),
    }))
    .into_response()
}

async fn environment(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    inner.record(&method, &uri, &headers, &[]);
    if let Some(fault) = inner.before(Route::Environment).await {
        return fault;
    }
    if let Err(response) = inner.authorize(&headers, &["platform-management:environments:read"]) {
        return *response;
    }
    axum::Json(json!({
        "environmentId": inner.config.environment_id,
        "createTime": "2024-03-14T09:31:07.123Z",
        "type": "CUSTOMER",
        "state": "ACTIVE",
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecuteBody {
    query: Option<String>,
    max_result_records: Option<i64>,
    max_result_bytes: Option<i64>,
    request_timeout_milliseconds: Option<u64>,
}

/// The table scope a data object needs.
fn table_scope(source: &str) -> &'static str {
    match source {
        "logs" => "storage:logs:read",
        "spans" => "storage:spans:read",
        s if s.starts_with("dt.entity.") => "storage:entities:read",
        _ => "storage:events:read",
    }
}

async fn query_execute(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.record(&method, &uri, &headers, &body);
    if let Some(fault) = inner.before(Route::QueryExecute).await {
        return fault;
    }
    if let Err(response) = inner.authorize(&headers, &["storage:buckets:read"]) {
        return *response;
    }
    let Ok(request) = serde_json::from_slice::<ExecuteBody>(&body) else {
        return envelope(
            StatusCode::BAD_REQUEST,
            "The supplied request is wrong: the body is not a valid ExecuteRequest.",
            None,
        );
    };
    let Some(query) = request.query.filter(|q| !q.trim().is_empty()) else {
        return envelope(
            StatusCode::BAD_REQUEST,
            "The supplied request is wrong.",
            Some(
                json!({"constraintViolations": [{"message": "must not be blank", "parameterLocation": "PAYLOAD_BODY", "path": "query"}]}),
            ),
        );
    };
    let parsed = match dql::parse(&query) {
        Ok(parsed) => parsed,
        Err(e) => return (StatusCode::BAD_REQUEST, axum::Json(e.envelope(&query))).into_response(),
    };
    let source = match parsed.source() {
        Some(name) => match data::source(name, inner.data_now, inner.config.log_records) {
            Some(source) => {
                if let Err(response) =
                    inner.authorize(&headers, &["storage:buckets:read", table_scope(name)])
                {
                    return *response;
                }
                Some(source)
            }
            None => {
                let e = dql::DqlError {
                    error_type: "DATA_OBJECT_NOT_FOUND",
                    message: format!(
                        "The data object `{name}` doesn't exist in this environment (it has: {}).",
                        data::SOURCES.join(", ")
                    ),
                    start: dql::Pos {
                        index: 6,
                        line: 1,
                        column: 7,
                    },
                    end: dql::Pos {
                        index: 6 + name.len() - 1,
                        line: 1,
                        column: 6 + name.len(),
                    },
                };
                return (StatusCode::BAD_REQUEST, axum::Json(e.envelope(&query))).into_response();
            }
        },
        None => None,
    };
    let max_records = request
        .max_result_records
        .filter(|n| *n >= 0)
        .unwrap_or(1000) as usize;
    let now = inner.started_wall + inner.started.elapsed().as_nanos() as i128;
    let output = match dql::run(
        &parsed,
        source.as_ref().map(|s| s as &dyn dql::Source),
        now,
        usize::MAX,
    ) {
        Ok(output) => output,
        Err(e) => return (StatusCode::BAD_REQUEST, axum::Json(e.envelope(&query))).into_response(),
    };
    let result = build_result(&query, output, max_records, request.max_result_bytes);

    let timing = *inner.timing.lock().unwrap();
    let wait = Duration::from_millis(request.request_timeout_milliseconds.unwrap_or(0));
    let (polls_left, finish_at) = match timing {
        QueryTiming::Immediate => return finished(result),
        QueryTiming::Polls(n) => (n, Instant::now()),
        QueryTiming::Duration(d) => {
            let finish_at = Instant::now() + d;
            if d <= wait {
                tokio::time::sleep(d).await;
                return finished(result);
            }
            tokio::time::sleep(wait).await;
            (0, finish_at)
        }
    };
    let request_token = format!("sandbox-query-{}", inner.next_id());
    inner.queries.lock().unwrap().insert(
        request_token.clone(),
        RunningQuery {
            result,
            polls_left,
            finish_at,
        },
    );
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "state": "RUNNING", "progress": 0, "requestToken": request_token, "ttlSeconds": 60 })),
    )
        .into_response()
}

fn finished(result: Value) -> Response {
    axum::Json(json!({ "state": "SUCCEEDED", "progress": 100, "result": result, "ttlSeconds": 60 }))
        .into_response()
}

fn build_result(
    query: &str,
    output: dql::Output,
    max_records: usize,
    max_bytes: Option<i64>,
) -> Value {
    let mut records = output.records;
    let mut notifications = Vec::new();
    if records.len() > max_records {
        records.truncate(max_records);
        notifications.push(json!({
            "severity": "WARN",
            "notificationType": "LIMIT_ADDED",
            "message": format!("The result was limited to {max_records} records."),
            "messageFormat": "The result was limited to %1$s records.",
            "messageFormatSpecifierTypes": ["NUMBER"],
            "arguments": [max_records.to_string()],
        }));
    }
    if let Some(max_bytes) = max_bytes.filter(|b| *b > 0) {
        // A soft limit: the record that crosses it is still included.
        let mut total = 0i64;
        let mut keep = records.len();
        for (i, record) in records.iter().enumerate() {
            total += record.to_string().len() as i64;
            if total >= max_bytes {
                keep = i + 1;
                break;
            }
        }
        if keep < records.len() {
            records.truncate(keep);
            notifications.push(json!({
                "severity": "WARN",
                "notificationType": "RESULT_TRUNCATED",
                "message": format!("The result was truncated to {max_bytes} bytes."),
            }));
        }
    }
    let types = dql::types_of(&records);
    json!({
        "records": records,
        "types": types,
        "metadata": {
            "grail": {
                "canonicalQuery": query,
                "timezone": "Z",
                "query": query,
                "scannedRecords": output.scanned_records,
                "dqlVersion": "V1_0",
                "scannedBytes": output.scanned_bytes,
                "scannedDataPoints": 0,
                "locale": "und",
                "executionTimeMilliseconds": 3 + output.scanned_records / 1000,
                "notifications": notifications,
                "queryId": "3c0f4a5e-8d6b-4b1e-9a2f-1d7e6c5b4a39",
                "sampled": false,
            }
        }
    })
}

#[derive(Deserialize)]
struct PollParams {
    #[serde(rename = "request-token")]
    request_token: Option<String>,
    #[serde(rename = "request-timeout-milliseconds")]
    request_timeout_milliseconds: Option<u64>,
}

fn gone() -> Response {
    envelope(
        StatusCode::GONE,
        "The query for the given request-token is not available anymore.",
        None,
    )
}

async fn query_poll(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(params): Query<PollParams>,
) -> Response {
    inner.record(&method, &uri, &headers, &[]);
    if let Some(fault) = inner.before(Route::QueryPoll).await {
        return fault;
    }
    if let Err(response) = inner.authorize(&headers, &["storage:buckets:read"]) {
        return *response;
    }
    let Some(token) = params.request_token else {
        return envelope(
            StatusCode::BAD_REQUEST,
            "The supplied request is wrong: request-token is required.",
            None,
        );
    };
    let wait = Duration::from_millis(params.request_timeout_milliseconds.unwrap_or(0));
    let finish_at = {
        let queries = inner.queries.lock().unwrap();
        match queries.get(&token) {
            None => return gone(),
            Some(q) => q.finish_at,
        }
    };
    let now = Instant::now();
    if finish_at > now {
        tokio::time::sleep((finish_at - now).min(wait)).await;
    }
    let mut queries = inner.queries.lock().unwrap();
    let Some(query) = queries.get_mut(&token) else {
        return gone();
    };
    if query.polls_left > 1 || query.finish_at > Instant::now() {
        query.polls_left = query.polls_left.saturating_sub(1);
        return axum::Json(json!({ "state": "RUNNING", "progress": 50, "ttlSeconds": 60 }))
            .into_response();
    }
    let query = queries.remove(&token).expect("present");
    finished(query.result)
}

async fn query_cancel(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(params): Query<PollParams>,
) -> Response {
    inner.record(&method, &uri, &headers, &[]);
    if let Some(fault) = inner.before(Route::QueryCancel).await {
        return fault;
    }
    if let Err(response) = inner.authorize(&headers, &["storage:buckets:read"]) {
        return *response;
    }
    let Some(token) = params.request_token else {
        return envelope(
            StatusCode::BAD_REQUEST,
            "The supplied request is wrong: request-token is required.",
            None,
        );
    };
    let Some(query) = inner.queries.lock().unwrap().remove(&token) else {
        return gone();
    };
    inner.cancelled.lock().unwrap().push(token);
    if query.polls_left <= 1 && query.finish_at <= Instant::now() {
        return finished(query.result);
    }
    StatusCode::ACCEPTED.into_response()
}

async fn query_verify(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.record(&method, &uri, &headers, &body);
    if let Some(fault) = inner.before(Route::QueryVerify).await {
        return fault;
    }
    if let Err(response) = inner.authorize(&headers, &["storage:buckets:read"]) {
        return *response;
    }
    let query = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("query").and_then(Value::as_str).map(str::to_string));
    let Some(query) = query.filter(|q| !q.trim().is_empty()) else {
        return envelope(
            StatusCode::BAD_REQUEST,
            "The supplied request is wrong.",
            Some(
                json!({"constraintViolations": [{"message": "must not be blank", "parameterLocation": "PAYLOAD_BODY", "path": "query"}]}),
            ),
        );
    };
    let problem = match dql::parse(&query) {
        Err(e) => Some(e),
        Ok(parsed) => match parsed.source() {
            Some(name) if data::source(name, 0, 0).is_none() => Some(dql::DqlError {
                error_type: "DATA_OBJECT_NOT_FOUND",
                message: format!("The data object `{name}` doesn't exist."),
                start: dql::Pos {
                    index: 6,
                    line: 1,
                    column: 7,
                },
                end: dql::Pos {
                    index: 6,
                    line: 1,
                    column: 7,
                },
            }),
            _ => None,
        },
    };
    match problem {
        None => axum::Json(json!({ "valid": true, "notifications": [] })).into_response(),
        Some(e) => axum::Json(json!({
            "valid": false,
            "notifications": [{
                "severity": "ERROR",
                "notificationType": e.error_type,
                "message": e.message,
                "messageFormat": e.message,
                "messageFormatSpecifierTypes": [],
                "arguments": [],
                "syntaxPosition": e.position_json(),
            }]
        }))
        .into_response(),
    }
}
