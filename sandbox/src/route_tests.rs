//! The platform routes over HTTP: statuses, bodies, scopes, faults and recording.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::*;

const TOKEN: &str = DEMO_PLATFORM_TOKEN;
const LIMITED: &str = "dt0s16.SANDBOX.limited";

async fn sandbox() -> Sandbox {
    let mut config = SandboxConfig::demo();
    config.log_records = 200;
    config.platform_tokens.push((
        LIMITED.to_string(),
        vec![
            "storage:buckets:read".to_string(),
            "davis:analyzers:read".to_string(),
            "davis:analyzers:execute".to_string(),
            "davis-copilot:nl2dql:execute".to_string(),
        ],
    ));
    Sandbox::start(config).await.unwrap()
}

struct Reply {
    status: u16,
    body: Value,
    text: String,
    headers: reqwest::header::HeaderMap,
}

async fn send(sb: &Sandbox, token: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", sb.url()))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    Reply {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
        headers,
    }
}

async fn get(sb: &Sandbox, path: &str) -> Reply {
    send(sb, TOKEN, Method::GET, path, None).await
}

async fn post(sb: &Sandbox, path: &str, body: Value) -> Reply {
    send(sb, TOKEN, Method::POST, path, Some(body)).await
}

const COPILOT: &str = "/platform/davis/copilot/v1/skills";
const ANALYZERS: &str = "/platform/davis/analyzers/v1/analyzers";
const FORECAST: &str = "dt.statistics.GenericForecastAnalyzer";
const WORKFLOWS: &str = "/platform/automation/v1/workflows";
const DOCUMENTS: &str = "/platform/document/v1/documents";
const EMAILS: &str = "/platform/email/v1/emails";
const SLACK: &str =
    "/platform/app-engine/app-functions/v1/apps/dynatrace.slack/api/slack-send-message";
const INGEST: &str = "/platform/classic/environment-api/v2/events/ingest";

#[tokio::test]
async fn copilot_skills_and_availability() {
    let sb = sandbox().await;
    let r = get(&sb, COPILOT).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"skills": ["conversation", "nl2dql", "dql2nl", "documentSearch"]})
    );
    // The list only names skills the token may use.
    let r = send(&sb, LIMITED, Method::GET, COPILOT, None).await;
    assert_eq!(r.body, json!({"skills": ["nl2dql"]}));
    let r = send(
        &sb,
        LIMITED,
        Method::POST,
        &format!("{COPILOT}/dql2nl:explain"),
        Some(json!({"dql": "fetch logs"})),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.body["error"]["details"]["missingScopes"],
        json!(["davis-copilot:dql2nl:execute"])
    );

    sb.set_copilot_skills(vec!["nl2dql"]);
    assert_eq!(get(&sb, COPILOT).await.body, json!({"skills": ["nl2dql"]}));
    let r = post(
        &sb,
        &format!("{COPILOT}/conversations:message"),
        json!({"text": "hi"}),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"]["code"], 403);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("conversation")
    );
    assert!(sb.unexpected().is_empty());
}

