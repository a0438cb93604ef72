//! The Document API (`/platform/document/v1`): list with `filter`/`sort`/paging, multipart
//! create, metadata, content, and the multipart `GET /documents/{id}`. The tenant starts with a
//! few dashboards and notebooks about the sample shop.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde_json::{Value, json};

use super::data::mix;
use super::dql::format_time;
use super::filter::{self, Grammar};
use super::{Call, DEMO_USER_ID, Inner, Route, envelope, multipart, uuid_from};

const BASE: &str = "/platform/document/v1/documents";
const READ: &str = "document:documents:read";
const WRITE: &str = "document:documents:write";
/// Content limit of a document (50 MB).
const MAX_CONTENT: usize = 50 * 1024 * 1024;

/// A document as the tenant holds it.
#[derive(Debug, Clone)]
pub struct StoredDocument {
    /// `DocumentMetaData` as `GET /documents/{id}/metadata` returns it.
    pub metadata: Value,
    /// The content part's own content type (e.g. `application/json`).
    pub content_type: String,
    pub content: Vec<u8>,
}

/// `doc["name"]` reads the metadata, as on the wire.
impl std::ops::Index<&str> for StoredDocument {
    type Output = Value;

    fn index(&self, key: &str) -> &Value {
        &self.metadata[key]
    }
}

impl StoredDocument {
    pub fn id(&self) -> &str {
        self.metadata["id"].as_str().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.metadata["name"].as_str().unwrap_or_default()
    }

    pub fn kind(&self) -> &str {
        self.metadata["type"].as_str().unwrap_or_default()
    }

    pub fn content_text(&self) -> String {
        String::from_utf8_lossy(&self.content).into_owned()
    }

    /// The content parsed as JSON (`Null` when it is not JSON).
    pub fn content_json(&self) -> Value {
        serde_json::from_slice(&self.content).unwrap_or(Value::Null)
    }
}

pub(super) fn routes(router: Router<Arc<Inner>>) -> Router<Arc<Inner>> {
    router
        .route(BASE, get(list).post(create))
        .route(&format!("{BASE}/{{id}}"), get(get_document))
        .route(&format!("{BASE}/{{id}}/metadata"), get(metadata))
        .route(&format!("{BASE}/{{id}}/content"), get(content))
}

/// Another user of the tenant, owner of some shared documents.
const COLLEAGUE: &str = "b3c2d1e0-4f5a-4b6c-8d7e-9f0a1b2c3d4e";

/// (name, type, description, owner, version, age in days, DQL of its first section)
const SEEDS: &[(&str, &str, &str, &str, u32, i128, &str)] = &[
    (
        "Payments SLOs",
        "dashboard",
        "Availability and latency SLOs of payment-service and checkout-service, with error budgets.",
        COLLEAGUE,
        14,
        40,
        "fetch spans | filter service.name == \"payment-service\" | summarize failed = countIf(request.is_failed), total = count()",
    ),
    (
        "Checkout troubleshooting guide",
        "notebook",
        "Step by step: error logs, failing spans and Davis problems when checkouts fail.",
        DEMO_USER_ID,
        7,
        12,
        "fetch logs | filter loglevel == \"ERROR\" and service.name == \"checkout-service\" | sort timestamp desc | limit 50",
    ),
    (
        "Kubernetes cluster overview",
        "dashboard",
        "Nodes, pods, restarts and warning events of prod-eu-west-1 and staging-us-east-1.",
        COLLEAGUE,
        22,
        90,
        "fetch events | filter event.kind == \"K8S_EVENT\" | summarize count(), by: {k8s.cluster.name, k8s.event.severity}",
    ),
    (
        "Log4Shell exposure review",
        "notebook",
        "Which process groups still run a vulnerable log4j-core, and since when.",
        DEMO_USER_ID,
        3,
        5,
        "fetch security.events | filter vulnerability.display_id == \"S-101\" | dedup {affected_entity.id}, sort: {timestamp desc}",
    ),
    (
        "Frontend real user monitoring",
        "dashboard",
        "Page loads, JavaScript errors and exceptions of shop-web and shop-android.",
        COLLEAGUE,
        9,
        30,
        "fetch user.events | filter isNotNull(error.id) | summarize count(), by: {error.type}",
    ),
    (
        "Inventory slow query investigation",
        "notebook",
        "Slow SELECT stock queries behind the inventory-service response time degradation.",
        DEMO_USER_ID,
        4,
        2,
        "fetch logs | filter contains(content, \"slow query\") | sort timestamp desc",
    ),
    (
        "Grail bucket usage",
        "dashboard",
        "Records, bytes and retention per Grail bucket.",
        COLLEAGUE,
        2,
        60,
        "fetch dt.system.buckets | fields name, table, retention_days, records",
    ),
    (
        "On-call handbook: payments",
        "notebook",
        "What to check first when payment-service alerts: problems, error logs, recent deployments.",
        COLLEAGUE,
        11,
        20,
        "fetch dt.davis.problems | filter event.status == \"ACTIVE\" | fields display_id, event.name",
    ),
];

