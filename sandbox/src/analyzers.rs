//! Davis analyzers (`/platform/davis/analyzers/v1`): list (with the `add-fields` quirk, `filter`
//! and paging), definitions, `:execute` (200 final or 202 + request token, following
//! [`super::Sandbox::set_analyzer_timing`]), `:poll`, `:cancel` and `:validate`.
//!
//! Time series are synthesized from the query text (a stable hash picks level, trend, noise and
//! a level shift), so the same input always gives the same output.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use chrono::DateTime;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::data::{HOSTS, SERVICES};
use super::dql::{DataRef, format_time};
use super::filter::{self, Grammar};
use super::grail::table_scope;
use super::{Call, Inner, QueryTiming, Route, envelope, not_a_route};

const BASE: &str = "/platform/davis/analyzers/v1/analyzers";
const READ: &str = "davis:analyzers:read";
const EXECUTE: &str = "davis:analyzers:execute";
const SECOND: i128 = 1_000_000_000;

pub(super) fn routes(router: Router<Arc<Inner>>) -> Router<Arc<Inner>> {
    router
        .route(BASE, get(list))
        .route(
            &format!("{BASE}/{{target}}"),
            get(get_target).post(post_target),
        )
        .route(
            &format!("{BASE}/{{name}}/documentation"),
            get(documentation),
        )
        .route(
            &format!("{BASE}/{{name}}/json-schema/{{which}}"),
            get(json_schema),
        )
}

/// An analyzer execution answered 202.
pub(super) struct Run {
    analyzer: String,
    result: Value,
    polls_left: u32,
    finish_at: Instant,
}

// ---------------------------------------------------------------------------------------------
// Definitions

#[derive(Clone)]
struct Param {
    name: &'static str,
    display: &'static str,
    kind: &'static str,
    optional: bool,
    description: &'static str,
    default: Option<Value>,
    advanced: bool,
    min: Option<f64>,
    max: Option<f64>,
    values: &'static [(&'static str, &'static str)],
}

fn param(name: &'static str, display: &'static str, kind: &'static str) -> Param {
    Param {
        name,
        display,
        kind,
        optional: true,
        description: "",
        default: None,
        advanced: false,
        min: None,
        max: None,
        values: &[],
    }
}

impl Param {
    fn required(mut self) -> Self {
        self.optional = false;
        self
    }
    fn describe(mut self, d: &'static str) -> Self {
        self.description = d;
        self
    }
    fn default(mut self, v: Value) -> Self {
        self.default = Some(v);
        self
    }
    fn advanced(mut self) -> Self {
        self.advanced = true;
        self
    }
    fn range(mut self, min: f64, max: f64) -> Self {
        self.min = Some(min);
        self.max = Some(max);
        self
    }
    fn values(mut self, v: &'static [(&'static str, &'static str)]) -> Self {
        self.values = v;
        self
    }

    fn json(&self) -> Value {
        let mut p = json!({
            "name": self.name,
            "displayName": self.display,
            "type": self.kind,
            "optional": self.optional,
            "array": false,
        });
        if !self.description.is_empty() {
            p["description"] = json!(self.description);
        }
        if let Some(d) = &self.default {
            p["defaultValue"] = d.clone();
        }
        if self.advanced {
            p["advanced"] = json!(true);
        }
        if self.min.is_some() || self.max.is_some() {
            p["valueConstraints"] = json!({"minimum": self.min, "maximum": self.max});
        }
        if !self.values.is_empty() {
            p["enumerationValues"] = json!(
                self.values
                    .iter()
                    .map(|(k, d)| json!({"key": k, "displayName": k, "description": d}))
                    .collect::<Vec<_>>()
            );
        }
        if self.name == "generalParameters" {
            p["fields"] = json!([
                param("timeframe", "Timeframe", "timeframe").describe("The analysis timeframe: startTime and endTime, absolute (ISO 8601) or relative (now-2h).").json(),
                param("resolveDimensionalQueryData", "Resolve dimensional query data", "boolean").default(json!(false)).json(),
                param("logVerbosity", "Log verbosity", "enumeration").default(json!("WARNING")).values(LOG_LEVELS).json(),
            ]);
        }
        p
    }
}

const LOG_LEVELS: &[(&str, &str)] = &[
    ("TRACING", "Everything"),
    ("INFO", "Informational messages and above"),
    ("WARNING", "Warnings and errors"),
    ("SEVERE", "Errors only"),
];

const CONDITIONS: &[(&str, &str)] = &[
    ("ABOVE", "Alert when the value is above the threshold"),
    ("BELOW", "Alert when the value is below the threshold"),
    ("OUTSIDE", "Alert when the value is outside the band"),
];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Forecast,
    ChangePoint,
    Correlation,
    Characteristics,
    Interface,
    StaticThreshold,
    AutoAdaptive,
    Seasonal,
}

struct Analyzer {
    name: &'static str,
    display: &'static str,
    description: &'static str,
    category: &'static str,
    labels: &'static [&'static str],
    base: Option<&'static str>,
    kind: Kind,
    input: Vec<Param>,
    output: Vec<Param>,
}

fn general() -> Param {
    param(
        "generalParameters",
        "General parameters",
        "analyzerStructure",
    )
    .describe("Parameters every analyzer accepts.")
    .advanced()
}

fn series() -> Param {
    param("timeSeriesData", "Time series data", "timeseriesQuery")
        .required()
        .describe("A DQL query returning time series, e.g. timeseries avg(dt.host.cpu.usage). A string, or an object {expression, timeframe?}.")
}

fn anomaly_inputs() -> Vec<Param> {
    vec![
        series(),
        param("alertCondition", "Alert condition", "enumeration")
            .default(json!("ABOVE"))
            .values(CONDITIONS),
        param("alertOnMissingData", "Alert on missing data", "boolean").default(json!(false)),
        param("violatingSamples", "Violating samples", "integer")
            .default(json!(3))
            .range(1.0, 60.0),
        param("slidingWindow", "Sliding window", "integer")
            .default(json!(5))
            .range(1.0, 60.0),
        param("dealertingSamples", "Dealerting samples", "integer")
            .default(json!(5))
            .range(1.0, 60.0),
        general(),
    ]
}

fn anomaly_outputs() -> Vec<Param> {
    vec![
        param("analysisStatus", "Analysis status", "enumeration"),
        param("raisedEvents", "Raised events", "analyzerStructure"),
        param(
            "analyzedTimeSeriesQuery",
            "Analyzed time series query",
            "timeseriesQuery",
        ),
    ]
}

