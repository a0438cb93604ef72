//! The server's own metrics: one CloudWatch Embedded Metric Format (EMF) record per tool call.
//!
//! EMF is a JSON log line that CloudWatch Logs turns into metrics by itself: Lambda's log stream
//! and the ECS `awslogs` driver both do, with no agent and no `PutMetricData` call in the request
//! path. The record goes to stdout (`serve` and Lambda) or stderr (stdio, whose stdout is the
//! protocol), one `write` of one line, so it never interleaves with the logs.
//!
//! Per call: `Calls` (1), `Errors` (0 or 1), `Latency` (ms), `GrailScannedBytes`, `ResultBytes`
//! and `UpstreamRetries`, under the dimension sets `[]` (the whole server: alarms and the
//! dashboard's totals), `[Outcome]` (errors by kind), `[Tool, Outcome]`, `[PrincipalClass]`
//! (how callers authenticate) and, when the call named an environment, `[Environment, Outcome]`.
//! Each distinct combination is one CloudWatch custom metric: only combinations that occur cost.
//! Format: <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>

use std::fmt::Write as _;
use std::io::Write as _;

use crate::config::{ConfigError, FrontDoor, Source};

/// The default CloudWatch namespace.
pub const DEFAULT_NAMESPACE: &str = "DynatraceMCP";

/// Where the records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Stdout,
    Stderr,
}

/// `MCP_METRICS` and `MCP_METRICS_NAMESPACE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    namespace: String,
    sink: Sink,
}

/// One tool call, as the metrics see it.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub tool: &'a str,
    /// `ok`, or the error's kind (`errors::kind`).
    pub outcome: &'a str,
    /// How the caller authenticated (`Source::name`).
    pub principal_class: &'a str,
    /// The environment aliases the call used, comma-separated; `None` when it named none.
    pub environment: Option<&'a str>,
    pub latency_ms: f64,
    pub scanned_bytes: u64,
    pub result_bytes: u64,
    pub upstream_retries: u64,
}

