//! `dynatrace-mcp`: picks the front door and starts it. Everything else lives in the library.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use dynatrace_mcp::config::{ConfigError, FrontDoor, LogLevel, Settings, Source};
use dynatrace_mcp::logging::{self, LogFormat, LogHandle};
use dynatrace_mcp::{http, lambda, secrets, startup, stdio};
use tokio_util::sync::CancellationToken;

/// `demo` and `sandbox`: the simulated tenant, built with the `sandbox` feature only.
#[cfg(feature = "sandbox")]
mod demo;
#[cfg(not(feature = "sandbox"))]
mod demo {
    //! This build has no simulated tenant (what ships is built with --no-default-features).

    fn not_in_this_build(command: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "`{command}` is not part of this build: the simulated tenant is left out of what ships \
             (built with --no-default-features). Run it from a source checkout with \
             `cargo run --locked -- {command}`"
        )
    }

    pub async fn run_demo(_: u16, _: bool, _: usize) -> anyhow::Result<()> {
        Err(not_in_this_build("demo"))
    }

    pub async fn run_sandbox(_: u16, _: u64, _: usize) -> anyhow::Result<()> {
        Err(not_in_this_build("sandbox"))
    }
}

#[derive(Parser)]
#[command(
    name = "dynatrace-mcp",
    version,
    about = "A Model Context Protocol server for Dynatrace"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP over HTTP (POST /mcp and POST /, GET /health), e.g. in a container.
    Serve {
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        #[arg(long, default_value_t = 3000)]
        port: u16,
    },
    /// Serve MCP over stdin/stdout for one local client (the default without a command).
    Stdio,
    /// Serve MCP against a built-in simulated Dynatrace tenant: no account needed.
    Demo {
        #[arg(long, default_value_t = 3000)]
        port: u16,
        /// Serve the demo over stdio instead of HTTP.
        #[arg(long)]
        stdio: bool,
        /// Simulate this many Dynatrace environments (prod, staging, dev, …), each its own tenant.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=10))]
        environments: u8,
    },
    /// Exit 0 when the local server's /health answers healthy (for a container HEALTHCHECK).
    Healthcheck {
        #[arg(long, default_value_t = 3000)]
        port: u16,
    },
    /// Run only the simulated Dynatrace tenant and print its URL and credentials.
    Sandbox {
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Delay every answer by this many milliseconds (a tenant far away, for load tests).
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Which simulated tenant (1 is the demo's; others have their own id, credentials and data).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
        tenant: u16,
    },
    /// Show or reset the deployment's Grail budget in the shared state table (an operator's action:
    /// needs AWS credentials for the table).
    GrailBudget {
        /// The DynamoDB table (MCP_STATE_TABLE).
        #[arg(long, env = "MCP_STATE_TABLE")]
        table: String,
        /// The environment's alias, with several environments (DT_ENVIRONMENTS): each has its own budget.
        #[arg(long)]
        environment: Option<String>,
        #[command(subcommand)]
        action: BudgetAction,
    },
}

#[derive(Subcommand)]
enum BudgetAction {
    /// Print the bytes and queries counted against DT_GRAIL_QUERY_BUDGET_GB.
    Show,
    /// Set the count back to zero, for every instance.
    Reset,
}

/// On musl (the static binary the image ships), mimalloc instead of musl's malloc, under which the
/// server's memory grew with every call under load (Cargo.toml, bench/README.md).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    dynatrace_mcp::crypto::install();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("dynatrace-mcp: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let on_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let result = runtime.block_on(async move {
        let result = run(cli, on_lambda).await;
        // Whatever the path out (a signal, stdin closed, an error): the spans not yet sent go,
        // within ECS's stop timeout (the grace period took 25 of its 30 s).
        dynatrace_mcp::telemetry::shutdown(Duration::from_secs(3)).await;
        result
    });
    exit_code(result, on_lambda)
}

/// The front door the command line and the environment ask for.
async fn run(cli: Cli, on_lambda: bool) -> anyhow::Result<()> {
    if on_lambda {
        let result = run_lambda().await;
        if let Err(e) = &result {
            lambda::report_init_error(&format!("{e:#}")).await;
        }
        return result;
    }
    match cli.command.unwrap_or(Command::Stdio) {
        Command::Serve { host, port } => run_serve(SocketAddr::new(host, port)).await,
        Command::Stdio => run_stdio().await,
        Command::Demo {
            port,
            stdio,
            environments,
        } => demo::run_demo(port, stdio, environments as usize).await,
        Command::Healthcheck { port } => healthcheck(port).await,
        Command::Sandbox {
            port,
            latency_ms,
            tenant,
        } => demo::run_sandbox(port, latency_ms, tenant as usize).await,
        Command::GrailBudget {
            table,
            environment,
            action,
        } => grail_budget(table, environment, action).await,
    }
}

