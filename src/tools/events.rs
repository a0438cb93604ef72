//! Events: Kubernetes events and RUM exceptions from Grail, and `send_event` (write) through the
//! events ingest API.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::confirm::{self, Confirmation};
use super::dql::{budget_note, run_statement};
use super::format::lenient_u32;
use super::problems::{bounded, parse_filter, parse_timeframe};
use super::{Annotations, Listing, ToolContext, ToolDef, ToolError, ToolOutput, text_field};
use crate::dynatrace::dql::string_literal;

/// Kubernetes event types (the Go server's list).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KubernetesEventType {
    ComplianceFinding,
    ComplianceScanCompleted,
    CustomInfo,
    DetectionFinding,
    ErrorEvent,
    OsiUnexpectedlyUnavailable,
    ProcessRestart,
    ResourceContentionEvent,
    ServiceClientErrorRateIncreased,
    ServiceClientSlowdown,
    ServiceErrorRateIncreased,
    ServiceSlowdown,
    ServiceUnexpectedHighLoad,
    ServiceUnexpectedLowLoad,
}

impl KubernetesEventType {
    fn as_str(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesParams {
    /// The cluster's UID (`k8s.cluster.uid`).
    #[serde(default, rename = "clusterId")]
    pub cluster_id: Option<String>,
    /// The cluster's Dynatrace entity id (`dt.entity.kubernetes_cluster`, KUBERNETES_CLUSTER-…).
    #[serde(default, rename = "kubernetesEntityId")]
    pub kubernetes_entity_id: Option<String>,
    /// Only events of this type.
    #[serde(default, rename = "eventType")]
    pub event_type: Option<KubernetesEventType>,
    /// How many events to return, newest first (1-500, default 10).
    #[serde(
        default,
        rename = "maxEventsToDisplay",
        deserialize_with = "lenient_u32"
    )]
    #[schemars(range(min = 1, max = 500))]
    pub max_events_to_display: Option<u32>,
    /// How far back to look (default 24h).
    #[serde(default)]
    pub timeframe: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventsOutput {
    /// The events, with the fields Grail returned.
    pub events: Vec<Value>,
    pub has_more: bool,
}

pub fn kubernetes_definition() -> ToolDef {
    ToolDef::new::<KubernetesParams, _, _>(
        "get_kubernetes_events",
        "Get Kubernetes Events",
        "List Kubernetes events (restarts, failed probes, scaling, resource contention…) of one cluster or all \
         clusters, newest first.",
        Annotations::READ,
        run_kubernetes,
    )
    .with_output::<EventsOutput>()
}

async fn run_kubernetes(
    ctx: ToolContext,
    params: KubernetesParams,
) -> Result<ToolOutput, ToolError> {
    let timeframe = parse_timeframe(params.timeframe.as_deref(), "24h")?;
    let max = bounded(params.max_events_to_display, 10, 500, "maxEventsToDisplay")?;
    let mut conditions = Vec::new();
    if let Some(uid) = params
        .cluster_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        conditions.push(format!("k8s.cluster.uid == {}", string_literal(uid)));
    }
    if let Some(id) = params
        .kubernetes_entity_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        conditions.push(format!(
            "dt.entity.kubernetes_cluster == {}",
            string_literal(id)
        ));
    }
    if conditions.is_empty() {
        conditions.push(
            "(isNotNull(k8s.cluster.uid) or isNotNull(dt.entity.kubernetes_cluster))".to_string(),
        );
    }
    if let Some(kind) = params.event_type {
        conditions.push(format!("event.type == {}", string_literal(&kind.as_str())));
    }
    let dql = format!(
        "fetch events, from: now()-{timeframe}, to: now()\n| filter {}\n| sort timestamp desc\n| limit {}\n| fields timestamp, event.id, event.type, event.name, event.status, event.start, event.end, k8s.cluster.name, k8s.namespace.name, k8s.pod.name, dt.entity.kubernetes_cluster",
        conditions.join(" and "),
        max + 1
    );
    let result = run_statement(&ctx, dql, u64::from(max) + 1, 1_000_000).await?;
    let has_more = result.records.len() > max as usize;
    let events: Vec<Value> = result.records.into_iter().take(max as usize).collect();
    if events.is_empty() {
        return Ok(ToolOutput::text(format!(
            "No Kubernetes events matched in the last {timeframe}."
        ))
        .with_structured(&EventsOutput { events, has_more }));
    }
    let mut listing = Listing::new(
        format!(
            "{} Kubernetes events in the last {timeframe}{}, newest first:\n",
            events.len(),
            if has_more { " (more matched)" } else { "" }
        ),
        ctx.result_budget / 2,
    );
    for e in &events {
        let place: Vec<String> = ["k8s.cluster.name", "k8s.namespace.name", "k8s.pod.name"]
            .iter()
            .filter_map(|k| text_field(e, k))
            .collect();
        listing.push(&format!(
            "- {} {} ({}){}{}\n",
            text_field(e, "timestamp").unwrap_or_default(),
            text_field(e, "event.name").unwrap_or_else(|| "(no name)".into()),
            text_field(e, "event.type").unwrap_or_default(),
            text_field(e, "event.status")
                .map(|s| format!(", {s}"))
                .unwrap_or_default(),
            if place.is_empty() {
                String::new()
            } else {
                format!(" in {}", place.join("/"))
            }
        ));
    }
    let mut text = listing.finish("narrow with clusterId, eventType or a shorter timeframe");
    if let Some(note) = budget_note(&ctx) {
        text.push('\n');
        text.push_str(&note);
    }
    Ok(ToolOutput::text(text).with_structured(&EventsOutput { events, has_more }))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExceptionsParams {
    /// How far back to look (default 24h).
    #[serde(default)]
    pub timeframe: Option<String>,
    /// An extra DQL filter expression on user-event fields, e.g. `os.name == "Android"`. No pipes or line breaks.
    #[serde(default, rename = "additionalFilter")]
    pub additional_filter: Option<String>,
    /// How many exceptions to return, newest first (1-500, default 10).
    #[serde(
        default,
        rename = "maxExceptionsToDisplay",
        deserialize_with = "lenient_u32"
    )]
    #[schemars(range(min = 1, max = 500))]
    pub max_exceptions_to_display: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionsOutput {
    /// The exceptions, with the fields Grail returned.
    pub exceptions: Vec<Value>,
    pub has_more: bool,
}

