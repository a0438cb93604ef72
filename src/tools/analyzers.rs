//! Davis analyzers: list them, and run one with the caller's input and timeframe. Listed when
//! `DT_ENABLE_DAVIS_COPILOT` is on (as in the Go server). A run still going when the call's
//! deadline nears is cancelled, and the answer says so.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Annotations, Listing, ToolContext, ToolDef, ToolError, ToolOutput};
use crate::dynatrace::DynatraceError;
use crate::dynatrace::analyzers::{AnalyzerDefinition, AnalyzerResult, AnalyzerRun, SCOPE_EXECUTE};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only analyzers whose name, display name, description or labels contain this text (case-insensitive).
    #[serde(default)]
    pub filter: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListOutput {
    pub analyzers: Vec<AnalyzerSummary>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalyzerSummary {
    pub name: String,
    pub display_name: String,
    pub description: Option<String>,
    pub category: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub labels: Vec<String>,
}

impl From<AnalyzerDefinition> for AnalyzerSummary {
    fn from(a: AnalyzerDefinition) -> Self {
        Self {
            name: a.name,
            display_name: a.display_name,
            description: a.description,
            category: a.category.map(|c| c.display_name),
            kind: a.kind,
            labels: a.labels,
        }
    }
}

pub fn list_definition() -> ToolDef {
    ToolDef::new::<ListParams, _, _>(
        "list_davis_analyzers",
        "List Davis Analyzers",
        "List the Davis analyzers of this environment (forecasting, anomaly detection, change points, correlation…) \
         with their names for execute_davis_analyzer.",
        Annotations::READ,
        |ctx: ToolContext, params: ListParams| async move {
            let needle = params.filter.as_deref().map(|f| f.trim().to_lowercase()).filter(|f| !f.is_empty());
            let analyzers: Vec<AnalyzerSummary> = ctx
        .dynatrace
                .list_analyzers(ctx.deadline)
                .await?
                .into_iter()
                .filter(|a| {
                    needle.as_ref().is_none_or(|n| {
                        [Some(&a.name), Some(&a.display_name), a.description.as_ref()]
                            .into_iter()
                            .flatten()
                            .chain(a.labels.iter())
                            .any(|s| s.to_lowercase().contains(n))
                    })
                })
                .map(AnalyzerSummary::from)
                .collect();
            if analyzers.is_empty() {
                return Ok(ToolOutput::text("No Davis analyzers matched.").with_structured(&ListOutput { analyzers }));
            }
            let mut listing = Listing::new(format!("{} Davis analyzers:\n", analyzers.len()), ctx.result_budget / 2);
            for a in &analyzers {
                listing.push(&format!(
                    "- {} ({}){}: {}\n",
                    a.display_name,
                    a.name,
                    a.category.as_deref().map(|c| format!(" [{c}]")).unwrap_or_default(),
                    a.description.as_deref().unwrap_or("")
                ));
            }
            let mut text = listing.finish("use filter");
            text.push_str("Run one with execute_davis_analyzer (analyzerName, input, timeframeStart, timeframeEnd).");
            Ok(ToolOutput::text(text).with_structured(&ListOutput { analyzers }))
        },
    )
    .with_output::<ListOutput>()
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteParams {
    /// The analyzer's name from list_davis_analyzers, e.g. dt.statistics.GenericForecastAnalyzer.
    #[serde(rename = "analyzerName")]
    pub analyzer_name: String,
    /// The analyzer's input parameters, e.g. {"timeSeriesData": {"expression": "timeseries avg(dt.host.cpu.usage)"}, "forecastHorizon": 30}.
    #[serde(default)]
    pub input: Option<Map<String, Value>>,
    /// Start of the analysis timeframe: `now`, `now-2h`, `now-7d` or an ISO 8601 time (default now-1h).
    #[serde(default, rename = "timeframeStart")]
    pub timeframe_start: Option<String>,
    /// End of the analysis timeframe (default now).
    #[serde(default, rename = "timeframeEnd")]
    pub timeframe_end: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteOutput {
    pub analyzer: String,
    /// COMPLETED, ABORTED, or CANCELLED when it did not finish in time.
    pub execution_status: String,
    /// SUCCESSFUL, SUCCESSFUL_WITH_WARNINGS or FAILED.
    pub result_status: Option<String>,
    /// The timeframe the analyzer ran on, as Davis reports it (`startTime`, `endTime`).
    pub timeframe: Value,
    pub output: Vec<Value>,
    pub logs: Vec<Value>,
}

pub fn execute_definition() -> ToolDef {
    ToolDef::new::<ExecuteParams, _, _>(
        "execute_davis_analyzer",
        "Execute Davis Analyzer",
        "Run a Davis analyzer (forecast, anomaly detection, change-point analysis…) on the given input and timeframe. \
         Use list_davis_analyzers for names; the analyzer's input parameters are listed there.",
        Annotations { idempotent: false, ..Annotations::READ },
        run_execute,
    )
    .with_output::<ExecuteOutput>()
}

/// `now`, `now-2h`, `-30m`, or an ISO 8601 time.
fn timeframe_value(raw: &str, name: &str) -> Result<String, ToolError> {
    let raw = raw.trim();
    let relative = |rest: &str| {
        rest.len() >= 2
            && rest[..rest.len() - 1].chars().all(|c| c.is_ascii_digit())
            && matches!(rest.chars().last(), Some('s' | 'm' | 'h' | 'd'))
    };
    let ok = raw == "now"
        || raw.strip_prefix("now-").is_some_and(relative)
        || raw.strip_prefix('-').is_some_and(relative)
        || chrono::DateTime::parse_from_rfc3339(raw).is_ok();
    if ok {
        Ok(raw.to_string())
    } else {
        Err(ToolError::InvalidArguments(format!(
            "{name} `{raw}` is not a time: use now, now-<n><s|m|h|d> (e.g. now-2h) or an ISO 8601 time such as 2026-11-25T10:00:00Z"
        )))
    }
}

async fn run_execute(ctx: ToolContext, params: ExecuteParams) -> Result<ToolOutput, ToolError> {
    let name = params.analyzer_name.trim().to_string();
    if name.is_empty() {
        return Err(ToolError::InvalidArguments(
            "analyzerName is empty: pick a name from list_davis_analyzers".into(),
        ));
    }
    let mut input = params.input.unwrap_or_default();
    // The caller's timeframe wins: from the parameters, else from input.generalParameters.timeframe.
    let given = input
        .get("generalParameters")
        .and_then(|g| g.get("timeframe"))
        .cloned()
        .filter(Value::is_object);
    let timeframe = match (
        params.timeframe_start.as_deref(),
        params.timeframe_end.as_deref(),
        given,
    ) {
        (None, None, Some(given)) => given,
        (start, end, _) => json!({
            "startTime": timeframe_value(start.unwrap_or("now-1h"), "timeframeStart")?,
            "endTime": timeframe_value(end.unwrap_or("now"), "timeframeEnd")?,
        }),
    };
    let general = input
        .entry("generalParameters")
        .or_insert_with(|| json!({}));
    if !general.is_object() {
        return Err(ToolError::InvalidArguments(
            "input.generalParameters must be an object".into(),
        ));
    }
    general["timeframe"] = timeframe.clone();
    // Time-series inputs read Grail metrics.
    let reads_grail = input.values().any(|v| v.get("expression").is_some());
    let scopes = if reads_grail {
        format!("{SCOPE_EXECUTE} storage:buckets:read storage:metrics:read")
    } else {
        SCOPE_EXECUTE.to_string()
    };
    let run = ctx
        .dynatrace
        .run_analyzer(&name, Value::Object(input), &scopes, ctx.deadline)
        .await
        .map_err(|e| match e {
            DynatraceError::NotFound { .. } => ToolError::Refused(format!(
                "there is no analyzer named `{name}`: list_davis_analyzers shows the names"
            )),
            other => ToolError::Dynatrace(other),
        })?;
    let result: AnalyzerResult = match run {
        AnalyzerRun::Finished(result) => *result,
        AnalyzerRun::Cancelled => {
            return Err(ToolError::Refused(format!(
                "the analyzer `{name}` did not finish within the time this call has, so it was cancelled. \
                 Try a shorter timeframe or a simpler input"
            )));
        }
    };
    let logs: Vec<Value> = result
        .logs
        .iter()
        .map(|l| serde_json::to_value(l).unwrap_or_default())
        .collect();
    let mut text = format!(
        "Analyzer {name}: {} ({}), timeframe {}.\n",
        result.execution_status, result.result_status, timeframe
    );
    for log in result.logs.iter().filter(|l| l.level != "TRACING") {
        text.push_str(&format!("{}: {}\n", log.level, log.message));
    }
    if result.output.is_empty() {
        text.push_str("The analyzer returned no output.");
    } else {
        let rendered = serde_json::to_string(&result.output).unwrap_or_default();
        let budget = ctx.result_budget / 2;
        if rendered.len() > budget {
            text.push_str(&format!(
                "Output ({} entries, {} bytes, cut to fit; the full output is in structuredContent):\n{}…",
                result.output.len(),
                rendered.len(),
                super::format::truncate_utf8(&rendered, budget)
            ));
        } else {
            text.push_str(&format!("Output:\n```json\n{rendered}\n```"));
        }
    }
    let output = ExecuteOutput {
        analyzer: name,
        execution_status: result.execution_status,
        result_status: Some(result.result_status),
        timeframe,
        output: result.output,
        logs,
    };
    Ok(ToolOutput::text(text).with_structured(&output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeframes_accept_relative_and_iso_times() {
        for ok in ["now", "now-2h", "now-30m", "-7d", "2026-11-25T10:00:00Z"] {
            assert!(timeframe_value(ok, "t").is_ok(), "{ok}");
        }
        for bad in ["yesterday", "now-2x", "now-", "2026-13-45"] {
            assert!(timeframe_value(bad, "t").is_err(), "{bad}");
        }
    }
}
