//! Davis CoPilot (`/platform/davis/copilot/v1`): the skill list, nl2dql, dql2nl, the
//! conversation skill, document search and the feedback endpoints. The "model" is a handful of
//! keyword rules over the sample shop, so answers are deterministic.
//!
//! Which skills exist is configurable ([`super::Sandbox::set_copilot_skills`]). `GET /skills`
//! lists only the enabled skills whose scope the token has, as the real one does. Calling a
//! disabled skill answers 403 `{"error":{"code":403,"message":…}}`: the SDK maps every 4xx to the
//! same `ClientErrorResponseError`, and the docs only say availability depends on CoPilot being
//! enabled, so 403 (a permission-like refusal) is this sandbox's choice.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::data::{PROBLEMS, SERVICES, display_id};
use super::dql;
use super::{Call, Inner, Route};

const BASE: &str = "/platform/davis/copilot/v1";

/// Every skill, in the order the API lists them.
pub const ALL_SKILLS: &[&str] = &["conversation", "nl2dql", "dql2nl", "documentSearch"];

fn scope_of(skill: &str) -> &'static str {
    match skill {
        "conversation" => "davis-copilot:conversations:execute",
        "nl2dql" => "davis-copilot:nl2dql:execute",
        "dql2nl" => "davis-copilot:dql2nl:execute",
        _ => "davis-copilot:document-search:execute",
    }
}

pub(super) fn routes(router: Router<Arc<Inner>>) -> Router<Arc<Inner>> {
    router
        .route(&format!("{BASE}/skills"), get(skills))
        .route(&format!("{BASE}/skills/nl2dql:generate"), post(nl2dql))
        .route(&format!("{BASE}/skills/dql2nl:explain"), post(dql2nl))
        .route(
            &format!("{BASE}/skills/conversations:message"),
            post(conversation),
        )
        .route(
            &format!("{BASE}/skills/document-search:execute"),
            post(document_search),
        )
        .route(
            &format!("{BASE}/skills/nl2dql:feedback"),
            post(|state, call| feedback(state, call, "nl2dql")),
        )
        .route(
            &format!("{BASE}/skills/dql2nl:feedback"),
            post(|state, call| feedback(state, call, "dql2nl")),
        )
        .route(
            &format!("{BASE}/skills/conversations:feedback"),
            post(|state, call| feedback(state, call, "conversation")),
        )
}

/// CoPilot's error body: `{"error": {"code", "message"}}` (no details).
fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "code": status.as_u16(), "message": message } })),
    )
        .into_response()
}

/// Admits a skill call: auth, scope, and the skill being enabled.
async fn admit(inner: &Inner, route: Route, call: &Call, skill: &str) -> Result<(), Response> {
    inner.admit(route, call, &[scope_of(skill)]).await?;
    if !inner
        .copilot_skills
        .lock()
        .unwrap()
        .iter()
        .any(|s| s == skill)
    {
        return Err(error(
            StatusCode::FORBIDDEN,
            &format!(
                "The Davis CoPilot skill '{skill}' is not available in this environment. Davis CoPilot must be enabled (Settings > Davis CoPilot) and the skill activated."
            ),
        ));
    }
    Ok(())
}

/// The body as a JSON object, or CoPilot's 400.
#[allow(clippy::result_large_err)] // the error is the handler's answer
fn object(call: &Call) -> Result<serde_json::Map<String, Value>, Response> {
    match call.json() {
        Some(Value::Object(map)) => Ok(map),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "The request body must be a JSON object.",
        )),
    }
}

#[allow(clippy::result_large_err)]
fn required_text(body: &serde_json::Map<String, Value>, key: &str) -> Result<String, Response> {
    match body.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            &format!("'{key}' is required and must be a non-empty string."),
        )),
    }
}

