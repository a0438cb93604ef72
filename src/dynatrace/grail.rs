//! Grail's Query API (`/platform/storage/query/v1`): execute, poll, cancel, verify.
//!
//! Shapes follow Dynatrace's typed client `@dynatrace-sdk/client-query`: `query:execute` answers
//! 200 with a finished result or 202 with `state: RUNNING` and a `requestToken`; `query:poll`
//! long-polls for up to `request-timeout-milliseconds`; `query:cancel` stops a running query.
//!
//! [`DynatraceClient::run_query`] drives a query to completion within a deadline and hands back
//! the request token when the deadline comes first, so the caller can return a handle instead of
//! failing. (What a query scanned is counted by the caller, against its budgets.)

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::{ApiRequest, DynatraceClient};
use super::error::DynatraceError;
use crate::deadline::Deadline;

const BASE: &str = "/platform/storage/query/v1";
/// Longest single long-poll; Grail holds a poll open at most this long.
const MAX_POLL_WAIT: Duration = Duration::from_secs(10);
/// Longest wait on `query:execute` before Grail hands back a request token.
const EXECUTE_WAIT: Duration = Duration::from_secs(1);
/// Time kept back from the deadline for answering the client after the last poll.
pub const ANSWER_MARGIN: Duration = Duration::from_millis(1500);

/// The request body of `query:execute` (fields as in `ExecuteRequest`).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteRequest {
    pub query: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_result_records: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_result_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_milliseconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch_timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_scan_limit_gbytes: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_timeframe_start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_timeframe_end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_types: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QueryState {
    NotStarted,
    Running,
    Succeeded,
    ResultGone,
    Cancelled,
    Failed,
    #[serde(other)]
    Unknown,
}

/// The body of `query:execute` and `query:poll` (`QueryStartResponse` / `QueryPollResponse`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryResponse {
    pub state: QueryState,
    #[serde(default)]
    pub progress: Option<u32>,
    #[serde(default)]
    pub request_token: Option<String>,
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    #[serde(default)]
    pub result: Option<QueryResult>,
}

/// A finished query's result.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryResult {
    #[serde(default)]
    pub records: Vec<Value>,
    #[serde(default)]
    pub types: Vec<Value>,
    #[serde(default)]
    pub metadata: QueryMetadata,
    /// Records Grail sent past the [`RecordCap`]: counted, never parsed.
    #[serde(skip)]
    pub left_out: usize,
}

/// Which of a finished query's records become `Value`s. The rest are only counted
/// ([`QueryResult::left_out`]), so the memory of a call follows what its answer can show, not
/// what Grail sends: a record is a few hundred bytes of JSON but several times that as a tree.
#[derive(Debug, Clone, Default)]
pub struct RecordCap {
    /// Keep records while their JSON (after the `fields` projection) totals at most this many
    /// bytes; the first record is always kept. `None`: keep every record.
    pub bytes: Option<usize>,
    /// Keep only these fields of each record (none: every field).
    pub fields: Vec<String>,
}

impl RecordCap {
    /// Every record, every field.
    pub const ALL: RecordCap = RecordCap {
        bytes: None,
        fields: Vec::new(),
    };
}

/// `QueryResponse` as Grail sends it, its records still JSON text borrowed from the body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse<'a> {
    state: QueryState,
    #[serde(default)]
    progress: Option<u32>,
    #[serde(default)]
    request_token: Option<String>,
    #[serde(default)]
    ttl_seconds: Option<u64>,
    #[serde(default, borrow)]
    result: Option<WireResult<'a>>,
}

#[derive(Deserialize)]
struct WireResult<'a> {
    #[serde(default, borrow)]
    records: Vec<&'a serde_json::value::RawValue>,
    #[serde(default)]
    types: Vec<Value>,
    #[serde(default)]
    metadata: QueryMetadata,
}

