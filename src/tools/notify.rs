//! Tools that reach people: email, Slack, and notification workflows. All are writes: listed only
//! with `DT_ENABLE_WRITE_TOOLS=1`, and each call needs a confirmation (see [`super::confirm`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::confirm::{self, Confirmation};
use super::{Annotations, ToolContext, ToolDef, ToolError, ToolOutput, text_field};
use crate::dynatrace::DynatraceError;

const MAX_RECIPIENTS: usize = 10;
const WRITE: Annotations = Annotations {
    read_only: false,
    destructive: false,
    idempotent: false,
    open_world: true,
};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailParams {
    /// Recipients' email addresses (to + cc + bcc: at most 10).
    #[serde(rename = "toRecipients")]
    pub to_recipients: Vec<String>,
    #[serde(default, rename = "ccRecipients")]
    pub cc_recipients: Option<Vec<String>>,
    #[serde(default, rename = "bccRecipients")]
    pub bcc_recipients: Option<Vec<String>>,
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// The confirmation token from this tool's preview; leave it out the first time.
    #[serde(default, rename = "confirmationToken")]
    pub confirmation_token: Option<String>,
}

fn addresses(list: Option<&Vec<String>>, field: &str) -> Result<Vec<String>, ToolError> {
    let list: Vec<String> = list
        .into_iter()
        .flatten()
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .collect();
    if let Some(bad) = list.iter().find(|a| {
        let Some((local, domain)) = a.split_once('@') else {
            return true;
        };
        local.is_empty()
            || !domain.contains('.')
            || a.chars().any(|c| c.is_whitespace() || c == ',' || c == ';')
    }) {
        return Err(ToolError::InvalidArguments(format!(
            "{field}: `{bad}` is not an email address (give one address per entry, like name@example.com)"
        )));
    }
    Ok(list)
}

pub fn send_email_definition() -> ToolDef {
    ToolDef::new::<EmailParams, _, _>(
        "send_email",
        "Send Email",
        "Send a plain-text email through Dynatrace (from no-reply@apps.dynatrace.com) to at most 10 recipients. Needs \
         confirmation: the first call returns a preview and a confirmationToken; repeat the call with it to send.",
        WRITE,
        run_send_email,
    )
}

