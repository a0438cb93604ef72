//! Classic events ingest (`POST /platform/classic/environment-api/v2/events/ingest`). Accepted
//! events become Grail records that `fetch events` returns, newest first.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};

use super::data::{self, ClassicEntity};
use super::dql::format_time;
use super::{Call, Inner, Route};

pub(super) fn routes(router: Router<Arc<Inner>>) -> Router<Arc<Inner>> {
    router.route(
        "/platform/classic/environment-api/v2/events/ingest",
        post(ingest),
    )
}

pub const EVENT_TYPES: &[&str] = &[
    "AVAILABILITY_EVENT",
    "CUSTOM_ALERT",
    "CUSTOM_ANNOTATION",
    "CUSTOM_CONFIGURATION",
    "CUSTOM_DEPLOYMENT",
    "CUSTOM_INFO",
    "ERROR_EVENT",
    "MARKED_FOR_TERMINATION",
    "PERFORMANCE_EVENT",
    "RESOURCE_CONTENTION_EVENT",
    "WARNING",
];

/// Event types that can open a Davis problem (tighter timestamp window).
const PROBLEM_OPENING: &[&str] = &[
    "AVAILABILITY_EVENT",
    "CUSTOM_ALERT",
    "ERROR_EVENT",
    "PERFORMANCE_EVENT",
    "RESOURCE_CONTENTION_EVENT",
];

/// The classic API's error body: `constraintViolations` sit directly under `error`.
fn constraint_error(path: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({
            "error": {
                "code": 400,
                "message": "Constraints violated.",
                "constraintViolations": [{
                    "path": path,
                    "message": message,
                    "parameterLocation": "PAYLOAD_BODY",
                    "location": null,
                }]
            }
        })),
    )
        .into_response()
}

