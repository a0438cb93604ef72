//! `execute_dql` and `verify_dql`: run and check DQL against Grail.
//!
//! A query that is still running when the call's deadline nears is not an error: the answer
//! carries a signed `queryHandle` that the model passes back to `execute_dql` to fetch the result.
//! The handle holds Grail's request token, so any instance can continue it; a query whose caller
//! goes away is cancelled in Grail.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::format::{self, OutputFormat, human_bytes, lenient_u32, render_records};
use super::{Annotations, ToolContext, ToolDef, ToolError, ToolOutput, budget};
use crate::dynatrace::dql::{Cursor, with_cursor};
use crate::dynatrace::grail::{
    ExecuteRequest, GrailMetadata, Notification, QueryGuard, QueryResult, QueryRun, RecordCap,
};
use crate::dynatrace::scopes;
use crate::signing::HandleError;

const DEFAULT_RECORD_LIMIT: u32 = 50;
const MAX_RECORD_LIMIT: u32 = 10_000;
const DEFAULT_SIZE_LIMIT_MB: u32 = 1;
const MAX_SIZE_LIMIT_MB: u32 = 10;
/// The smallest `maxResultBytes` asked of Grail, whatever the response budget.
const MIN_GRAIL_BYTES: u64 = 64 * 1024;
/// How long a query handle stays valid (Grail keeps a finished result for a minute after it is
/// ready; a running query's token lives while the query runs).
const HANDLE_TTL: Duration = Duration::from_secs(10 * 60);
const HANDLE_KIND: &str = "dql-query";

/// Arguments of `execute_dql`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteParams {
    /// The DQL statement to run, e.g. `fetch logs | filter loglevel == "ERROR" | sort timestamp desc | limit 20`.
    /// Required unless `queryHandle` is given.
    #[serde(default, rename = "dqlStatement")]
    pub dql_statement: Option<String>,
    /// Maximum number of records to return (1-10000, default 50). Results are also cut to fit the
    /// response size budget; the answer says so when that happens.
    #[serde(default, rename = "recordLimit", deserialize_with = "lenient_u32")]
    #[schemars(range(min = 1, max = 10000))]
    pub record_limit: Option<u32>,
    /// Maximum size of the result Grail returns, in MB (1-10, default 1).
    #[serde(
        default,
        rename = "recordSizeLimitMB",
        deserialize_with = "lenient_u32"
    )]
    #[schemars(range(min = 1, max = 10))]
    pub record_size_limit_mb: Option<u32>,
    /// How records appear in the text: `compact` (one JSON object per line, the default), `full`
    /// (a pretty-printed JSON array) or `lines` (only the `content` field, e.g. log lines).
    #[serde(default, rename = "outputFormat")]
    pub output_format: Option<OutputFormat>,
    /// Return only these fields of each record.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    /// Pagination: the `continueFrom` value of the previous answer; returns the records older than
    /// it. The statement must sort by timestamp descending.
    #[serde(default, rename = "continueFrom")]
    pub continue_from: Option<String>,
    /// The `queryHandle` of an earlier answer whose query was still running: fetches its result.
    #[serde(default, rename = "queryHandle")]
    pub query_handle: Option<String>,
}

/// What a `queryHandle` carries: Grail's request token and how the result is to be shaped.
#[derive(Debug, Serialize, Deserialize)]
struct HandlePayload {
    /// Grail request token.
    t: String,
    /// Record limit of the original call.
    n: u32,
    /// OAuth scopes the query was started with.
    s: String,
    /// The caller it was issued to ([`crate::identity::Principal::binding`]): another caller's
    /// handle is refused, so nobody fetches a result they did not ask for.
    #[serde(default)]
    p: String,
    /// The environment (alias) the query runs in; empty in handles from before several
    /// environments, which belong to the default one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    e: String,
}

#[derive(Debug, Clone, Copy, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum QueryStatus {
    /// The query finished; `records` holds the result.
    Succeeded,
    /// The query is still running; call `execute_dql` again with `queryHandle`.
    Running,
}