async fn run_send_email(ctx: ToolContext, params: EmailParams) -> Result<ToolOutput, ToolError> {
    let to = addresses(Some(&params.to_recipients), "toRecipients")?;
    let cc = addresses(params.cc_recipients.as_ref(), "ccRecipients")?;
    let bcc = addresses(params.bcc_recipients.as_ref(), "bccRecipients")?;
    if to.is_empty() {
        return Err(ToolError::InvalidArguments(
            "toRecipients needs at least one address".into(),
        ));
    }
    let total = to.len() + cc.len() + bcc.len();
    if total > MAX_RECIPIENTS {
        return Err(ToolError::InvalidArguments(format!(
            "{total} recipients in to, cc and bcc: at most {MAX_RECIPIENTS} are allowed"
        )));
    }
    let subject = params.subject.trim();
    if subject.is_empty() || params.body.trim().is_empty() {
        return Err(ToolError::InvalidArguments(
            "subject and body must not be empty".into(),
        ));
    }
    let planned = json!({"to": to, "cc": cc, "bcc": bcc, "subject": subject, "body": params.body});
    let action = format!(
        "email \"{subject}\" to {total} recipient{}",
        if total == 1 { "" } else { "s" }
    );
    match confirm::check(
        &ctx,
        "send_email",
        action,
        planned,
        params.confirmation_token.as_deref(),
    )
    .await?
    {
        Confirmation::Preview(preview) => return Ok(preview),
        Confirmation::Granted => {}
    }
    let response = ctx
        .dynatrace
        .send_email(&to, &cc, &bcc, subject, &params.body, ctx.deadline)
        .await?;
    let mut text = format!(
        "Dynatrace accepted the email \"{subject}\" for {total} recipient{}{}.",
        if total == 1 { "" } else { "s" },
        if response.request_id.is_empty() {
            String::new()
        } else {
            format!(" (request {})", response.request_id)
        }
    );
    if !response.invalid_destinations.is_empty() {
        text.push_str(&format!(
            " Not delivered to invalid addresses: {}.",
            response.invalid_destinations.join(", ")
        ));
    }
    if let Some(rejected) = &response.rejected_destinations {
        let rejected: Vec<String> = ["bouncingDestinations", "complainingDestinations"]
            .iter()
            .filter_map(|k| rejected.get(k).and_then(Value::as_array))
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        if !rejected.is_empty() {
            text.push_str(&format!(
                " Rejected (bouncing or complaining): {}.",
                rejected.join(", ")
            ));
        }
    }
    Ok(ToolOutput::text(text).with_structured(&json!({
        "requestId": response.request_id,
        "invalidDestinations": response.invalid_destinations,
        "rejectedDestinations": response.rejected_destinations,
    })))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackParams {
    /// The Slack channel, e.g. #ops-alerts (or a channel id).
    pub channel: String,
    /// The message, in Slack markdown.
    pub message: String,
    /// The confirmation token from this tool's preview; leave it out the first time.
    #[serde(default, rename = "confirmationToken")]
    pub confirmation_token: Option<String>,
}

pub fn send_slack_definition() -> ToolDef {
    ToolDef::new::<SlackParams, _, _>(
        "send_slack_message",
        "Send Slack Message",
        "Post a message to a Slack channel through the Dynatrace for Slack app (connection SLACK_CONNECTION_ID). Needs \
         confirmation: the first call returns a preview and a confirmationToken; repeat the call with it to post.",
        WRITE,
        run_send_slack,
    )
}

fn slack_connection(ctx: &ToolContext) -> Result<String, ToolError> {
    ctx.state.settings.slack_connection_id.clone().ok_or_else(|| {
        ToolError::Refused(
            "no Slack connection is configured: the operator must set SLACK_CONNECTION_ID to the id of a Dynatrace for Slack connection".into(),
        )
    })
}

async fn run_send_slack(ctx: ToolContext, params: SlackParams) -> Result<ToolOutput, ToolError> {
    let channel = params.channel.trim();
    if channel.is_empty() || params.message.trim().is_empty() {
        return Err(ToolError::InvalidArguments(
            "channel and message must not be empty".into(),
        ));
    }
    let connection = slack_connection(&ctx)?;
    let planned = json!({"connection": connection, "channel": channel, "message": params.message});
    let action = format!("post a message to Slack channel {channel}");
    match confirm::check(
        &ctx,
        "send_slack_message",
        action,
        planned,
        params.confirmation_token.as_deref(),
    )
    .await?
    {
        Confirmation::Preview(preview) => return Ok(preview),
        Confirmation::Granted => {}
    }
    let result = ctx
        .dynatrace
        .send_slack_message(&connection, channel, &params.message, ctx.deadline)
        .await?;
    Ok(
        ToolOutput::text(format!("Posted the message to Slack channel {channel}."))
            .with_structured(&json!({"result": result})),
    )
}

/// Problem categories a notification workflow can react to.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProblemType {
    Availability,
    Error,
    #[serde(alias = "PERFORMANCE")]
    Slowdown,
    #[serde(alias = "RESOURCE_CONTENTION")]
    Resource,
    #[serde(alias = "CUSTOM_ALERT")]
    Custom,
    Info,
    MonitoringUnavailable,
    /// Every category.
    All,
}

impl ProblemType {
    fn categories(self) -> Value {
        let key = match self {
            ProblemType::Availability => "availability",
            ProblemType::Error => "error",
            ProblemType::Slowdown => "slowdown",
            ProblemType::Resource => "resource",
            ProblemType::Custom => "custom",
            ProblemType::Info => "info",
            ProblemType::MonitoringUnavailable => "monitoringUnavailable",
            ProblemType::All => {
                return json!({"availability": true, "error": true, "slowdown": true, "resource": true, "custom": true, "info": true, "monitoringUnavailable": true});
            }
        };
        json!({ key: true })
    }

