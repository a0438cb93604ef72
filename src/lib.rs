//! dynatrace-mcp: a Model Context Protocol server for the Dynatrace platform.
//!
//! One MCP handler, three front doors:
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | `Settings`: environment, CLI flags and the Secrets Manager JSON, validated once; secrets stay `SecretString` |
//! | [`environments`] | the registry of Dynatrace environments (`DT_ENVIRONMENTS`): aliases, credentials, secrets read at cold start |
//! | [`secrets`] | reads the Secrets Manager secret at cold start |
//! | [`startup`] | builds the shared `AppState` and the axum `Router` (used by `main`, the tests and the benchmark) |
//! | [`cors`] | browser origins: parsed once, matched with their ports, answered with CORS |
//! | [`http`] | the Router: MCP at `POST /mcp` and `POST /`, `GET /health`, the OAuth resource metadata, Accept normalisation, limits |
//! | [`identity`] | who is calling: static token, OAuth JWTs, API Gateway authorizer claims, pass-through Dynatrace tokens; scopes → tool groups; rate limit; audit |
//! | [`lambda`] | runs the same Router under `lambda_http`, with a per-request deadline from the Lambda context |
//! | [`stdio`] | the same MCP handler over stdin/stdout |
//! | [`mcp`] | the rmcp adapter: `McpServer`, the tool registry and the one place where errors become tool results |
//! | [`tools`] | the tools: plain async functions over our own types, one file per tool group |
//! | [`dynatrace`] | the outbound client: token provider, retries, Grail query execute/poll/cancel/verify |
//! | [`metrics`] | one CloudWatch EMF record per tool call |
//! | [`telemetry`] | OpenTelemetry spans over OTLP/HTTP: one per MCP request, one per Dynatrace request, W3C context in and out |
//! | [`state`] | what every instance must agree on: single-use confirmations, Grail budgets, rate-limit windows; in memory or in one DynamoDB table |
//!
//! The simulated Dynatrace tenant is its own crate, `dynatrace-sandbox` (`sandbox/`), re-exported as
//! `sandbox` with the `sandbox` feature.
//!
//! rmcp, the MCP SDK, is pinned exactly and only `mcp`, `http` and `stdio` name it: tool code works
//! on [`tools::ToolContext`] and returns [`tools::ToolOutput`], so an SDK upgrade touches the adapter only.

pub mod aws;
pub mod config;
pub mod cors;
pub mod crypto;
pub mod deadline;
pub mod dynatrace;
pub mod environments;
pub mod http;
pub mod identity;
pub mod lambda;
pub mod logging;
pub mod mcp;
pub mod metrics;
pub mod secrets;
pub mod signing;
pub mod startup;
pub mod state;
pub mod stdio;
pub mod telemetry;

/// The simulated tenant, with the `sandbox` feature (on by default, off in what ships).
#[cfg(feature = "sandbox")]
pub use dynatrace_sandbox as sandbox;
pub mod tools;

/// The name every front door reports, as the seed's health check expects it.
pub const SERVER_NAME: &str = "Dynatrace MCP Server";
/// The crate version, reported by `/health`, `initialize` and `server/discover`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