fn catalog() -> Vec<Analyzer> {
    let anomaly = "dt.statistics.anomaly_detection.AnomalyDetectionAnalyzer";
    vec![
        Analyzer {
            name: "dt.statistics.GenericForecastAnalyzer",
            display: "Generic forecast",
            description: "Predicts the future values of time series, with a prediction interval, from their history.",
            category: "Forecast",
            labels: &["forecast", "prediction", "timeseries"],
            base: None,
            kind: Kind::Forecast,
            input: vec![
                series(),
                param("forecastHorizon", "Forecast horizon", "integer")
                    .describe("How many data points to predict.")
                    .default(json!(100))
                    .range(1.0, 600.0),
                param("forecastOffset", "Forecast offset", "integer")
                    .describe("How many of the last data points to skip (incomplete buckets).")
                    .default(json!(1))
                    .range(0.0, 10.0)
                    .advanced(),
                param("coverageProbability", "Coverage probability", "number")
                    .describe("Probability that the real value falls into the prediction interval.")
                    .default(json!(0.9))
                    .range(0.0, 1.0),
                param("nPaths", "Number of sample paths", "integer")
                    .default(json!(200))
                    .range(1.0, 1000.0)
                    .advanced(),
                param(
                    "applyZeroLowerBoundHeuristic",
                    "Zero lower bound",
                    "boolean",
                )
                .default(json!(false))
                .advanced(),
                general(),
            ],
            output: vec![
                param(
                    "timeSeriesDataWithPredictions",
                    "Time series with predictions",
                    "timeseriesArray",
                ),
                param(
                    "forecastQualityAssessment",
                    "Forecast quality",
                    "enumeration",
                ),
                param("analysisStatus", "Analysis status", "enumeration"),
                param(
                    "analyzedTimeSeriesQuery",
                    "Analyzed time series query",
                    "timeseriesQuery",
                ),
            ],
        },
        Analyzer {
            name: "dt.statistics.ChangePointAnalyzer",
            display: "Change point detection",
            description: "Finds the points in time where the level of a time series changed significantly.",
            category: "Time series analysis",
            labels: &["changepoint", "timeseries"],
            base: None,
            kind: Kind::ChangePoint,
            input: vec![
                series(),
                param("significanceLevel", "Significance level", "number")
                    .default(json!(0.05))
                    .range(0.0, 1.0)
                    .advanced(),
                general(),
            ],
            output: vec![
                param("changePointDetected", "Change point detected", "boolean"),
                param("changePoints", "Change points", "analyzerStructure"),
                param("analysisStatus", "Analysis status", "enumeration"),
                param(
                    "analyzedTimeSeriesQuery",
                    "Analyzed time series query",
                    "timeseriesQuery",
                ),
            ],
        },
        Analyzer {
            name: "dt.statistics.CorrelationAnalyzer",
            display: "Correlation analysis",
            description: "Ranks time series by how strongly they correlate with a reference time series.",
            category: "Time series analysis",
            labels: &["correlation", "timeseries"],
            base: None,
            kind: Kind::Correlation,
            input: vec![
                param(
                    "referenceTimeSeriesData",
                    "Reference time series",
                    "timeseriesQuery",
                )
                .required(),
                series().describe("The candidate time series to correlate with the reference."),
                general(),
            ],
            output: vec![
                param("correlations", "Correlations", "analyzerStructure"),
                param("analysisStatus", "Analysis status", "enumeration"),
            ],
        },
        Analyzer {
            name: "dt.statistics.TimeSeriesCharacteristicAnalyzer",
            display: "Time series characteristics",
            description: "Describes time series: level, spread, trend, seasonality and missing data.",
            category: "Time series analysis",
            labels: &["statistics", "timeseries"],
            base: None,
            kind: Kind::Characteristics,
            input: vec![series(), general()],
            output: vec![
                param("characteristics", "Characteristics", "analyzerStructure"),
                param("analysisStatus", "Analysis status", "enumeration"),
            ],
        },
        Analyzer {
            name: anomaly,
            display: "Anomaly detection",
            description: "The interface of the anomaly detection analyzers: alerting conditions over a time series.",
            category: "Anomaly detection",
            labels: &["anomaly_detection", "timeseries"],
            base: None,
            kind: Kind::Interface,
            input: anomaly_inputs(),
            output: anomaly_outputs(),
        },
        Analyzer {
            name: "dt.statistics.anomaly_detection.StaticThresholdAnomalyDetectionAnalyzer",
            display: "Static threshold anomaly detection",
            description: "Raises an event when a time series crosses a fixed threshold in enough samples of a sliding window.",
            category: "Anomaly detection",
            labels: &["anomaly_detection", "threshold", "timeseries"],
            base: Some(anomaly),
            kind: Kind::StaticThreshold,
            input: {
                let mut i = anomaly_inputs();
                i.insert(
                    1,
                    param("threshold", "Threshold", "number")
                        .required()
                        .describe("The value the time series must not cross."),
                );
                i
            },
            output: anomaly_outputs(),
        },
        Analyzer {
            name: "dt.statistics.anomaly_detection.AutoAdaptiveAnomalyDetectionAnalyzer",
            display: "Auto-adaptive anomaly detection",
            description: "Learns a threshold from the recent behaviour of a time series (99th percentile plus signal fluctuations).",
            category: "Anomaly detection",
            labels: &["anomaly_detection", "adaptive", "timeseries"],
            base: Some(anomaly),
            kind: Kind::AutoAdaptive,
            input: {
                let mut i = anomaly_inputs();
                i.insert(
                    1,
                    param(
                        "numberOfSignalFluctuations",
                        "Number of signal fluctuations",
                        "number",
                    )
                    .default(json!(1.0))
                    .range(0.0, 100.0),
                );
                i
            },
            output: anomaly_outputs(),
        },
        Analyzer {
            name: "dt.statistics.anomaly_detection.SeasonalBaselineAnomalyDetectionAnalyzer",
            display: "Seasonal baseline anomaly detection",
            description: "Builds a daily seasonal baseline and raises an event when the time series leaves it.",
            category: "Anomaly detection",
            labels: &["anomaly_detection", "seasonal", "timeseries"],
            base: Some(anomaly),
            kind: Kind::Seasonal,
            input: {
                let mut i = anomaly_inputs();
                i.insert(
                    1,
                    param("tolerance", "Tolerance", "number")
                        .default(json!(4.0))
                        .range(0.1, 10.0),
                );
                i
            },
            output: anomaly_outputs(),
        },
    ]
}

const ADD_FIELDS: &[&str] = &[
    "analyzerCall",
    "baseAnalyzer",
    "category",
    "input",
    "labels",
    "output",
    "type",
];

fn definition(a: &Analyzer, fields: &[&str]) -> Value {
    let mut d = json!({
        "name": a.name,
        "displayName": a.display,
        "description": a.description,
    });
    let all = fields.contains(&"*");
    let want = |f: &str| all || fields.contains(&f);
    if want("category") {
        d["category"] = json!({ "displayName": a.category });
    }
    if want("type") {
        d["type"] = json!(if a.kind == Kind::Interface {
            "INTERFACE"
        } else {
            "IMPLEMENTED"
        });
    }
    if want("labels") {
        d["labels"] = json!(a.labels);
    }
    if want("baseAnalyzer")
        && let Some(base) = a.base
    {
        d["baseAnalyzer"] = json!(base);
    }
    if want("input") {
        d["input"] = json!(a.input.iter().map(Param::json).collect::<Vec<_>>());
    }
    if want("output") {
        d["output"] = json!(a.output.iter().map(Param::json).collect::<Vec<_>>());
    }
    if fields.contains(&"analyzerCall") {
        let mut example = Map::new();
        for p in a.input.iter().filter(|p| !p.optional) {
            example.insert(
                p.name.into(),
                match p.kind {
                    "timeseriesQuery" => json!({"expression": "timeseries avg(dt.host.cpu.usage)"}),
                    "number" => json!(90),
                    _ => json!(""),
                },
            );
        }
        d["analyzerCall"] = json!({ "name": a.name, "input": example });
    }
    d
}

