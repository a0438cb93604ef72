//! A simulated Dynatrace tenant: an HTTP server on loopback that answers the real routes with the
//! real shapes and status codes (taken from Dynatrace's typed clients, `@dynatrace-sdk/*`), and
//! enforces the real auth rules (Bearer tokens, OAuth scopes, token expiry).
//!
//! It serves `dynatrace-mcp demo`, the integration tests and the benchmark. It is its own crate so
//! that what ships (the Lambda zip, the container image) is built without it: the server's `sandbox`
//! feature, on by default, brings it in for `demo` and `sandbox`. Tests drive it through
//! [`Sandbox`]: it records every request it received (so a test can assert on the DQL a tool
//! sent), counts unexpected calls, and can inject latency, 429 with `Retry-After`, 5xx, token
//! expiry and slow queries (202 then N polls, or a wall-clock duration).
//!
//! Routes, one file each:
//!
//! | file | API |
//! |---|---|
//! | `mod.rs` | `POST /sso/oauth2/token`, `GET /platform/management/v1/environment` |
//! | [`grail`] | Grail query API: `query:execute`, `query:poll`, `query:cancel`, `query:verify` (DQL in [`dql`], data in [`data`]) |
//! | [`copilot`] | Davis CoPilot: `GET /skills`, `nl2dql:generate`, `dql2nl:explain`, `conversations:message`, `document-search:execute`, feedback |
//! | [`analyzers`] | Davis analyzers: list, get, `:execute`, `:poll`, `:cancel`, `:validate` |
//! | [`automation`] | Workflows: list, create, get, patch/put, delete |
//! | [`documents`] | Documents: list (filter/sort/paging), multipart create, metadata, content |
//! | [`notify`] | `POST /platform/email/v1/emails` and the Slack app function |
//! | [`events`] | Classic `POST …/environment-api/v2/events/ingest` (ingested events show up in `fetch events`) |
//!
//! Every route checks the bearer token and its OAuth scopes the way the platform's API gateway
//! does (401, or 403 with `details.missingScopes`), records the request, and can be faulted
//! through [`Route`].

pub mod analyzers;
pub mod automation;
pub mod copilot;
pub mod data;
pub mod documents;
pub mod dql;
pub mod events;
mod filter;
pub mod grail;
mod multipart;
pub mod notify;
pub mod runtime_api;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

pub use documents::StoredDocument;

/// The demo OAuth client the sandbox accepts.
pub const DEMO_CLIENT_ID: &str = "dt0s02.SANDBOX";
pub const DEMO_CLIENT_SECRET: &str = "dt0s02.SANDBOX.demo-client-secret-not-a-real-one";
pub const DEMO_ACCOUNT_URN: &str = "urn:dtaccount:00000000-0000-4000-8000-000000000001";
/// A platform token the sandbox accepts, with every scope.
pub const DEMO_PLATFORM_TOKEN: &str = "dt0s16.SANDBOX.platform-token-not-a-real-one";
/// The Slack connection the Slack app function knows by default.
pub const DEMO_SLACK_CONNECTION: &str = "sandbox-slack-connection";
/// The user (service user) the demo credentials act as: owner of what they create.
pub const DEMO_USER_ID: &str = "6a1f0c2e-9d4b-4e8a-b7c3-5f2e1d0c9b8a";

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
    "storage:events:write",
    "davis-copilot:nl2dql:execute",
    "davis-copilot:dql2nl:execute",
    "davis-copilot:conversations:execute",
    "davis-copilot:document-search:execute",
    "davis:analyzers:read",
    "davis:analyzers:execute",
    "automation:workflows:read",
    "automation:workflows:write",
    "document:documents:read",
    "document:documents:write",
    "email:emails:send",
    "app-settings:objects:read",
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
    /// How many Davis problems the tenant has (at most [`data::PROBLEMS`]'s).
    pub problems: usize,
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
            problems: data::PROBLEMS.len(),
        }
    }

    /// Tenant `n` of several (`n` from 1; tenant 1 is [`SandboxConfig::demo`]): its own
    /// environment id, OAuth client, platform token and data (one Davis problem fewer per tenant,
    /// a thousand log records more), so a test sees which tenant answered.
    pub fn tenant(n: usize) -> Self {
        if n <= 1 {
            return Self::demo();
        }
        let all: Vec<String> = ALL_SCOPES.iter().map(|s| s.to_string()).collect();
        Self {
            environment_id: format!("sandbox{n}"),
            client_id: format!("dt0s02.SANDBOX{n}"),
            client_secret: format!("dt0s02.SANDBOX{n}.demo-client-secret-not-a-real-one"),
            platform_tokens: vec![(tenant_platform_token(n), all)],
            log_records: 20_000 + (n - 1) * 1_000,
            problems: data::PROBLEMS.len() - (n - 1) % data::PROBLEMS.len(),
            ..Self::demo()
        }
    }
}