impl Metrics {
    /// `None` when metrics are off: `MCP_METRICS=off`, or stdio unless `MCP_METRICS=on`.
    pub fn from_source(
        source: &Source,
        front_door: FrontDoor,
    ) -> Result<Option<Self>, ConfigError> {
        let on = match source
            .get("MCP_METRICS")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None => front_door != FrontDoor::Stdio,
            Some("on" | "1" | "true" | "emf") => true,
            Some("off" | "0" | "false") => false,
            Some(_) => {
                return Err(ConfigError::new(
                    source.origin("MCP_METRICS"),
                    "expected on (CloudWatch Embedded Metric Format records, one per tool call) or off",
                ));
            }
        };
        let namespace = source
            .get("MCP_METRICS_NAMESPACE")
            .unwrap_or(DEFAULT_NAMESPACE)
            .to_string();
        // CloudWatch's own rule for a namespace: 1 to 255 characters of letters, digits and . - _ / # :
        // (spaces are allowed but not at the ends), and not starting with `AWS/`.
        let valid = !namespace.is_empty()
            && namespace.len() <= 255
            && namespace.trim() == namespace
            && !namespace.starts_with("AWS/")
            && namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " .-_/#:".contains(c));
        if !valid {
            return Err(ConfigError::new(
                source.origin("MCP_METRICS_NAMESPACE"),
                "expected a CloudWatch namespace: 1 to 255 letters, digits, spaces and . - _ / # :, not starting with AWS/ (e.g. DynatraceMCP)",
            ));
        }
        if !on {
            return Ok(None);
        }
        let sink = match front_door {
            FrontDoor::Stdio => Sink::Stderr,
            FrontDoor::Http | FrontDoor::Lambda => Sink::Stdout,
        };
        Ok(Some(Self { namespace, sink }))
    }

    pub fn new(namespace: impl Into<String>, sink: Sink) -> Self {
        Self {
            namespace: namespace.into(),
            sink,
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Writes the call's record, one line. A failed write (a closed pipe) is not the call's
    /// problem and is dropped.
    pub fn record(&self, call: &Call<'_>) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let line = self.render(call, now);
        let _ = match self.sink {
            Sink::Stdout => std::io::stdout().lock().write_all(line.as_bytes()),
            Sink::Stderr => std::io::stderr().lock().write_all(line.as_bytes()),
        };
    }

    /// The record as one JSON line (with its newline), at `timestamp_ms`.
    pub fn render(&self, call: &Call<'_>, timestamp_ms: u64) -> String {
        let mut out = String::with_capacity(640);
        let environment_set = if call.environment.is_some() {
            r#",["Environment","Outcome"]"#
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"{{"_aws":{{"Timestamp":{timestamp_ms},"CloudWatchMetrics":[{{"Namespace":{namespace},"Dimensions":[[],["Outcome"],["Tool","Outcome"],["PrincipalClass"]{environment_set}],"Metrics":[{{"Name":"Calls","Unit":"Count"}},{{"Name":"Errors","Unit":"Count"}},{{"Name":"Latency","Unit":"Milliseconds"}},{{"Name":"GrailScannedBytes","Unit":"Bytes"}},{{"Name":"ResultBytes","Unit":"Bytes"}},{{"Name":"UpstreamRetries","Unit":"Count"}}]}}]}},"Tool":{tool},"Outcome":{outcome},"PrincipalClass":{class}"#,
            namespace = json_string(&self.namespace),
            tool = json_string(call.tool),
            outcome = json_string(call.outcome),
            class = json_string(call.principal_class),
        );
        if let Some(environment) = call.environment {
            let _ = write!(out, r#","Environment":{}"#, json_string(environment));
        }
        let latency = if call.latency_ms.is_finite() {
            call.latency_ms.max(0.0)
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            r#","Calls":1,"Errors":{errors},"Latency":{latency:.3},"GrailScannedBytes":{scanned},"ResultBytes":{result},"UpstreamRetries":{retries}}}"#,
            errors = u8::from(call.outcome != "ok"),
            scanned = call.scanned_bytes,
            result = call.result_bytes,
            retries = call.upstream_retries,
        );
        out
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn call<'a>(outcome: &'a str, environment: Option<&'a str>) -> Call<'a> {
        Call {
            tool: "execute_dql",
            outcome,
            principal_class: "oauth",
            environment,
            latency_ms: 12.3456,
            scanned_bytes: 1_000_000,
            result_bytes: 2048,
            upstream_retries: 1,
        }
    }

    fn source(pairs: &[(&str, &str)]) -> Source {
        Source::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn a_record_is_one_json_line_with_the_values_at_the_root() {
        let metrics = Metrics::new("DynatraceMCP", Sink::Stdout);
        let line = metrics.render(&call("ok", None), 1_764_000_000_000);
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_764_000_000_000u64);
        assert_eq!(v["Tool"], "execute_dql");
        assert_eq!(v["Errors"], 0);
        assert_eq!(v["Latency"], 12.346);
        let dims = &v["_aws"]["CloudWatchMetrics"][0]["Dimensions"];
        assert_eq!(
            dims.as_array().unwrap().len(),
            4,
            "no Environment set without one"
        );
        assert!(v.get("Environment").is_none());
    }

    #[test]
    fn an_environment_adds_its_dimension_set_and_strings_are_escaped() {
        let metrics = Metrics::new("Team/\"MCP\"", Sink::Stdout);
        let line = metrics.render(&call("upstream_error", Some("prod,eu")), 0);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["Environment"], "prod,eu");
        assert_eq!(v["Errors"], 1);
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "Team/\"MCP\""
        );
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][4],
            serde_json::json!(["Environment", "Outcome"])
        );
    }

    #[test]
    fn on_by_default_except_on_stdio_and_the_namespace_is_checked() {
        let none = source(&[]);
        assert!(
            Metrics::from_source(&none, FrontDoor::Lambda)
                .unwrap()
                .is_some()
        );
        assert!(
            Metrics::from_source(&none, FrontDoor::Stdio)
                .unwrap()
                .is_none()
        );
        let on = source(&[("MCP_METRICS", "on")]);
        assert_eq!(
            Metrics::from_source(&on, FrontDoor::Stdio)
                .unwrap()
                .unwrap()
                .sink,
            Sink::Stderr
        );
        let off = source(&[("MCP_METRICS", "off")]);
        assert!(
            Metrics::from_source(&off, FrontDoor::Http)
                .unwrap()
                .is_none()
        );
        let bad = source(&[("MCP_METRICS", "prometheus")]);
        assert!(
            Metrics::from_source(&bad, FrontDoor::Http)
                .unwrap_err()
                .problem
                .contains("expected on")
        );
        let long = "n".repeat(256);
        for namespace in ["AWS/Lambda", "a{b}", "tab\there", &long] {
            let s = source(&[("MCP_METRICS_NAMESPACE", namespace)]);
            let e = Metrics::from_source(&s, FrontDoor::Http).unwrap_err();
            assert_eq!(e.variable, "MCP_METRICS_NAMESPACE", "{namespace:?}");
        }
    }
}