const DAY: i128 = 86_400 * 1_000_000_000;

/// A stable, random-looking UUID for seeded content.
fn seeded_uuid(n: usize) -> String {
    uuid_from((u128::from(mix(n, 90)) << 64) | u128::from(mix(n, 91)))
}

/// The documents the tenant starts with.
pub(super) fn seed(now: i128) -> Vec<StoredDocument> {
    SEEDS
        .iter()
        .enumerate()
        .map(|(i, (name, kind, description, owner, version, age, dql))| {
            let created = now - age * DAY;
            let modified = now - (age * DAY) / 3;
            let content = if *kind == "notebook" {
                json!({
                    "version": "7",
                    "sections": [
                        {"id": seeded_uuid(100 + i), "type": "markdown", "markdown": format!("## {name}\n\n{description}")},
                        {"id": seeded_uuid(200 + i), "type": "dql", "showTitle": false, "state": {"input": {"value": dql}}},
                    ]
                })
            } else {
                json!({
                    "version": 15,
                    "variables": [],
                    "tiles": {
                        "0": {"type": "markdown", "content": format!("# {name}\n{description}")},
                        "1": {"type": "data", "title": "", "query": dql, "visualization": "table"},
                    },
                    "layouts": {
                        "0": {"x": 0, "y": 0, "w": 24, "h": 2},
                        "1": {"x": 0, "y": 2, "w": 24, "h": 8},
                    }
                })
            };
            let owned = *owner == DEMO_USER_ID;
            StoredDocument {
                metadata: json!({
                    "id": seeded_uuid(i),
                    "name": name,
                    "type": kind,
                    "description": description,
                    "version": version.to_string(),
                    "owner": owner,
                    "isPrivate": false,
                    "access": if owned { json!(["read", "write", "delete"]) } else { json!(["read"]) },
                    "modificationInfo": {
                        "createdBy": owner,
                        "createdTime": millis_time(created),
                        "lastModifiedBy": owner,
                        "lastModifiedTime": millis_time(modified),
                    },
                }),
                content_type: "application/json".into(),
                content: content.to_string().into_bytes(),
            }
        })
        .collect()
}

/// `2026-11-25T12:00:00.000Z`, as the document service writes times.
fn millis_time(nanos: i128) -> String {
    let t = format_time(nanos - nanos % 1_000_000);
    // format_time gives nanoseconds; keep milliseconds.
    match t.split_once('.') {
        Some((head, tail)) => format!("{head}.{}Z", &tail[..3]),
        None => t,
    }
}

fn error(status: StatusCode, message: &str, inner: &Inner) -> Response {
    envelope(status, message, Some(json!({ "errorRef": inner.uuid() })))
}

fn not_found(id: &str, inner: &Inner) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!("Document with id '{id}' not found."),
        inner,
    )
}

const FILTER: Grammar = Grammar {
    fields: &[
        "id",
        "name",
        "type",
        "version",
        "owner",
        "modificationInfo.createdTime",
        "modificationInfo.createdBy",
        "modificationInfo.lastModifiedTime",
        "modificationInfo.lastModifiedBy",
        "originAppId",
        "originExtensionId",
    ],
    nesting: true,
    extended: true,
};

const SORT_FIELDS: &[&str] = &[
    "name",
    "type",
    "version",
    "owner",
    "modificationInfo.createdTime",
    "modificationInfo.createdBy",
    "modificationInfo.lastModifiedTime",
    "modificationInfo.lastModifiedBy",
    "originAppId",
    "userContext.lastAccessedTime",
];

const ADD_FIELDS: &[&str] = &[
    "description",
    "userContext.lastAccessedTime",
    "originExtensionId",
    "shareInfo.isShared",
    "shareInfo.isSharedWithCurrentUser",
];

fn sort_key(doc: &Value, field: &str) -> (Option<f64>, String) {
    let mut v = doc;
    for part in field.split('.') {
        v = v.get(part).unwrap_or(&Value::Null);
    }
    let text = match v {
        Value::String(s) => s.to_lowercase(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    (
        if field == "version" {
            text.parse().ok()
        } else {
            None
        },
        text,
    )
}

/// The listing state a page key carries.
fn decode_page_key(key: &str) -> Option<(usize, Value)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key)
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    Some((v["offset"].as_u64()? as usize, v))
}