fn exit_code(result: anyhow::Result<()>, on_lambda: bool) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // On Lambda the log is JSON lines (CloudWatch): the reason is one of them.
        Err(e) if on_lambda => {
            eprintln!(
                "{}",
                serde_json::json!({"level": "ERROR", "message": "start-up failed", "error": format!("{e:#}")})
            );
            ExitCode::FAILURE
        }
        // One line per problem (a registry reports all of its problems at once).
        Err(e) => {
            for line in format!("{e:#}").lines() {
                eprintln!("dynatrace-mcp: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Logging, the secret, validated settings: the cold-start sequence shared by every front door.
async fn load(
    front_door: FrontDoor,
    default_format: LogFormat,
) -> anyhow::Result<(Settings, LogHandle)> {
    let mut source = Source::from_env();
    let level = LogLevel::from_source(&source)?;
    let format = LogFormat::from_env_or(default_format)?;
    let log = logging::init(level, format);
    if let Some(secret_id) = source.secret_id().map(str::to_string) {
        let started = std::time::Instant::now();
        let secret = secrets::read_secret(&secret_id).await?;
        let unknown = source.overlay_secret(&secret)?;
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "read settings from Secrets Manager"
        );
        if !unknown.is_empty() {
            tracing::warn!(keys = ?unknown, "the secret has keys this server does not use; check their spelling");
        }
    }
    let mut settings = Settings::from_source(&source, front_door)?;
    if settings.environments.iter().any(|e| {
        matches!(
            e.credential,
            dynatrace_mcp::environments::CredentialSpec::Secret(_)
        )
    }) {
        let started = std::time::Instant::now();
        settings.resolve_environment_secrets().await?;
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "read the environments' secrets from Secrets Manager"
        );
    }
    log.set_level(settings.log_level, settings.identity.audit);
    tracing::info!(settings = ?settings.summary(), version = dynatrace_mcp::VERSION, "configuration loaded");
    Ok((settings, log))
}

/// Whether the server itself authenticates callers (static token, OAuth, or the gateway's
/// authorizer claims on Lambda).
fn authenticates(settings: &Settings) -> bool {
    settings.mcp_auth_token.is_some()
        || settings.identity.oauth.is_some()
        || settings.identity.trust_gateway
}

async fn run_lambda() -> anyhow::Result<()> {
    let (settings, _log) = load(FrontDoor::Lambda, LogFormat::Json).await?;
    // A function URL or API Gateway is reachable from anywhere: as for `serve` on a public address,
    // no way to authenticate callers means no start, unless the front (IAM auth, an authorizer)
    // authenticates them.
    if !authenticates(&settings) && !settings.allow_unauthenticated {
        return Err(ConfigError::new(
            "MCP_AUTH_TOKEN",
            "is required on Lambda unless MCP_OAUTH_ISSUER or MCP_TRUST_GATEWAY_AUTHORIZER is set: put it in the \
             DT_SECRET_ID secret (or set it), or set MCP_ALLOW_UNAUTHENTICATED=1 if the function URL or API Gateway \
             authenticates every caller",
        )
        .into());
    }
    let options =
        startup::http_options(&settings, FrontDoor::Lambda, None, CancellationToken::new());
    let state = startup::build_state(settings)?;
    let router = http::router(state, options);
    lambda::run(router)
        .await
        .map_err(|e| anyhow::anyhow!("Lambda runtime: {e}"))
}

async fn run_serve(bind: SocketAddr) -> anyhow::Result<()> {
    let (settings, _log) = load(FrontDoor::Http, LogFormat::Json).await?;
    if !bind.ip().is_loopback() && !authenticates(&settings) && !settings.allow_unauthenticated {
        return Err(ConfigError::new(
            "MCP_AUTH_TOKEN",
            format!(
                "is required when serving on {bind} (a non-loopback address) unless MCP_OAUTH_ISSUER is set: set \
                 one of them, or set MCP_ALLOW_UNAUTHENTICATED=1 if a gateway in front authenticates every caller"
            ),
        )
        .into());
    }
    let options = startup::http_options(
        &settings,
        FrontDoor::Http,
        Some(bind),
        CancellationToken::new(),
    );
    let limits = serve_limits(&settings);
    let grace = settings.shutdown_grace;
    let state = startup::build_state(settings)?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
    tracing::info!(address = %bind, "serving MCP at POST /mcp and POST /, health at GET /health");
    serve_until_signal(listener, state, options, grace, limits).await
}

fn serve_limits(settings: &Settings) -> http::ServeLimits {
    http::ServeLimits {
        header_read_timeout: settings.header_read_timeout,
        max_connections: settings.max_connections,
    }
}

/// Serves `state` on `listener` until SIGTERM or Ctrl-C, then drains: the calls in flight get
/// `grace` to finish, the rest are cancelled, and the query cancellations they leave behind are
/// awaited before exit (shared by `serve` and `demo`).
async fn serve_until_signal(
    listener: tokio::net::TcpListener,
    state: std::sync::Arc<startup::AppState>,
    options: http::HttpOptions,
    grace: Duration,
    limits: http::ServeLimits,
) -> anyhow::Result<()> {
    // rmcp's token (cancelled once every connection is done), the tools' token (cancelled when
    // the grace period is over) and the query cancellations the cancelled calls left behind.
    let rmcp = options.shutdown.clone();
    let stopping = state.stopping.clone();
    let background = state.environments.background().clone();
    let router = http::router(state, options);
    // The signal stops accepting and lets the calls in flight finish. Those still running when
    // the grace period is over are cancelled (each answers that the server is stopping, and its
    // Grail query is cancelled), so that ECS's SIGKILL at `stopTimeout` finds nothing running.
    let stop = CancellationToken::new();
    let signal = stop.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        signal.cancel();
    });
    let serving = http::serve(listener, router, stop.clone(), limits);
    tokio::pin!(serving);
    tokio::select! {
        served = &mut serving => served?,
        _ = async { stop.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(
                grace_seconds = grace.as_secs(),
                "calls still running after the grace period are cancelled"
            );
            stopping.cancel();
            match tokio::time::timeout(Duration::from_secs(3), &mut serving).await {
                Ok(served) => served?,
                Err(_) => tracing::warn!("connections still open after the cancellations; exiting"),
            }
        }
    }
    rmcp.cancel();
    background.close();
    if tokio::time::timeout(Duration::from_secs(5), background.wait())
        .await
        .is_err()
    {
        tracing::warn!("a query cancellation did not finish within 5 s; exiting");
    }
    tracing::info!("every request finished; stopped");
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn run_stdio() -> anyhow::Result<()> {
    let (settings, _log) = load(FrontDoor::Stdio, LogFormat::Text).await?;
    let state = startup::build_state(settings)?;
    stdio::serve(state).await
}