async fn skills(State(inner): State<Arc<Inner>>, call: Call) -> Response {
    if let Err(response) = inner.admit(Route::CopilotSkills, &call, &[]).await {
        return response;
    }
    let scopes = match inner.token_scopes(&call.headers) {
        Ok(scopes) => scopes,
        Err(response) => return *response,
    };
    let enabled = inner.copilot_skills.lock().unwrap().clone();
    let skills: Vec<&str> = ALL_SKILLS
        .iter()
        .copied()
        .filter(|s| enabled.iter().any(|e| e == s))
        .filter(|s| scopes.iter().any(|x| x == scope_of(s)))
        .collect();
    axum::Json(json!({ "skills": skills })).into_response()
}

/// Natural language to DQL: keyword rules over the sample data, or `None`.
pub fn generate_dql(text: &str) -> Option<String> {
    let t = text.to_lowercase();
    let tokens: Vec<&str> = t
        .split(|c: char| !c.is_alphanumeric() && c != '-')
        .filter(|w| !w.is_empty())
        .collect();
    // A key with a blank matches as a phrase, any other as the start of a word.
    let has = |keys: &[&str]| {
        keys.iter().any(|k| {
            if k.contains(' ') {
                t.contains(k)
            } else {
                tokens.iter().any(|w| w.starts_with(k))
            }
        })
    };
    let timeframe = time_hint(&t);
    let from = |default: Option<&str>| match (&timeframe, default) {
        (Some(tf), _) => format!(", from: now()-{tf}"),
        (None, Some(d)) => format!(", from: now()-{d}"),
        (None, None) => String::new(),
    };
    let service = SERVICES
        .iter()
        .map(|s| s.name)
        .find(|name| t.contains(name) || t.contains(name.trim_end_matches("-service")));
    let service_filter = |field: &str| {
        service
            .map(|s| format!(" and {field} == \"{s}\""))
            .unwrap_or_default()
    };
    let by_service = has(&["by service", "per service", "each service"]);
    let count = has(&["how many", "count", "number of"]);

    if has(&["vulnerab", "cve", "security"]) {
        return Some(format!(
            "fetch security.events{}\n| filter event.type == \"VULNERABILITY_STATE_REPORT_EVENT\"\n| dedup {{vulnerability.display_id, affected_entity.id}}, sort: {{timestamp desc}}\n| filter vulnerability.resolution.status == \"OPEN\" and vulnerability.mute.status == \"NOT_MUTED\"\n| sort vulnerability.risk.score desc\n| fields vulnerability.display_id, vulnerability.title, vulnerability.risk.level, affected_entity.name",
            from(Some("30d"))
        ));
    }
    if has(&["problem", "incident", "outage"]) {
        let status = if has(&["closed", "resolved"]) {
            "CLOSED"
        } else {
            "ACTIVE"
        };
        return Some(format!(
            "fetch dt.davis.problems{}\n| filter event.status == \"{status}\"\n| sort event.start desc\n| fields display_id, event.name, event.category, root_cause_entity_name, affected_users_count",
            from(None)
        ));
    }
    if has(&["exception", "javascript", "crash", "rum", "frontend error"]) {
        return Some(format!(
            "fetch user.events{}\n| filter isNotNull(error.id)\n| summarize occurrences = count(), by: {{error.type, exception.message}}\n| sort occurrences desc",
            from(None)
        ));
    }
    if has(&["bucket", "retention", "storage"]) {
        return Some(
            "fetch dt.system.buckets\n| fields name, table, retention_days, records\n| sort name asc"
                .to_string(),
        );
    }
    if has(&["kubernetes", "k8s", "pod", "cluster event"]) {
        return Some(format!(
            "fetch events{}\n| filter isNotNull(k8s.cluster.uid)\n| sort timestamp desc\n| fields timestamp, event.type, event.name, k8s.cluster.name, k8s.namespace.name\n| limit 50",
            from(None)
        ));
    }
    if has(&["deployment", "event"]) {
        return Some(format!(
            "fetch events{}\n| filter event.type == \"CUSTOM_DEPLOYMENT\" or event.type == \"CUSTOM_INFO\"\n| sort timestamp desc\n| limit 20",
            from(None)
        ));
    }
    if has(&[
        "span",
        "trace",
        "request",
        "latency",
        "slow",
        "response time",
    ]) {
        if by_service || has(&["slowest", "average", "latency", "response time"]) {
            return Some(format!(
                "fetch spans{}\n| filter span.kind == \"server\"{}\n| summarize avg_duration = avg(duration), requests = count(), by: {{service.name}}\n| sort avg_duration desc",
                from(None),
                service_filter("service.name")
            ));
        }
        let failed = if has(&["fail", "error"]) {
            " and request.is_failed == true"
        } else {
            ""
        };
        return Some(format!(
            "fetch spans{}\n| filter span.kind == \"server\"{failed}{}\n| sort duration desc\n| limit 20",
            from(None),
            service_filter("service.name")
        ));
    }
    if has(&["host"]) {
        return Some(
            "fetch dt.entity.host\n| fields id, entity.name, k8s.cluster.name, tags".into(),
        );
    }
    if has(&["service"]) && !has(&["log"]) {
        return Some(
            "fetch dt.entity.service\n| fields id, entity.name, k8s.namespace.name, tags".into(),
        );
    }
    if has(&["log"]) {
        let level = if has(&["warn"]) {
            Some("WARN")
        } else if has(&["error", "fail", "exception"]) {
            Some("ERROR")
        } else {
            None
        };
        let mut q = format!("fetch logs{}", from(None));
        let mut conditions = Vec::new();
        if let Some(level) = level {
            conditions.push(format!("loglevel == \"{level}\""));
        }
        if let Some(s) = service {
            conditions.push(format!("service.name == \"{s}\""));
        }
        if !conditions.is_empty() {
            q.push_str(&format!(" | filter {}", conditions.join(" and ")));
        }
        if count || by_service {
            let by = if by_service {
                "service.name"
            } else {
                "loglevel"
            };
            q.push_str(&format!(" | summarize count(), by: {{{by}}}"));
        } else {
            q.push_str(" | limit 20");
        }
        return Some(q);
    }
    None
}

