//! One audit line per tool call: who (principal, source, client, a fingerprint of a caller's own
//! Dynatrace token), what (tool, the DQL sent to Grail), what it cost (Grail bytes scanned,
//! result bytes), how it ended (outcome, latency) and which request it was.
//!
//! The line is a `tracing` event with target `audit`, so it lands in the same stream as the
//! logs (JSON on Lambda and ECS, which CloudWatch Logs Insights can query field by field) and is
//! kept at `info` whatever `MCP_LOG_LEVEL` says, unless `MCP_AUDIT_LOG=off`. Nothing secret goes
//! in: tokens never, tool arguments only as the DQL text, which the caller wrote.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Principal;

/// An id for one request, for the audit line and the `x-request-id` answer header: the Lambda
/// invocation's request id, else a new one. A caller's own `x-request-id` is kept beside it
/// (`client`), never in its place: the audit trail's ids are the server's.
#[derive(Debug, Clone)]
pub struct RequestId {
    pub id: String,
    pub client: Option<String>,
}

/// The longest DQL text kept in one audit line; longer text is cut and says so.
const MAX_DQL_CHARS: usize = 4096;

/// What a tool call did, collected while it runs (tools report through `ToolContext`).
#[derive(Debug, Default)]
pub struct CallRecord {
    queries: Mutex<Vec<String>>,
    scanned_bytes: AtomicU64,
    /// The Grail budget counts this call saw after its queries.
    totals: Mutex<Totals>,
    /// Things that went wrong but did not stop the call (the state store could not count), for the
    /// answer's metadata.
    warnings: Mutex<Vec<String>>,
    /// The environments the call used (aliases), set when the call named one or fanned out.
    environments: Mutex<Vec<String>>,
    /// Requests to Dynatrace sent again after a 429 or 503 (for the metrics).
    retries: AtomicU64,
}

tokio::task_local! {
    /// The record of the tool call this task is running, so code far below the tool (the
    /// Dynatrace client's retry loop) can report to it. A fan-out's parts run in the same task
    /// and report to the call's own record.
    static CURRENT: std::sync::Arc<CallRecord>;
}

/// Runs `call` with `record` as the current call's record ([`note_retry`]).
pub async fn scope<F: std::future::Future>(
    record: std::sync::Arc<CallRecord>,
    call: F,
) -> F::Output {
    CURRENT.scope(record, call).await
}

/// A request to Dynatrace is being retried: counted on the current call's record, if any.
pub fn note_retry() {
    let _ = CURRENT.try_with(|record| record.retries.fetch_add(1, Ordering::Relaxed));
}

/// The Grail budget counts a call saw ([`crate::tools::budget::record`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    pub deployment: Option<crate::state::Count>,
    pub user: Option<crate::state::Count>,
}

impl CallRecord {
    /// A DQL statement sent to Grail.
    pub fn query(&self, statement: &str) {
        self.queries
            .lock()
            .expect("call record lock")
            .push(statement.to_string());
    }

    /// Bytes a finished query scanned.
    pub fn scanned(&self, bytes: u64) {
        self.scanned_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn scanned_bytes(&self) -> u64 {
        self.scanned_bytes.load(Ordering::Relaxed)
    }

    /// Requests to Dynatrace this call sent again ([`note_retry`]).
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    pub fn totals(&self) -> Totals {
        *self.totals.lock().expect("call record lock")
    }

    pub fn set_totals(&self, totals: Totals) {
        *self.totals.lock().expect("call record lock") = totals;
    }

    /// A problem that did not stop the call; each distinct one is kept once.
    pub fn warn(&self, warning: String) {
        let mut warnings = self.warnings.lock().expect("call record lock");
        if !warnings.contains(&warning) {
            warnings.push(warning);
        }
    }

    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().expect("call record lock").clone()
    }

    /// The call used the environment `alias`.
    pub fn environment(&self, alias: &str) {
        self.environments
            .lock()
            .expect("call record lock")
            .push(alias.to_string());
    }

    /// The environments used, comma-separated.
    pub fn environments(&self) -> Option<String> {
        let list = self.environments.lock().expect("call record lock");
        (!list.is_empty()).then(|| list.join(","))
    }

    /// Takes in what one environment's part of a fan-out did: its queries, bytes and warnings
    /// (labelled with the alias).
    pub fn absorb(&self, alias: &str, part: &CallRecord) {
        self.environment(alias);
        self.queries
            .lock()
            .expect("call record lock")
            .extend(part.queries.lock().expect("call record lock").drain(..));
        self.scanned(part.scanned_bytes());
        let mut warnings = self.warnings.lock().expect("call record lock");
        for warning in part.warnings() {
            warnings.push(format!("{alias}: {warning}"));
        }
    }

    /// The statements, separated by a line `;;`, cut at [`MAX_DQL_CHARS`].
    pub fn dql(&self) -> Option<String> {
        let queries = self.queries.lock().expect("call record lock");
        if queries.is_empty() {
            return None;
        }
        let joined = queries.join("\n;;\n");
        Some(cut(&joined, MAX_DQL_CHARS))
    }
}

/// `text` cut to at most `max` characters, with a note of what was left out.
pub fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((at, _)) => format!("{}…[{} more bytes]", &text[..at], text.len() - at),
    }
}

/// The parts of an audit line that are not in the [`CallRecord`].
pub struct Entry<'a> {
    pub principal: &'a Principal,
    pub tool: &'a str,
    pub outcome: &'a str,
    pub result_bytes: usize,
    pub latency_ms: u64,
    pub request_id: Option<&'a RequestId>,
}

pub fn emit(entry: &Entry<'_>, record: &CallRecord) {
    let p = entry.principal;
    // With traces on, the call's own span: the line leads to its trace.
    let ids = crate::telemetry::current_ids();
    tracing::info!(
        target: "audit",
        principal = %p.subject,
        name = p.name.as_deref(),
        client_id = p.client_id.as_deref(),
        source = p.source.name(),
        dt_token = p.dynatrace_token.as_ref().map(|t| t.fingerprint()),
        tool = entry.tool,
        environment = record.environments().as_deref(),
        dql = record.dql().as_deref(),
        scanned_bytes = record.scanned_bytes(),
        result_bytes = entry.result_bytes as u64,
        outcome = entry.outcome,
        latency_ms = entry.latency_ms,
        request_id = entry.request_id.map(|r| r.id.as_str()),
        client_request_id = entry.request_id.and_then(|r| r.client.as_deref()),
        trace_id = ids.as_ref().map(|(trace, _)| trace.as_str()),
        span_id = ids.as_ref().map(|(_, span)| span.as_str()),
        "tool call"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dql_is_joined_and_cut() {
        let record = CallRecord::default();
        assert_eq!(record.dql(), None);
        record.query("fetch logs");
        record.query("fetch events");
        assert_eq!(record.dql().unwrap(), "fetch logs\n;;\nfetch events");
        let long = "x".repeat(5000);
        let cut_text = cut(&long, 10);
        assert_eq!(cut_text, "xxxxxxxxxx…[4990 more bytes]");
        assert_eq!(cut("äöü", 2), "äö…[2 more bytes]");
    }
}
