//! The HTTP front door: one axum `Router` for the container and for Lambda.
//!
//! Routes:
//! - `POST /mcp` and `POST /` (the seed's curl example posts to `/`): MCP Streamable HTTP, served
//!   statelessly by rmcp with plain JSON responses; `GET`/`DELETE` answer 405, notifications 202.
//! - `GET /health`: `{"status":"healthy","server":"Dynatrace MCP Server",…}`, no auth.
//! - `GET /.well-known/oauth-protected-resource[/…]`: the OAuth Protected Resource Metadata
//!   (RFC 9728), when `MCP_OAUTH_ISSUER` is set; no auth.
//!
//! Layers on the MCP routes, outermost first: CORS for allowed browser origins (preflights answered
//! before authentication) and a body announced past the limit refused with 413; the per-request
//! deadline and request id; identity (`crate::identity`: static token, OAuth JWT, gateway claims,
//! pass-through token; 401/403 with `WWW-Authenticate` challenges, step-up for calls outside a
//! token's scopes); Accept normalisation (so a plain `curl` with `Accept: */*` works); parse errors
//! as 400/-32700; then rmcp, which checks Host/Origin, the body limit and the protocol headers.
//!
//! [`serve`] is the container's accept loop (hyper with a header read timeout, graceful shutdown).

mod fast;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::cors::{self, AllowedOrigin};
use crate::deadline::{Deadline, RequestDeadline};
use crate::identity::audit::RequestId;
use crate::identity::authenticator::GatewayClaims;
use crate::identity::{Principal, Rejection, Source, metadata};
use crate::mcp::McpServer;
use crate::startup::AppState;

/// How the HTTP layer is configured (resolved from `Settings` and the front door by `startup`).
#[derive(Clone)]
pub struct HttpOptions {
    /// `None`: any Host is accepted. `Some(list)`: only these hosts (or host:port).
    pub allowed_hosts: Option<Vec<String>>,
    /// Browser origins that may call the server; every other `Origin` gets 403.
    pub allowed_origins: Vec<String>,
    pub max_request_bytes: usize,
    /// The longest a tool call may take before any tighter (Lambda) deadline.
    pub tool_timeout: Duration,
    /// MCP requests served at once; the next one is answered 503 with `Retry-After` at once.
    pub max_concurrent_requests: usize,
    /// Cancelled on shutdown: in-flight requests finish, new ones are refused.
    pub shutdown: CancellationToken,
}

/// Builds the Router shared by `serve`, `demo`, Lambda, the tests and the benchmark.
pub fn router(state: Arc<AppState>, options: HttpOptions) -> Router {
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_sse_retry(None)
        .with_max_request_body_bytes(options.max_request_bytes)
        .with_cancellation_token(options.shutdown.clone())
        .with_stateless_protocol_metadata_required(false)
        .with_allowed_origins(options.allowed_origins.clone())
        .enforce_origin_validation();
    config = match &options.allowed_hosts {
        Some(hosts) => config.with_allowed_hosts(hosts.clone()),
        None => config.disable_allowed_hosts(),
    };
    let server = McpServer::new(state.clone());
    let mcp = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    );

    let guard = Arc::new(Guard {
        tool_timeout: options.tool_timeout,
        max_request_bytes: options.max_request_bytes,
        state: state.clone(),
    });

    let front = Arc::new(Front {
        origins: options
            .allowed_origins
            .iter()
            .filter_map(|o| AllowedOrigin::parse(o).ok())
            .collect(),
        max_request_bytes: options.max_request_bytes,
    });
    let endpoint = Arc::new(Endpoint {
        tools_list: fast::ToolsList::new(
            options.allowed_hosts.as_deref(),
            options.max_request_bytes,
        ),
        rmcp: mcp,
    });
    let mcp_routes = Router::new()
        .route("/mcp", any(mcp_endpoint))
        .route("/", any(mcp_endpoint))
        .with_state(endpoint)
        .layer(middleware::from_fn(parse_errors))
        .layer(middleware::from_fn(normalise_accept))
        .layer(middleware::from_fn_with_state(guard.clone(), authenticate))
        .layer(middleware::from_fn_with_state(guard, attach_deadline))
        .layer(middleware::from_fn_with_state(
            Arc::new(tokio::sync::Semaphore::new(options.max_concurrent_requests)),
            shed,
        ))
        .layer(middleware::from_fn_with_state(front, browser_and_size));

    Router::new()
        .route("/health", get(health))
        .route(metadata::WELL_KNOWN, get(resource_metadata))
        .route(
            &format!("{}/{{*resource}}", metadata::WELL_KNOWN),
            get(resource_metadata),
        )
        .with_state(state)
        .merge(mcp_routes)
        .fallback(not_found)
}

