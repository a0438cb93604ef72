//! Platform management: `GET /platform/management/v1/environment`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::{ApiRequest, DynatraceClient};
use super::error::DynatraceError;
use super::scopes;
use crate::deadline::Deadline;

/// The environment as the platform management service describes it (`EnvironmentInfo`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentInfo {
    pub environment_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_time: Option<String>,
    /// Fields a newer platform version adds, passed through untouched.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

impl DynatraceClient {
    pub async fn environment_info(
        &self,
        deadline: Deadline,
    ) -> Result<EnvironmentInfo, DynatraceError> {
        let request = ApiRequest::get(
            "/platform/management/v1/environment",
            scopes::ENVIRONMENT,
            "the environment information",
        );
        self.call(&request, deadline).await?.json("environment")
    }
}