/// The platform token tenant `n` accepts ([`SandboxConfig::tenant`]).
pub fn tenant_platform_token(n: usize) -> String {
    if n <= 1 {
        DEMO_PLATFORM_TOKEN.to_string()
    } else {
        format!("dt0s16.SANDBOX{n}.platform-token-not-a-real-one")
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
    /// The W3C `traceparent` header, as the platform's own tracing reads it.
    pub traceparent: Option<String>,
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

    /// A query-string parameter (e.g. `request-token`).
    pub fn param(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
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
    /// `GET /platform/davis/copilot/v1/skills`
    CopilotSkills,
    CopilotNl2Dql,
    CopilotDql2Nl,
    CopilotConversation,
    CopilotDocumentSearch,
    /// The three `…:feedback` endpoints.
    CopilotFeedback,
    AnalyzerList,
    AnalyzerGet,
    AnalyzerExecute,
    AnalyzerPoll,
    AnalyzerCancel,
    AnalyzerValidate,
    WorkflowList,
    WorkflowCreate,
    WorkflowGet,
    /// `PATCH` and `PUT /workflows/{id}`.
    WorkflowUpdate,
    WorkflowDelete,
    DocumentList,
    DocumentCreate,
    DocumentMetadata,
    DocumentContent,
    /// `GET /documents/{id}` (multipart: metadata and content).
    DocumentGet,
    EmailSend,
    SlackSendMessage,
    EventIngest,
    Any,
    /// Any route but the SSO token endpoint: the next call a tool makes to the platform.
    Platform,
}

impl Route {
    fn covers(self, route: Route) -> bool {
        self == route || self == Route::Any || (self == Route::Platform && route != Route::Token)
    }
}

/// Failures below the HTTP status: the network or a proxy misbehaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// The connection is closed after the request arrives, with no answer at all. Applies to
    /// [`Route::Token`], or to any other route through [`Route::Any`] / [`Route::Platform`].
    Reset,
    /// No answer, ever (until the client gives up).
    Hang,
    /// 200 with a JSON body that trickles in a byte every 250 ms and never ends.
    Drip,
    /// 200 announcing 4 KiB, of which the first 40 bytes arrive before the connection closes.
    Truncated,
}

/// An injected failure: the next `times` requests to `route` get `status` (with `Retry-After`).
#[derive(Debug, Clone)]
pub struct Fault {
    pub route: Route,
    pub status: u16,
    pub retry_after: Option<String>,
    pub times: usize,
}

/// How long queries (and, through [`Sandbox::set_analyzer_timing`], analyzer runs) take.
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

struct Inner {
    config: SandboxConfig,
    /// The tenant's "now" when it started, in nanoseconds (sample data is relative to it).
    data_now: i128,
    started_wall: i128,
    started: Instant,
    tokens: Mutex<HashMap<String, IssuedToken>>,
    queries: Mutex<HashMap<String, grail::RunningQuery>>,
    recorded: Mutex<Vec<Recorded>>,
    unexpected: Mutex<Vec<String>>,
    faults: Mutex<Vec<Fault>>,
    /// Injected answers with a given body (a proxy's page, a huge body), per route.
    bodies: Mutex<Vec<(Route, u16, Bytes, usize)>>,
    /// Injected network failures, per route, with how many requests each still applies to.
    misbehaviours: Mutex<Vec<(Route, Misbehaviour, usize)>>,
    latency: Mutex<Duration>,
    timing: Mutex<QueryTiming>,
    cancelled: Mutex<Vec<String>>,
    counter: AtomicU64,
    /// TCP connections accepted since the start (clients that keep connections alive open few).
    connections: AtomicU64,
    copilot_skills: Mutex<Vec<String>>,
    analyzer_timing: Mutex<QueryTiming>,
    analyzer_runs: Mutex<HashMap<String, analyzers::Run>>,
    cancelled_analyzers: Mutex<Vec<String>>,
    workflows: Mutex<Vec<Value>>,
    documents: Mutex<Vec<StoredDocument>>,
    emails: Mutex<Vec<Value>>,
    slack_connections: Mutex<Vec<String>>,
    slack_messages: Mutex<Vec<Value>>,
    /// Ingested events as `fetch events` returns them, newest first.
    ingested_records: Mutex<Vec<Map<String, Value>>>,
    /// The accepted `EventIngest` bodies, in arrival order.
    ingested_requests: Mutex<Vec<Value>>,
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
        let data_now = now - now % 1_000_000_000;
        let inner = Arc::new(Inner {
            config,
            data_now,
            started_wall: now,
            started: Instant::now(),
            tokens: Mutex::default(),
            queries: Mutex::default(),
            recorded: Mutex::default(),
            unexpected: Mutex::default(),
            faults: Mutex::default(),
            bodies: Mutex::default(),
            misbehaviours: Mutex::default(),
            latency: Mutex::new(Duration::ZERO),
            timing: Mutex::new(QueryTiming::Immediate),
            cancelled: Mutex::default(),
            counter: AtomicU64::new(1),
            connections: AtomicU64::new(0),
            copilot_skills: Mutex::new(copilot::ALL_SKILLS.iter().map(|s| s.to_string()).collect()),
            analyzer_timing: Mutex::new(QueryTiming::Immediate),
            analyzer_runs: Mutex::default(),
            cancelled_analyzers: Mutex::default(),
            workflows: Mutex::default(),
            documents: Mutex::new(documents::seed(data_now)),
            emails: Mutex::default(),
            slack_connections: Mutex::new(vec![DEMO_SLACK_CONNECTION.to_string()]),
            slack_messages: Mutex::default(),
            ingested_records: Mutex::default(),
            ingested_requests: Mutex::default(),
        });
        let router = router(inner.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, router, inner.clone(), stopped));
        Ok(Sandbox {
            addr,
            inner,
            _stop: stop,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many TCP connections the tenant has accepted since it started.
    pub fn connections(&self) -> u64 {
        self.inner.connections.load(Ordering::Relaxed)
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

    /// This tenant as an entry of `DT_ENVIRONMENTS`, with its first platform token.
    pub fn registry_entry(&self, description: &str) -> Value {
        json!({
            "url": self.url(),
            "platformToken": self.inner.config.platform_tokens.first().map(|(t, _)| t.clone()),
            "description": description,
            "ssoUrl": self.sso_url(),
        })
    }

    /// This tenant as an OAuth entry of `DT_ENVIRONMENTS`.
    pub fn registry_entry_oauth(&self, description: &str) -> Value {
        json!({
            "url": self.url(),
            "oauthClientId": self.inner.config.client_id,
            "oauthClientSecret": self.inner.config.client_secret,
            "accountUrn": self.inner.config.account_urn,
            "description": description,
            "ssoUrl": self.sso_url(),
        })
    }

    /// The environment id this tenant reports.
    pub fn environment_id(&self) -> &str {
        &self.inner.config.environment_id
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

    /// The next `times` requests to `route` get `status` with exactly `body` (a proxy's HTML page,
    /// a body far larger than any real answer).
    pub fn inject_body(&self, route: Route, status: u16, body: Bytes, times: usize) {
        self.inner
            .bodies
            .lock()
            .unwrap()
            .push((route, status, body, times));
    }

    /// The next `times` requests to `route` fail below HTTP (see [`Misbehaviour`]).
    pub fn misbehave(&self, route: Route, how: Misbehaviour, times: usize) {
        self.inner
            .misbehaviours
            .lock()
            .unwrap()
            .push((route, how, times));
    }

    /// How many injected failures (faults, bodies, misbehaviours) are still to be served.
    pub fn pending_faults(&self) -> usize {
        self.inner
            .faults
            .lock()
            .unwrap()
            .iter()
            .map(|f| f.times)
            .sum::<usize>()
            + self
                .inner
                .bodies
                .lock()
                .unwrap()
                .iter()
                .map(|b| b.3)
                .sum::<usize>()
            + self
                .inner
                .misbehaviours
                .lock()
                .unwrap()
                .iter()
                .map(|m| m.2)
                .sum::<usize>()
    }

    /// Drops every pending fault, injected body and misbehaviour.
    pub fn clear_faults(&self) {
        self.inner.faults.lock().unwrap().clear();
        self.inner.bodies.lock().unwrap().clear();
        self.inner.misbehaviours.lock().unwrap().clear();
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

    /// The Davis CoPilot skills the tenant has enabled (default: all four, `conversation`,
    /// `nl2dql`, `dql2nl`, `documentSearch`). A call to a disabled skill gets 403.
    pub fn set_copilot_skills<S: AsRef<str>>(&self, skills: impl IntoIterator<Item = S>) {
        *self.inner.copilot_skills.lock().unwrap() =
            skills.into_iter().map(|s| s.as_ref().to_string()).collect();
    }

    /// How long analyzer executions take (`:execute` → 202 → `:poll`); `Immediate` by default.
    pub fn set_analyzer_timing(&self, timing: QueryTiming) {
        *self.inner.analyzer_timing.lock().unwrap() = timing;
    }

    /// Request tokens of analyzer executions cancelled through `:cancel`.
    pub fn cancelled_analyzers(&self) -> Vec<String> {
        self.inner.cancelled_analyzers.lock().unwrap().clone()
    }

    /// Workflows created (and updated) through the automation API, as the API returns them.
    pub fn workflows(&self) -> Vec<Value> {
        self.inner.workflows.lock().unwrap().clone()
    }

    /// Every document (the seeded ones first, then those created through the API).
    pub fn documents(&self) -> Vec<StoredDocument> {
        self.inner.documents.lock().unwrap().clone()
    }

    /// The `SendEmailRequest` bodies accepted by `POST /platform/email/v1/emails`.
    pub fn emails(&self) -> Vec<Value> {
        self.inner.emails.lock().unwrap().clone()
    }

    /// Slack connection ids the Slack app knows (default: [`DEMO_SLACK_CONNECTION`]).
    pub fn set_slack_connections<S: AsRef<str>>(&self, ids: impl IntoIterator<Item = S>) {
        *self.inner.slack_connections.lock().unwrap() =
            ids.into_iter().map(|s| s.as_ref().to_string()).collect();
    }

    /// Bodies of the Slack messages the Slack app function delivered.
    pub fn slack_messages(&self) -> Vec<Value> {
        self.inner.slack_messages.lock().unwrap().clone()
    }

    /// The `EventIngest` bodies accepted by the events ingest API (they also show up in
    /// `fetch events`).
    pub fn ingested_events(&self) -> Vec<Value> {
        self.inner.ingested_requests.lock().unwrap().clone()
    }
}

/// The answer of a misbehaving route (all but [`Misbehaviour::Reset`], which [`serve`] does).
async fn misbehave(how: Misbehaviour) -> Response {
    use futures::StreamExt;
    let json = [("content-type", "application/json")];
    match how {
        Misbehaviour::Hang | Misbehaviour::Reset => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Misbehaviour::Drip => {
            let drip = futures::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_millis(250)).await;
                Some((Ok::<_, std::io::Error>(Bytes::from_static(b" ")), ()))
            });
            let body = futures::stream::once(async {
                Ok::<_, std::io::Error>(Bytes::from_static(b"{\"state\":\"SUCCEEDED\","))
            })
            .chain(drip);
            (StatusCode::OK, json, axum::body::Body::from_stream(body)).into_response()
        }
        Misbehaviour::Truncated => {
            let body = futures::stream::iter([
                Ok(Bytes::from_static(
                    b"{\"state\":\"SUCCEEDED\",\"result\":{\"records\":[",
                )),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "injected: connection closed mid-answer",
                )),
            ]);
            let mut response =
                (StatusCode::OK, json, axum::body::Body::from_stream(body)).into_response();
            response
                .headers_mut()
                .insert("content-length", HeaderValue::from_static("4096"));
            response
        }
    }
}