type Rmcp = StreamableHttpService<McpServer, NeverSessionManager>;

/// `POST /mcp` and `POST /`: rmcp, with a plain `tools/list` answered from the bytes of rmcp's
/// first answer to it ([`fast`]).
struct Endpoint {
    tools_list: fast::ToolsList,
    rmcp: Rmcp,
}

impl Endpoint {
    async fn rmcp(&self, request: Request<Body>) -> Response {
        match self.rmcp.clone().oneshot(request).await {
            Ok(response) => response.map(Body::new),
            Err(never) => match never {},
        }
    }
}

async fn mcp_endpoint(State(endpoint): State<Arc<Endpoint>>, request: Request<Body>) -> Response {
    // With traces on, every request goes through rmcp and the handler, which make its span.
    if crate::telemetry::tracer().is_some() {
        return endpoint.rmcp(request).await;
    }
    match endpoint.tools_list.probe(request).await {
        Err(answer) => answer,
        Ok(fast::Probe::Pass(request)) => endpoint.rmcp(request).await,
        Ok(fast::Probe::Hit(hit, request)) => match endpoint.tools_list.answer(&hit) {
            Some(answer) => answer,
            None => {
                let response = endpoint.rmcp(request).await;
                endpoint.tools_list.remember(hit, response).await
            }
        },
    }
}

/// The bounds of [`serve`]'s accept loop.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// How long a client may take to send a request's headers (idle keep-alive included).
    pub header_read_timeout: Duration,
    /// Open connections; past it, a new connection is answered 503 and closed.
    pub max_connections: usize,
}

/// A connection past `MCP_MAX_CONNECTIONS`: a bare 503 with `Retry-After`, then closed.
async fn refuse_connection(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    const BODY: &str = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Server busy: too many connections (MCP_MAX_CONNECTIONS); retry after a second"}}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Serves `router` on `listener` (HTTP/1.1) until `shutdown` is cancelled; then stops accepting,
/// lets each connection finish its request in flight (idle ones close), and returns when all have.
///
/// Unlike `axum::serve`, hyper runs here with a timer, so a client that sends its headers a byte
/// at a time (slowloris) is cut off after `header_read_timeout` instead of holding its connection
/// for as long as it likes. The timeout also covers an idle keep-alive connection waiting for its
/// next request.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
    limits: ServeLimits,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        while connections.try_join_next().is_some() {}
        if connections.len() >= limits.max_connections {
            // Answered and closed at once, without reading the request: the client (or the load
            // balancer) tries again, elsewhere or a second later.
            tokio::spawn(refuse_connection(stream));
            continue;
        }
        let connection = builder.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let stop = shutdown.clone();
        connections.spawn(async move {
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    // Closed now, not when the last connection is done: new clients are refused at once (an ALB
    // or ECS moves them to another task).
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Past `MCP_MAX_CONCURRENT_REQUESTS` requests in flight, the next is answered 503 with
/// `Retry-After` at once, before authentication spends any CPU on it: a load balancer or client
/// retries elsewhere or later, where unbounded queueing would slow every caller to its deadline.
async fn shed(
    State(slots): State<Arc<tokio::sync::Semaphore>>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(_slot) = slots.try_acquire() else {
        tracing::warn!("shed a request: MCP_MAX_CONCURRENT_REQUESTS requests are in flight");
        return busy();
    };
    next.run(request).await
}

/// 503 with `Retry-After: 1`: this instance is at its limit.
fn busy() -> Response {
    let mut response = jsonrpc_error(
        StatusCode::SERVICE_UNAVAILABLE,
        -32000,
        "Server busy: this instance is serving as many requests as it is allowed \
         (MCP_MAX_CONCURRENT_REQUESTS); retry after a second",
    );
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    // The request's body was not read, so the connection cannot carry another request: say so,
    // or a client writes its next request into a closing socket.
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// What the outermost layer checks: the browser origin (CORS) and the announced body size.
struct Front {
    origins: Vec<AllowedOrigin>,
    max_request_bytes: usize,
}

/// CORS for allowed browser origins (a preflight is answered here, before authentication, as
/// browsers send it without credentials), and a body announced larger than the limit refused
/// with 413 at once, before any of it is read (`Expect: 100-continue` included).
async fn browser_and_size(
    State(front): State<Arc<Front>>,
    request: Request,
    next: Next,
) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let allowed = origin
        .as_deref()
        .filter(|o| front.origins.iter().any(|a| a.matches(o)))
        .map(str::to_string);
    if request.method() == http::Method::OPTIONS {
        let mut response = match (&origin, &allowed) {
            (_, Some(_)) => StatusCode::NO_CONTENT.into_response(),
            (Some(_), None) => jsonrpc_error(
                StatusCode::FORBIDDEN,
                -32600,
                "Forbidden: this origin is not allowed (MCP_ALLOWED_ORIGINS)",
            ),
            (None, None) => {
                let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(cors::ALLOW_METHODS));
                response
            }
        };
        if let Some(origin) = &allowed {
            let headers = response.headers_mut();
            cors_headers(headers, origin);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(cors::ALLOW_METHODS),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(cors::ALLOW_HEADERS),
            );
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
        return response;
    }
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut response = if announced.is_some_and(|len| len > front.max_request_bytes as u64) {
        let mut response = jsonrpc_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            -32600,
            &format!(
                "the request body is larger than {} bytes (MCP_MAX_REQUEST_BYTES)",
                front.max_request_bytes
            ),
        );
        // Its body is not read: the connection ends with this answer.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    } else {
        next.run(request).await
    };
    if let Some(origin) = &allowed {
        cors_headers(response.headers_mut(), origin);
    }
    response
}

fn cors_headers(headers: &mut http::HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(cors::EXPOSE_HEADERS),
    );
}