async fn list(State(inner): State<Arc<Inner>>, call: Call) -> Response {
    if let Err(response) = inner.admit(Route::DocumentList, &call, &[READ]).await {
        return response;
    }
    // A page key carries the filter, sort and page size of the first request.
    let (offset, params) = match call.param("page-key") {
        Some(key) => match decode_page_key(&key) {
            Some(state) => state,
            None => return error(StatusCode::BAD_REQUEST, "Invalid page-key.", &inner),
        },
        None => (
            0,
            json!({
                "filter": call.param("filter"),
                "sort": call.param("sort"),
                "pageSize": call.param("page-size"),
                "page": call.param("page"),
                "addFields": call.param("add-fields"),
            }),
        ),
    };
    let text = |k: &str| params[k].as_str().map(str::to_string);
    let page_size = match text("pageSize") {
        None => 20,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "page-size must be a number between 1 and 1000.",
                    &inner,
                );
            }
        },
    };
    let mut offset = offset;
    if let Some(page) = text("page") {
        match page.parse::<usize>() {
            Ok(n) if n >= 1 => offset = (n - 1) * page_size,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "page must be a number greater than zero.",
                    &inner,
                );
            }
        }
    }
    let filter = match text("filter").filter(|f| !f.trim().is_empty()) {
        None => None,
        Some(f) => match filter::parse(&f, &FILTER) {
            Ok(parsed) => Some(parsed),
            Err(reason) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("Invalid filter '{f}': {reason}."),
                    &inner,
                );
            }
        },
    };
    let mut sort: Vec<(String, bool)> = Vec::new();
    if let Some(s) = text("sort") {
        let keys: Vec<&str> = s.split(',').collect();
        if keys.len() > 5 {
            return error(
                StatusCode::BAD_REQUEST,
                "At most 5 sort parameters are allowed.",
                &inner,
            );
        }
        for key in keys {
            let (field, desc) = match key.strip_prefix('-') {
                Some(f) => (f, true),
                None => (key, false),
            };
            if !SORT_FIELDS.contains(&field) {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("Invalid sort parameter '{key}'."),
                    &inner,
                );
            }
            sort.push((field.to_string(), desc));
        }
    }
    let add_fields: Vec<String> = text("addFields")
        .map(|s| s.split(',').map(|f| f.trim().to_string()).collect())
        .unwrap_or_default();
    if let Some(bad) = add_fields
        .iter()
        .find(|f| !ADD_FIELDS.contains(&f.as_str()))
    {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("Invalid add-fields value '{bad}'."),
            &inner,
        );
    }
    let mut docs: Vec<Value> = inner
        .documents
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.metadata.clone())
        .filter(|m| m["owner"] == DEMO_USER_ID || m["isPrivate"] == false)
        .filter(|m| filter.as_ref().is_none_or(|f| f.matches(m)))
        .collect();
    docs.sort_by(|a, b| {
        for (field, desc) in &sort {
            let o = sort_key(a, field).partial_cmp(&sort_key(b, field));
            let o = o.unwrap_or(std::cmp::Ordering::Equal);
            let o = if *desc { o.reverse() } else { o };
            if o.is_ne() {
                return o;
            }
        }
        a["id"].as_str().cmp(&b["id"].as_str())
    });
    let total = docs.len();
    let page: Vec<Value> = docs
        .into_iter()
        .skip(offset)
        .take(page_size)
        .map(|mut m| {
            if let Some(obj) = m.as_object_mut() {
                if !add_fields.iter().any(|f| f == "description") {
                    obj.remove("description");
                }
                if add_fields.iter().any(|f| f.starts_with("shareInfo")) {
                    obj.insert(
                        "shareInfo".into(),
                        json!({"isShared": false, "isSharedWithCurrentUser": false}),
                    );
                }
            }
            m
        })
        .collect();
    let mut body = json!({ "documents": page, "totalCount": total });
    if offset + page_size < total {
        let mut next = params.clone();
        next["offset"] = json!(offset + page_size);
        next["page"] = Value::Null;
        body["nextPageKey"] = json!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(next.to_string().as_bytes())
        );
    }
    axum::Json(body).into_response()
}