/// `last 2 hours` → `2h`.
fn time_hint(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        if *w != "last" && *w != "past" {
            continue;
        }
        let (n, unit) = match (words.get(i + 1), words.get(i + 2)) {
            (Some(n), Some(unit)) if n.parse::<u32>().is_ok() => (n.to_string(), *unit),
            (Some(unit), _) => ("1".to_string(), *unit),
            _ => continue,
        };
        let suffix = match unit.trim_end_matches(['.', ',', '?']) {
            u if u.starts_with("minute") => "m",
            u if u.starts_with("hour") => "h",
            u if u.starts_with("day") => "d",
            u if u.starts_with("week") => "d",
            _ => continue,
        };
        let n: u32 = n.parse().unwrap_or(1);
        let n = if unit.starts_with("week") { n * 7 } else { n };
        return Some(format!("{n}{suffix}"));
    }
    None
}

#[allow(clippy::result_large_err)]
async fn nl2dql(State(inner): State<Arc<Inner>>, call: Call) -> Response {
    if let Err(response) = admit(&inner, Route::CopilotNl2Dql, &call, "nl2dql").await {
        return response;
    }
    let text = match object(&call).and_then(|b| required_text(&b, "text")) {
        Ok(text) => text,
        Err(response) => return response,
    };
    let token = inner.uuid();
    match generate_dql(&text) {
        Some(dql) => axum::Json(json!({
            "dql": dql,
            "messageToken": token,
            "status": "SUCCESSFUL",
            "metadata": { "notifications": [] },
        }))
        .into_response(),
        None => axum::Json(json!({
            "dql": "",
            "messageToken": token,
            "status": "FAILED",
            "metadata": { "notifications": [{
                "severity": "ERROR",
                "notificationType": "UNSUPPORTED_REQUEST",
                "message": "Davis CoPilot could not generate a DQL query for this request. Name the data you are after, e.g. logs, spans, problems, events or vulnerabilities.",
            }] },
        }))
        .into_response(),
    }
}