struct Guard {
    tool_timeout: Duration,
    max_request_bytes: usize,
    state: Arc<AppState>,
}

async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({
        "status": "healthy",
        "server": crate::SERVER_NAME,
        "version": crate::VERSION,
    }))
}

/// RFC 9728 Protected Resource Metadata: public, so any origin may read it.
async fn resource_metadata(State(state): State<Arc<AppState>>) -> Response {
    let Some(metadata) = &state.resource_metadata else {
        return not_found().await.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        metadata.document().to_string(),
    )
        .into_response()
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({
            "error": "not found: the MCP endpoint is POST /mcp (or POST /), the health check GET /health"
        })),
    )
}

/// Every MCP request gets a deadline: the configured tool timeout, or a tighter one a front door
/// (Lambda) already attached. The whole request is bounded by it plus a small grace period.
/// It also gets its [`RequestId`].
async fn attach_deadline(
    State(guard): State<Arc<Guard>>,
    mut request: Request,
    next: Next,
) -> Response {
    let configured = Deadline::after(guard.tool_timeout);
    let deadline = match request.extensions().get::<RequestDeadline>() {
        Some(existing) => existing.0.min(configured),
        None => configured,
    };
    request.extensions_mut().insert(RequestDeadline(deadline));
    let client = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string);
    let id = RequestId {
        id: match request.extensions().get::<RequestId>() {
            Some(lambda) => lambda.id.clone(),
            None => format!("{:016x}", rand::random::<u64>()),
        },
        client,
    };
    request.extensions_mut().insert(id.clone());
    let grace = Duration::from_secs(2);
    let mut response =
        match tokio::time::timeout(deadline.remaining() + grace, next.run(request)).await {
            Ok(response) => response,
            Err(_) => {
                tracing::warn!("request exceeded its deadline; answering 504");
                jsonrpc_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    -32603,
                    "the request did not finish within its deadline",
                )
            }
        };
    if let Ok(value) = HeaderValue::from_str(&id.id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Identifies the caller ([`crate::identity`]) and attaches the [`Principal`] to the request; a
/// request without an acceptable credential is answered here, before rmcp sees it.
async fn authenticate(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let state = &guard.state;
    let gateway = request.extensions().get::<GatewayClaims>().cloned();
    let principal = match state
        .identity
        .identify(request.headers(), gateway.as_ref())
        .await
    {
        Ok(principal) => principal,
        Err(rejection) => return reject(state, rejection),
    };
    let mut request = match step_up(&guard, &principal, request).await {
        Ok(request) => request,
        Err(response) => return *response,
    };
    request.extensions_mut().insert(Arc::new(principal));
    next.run(request).await
}

/// For an OAuth caller whose token lacks a scope this server offers: a `tools/call` of a tool
/// outside its scopes is answered 403 `insufficient_scope` with the scopes to ask for, so the
/// client can get a token with more scope and retry (step-up authorization). Other callers
/// cannot step up: the tool answers them with a sentence instead (`crate::mcp`).
async fn step_up(
    guard: &Guard,
    principal: &Principal,
    request: Request,
) -> Result<Request, Box<Response>> {
    let state = &guard.state;
    let enabled = state.identity.enabled();
    let can_step_up = matches!(principal.source, Source::OAuth | Source::Gateway)
        && state.resource_metadata.is_some()
        && principal.groups.intersect(enabled) != enabled;
    if !can_step_up || request.method() != http::Method::POST {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, guard.max_request_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return Err(Box::new(jsonrpc_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                -32600,
                &format!(
                    "the request body is larger than {} bytes (MCP_MAX_REQUEST_BYTES)",
                    guard.max_request_bytes
                ),
            )));
        }
    };
    #[derive(serde::Deserialize)]
    struct Call<'a> {
        #[serde(borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
        params: Option<CallParams<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct CallParams<'a> {
        #[serde(borrow)]
        name: Option<std::borrow::Cow<'a, str>>,
    }
    if let Ok(call) = serde_json::from_slice::<Call>(&bytes)
        && call.method.as_deref() == Some("tools/call")
        && let Some(name) = call.params.and_then(|p| p.name)
        && let Some(def) = state.tools.get(&name)
        && !principal.groups.contains(def.group)
    {
        let names = &state.identity.settings().scope_names;
        let mut wanted = principal.groups.intersect(enabled);
        wanted.insert(def.group);
        let needed = names.name(def.group);
        let metadata = state.resource_metadata.as_ref().expect("checked above");
        let description = format!("{} needs the scope {needed}", def.name);
        let mut response = jsonrpc_error(
            StatusCode::FORBIDDEN,
            -32003,
            &format!(
                "Forbidden: {} needs the scope {needed}, which your access token does not carry; \
                 get a token that includes it (your client can ask the authorization server for: {}) and call again",
                def.name,
                names.joined(wanted)
            ),
        );
        set_challenge(
            &mut response,
            &metadata.challenge(
                Some(("insufficient_scope", &description)),
                &names.joined(wanted),
            ),
        );
        tracing::info!(subject = %principal.subject, tool = def.name, needed, "step-up: a call outside the token's scopes");
        return Err(Box::new(response));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn set_challenge(response: &mut Response, challenge: &str) {
    if let Ok(value) = HeaderValue::from_str(challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
}

/// The answer to a request that was not let in.
fn reject(state: &AppState, rejection: Rejection) -> Response {
    let identity = &state.identity;
    let names = &identity.settings().scope_names;
    let all_scopes = names.joined(identity.enabled());
    match rejection {
        Rejection::Unauthenticated(error) => {
            let mut message = String::from("Unauthorized: ");
            if let Some(e) = &error {
                message.push_str(&format!("{e}. "));
            }
            match (&state.resource_metadata, identity.settings().oauth.as_ref()) {
                (Some(metadata), Some(oauth)) => {
                    message.push_str(&format!(
                        "Send an access token from {} as Authorization: Bearer <token> (the metadata at {} says how to get one)",
                        oauth.issuer,
                        metadata.url()
                    ));
                    if state.settings.mcp_auth_token.is_some() {
                        message.push_str(", or the server's static token as X-MCP-Auth-Token");
                    }
                }
                _ => message.push_str(
                    "send the server's auth token as X-MCP-Auth-Token: <token> or Authorization: Bearer <token>",
                ),
            }
            let mut response = jsonrpc_error(StatusCode::UNAUTHORIZED, -32001, &message);
            let challenge = match &state.resource_metadata {
                Some(metadata) => metadata.challenge(
                    error
                        .as_ref()
                        .map(|e| ("invalid_token", e.to_string()))
                        .as_ref()
                        .map(|(code, text)| (*code, text.as_str())),
                    &all_scopes,
                ),
                None => "Bearer realm=\"dynatrace-mcp\"".to_string(),
            };
            set_challenge(&mut response, &challenge);
            response
        }
        Rejection::NoScope => {
            let mut response = jsonrpc_error(
                StatusCode::FORBIDDEN,
                -32003,
                &format!(
                    "Forbidden: your credential grants none of this server's scopes; ask for at least one of: {all_scopes}"
                ),
            );
            if let Some(metadata) = &state.resource_metadata {
                set_challenge(
                    &mut response,
                    &metadata.challenge(
                        Some((
                            "insufficient_scope",
                            "the token grants none of this server's scopes",
                        )),
                        &all_scopes,
                    ),
                );
            }
            response
        }
        Rejection::Unavailable(_) => {
            let mut response = jsonrpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                -32002,
                "the authorization server's signing keys could not be fetched to check your token; try again shortly",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            response
        }
        Rejection::BadCallerToken(reason) => jsonrpc_error(
            StatusCode::BAD_REQUEST,
            -32600,
            &format!("Bad request: {reason}"),
        ),
    }
}

/// A body that is not JSON, or cannot be read, is the client's mistake: 400 with JSON-RPC's
/// parse error (-32700), where rmcp answers 415 (for a JSON content type) or 500 (a malformed
/// chunked body).
async fn parse_errors(request: Request<Body>, next: Next) -> Response {
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = failed.clone();
    let request = request.map(|body| {
        Body::new(http_body_util::BodyExt::map_err(body, move |e| {
            seen.store(true, std::sync::atomic::Ordering::Relaxed);
            e
        }))
    });
    let response = next.run(request).await;
    let status = response.status();
    if status == StatusCode::INTERNAL_SERVER_ERROR
        && failed.load(std::sync::atomic::Ordering::Relaxed)
    {
        return jsonrpc_error(
            StatusCode::BAD_REQUEST,
            -32700,
            "Parse error: the request body could not be read (is its chunked encoding well-formed?)",
        );
    }
    if status == StatusCode::UNSUPPORTED_MEDIA_TYPE && json {
        let detail = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let detail = detail
            .strip_prefix("fail to deserialize request body ")
            .unwrap_or(&detail)
            .trim();
        // JSON that parses but is no JSON-RPC message is an invalid request; anything else a
        // parse error.
        let shape = [
            "missing field",
            "unknown variant",
            "invalid type",
            "invalid value",
            "did not match",
        ]
        .iter()
        .any(|k| detail.contains(k));
        let (code, what) = if shape {
            (
                -32600,
                "Invalid request: the body is JSON but not a JSON-RPC message",
            )
        } else {
            (-32700, "Parse error: the body is not valid JSON")
        };
        return jsonrpc_error(
            StatusCode::BAD_REQUEST,
            code,
            &format!("{what} ({})", crate::identity::audit::cut(detail, 200)),
        );
    }
    response
}

/// Streamable HTTP clients must accept both JSON and SSE. Plain HTTP tools (`curl` sends
/// `Accept: */*`, some send `application/json` alone or nothing) get the same JSON answer, so
/// such requests are treated as accepting both. An explicit, incompatible Accept is left alone
/// for rmcp to refuse with 406.
async fn normalise_accept(mut request: Request<Body>, next: Next) -> Response {
    let headers = request.headers();
    let values: Vec<String> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.to_ascii_lowercase())
        .collect();
    let joined = values.join(",");
    let lenient = values.is_empty()
        || joined.contains("*/*")
        || joined.contains("application/*")
        || (joined.contains("application/json") && !joined.contains("text/event-stream"));
    if lenient {
        request.headers_mut().insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
    }
    next.run(request).await
}

fn jsonrpc_error(status: StatusCode, code: i32, message: &str) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": code, "message": message },
    });
    (status, axum::Json(body)).into_response()
}