pub fn exceptions_definition() -> ToolDef {
    ToolDef::new::<ExceptionsParams, _, _>(
        "list_exceptions",
        "List Exceptions",
        "List exceptions seen by Real User Monitoring in web and mobile frontends (user.events with a stack trace), \
         newest first, with error type, message, OS and application.",
        Annotations::READ,
        run_exceptions,
    )
    .with_output::<ExceptionsOutput>()
}

async fn run_exceptions(
    ctx: ToolContext,
    params: ExceptionsParams,
) -> Result<ToolOutput, ToolError> {
    let timeframe = parse_timeframe(params.timeframe.as_deref(), "24h")?;
    let filter = parse_filter(params.additional_filter.as_deref())?;
    let max = bounded(
        params.max_exceptions_to_display,
        10,
        500,
        "maxExceptionsToDisplay",
    )?;
    let mut dql = format!(
        "fetch user.events, from: now()-{timeframe}, to: now()\n| filter isNotNull(exception.stack_trace) and isNotNull(error.id)"
    );
    if let Some(filter) = &filter {
        dql.push_str(&format!("\n| filter {}", filter.as_str()));
    }
    dql.push_str(&format!(
        "\n| sort start_time desc\n| limit {}\n| fields start_time, error.id, error.type, exception.message, os.name, dt.rum.application.id, dt.rum.application.entity",
        max + 1
    ));
    let result = run_statement(&ctx, dql, u64::from(max) + 1, 1_000_000).await?;
    let has_more = result.records.len() > max as usize;
    let exceptions: Vec<Value> = result.records.into_iter().take(max as usize).collect();
    if exceptions.is_empty() {
        return Ok(
            ToolOutput::text(format!("No frontend exceptions in the last {timeframe}."))
                .with_structured(&ExceptionsOutput {
                    exceptions,
                    has_more,
                }),
        );
    }
    let mut listing = Listing::new(
        format!(
            "{} exceptions in the last {timeframe}{}, newest first:\n",
            exceptions.len(),
            if has_more { " (more matched)" } else { "" }
        ),
        ctx.result_budget / 2,
    );
    for e in &exceptions {
        listing.push(&format!(
            "- {} {}: {}\n  error {}, OS {}, application {}\n",
            text_field(e, "start_time").unwrap_or_default(),
            text_field(e, "error.type").unwrap_or_else(|| "?".into()),
            text_field(e, "exception.message").unwrap_or_default(),
            text_field(e, "error.id").unwrap_or_default(),
            text_field(e, "os.name").unwrap_or_else(|| "?".into()),
            text_field(e, "dt.rum.application.entity")
                .or_else(|| text_field(e, "dt.rum.application.id"))
                .unwrap_or_else(|| "?".into()),
        ));
    }
    let mut text = listing.finish("use additionalFilter or a shorter timeframe");
    text.push_str(&format!(
        "Inspect them in Dynatrace: {}/ui/apps/dynatrace.error.inspector",
        ctx.dynatrace.environment().base()
    ));
    if let Some(note) = budget_note(&ctx) {
        text.push('\n');
        text.push_str(&note);
    }
    Ok(ToolOutput::text(text).with_structured(&ExceptionsOutput {
        exceptions,
        has_more,
    }))
}

