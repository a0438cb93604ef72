//! The HTTP front door: one axum `Router` for the container and for Lambda.
//!
//! Routes:
//! - `POST /mcp` and `POST /` (the seed's curl example posts to `/`): MCP Streamable HTTP, served
//!   statelessly by rmcp with plain JSON responses; `GET`/`DELETE` answer 405, notifications 202.
//! - `GET /health`: `{"status":"healthy","server":"Dynatrace MCP Server",…}`, no auth.
//!
//! Layers on the MCP routes, outermost first: the per-request deadline, auth (`X-MCP-Auth-Token`
//! or `Authorization: Bearer`, compared in constant time), Accept normalisation (so a plain
//! `curl` with `Accept: */*` works), then rmcp, which checks Host/Origin, the body limit and the
//! protocol headers.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any_service, get};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::deadline::{Deadline, RequestDeadline};
use crate::mcp::McpServer;
use crate::startup::AppState;

/// How the HTTP layer is configured (resolved from `Settings` and the front door by `startup`).
#[derive(Clone)]
pub struct HttpOptions {
    /// `None`: any Host is accepted. `Some(list)`: only these hosts (or host:port).
    pub allowed_hosts: Option<Vec<String>>,
    /// Browser origins that may call the server; every other `Origin` gets 403.
    pub allowed_origins: Vec<String>,
    pub auth_token: Option<SecretString>,
    pub max_request_bytes: usize,
    /// The longest a tool call may take before any tighter (Lambda) deadline.
    pub tool_timeout: Duration,
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
        auth_digest: options
            .auth_token
            .as_ref()
            .map(|t| Sha256::digest(t.expose_secret().as_bytes()).into()),
        tool_timeout: options.tool_timeout,
    });

    let mcp_routes = Router::new()
        .route("/mcp", any_service(mcp.clone()))
        .route("/", any_service(mcp))
        .layer(middleware::from_fn(normalise_accept))
        .layer(middleware::from_fn_with_state(guard.clone(), authenticate))
        .layer(middleware::from_fn_with_state(guard, attach_deadline));

    Router::new()
        .route("/health", get(health))
        .merge(mcp_routes)
        .fallback(not_found)
}

struct Guard {
    /// SHA-256 of `MCP_AUTH_TOKEN`: comparing digests keeps the comparison constant-time
    /// whatever the length of what the caller sent.
    auth_digest: Option<[u8; 32]>,
    tool_timeout: Duration,
}

async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({
        "status": "healthy",
        "server": crate::SERVER_NAME,
        "version": crate::VERSION,
    }))
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
    let grace = Duration::from_secs(2);
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
    }
}

/// `MCP_AUTH_TOKEN`, when set, must arrive as `X-MCP-Auth-Token` or `Authorization: Bearer`.
async fn authenticate(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let Some(expected) = guard.auth_digest else {
        return next.run(request).await;
    };
    if presented_tokens(request.headers()).any(|token| {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        bool::from(digest.ct_eq(&expected))
    }) {
        return next.run(request).await;
    }
    tracing::info!(
        has_header = request.headers().contains_key("x-mcp-auth-token")
            || request.headers().contains_key(header::AUTHORIZATION),
        "rejected an MCP request without a valid auth token"
    );
    let mut response = jsonrpc_error(
        StatusCode::UNAUTHORIZED,
        -32001,
        "Unauthorized: send the server's auth token as X-MCP-Auth-Token: <token> or Authorization: Bearer <token>",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"dynatrace-mcp\""),
    );
    response
}

fn presented_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    let custom = headers
        .get_all("x-mcp-auth-token")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim);
    let bearer = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    custom.chain(bearer)
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