async fn grail_budget(
    table: String,
    environment: Option<String>,
    action: BudgetAction,
) -> anyhow::Result<()> {
    use dynatrace_mcp::state::StateStore;
    let key = match environment.as_deref() {
        None => dynatrace_mcp::tools::budget::DEPLOYMENT_KEY.to_string(),
        Some(alias) if dynatrace_mcp::environments::valid_alias(alias) => {
            dynatrace_mcp::tools::budget::deployment_key(alias)
        }
        Some(_) => {
            anyhow::bail!("--environment: expected an alias of DT_ENVIRONMENTS, such as prod")
        }
    };
    let whose = match &environment {
        Some(alias) => format!("the environment {alias}'s queries"),
        None => "the deployment's queries".to_string(),
    };
    let store = dynatrace_mcp::state::dynamodb::DynamoStore::new(table.clone());
    let deadline = dynatrace_mcp::deadline::Deadline::after(Duration::from_secs(10));
    let count = store.get(&key, deadline).await?;
    println!(
        "table {table}: {whose} scanned {} bytes in {} queries since the last reset",
        count.amount, count.events
    );
    if let BudgetAction::Reset = action {
        store.reset(&key, deadline).await?;
        println!("reset: the count is 0 for every instance");
    }
    Ok(())
}

async fn healthcheck(port: u16) -> anyhow::Result<()> {
    let url = format!("http://127.0.0.1:{port}/health");
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?
        .get(&url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url} did not answer: {e}"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if status.is_success() && body.get("status").and_then(|s| s.as_str()) == Some("healthy") {
        Ok(())
    } else {
        anyhow::bail!("{url} answered {status}: {body}")
    }
}