#[allow(clippy::result_large_err)]
async fn dql2nl(State(inner): State<Arc<Inner>>, call: Call) -> Response {
    if let Err(response) = admit(&inner, Route::CopilotDql2Nl, &call, "dql2nl").await {
        return response;
    }
    let query = match object(&call).and_then(|b| required_text(&b, "dql")) {
        Ok(q) => q,
        Err(response) => return response,
    };
    let token = inner.uuid();
    match dql::parse(&query) {
        Ok(parsed) => {
            let (summary, steps) = parsed.explain();
            axum::Json(json!({
                "summary": summary,
                "explanation": steps.iter().map(|s| format!("- {s}")).collect::<Vec<_>>().join("\n"),
                "messageToken": token,
                "status": "SUCCESSFUL",
                "metadata": { "notifications": [] },
            }))
            .into_response()
        }
        Err(e) => axum::Json(json!({
            "summary": "",
            "explanation": format!("The query is not valid DQL: {} (line {}, column {}).", e.message, e.start.line, e.start.column),
            "messageToken": token,
            "status": "FAILED",
            "metadata": { "notifications": [{
                "severity": "ERROR",
                "notificationType": "INVALID_QUERY",
                "message": "Only valid DQL queries can be explained.",
            }] },
        }))
        .into_response(),
    }
}

/// Documentation pages the conversation skill cites.
const SOURCES: &[(&str, &str, &[&str])] = &[
    (
        "Davis problems",
        "https://docs.dynatrace.com/docs/dynatrace-intelligence/davis-problems",
        &["problem", "root cause", "incident", "davis"],
    ),
    (
        "Dynatrace Query Language",
        "https://docs.dynatrace.com/docs/platform/grail/dynatrace-query-language",
        &["dql", "query", "fetch", "filter"],
    ),
    (
        "Log Management and Analytics",
        "https://docs.dynatrace.com/docs/observe/logs",
        &["log", "error"],
    ),
    (
        "Kubernetes monitoring",
        "https://docs.dynatrace.com/docs/observe/infrastructure-observability/kubernetes",
        &["kubernetes", "k8s", "pod", "cluster"],
    ),
    (
        "Runtime Vulnerability Analytics",
        "https://docs.dynatrace.com/docs/secure/application-security/vulnerability-analytics",
        &["vulnerab", "cve", "security", "log4"],
    ),
    (
        "Workflows",
        "https://docs.dynatrace.com/docs/analyze-explore-automate/workflows",
        &["workflow", "automat", "notif", "slack"],
    ),
];

fn answer(text: &str, context: &[(String, String)]) -> String {
    let t = text.to_lowercase();
    let mut parts = Vec::new();
    for (i, p) in PROBLEMS.iter().enumerate() {
        let id = display_id(i);
        if t.contains(&id.to_lowercase()) {
            parts.push(format!(
                "{id} \"{}\" is {} ({} category). {} Root cause: {}. Start by checking the error logs and failing requests of {}, then recent deployments on it.",
                p.name,
                if p.active { "still open" } else { "closed" },
                p.category,
                p.description,
                SERVICES[p.root_cause].name,
                SERVICES[p.root_cause].name,
            ));
        }
    }
    for s in SERVICES.iter().filter(|s| t.contains(s.name)) {
        if parts.iter().any(|p| p.contains(s.name)) {
            continue;
        }
        let open: Vec<String> = PROBLEMS
            .iter()
            .enumerate()
            .filter(|(_, p)| p.active && SERVICES[p.root_cause].name == s.name)
            .map(|(i, p)| format!("{} ({})", display_id(i), p.name))
            .collect();
        parts.push(if open.is_empty() {
            format!(
                "{} runs in namespace {} and has no open problem. Look at its error logs with: fetch logs | filter service.name == \"{}\" and loglevel == \"ERROR\"",
                s.name, s.namespace, s.name
            )
        } else {
            format!(
                "{} (namespace {}) is the root cause of {}.",
                s.name,
                s.namespace,
                open.join(", ")
            )
        });
    }
    if parts.is_empty() {
        if let Some(dql) = generate_dql(text) {
            parts.push(format!(
                "You can answer this with DQL in a notebook:\n\n```\n{dql}\n```"
            ));
        } else {
            parts.push(
                "I can help with problems, logs, traces, Kubernetes events, vulnerabilities and workflows in this environment. Ask about a service (e.g. payment-service) or a problem id (e.g. P-2411120)."
                    .to_string(),
            );
        }
    }
    let instructions: Vec<&str> = context
        .iter()
        .filter(|(k, _)| k == "instruction")
        .map(|(_, v)| v.as_str())
        .collect();
    let supplementary = context.iter().filter(|(k, _)| k == "supplementary").count();
    if supplementary > 0 {
        parts.push(format!(
            "(Taking into account {supplementary} piece(s) of supplementary context you provided.)"
        ));
    }
    if instructions
        .iter()
        .any(|i| i.to_lowercase().contains("short") || i.to_lowercase().contains("brief"))
    {
        parts.truncate(1);
    }
    parts.join("\n\n")
}

