//! Workflows: `/platform/automation/v1/workflows` (shapes from `@dynatrace-sdk/client-automation`).
//! Create answers 201; `PATCH` takes a partial `WorkflowUpdate`.

use serde_json::Value;

use super::client::{ApiRequest, DynatraceClient, path_segment};
use super::error::DynatraceError;
use crate::deadline::Deadline;

const BASE: &str = "/platform/automation/v1/workflows";
pub const SCOPE_WRITE: &str = "automation:workflows:write";
pub const SCOPE_READ: &str = "automation:workflows:read";

impl DynatraceClient {
    /// `POST /workflows` with a `WorkflowCreate` body; returns the created `Workflow`.
    pub async fn create_workflow(
        &self,
        body: Value,
        deadline: Deadline,
    ) -> Result<Value, DynatraceError> {
        let request = ApiRequest::post(BASE, body, SCOPE_WRITE, "the workflows");
        self.call(&request, deadline).await?.json("workflow")
    }

    /// `PATCH /workflows/{id}` with a partial update; returns the updated `Workflow`.
    pub async fn patch_workflow(
        &self,
        id: &str,
        body: Value,
        deadline: Deadline,
    ) -> Result<Value, DynatraceError> {
        let request = ApiRequest::patch(
            format!("{BASE}/{}", path_segment(id)),
            body,
            SCOPE_WRITE,
            format!("workflow `{id}`"),
        );
        self.call(&request, deadline).await?.json("workflow")
    }
}