/// Decodes a `query:execute` or `query:poll` answer, keeping the records `cap` allows.
pub fn decode_response(
    body: &[u8],
    context: &str,
    cap: &RecordCap,
) -> Result<QueryResponse, DynatraceError> {
    let decode_error = |message: String| DynatraceError::Decode {
        context: context.to_string(),
        message,
    };
    let wire: WireResponse =
        serde_json::from_slice(body).map_err(|e| decode_error(e.to_string()))?;
    let result = match wire.result {
        None => None,
        Some(result) => {
            let mut records = Vec::new();
            let mut kept_bytes = 0;
            for raw in &result.records {
                if let Some(cap) = cap.bytes
                    && !records.is_empty()
                    && kept_bytes >= cap
                {
                    break;
                }
                let mut record: Value =
                    serde_json::from_str(raw.get()).map_err(|e| decode_error(e.to_string()))?;
                kept_bytes += if cap.fields.is_empty() {
                    raw.get().len()
                } else {
                    if let Value::Object(map) = &mut record {
                        map.retain(|key, _| cap.fields.iter().any(|f| f == key));
                    }
                    serde_json::to_string(&record).map_or(0, |s| s.len())
                };
                if cap.bytes.is_some_and(|cap| kept_bytes > cap) && !records.is_empty() {
                    break;
                }
                records.push(record);
            }
            Some(QueryResult {
                left_out: result.records.len() - records.len(),
                records,
                types: result.types,
                metadata: result.metadata,
            })
        }
    };
    Ok(QueryResponse {
        state: wire.state,
        progress: wire.progress,
        request_token: wire.request_token,
        ttl_seconds: wire.ttl_seconds,
        result,
    })
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grail: Option<GrailMetadata>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrailMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanned_records: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanned_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanned_data_points: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_time_milliseconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_timeframe: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<Notification>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A `MetadataNotification`: a warning or hint attached to a query or a verification.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syntax_position: Option<Value>,
}

/// The body of `query:verify`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse {
    pub valid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical_query: Option<String>,
    #[serde(default)]
    pub notifications: Vec<Notification>,
}

/// Where a query stands after [`DynatraceClient::run_query`] or [`DynatraceClient::resume_query`].
#[derive(Debug, Clone)]
pub enum QueryRun {
    Finished(Box<QueryResult>),
    /// Still running when the deadline came; poll again with this token.
    Running {
        request_token: String,
        progress: Option<u32>,
    },
}

impl DynatraceClient {
    /// `POST query:execute`. A 200 is a finished query, a 202 a running one.
    pub async fn query_execute(
        &self,
        request: &ExecuteRequest,
        scopes: &str,
        deadline: Deadline,
        cap: &RecordCap,
    ) -> Result<QueryResponse, DynatraceError> {
        let body = serde_json::to_value(request).expect("ExecuteRequest serializes");
        let response = self
            .call(
                &ApiRequest::post(format!("{BASE}/query:execute"), body, scopes, "query"),
                deadline,
            )
            .await?;
        decode_response(&response.body, "query:execute", cap)
    }

    /// `GET query:poll`, waiting up to `wait` for the query to finish.
    pub async fn query_poll(
        &self,
        request_token: &str,
        wait: Duration,
        scopes: &str,
        deadline: Deadline,
        cap: &RecordCap,
    ) -> Result<QueryResponse, DynatraceError> {
        let request = ApiRequest::get(format!("{BASE}/query:poll"), scopes, "query result")
            .query("request-token", request_token)
            .query("request-timeout-milliseconds", wait.as_millis().to_string());
        let response = self
            .call(&request, deadline)
            .await
            .map_err(gone_as_result_gone)?;
        decode_response(&response.body, "query:poll", cap)
    }