async fn conversation(State(inner): State<Arc<Inner>>, call: Call) -> Response {
    if let Err(response) = admit(&inner, Route::CopilotConversation, &call, "conversation").await {
        return response;
    }
    let body = match object(&call) {
        Ok(b) => b,
        Err(response) => return response,
    };
    let text = match required_text(&body, "text") {
        Ok(t) => t,
        Err(response) => return response,
    };
    let mut context = Vec::new();
    match body.get("context") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let kind = item["type"].as_str().unwrap_or_default();
                if !matches!(kind, "supplementary" | "document-retrieval" | "instruction") {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "context[].type must be one of supplementary, document-retrieval, instruction.",
                    );
                }
                let Some(value) = item["value"].as_str() else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "context[].value is required and must be a string.",
                    );
                };
                context.push((kind.to_string(), value.to_string()));
            }
        }
        Some(_) => {
            return error(StatusCode::BAD_REQUEST, "context must be an array.");
        }
    }
    if let Some(annotations) = body.get("annotations").filter(|a| !a.is_null()) {
        let ok = annotations.as_object().is_some_and(|a| {
            a.len() <= 10
                && a.iter().all(|(k, v)| {
                    k.chars().count() <= 128 && v.as_str().is_some_and(|v| v.chars().count() <= 128)
                })
        });
        if !ok {
            return error(
                StatusCode::BAD_REQUEST,
                "annotations: at most 10 string entries, keys and values of at most 128 characters.",
            );
        }
    }
    let reply = answer(&text, &context);
    let retrieval_disabled = context
        .iter()
        .any(|(k, v)| k == "document-retrieval" && v == "disabled");
    let lowered = format!(
        "{} {}",
        text.to_lowercase(),
        context
            .iter()
            .map(|(_, v)| v.to_lowercase())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let sources: Vec<Value> = if retrieval_disabled {
        Vec::new()
    } else {
        let mut hits: Vec<Value> = SOURCES
            .iter()
            .filter(|(_, _, keys)| keys.iter().any(|k| lowered.contains(k)))
            .map(|(title, url, _)| json!({"title": title, "url": url, "type": "documentation"}))
            .collect();
        if hits.is_empty() {
            hits.push(json!({"title": SOURCES[1].0, "url": SOURCES[1].1, "type": "documentation"}));
        }
        hits
    };
    let previous = body.get("state").cloned().unwrap_or(Value::Null);
    let mut history: Vec<Value> = previous["history"].as_array().cloned().unwrap_or_default();
    history.push(json!({"role": "user", "text": text}));
    history.push(json!({"role": "assistant", "text": reply}));
    let state = json!({
        "version": previous["version"].as_str().unwrap_or("1"),
        "conversationId": previous["conversationId"].as_str().map(str::to_string).unwrap_or_else(|| inner.uuid()),
        "skillName": "conversation",
        "history": history,
    });
    axum::Json(json!({
        "text": reply,
        "messageToken": inner.uuid(),
        "status": "SUCCESSFUL",
        "state": state,
        "metadata": { "sources": sources, "notifications": [] },
    }))
    .into_response()
}