/// `structuredContent` of `execute_dql`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteOutput {
    pub status: QueryStatus,
    /// The records shown, in Grail's JSON encoding (longs and durations arrive as strings).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub records: Vec<Value>,
    /// Grail's field types; each entry's `indexRange` refers to positions in `records`.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub types: Vec<Value>,
    /// How many records are in `records`.
    pub returned_records: usize,
    /// Whether Grail has more records than were returned.
    pub has_more: bool,
    /// Whether records were left out to fit the response size budget.
    pub truncated: bool,
    /// Pass as `continueFrom` to get the next page (when the records carry a timestamp).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continue_from: Option<String>,
    /// Pass as `queryHandle` to fetch the result of a running query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_handle: Option<String>,
    /// Progress of a running query in percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<u32>,
    /// Grail's query metadata (scanned bytes and records, execution time, notifications…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scanned_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scanned_records: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_time_milliseconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis_timeframe: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub notifications: Vec<NotificationOut>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl From<&Notification> for NotificationOut {
    fn from(n: &Notification) -> Self {
        Self {
            severity: n.severity.clone(),
            notification_type: n.notification_type.clone(),
            message: n.message.clone(),
        }
    }
}

impl From<&GrailMetadata> for Metadata {
    fn from(g: &GrailMetadata) -> Self {
        Self {
            query_id: g.query_id.clone(),
            scanned_bytes: g.scanned_bytes,
            scanned_records: g.scanned_records,
            execution_time_milliseconds: g.execution_time_milliseconds,
            sampled: g.sampled,
            analysis_timeframe: g.analysis_timeframe.clone(),
            notifications: g.notifications.iter().map(NotificationOut::from).collect(),
        }
    }
}

pub fn execute_definition() -> ToolDef {
    ToolDef::new::<ExecuteParams, _, _>(
        "execute_dql",
        "Execute DQL",
        "Run a Dynatrace Query Language (DQL) statement against Grail and return the records: logs, \
         events, spans, metrics (timeseries), entities, problems and more. Check a statement with \
         verify_dql first when unsure. Add a timeframe and a limit to keep queries cheap. If the \
         query is still running when the answer is due, the answer carries a queryHandle: call \
         execute_dql again with it to fetch the result.",
        Annotations::READ,
        run_execute,
    )
    .with_output::<ExecuteOutput>()
}

