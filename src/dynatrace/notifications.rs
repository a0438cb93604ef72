//! Outbound notifications and events: the Email API, the Slack app function and classic event
//! ingest. None has a typed SDK client; shapes come from Dynatrace's API documentation.

use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{ApiRequest, DynatraceClient};
use super::error::DynatraceError;
use crate::deadline::Deadline;

pub const SCOPE_EMAIL: &str = "email:emails:send";
pub const SCOPE_SLACK: &str = "app-engine:apps:run";
pub const SCOPE_EVENTS: &str = "storage:events:write";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailResponse {
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub invalid_destinations: Vec<String>,
    #[serde(default)]
    pub rejected_destinations: Option<Value>,
}

impl DynatraceClient {
    /// `POST /platform/email/v1/emails` (202).
    pub async fn send_email(
        &self,
        to: &[String],
        cc: &[String],
        bcc: &[String],
        subject: &str,
        body: &str,
        deadline: Deadline,
    ) -> Result<EmailResponse, DynatraceError> {
        let list = |addresses: &[String]| json!({ "emailAddresses": addresses });
        let mut request = json!({
            "toRecipients": list(to),
            "subject": subject,
            "body": { "contentType": "text/plain", "body": body },
        });
        if !cc.is_empty() {
            request["ccRecipients"] = list(cc);
        }
        if !bcc.is_empty() {
            request["bccRecipients"] = list(bcc);
        }
        let request = ApiRequest::post(
            "/platform/email/v1/emails",
            request,
            SCOPE_EMAIL,
            "the email service",
        );
        let response = self.call(&request, deadline).await?;
        if response.body.is_empty() {
            return Ok(EmailResponse::default());
        }
        response.json("email")
    }

    /// The `dynatrace.slack` app's `slack-send-message` function. The function reports its own
    /// failures as `{"error": …}` in a 200 body; that becomes an error here.
    pub async fn send_slack_message(
        &self,
        connection: &str,
        channel: &str,
        message: &str,
        deadline: Deadline,
    ) -> Result<Value, DynatraceError> {
        let body = json!({
            "connection": connection,
            "channel": channel,
            "message": message,
            "appendToThread": false,
        });
        let request = ApiRequest::post(
            "/platform/app-engine/app-functions/v1/apps/dynatrace.slack/api/slack-send-message",
            body,
            SCOPE_SLACK,
            "the Slack app (is the Dynatrace for Slack app installed?)",
        );
        let value: Value = match self.call(&request, deadline).await {
            Ok(response) => response.json("slack-send-message")?,
            Err(DynatraceError::UnexpectedStatus {
                status: status @ (540 | 541),
                message,
            }) => {
                return Err(DynatraceError::Upstream {
                    status,
                    message: format!("the Slack app function failed: {message}"),
                });
            }
            Err(e) => return Err(e),
        };
        if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
            let text = error
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| error.to_string());
            return Err(DynatraceError::BadRequest {
                message: format!("the Slack app refused the message: {text}"),
                position: None,
                details: None,
            });
        }
        Ok(value.get("result").cloned().unwrap_or(value))
    }

    /// `POST /platform/classic/environment-api/v2/events/ingest` (201).
    pub async fn ingest_event(
        &self,
        event: Value,
        deadline: Deadline,
    ) -> Result<Value, DynatraceError> {
        let request = ApiRequest::post(
            "/platform/classic/environment-api/v2/events/ingest",
            event,
            SCOPE_EVENTS,
            "the events API",
        );
        self.call(&request, deadline).await?.json("event ingest")
    }
}