fn analyzer_error(status: StatusCode, message: &str, violations: Option<Vec<Value>>) -> Response {
    envelope(
        status,
        message,
        violations.map(|v| json!({ "constraintViolations": v })),
    )
}

fn no_such_analyzer() -> Response {
    analyzer_error(
        StatusCode::NOT_FOUND,
        "No analyzer available with the requested name.",
        None,
    )
}

fn gone() -> Response {
    analyzer_error(
        StatusCode::GONE,
        "The analyzer result with the request token has already been consumed or its time-to-live (TTL) has been reached. The result is not available anymore.",
        None,
    )
}

fn severe(path: &str, message: &str) -> Value {
    json!({ "level": "SEVERE", "message": message, "path": path })
}

// ---------------------------------------------------------------------------------------------
// Listing

const LIST_FILTER: Grammar = Grammar {
    fields: &[
        "baseAnalyzer",
        "description",
        "displayName",
        "labels",
        "name",
        "type",
    ],
    nesting: false,
    extended: false,
};

async fn list(State(inner): State<Arc<Inner>>, call: Call) -> Response {
    if let Err(response) = inner.admit(Route::AnalyzerList, &call, &[READ]).await {
        return response;
    }
    let bad = |m: &str| analyzer_error(StatusCode::BAD_REQUEST, m, None);
    let (offset, params) = match call.param("page-key") {
        Some(key) => {
            if call.param_names().len() > 1 {
                return bad(
                    "If the page-key parameter is used, no other query parameters must be provided.",
                );
            }
            let state = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&key)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            match state {
                Some(s) => (s["offset"].as_u64().unwrap_or(0) as usize, s),
                None => return bad("Invalid page-key."),
            }
        }
        None => (
            0,
            json!({
                "pageSize": call.param("page-size"),
                "filter": call.param("filter"),
                "addFields": call.param("add-fields"),
            }),
        ),
    };
    let page_size = match params["pageSize"].as_str() {
        None => 50,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=200).contains(&n) => n,
            _ => return bad("page-size must be a number between 1 and 200."),
        },
    };
    let fields: Vec<String> = params["addFields"]
        .as_str()
        .map(|s| s.split(',').map(|f| f.trim().to_string()).collect())
        .unwrap_or_default();
    if let Some(f) = fields.iter().find(|f| !ADD_FIELDS.contains(&f.as_str())) {
        return bad(&format!(
            "Invalid add-fields value '{f}'. Valid values: {}.",
            ADD_FIELDS.join(", ")
        ));
    }
    let filter = match params["filter"].as_str().filter(|f| !f.trim().is_empty()) {
        None => None,
        Some(f) => match filter::parse(f, &LIST_FILTER) {
            Ok(parsed) => Some(parsed),
            Err(reason) => return bad(&format!("Invalid filter '{f}': {reason}.")),
        },
    };
    let field_refs: Vec<&str> = fields.iter().map(String::as_str).collect();
    let matching: Vec<Value> = catalog()
        .iter()
        .filter(|a| {
            filter
                .as_ref()
                .is_none_or(|f| f.matches(&definition(a, &["*"])))
        })
        .map(|a| definition(a, &field_refs))
        .collect();
    let total = matching.len();
    let page: Vec<Value> = matching.into_iter().skip(offset).take(page_size).collect();
    let mut body = json!({ "analyzers": page, "totalCount": total });
    if offset + page_size < total {
        let mut next = params.clone();
        next["offset"] = json!(offset + page_size);
        body["nextPageKey"] = json!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(next.to_string().as_bytes())
        );
    }
    axum::Json(body).into_response()
}

async fn get_target(
    State(inner): State<Arc<Inner>>,
    Path(target): Path<String>,
    call: Call,
) -> Response {
    match target.rsplit_once(':') {
        None => {
            if let Err(response) = inner.admit(Route::AnalyzerGet, &call, &[READ]).await {
                return response;
            }
            match catalog().iter().find(|a| a.name == target) {
                Some(a) => axum::Json(definition(a, &["*"])).into_response(),
                None => no_such_analyzer(),
            }
        }
        Some((name, "poll")) => poll(&inner, name, &call).await,
        Some(_) => {
            inner.record(&call.method, &call.uri, &call.headers, &call.body);
            not_a_route(&inner, &call)
        }
    }
}

async fn post_target(
    State(inner): State<Arc<Inner>>,
    Path(target): Path<String>,
    call: Call,
) -> Response {
    match target.rsplit_once(':') {
        Some((name, "execute")) => execute(&inner, name, &call).await,
        Some((name, "cancel")) => cancel(&inner, name, &call).await,
        Some((name, "validate")) => validate_route(&inner, name, &call).await,
        _ => {
            inner.record(&call.method, &call.uri, &call.headers, &call.body);
            not_a_route(&inner, &call)
        }
    }
}