async fn document_search(State(inner): State<Arc<Inner>>, call: Call) -> Response {
    if let Err(response) = admit(
        &inner,
        Route::CopilotDocumentSearch,
        &call,
        "documentSearch",
    )
    .await
    {
        return response;
    }
    let body = match object(&call) {
        Ok(b) => b,
        Err(response) => return response,
    };
    let strings = |key: &str| -> Option<Vec<String>> {
        body.get(key)?
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let Some(texts) = strings("texts").filter(|t| !t.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "'texts' is required and must be a non-empty array of strings.",
        );
    };
    let Some(collections) = strings("collections").filter(|c| !c.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "'collections' is required and must be a non-empty array of strings.",
        );
    };
    let exclude = match body.get("exclude") {
        None | Some(Value::Null) => Vec::new(),
        Some(_) => match strings("exclude") {
            Some(e) => e,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "'exclude' must be an array of document ids.",
                );
            }
        },
    };
    let types: Vec<&str> = collections
        .iter()
        .filter_map(|c| match c.to_lowercase().as_str() {
            "dashboards" | "dashboard" => Some("dashboard"),
            "notebooks" | "notebook" => Some("notebook"),
            _ => None,
        })
        .collect();
    let words: Vec<String> = texts
        .iter()
        .flat_map(|t| {
            t.to_lowercase()
                .split(|c: char| !c.is_alphanumeric() && c != '-' && c != '.')
                .filter(|w| w.len() > 2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let docs = inner.documents.lock().unwrap().clone();
    let mut results: Vec<(f64, Value)> = docs
        .iter()
        .filter(|d| !exclude.iter().any(|e| e == d.id()))
        .filter(|d| types.is_empty() || types.contains(&d.kind()))
        .filter_map(|d| {
            let m = &d.metadata;
            let name = m["name"].as_str().unwrap_or_default().to_lowercase();
            let description = m["description"].as_str().unwrap_or_default().to_lowercase();
            let content = d.content_text().to_lowercase();
            let mut score = 0.0;
            for w in &words {
                if name.contains(w.as_str()) {
                    score += 3.0;
                }
                if description.contains(w.as_str()) {
                    score += 2.0;
                }
                if content.contains(w.as_str()) {
                    score += 1.0;
                }
            }
            (score > 0.0).then(|| {
                (
                    score,
                    json!({
                        "documentId": d.id(),
                        "relevanceScore": 0.0,
                        "documentMetadata": {
                            "id": d.id(),
                            "name": m["name"],
                            "type": m["type"],
                            "description": m.get("description").cloned().unwrap_or(json!("")),
                            "version": m["version"],
                        }
                    }),
                )
            })
        })
        .collect();
    results.sort_by(|a, b| b.0.total_cmp(&a.0));
    let best = results.first().map(|r| r.0).unwrap_or(1.0);
    let results: Vec<Value> = results
        .into_iter()
        .take(10)
        .map(|(score, mut v)| {
            v["relevanceScore"] = json!(((score / best) * 0.95 * 1000.0).round() / 1000.0);
            v
        })
        .collect();
    axum::Json(json!({
        "messageToken": inner.uuid(),
        "status": "SUCCESSFUL",
        "results": results,
    }))
    .into_response()
}

async fn feedback(State(inner): State<Arc<Inner>>, call: Call, skill: &'static str) -> Response {
    if let Err(response) = admit(&inner, Route::CopilotFeedback, &call, skill).await {
        return response;
    }
    let body = match object(&call) {
        Ok(b) => b,
        Err(response) => return response,
    };
    if let Err(response) = required_text(&body, "messageToken") {
        return response;
    }
    if let Err(response) = required_text(&body, "origin") {
        return response;
    }
    if !matches!(
        body.get("feedback").and_then(|f| f["type"].as_str()),
        Some("positive" | "negative")
    ) {
        return error(
            StatusCode::BAD_REQUEST,
            "feedback.type must be positive or negative.",
        );
    }
    StatusCode::ACCEPTED.into_response()
}
