//! Wiring: builds the shared [`AppState`] once (at cold start) and the HTTP options for a front
//! door. `main`, the integration tests and the benchmark all go through these functions, so they
//! run the production path.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::config::{FrontDoor, Settings};
use crate::environments::Environments;
use crate::http::HttpOptions;
use crate::identity::Authenticator;
use crate::identity::metadata::ResourceMetadata;
use crate::identity::ratelimit::RateLimiter;
use crate::signing::Signer;
use crate::state::dynamodb::DynamoStore;
use crate::state::memory::MemoryStore;
use crate::state::{Policy, StateStore};
use crate::tools::{self, Registry};

/// Everything a request needs, built once and shared.
pub struct AppState {
    pub settings: Settings,
    /// Every Dynatrace environment, the default first, each with its own client.
    pub environments: Environments,
    pub signer: Signer,
    pub tools: Registry,
    /// Confirmations, budgets and rate-limit windows: this instance's memory, or the DynamoDB
    /// table every instance shares (`MCP_STATE_TABLE`).
    pub store: Arc<dyn StateStore>,
    /// What budgets and rate limits do when the store cannot answer.
    pub state_policy: Policy,
    /// Who is calling: static token, OAuth, gateway claims, pass-through tokens.
    pub identity: Authenticator,
    /// The Protected Resource Metadata, when OAuth is on.
    pub resource_metadata: Option<ResourceMetadata>,
    /// `MCP_RATE_LIMIT`, per principal.
    pub rate_limiter: Option<RateLimiter>,
    /// Cancelled when the shutdown grace period is over: calls still running stop, and their
    /// Grail queries are cancelled.
    pub stopping: CancellationToken,
}

/// Builds the state from validated settings: the one outbound HTTP client, the token provider,
/// the signer and the tool registry.
pub fn build_state(settings: Settings) -> anyhow::Result<Arc<AppState>> {
    let extra_ca = match &settings.ca_bundle {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("DT_CA_BUNDLE: cannot read {}", path.display()))?,
        ),
        None => None,
    };
    let http = crate::dynatrace::HttpClient::new(extra_ca.as_deref())?;
    // Spans go out through the same client (its roots, DT_CA_BUNDLE, proxy).
    if let Some(traces) = &settings.traces {
        crate::telemetry::install(traces, http.clone())?;
    }
    let environments = Environments::build(&settings, http.clone(), extra_ca.as_deref())?;
    let signer = match (&settings.signing_key, &settings.credentials) {
        (Some(key), _) => Signer::new(key.expose_secret().as_bytes()),
        (None, Some(credentials)) => {
            let mut material = credentials.fingerprint_material();
            material.extend_from_slice(settings.environment.base().as_bytes());
            Signer::new(&material)
        }
        // Settings refuse this combination (DT_TOKEN_PASSTHROUGH=required needs MCP_SIGNING_KEY).
        (None, None) => {
            anyhow::bail!("MCP_SIGNING_KEY: required when the server holds no Dynatrace credential")
        }
    };
    let tools = tools::registry(&settings);
    let enabled = tools.groups();
    let identity = Authenticator::new(
        settings.identity.clone(),
        settings.mcp_auth_token.as_ref(),
        enabled,
        http,
    )
    .with_environments(environments.iter().map(|e| e.alias.clone()).collect());
    let resource_metadata = settings.identity.oauth.as_ref().map(|oauth| {
        let names = &settings.identity.scope_names;
        let mut scopes: Vec<&str> = enabled.iter().map(|g| names.name(g)).collect();
        // The environments' own scopes (DT_ENVIRONMENTS `scope`), so a client knows to ask for them.
        for spec in &settings.environments {
            if let Some(scope) = spec.scope.as_deref()
                && !scopes.contains(&scope)
            {
                scopes.push(scope);
            }
        }
        ResourceMetadata::new(oauth, &scopes)
    });
    let store: Arc<dyn StateStore> = match &settings.state_table {
        Some(table) => Arc::new(DynamoStore::new(table.clone())),
        None => Arc::new(MemoryStore::default()),
    };
    let rate_limiter = settings
        .identity
        .rate_limit
        .map(|limit| RateLimiter::new(limit, settings.state_table.is_some()));
    Ok(Arc::new(AppState {
        state_policy: if settings.state_fail_closed {
            Policy::FailClosed
        } else {
            Policy::FailOpen
        },
        store,
        tools,
        settings,
        environments,
        signer,
        identity,
        resource_metadata,
        stopping: CancellationToken::new(),
        rate_limiter,
    }))
}

/// The HTTP options for a front door. `bind` is the listening address for `serve` (`None` on
/// Lambda): it decides the default Host and Origin allow-lists.
pub fn http_options(
    settings: &Settings,
    front_door: FrontDoor,
    bind: Option<SocketAddr>,
    shutdown: CancellationToken,
) -> HttpOptions {
    let loopback = bind.is_some_and(|addr| addr.ip().is_loopback());
    let allowed_hosts = match &settings.allowed_hosts {
        Some(hosts) if hosts.is_empty() => None,
        Some(hosts) => Some(hosts.clone()),
        // A server on loopback only answers loopback names (DNS-rebinding protection). Behind a
        // gateway or load balancer the public host name is not known in advance: any Host.
        None if loopback && front_door == FrontDoor::Http => Some(
            ["localhost", "127.0.0.1", "::1", "[::1]"]
                .into_iter()
                .map(String::from)
                .collect(),
        ),
        None => None,
    };
    let allowed_origins = match &settings.allowed_origins {
        Some(origins) => origins.clone(),
        None if loopback => vec![
            "http://localhost:*".to_string(),
            "http://127.0.0.1:*".to_string(),
            "http://[::1]:*".to_string(),
        ],
        // Not a browser-facing server: any Origin is refused unless configured.
        None => Vec::new(),
    };
    HttpOptions {
        allowed_hosts,
        allowed_origins,
        max_request_bytes: settings.max_request_bytes,
        tool_timeout: settings.tool_timeout,
        max_concurrent_requests: settings.max_concurrent_requests,
        shutdown,
    }
}