/// The tenant's accept loop: hyper's HTTP/1 server, so that an injected [`Misbehaviour::Reset`]
/// can close a connection without any answer (a service error makes hyper drop it).
async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    inner: Arc<Inner>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = &mut stopped => return,
        };
        inner.connections.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let (router, inner) = (router.clone(), inner.clone());
        let service = tower::service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let (router, inner) = (router.clone(), inner.clone());
            async move {
                let token = request.uri().path() == "/sso/oauth2/token";
                let route = if token { Route::Token } else { Route::Platform };
                if inner
                    .take_misbehaviour(|r, how| how == Misbehaviour::Reset && r.covers(route))
                    .is_some()
                {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "injected reset",
                    ));
                }
                router
                    .oneshot(request.map(axum::body::Body::new))
                    .await
                    .map_err(|never| match never {})
            }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .await;
        });
    }
}

fn wall_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

fn router(inner: Arc<Inner>) -> Router {
    let router = Router::new()
        .route("/sso/oauth2/token", post(token))
        .route("/platform/management/v1/environment", get(environment));
    let router = grail::routes(router);
    let router = copilot::routes(router);
    let router = analyzers::routes(router);
    let router = automation::routes(router);
    let router = documents::routes(router);
    let router = notify::routes(router);
    let router = events::routes(router);
    router.fallback(unexpected).with_state(inner)
}

