//! Logging with `tracing`: JSON lines for CloudWatch (Lambda, ECS), readable text for people.
//! Always on stderr: in stdio mode stdout belongs to the protocol, and CloudWatch captures both.
//!
//! The level can change once after start-up, when the Secrets Manager secret carries
//! `MCP_LOG_LEVEL`: the filter sits behind a reload handle.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogLevel;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

impl LogFormat {
    /// `MCP_LOG_FORMAT` (`json` or `text`), else the front door's default.
    pub fn from_env_or(default: LogFormat) -> Result<Self, crate::config::ConfigError> {
        match std::env::var("MCP_LOG_FORMAT")
            .ok()
            .as_deref()
            .map(str::trim)
        {
            None | Some("") => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
            Some(v) if v.eq_ignore_ascii_case("text") => Ok(LogFormat::Text),
            Some(_) => Err(crate::config::ConfigError::new(
                "MCP_LOG_FORMAT",
                "expected json or text",
            )),
        }
    }
}

/// Changes the level after start-up.
pub struct LogHandle(Option<reload::Handle<Targets, tracing_subscriber::Registry>>);

impl LogHandle {
    /// The level, and whether audit lines are written (`MCP_AUDIT_LOG`).
    pub fn set_level(&self, level: LogLevel, audit: bool) {
        if let Some(handle) = &self.0 {
            let _ = handle.modify(|filter| *filter = filter_for(level, audit));
        }
    }
}

/// Fixed per-target levels: `Targets`, not `EnvFilter`, whose directive parser brings a regex
/// engine into the binary for nothing we use.
fn filter_for(level: LogLevel, audit: bool) -> Targets {
    // Our crate at the chosen level; dependencies quieter (rmcp logs every stateless request at
    // info, which would be one CloudWatch line per call for nothing). Audit lines (target
    // `audit`) are kept whatever the level, unless switched off.
    let ours = level.as_filter();
    let deps = match level {
        LogLevel::Trace => "debug",
        LogLevel::Debug => "info",
        LogLevel::Info | LogLevel::Warn => "warn",
        other => other.as_filter(),
    };
    let audit = if audit { "info" } else { "off" };
    // rmcp logs whole requests and results at debug and trace (tool arguments: email bodies,
    // recipients, DQL, confirmation tokens). Logs shipped to CloudWatch at `trace` must still be
    // safe to keep: rmcp stays at info at most.
    let rmcp = match level {
        LogLevel::Trace | LogLevel::Debug => "info",
        _ => deps,
    };
    let level = |name: &str| name.parse().unwrap_or(LevelFilter::INFO);
    Targets::new()
        .with_default(level(deps))
        .with_target("rmcp", level(rmcp))
        .with_target("dynatrace_mcp", level(ours))
        .with_target("dynatrace_sandbox", level(ours))
        .with_target("audit", level(audit))
}

/// Installs the global subscriber. Calling it twice (tests) is harmless.
pub fn init(level: LogLevel, format: LogFormat) -> LogHandle {
    let (filter, handle) = reload::Layer::new(filter_for(level, true));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_target(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    LogHandle(result.ok().map(|_| handle))
}