async fn run_execute(ctx: ToolContext, params: ExecuteParams) -> Result<ToolOutput, ToolError> {
    let format = params.output_format.unwrap_or_default();
    let fields = params.fields.clone().unwrap_or_default();
    let payload = match params.query_handle.as_deref() {
        Some(handle) => Some(
            ctx.state
                .signer
                .open::<HandlePayload>(HANDLE_KIND, handle)
                .map_err(|e| match e {
                    HandleError::Invalid => {
                        ToolError::InvalidArguments(format!("queryHandle: {e}"))
                    }
                    HandleError::Expired(_) => ToolError::Refused(format!(
                        "queryHandle: {e} by running the statement again with execute_dql"
                    )),
                })?,
        ),
        None => None,
    };
    let ctx = match &payload {
        Some(payload) => in_handle_environment(ctx, payload)?,
        None => ctx,
    };
    let client = ctx.dynatrace.clone();
    // Records past twice what the text half of the budget shows are counted, not parsed.
    let cap = RecordCap {
        bytes: Some(ctx.result_budget),
        fields: fields.clone(),
    };

    let (run, limit, scopes) = if let Some(payload) = payload {
        if payload.p != ctx.principal.binding() {
            return Err(ToolError::Refused(
                "this queryHandle was issued to another caller, so its result is not yours to fetch: \
                 run the statement yourself with execute_dql"
                    .into(),
            ));
        }
        let guard = QueryGuard::new(client.clone(), &payload.s);
        let run = tokio::select! {
            run = client.resume_query(&payload.t, &payload.s, ctx.deadline, &guard, &cap) => run?,
            _ = ctx.cancel.cancelled() => return Err(cancelled(&ctx)),
        };
        record_scanned(&ctx, &run).await;
        (run, payload.n, payload.s)
    } else {
        let statement = params
            .dql_statement
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ToolError::InvalidArguments(
                    "dqlStatement is required: give the DQL statement to run (or a queryHandle from an earlier answer)"
                        .into(),
                )
            })?;
        let limit = params.record_limit.unwrap_or(DEFAULT_RECORD_LIMIT);
        if !(1..=MAX_RECORD_LIMIT).contains(&limit) {
            return Err(ToolError::InvalidArguments(format!(
                "recordLimit must be between 1 and {MAX_RECORD_LIMIT}, got {limit}"
            )));
        }
        let size_mb = params.record_size_limit_mb.unwrap_or(DEFAULT_SIZE_LIMIT_MB);
        if !(1..=MAX_SIZE_LIMIT_MB).contains(&size_mb) {
            return Err(ToolError::InvalidArguments(format!(
                "recordSizeLimitMB must be between 1 and {MAX_SIZE_LIMIT_MB}, got {size_mb}"
            )));
        }
        let query = match params.continue_from.as_deref() {
            Some(raw) => {
                let cursor = Cursor::parse(raw).map_err(ToolError::InvalidArguments)?;
                with_cursor(statement, &cursor)
            }
            None => statement.to_string(),
        };
        let max_bytes = grail_byte_limit(size_mb, fields.is_empty(), ctx.result_budget);
        // One more than asked for tells whether more records exist.
        let (run, scopes) = start_query(&ctx, query, u64::from(limit) + 1, max_bytes, &cap).await?;
        (run, limit, scopes)
    };

    match run {
        QueryRun::Running {
            request_token,
            progress,
        } => {
            let handle = issue_handle(&ctx, request_token, limit, scopes);
            Ok(running_output(handle, progress))
        }
        QueryRun::Finished(result) => {
            let mut output = finished_output(
                *result,
                limit,
                format,
                ctx.result_budget,
                ctx.record.totals().deployment.map(|c| c.amount),
            );
            if let Some(note) = budget::note(&ctx) {
                output.text.push('\n');
                output.text.push_str(&note);
            }
            Ok(output)
        }
    }
}

/// The `maxResultBytes` asked of Grail. The records shown are those whose compact JSON fits half
/// the response budget (the other half carries them in structuredContent); the rest are dropped.
/// So without a `fields` projection (which shrinks records after they arrive) Grail is asked for
/// 60 % of the budget, a fifth more than can be shown: a 10,000-record query then costs the server
/// about as much memory and transfer as the answer it produces, not as recordSizeLimitMB allows.
/// The records left out stay reachable with `continueFrom`.
fn grail_byte_limit(size_mb: u32, whole_records: bool, budget: usize) -> u64 {
    let asked = u64::from(size_mb) * 1024 * 1024;
    if whole_records {
        asked.min((budget as u64 * 3 / 5).max(MIN_GRAIL_BYTES))
    } else {
        asked
    }
}

/// Whether Grail cut the result at `maxResultBytes` (rather than at `maxResultRecords`).
fn cut_by_bytes(grail: Option<&GrailMetadata>) -> bool {
    grail.is_some_and(|g| {
        g.notifications.iter().any(|n| {
            n.notification_type
                .as_deref()
                .is_some_and(|t| t.to_ascii_uppercase().contains("TRUNCAT"))
        })
    })
}

/// The context of the environment a handle's query runs in. A call that named another
/// environment is refused; one that named none follows the handle.
fn in_handle_environment(
    ctx: ToolContext,
    payload: &HandlePayload,
) -> Result<ToolContext, ToolError> {
    let registry = &ctx.state.environments;
    let alias = if payload.e.is_empty() {
        registry.default_environment().alias.as_str()
    } else {
        payload.e.as_str()
    };
    if ctx.environment.alias.eq_ignore_ascii_case(alias) {
        // The call took the default without checking access (it follows the handle): check it now,
        // for a caller whose scopes changed since the query started.
        if !ctx.environment.allows(&ctx.principal) {
            return Err(refused_environment(alias));
        }
        return Ok(ctx);
    }
    if ctx.explicit_environment {
        return Err(ToolError::InvalidArguments(format!(
            "this queryHandle belongs to a query in the environment `{alias}`, not `{}`: call execute_dql with \
             the queryHandle and without environment (or with environment \"{alias}\")",
            ctx.environment.alias
        )));
    }
    let Some(environment) = registry.get(alias) else {
        return Err(ToolError::Refused(format!(
            "this queryHandle belongs to the environment `{alias}`, which this server no longer serves: \
             run the statement again with execute_dql"
        )));
    };
    if !environment.allows(&ctx.principal) {
        return Err(refused_environment(alias));
    }
    ctx.record.environment(alias);
    Ok(ctx.in_environment(environment.clone(), false))
}