#[tokio::test]
async fn copilot_nl2dql_and_dql2nl() {
    let sb = sandbox().await;
    let r = post(
        &sb,
        &format!("{COPILOT}/nl2dql:generate"),
        json!({"text": "error logs"}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["dql"],
        "fetch logs | filter loglevel == \"ERROR\" | limit 20"
    );
    assert_eq!(r.body["status"], "SUCCESSFUL");
    assert!(r.body["messageToken"].is_string());
    let r = post(
        &sb,
        &format!("{COPILOT}/nl2dql:generate"),
        json!({"text": "sing me a song"}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "FAILED");
    assert_eq!(r.body["metadata"]["notifications"][0]["severity"], "ERROR");
    let r = post(&sb, &format!("{COPILOT}/nl2dql:generate"), json!({})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], 400);

    let r = post(
        &sb,
        &format!("{COPILOT}/dql2nl:explain"),
        json!({"dql": "fetch logs | filter loglevel == \"ERROR\" | limit 5"}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "SUCCESSFUL");
    assert!(r.body["summary"].as_str().unwrap().contains("log records"));
    assert!(
        r.body["explanation"]
            .as_str()
            .unwrap()
            .contains("at most 5")
    );
    let r = post(
        &sb,
        &format!("{COPILOT}/dql2nl:explain"),
        json!({"dql": "fetch logs | fitler x"}),
    )
    .await;
    assert_eq!(r.body["status"], "FAILED");
    let r = post(&sb, &format!("{COPILOT}/nl2dql:feedback"), json!({"messageToken": "t", "origin": "test", "userQuery": "q", "feedback": {"type": "positive"}})).await;
    assert_eq!(r.status, 202);
    assert!(r.text.is_empty());
}

#[tokio::test]
async fn copilot_conversation_and_document_search() {
    let sb = sandbox().await;
    let path = format!("{COPILOT}/conversations:message");
    let r = post(&sb, &path, json!({
        "text": "Why is payment-service failing?",
        "context": [{"type": "supplementary", "value": "problem P-2411120"}, {"type": "instruction", "value": "be brief"}],
        "annotations": {"origin": "test"},
    }))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "SUCCESSFUL");
    assert!(r.body["text"].as_str().unwrap().contains("payment-service"));
    let conversation = r.body["state"]["conversationId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        r.body["metadata"]["sources"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    let state = r.body["state"].clone();
    let r = post(&sb, &path, json!({"text": "and P-2411120?", "state": state, "context": [{"type": "document-retrieval", "value": "disabled"}]})).await;
    assert_eq!(r.body["state"]["conversationId"], conversation.as_str());
    assert_eq!(r.body["state"]["history"].as_array().unwrap().len(), 4);
    assert_eq!(r.body["metadata"]["sources"], json!([]));
    let r = post(
        &sb,
        &path,
        json!({"text": "x", "context": [{"type": "nope", "value": "x"}]}),
    )
    .await;
    assert_eq!(r.status, 400);

    let r = post(
        &sb,
        &format!("{COPILOT}/document-search:execute"),
        json!({"texts": ["payments SLO"], "collections": ["dashboards"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results[0]["documentMetadata"]["name"], "Payments SLOs");
    assert!(
        results
            .iter()
            .all(|d| d["documentMetadata"]["type"] == "dashboard")
    );
    assert!(results[0]["relevanceScore"].as_f64().unwrap() > 0.0);
    let first = results[0]["documentId"].as_str().unwrap().to_string();
    let r = post(
        &sb,
        &format!("{COPILOT}/document-search:execute"),
        json!({"texts": ["payments"], "collections": ["dashboards"], "exclude": [first]}),
    )
    .await;
    assert!(
        r.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["documentId"] != first.as_str())
    );
    let r = post(
        &sb,
        &format!("{COPILOT}/document-search:execute"),
        json!({"texts": ["x"]}),
    )
    .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn analyzer_listing() {
    let sb = sandbox().await;
    let r = get(&sb, ANALYZERS).await;
    assert_eq!(r.status, 200);
    let list = r.body["analyzers"].as_array().unwrap();
    assert_eq!(r.body["totalCount"], list.len());
    assert!(list.len() >= 6);
    assert!(
        list.iter().all(|a| a.as_object().unwrap().len() == 3),
        "only name/displayName/description by default"
    );
    let r = get(
        &sb,
        &format!("{ANALYZERS}?add-fields=category,labels,type&page-size=200"),
    )
    .await;
    assert!(r.body["analyzers"][0]["category"]["displayName"].is_string());
    assert!(r.body["analyzers"][0]["labels"].is_array());
    let r = get(&sb, &format!("{ANALYZERS}?add-fields=bogus")).await;
    assert_eq!(r.status, 400);
    let r = get(&sb, &format!("{ANALYZERS}?filter=name%20contains%20'anomaly_detection'%20and%20type%20%3D%20'IMPLEMENTED'")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["totalCount"], 3);
    let r = get(&sb, &format!("{ANALYZERS}?filter=(name%20%3D%20'x')")).await;
    assert_eq!(r.status, 400);
    let r = get(&sb, &format!("{ANALYZERS}?page-size=3")).await;
    let key = r.body["nextPageKey"].as_str().unwrap().to_string();
    let r2 = get(&sb, &format!("{ANALYZERS}?page-key={key}")).await;
    assert_eq!(r2.status, 200);
    assert_ne!(
        r.body["analyzers"][0]["name"],
        r2.body["analyzers"][0]["name"]
    );
    let r = get(&sb, &format!("{ANALYZERS}?page-key={key}&page-size=3")).await;
    assert_eq!(r.status, 400);

    let r = get(&sb, &format!("{ANALYZERS}/{FORECAST}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["type"], "IMPLEMENTED");
    assert!(
        r.body["input"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "timeSeriesData" && p["optional"] == false)
    );
    let r = get(&sb, &format!("{ANALYZERS}/{FORECAST}/documentation")).await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("`timeSeriesData`"));
    let r = get(&sb, &format!("{ANALYZERS}/{FORECAST}/json-schema/input")).await;
    assert_eq!(r.body["required"], json!(["timeSeriesData"]));
    let r = get(&sb, &format!("{ANALYZERS}/dt.nope")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["code"], 404);
    assert!(sb.unexpected().is_empty());
}

#[tokio::test]
async fn analyzer_execution() {
    let sb = sandbox().await;
    let execute = format!("{ANALYZERS}/{FORECAST}:execute");
    let input = json!({
        "timeSeriesData": {"expression": "timeseries avg(dt.host.cpu.usage)"},
        "forecastHorizon": 10,
        "generalParameters": {"timeframe": {"startTime": "now-1h", "endTime": "now"}},
    });
    let r = post(&sb, &execute, input.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let result = &r.body["result"];
    assert!(r.body.get("requestToken").is_none());
    assert_eq!(result["executionStatus"], "COMPLETED");
    assert_eq!(result["resultStatus"], "SUCCESSFUL");
    assert_eq!(
        result["input"]["generalParameters"]["timeframe"],
        json!({"startTime": "now-1h", "endTime": "now"})
    );
    let records = &result["output"][0]["timeSeriesDataWithPredictions"]["records"];
    assert_eq!(
        records[0]["dt.davis.forecast:point"]
            .as_array()
            .unwrap()
            .len(),
        10
    );

    let r = post(&sb, &execute, json!({"forecastHorizon": 10})).await;
    assert_eq!(r.status, 400);
    let violations = r.body["error"]["details"]["constraintViolations"]
        .as_array()
        .unwrap();
    assert!(
        violations
            .iter()
            .any(|v| v["path"] == "$.timeSeriesData" && v["level"] == "SEVERE")
    );
    let r = post(
        &sb,
        &execute,
        json!({"timeSeriesData": "timeseries avg(x)", "forecastHorizon": "lots"}),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = post(&sb, &format!("{ANALYZERS}/dt.nope:execute"), input.clone()).await;
    assert_eq!(r.status, 404);
    let r = post(
        &sb,
        &format!("{ANALYZERS}/dt.statistics.anomaly_detection.AnomalyDetectionAnalyzer:execute"),
        input.clone(),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = post(&sb, &format!("{ANALYZERS}/{FORECAST}:validate"), json!({})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["valid"], false);

    // A time-series input needs the storage scopes too.
    let r = send(&sb, LIMITED, Method::POST, &execute, Some(input.clone())).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.body["error"]["details"]["missingScopes"],
        json!(["storage:metrics:read"])
    );

    for name in [
        "dt.statistics.ChangePointAnalyzer",
        "dt.statistics.TimeSeriesCharacteristicAnalyzer",
        "dt.statistics.anomaly_detection.AutoAdaptiveAnomalyDetectionAnalyzer",
        "dt.statistics.anomaly_detection.SeasonalBaselineAnomalyDetectionAnalyzer",
    ] {
        let r = post(&sb, &format!("{ANALYZERS}/{name}:execute"), json!({"timeSeriesData": "timeseries avg(dt.service.request.response_time), by: {dt.entity.service}"})).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text);
        assert_eq!(
            r.body["result"]["input"]["generalParameters"]["timeframe"],
            "unknown-unknown"
        );
        assert!(
            !r.body["result"]["output"].as_array().unwrap().is_empty(),
            "{name}"
        );
    }
    let r = post(
        &sb,
        &format!("{ANALYZERS}/dt.statistics.CorrelationAnalyzer:execute"),
        json!({
            "referenceTimeSeriesData": "timeseries avg(dt.host.cpu.usage)",
            "timeSeriesData": "timeseries avg(dt.host.memory.usage), by: {dt.entity.host}",
        }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["result"]["output"][0]["correlations"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test]
async fn analyzer_polling_and_cancelling() {
    let sb = sandbox().await;
    sb.set_analyzer_timing(QueryTiming::Polls(2));
    let input = json!({"timeSeriesData": "timeseries avg(dt.host.cpu.usage)"});
    let r = post(
        &sb,
        &format!("{ANALYZERS}/{FORECAST}:execute?timeout-seconds=1"),
        input.clone(),
    )
    .await;
    assert_eq!(r.status, 202);
    assert_eq!(r.body["ttlInSeconds"], 60);
    assert_eq!(r.body["result"]["executionStatus"], "RUNNING");
    let token = r.body["requestToken"].as_str().unwrap().to_string();
    let encoded: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let poll = format!("{ANALYZERS}/{FORECAST}:poll?request-token={encoded}&timeout-seconds=1");
    let r = get(&sb, &poll).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["result"]["executionStatus"], "RUNNING");
    let r = get(&sb, &poll).await;
    assert_eq!(r.body["result"]["executionStatus"], "COMPLETED");
    assert!(!r.body["result"]["output"].as_array().unwrap().is_empty());
    let r = get(&sb, &poll).await;
    assert_eq!(r.status, 410);

    let r = post(&sb, &format!("{ANALYZERS}/{FORECAST}:execute"), input).await;
    let token = r.body["requestToken"].as_str().unwrap().to_string();
    let encoded: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let r = send(
        &sb,
        TOKEN,
        Method::POST,
        &format!("{ANALYZERS}/{FORECAST}:cancel?request-token={encoded}"),
        None,
    )
    .await;
    assert_eq!(r.status, 202);
    assert!(r.text.is_empty());
    assert_eq!(sb.cancelled_analyzers(), vec![token]);
    let r = send(
        &sb,
        TOKEN,
        Method::POST,
        &format!("{ANALYZERS}/{FORECAST}:cancel?request-token={encoded}"),
        None,
    )
    .await;
    assert_eq!(r.status, 410);
    assert!(sb.unexpected().is_empty());
}

#[tokio::test]
async fn analyzer_duration_timing_long_polls() {
    let sb = sandbox().await;
    sb.set_analyzer_timing(QueryTiming::Duration(Duration::from_millis(300)));
    let input = json!({"timeSeriesData": "timeseries avg(dt.host.cpu.usage)"});
    let r = post(
        &sb,
        &format!("{ANALYZERS}/{FORECAST}:execute?timeout-seconds=2"),
        input.clone(),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = post(&sb, &format!("{ANALYZERS}/{FORECAST}:execute"), input).await;
    assert_eq!(r.status, 202);
}

fn workflow() -> Value {
    json!({
        "title": "Notify team payments on problem of type ERROR",
        "description": "Automatically created workflow",
        "isPrivate": true,
        "type": "SIMPLE",
        "tasks": { "send_notification": {
            "name": "Send notification", "action": "dynatrace.slack:slack-send-message",
            "active": true,
            "input": { "connection": "sandbox-slack-connection", "channel": "#payments-alerts", "message": "Problem {{ event()[\"display_id\"] }}" } } },
        "trigger": { "eventTrigger": { "isActive": true,
            "triggerConfiguration": { "type": "davis-problem", "value": { "categories": { "error": true } } } } }
    })
}

#[tokio::test]
async fn workflows_create_get_patch_list() {
    let sb = sandbox().await;
    let r = post(&sb, WORKFLOWS, workflow()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36);
    assert_eq!(r.body["triggerType"], "Event");
    assert_eq!(r.body["version"], 1);
    assert!(r.body["lastExecution"].is_null());
    assert!(r.body["modificationInfo"]["createdTime"].is_string());
    assert!(
        r.body["trigger"]["eventTrigger"]["filterQuery"]
            .as_str()
            .unwrap()
            .contains("ERROR")
    );
    assert_eq!(r.body["workflowLimit"]["isActive"], false);

    let r = get(&sb, &format!("{WORKFLOWS}/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["title"], workflow()["title"]);
    let r = send(
        &sb,
        TOKEN,
        Method::PATCH,
        &format!("{WORKFLOWS}/{id}"),
        Some(json!({"isPrivate": false})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["isPrivate"], false);
    assert_eq!(r.body["version"], 2);
    assert_eq!(r.body["title"], workflow()["title"]);
    assert_eq!(sb.workflows()[0]["isPrivate"], false);
    let r = get(
        &sb,
        &format!("{WORKFLOWS}/00000000-0000-4000-8000-000000000000"),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["code"], 404);
    let r = send(
        &sb,
        TOKEN,
        Method::PATCH,
        &format!("{WORKFLOWS}/00000000-0000-4000-8000-000000000000"),
        Some(json!({"isPrivate": false})),
    )
    .await;
    assert_eq!(r.status, 404);

    let r = get(&sb, &format!("{WORKFLOWS}?search=payments")).await;
    assert_eq!(r.body["count"], 1);
    assert_eq!(r.body["results"][0]["id"], id.as_str());
    let r = get(&sb, &format!("{WORKFLOWS}?search=nothing")).await;
    assert_eq!(r.body, json!({"count": 0, "results": []}));
    assert!(sb.unexpected().is_empty());
}

#[tokio::test]
async fn workflow_validation() {
    let sb = sandbox().await;
    let mut w = workflow();
    w.as_object_mut().unwrap().remove("title");
    let r = post(&sb, WORKFLOWS, w).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["error"]["details"]["constraintViolations"][0]["path"],
        "title"
    );
    let mut w = workflow();
    w["tasks"]["send_notification"]
        .as_object_mut()
        .unwrap()
        .remove("action");
    let r = post(&sb, WORKFLOWS, w).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["error"]["details"]["constraintViolations"][0]["path"],
        "tasks.send_notification.action"
    );
    let mut w = workflow();
    w["trigger"]["eventTrigger"]["triggerConfiguration"]["type"] = json!("davis-problems");
    assert_eq!(post(&sb, WORKFLOWS, w).await.status, 400);
    let mut w = workflow();
    w["trigger"]["eventTrigger"]["triggerConfiguration"] =
        json!({"type": "event", "value": {"eventType": "events"}});
    assert_eq!(post(&sb, WORKFLOWS, w).await.status, 400);
    let mut w = workflow();
    w["trigger"]["eventTrigger"]["triggerConfiguration"] = json!({"type": "event", "value": {"query": "event.kind == \"SECURITY_EVENT\"", "eventType": "events"}});
    assert_eq!(post(&sb, WORKFLOWS, w).await.status, 201);
    let r = send(&sb, LIMITED, Method::POST, WORKFLOWS, Some(workflow())).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.body["error"]["details"]["missingScopes"],
        json!(["automation:workflows:write"])
    );
    assert_eq!(r.headers["dynatrace-response-source"], "API Gateway");
    assert_eq!(sb.workflows().len(), 1);
}

async fn create_document(sb: &Sandbox, parts: &[(&str, &str, &[u8])]) -> Reply {
    let (content_type, body) = multipart::write(parts);
    let response = reqwest::Client::new()
        .post(format!("{}{DOCUMENTS}", sb.url()))
        .bearer_auth(TOKEN)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    Reply {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
        headers,
    }
}

#[tokio::test]
async fn documents_list_filter_sort_page() {
    let sb = sandbox().await;
    let r = get(&sb, DOCUMENTS).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["totalCount"], 8);
    let docs = r.body["documents"].as_array().unwrap();
    assert!(
        docs.iter()
            .all(|d| d.get("description").is_none() && d["version"].is_string())
    );
    let r = get(
        &sb,
        &format!("{DOCUMENTS}?filter=name%20contains%20'payments'"),
    )
    .await;
    assert_eq!(r.body["totalCount"], 2);
    let r = get(
        &sb,
        &format!("{DOCUMENTS}?filter=type%20%3D%3D%20'notebook'&add-fields=description"),
    )
    .await;
    assert_eq!(r.body["totalCount"], 4);
    assert!(r.body["documents"][0]["description"].is_string());
    let r = get(&sb, &format!("{DOCUMENTS}?filter=type%20in%20('dashboard'%2C%20'notebook')%20and%20name%20contains%20'k'")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = get(&sb, &format!("{DOCUMENTS}?filter=title%20contains%20'x'")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], 400);
    let r = get(&sb, &format!("{DOCUMENTS}?sort=-name&page-size=3")).await;
    assert_eq!(r.body["documents"].as_array().unwrap().len(), 3);
    assert_eq!(r.body["documents"][0]["name"], "Payments SLOs");
    let key = r.body["nextPageKey"].as_str().unwrap().to_string();
    let r = get(&sb, &format!("{DOCUMENTS}?page-key={key}")).await;
    assert_eq!(
        r.body["documents"][0]["name"],
        "Kubernetes cluster overview"
    );
    assert_eq!(r.body["totalCount"], 8);
    assert_eq!(
        get(&sb, &format!("{DOCUMENTS}?sort=bogus")).await.status,
        400
    );
    assert_eq!(
        get(&sb, &format!("{DOCUMENTS}?page-size=5000"))
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn documents_create_and_read() {
    let sb = sandbox().await;
    let notebook = json!({"version": "7", "sections": [{"id": "a", "type": "markdown", "markdown": "## Findings"}]}).to_string();
    let r = create_document(
        &sb,
        &[
            ("name", "text/plain", b"Incident review"),
            ("type", "text/plain", b"notebook"),
            ("description", "text/plain", b"What we found"),
            ("content", "application/json", notebook.as_bytes()),
        ],
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["version"], "1");
    assert_eq!(r.body["isPrivate"], true);
    assert_eq!(r.body["owner"], DEMO_USER_ID);
    let stored = sb.documents().into_iter().find(|d| d.id() == id).unwrap();
    assert_eq!(
        stored.content_json()["sections"][0]["markdown"],
        "## Findings"
    );
    assert_eq!(stored.content_type, "application/json");

    let r = get(&sb, &format!("{DOCUMENTS}/{id}/metadata")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["description"], "What we found");
    let r = get(&sb, &format!("{DOCUMENTS}/{id}/content")).await;
    assert_eq!(r.body["version"], "7");
    let r = get(&sb, &format!("{DOCUMENTS}/{id}")).await;
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("multipart/form-data")
    );
    let r = get(&sb, &format!("{DOCUMENTS}/nope/metadata")).await;
    assert_eq!(r.status, 404);
    assert!(r.body["error"]["details"]["errorRef"].is_string());

    let r = create_document(
        &sb,
        &[
            ("name", "text/plain", b"x"),
            ("content", "application/json", b"{}"),
        ],
    )
    .await;
    assert_eq!(r.status, 400);
    let r = create_document(
        &sb,
        &[
            ("name", "text/plain", b"x"),
            ("type", "text/plain", b"notebook"),
            ("content", "application/json", b"{}"),
            ("id", "text/plain", b"my-notebook"),
        ],
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["id"], "my-notebook");
    let r = create_document(
        &sb,
        &[
            ("name", "text/plain", b"x"),
            ("type", "text/plain", b"notebook"),
            ("content", "application/json", b"{}"),
            ("id", "text/plain", b"my-notebook"),
        ],
    )
    .await;
    assert_eq!(r.status, 409);
    let r = post(
        &sb,
        DOCUMENTS,
        json!({"name": "x", "type": "notebook", "content": {}}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(sb.documents().len(), 10);
    assert!(sb.unexpected().is_empty());
}

#[tokio::test]
async fn emails() {
    let sb = sandbox().await;
    let r = post(&sb, EMAILS, json!({
        "toRecipients": {"emailAddresses": ["oncall@example.com", "not-an-email", "gone@bounce.example.com"]},
        "ccRecipients": {"emailAddresses": ["angry@complaint.example.com"]},
        "subject": "Problem P-2411120",
        "body": {"contentType": "text/plain", "body": "payment-service is failing"},
    }))
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert!(r.body["requestId"].is_string());
    assert!(r.body["message"].is_string());
    assert_eq!(r.body["invalidDestinations"], json!(["not-an-email"]));
    assert_eq!(
        r.body["rejectedDestinations"]["bouncingDestinations"],
        json!(["gone@bounce.example.com"])
    );
    assert_eq!(
        r.body["rejectedDestinations"]["complainingDestinations"],
        json!(["angry@complaint.example.com"])
    );
    assert_eq!(sb.emails().len(), 1);
    let r = post(&sb, EMAILS, json!({"toRecipients": {"emailAddresses": ["a@example.com"]}, "subject": "x", "body": {"contentType": "text/plain", "body": "y"}})).await;
    assert!(r.body.get("invalidDestinations").is_none());
    assert!(r.body.get("rejectedDestinations").is_none());

    let r = post(
        &sb,
        EMAILS,
        json!({"subject": "x", "body": {"contentType": "text/markdown", "body": "y"}}),
    )
    .await;
    assert_eq!(r.status, 400);
    let paths: Vec<&str> = r.body["error"]["details"]["constraintViolations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["toRecipients", "body.contentType"]);
    let r = send(&sb, LIMITED, Method::POST, EMAILS, Some(json!({}))).await;
    assert_eq!(r.status, 403);
    assert_eq!(sb.emails().len(), 2);
}

#[tokio::test]
async fn slack_function() {
    let sb = sandbox().await;
    let message = json!({"message": "*Alert*", "channel": "#ops", "connection": DEMO_SLACK_CONNECTION,
        "workflowID": "foobar-123", "executionID": "exec-123", "executionDate": "now", "appendToThread": false});
    let r = post(&sb, SLACK, message.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["result"]["ok"], true);
    assert!(
        r.body["result"]["channel"]
            .as_str()
            .unwrap()
            .starts_with('C')
    );
    assert_eq!(sb.slack_messages(), vec![message.clone()]);

    let mut other = message.clone();
    other["connection"] = json!("nope");
    let r = post(&sb, SLACK, other).await;
    assert_eq!(r.status, 200);
    assert!(
        r.body["error"]
            .as_str()
            .unwrap()
            .contains("Connection not found")
    );
    assert!(r.body.get("result").is_none());
    sb.set_slack_connections(["nope"]);
    let mut other = message.clone();
    other["connection"] = json!("nope");
    assert_eq!(post(&sb, SLACK, other).await.body["result"]["ok"], true);

    let mut no_channel = message.clone();
    no_channel.as_object_mut().unwrap().remove("channel");
    let r = post(&sb, SLACK, no_channel).await;
    assert_eq!(r.status, 540);
    assert_eq!(r.body["error"]["code"], 540);
    assert_eq!(sb.slack_messages().len(), 2);
    let r = send(&sb, LIMITED, Method::POST, SLACK, Some(message)).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.body["error"]["details"]["missingScopes"],
        json!(["app-engine:apps:run"])
    );
    assert!(sb.unexpected().is_empty());
    let r = post(
        &sb,
        "/platform/app-engine/app-functions/v1/apps/my.app/api/fn",
        json!({}),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(sb.unexpected().len(), 1);
}

#[tokio::test]
async fn event_ingest_shows_up_in_grail() {
    let sb = sandbox().await;
    let r = post(
        &sb,
        INGEST,
        json!({
            "eventType": "CUSTOM_DEPLOYMENT",
            "title": "Deploy payment-service 1.4.2",
            "entitySelector": "type(SERVICE),entityName(\"payment-service\")",
            "properties": {"dt.event.deployment.version": "1.4.2", "ticket": 4711},
        }),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["reportCount"], 1);
    assert_eq!(r.body["eventIngestResults"][0]["status"], "OK");
    assert_eq!(
        r.body["eventIngestResults"][0]["correlationId"]
            .as_str()
            .unwrap()
            .len(),
        16
    );
    assert_eq!(sb.ingested_events().len(), 1);

    let r = post(&sb, "/platform/storage/query/v1/query:execute", json!({
        "query": "fetch events | filter event.type == \"CUSTOM_DEPLOYMENT\" and event.name == \"Deploy payment-service 1.4.2\""
    }))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let records = r.body["result"]["records"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["dt.entity.service"], "SERVICE-3E6B5F5CAB4C8D34");
    assert_eq!(records[0]["ticket"], "4711");

    let r = post(
        &sb,
        INGEST,
        json!({"eventType": "NOT_A_TYPE", "title": "x"}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["error"]["constraintViolations"][0]["path"],
        "eventType"
    );
    let r = post(&sb, INGEST, json!({"eventType": "CUSTOM_INFO"})).await;
    assert_eq!(r.body["error"]["constraintViolations"][0]["path"], "title");
    let r = post(
        &sb,
        INGEST,
        json!({"eventType": "CUSTOM_INFO", "title": "x", "properties": {"a": {"b": 1}}}),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = post(
        &sb,
        INGEST,
        json!({"eventType": "ERROR_EVENT", "title": "old", "startTime": 1000}),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        r.body["eventIngestResults"][0]["status"],
        "INVALID_TIMESTAMPS"
    );
    let r = post(
        &sb,
        INGEST,
        json!({"eventType": "CUSTOM_INFO", "title": "all", "entitySelector": "type(HOST)"}),
    )
    .await;
    assert_eq!(r.body["reportCount"], 4);
    let r = send(
        &sb,
        LIMITED,
        Method::POST,
        INGEST,
        Some(json!({"eventType": "CUSTOM_INFO", "title": "x"})),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.body["error"]["details"]["missingScopes"],
        json!(["storage:events:write"])
    );
    assert_eq!(sb.ingested_events().len(), 2);
}

#[tokio::test]
async fn new_routes_are_recorded_and_faultable() {
    let sb = sandbox().await;
    sb.inject(Fault {
        route: Route::EmailSend,
        status: 429,
        retry_after: Some("2".into()),
        times: 1,
    });
    let body = json!({"toRecipients": {"emailAddresses": ["a@example.com"]}, "subject": "x", "body": {"contentType": "text/plain", "body": "y"}});
    let r = post(&sb, EMAILS, body.clone()).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.headers["retry-after"], "2");
    assert_eq!(post(&sb, EMAILS, body).await.status, 202);
    assert_eq!(sb.requests_to("/emails").len(), 2);
    assert_eq!(sb.requests_to("/emails")[0].json()["subject"], "x");

    sb.inject(Fault {
        route: Route::AnalyzerPoll,
        status: 503,
        retry_after: None,
        times: 1,
    });
    let r = get(&sb, &format!("{ANALYZERS}/{FORECAST}:poll?request-token=x")).await;
    assert_eq!(r.status, 503);
    let r = get(&sb, &format!("{ANALYZERS}/{FORECAST}:poll?request-token=x")).await;
    assert_eq!(r.status, 410);
    assert_eq!(
        sb.requests_to(":poll")[0].param("request-token").as_deref(),
        Some("x")
    );

    let r = send(&sb, "wrong", Method::GET, WORKFLOWS, None).await;
    assert_eq!(r.status, 401);
    assert!(sb.unexpected().is_empty());
}

#[tokio::test]
async fn grail_serves_the_new_data_objects_with_their_scopes() {
    let sb = sandbox().await;
    let execute = "/platform/storage/query/v1/query:execute";
    for (query, n) in [
        ("smartscapeNodes \"SERVICE\"", 7),
        ("fetch dt.system.buckets", 10),
        ("fetch security.events", 30),
        ("fetch user.events", 60),
        ("fetch dt.entity.application", 0),
    ] {
        let r = post(&sb, execute, json!({"query": query})).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text);
        assert_eq!(
            r.body["result"]["records"].as_array().unwrap().len(),
            n,
            "{query}"
        );
    }
    let r = send(
        &sb,
        LIMITED,
        Method::POST,
        execute,
        Some(json!({"query": "smartscapeNodes \"*\""})),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.body["error"]["details"]["missingScopes"],
        json!(["storage:smartscape:read"])
    );
    let r = send(
        &sb,
        LIMITED,
        Method::POST,
        execute,
        Some(json!({"query": "fetch security.events | append [fetch user.events]"})),
    )
    .await;
    assert_eq!(
        r.body["error"]["details"]["missingScopes"],
        json!(["storage:security.events:read", "storage:user.events:read"])
    );
    let r = post(
        &sb,
        execute,
        json!({"query": "fetch logs | append [fetch nosuch]"}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["message"], "DATA_OBJECT_NOT_FOUND");
    assert_eq!(
        r.body["error"]["details"]["syntaxErrorPosition"]["start"]["column"],
        28
    );
    let r = post(
        &sb,
        "/platform/storage/query/v1/query:verify",
        json!({"query": "fetch logs | filter nosuch(x)"}),
    )
    .await;
    assert_eq!(r.body["valid"], false);
    assert!(sb.unexpected().is_empty());
}