/// What every handler receives: the whole request, body read.
struct Call {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

/// Requests above this are refused (documents may hold 50 MB).
const MAX_BODY: usize = 64 << 20;

impl<S: Send + Sync> FromRequest<S> for Call {
    type Rejection = Response;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
            envelope(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is too large.",
                None,
            )
        })?;
        Ok(Call {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
        })
    }
}

impl Call {
    /// A query-string parameter.
    fn param(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.uri.query().unwrap_or_default().as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    /// The names of the query-string parameters present.
    fn param_names(&self) -> Vec<String> {
        url::form_urlencoded::parse(self.uri.query().unwrap_or_default().as_bytes())
            .map(|(k, _)| k.into_owned())
            .collect()
    }

    /// The body as JSON, if it is JSON.
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    fn content_type(&self) -> String {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }
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
            traceparent: headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        });
    }

    /// Records the call, applies latency and any pending fault for `route`, then checks the
    /// token and `scopes`. Every platform route starts with this.
    async fn admit(&self, route: Route, call: &Call, scopes: &[&str]) -> Result<(), Response> {
        self.record(&call.method, &call.uri, &call.headers, &call.body);
        if let Some(fault) = self.before(route).await {
            return Err(fault);
        }
        self.authorize(&call.headers, scopes).map_err(|r| *r)
    }

    /// Latency, then an injected fault if one is pending for `route`.
    async fn before(&self, route: Route) -> Option<Response> {
        let latency = *self.latency.lock().unwrap();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if let Some(how) =
            self.take_misbehaviour(|r, how| how != Misbehaviour::Reset && r.covers(route))
        {
            return Some(misbehave(how).await);
        }
        {
            let mut bodies = self.bodies.lock().unwrap();
            if let Some(index) = bodies
                .iter()
                .position(|(r, _, _, times)| *times > 0 && r.covers(route))
            {
                let (_, status, body, times) = &mut bodies[index];
                *times -= 1;
                let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
                let body = body.clone();
                if *times == 0 {
                    bodies.remove(index);
                }
                return Some(
                    (status, [("content-type", "application/json")], body).into_response(),
                );
            }
        }
        let mut faults = self.faults.lock().unwrap();
        let index = faults
            .iter()
            .position(|f| f.times > 0 && f.route.covers(route))?;
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

    /// Takes one pending misbehaviour that `applies`.
    fn take_misbehaviour(
        &self,
        applies: impl Fn(Route, Misbehaviour) -> bool,
    ) -> Option<Misbehaviour> {
        let mut pending = self.misbehaviours.lock().unwrap();
        let index = pending
            .iter()
            .position(|(r, how, times)| *times > 0 && applies(*r, *how))?;
        let (_, how, times) = &mut pending[index];
        let how = *how;
        *times -= 1;
        if *times == 0 {
            pending.remove(index);
        }
        Some(how)
    }

    fn next_id(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// A fresh random UUID (v4 layout).
    fn uuid(&self) -> String {
        uuid_from(rand::random::<u128>())
    }

    /// The tenant's clock now, in nanoseconds.
    fn now(&self) -> i128 {
        self.started_wall + self.started.elapsed().as_nanos() as i128
    }

    /// The scopes of the presented token, or the refusal.
    fn token_scopes(&self, headers: &HeaderMap) -> Result<Vec<String>, Box<Response>> {
        let header = headers.get("authorization").and_then(|v| v.to_str().ok());
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return Err(deny(envelope(
                StatusCode::UNAUTHORIZED,
                "Unsupported authorization scheme. Dynatrace platform APIs require the authorization scheme 'Bearer'",
                None,
            )));
        };
        if let Some((_, scopes)) = self.config.platform_tokens.iter().find(|(t, _)| t == token) {
            return Ok(scopes.clone());
        }
        let tokens = self.tokens.lock().unwrap();
        match tokens.get(token) {
            Some(issued) if issued.expires_at > Instant::now() => Ok(issued.scopes.clone()),
            Some(_) => Err(deny(envelope(
                StatusCode::UNAUTHORIZED,
                "Authentication failed: the token has expired",
                None,
            ))),
            None => Err(deny(envelope(
                StatusCode::UNAUTHORIZED,
                "Authentication failed",
                None,
            ))),
        }
    }

    /// Checks the bearer token and its scopes as the platform's API gateway does.
    fn authorize(&self, headers: &HeaderMap, required: &[&str]) -> Result<(), Box<Response>> {
        let scopes = self.token_scopes(headers)?;
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|r| !scopes.iter().any(|s| s == r))
            .collect();
        if !missing.is_empty() {
            return Err(deny(forbidden(&missing)));
        }
        Ok(())
    }
}

