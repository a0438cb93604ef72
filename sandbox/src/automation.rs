//! Automation workflows (`/platform/automation/v1/workflows`): create (201), get, list,
//! `PATCH`/`PUT` (partial update), delete. Workflows live in memory.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::dql::format_time;
use super::{Call, DEMO_USER_ID, Inner, Route, envelope, violation, violations};

const BASE: &str = "/platform/automation/v1/workflows";
const READ: &str = "automation:workflows:read";
const WRITE: &str = "automation:workflows:write";

pub(super) fn routes(router: Router<Arc<Inner>>) -> Router<Arc<Inner>> {
    router.route(BASE, get(list).post(create)).route(
        &format!("{BASE}/{{id}}"),
        get(get_one).patch(update).put(update).delete(delete),
    )
}

fn not_found(id: &str) -> Response {
    envelope(
        StatusCode::NOT_FOUND,
        &format!("Workflow {id} not found."),
        Some(json!({ "errorCode": "NOT_FOUND" })),
    )
}

const CATEGORIES: &[&str] = &[
    "monitoringUnavailable",
    "availability",
    "error",
    "slowdown",
    "resource",
    "custom",
    "info",
];

/// Checks the fields of a create (`create = true`) or update body.
fn validate(body: &Map<String, Value>, create: bool) -> Vec<Value> {
    let mut problems = Vec::new();
    match body.get("title") {
        Some(Value::String(t)) if !t.trim().is_empty() => {
            if t.chars().count() > 200 {
                problems.push(violation(
                    "title",
                    "Ensure this field has no more than 200 characters.",
                ));
            }
        }
        None if !create => {}
        None | Some(Value::Null) => problems.push(violation("title", "This field is required.")),
        Some(Value::String(_)) => problems.push(violation("title", "This field may not be blank.")),
        Some(_) => problems.push(violation("title", "Not a valid string.")),
    }
    if let Some(t) = body.get("type")
        && !matches!(t.as_str(), Some("STANDARD" | "SIMPLE"))
    {
        problems.push(violation(
            "type",
            "\"type\" must be one of STANDARD, SIMPLE.",
        ));
    }
    for key in ["isPrivate", "isDeployed"] {
        if let Some(v) = body.get(key)
            && !v.is_boolean()
        {
            problems.push(violation(key, "Must be a valid boolean."));
        }
    }
    match body.get("tasks") {
        None | Some(Value::Null) => {}
        Some(Value::Object(tasks)) => {
            for (key, task) in tasks {
                if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    problems.push(violation(
                        &format!("tasks.{key}"),
                        "Task names may only contain letters, digits and underscores.",
                    ));
                }
                let Some(task) = task.as_object() else {
                    problems.push(violation(&format!("tasks.{key}"), "Must be an object."));
                    continue;
                };
                match task.get("action") {
                    Some(Value::String(a)) if a.contains(':') => {}
                    Some(Value::String(_)) => problems.push(violation(
                        &format!("tasks.{key}.action"),
                        "Must be an action reference such as dynatrace.slack:slack-send-message.",
                    )),
                    _ => problems.push(violation(
                        &format!("tasks.{key}.action"),
                        "This field is required.",
                    )),
                }
                if let Some(p) = task.get("predecessors").and_then(Value::as_array) {
                    for name in p {
                        if !name.as_str().is_some_and(|n| tasks.contains_key(n)) {
                            problems.push(violation(
                                &format!("tasks.{key}.predecessors"),
                                &format!("Unknown predecessor task {name}."),
                            ));
                        }
                    }
                }
            }
        }
        Some(_) => problems.push(violation("tasks", "Must be an object of tasks.")),
    }
    if let Some(trigger) = body.get("trigger").filter(|t| !t.is_null()) {
        validate_trigger(trigger, &mut problems);
    }
    problems
}

