//! The Grail query API (`/platform/storage/query/v1`): `query:execute`, `query:poll`,
//! `query:cancel` and `query:verify`, over the DQL interpreter in [`super::dql`] and the sample
//! data in [`super::data`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::dql::{self, DataRef};
use super::{Call, Inner, QueryTiming, Route, data, envelope};

const QUERY: &str = "/platform/storage/query/v1";

pub(super) fn routes(router: Router<Arc<Inner>>) -> Router<Arc<Inner>> {
    router
        .route(&format!("{QUERY}/query:execute"), post(query_execute))
        .route(&format!("{QUERY}/query:poll"), get(query_poll))
        .route(&format!("{QUERY}/query:cancel"), post(query_cancel))
        .route(&format!("{QUERY}/query:verify"), post(query_verify))
}

/// A query answered 202: its result, and when it is ready.
pub(super) struct RunningQuery {
    result: Value,
    polls_left: u32,
    finish_at: Instant,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecuteBody {
    query: Option<String>,
    max_result_records: Option<i64>,
    max_result_bytes: Option<i64>,
    request_timeout_milliseconds: Option<u64>,
}

/// The table scope a data object needs.
pub fn table_scope(data: &DataRef) -> &'static str {
    match data {
        DataRef::SmartscapeNodes(_) => "storage:smartscape:read",
        DataRef::Metrics(_) => "storage:metrics:read",
        DataRef::Fetch(source) => match source.as_str() {
            "logs" => "storage:logs:read",
            "spans" => "storage:spans:read",
            "bizevents" => "storage:bizevents:read",
            "security.events" => "storage:security.events:read",
            "user.events" => "storage:user.events:read",
            "user.sessions" => "storage:user.sessions:read",
            "metrics" => "storage:metrics:read",
            s if s.starts_with("dt.entity.") => "storage:entities:read",
            s if s.starts_with("dt.system.") => "storage:system:read",
            s if s.starts_with("dt.smartscape") => "storage:smartscape:read",
            _ => "storage:events:read",
        },
    }
}

/// The 400 for a data object this tenant does not have.
fn not_found(data: &DataRef, start: dql::Pos, end: dql::Pos) -> dql::DqlError {
    dql::DqlError {
        error_type: "DATA_OBJECT_NOT_FOUND",
        message: format!(
            "The data object `{}` doesn't exist in this environment (it has: {}).",
            data.name(),
            data::SOURCES.join(", ")
        ),
        start,
        end,
    }
}

fn dql_error(e: &dql::DqlError, query: &str) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(e.envelope(query))).into_response()
}

fn blank_query() -> Response {
    envelope(
        StatusCode::BAD_REQUEST,
        "The supplied request is wrong.",
        Some(
            json!({"constraintViolations": [{"message": "must not be blank", "parameterLocation": "PAYLOAD_BODY", "path": "query"}]}),
        ),
    )
}

async fn query_execute(State(inner): State<Arc<Inner>>, call: Call) -> Response {
    if let Err(response) = inner
        .admit(Route::QueryExecute, &call, &["storage:buckets:read"])
        .await
    {
        return response;
    }
    let Ok(request) = serde_json::from_slice::<ExecuteBody>(&call.body) else {
        return envelope(
            StatusCode::BAD_REQUEST,
            "The supplied request is wrong: the body is not a valid ExecuteRequest.",
            None,
        );
    };
    let Some(query) = request.query.filter(|q| !q.trim().is_empty()) else {
        return blank_query();
    };
    let parsed = match dql::parse(&query) {
        Ok(parsed) => parsed,
        Err(e) => return dql_error(&e, &query),
    };
    let ingested = inner.ingested_records.lock().unwrap().clone();
    let tenant = data::Tenant {
        now: inner.data_now,
        log_records: inner.config.log_records,
        ingested_events: &ingested,
        problems: inner.config.problems,
    };
    let mut scopes = vec!["storage:buckets:read"];
    for (data_ref, start, end) in parsed.data_refs() {
        if dql::Catalog::open(&tenant, &data_ref).is_none() {
            return dql_error(&not_found(&data_ref, start, end), &query);
        }
        scopes.push(table_scope(&data_ref));
    }
    if let Err(response) = inner.authorize(&call.headers, &scopes) {
        return *response;
    }
    let max_records = request
        .max_result_records
        .filter(|n| *n >= 0)
        .unwrap_or(1000) as usize;
    let output = match dql::run_in(&parsed, &tenant, inner.now(), usize::MAX) {
        Ok(output) => output,
        Err(e) => return dql_error(&e, &query),
    };
    let result = build_result(&query, output, max_records, request.max_result_bytes);

    let timing = *inner.timing.lock().unwrap();
    let wait = Duration::from_millis(request.request_timeout_milliseconds.unwrap_or(0));
    let (polls_left, finish_at) = match timing {
        QueryTiming::Immediate => return finished(result),
        QueryTiming::Polls(n) => (n, Instant::now()),
        QueryTiming::Duration(d) => {
            let finish_at = Instant::now() + d;
            if d <= wait {
                tokio::time::sleep(d).await;
                return finished(result);
            }
            tokio::time::sleep(wait).await;
            (0, finish_at)
        }
    };
    let request_token = format!("sandbox-query-{}", inner.next_id());
    inner.queries.lock().unwrap().insert(
        request_token.clone(),
        RunningQuery {
            result,
            polls_left,
            finish_at,
        },
    );
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "state": "RUNNING", "progress": 0, "requestToken": request_token, "ttlSeconds": 60 })),
    )
        .into_response()
}