fn bad_part(part: &str, message: &str) -> Response {
    envelope(
        StatusCode::BAD_REQUEST,
        message,
        Some(json!({
            "constraintViolations": [{"message": message, "parameterLocation": "PAYLOAD_BODY", "path": part}]
        })),
    )
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

async fn create(State(inner): State<Arc<Inner>>, call: Call) -> Response {
    if let Err(response) = inner.admit(Route::DocumentCreate, &call, &[WRITE]).await {
        return response;
    }
    let Some(boundary) = multipart::boundary(&call.content_type()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "The request must be multipart/form-data (parts: name, type, description, content, id).",
            &inner,
        );
    };
    let parts = match multipart::parse(&call.body, &boundary) {
        Ok(parts) => parts,
        Err(reason) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("Malformed multipart body: {reason}."),
                &inner,
            );
        }
    };
    let part = |name: &str| parts.iter().find(|p| p.name == name);
    let text = |name: &str| part(name).map(|p| p.text());
    let Some(name) = text("name").filter(|n| !n.trim().is_empty()) else {
        return bad_part("name", "The part 'name' is required.");
    };
    if name.chars().count() > 128 {
        return bad_part("name", "name must be at most 128 characters long.");
    }
    let Some(kind) = text("type").filter(|t| !t.trim().is_empty()) else {
        return bad_part("type", "The part 'type' is required.");
    };
    if kind.chars().count() > 128 {
        return bad_part("type", "type must be at most 128 characters long.");
    }
    let description = text("description");
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 256)
    {
        return bad_part(
            "description",
            "description must be at most 256 characters long.",
        );
    }
    let Some(content) = part("content") else {
        return bad_part("content", "The part 'content' is required.");
    };
    let Some(content_type) = content.content_type.clone() else {
        return bad_part(
            "content",
            "The part 'content' needs a Content-Type header (e.g. application/json).",
        );
    };
    if content.data.len() > MAX_CONTENT {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The document content exceeds the limit of 50 MB.",
            &inner,
        );
    }
    let id = match text("id").or_else(|| text("externalId")) {
        None => inner.uuid(),
        Some(id) => {
            if id.is_empty()
                || id.len() > 100
                || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return bad_part(
                    "id",
                    "id may only contain A-Z, a-z, 0-9 and '-', and be at most 100 characters long.",
                );
            }
            if is_uuid(&id) {
                return bad_part(
                    "id",
                    "id must not be a UUID (it may contain one, e.g. my-<uuid>).",
                );
            }
            id
        }
    };
    let mut documents = inner.documents.lock().unwrap();
    if documents.iter().any(|d| d.id() == id) {
        return error(
            StatusCode::CONFLICT,
            &format!("A document with id '{id}' already exists."),
            &inner,
        );
    }
    let now = millis_time(inner.now());
    let mut metadata = json!({
        "id": id,
        "name": name,
        "type": kind,
        "version": "1",
        "owner": DEMO_USER_ID,
        "isPrivate": true,
        "access": ["read", "write", "delete"],
        "modificationInfo": {
            "createdBy": DEMO_USER_ID,
            "createdTime": now,
            "lastModifiedBy": DEMO_USER_ID,
            "lastModifiedTime": now,
        },
    });
    if let Some(description) = description {
        metadata["description"] = json!(description);
    }
    documents.push(StoredDocument {
        metadata: metadata.clone(),
        content_type,
        content: content.data.clone(),
    });
    (StatusCode::CREATED, axum::Json(metadata)).into_response()
}

fn find(inner: &Inner, id: &str) -> Option<StoredDocument> {
    inner
        .documents
        .lock()
        .unwrap()
        .iter()
        .find(|d| {
            d.id() == id
                && (d.metadata["owner"] == DEMO_USER_ID || d.metadata["isPrivate"] == false)
        })
        .cloned()
}

async fn metadata(State(inner): State<Arc<Inner>>, Path(id): Path<String>, call: Call) -> Response {
    if let Err(response) = inner.admit(Route::DocumentMetadata, &call, &[READ]).await {
        return response;
    }
    match find(&inner, &id) {
        Some(doc) => axum::Json(doc.metadata).into_response(),
        None => not_found(&id, &inner),
    }
}

async fn content(State(inner): State<Arc<Inner>>, Path(id): Path<String>, call: Call) -> Response {
    if let Err(response) = inner.admit(Route::DocumentContent, &call, &[READ]).await {
        return response;
    }
    match find(&inner, &id) {
        Some(doc) => ([(header::CONTENT_TYPE, doc.content_type)], doc.content).into_response(),
        None => not_found(&id, &inner),
    }
}

async fn get_document(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    call: Call,
) -> Response {
    if let Err(response) = inner.admit(Route::DocumentGet, &call, &[READ]).await {
        return response;
    }
    match find(&inner, &id) {
        Some(doc) => {
            let metadata = doc.metadata.to_string();
            let (content_type, body) = multipart::write(&[
                ("metadata", "application/json", metadata.as_bytes()),
                ("content", &doc.content_type, &doc.content),
            ]);
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        None => not_found(&id, &inner),
    }
}
