//! Davis analyzers: `/platform/davis/analyzers/v1` (shapes from `@dynatrace-sdk/client-davis-analyzers`).
//!
//! `:execute` answers 200 with a final result or 202 with a `requestToken`; `:poll` long-polls
//! with `timeout-seconds`. A run still going when the caller's deadline nears is cancelled with
//! `:cancel`, so nothing keeps computing for a caller that has gone.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::{ApiRequest, DynatraceClient, path_segment};
use super::error::DynatraceError;
use super::grail::ANSWER_MARGIN;
use crate::deadline::Deadline;

const BASE: &str = "/platform/davis/analyzers/v1/analyzers";
pub const SCOPE_READ: &str = "davis:analyzers:read";
pub const SCOPE_EXECUTE: &str = "davis:analyzers:execute";
/// Longest single `timeout-seconds` wait.
const MAX_WAIT_SECS: u64 = 10;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyzerDefinition {
    pub name: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input: Vec<Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Category {
    #[serde(default)]
    pub display_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryResult {
    #[serde(default)]
    analyzers: Vec<AnalyzerDefinition>,
    #[serde(default)]
    next_page_key: Option<String>,
}

/// `AnalyzerExecuteResult` / `AnalyzerPollResult`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteResult {
    #[serde(default)]
    pub request_token: Option<String>,
    pub result: AnalyzerResult,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyzerResult {
    #[serde(default)]
    pub result_id: String,
    #[serde(default)]
    pub result_status: String,
    #[serde(default)]
    pub execution_status: String,
    #[serde(default)]
    pub input: Value,
    #[serde(default)]
    pub output: Vec<Value>,
    #[serde(default)]
    pub logs: Vec<AnalyzerLog>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AnalyzerLog {
    #[serde(default)]
    pub level: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// How an analyzer run ended.
#[derive(Debug)]
pub enum AnalyzerRun {
    Finished(Box<AnalyzerResult>),
    /// Still running at the deadline; it was cancelled.
    Cancelled,
}

impl DynatraceClient {
    /// Every analyzer with its category, labels and type (following `nextPageKey`).
    pub async fn list_analyzers(
        &self,
        deadline: Deadline,
    ) -> Result<Vec<AnalyzerDefinition>, DynatraceError> {
        let mut all = Vec::new();
        let mut page_key: Option<String> = None;
        for _ in 0..20 {
            let request = match &page_key {
                // With page-key, no other parameter is allowed.
                Some(key) => ApiRequest::get(BASE, SCOPE_READ, "the analyzers")
                    .query("page-key", key.clone()),
                None => ApiRequest::get(BASE, SCOPE_READ, "the analyzers")
                    .query("add-fields", "category,labels,type")
                    .query("page-size", "200"),
            };
            let page: QueryResult = self.call(&request, deadline).await?.json("analyzers")?;
            all.extend(page.analyzers);
            match page.next_page_key {
                Some(key) if !key.is_empty() => page_key = Some(key),
                _ => break,
            }
        }
        Ok(all)
    }

    pub async fn get_analyzer(
        &self,
        name: &str,
        deadline: Deadline,
    ) -> Result<AnalyzerDefinition, DynatraceError> {
        let request = ApiRequest::get(
            format!("{BASE}/{}", path_segment(name)),
            SCOPE_READ,
            format!("analyzer `{name}`"),
        );
        self.call(&request, deadline).await?.json("analyzer")
    }

    /// Runs an analyzer with `input` (the request body is the input itself) until it completes or
    /// the deadline nears, then cancels it.
    pub async fn run_analyzer(
        &self,
        name: &str,
        input: Value,
        scopes: &str,
        deadline: Deadline,
    ) -> Result<AnalyzerRun, DynatraceError> {
        let segment = path_segment(name);
        let what = format!("analyzer `{name}`");
        let request = ApiRequest::post(
            format!("{BASE}/{segment}:execute"),
            input,
            scopes,
            what.clone(),
        )
        .query("timeout-seconds", wait_secs(deadline).max(1).to_string());
        let mut current: ExecuteResult = self
            .call(&request, deadline)
            .await?
            .json("analyzer execute")?;
        let token = current.request_token.clone();
        loop {
            if current.result.execution_status != "RUNNING" {
                return Ok(AnalyzerRun::Finished(Box::new(current.result)));
            }
            let Some(token) = token.as_deref() else {
                return Err(DynatraceError::Decode {
                    context: "analyzer execute".into(),
                    message: "a RUNNING result without a requestToken".into(),
                });
            };
            let wait = wait_secs(deadline);
            if wait == 0 {
                let cancel = ApiRequest::post_empty(
                    format!("{BASE}/{segment}:cancel"),
                    scopes,
                    what.clone(),
                )
                .query("request-token", token);
                // Best effort, with a few seconds of its own: the caller's time is up.
                let _ = self
                    .call(&cancel, Deadline::after(Duration::from_secs(3)))
                    .await;
                return Ok(AnalyzerRun::Cancelled);
            }
            let poll = ApiRequest::get(format!("{BASE}/{segment}:poll"), scopes, what.clone())
                .query("request-token", token)
                .query("timeout-seconds", wait.to_string());
            current = match self.call(&poll, deadline).await {
                Ok(response) => response.json("analyzer poll")?,
                Err(DynatraceError::UnexpectedStatus { status: 410, .. }) => {
                    return Err(DynatraceError::NotFound {
                        what: "the analyzer result".into(),
                        message: "it expired or was already fetched; run the analyzer again".into(),
                    });
                }
                Err(e) => return Err(e),
            };
        }
    }
}

/// Whole seconds a poll may wait before the answer margin; 0 when none fits.
fn wait_secs(deadline: Deadline) -> u64 {
    deadline
        .remaining()
        .saturating_sub(ANSWER_MARGIN)
        .as_secs()
        .min(MAX_WAIT_SECS)
}