/// A v4-layout UUID from 128 random (or derived) bits.
fn uuid_from(bits: u128) -> String {
    let version = (bits & !(0xF000u128 << 64)) | (0x4000u128 << 64);
    let b = (version & !(0xC000u128 << 48)) | (0x8000u128 << 48);
    let h = format!("{b:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The 403 the gateway gives a token without the scopes a route needs.
fn forbidden(missing: &[&str]) -> Response {
    envelope(
        StatusCode::FORBIDDEN,
        "The authorization token does not provide the necessary permissions.",
        Some(json!({ "missingScopes": missing })),
    )
}

/// The platform's common error body: `{"error": {"code", "message", "details"?}}`.
fn envelope(status: StatusCode, message: &str, details: Option<Value>) -> Response {
    let mut error = json!({ "code": status.as_u16(), "message": message });
    if let Some(details) = details {
        error["details"] = details;
    }
    (status, axum::Json(json!({ "error": error }))).into_response()
}

/// A 400 listing what is wrong with the payload, in `details.constraintViolations`.
fn violations(message: &str, list: Vec<Value>) -> Response {
    envelope(
        StatusCode::BAD_REQUEST,
        message,
        Some(json!({ "constraintViolations": list })),
    )
}

/// One constraint violation in the body (`path` is the field's JSON path, e.g. `tasks.a.action`).
fn violation(path: &str, message: &str) -> Value {
    json!({ "message": message, "parameterLocation": "PAYLOAD_BODY", "path": path })
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

async fn unexpected(State(inner): State<Arc<Inner>>, call: Call) -> Response {
    inner.record(&call.method, &call.uri, &call.headers, &call.body);
    not_a_route(&inner, &call)
}

/// Counts a request to a route the real API does not have and answers 404 (used by handlers
/// that dispatch on a path segment themselves).
fn not_a_route(inner: &Inner, call: &Call) -> Response {
    inner
        .unexpected
        .lock()
        .unwrap()
        .push(format!("{} {}", call.method, call.uri.path()));
    envelope(
        StatusCode::NOT_FOUND,
        "Not found: this route does not exist in the simulated tenant",
        None,
    )
}

async fn token(State(inner): State<Arc<Inner>>, call: Call) -> Response {
    inner.record(&call.method, &call.uri, &call.headers, &call.body);
    if let Some(fault) = inner.before(Route::Token).await {
        return fault;
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&call.body)
        .into_owned()
        .collect();
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

async fn environment(State(inner): State<Arc<Inner>>, call: Call) -> Response {
    if let Err(response) = inner
        .admit(
            Route::Environment,
            &call,
            &["platform-management:environments:read"],
        )
        .await
    {
        return response;
    }
    axum::Json(json!({
        "environmentId": inner.config.environment_id,
        "createTime": "2024-03-14T09:31:07.123Z",
        "type": "CUSTOMER",
        "state": "ACTIVE",
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_have_the_v4_layout() {
        let id = uuid_from(u128::MAX);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        let id = uuid_from(0);
        assert_eq!(&id[14..15], "4");
        assert_eq!(&id[19..20], "8");
    }
}

#[cfg(test)]
mod route_tests;