fn finished(result: Value) -> Response {
    axum::Json(json!({ "state": "SUCCEEDED", "progress": 100, "result": result, "ttlSeconds": 60 }))
        .into_response()
}

fn build_result(
    query: &str,
    output: dql::Output,
    max_records: usize,
    max_bytes: Option<i64>,
) -> Value {
    let mut records = output.records;
    let mut notifications = Vec::new();
    if records.len() > max_records {
        records.truncate(max_records);
        notifications.push(json!({
            "severity": "WARN",
            "notificationType": "LIMIT_ADDED",
            "message": format!("The result was limited to {max_records} records."),
            "messageFormat": "The result was limited to %1$s records.",
            "messageFormatSpecifierTypes": ["NUMBER"],
            "arguments": [max_records.to_string()],
        }));
    }
    if let Some(max_bytes) = max_bytes.filter(|b| *b > 0) {
        // A soft limit: the record that crosses it is still included.
        let mut total = 0i64;
        let mut keep = records.len();
        for (i, record) in records.iter().enumerate() {
            total += record.to_string().len() as i64;
            if total >= max_bytes {
                keep = i + 1;
                break;
            }
        }
        if keep < records.len() {
            records.truncate(keep);
            notifications.push(json!({
                "severity": "WARN",
                "notificationType": "RESULT_TRUNCATED",
                "message": format!("The result was truncated to {max_bytes} bytes."),
            }));
        }
    }
    let types = dql::types_of(&records);
    json!({
        "records": records,
        "types": types,
        "metadata": {
            "grail": {
                "canonicalQuery": query,
                "timezone": "Z",
                "query": query,
                "scannedRecords": output.scanned_records,
                "dqlVersion": "V1_0",
                "scannedBytes": output.scanned_bytes,
                "scannedDataPoints": 0,
                "locale": "und",
                "executionTimeMilliseconds": 3 + output.scanned_records / 1000,
                "notifications": notifications,
                "queryId": "3c0f4a5e-8d6b-4b1e-9a2f-1d7e6c5b4a39",
                "sampled": false,
            }
        }
    })
}

fn gone() -> Response {
    envelope(
        StatusCode::GONE,
        "The query for the given request-token is not available anymore.",
        None,
    )
}

fn missing_token() -> Response {
    envelope(
        StatusCode::BAD_REQUEST,
        "The supplied request is wrong: request-token is required.",
        None,
    )
}

async fn query_poll(State(inner): State<Arc<Inner>>, call: Call) -> Response {
    if let Err(response) = inner
        .admit(Route::QueryPoll, &call, &["storage:buckets:read"])
        .await
    {
        return response;
    }
    let Some(token) = call.param("request-token") else {
        return missing_token();
    };
    let wait = Duration::from_millis(
        call.param("request-timeout-milliseconds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    );
    let finish_at = {
        let queries = inner.queries.lock().unwrap();
        match queries.get(&token) {
            None => return gone(),
            Some(q) => q.finish_at,
        }
    };
    let now = Instant::now();
    if finish_at > now {
        tokio::time::sleep((finish_at - now).min(wait)).await;
    }
    let mut queries = inner.queries.lock().unwrap();
    let Some(query) = queries.get_mut(&token) else {
        return gone();
    };
    if query.polls_left > 1 || query.finish_at > Instant::now() {
        query.polls_left = query.polls_left.saturating_sub(1);
        return axum::Json(json!({ "state": "RUNNING", "progress": 50, "ttlSeconds": 60 }))
            .into_response();
    }
    let query = queries.remove(&token).expect("present");
    finished(query.result)
}

async fn query_cancel(State(inner): State<Arc<Inner>>, call: Call) -> Response {
    if let Err(response) = inner
        .admit(Route::QueryCancel, &call, &["storage:buckets:read"])
        .await
    {
        return response;
    }
    let Some(token) = call.param("request-token") else {
        return missing_token();
    };
    let Some(query) = inner.queries.lock().unwrap().remove(&token) else {
        return gone();
    };
    inner.cancelled.lock().unwrap().push(token);
    if query.polls_left <= 1 && query.finish_at <= Instant::now() {
        return finished(query.result);
    }
    StatusCode::ACCEPTED.into_response()
}

async fn query_verify(State(inner): State<Arc<Inner>>, call: Call) -> Response {
    if let Err(response) = inner
        .admit(Route::QueryVerify, &call, &["storage:buckets:read"])
        .await
    {
        return response;
    }
    let query = call
        .json()
        .and_then(|v| v.get("query").and_then(Value::as_str).map(str::to_string));
    let Some(query) = query.filter(|q| !q.trim().is_empty()) else {
        return blank_query();
    };
    let problem = match dql::parse(&query) {
        Err(e) => Some(e),
        Ok(parsed) => {
            let tenant = data::Tenant {
                now: inner.data_now,
                log_records: 0,
                ingested_events: &[],
                problems: usize::MAX,
            };
            parsed
                .data_refs()
                .into_iter()
                .find(|(d, _, _)| dql::Catalog::open(&tenant, d).is_none())
                .map(|(d, start, end)| not_found(&d, start, end))
        }
    };
    match problem {
        None => axum::Json(json!({ "valid": true, "notifications": [] })).into_response(),
        Some(e) => axum::Json(json!({
            "valid": false,
            "notifications": [{
                "severity": "ERROR",
                "notificationType": e.error_type,
                "message": e.message,
                "messageFormat": e.message,
                "messageFormatSpecifierTypes": [],
                "arguments": [],
                "syntaxPosition": e.position_json(),
            }]
        }))
        .into_response(),
    }
}