    /// `POST query:cancel`. Best effort: a query that already finished or expired is fine.
    pub async fn query_cancel(
        &self,
        request_token: &str,
        scopes: &str,
        deadline: Deadline,
    ) -> Result<(), DynatraceError> {
        let request = ApiRequest::post_empty(format!("{BASE}/query:cancel"), scopes, "query")
            .query("request-token", request_token);
        match self.call(&request, deadline).await {
            Ok(_) => Ok(()),
            Err(DynatraceError::NotFound { .. }) => Ok(()),
            Err(DynatraceError::UnexpectedStatus { status: 410, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `POST query:verify`.
    pub async fn query_verify(
        &self,
        query: &str,
        scopes: &str,
        deadline: Deadline,
    ) -> Result<VerifyResponse, DynatraceError> {
        let body = serde_json::json!({ "query": query });
        let response = self
            .call(
                &ApiRequest::post(format!("{BASE}/query:verify"), body, scopes, "query"),
                deadline,
            )
            .await?;
        response.json("query:verify")
    }

    /// Executes a query and polls until it finishes or `deadline` (less [`ANSWER_MARGIN`]) nears.
    /// While the query runs, `guard` knows its request token, so dropping the future (the client
    /// went away) cancels the query in Grail.
    pub async fn run_query(
        &self,
        request: &ExecuteRequest,
        scopes: &str,
        deadline: Deadline,
        guard: &QueryGuard,
        cap: &RecordCap,
    ) -> Result<QueryRun, DynatraceError> {
        let mut request = request.clone();
        if request.request_timeout_milliseconds.is_none() {
            // Grail answers 200 when the query finishes within this wait, else 202 with a token.
            // Kept short so the token is known early: a caller that goes away after that point
            // gets its query cancelled.
            request.request_timeout_milliseconds =
                Some(poll_wait(deadline).min(EXECUTE_WAIT).as_millis() as u64);
        }
        let started = self.query_execute(&request, scopes, deadline, cap).await?;
        self.follow(started, scopes, deadline, guard, cap).await
    }

    /// Continues polling a query started earlier (from a handle).
    pub async fn resume_query(
        &self,
        request_token: &str,
        scopes: &str,
        deadline: Deadline,
        guard: &QueryGuard,
        cap: &RecordCap,
    ) -> Result<QueryRun, DynatraceError> {
        guard.track(request_token);
        let wait = poll_wait(deadline);
        let polled = self
            .query_poll(request_token, wait, scopes, deadline, cap)
            .await;
        let polled = match polled {
            Ok(polled) => polled,
            Err(e) => {
                guard.release();
                return Err(e);
            }
        };
        let polled = QueryResponse {
            request_token: Some(request_token.to_string()),
            ..polled
        };
        self.follow(polled, scopes, deadline, guard, cap).await
    }

    async fn follow(
        &self,
        current: QueryResponse,
        scopes: &str,
        deadline: Deadline,
        guard: &QueryGuard,
        cap: &RecordCap,
    ) -> Result<QueryRun, DynatraceError> {
        let outcome = self
            .follow_inner(current, scopes, deadline, guard, cap)
            .await;
        // Finished, failed or handed back as running on purpose: nothing to cancel on drop.
        guard.release();
        outcome
    }

    async fn follow_inner(
        &self,
        mut current: QueryResponse,
        scopes: &str,
        deadline: Deadline,
        guard: &QueryGuard,
        cap: &RecordCap,
    ) -> Result<QueryRun, DynatraceError> {
        let token = current.request_token.clone();
        if let Some(token) = &token {
            guard.track(token);
        }
        loop {
            match current.state {
                QueryState::Succeeded => {
                    let result = current.result.unwrap_or_default();
                    return Ok(QueryRun::Finished(Box::new(result)));
                }
                QueryState::Failed => {
                    return Err(DynatraceError::BadRequest {
                        message: "the query failed in Grail".to_string(),
                        position: None,
                        details: None,
                    });
                }
                QueryState::ResultGone => return Err(result_gone()),
                QueryState::Cancelled => {
                    return Err(DynatraceError::BadRequest {
                        message: "the query was cancelled before it finished".to_string(),
                        position: None,
                        details: None,
                    });
                }
                QueryState::NotStarted | QueryState::Running | QueryState::Unknown => {}
            }
            let Some(request_token) = token.clone() else {
                return Err(DynatraceError::Decode {
                    context: "query:execute".to_string(),
                    message: format!("state {:?} without a requestToken", current.state),
                });
            };
            let wait = poll_wait(deadline);
            if wait.is_zero() {
                return Ok(QueryRun::Running {
                    request_token,
                    progress: current.progress,
                });
            }
            current = self
                .query_poll(&request_token, wait, scopes, deadline, cap)
                .await?;
        }
    }
}

/// Cancels a running query in Grail if the future driving it is dropped before it finished or
/// was deliberately handed back (the client disconnected, the call was cancelled).
pub struct QueryGuard {
    client: std::sync::Arc<DynatraceClient>,
    scopes: String,
    token: std::sync::Mutex<Option<String>>,
}

impl QueryGuard {
    pub fn new(client: std::sync::Arc<DynatraceClient>, scopes: &str) -> Self {
        Self {
            client,
            scopes: scopes.to_string(),
            token: std::sync::Mutex::new(None),
        }
    }

    fn track(&self, request_token: &str) {
        *self.token.lock().expect("query guard lock") = Some(request_token.to_string());
    }

    fn release(&self) {
        self.token.lock().expect("query guard lock").take();
    }
}

impl Drop for QueryGuard {
    fn drop(&mut self) {
        let Some(token) = self.token.get_mut().ok().and_then(Option::take) else {
            return;
        };
        let client = self.client.clone();
        let scopes = std::mem::take(&mut self.scopes);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        tracing::info!("the caller went away while a query was running: cancelling it in Grail");
        let background = client.background().clone();
        // In the abandoned call's trace (a no-op context when traces are off).
        let trace = opentelemetry::Context::current();
        runtime.spawn(
            background.track_future(opentelemetry::trace::FutureExt::with_context(
                async move {
                    let deadline = Deadline::after(Duration::from_secs(5));
                    if let Err(e) = client.query_cancel(&token, &scopes, deadline).await {
                        tracing::warn!(error = %e, "could not cancel an abandoned query");
                    }
                },
                trace,
            )),
        );
    }
}

/// How long the next long-poll may wait: what is left before the answer margin, at most
/// [`MAX_POLL_WAIT`]; zero when no useful poll fits.
fn poll_wait(deadline: Deadline) -> Duration {
    let left = deadline.remaining().saturating_sub(ANSWER_MARGIN);
    if left < Duration::from_millis(100) {
        Duration::ZERO
    } else {
        left.min(MAX_POLL_WAIT)
    }
}

fn result_gone() -> DynatraceError {
    DynatraceError::NotFound {
        what: "the query result".to_string(),
        message: "Grail no longer holds this result (it expired or was already fetched); run the query again".to_string(),
    }
}

/// Grail answers 410 Gone for a request token whose result expired.
fn gone_as_result_gone(error: DynatraceError) -> DynatraceError {
    match error {
        DynatraceError::UnexpectedStatus { status: 410, .. } => result_gone(),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execute_request_omits_unset_fields() {
        let request = ExecuteRequest {
            query: "fetch logs".into(),
            max_result_records: Some(10),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({"query": "fetch logs", "maxResultRecords": 10})
        );
    }

    #[test]
    fn responses_decode_with_unknown_states_and_fields() {
        let body = r#"{"state":"SOMETHING_NEW","requestToken":"abc","futureField":1}"#;
        let parsed = decode_response(body.as_bytes(), "t", &RecordCap::ALL).unwrap();
        assert_eq!(parsed.state, QueryState::Unknown);
        let body = r#"{"state":"SUCCEEDED","progress":100,"result":{"records":[{"a":1}],"types":[],"metadata":{"grail":{"scannedBytes":42,"queryId":"q","notifications":[{"severity":"WARNING","message":"m"}],"dqlVersion":"V1_0"}}}}"#;
        let parsed = decode_response(body.as_bytes(), "t", &RecordCap::ALL).unwrap();
        let grail = parsed.result.unwrap().metadata.grail.unwrap();
        assert_eq!(grail.scanned_bytes, Some(42));
        assert_eq!(grail.notifications.len(), 1);
        assert_eq!(grail.other.get("dqlVersion").unwrap(), "V1_0");
    }

    #[test]
    fn records_past_the_cap_are_counted_not_kept() {
        let records: Vec<String> = (0..100)
            .map(|i| {
                format!(
                    r#"{{"i":{i},"content":"{}","host":"h{i}"}}"#,
                    "x".repeat(80)
                )
            })
            .collect();
        let body = format!(
            r#"{{"state":"SUCCEEDED","result":{{"records":[{}],"types":[],"metadata":{{}}}}}}"#,
            records.join(",")
        );
        let each = records[0].len();
        let decode = |cap: RecordCap| {
            decode_response(body.as_bytes(), "t", &cap)
                .unwrap()
                .result
                .unwrap()
        };
        let all = decode(RecordCap::ALL);
        assert_eq!((all.records.len(), all.left_out), (100, 0));
        // Whole records up to the cap, the rest counted.
        let capped = decode(RecordCap {
            bytes: Some(each * 10 + 5),
            fields: Vec::new(),
        });
        assert_eq!((capped.records.len(), capped.left_out), (10, 90));
        assert_eq!(capped.records[9]["i"], 9);
        // The first record is kept even when it alone is larger than the cap.
        let tiny = decode(RecordCap {
            bytes: Some(1),
            fields: Vec::new(),
        });
        assert_eq!((tiny.records.len(), tiny.left_out), (1, 99));
        // With `fields`, the projected size counts: many more records fit.
        let projected = decode(RecordCap {
            bytes: Some(each * 10),
            fields: vec!["i".into()],
        });
        assert!(projected.records.len() > 50, "{}", projected.records.len());
        assert_eq!(projected.records[0], serde_json::json!({"i": 0}));
        assert_eq!(projected.records.len() + projected.left_out, 100);
        // A malformed record is a decode error, not a silent gap.
        assert!(
            decode_response(
                br#"{"state":"SUCCEEDED","result":{"records":[{"a":}]}}"#,
                "t",
                &RecordCap::ALL
            )
            .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn poll_wait_keeps_a_margin_and_caps_long_polls() {
        assert_eq!(
            poll_wait(Deadline::after(Duration::from_secs(60))),
            MAX_POLL_WAIT
        );
        assert_eq!(
            poll_wait(Deadline::after(Duration::from_secs(3))),
            Duration::from_millis(1500)
        );
        assert_eq!(
            poll_wait(Deadline::after(Duration::from_secs(1))),
            Duration::ZERO
        );
    }
}