/// `GET /analyzers/{name}/documentation`: markdown.
async fn documentation(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    call: Call,
) -> Response {
    if let Err(response) = inner.admit(Route::AnalyzerGet, &call, &[READ]).await {
        return response;
    }
    let analyzers = catalog();
    let Some(a) = analyzers.iter().find(|a| a.name == name) else {
        return no_such_analyzer();
    };
    let mut text = format!("# {}\n\n{}\n\n## Input\n\n", a.display, a.description);
    for p in &a.input {
        text.push_str(&format!(
            "- `{}` ({}{}): {}\n",
            p.name,
            p.kind,
            if p.optional { ", optional" } else { "" },
            if p.description.is_empty() {
                p.display
            } else {
                p.description
            }
        ));
    }
    text.push_str("\n## Output\n\n");
    for p in &a.output {
        text.push_str(&format!("- `{}` ({})\n", p.name, p.kind));
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/markdown; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

fn schema_of(p: &Param) -> Value {
    let mut s = match p.kind {
        "integer" => json!({"type": "integer"}),
        "number" => json!({"type": "number"}),
        "boolean" => json!({"type": "boolean"}),
        "enumeration" => {
            json!({"type": "string", "enum": p.values.iter().map(|(k, _)| *k).collect::<Vec<_>>()})
        }
        "timeseriesQuery" => json!({"oneOf": [
            {"type": "string"},
            {"type": "object", "required": ["expression"], "properties": {"expression": {"type": "string"}, "timeframe": {"type": "object"}}}
        ]}),
        _ => json!({"type": "object"}),
    };
    if !p.description.is_empty() {
        s["description"] = json!(p.description);
    }
    if let Some(d) = &p.default {
        s["default"] = d.clone();
    }
    if let Some(min) = p.min {
        s["minimum"] = json!(min);
    }
    if let Some(max) = p.max {
        s["maximum"] = json!(max);
    }
    s
}

/// `GET /analyzers/{name}/json-schema/input` (or `result`).
async fn json_schema(
    State(inner): State<Arc<Inner>>,
    Path((name, which)): Path<(String, String)>,
    call: Call,
) -> Response {
    if !matches!(which.as_str(), "input" | "result") {
        inner.record(&call.method, &call.uri, &call.headers, &call.body);
        return not_a_route(&inner, &call);
    }
    if let Err(response) = inner.admit(Route::AnalyzerGet, &call, &[READ]).await {
        return response;
    }
    let analyzers = catalog();
    let Some(a) = analyzers.iter().find(|a| a.name == name) else {
        return no_such_analyzer();
    };
    let params = if which == "input" {
        &a.input
    } else {
        &a.output
    };
    let properties: Map<String, Value> = params
        .iter()
        .map(|p| (p.name.to_string(), schema_of(p)))
        .collect();
    let required: Vec<&str> = params
        .iter()
        .filter(|p| !p.optional)
        .map(|p| p.name)
        .collect();
    (
        [(axum::http::header::CONTENT_TYPE, "application/schema+json")],
        axum::Json(json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": format!("{} {which}", a.name),
            "type": "object",
            "properties": properties,
            "required": required,
        })),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Input validation

/// `now`, `now-2h`, `-2h`, or ISO 8601, relative to `now` (nanoseconds).
fn parse_time(text: &str, now: i128) -> Option<i128> {
    let t = text.trim();
    if t == "now" {
        return Some(now);
    }
    let relative = t.strip_prefix("now").unwrap_or(t);
    if let Some(offset) = relative
        .strip_prefix('-')
        .or_else(|| relative.strip_prefix('+'))
    {
        let sign = if relative.starts_with('-') { -1 } else { 1 };
        let unit = offset.chars().last()?;
        let n: i128 = offset[..offset.len() - 1].parse().ok()?;
        let size = match unit {
            's' => SECOND,
            'm' => 60 * SECOND,
            'h' => 3600 * SECOND,
            'd' => 86_400 * SECOND,
            _ => return None,
        };
        return Some(now + sign * n * size);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return dt.timestamp_nanos_opt().map(i128::from);
    }
    for format in ["%Y-%m-%dT%H:%M%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(dt) = DateTime::parse_from_str(t, format) {
            return dt.timestamp_nanos_opt().map(i128::from);
        }
    }
    None
}

/// A checked timeframe: (start, end) in nanoseconds.
fn check_timeframe(
    value: &Value,
    path: &str,
    now: i128,
    problems: &mut Vec<Value>,
) -> Option<(i128, i128)> {
    let Some(obj) = value.as_object() else {
        problems.push(severe(
            path,
            "The timeframe must be an object {startTime, endTime}.",
        ));
        return None;
    };
    let Some(start_text) = obj.get("startTime").and_then(Value::as_str) else {
        problems.push(severe(
            &format!("{path}.startTime"),
            "startTime is required (e.g. now-2h or 2024-01-01T00:00:00Z).",
        ));
        return None;
    };
    let Some(start) = parse_time(start_text, now) else {
        problems.push(severe(
            &format!("{path}.startTime"),
            &format!(
                "'{start_text}' is neither an ISO 8601 time nor a relative time such as now-2h."
            ),
        ));
        return None;
    };
    let end = match obj.get("endTime") {
        None | Some(Value::Null) => now,
        Some(Value::String(e)) => match parse_time(e, now) {
            Some(end) => end,
            None => {
                problems.push(severe(
                    &format!("{path}.endTime"),
                    &format!("'{e}' is neither an ISO 8601 time nor a relative time such as now."),
                ));
                return None;
            }
        },
        Some(_) => {
            problems.push(severe(
                &format!("{path}.endTime"),
                "endTime must be a string.",
            ));
            return None;
        }
    };
    if end <= start {
        problems.push(severe(path, "startTime must be before endTime."));
        return None;
    }
    Some((start, end))
}

/// The DQL of a `timeseriesQuery` value (a string or `{expression}`), checked.
fn check_query(value: &Value, path: &str, problems: &mut Vec<Value>) -> Option<String> {
    let expression = match value {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o
            .get("expression")
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    };
    let Some(expression) = expression.filter(|e| !e.trim().is_empty()) else {
        problems.push(severe(
            path,
            "A time series query is required: a DQL string or {\"expression\": \"timeseries …\"}.",
        ));
        return None;
    };
    let lowered = expression.trim_start().to_lowercase();
    if !lowered.starts_with("timeseries") && !lowered.contains("maketimeseries") {
        problems.push(severe(
            path,
            "The query must return time series: start it with timeseries, or end a fetch with makeTimeseries.",
        ));
        return None;
    }
    Some(expression)
}

/// What a valid input resolves to.
#[derive(Debug)]
struct Checked {
    /// The input as echoed back, with defaults filled in.
    echo: Map<String, Value>,
    timeframe: (i128, i128),
    /// Time series queries by parameter name.
    queries: Vec<(String, String)>,
    /// Scopes the queries need.
    scopes: Vec<&'static str>,
}

fn check_input(a: &Analyzer, body: &Value, now: i128) -> Result<Checked, Vec<Value>> {
    let mut problems = Vec::new();
    let Some(input) = body.as_object() else {
        return Err(vec![severe(
            "$",
            "The request body must be the analyzer input, a JSON object.",
        )]);
    };
    for key in input.keys() {
        if !a.input.iter().any(|p| p.name == key) {
            problems.push(severe(
                &format!("$.{key}"),
                &format!("Unknown input parameter '{key}' for analyzer {}.", a.name),
            ));
        }
    }
    let mut echo = Map::new();
    let mut queries = Vec::new();
    let mut timeframe = None;
    for p in &a.input {
        let path = format!("$.{}", p.name);
        let value = input.get(p.name).filter(|v| !v.is_null());
        let Some(value) = value else {
            if !p.optional {
                problems.push(severe(
                    &path,
                    &format!("The required input parameter '{}' is missing.", p.name),
                ));
            } else if let Some(d) = &p.default {
                echo.insert(p.name.into(), d.clone());
            }
            continue;
        };
        match p.kind {
            "timeseriesQuery" => {
                if let Some(q) = check_query(value, &path, &mut problems) {
                    queries.push((p.name.to_string(), q));
                    if let Some(tf) = value.get("timeframe")
                        && let Some(t) =
                            check_timeframe(tf, &format!("{path}.timeframe"), now, &mut problems)
                    {
                        timeframe.get_or_insert(t);
                    }
                }
            }
            "integer" | "number" => {
                let n = value
                    .as_f64()
                    .or_else(|| value.as_str().and_then(|s| s.parse().ok()));
                match n {
                    Some(n) if p.kind == "integer" && n.fract() != 0.0 => problems.push(severe(
                        &path,
                        &format!("'{}' must be a whole number.", p.name),
                    )),
                    Some(n) => {
                        if p.min.is_some_and(|m| n < m) || p.max.is_some_and(|m| n > m) {
                            problems.push(severe(
                                &path,
                                &format!(
                                    "'{}' must be between {} and {}.",
                                    p.name,
                                    p.min.unwrap_or(f64::MIN),
                                    p.max.unwrap_or(f64::MAX)
                                ),
                            ));
                        }
                    }
                    None => {
                        problems.push(severe(&path, &format!("'{}' must be a number.", p.name)))
                    }
                }
            }
            "boolean"
                if !value.is_boolean() && !matches!(value.as_str(), Some("true" | "false")) =>
            {
                problems.push(severe(&path, &format!("'{}' must be a boolean.", p.name)));
            }
            "enumeration"
                if !value
                    .as_str()
                    .is_some_and(|v| p.values.iter().any(|(k, _)| *k == v)) =>
            {
                problems.push(severe(
                    &path,
                    &format!(
                        "'{}' must be one of {}.",
                        p.name,
                        p.values
                            .iter()
                            .map(|(k, _)| *k)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            "analyzerStructure" if p.name == "generalParameters" => {
                let Some(general) = value.as_object() else {
                    problems.push(severe(&path, "generalParameters must be an object."));
                    continue;
                };
                let mut g = general.clone();
                if let Some(tf) = general.get("timeframe").filter(|t| !t.is_null())
                    && let Some(t) =
                        check_timeframe(tf, "$.generalParameters.timeframe", now, &mut problems)
                {
                    timeframe = Some(t);
                }
                if let Some(v) = general.get("logVerbosity")
                    && !v
                        .as_str()
                        .is_some_and(|v| LOG_LEVELS.iter().any(|(k, _)| *k == v))
                {
                    problems.push(severe(
                        "$.generalParameters.logVerbosity",
                        "logVerbosity must be one of TRACING, INFO, WARNING, SEVERE.",
                    ));
                }
                g.entry("logVerbosity").or_insert(json!("WARNING"));
                g.entry("resolveDimensionalQueryData")
                    .or_insert(json!(false));
                g.entry("timeframe").or_insert(json!("unknown-unknown"));
                echo.insert(p.name.into(), Value::Object(g));
                continue;
            }
            _ => {}
        }
        echo.insert(p.name.into(), value.clone());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    echo.entry("generalParameters").or_insert(json!({
        "timeframe": "unknown-unknown",
        "logVerbosity": "WARNING",
        "resolveDimensionalQueryData": false,
    }));
    let mut scopes = Vec::new();
    for (_, q) in &queries {
        scopes.push("storage:buckets:read");
        let lowered = q.trim_start().to_lowercase();
        if lowered.starts_with("timeseries") {
            scopes.push("storage:metrics:read");
        } else if let Some(source) = lowered.strip_prefix("fetch").and_then(|r| {
            r.split(|c: char| c.is_whitespace() || c == ',' || c == '|')
                .find(|w| !w.is_empty())
        }) {
            scopes.push(table_scope(&DataRef::Fetch(source.to_string())));
        }
    }
    scopes.sort_unstable();
    scopes.dedup();
    Ok(Checked {
        echo,
        timeframe: timeframe.unwrap_or((now - 2 * 3600 * SECOND, now)),
        queries,
        scopes,
    })
}

// ---------------------------------------------------------------------------------------------
// Synthetic time series and outputs

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// One synthesized series: its dimensions and values.
struct Series {
    dims: Map<String, Value>,
    values: Vec<f64>,
}

/// (metric aggregation name, series) for `query` over `timeframe`, with the chosen interval.
fn synthesize(query: &str, timeframe: (i128, i128)) -> (String, i128, Vec<Series>) {
    let span = (timeframe.1 - timeframe.0).max(SECOND);
    let interval = [
        60 * SECOND,
        5 * 60 * SECOND,
        15 * 60 * SECOND,
        3600 * SECOND,
        6 * 3600 * SECOND,
        86_400 * SECOND,
    ]
    .into_iter()
    .find(|i| span / i <= 120)
    .unwrap_or(86_400 * SECOND);
    let points = (span / interval).clamp(2, 240) as usize;
    let lowered = query.to_lowercase();
    let name = query
        .trim()
        .strip_prefix("timeseries")
        .map(|r| {
            r.split([',', '|'])
                .next()
                .unwrap_or("")
                .trim()
                .trim_start_matches('{')
                .trim()
                .to_string()
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "count()".to_string());
    let (base, spread) = if lowered.contains("cpu") {
        (35.0, 12.0)
    } else if lowered.contains("memory") || lowered.contains("mem.") {
        (68.0, 6.0)
    } else if lowered.contains("response_time") || lowered.contains("duration") {
        (180_000.0, 40_000.0)
    } else if lowered.contains("error") || lowered.contains("fail") {
        (4.0, 3.0)
    } else {
        (120.0, 30.0)
    };
    let dims: Vec<Map<String, Value>> =
        if lowered.contains("dt.entity.host") || lowered.contains("host.name") {
            HOSTS
                .iter()
                .map(|h| {
                    let mut m = Map::new();
                    m.insert("dt.entity.host".into(), json!(h.id));
                    m
                })
                .collect()
        } else if lowered.contains("dt.entity.service") || lowered.contains("service.name") {
            SERVICES
                .iter()
                .map(|s| {
                    let mut m = Map::new();
                    m.insert("dt.entity.service".into(), json!(s.id));
                    m
                })
                .collect()
        } else {
            vec![Map::new()]
        };
    let seed = fnv(query);
    let series = dims
        .into_iter()
        .enumerate()
        .map(|(k, dims)| {
            let s = seed.wrapping_add(k as u64 * 0x9E37_79B9);
            let level = base * (0.7 + (s % 60) as f64 / 100.0);
            let shift = if s % 3 != 0 { spread * 1.5 } else { 0.0 };
            let values = (0..points)
                .map(|i| {
                    let phase = (i as f64 / points as f64) * std::f64::consts::TAU;
                    let noise = ((s.wrapping_mul(i as u64 + 1) >> 33) % 1000) as f64 / 1000.0 - 0.5;
                    let step = if i >= points * 2 / 3 { shift } else { 0.0 };
                    let v = level + spread * 0.4 * phase.sin() + spread * 0.3 * noise + step;
                    (v.max(0.0) * 1000.0).round() / 1000.0
                })
                .collect();
            Series { dims, values }
        })
        .collect();
    (name, interval, series)
}

fn iso_minutes(nanos: i128) -> String {
    format_time(nanos - nanos.rem_euclid(60 * SECOND))
}

fn analyzed_query(query: &str, timeframe: (i128, i128)) -> Value {
    json!({
        "expression": query,
        "timeframe": {"startTime": iso_minutes(timeframe.0), "endTime": iso_minutes(timeframe.1)},
    })
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The `{records, types}` table of some series with extra per-record fields.
fn table(records: Vec<Value>) -> Value {
    let types = super::dql::types_of(&records);
    json!({ "records": records, "types": types })
}

fn run_analyzer(a: &Analyzer, checked: &Checked) -> (Vec<Value>, Vec<Value>) {
    let input = &checked.echo;
    let num = |k: &str, d: f64| {
        input
            .get(k)
            .and_then(|v| {
                v.as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .unwrap_or(d)
    };
    let text = |k: &str, d: &str| {
        input
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or(d)
            .to_string()
    };
    let query = checked
        .queries
        .iter()
        .find(|(n, _)| n == "timeSeriesData")
        .map(|(_, q)| q.clone())
        .unwrap_or_default();
    let tf = checked.timeframe;
    let (name, interval, series) = synthesize(&query, tf);
    let mut data = Vec::new();
    let wants_data = input
        .get("generalParameters")
        .and_then(|g| g.get("resolveDimensionalQueryData"))
        .and_then(Value::as_bool)
        == Some(true);
    let series_record = |s: &Series| {
        let mut r = s.dims.clone();
        r.insert(name.clone(), json!(s.values));
        r.insert(
            "timeframe".into(),
            json!({"start": format_time(tf.0), "end": format_time(tf.1)}),
        );
        r.insert("interval".into(), json!(interval.to_string()));
        Value::Object(r)
    };
    if wants_data {
        data.push(json!({
            "query": query,
            "value": table(series.iter().map(series_record).collect()),
            "type": "timeseriesArray",
        }));
    }
    let output = match a.kind {
        Kind::Forecast => {
            let horizon = num("forecastHorizon", 100.0) as usize;
            let coverage = num("coverageProbability", 0.9);
            let width = 1.0 + coverage * 2.0;
            let records: Vec<Value> = series
                .iter()
                .map(|s| {
                    let tail = &s.values[s.values.len().saturating_sub(10)..];
                    let level = mean(tail);
                    let sd = (tail.iter().map(|v| (v - level).powi(2)).sum::<f64>()
                        / tail.len().max(1) as f64)
                        .sqrt()
                        .max(level.abs() * 0.02);
                    let point: Vec<f64> = (0..horizon).map(|i| round3(level + sd * 0.1 * (i as f64 / 10.0).sin())).collect();
                    let lower: Vec<f64> = point.iter().map(|p| round3(p - width * sd)).collect();
                    let upper: Vec<f64> = point.iter().map(|p| round3(p + width * sd)).collect();
                    let mut r = s.dims.clone();
                    r.insert("dt.davis.forecast:point".into(), json!(point));
                    r.insert("dt.davis.forecast:lower".into(), json!(lower));
                    r.insert("dt.davis.forecast:upper".into(), json!(upper));
                    r.insert("interval".into(), json!(interval.to_string()));
                    r.insert(
                        "timeframe".into(),
                        json!({"start": iso_minutes(tf.1), "end": iso_minutes(tf.1 + interval * horizon as i128)}),
                    );
                    r.insert("dt.davis.internal.dataName".into(), json!(name));
                    Value::Object(r)
                })
                .collect();
            vec![json!({
                "timeSeriesDataWithPredictions": table(records),
                "forecastQualityAssessment": if series[0].values.len() >= 14 { "valid" } else { "invalid" },
                "analysisStatus": "OK",
                "analyzedTimeSeriesQuery": analyzed_query(&query, tf),
            })]
        }
        Kind::ChangePoint => {
            let mut points = Vec::new();
            for s in &series {
                let n = s.values.len();
                let cut = n * 2 / 3;
                let before = mean(&s.values[..cut]);
                let after = mean(&s.values[cut..]);
                if before > 0.0 && ((after - before) / before).abs() > 0.1 {
                    let mut p = s.dims.clone();
                    p.insert(
                        "timestamp".into(),
                        json!(format_time(tf.0 + interval * cut as i128)),
                    );
                    p.insert("seriesName".into(), json!(name));
                    p.insert("valueBefore".into(), json!(round3(before)));
                    p.insert("valueAfter".into(), json!(round3(after)));
                    p.insert(
                        "relativeChange".into(),
                        json!(round3((after - before) / before)),
                    );
                    points.push(Value::Object(p));
                }
            }
            vec![json!({
                "changePointDetected": !points.is_empty(),
                "changePoints": points,
                "analysisStatus": "OK",
                "analyzedTimeSeriesQuery": analyzed_query(&query, tf),
            })]
        }
        Kind::Correlation => {
            let reference = checked
                .queries
                .iter()
                .find(|(n, _)| n == "referenceTimeSeriesData")
                .map(|(_, q)| q.clone())
                .unwrap_or_default();
            let (_, _, refs) = synthesize(&reference, tf);
            let r = &refs[0].values;
            let correlations: Vec<Value> = series
                .iter()
                .map(|s| {
                    let n = r.len().min(s.values.len());
                    let (mr, ms) = (mean(&r[..n]), mean(&s.values[..n]));
                    let cov: f64 = (0..n).map(|i| (r[i] - mr) * (s.values[i] - ms)).sum();
                    let vr: f64 = (0..n).map(|i| (r[i] - mr).powi(2)).sum();
                    let vs: f64 = (0..n).map(|i| (s.values[i] - ms).powi(2)).sum();
                    let c = if vr > 0.0 && vs > 0.0 {
                        cov / (vr * vs).sqrt()
                    } else {
                        0.0
                    };
                    let mut m = s.dims.clone();
                    m.insert("timeSeriesName".into(), json!(name));
                    m.insert("pearsonCorrelation".into(), json!(round3(c)));
                    m.insert("lag".into(), json!(0));
                    Value::Object(m)
                })
                .collect();
            vec![json!({"correlations": correlations, "analysisStatus": "OK"})]
        }
        Kind::Characteristics => {
            let items: Vec<Value> = series
                .iter()
                .map(|s| {
                    let m = mean(&s.values);
                    let sd = (s.values.iter().map(|v| (v - m).powi(2)).sum::<f64>()
                        / s.values.len() as f64)
                        .sqrt();
                    let half = s.values.len() / 2;
                    let (a, b) = (mean(&s.values[..half]), mean(&s.values[half..]));
                    let trend = if b > a * 1.05 {
                        "INCREASING"
                    } else if b < a * 0.95 {
                        "DECREASING"
                    } else {
                        "STABLE"
                    };
                    let mut o = s.dims.clone();
                    o.insert("seriesName".into(), json!(name));
                    o.insert("mean".into(), json!(round3(m)));
                    o.insert("standardDeviation".into(), json!(round3(sd)));
                    o.insert("trend".into(), json!(trend));
                    o.insert(
                        "seasonality".into(),
                        json!(if tf.1 - tf.0 >= 2 * 86_400 * SECOND {
                            "DAILY"
                        } else {
                            "NONE"
                        }),
                    );
                    o.insert("missingValueRatio".into(), json!(0.0));
                    Value::Object(o)
                })
                .collect();
            vec![json!({"characteristics": items, "analysisStatus": "OK"})]
        }
        Kind::Interface => Vec::new(),
        Kind::StaticThreshold | Kind::AutoAdaptive | Kind::Seasonal => {
            let condition = text("alertCondition", "ABOVE");
            let violating = num("violatingSamples", 3.0) as usize;
            let window = num("slidingWindow", 5.0).max(violating as f64) as usize;
            series
                .iter()
                .map(|s| {
                    let m = mean(&s.values);
                    let sd = (s.values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / s.values.len() as f64).sqrt();
                    let threshold = match a.kind {
                        Kind::StaticThreshold => num("threshold", m),
                        Kind::AutoAdaptive => {
                            let mut sorted = s.values.clone();
                            sorted.sort_by(f64::total_cmp);
                            let p99 = sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)];
                            p99 + num("numberOfSignalFluctuations", 1.0) * sd
                        }
                        _ => m + num("tolerance", 4.0) * sd * 0.5,
                    };
                    let crosses = |v: f64| match condition.as_str() {
                        "BELOW" => v < threshold,
                        "OUTSIDE" => (v - m).abs() > (threshold - m).abs(),
                        _ => v > threshold,
                    };
                    let mut events = Vec::new();
                    let mut i = 0;
                    while i + window <= s.values.len() {
                        let hits = s.values[i..i + window].iter().filter(|v| crosses(**v)).count();
                        if hits >= violating {
                            let mut end = i + window;
                            while end < s.values.len() && crosses(s.values[end]) {
                                end += 1;
                            }
                            let peak = s.values[i..end].iter().copied().fold(f64::MIN, f64::max);
                            let mut e = s.dims.clone();
                            e.insert("event.type".into(), json!("CUSTOM_ALERT"));
                            e.insert("event.name".into(), json!(format!("{name} {} {}", if condition == "BELOW" { "below" } else { "above" }, round3(threshold))));
                            e.insert("timeframe".into(), json!({"start": format_time(tf.0 + interval * i as i128), "end": format_time(tf.0 + interval * end as i128)}));
                            e.insert("dt.davis.threshold".into(), json!(round3(threshold)));
                            e.insert("dt.davis.peak_value".into(), json!(round3(peak)));
                            events.push(Value::Object(e));
                            i = end;
                        } else {
                            i += 1;
                        }
                    }
                    let mut o = Map::new();
                    o.insert("analysisStatus".into(), json!("OK"));
                    o.insert("raisedEvents".into(), json!(events));
                    o.insert("threshold".into(), json!(round3(threshold)));
                    o.insert("analyzedTimeSeriesQuery".into(), analyzed_query(&query, tf));
                    for (k, v) in &s.dims {
                        o.insert(k.clone(), v.clone());
                    }
                    Value::Object(o)
                })
                .collect()
        }
    };
    (output, data)
}

// ---------------------------------------------------------------------------------------------
// Execution

async fn execute(inner: &Inner, name: &str, call: &Call) -> Response {
    if let Err(response) = inner.admit(Route::AnalyzerExecute, call, &[EXECUTE]).await {
        return response;
    }
    let analyzers = catalog();
    let Some(a) = analyzers.iter().find(|a| a.name == name) else {
        return no_such_analyzer();
    };
    if a.kind == Kind::Interface {
        return analyzer_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "The analyzer {name} is an interface and cannot be executed; use one of the analyzers based on it."
            ),
            None,
        );
    }
    let Some(body) = call.json() else {
        return analyzer_error(
            StatusCode::BAD_REQUEST,
            "Invalid or malformed request.",
            Some(vec![severe(
                "$",
                "The request body must be valid JSON (the analyzer input).",
            )]),
        );
    };
    let timeout = match call.param("timeout-seconds") {
        None => None,
        Some(t) => match t.parse::<u64>() {
            Ok(t) => Some(Duration::from_secs(t)),
            Err(_) => {
                return analyzer_error(
                    StatusCode::BAD_REQUEST,
                    "timeout-seconds must be a whole number of seconds.",
                    None,
                );
            }
        },
    };
    let checked = match check_input(a, &body, inner.now()) {
        Ok(c) => c,
        Err(problems) => {
            return analyzer_error(
                StatusCode::BAD_REQUEST,
                "The analyzer input is invalid.",
                Some(problems),
            );
        }
    };
    if let Err(response) = inner.authorize(&call.headers, &checked.scopes) {
        return *response;
    }
    let (output, data) = run_analyzer(a, &checked);
    let result_id = format!("{:016x}", rand::random::<u64>());
    let mut result = json!({
        "resultId": result_id,
        "resultStatus": "SUCCESSFUL",
        "executionStatus": "COMPLETED",
        "input": Value::Object(checked.echo.clone()),
        "output": output,
        "logs": [],
    });
    if !data.is_empty() {
        result["data"] = json!(data);
    }
    let timing = *inner.analyzer_timing.lock().unwrap();
    let wait = timeout.unwrap_or(Duration::ZERO);
    let (polls_left, finish_at) = match timing {
        QueryTiming::Immediate => return done(result),
        QueryTiming::Polls(n) => (n, Instant::now()),
        QueryTiming::Duration(d) => {
            if d <= wait {
                tokio::time::sleep(d).await;
                return done(result);
            }
            tokio::time::sleep(wait).await;
            (0, Instant::now() + d - wait)
        }
    };
    let token = base64::engine::general_purpose::STANDARD
        .encode(format!("sandbox-analyzer-{}", inner.next_id()));
    let running = json!({
        "resultId": result_id,
        "resultStatus": "SUCCESSFUL",
        "executionStatus": "RUNNING",
        "input": Value::Object(checked.echo),
        "output": [],
    });
    inner.analyzer_runs.lock().unwrap().insert(
        token.clone(),
        Run {
            analyzer: name.to_string(),
            result,
            polls_left,
            finish_at,
        },
    );
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "requestToken": token, "ttlInSeconds": 60, "result": running })),
    )
        .into_response()
}

fn done(result: Value) -> Response {
    axum::Json(json!({ "result": result })).into_response()
}

fn running_body(token: &str, run: &Run) -> Value {
    let mut r = run.result.clone();
    r["executionStatus"] = json!("RUNNING");
    r["output"] = json!([]);
    if let Some(obj) = r.as_object_mut() {
        obj.remove("data");
        obj.remove("logs");
    }
    json!({ "requestToken": token, "ttlInSeconds": 60, "result": r })
}

/// The `request-token` of a poll or cancel of analyzer `name`, or the error Davis answers with.
#[allow(clippy::result_large_err)] // the error is the handler's answer
fn run_token(name: &str, call: &Call) -> Result<String, Response> {
    if !catalog().iter().any(|a| a.name == name) {
        return Err(no_such_analyzer());
    }
    call.param("request-token").ok_or_else(|| {
        analyzer_error(
            StatusCode::BAD_REQUEST,
            "The query parameter request-token is required.",
            None,
        )
    })
}

async fn poll(inner: &Inner, name: &str, call: &Call) -> Response {
    if let Err(response) = inner.admit(Route::AnalyzerPoll, call, &[EXECUTE]).await {
        return response;
    }
    let token = match run_token(name, call) {
        Ok(token) => token,
        Err(response) => return response,
    };
    let wait = Duration::from_secs(
        call.param("timeout-seconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0),
    );
    let finish_at = match inner.analyzer_runs.lock().unwrap().get(&token) {
        Some(run) if run.analyzer == name => run.finish_at,
        _ => return gone(),
    };
    let now = Instant::now();
    if finish_at > now {
        tokio::time::sleep((finish_at - now).min(wait)).await;
    }
    let mut runs = inner.analyzer_runs.lock().unwrap();
    let Some(run) = runs.get_mut(&token) else {
        return gone();
    };
    if run.polls_left > 1 || run.finish_at > Instant::now() {
        run.polls_left = run.polls_left.saturating_sub(1);
        return axum::Json(running_body(&token, run)).into_response();
    }
    let run = runs.remove(&token).expect("present");
    done(run.result)
}

async fn cancel(inner: &Inner, name: &str, call: &Call) -> Response {
    if let Err(response) = inner.admit(Route::AnalyzerCancel, call, &[EXECUTE]).await {
        return response;
    }
    let token = match run_token(name, call) {
        Ok(token) => token,
        Err(response) => return response,
    };
    let run = {
        let mut runs = inner.analyzer_runs.lock().unwrap();
        match runs.get(&token) {
            Some(run) if run.analyzer == name => runs.remove(&token),
            _ => None,
        }
    };
    let Some(run) = run else {
        return gone();
    };
    inner.cancelled_analyzers.lock().unwrap().push(token);
    if run.polls_left <= 1 && run.finish_at <= Instant::now() {
        return done(run.result);
    }
    StatusCode::ACCEPTED.into_response()
}

async fn validate_route(inner: &Inner, name: &str, call: &Call) -> Response {
    if let Err(response) = inner.admit(Route::AnalyzerValidate, call, &[EXECUTE]).await {
        return response;
    }
    let analyzers = catalog();
    let Some(a) = analyzers.iter().find(|a| a.name == name) else {
        return no_such_analyzer();
    };
    let body = call.json().unwrap_or(Value::Null);
    match check_input(a, &body, inner.now()) {
        Ok(_) if a.kind != Kind::Interface => axum::Json(json!({ "valid": true })).into_response(),
        Ok(_) => axum::Json(json!({
            "valid": false,
            "details": {"constraintViolations": [severe("$", "An interface analyzer cannot be executed.")]}
        }))
        .into_response(),
        Err(problems) => axum::Json(json!({
            "valid": false,
            "details": { "constraintViolations": problems }
        }))
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i128 = 1_764_000_000 * SECOND;

    fn find(name: &str) -> Analyzer {
        catalog()
            .into_iter()
            .find(|a| a.name.ends_with(name))
            .unwrap()
    }

    #[test]
    fn relative_and_absolute_times() {
        assert_eq!(parse_time("now", NOW), Some(NOW));
        assert_eq!(parse_time("now-2h", NOW), Some(NOW - 7200 * SECOND));
        assert_eq!(parse_time("-30m", NOW), Some(NOW - 1800 * SECOND));
        assert!(parse_time("2023-04-03T05:32:00Z", NOW).is_some());
        assert!(parse_time("2023-04-03T05:32Z", NOW).is_some());
        assert!(parse_time("yesterday", NOW).is_none());
    }

    #[test]
    fn forecast_echoes_the_timeframe_and_fills_defaults() {
        let a = find("GenericForecastAnalyzer");
        let body = json!({
            "timeSeriesData": {"expression": "timeseries avg(dt.host.cpu.usage), by: {dt.entity.host}"},
            "forecastHorizon": 12,
            "generalParameters": {"timeframe": {"startTime": "now-6h", "endTime": "now"}},
        });
        let checked = check_input(&a, &body, NOW).unwrap();
        assert_eq!(
            checked.echo["generalParameters"]["timeframe"],
            json!({"startTime": "now-6h", "endTime": "now"})
        );
        assert_eq!(checked.echo["coverageProbability"], json!(0.9));
        assert_eq!(
            checked.scopes,
            vec!["storage:buckets:read", "storage:metrics:read"]
        );
        let (output, _) = run_analyzer(&a, &checked);
        let records = output[0]["timeSeriesDataWithPredictions"]["records"]
            .as_array()
            .unwrap();
        assert_eq!(records.len(), HOSTS.len());
        assert_eq!(
            records[0]["dt.davis.forecast:point"]
                .as_array()
                .unwrap()
                .len(),
            12
        );
    }

    #[test]
    fn missing_and_bad_inputs_are_violations() {
        let a = find("StaticThresholdAnomalyDetectionAnalyzer");
        let problems = check_input(&a, &json!({"alertCondition": "SIDEWAYS"}), NOW).unwrap_err();
        let paths: Vec<&str> = problems.iter().filter_map(|p| p["path"].as_str()).collect();
        assert!(paths.contains(&"$.timeSeriesData"), "{paths:?}");
        assert!(paths.contains(&"$.threshold"), "{paths:?}");
        assert!(paths.contains(&"$.alertCondition"), "{paths:?}");
        let problems = check_input(
            &a,
            &json!({"timeSeriesData": "fetch logs", "threshold": 5, "generalParameters": {"timeframe": {"startTime": "soon"}}}),
            NOW,
        )
        .unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn static_threshold_raises_events_above_a_low_threshold() {
        let a = find("StaticThresholdAnomalyDetectionAnalyzer");
        let body = json!({"timeSeriesData": "timeseries avg(dt.host.cpu.usage)", "threshold": 1, "violatingSamples": 1, "slidingWindow": 1});
        let checked = check_input(&a, &body, NOW).unwrap();
        let (output, _) = run_analyzer(&a, &checked);
        assert!(!output[0]["raisedEvents"].as_array().unwrap().is_empty());
        let body = json!({"timeSeriesData": "timeseries avg(dt.host.cpu.usage)", "threshold": 1e9});
        let checked = check_input(&a, &body, NOW).unwrap();
        let (output, _) = run_analyzer(&a, &checked);
        assert!(output[0]["raisedEvents"].as_array().unwrap().is_empty());
    }

    #[test]
    fn list_definitions_carry_only_the_default_fields() {
        let a = find("ChangePointAnalyzer");
        let d = definition(&a, &[]);
        assert_eq!(d.as_object().unwrap().len(), 3);
        let d = definition(&a, &["category", "labels"]);
        assert_eq!(d["category"]["displayName"], "Time series analysis");
        assert!(d.get("input").is_none());
    }
}