fn validate_trigger(trigger: &Value, problems: &mut Vec<Value>) {
    let Some(trigger) = trigger.as_object() else {
        problems.push(violation("trigger", "Must be an object."));
        return;
    };
    if let Some(schedule) = trigger.get("schedule").filter(|s| !s.is_null()) {
        let kind = schedule
            .pointer("/trigger/type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let field = match kind {
            "cron" => Some("cron"),
            "time" => Some("time"),
            "interval" => Some("intervalMinutes"),
            "once" => Some("at"),
            _ => None,
        };
        match field {
            None => problems.push(violation(
                "trigger.schedule.trigger.type",
                "Must be one of cron, time, interval, once.",
            )),
            Some(f) if schedule["trigger"].get(f).is_none_or(Value::is_null) => {
                problems.push(violation(
                    &format!("trigger.schedule.trigger.{f}"),
                    "This field is required.",
                ))
            }
            Some(_) => {}
        }
    }
    let Some(config) = trigger
        .get("eventTrigger")
        .and_then(|e| e.get("triggerConfiguration"))
        .filter(|c| !c.is_null())
    else {
        return;
    };
    let path = "trigger.eventTrigger.triggerConfiguration";
    let value = config.get("value");
    match config.get("type").and_then(Value::as_str) {
        Some("event") => {
            let query = value.and_then(|v| v.get("query")).and_then(Value::as_str);
            if query.is_none_or(|q| q.trim().is_empty()) {
                problems.push(violation(
                    &format!("{path}.value.query"),
                    "This field is required.",
                ));
            }
            if let Some(t) = value.and_then(|v| v.get("eventType"))
                && !matches!(
                    t.as_str(),
                    Some("events" | "bizevents" | "dt.system.events" | "security.events")
                )
            {
                problems.push(violation(
                    &format!("{path}.value.eventType"),
                    "Must be one of events, bizevents, dt.system.events, security.events.",
                ));
            }
        }
        Some("davis-problem") => match value.and_then(|v| v.get("categories")) {
            Some(Value::Object(categories)) => {
                for (k, v) in categories {
                    if !CATEGORIES.contains(&k.as_str()) {
                        problems.push(violation(
                            &format!("{path}.value.categories.{k}"),
                            &format!("Unknown category (one of {}).", CATEGORIES.join(", ")),
                        ));
                    } else if !v.is_boolean() {
                        problems.push(violation(
                            &format!("{path}.value.categories.{k}"),
                            "Must be a valid boolean.",
                        ));
                    }
                }
            }
            _ => problems.push(violation(
                &format!("{path}.value.categories"),
                "This field is required.",
            )),
        },
        Some("davis-event") => {
            if let Some(names) = value.and_then(|v| v.get("names")).filter(|n| !n.is_null()) {
                let ok = names.as_array().is_some_and(|a| {
                    a.iter().all(|n| {
                        matches!(n["match"].as_str(), Some("equals" | "contains"))
                            && n["name"].is_string()
                    })
                });
                if !ok {
                    problems.push(violation(
                        &format!("{path}.value.names"),
                        "Must be a list of {match: equals|contains, name}.",
                    ));
                }
            }
            if value.is_none_or(|v| !v.is_object()) {
                problems.push(violation(
                    &format!("{path}.value"),
                    "This field is required.",
                ));
            }
        }
        _ => problems.push(violation(
            &format!("{path}.type"),
            "Must be one of event, davis-problem, davis-event.",
        )),
    }
}