/// One condition of an entity selector.
enum Condition {
    Type(String),
    Ids(Vec<String>),
    Name(&'static str, String),
    Tag(String),
}

/// Splits `a(x),b("y,z")` at the top-level commas.
fn split_top(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut quoted = false;
    let mut current = String::new();
    let mut prev = '\0';
    for c in text.chars() {
        match c {
            '"' if prev != '\\' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(current.trim().to_string());
                current.clear();
                prev = c;
                continue;
            }
            _ => {}
        }
        current.push(c);
        prev = c;
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

fn parse_selector(selector: &str) -> Result<Vec<Condition>, String> {
    let mut conditions = Vec::new();
    for part in split_top(selector) {
        let (head, rest) = part
            .split_once('(')
            .ok_or_else(|| format!("'{part}' is not a condition such as type(SERVICE)"))?;
        let args = rest
            .strip_suffix(')')
            .ok_or_else(|| format!("'{part}' misses its closing bracket"))?;
        let values: Vec<String> = split_top(args)
            .into_iter()
            .map(|v| v.trim().trim_matches('"').replace("\\\"", "\""))
            .filter(|v| !v.is_empty())
            .collect();
        if values.is_empty() {
            return Err(format!("'{part}' needs a value"));
        }
        conditions.push(match head.trim() {
            "type" => Condition::Type(values[0].to_ascii_uppercase()),
            "entityId" => Condition::Ids(values),
            "entityName" | "entityName.equals" => Condition::Name("equals", values[0].clone()),
            "entityName.contains" => Condition::Name("contains", values[0].clone()),
            "entityName.startsWith" => Condition::Name("startsWith", values[0].clone()),
            "tag" => Condition::Tag(values[0].clone()),
            other => return Err(format!("the condition '{other}' is not supported")),
        });
    }
    if !conditions
        .iter()
        .any(|c| matches!(c, Condition::Type(_) | Condition::Ids(_)))
    {
        return Err("an entity selector needs type(...) or entityId(...)".into());
    }
    Ok(conditions)
}

fn selects(conditions: &[Condition], e: &ClassicEntity) -> bool {
    conditions.iter().all(|c| match c {
        Condition::Type(t) => e.kind == t,
        Condition::Ids(ids) => ids.contains(&e.id),
        Condition::Name("equals", n) => e.name == *n,
        Condition::Name("contains", n) => e.name.to_lowercase().contains(&n.to_lowercase()),
        Condition::Name(_, n) => e.name.to_lowercase().starts_with(&n.to_lowercase()),
        Condition::Tag(t) => e
            .tags
            .iter()
            .any(|x| x == t || x.split(':').next() == Some(t)),
    })
}

#[allow(clippy::result_large_err)] // the error is the handler's answer
fn integer(request: &Map<String, Value>, key: &str) -> Result<Option<i64>, Response> {
    match request.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
        Some(_) => Err(constraint_error(key, "must be an integer")),
    }
}

async fn ingest(State(inner): State<Arc<Inner>>, call: Call) -> Response {
    if let Err(response) = inner
        .admit(Route::EventIngest, &call, &["storage:events:write"])
        .await
    {
        return response;
    }
    let Some(Value::Object(request)) = call.json() else {
        return constraint_error(
            "",
            "The request body is not a valid EventIngest JSON object.",
        );
    };
    let event_type = match request.get("eventType") {
        None | Some(Value::Null) => return constraint_error("eventType", "must not be null"),
        Some(Value::String(t)) if EVENT_TYPES.contains(&t.as_str()) => t.clone(),
        Some(other) => {
            return constraint_error(
                "eventType",
                &format!(
                    "{other} is not one of the allowed values: {}",
                    EVENT_TYPES.join(", ")
                ),
            );
        }
    };
    let title = match request.get("title") {
        Some(Value::String(t)) if !t.trim().is_empty() => t.clone(),
        Some(Value::String(_)) => return constraint_error("title", "must not be blank"),
        None | Some(Value::Null) => return constraint_error("title", "must not be null"),
        Some(_) => return constraint_error("title", "must be a string"),
    };
    let (start, end, timeout) = match (
        integer(&request, "startTime"),
        integer(&request, "endTime"),
        integer(&request, "timeout"),
    ) {
        (Ok(s), Ok(e), Ok(t)) => (s, e, t),
        (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r,
    };
    let mut properties = Map::new();
    match request.get("properties") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            if map.len() > 100 {
                return constraint_error("properties", "at most 100 properties are allowed");
            }
            for (key, value) in map {
                if key.chars().count() > 100 {
                    return constraint_error(
                        &format!("properties.{key}"),
                        "keys may be at most 100 characters long",
                    );
                }
                let text = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => {
                        return constraint_error(
                            &format!("properties.{key}"),
                            "property values must be strings",
                        );
                    }
                };
                if text.chars().count() > 4096 {
                    return constraint_error(
                        &format!("properties.{key}"),
                        "values may be at most 4096 characters long",
                    );
                }
                properties.insert(key.clone(), Value::String(text));
            }
        }
        Some(_) => return constraint_error("properties", "must be an object of strings"),
    }
    let targets: Vec<Option<ClassicEntity>> = match request.get("entitySelector") {
        None | Some(Value::Null) => vec![None],
        Some(Value::String(s)) if s.trim().is_empty() => vec![None],
        Some(Value::String(selector)) => match parse_selector(selector) {
            Ok(conditions) => data::classic_entities()
                .into_iter()
                .filter(|e| selects(&conditions, e))
                .map(Some)
                .collect(),
            Err(reason) => {
                return constraint_error(
                    "entitySelector",
                    &format!("Invalid entity selector: {reason}."),
                );
            }
        },
        Some(_) => return constraint_error("entitySelector", "must be a string"),
    };

    let now_ms = (inner.now() / 1_000_000) as i64;
    let start_ms = start.unwrap_or(now_ms);
    let timeout_min = timeout.unwrap_or(15).clamp(1, 360);
    let end_ms = end.unwrap_or(start_ms + timeout_min * 60_000);
    let (past, future) = if PROBLEM_OPENING.contains(&event_type.as_str()) {
        (6 * 3600 * 1000, 5 * 60 * 1000)
    } else {
        (30 * 86_400 * 1000, 7 * 86_400 * 1000)
    };
    let timestamps_ok =
        start_ms >= now_ms - past && start_ms <= now_ms + future && end_ms >= start_ms;

    let mut results = Vec::new();
    let mut records = Vec::new();
    for target in &targets {
        let correlation_id = format!("{:016x}", rand::random::<u64>());
        let status = if !timestamps_ok {
            "INVALID_TIMESTAMPS"
        } else if event_type == "MARKED_FOR_TERMINATION"
            && target.as_ref().is_some_and(|e| e.kind != "HOST")
        {
            "INVALID_ENTITY_TYPE"
        } else {
            "OK"
        };
        results.push(json!({ "correlationId": correlation_id, "status": status }));
        if status != "OK" {
            continue;
        }
        let start_ns = start_ms as i128 * 1_000_000;
        let end_ns = end_ms as i128 * 1_000_000;
        let mut record = Map::new();
        record.insert("timestamp".into(), json!(format_time(start_ns)));
        record.insert(
            "event.id".into(),
            json!(format!("{correlation_id}_{start_ms}V2")),
        );
        record.insert("event.kind".into(), json!("DAVIS_EVENT"));
        record.insert("event.type".into(), json!(event_type));
        record.insert("event.name".into(), json!(title));
        record.insert("event.provider".into(), json!("EVENTS_API"));
        record.insert(
            "event.status".into(),
            json!(if end_ms > now_ms { "ACTIVE" } else { "CLOSED" }),
        );
        record.insert("event.start".into(), json!(format_time(start_ns)));
        record.insert(
            "event.end".into(),
            if end_ms > now_ms {
                Value::Null
            } else {
                json!(format_time(end_ns))
            },
        );
        record.insert(
            "duration".into(),
            json!(((end_ms.min(now_ms) - start_ms).max(0) as i128 * 1_000_000).to_string()),
        );
        record.insert("dt.davis.timeout".into(), json!(timeout_min.to_string()));
        record.insert("dt.system.bucket".into(), json!("default_events"));
        if let Some(e) = target {
            record.insert(e.field.into(), json!(e.id));
            record.insert("dt.source_entity".into(), json!(e.id));
            record.insert("dt.source_entity.type".into(), json!(e.kind));
            record.insert("entity.name".into(), json!(e.name));
        }
        for (k, v) in &properties {
            record.entry(k.clone()).or_insert_with(|| v.clone());
        }
        records.push(record);
    }
    if !records.is_empty() {
        let mut stored = inner.ingested_records.lock().unwrap();
        for record in records {
            stored.insert(0, record);
        }
        inner
            .ingested_requests
            .lock()
            .unwrap()
            .push(Value::Object(request));
    }
    (
        StatusCode::CREATED,
        axum::Json(json!({ "reportCount": results.len(), "eventIngestResults": results })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_selectors() {
        let pick = |s: &str| -> Vec<String> {
            let c = parse_selector(s).unwrap();
            data::classic_entities()
                .into_iter()
                .filter(|e| selects(&c, e))
                .map(|e| e.name)
                .collect()
        };
        assert_eq!(
            pick("type(SERVICE),entityName(\"payment-service\")"),
            vec!["payment-service"]
        );
        assert_eq!(
            pick("type(\"SERVICE\"),entityName.contains(\"front\")").len(),
            2
        );
        assert_eq!(pick("entityId(\"HOST-8CCED98AFA59084C\")").len(), 1);
        assert_eq!(
            pick("type(SERVICE),tag(\"team:payments\")"),
            vec!["payment-service"]
        );
        assert!(parse_selector("entityName(\"x\")").is_err());
        assert!(parse_selector("type(SERVICE),bogus(1)").is_err());
    }
}