/// Event types the events API accepts (`EventIngest.eventType`).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IngestEventType {
    AvailabilityEvent,
    CustomAlert,
    CustomAnnotation,
    CustomConfiguration,
    CustomDeployment,
    CustomInfo,
    ErrorEvent,
    MarkedForTermination,
    PerformanceEvent,
    ResourceContentionEvent,
    Warning,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendEventParams {
    /// The event type. CUSTOM_ALERT, AVAILABILITY_EVENT, ERROR_EVENT, PERFORMANCE_EVENT and
    /// RESOURCE_CONTENTION_EVENT can open a Davis problem and page people.
    #[serde(rename = "eventType")]
    pub event_type: IngestEventType,
    /// The event's title.
    pub title: String,
    /// Which entities the event is about, e.g. `type(SERVICE),entityName("payment-service")`;
    /// default: the environment.
    #[serde(default, rename = "entitySelector")]
    pub entity_selector: Option<String>,
    /// Extra properties (string values), e.g. {"deployment.version": "2026.11.3"}.
    #[serde(default)]
    pub properties: Option<BTreeMap<String, String>>,
    /// Start, in milliseconds since the epoch (default now).
    #[serde(default, rename = "startTime")]
    pub start_time: Option<i64>,
    /// End, in milliseconds since the epoch.
    #[serde(default, rename = "endTime")]
    pub end_time: Option<i64>,
    /// The confirmation token from this tool's preview; leave it out the first time.
    #[serde(default, rename = "confirmationToken")]
    pub confirmation_token: Option<String>,
}

pub fn send_event_definition() -> ToolDef {
    ToolDef::new::<SendEventParams, _, _>(
        "send_event",
        "Send Event",
        "Send a custom event to Dynatrace (deployment, configuration change, annotation, info, alert…). Needs \
         confirmation: the first call returns a preview and a confirmationToken; repeat the call with it to send.",
        Annotations {
            read_only: false,
            destructive: true,
            idempotent: false,
            open_world: true,
        },
        run_send_event,
    )
}

async fn run_send_event(
    ctx: ToolContext,
    params: SendEventParams,
) -> Result<ToolOutput, ToolError> {
    let title = params.title.trim();
    if title.is_empty() {
        return Err(ToolError::InvalidArguments(
            "title is empty: give the event a title".into(),
        ));
    }
    let properties = params.properties.unwrap_or_default();
    if properties.len() > 100
        || properties
            .iter()
            .any(|(k, v)| k.len() > 100 || v.len() > 4096)
    {
        return Err(ToolError::InvalidArguments(
            "properties: at most 100 entries, keys up to 100 and values up to 4096 characters"
                .into(),
        ));
    }
    if let (Some(start), Some(end)) = (params.start_time, params.end_time)
        && end < start
    {
        return Err(ToolError::InvalidArguments(
            "endTime must not be before startTime".into(),
        ));
    }
    let mut event = json!({ "eventType": params.event_type, "title": title });
    if let Some(selector) = params
        .entity_selector
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        event["entitySelector"] = json!(selector);
    }
    if !properties.is_empty() {
        event["properties"] = json!(properties);
    }
    if let Some(start) = params.start_time {
        event["startTime"] = json!(start);
    }
    if let Some(end) = params.end_time {
        event["endTime"] = json!(end);
    }
    let opens_problems = matches!(
        params.event_type,
        IngestEventType::CustomAlert
            | IngestEventType::AvailabilityEvent
            | IngestEventType::ErrorEvent
            | IngestEventType::PerformanceEvent
            | IngestEventType::ResourceContentionEvent
    );
    let action = format!(
        "send a {} event \"{title}\" to Dynatrace{}",
        serde_json::to_value(params.event_type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        if opens_problems {
            " (this type can open a Davis problem and alert people)"
        } else {
            ""
        }
    );
    match confirm::check(
        &ctx,
        "send_event",
        action,
        event.clone(),
        params.confirmation_token.as_deref(),
    )
    .await?
    {
        Confirmation::Preview(preview) => return Ok(preview),
        Confirmation::Granted => {}
    }
    let result = ctx.dynatrace.ingest_event(event, ctx.deadline).await?;
    let statuses: Vec<String> = result
        .get("eventIngestResults")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| text_field(i, "status"))
                .collect()
        })
        .unwrap_or_default();
    let text = if statuses.iter().all(|s| s == "OK") {
        format!(
            "The event \"{title}\" was sent to Dynatrace ({} report(s) accepted).",
            statuses.len().max(1)
        )
    } else {
        format!(
            "Dynatrace accepted the request but reported: {} (check entitySelector and times).",
            statuses.join(", ")
        )
    };
    Ok(ToolOutput::text(text).with_structured(&result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_serialize_as_the_api_names() {
        assert_eq!(
            KubernetesEventType::ProcessRestart.as_str(),
            "PROCESS_RESTART"
        );
        assert_eq!(
            serde_json::to_value(IngestEventType::CustomDeployment).unwrap(),
            "CUSTOM_DEPLOYMENT"
        );
    }
}