fn refused_environment(alias: &str) -> ToolError {
    ToolError::Refused(format!(
        "this queryHandle belongs to the environment `{alias}`, which your credential does not allow"
    ))
}

fn issue_handle(ctx: &ToolContext, request_token: String, limit: u32, scopes: String) -> String {
    ctx.state.signer.issue(
        HANDLE_KIND,
        &HandlePayload {
            t: request_token,
            n: limit,
            s: scopes,
            p: ctx.principal.binding(),
            e: ctx.environment.alias.clone(),
        },
        HANDLE_TTL,
    )
}

/// Starts `statement` in Grail: the budget gate, the scan limit, the scopes it needs, and
/// cancellation in Grail when the caller goes away. Returns the run (finished, or still running
/// at the deadline) and the scopes, which a queryHandle carries.
async fn start_query(
    ctx: &ToolContext,
    statement: String,
    max_records: u64,
    max_bytes: u64,
    cap: &RecordCap,
) -> Result<(QueryRun, String), ToolError> {
    budget::check(ctx).await?;
    let client = &ctx.dynatrace;
    let scopes = scopes::for_dql(&statement);
    let request = ExecuteRequest {
        query: statement,
        max_result_records: Some(max_records),
        max_result_bytes: Some(max_bytes),
        default_scan_limit_gbytes: ctx.state.settings.query_scan_limit_gb,
        ..Default::default()
    };
    ctx.record.query(&request.query);
    let guard = QueryGuard::new(client.clone(), &scopes);
    let run = tokio::select! {
        run = client.run_query(&request, &scopes, ctx.deadline, &guard, cap) => run?,
        _ = ctx.cancel.cancelled() => return Err(cancelled(ctx)),
    };
    record_scanned(ctx, &run).await;
    Ok((run, scopes))
}

/// Adds what a finished query scanned to the call's audit record and the Grail budgets.
async fn record_scanned(ctx: &ToolContext, run: &QueryRun) {
    if let QueryRun::Finished(result) = run {
        let scanned = result
            .metadata
            .grail
            .as_ref()
            .and_then(|g| g.scanned_bytes)
            .unwrap_or(0);
        ctx.record.scanned(scanned);
        budget::record(ctx, scanned).await;
    }
}

/// Runs a statement built by another tool ([`start_query`]); a query still running at the
/// deadline is answered with a queryHandle for execute_dql. Returns the finished result.
pub(crate) async fn run_statement(
    ctx: &ToolContext,
    statement: String,
    max_records: u64,
    max_bytes: u64,
) -> Result<QueryResult, ToolError> {
    let (run, scopes) =
        start_query(ctx, statement, max_records, max_bytes, &RecordCap::ALL).await?;
    match run {
        QueryRun::Finished(result) => Ok(*result),
        QueryRun::Running { request_token, .. } => {
            let handle = issue_handle(
                ctx,
                request_token,
                max_records.min(u64::from(MAX_RECORD_LIMIT)) as u32,
                scopes,
            );
            Err(ToolError::Refused(format!(
                "the query is still running in Grail. Call execute_dql with queryHandle \"{handle}\" to fetch its raw records \
                 when it finishes (valid for {} minutes), or call this tool again with a shorter timeframe",
                HANDLE_TTL.as_secs() / 60
            )))
        }
    }
}

/// The budget warning, if any, as a line to append to a tool's text.
pub(crate) fn budget_note(ctx: &ToolContext) -> Option<String> {
    budget::note(ctx)
}