    fn label(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowParams {
    /// Which problems trigger the notification: AVAILABILITY, ERROR, SLOWDOWN (or PERFORMANCE), RESOURCE,
    /// CUSTOM, INFO, MONITORING_UNAVAILABLE or ALL.
    #[serde(rename = "problemType")]
    pub problem_type: ProblemType,
    /// The team to notify (used in the workflow's title and message).
    #[serde(rename = "teamName")]
    pub team_name: String,
    /// The Slack channel to notify, e.g. #payments-alerts.
    pub channel: String,
    /// Keep the workflow private to its owner (default false).
    #[serde(default, rename = "isPrivate")]
    pub is_private: Option<bool>,
    /// The confirmation token from this tool's preview; leave it out the first time.
    #[serde(default, rename = "confirmationToken")]
    pub confirmation_token: Option<String>,
}

pub fn create_workflow_definition() -> ToolDef {
    ToolDef::new::<WorkflowParams, _, _>(
        "create_workflow_for_notification",
        "Create Workflow for Notification",
        "Create a Dynatrace workflow that posts to a Slack channel whenever a Davis problem of the given type opens \
         or closes. Needs confirmation: the first call returns a preview and a confirmationToken; repeat the call with \
         it to create the workflow.",
        WRITE,
        run_create_workflow,
    )
}

async fn run_create_workflow(
    ctx: ToolContext,
    params: WorkflowParams,
) -> Result<ToolOutput, ToolError> {
    let team = params.team_name.trim();
    let channel = params.channel.trim();
    if team.is_empty() || channel.is_empty() {
        return Err(ToolError::InvalidArguments(
            "teamName and channel must not be empty".into(),
        ));
    }
    let connection = slack_connection(&ctx)?;
    let kind = params.problem_type.label();
    // Jaq-style expressions are evaluated by the workflow engine when the task runs.
    let message = format!(
        "Problem {{{{ event()['display_id'] }}}} ({kind}) is {{{{ event()['event.status'] }}}}: {{{{ event()['event.name'] }}}} — for team {team}"
    );
    let body = json!({
        "title": format!("Notify {team} of {} problems", kind.to_lowercase()),
        "description": format!("Posts to Slack channel {channel} when a Davis problem of type {kind} opens or closes. Created by dynatrace-mcp."),
        "isPrivate": params.is_private.unwrap_or(false),
        "type": "SIMPLE",
        "trigger": {
            "eventTrigger": {
                "isActive": true,
                "triggerConfiguration": {
                    "type": "davis-problem",
                    "value": { "categories": params.problem_type.categories(), "onProblemClose": true }
                }
            }
        },
        "tasks": {
            "notify_slack": {
                "name": "notify_slack",
                "description": format!("Tell {team} in {channel}"),
                "action": "dynatrace.slack:slack-send-message",
                "active": true,
                "input": { "connection": connection, "channel": channel, "message": message }
            }
        }
    });
    let action = format!("create a workflow that notifies {channel} about {kind} problems");
    match confirm::check(
        &ctx,
        "create_workflow_for_notification",
        action,
        body.clone(),
        params.confirmation_token.as_deref(),
    )
    .await?
    {
        Confirmation::Preview(preview) => return Ok(preview),
        Confirmation::Granted => {}
    }
    let created = ctx.dynatrace.create_workflow(body, ctx.deadline).await?;
    let id = text_field(&created, "id").ok_or_else(|| {
        ToolError::Dynatrace(DynatraceError::Decode {
            context: "workflow".into(),
            message: "the created workflow has no id".into(),
        })
    })?;
    let link = format!(
        "{}/ui/apps/dynatrace.automations/workflows/{id}",
        ctx.dynatrace.environment().base()
    );
    let mut text = format!(
        "Created workflow {id} \"{}\". Open it: {link}",
        text_field(&created, "title").unwrap_or_default()
    );
    if created.get("isPrivate").and_then(Value::as_bool) == Some(true) {
        text.push_str("\nIt is private; make_workflow_public shares it.");
    }
    Ok(ToolOutput::text(text)
        .with_structured(&json!({"id": id, "link": link, "workflow": created})))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublicParams {
    /// The workflow's id (a UUID).
    #[serde(rename = "workflowId")]
    pub workflow_id: String,
    /// The confirmation token from this tool's preview; leave it out the first time.
    #[serde(default, rename = "confirmationToken")]
    pub confirmation_token: Option<String>,
}

pub fn make_workflow_public_definition() -> ToolDef {
    ToolDef::new::<PublicParams, _, _>(
        "make_workflow_public",
        "Make Workflow Public",
        "Share a private workflow with everyone in the environment. Needs confirmation: the first call returns a \
         preview and a confirmationToken; repeat the call with it.",
        Annotations {
            read_only: false,
            destructive: false,
            idempotent: true,
            open_world: true,
        },
        run_make_public,
    )
}

async fn run_make_public(ctx: ToolContext, params: PublicParams) -> Result<ToolOutput, ToolError> {
    let id = params.workflow_id.trim();
    if id.is_empty() || id.len() > 100 {
        return Err(ToolError::InvalidArguments(
            "workflowId must be the workflow's id (a UUID)".into(),
        ));
    }
    let body = json!({"isPrivate": false});
    let planned = json!({"workflowId": id, "patch": body});
    match confirm::check(
        &ctx,
        "make_workflow_public",
        format!("make workflow {id} public"),
        planned,
        params.confirmation_token.as_deref(),
    )
    .await?
    {
        Confirmation::Preview(preview) => return Ok(preview),
        Confirmation::Granted => {}
    }
    let updated = ctx
        .dynatrace
        .patch_workflow(id, body, ctx.deadline)
        .await
        .map_err(|e| match e {
            DynatraceError::NotFound { .. } => ToolError::Refused(format!(
                "there is no workflow with id `{id}` (or it is not visible to this token)"
            )),
            other => ToolError::Dynatrace(other),
        })?;
    let link = format!(
        "{}/ui/apps/dynatrace.automations/workflows/{id}",
        ctx.dynatrace.environment().base()
    );
    Ok(
        ToolOutput::text(format!("Workflow {id} is now public. Open it: {link}"))
            .with_structured(&json!({"id": id, "link": link, "workflow": updated})),
    )
}