/// The DQL matcher the service derives from an event trigger configuration.
fn filter_query(config: &Value) -> String {
    let value = &config["value"];
    match config["type"].as_str() {
        Some("event") => value["query"].as_str().unwrap_or_default().to_string(),
        Some("davis-problem") => {
            let categories: Vec<String> = value["categories"]
                .as_object()
                .map(|c| {
                    c.iter()
                        .filter(|(_, v)| v.as_bool() == Some(true))
                        .map(|(k, _)| {
                            let name = match k.as_str() {
                                "monitoringUnavailable" => "MONITORING_UNAVAILABLE",
                                "resource" => "RESOURCE_CONTENTION",
                                "custom" => "CUSTOM_ALERT",
                                other => return format!("\"{}\"", other.to_uppercase()),
                            };
                            format!("\"{name}\"")
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut q = String::from(
                "event.kind == \"DAVIS_PROBLEM\" and in(event.status_transition, {\"CREATED\", \"UPDATED\", \"REOPENED\"",
            );
            if value["onProblemClose"].as_bool() == Some(true) {
                q.push_str(", \"RESOLVED\"");
            }
            q.push_str("})");
            if !categories.is_empty() {
                q.push_str(&format!(
                    " and in(event.category, {{{}}})",
                    categories.join(", ")
                ));
            }
            if let Some(custom) = value["customFilter"].as_str().filter(|c| !c.is_empty()) {
                q.push_str(&format!(" and ({custom})"));
            }
            q
        }
        Some("davis-event") => {
            let mut q = String::from("event.kind == \"DAVIS_EVENT\"");
            if let Some(types) = value["types"].as_array().filter(|t| !t.is_empty()) {
                let list: Vec<String> = types.iter().map(|t| t.to_string()).collect();
                q.push_str(&format!(" and in(event.type, {{{}}})", list.join(", ")));
            }
            q
        }
        _ => String::new(),
    }
}

/// The response shape of a stored trigger.
fn response_trigger(trigger: &Value) -> Value {
    let mut out = json!({});
    if let Some(schedule) = trigger.get("schedule").filter(|s| !s.is_null()) {
        let mut s = schedule.clone();
        s["isFaulty"] = json!(false);
        if s.get("isActive").is_none() {
            s["isActive"] = json!(true);
        }
        if s.get("timezone").is_none() {
            s["timezone"] = json!("UTC");
        }
        out["schedule"] = s;
    }
    if let Some(event) = trigger.get("eventTrigger").filter(|s| !s.is_null()) {
        let config = event
            .get("triggerConfiguration")
            .cloned()
            .unwrap_or(Value::Null);
        out["eventTrigger"] = json!({
            "isActive": event.get("isActive").cloned().unwrap_or(json!(true)),
            "filterQuery": filter_query(&config),
            "uniqueExpression": null,
            "triggerConfiguration": config,
        });
    }
    out
}

fn trigger_type(trigger: &Value) -> &'static str {
    if trigger.get("eventTrigger").is_some_and(|t| !t.is_null()) {
        "Event"
    } else if trigger.get("schedule").is_some_and(|t| !t.is_null()) {
        "Schedule"
    } else {
        "Manual"
    }
}

/// Fills the task defaults the service adds.
fn normalize_tasks(tasks: &Value) -> Value {
    let mut out = Map::new();
    if let Some(tasks) = tasks.as_object() {
        for (i, (key, task)) in tasks.iter().enumerate() {
            let mut t = task.clone();
            let defaults = [
                ("name", json!(key)),
                ("description", json!("")),
                ("input", json!({})),
                ("active", json!(true)),
                ("position", json!({"x": 0, "y": i + 1})),
                ("predecessors", json!([])),
                ("timeout", json!(3600)),
                ("waitBefore", json!(0)),
            ];
            for (k, v) in defaults {
                if t.get(k).is_none_or(Value::is_null) {
                    t[k] = v;
                }
            }
            out.insert(key.clone(), t);
        }
    }
    Value::Object(out)
}

fn millis_now(inner: &Inner) -> String {
    let now = inner.now();
    let t = format_time(now - now % 1_000_000);
    match t.split_once('.') {
        Some((head, tail)) => format!("{head}.{}Z", &tail[..3]),
        None => t,
    }
}

fn bad_json() -> Response {
    violations(
        "Invalid request body.",
        vec![violation(
            "",
            "The body must be a JSON object (WorkflowCreate).",
        )],
    )
}

async fn create(State(inner): State<Arc<Inner>>, call: Call) -> Response {
    if let Err(response) = inner.admit(Route::WorkflowCreate, &call, &[WRITE]).await {
        return response;
    }
    let Some(Value::Object(body)) = call.json() else {
        return bad_json();
    };
    let problems = validate(&body, true);
    if !problems.is_empty() {
        return violations("Invalid workflow.", problems);
    }
    let id = match body.get("id").and_then(Value::as_str) {
        Some(id) => {
            if inner
                .workflows
                .lock()
                .unwrap()
                .iter()
                .any(|w| w["id"] == id)
            {
                return envelope(
                    StatusCode::CONFLICT,
                    &format!("A workflow with id {id} already exists."),
                    None,
                );
            }
            id.to_string()
        }
        None => inner.uuid(),
    };
    let now = millis_now(&inner);
    let trigger = body.get("trigger").cloned().unwrap_or(json!({}));
    let mut workflow = json!({
        "id": id,
        "title": body["title"],
        "description": body.get("description").cloned().unwrap_or(json!("")),
        "isDeployed": body.get("isDeployed").cloned().unwrap_or(json!(true)),
        "isPrivate": body.get("isPrivate").cloned().unwrap_or(json!(true)),
        "type": body.get("type").cloned().unwrap_or(json!("STANDARD")),
        "tasks": normalize_tasks(body.get("tasks").unwrap_or(&json!({}))),
        "taskDefaults": body.get("taskDefaults").cloned().unwrap_or(json!({})),
        "lastExecution": null,
        "actor": body.get("actor").cloned().unwrap_or(json!(DEMO_USER_ID)),
        "owner": body.get("owner").cloned().unwrap_or(json!(DEMO_USER_ID)),
        "ownerType": body.get("ownerType").cloned().unwrap_or(json!("USER")),
        "schemaVersion": body.get("schemaVersion").cloned().unwrap_or(json!(3)),
        "trigger": response_trigger(&trigger),
        "triggerType": trigger_type(&trigger),
        "modificationInfo": {
            "createdBy": DEMO_USER_ID,
            "createdTime": now,
            "lastModifiedBy": DEMO_USER_ID,
            "lastModifiedTime": now,
        },
        "result": body.get("result").cloned().unwrap_or(Value::Null),
        "input": body.get("input").cloned().unwrap_or(json!({})),
        "hourlyExecutionLimit": body.get("hourlyExecutionLimit").cloned().unwrap_or(json!(1000)),
        "guide": body.get("guide").cloned().unwrap_or(Value::Null),
        "throttle": {"isLimitHit": false, "limitEvents": []},
        "workflowLimit": {"isActive": false},
        "version": 1,
        "unacknowledgedSkippedScheduleAt": null,
    });
    if let Some(template) = body.get("basedOnTemplate") {
        workflow["basedOnTemplate"] = template.clone();
    }
    inner.workflows.lock().unwrap().push(workflow.clone());
    (StatusCode::CREATED, axum::Json(workflow)).into_response()
}

async fn get_one(State(inner): State<Arc<Inner>>, Path(id): Path<String>, call: Call) -> Response {
    if let Err(response) = inner.admit(Route::WorkflowGet, &call, &[READ]).await {
        return response;
    }
    let workflows = inner.workflows.lock().unwrap();
    match workflows.iter().find(|w| w["id"] == id.as_str()) {
        Some(w) => axum::Json(w.clone()).into_response(),
        None => not_found(&id),
    }
}

async fn update(State(inner): State<Arc<Inner>>, Path(id): Path<String>, call: Call) -> Response {
    if let Err(response) = inner.admit(Route::WorkflowUpdate, &call, &[WRITE]).await {
        return response;
    }
    let Some(Value::Object(body)) = call.json() else {
        return bad_json();
    };
    if !inner
        .workflows
        .lock()
        .unwrap()
        .iter()
        .any(|w| w["id"] == id.as_str())
    {
        return not_found(&id);
    }
    let problems = validate(&body, false);
    if !problems.is_empty() {
        return violations("Invalid workflow.", problems);
    }
    let now = millis_now(&inner);
    let mut workflows = inner.workflows.lock().unwrap();
    let Some(workflow) = workflows.iter_mut().find(|w| w["id"] == id.as_str()) else {
        return not_found(&id);
    };
    for (key, value) in body {
        match key.as_str() {
            "id" | "basedOnTemplate" | "modificationInfo" | "version" | "lastExecution" => {}
            "tasks" => workflow["tasks"] = normalize_tasks(&value),
            "trigger" => {
                workflow["triggerType"] = json!(trigger_type(&value));
                workflow["trigger"] = response_trigger(&value);
            }
            _ => workflow[key.as_str()] = value,
        }
    }
    workflow["version"] = json!(workflow["version"].as_u64().unwrap_or(1) + 1);
    workflow["modificationInfo"]["lastModifiedBy"] = json!(DEMO_USER_ID);
    workflow["modificationInfo"]["lastModifiedTime"] = json!(now);
    axum::Json(workflow.clone()).into_response()
}

async fn delete(State(inner): State<Arc<Inner>>, Path(id): Path<String>, call: Call) -> Response {
    if let Err(response) = inner.admit(Route::WorkflowDelete, &call, &[WRITE]).await {
        return response;
    }
    let mut workflows = inner.workflows.lock().unwrap();
    let before = workflows.len();
    workflows.retain(|w| w["id"] != id.as_str());
    if workflows.len() == before {
        return not_found(&id);
    }
    StatusCode::NO_CONTENT.into_response()
}

#[allow(clippy::result_large_err)] // the error is the handler's answer
async fn list(State(inner): State<Arc<Inner>>, call: Call) -> Response {
    if let Err(response) = inner.admit(Route::WorkflowList, &call, &[READ]).await {
        return response;
    }
    let number = |key: &str, default: usize| -> Result<usize, Response> {
        match call.param(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                violations(
                    "Invalid query parameters.",
                    vec![json!({"message": "A valid integer is required.", "parameterLocation": "QUERY", "path": key})],
                )
            }),
        }
    };
    let (limit, offset) = match (number("limit", 100), number("offset", 0)) {
        (Ok(l), Ok(o)) => (l, o),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let search = call.param("search").map(|s| s.to_lowercase());
    let kind = call.param("type");
    let trigger = call.param("triggerType");
    let deployed = call.param("isDeployed");
    let ids = call.param("id");
    let workflows = inner.workflows.lock().unwrap();
    let matching: Vec<Value> = workflows
        .iter()
        .filter(|w| {
            search.as_ref().is_none_or(|s| {
                w["title"]
                    .as_str()
                    .is_some_and(|t| t.to_lowercase().contains(s))
            })
        })
        .filter(|w| kind.as_ref().is_none_or(|k| w["type"] == k.as_str()))
        .filter(|w| {
            trigger
                .as_ref()
                .is_none_or(|t| w["triggerType"] == t.as_str())
        })
        .filter(|w| {
            deployed.as_ref().is_none_or(|d| {
                w["isDeployed"].as_bool().map(|b| b.to_string()).as_deref() == Some(d)
            })
        })
        .filter(|w| {
            ids.as_ref()
                .is_none_or(|list| list.split(',').any(|i| w["id"] == i))
        })
        .cloned()
        .collect();
    let count = matching.len();
    let results: Vec<Value> = matching.into_iter().skip(offset).take(limit).collect();
    axum::Json(json!({ "count": count, "results": results })).into_response()
}