fn cancelled(ctx: &ToolContext) -> ToolError {
    if ctx.state.stopping.is_cancelled() {
        return ToolError::Refused(
            "this server instance is shutting down and cancelled the query in Grail: \
             run the same call again (another instance will answer)"
                .into(),
        );
    }
    ToolError::Refused(
        "the call was cancelled by the client; the query was cancelled in Grail".into(),
    )
}

fn running_output(handle: String, progress: Option<u32>) -> ToolOutput {
    let progress_text = progress
        .map(|p| format!(" ({p}% done)"))
        .unwrap_or_default();
    let text = format!(
        "The query is still running in Grail{progress_text}. To fetch its result, call execute_dql \
         again with queryHandle set to:\n{handle}\nThe handle is valid for {} minutes.",
        HANDLE_TTL.as_secs() / 60
    );
    let output = ExecuteOutput {
        status: QueryStatus::Running,
        records: Vec::new(),
        types: Vec::new(),
        returned_records: 0,
        has_more: false,
        truncated: false,
        continue_from: None,
        query_handle: Some(handle),
        progress,
        metadata: None,
    };
    ToolOutput::text(text).with_structured(&output)
}

fn finished_output(
    result: QueryResult,
    limit: u32,
    format: OutputFormat,
    budget: usize,
    total_scanned: Option<u64>,
) -> ToolOutput {
    let QueryResult {
        mut records,
        mut types,
        metadata,
        left_out,
    } = result;
    let grail = metadata.grail.as_ref();
    let has_more = records.len() > limit as usize || cut_by_bytes(grail) || left_out > 0;
    // Records arrive projected to `fields` (RecordCap, when Grail's answer is decoded).
    records.truncate(limit as usize);

    // The text block and structuredContent each get half the budget.
    let rendered = render_records(&records, format, budget / 2);
    let available = records.len();
    let truncated = rendered.shown < available;
    records.truncate(rendered.shown);
    clip_types(&mut types, records.len());
    let continue_from = if has_more || truncated {
        records
            .last()
            .and_then(|r| r.get("timestamp"))
            .and_then(|t| match t {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
    } else {
        None
    };

    let mut text = String::new();
    let count = records.len();
    text.push_str(&format!(
        "Query finished: {count} record{}{}.",
        if count == 1 { "" } else { "s" },
        if has_more || truncated {
            " shown, more available"
        } else {
            ""
        }
    ));
    if let Some(g) = grail {
        let mut facts = Vec::new();
        if let Some(bytes) = g.scanned_bytes {
            facts.push(format!("scanned {}", human_bytes(bytes)));
        }
        if let Some(recs) = g.scanned_records {
            facts.push(format!("{recs} records read"));
        }
        if let Some(ms) = g.execution_time_milliseconds {
            facts.push(format!("{ms} ms"));
        }
        if !facts.is_empty() {
            text.push_str(&format!(" Grail: {}.", facts.join(", ")));
        }
        if g.sampled == Some(true) {
            text.push_str(" The result is sampled: counts are approximate.");
        }
        for n in &g.notifications {
            if let Some(message) = &n.message {
                text.push_str(&format!(
                    "\n{}: {message}",
                    n.severity.as_deref().unwrap_or("NOTE")
                ));
            }
        }
    }
    if let Some(total) = total_scanned {
        text.push_str(&format!(" Scanned so far: {}.", human_bytes(total)));
    }
    if count == 0 {
        text.push_str("\nNo records matched.");
    } else {
        text.push('\n');
        text.push_str(&rendered.text);
    }
    if truncated {
        text.push_str(&format!(
            "\n{} of the records Grail returned were left out to fit the response budget of {}: \
             select fewer fields (fields), filter more narrowly, or page with continueFrom.",
            available - count,
            format::human_bytes(budget as u64)
        ));
    }
    if let Some(cursor) = &continue_from {
        text.push_str(&format!(
            "\nMore records exist: call execute_dql with the same statement and continueFrom \"{cursor}\" for the next page."
        ));
    } else if cut_by_bytes(grail) {
        text.push_str(
            "\nGrail stopped at its result size limit: select fewer fields (fields), narrow the query, \
             or sort by timestamp descending to page with continueFrom.",
        );
    } else if has_more {
        text.push_str(&format!(
            "\nMore than {limit} records matched: raise recordLimit or narrow the query."
        ));
    }

    let returned_records = records.len();
    let output = ExecuteOutput {
        status: QueryStatus::Succeeded,
        returned_records,
        records: Vec::new(),
        types,
        has_more: has_more || truncated,
        truncated,
        continue_from,
        query_handle: None,
        progress: None,
        metadata: grail.map(Metadata::from),
    };
    // The records move into structuredContent instead of being copied by `to_value`: a large
    // result is then held once, not twice.
    let mut result = ToolOutput::text(text).with_structured(&output);
    if let Some(Value::Object(map)) = result.structured.as_mut() {
        map.insert("records".into(), Value::Array(records));
    }
    result
}

/// Keeps Grail's `types` true for the records actually returned: ranges past the end are
/// dropped, the last one is clipped.
fn clip_types(types: &mut Vec<Value>, len: usize) {
    types.retain_mut(|entry| {
        let Some(range) = entry.get_mut("indexRange").and_then(Value::as_array_mut) else {
            return len > 0;
        };
        let start = range.first().and_then(Value::as_u64).unwrap_or(0) as usize;
        if start >= len {
            return false;
        }
        if let Some(end) = range.get_mut(1)
            && end.as_u64().is_some_and(|e| e as usize >= len)
        {
            *end = Value::from(len - 1);
        }
        true
    });
}

/// Arguments of `verify_dql`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyParams {
    /// The DQL statement to check.
    #[serde(rename = "dqlStatement")]
    pub dql_statement: String,
}

/// `structuredContent` of `verify_dql`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyOutput {
    /// Whether Grail accepts the statement.
    pub valid: bool,
    /// Grail's errors, warnings and hints about the statement.
    pub notifications: Vec<VerifyNotification>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyNotification {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Where in the statement the notification points (1-based line and column).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syntax_position: Option<Value>,
}

pub fn verify_definition() -> ToolDef {
    ToolDef::new::<VerifyParams, _, _>(
        "verify_dql",
        "Verify DQL",
        "Check a DQL statement's syntax and semantics without running it (no Grail cost). Returns \
         whether it is valid and Grail's notifications with their positions.",
        Annotations::READ,
        run_verify,
    )
    .with_output::<VerifyOutput>()
}

async fn run_verify(ctx: ToolContext, params: VerifyParams) -> Result<ToolOutput, ToolError> {
    let statement = params.dql_statement.trim();
    if statement.is_empty() {
        return Err(ToolError::InvalidArguments(
            "dqlStatement is empty: give the DQL statement to check".into(),
        ));
    }
    ctx.record.query(statement);
    let verified = ctx
        .dynatrace
        .query_verify(statement, scopes::QUERY_VERIFY, ctx.deadline)
        .await?;
    let mut text = if verified.valid {
        "The DQL statement is valid: it can be run with execute_dql.".to_string()
    } else {
        "The DQL statement is not valid: fix the problems below, then verify again.".to_string()
    };
    for n in &verified.notifications {
        let position = n
            .syntax_position
            .as_ref()
            .and_then(|p| p.get("start"))
            .and_then(|s| Some((s.get("line")?.as_u64()?, s.get("column")?.as_u64()?)))
            .map(|(line, column)| format!(" (line {line}, column {column})"))
            .unwrap_or_default();
        text.push_str(&format!(
            "\n- {}: {}{position}",
            n.severity.as_deref().unwrap_or("NOTE"),
            n.message.as_deref().unwrap_or("(no message)")
        ));
    }
    let output = VerifyOutput {
        valid: verified.valid,
        notifications: verified
            .notifications
            .iter()
            .map(|n| VerifyNotification {
                severity: n.severity.clone(),
                notification_type: n.notification_type.clone(),
                message: n.message.clone(),
                syntax_position: n.syntax_position.clone(),
            })
            .collect(),
    };
    Ok(ToolOutput::text(text).with_structured(&output))
}
