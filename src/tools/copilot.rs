//! Davis CoPilot: natural language → DQL, DQL → natural language, and questions about Dynatrace.
//! Listed when `DT_ENABLE_DAVIS_COPILOT` is on. Each call first checks that the environment has
//! the skill, so a tenant without it gets a sentence rather than an HTTP error.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Annotations, ToolContext, ToolDef, ToolError, ToolOutput};
use crate::dynatrace::copilot::{CopilotNotification, Skill, Source};

async fn require_skill(ctx: &ToolContext, skill: Skill) -> Result<(), ToolError> {
    if ctx.dynatrace.copilot_has_skill(skill, ctx.deadline).await? {
        Ok(())
    } else {
        Err(ToolError::Refused(format!(
            "this Dynatrace environment does not offer the Davis CoPilot skill `{}` (CoPilot may be disabled, or not \
             available in this region or license). Write the DQL directly with execute_dql and check it with verify_dql",
            skill.name()
        )))
    }
}

fn notifications_text(notifications: &[CopilotNotification]) -> String {
    notifications
        .iter()
        .filter_map(|n| {
            n.message
                .as_ref()
                .map(|m| format!("\n{}: {m}", n.severity.as_deref().unwrap_or("NOTE")))
        })
        .collect()
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateParams {
    /// What the query should find, in plain language, e.g. "error logs of the payment service in the last hour".
    pub text: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GenerateOutput {
    pub dql: String,
    /// SUCCESSFUL, SUCCESSFUL_WITH_WARNINGS or FAILED.
    pub status: String,
    pub message_token: String,
    pub notifications: Vec<CopilotNotification>,
}

pub fn generate_definition() -> ToolDef {
    ToolDef::new::<GenerateParams, _, _>(
        "generate_dql_from_natural_language",
        "Generate DQL from Natural Language",
        "Ask Davis CoPilot to write a DQL statement for a question in plain language. The statement is not run: \
         check it with verify_dql, then run it with execute_dql.",
        Annotations { idempotent: false, ..Annotations::READ },
        |ctx: ToolContext, params: GenerateParams| async move {
            let text = params.text.trim();
            if text.is_empty() {
                return Err(ToolError::InvalidArguments("text is empty: describe what the query should find".into()));
            }
            require_skill(&ctx, Skill::Nl2Dql).await?;
            let response = ctx.dynatrace.copilot_nl2dql(text, ctx.deadline).await?;
            let notifications = response.metadata.map(|m| m.notifications).unwrap_or_default();
            let mut out = if response.status == "FAILED" || response.dql.trim().is_empty() {
                format!("Davis CoPilot could not write a DQL statement for this request (status {}). Rephrase it with the data source (logs, spans, events, metrics) and the filters you want.", response.status)
            } else {
                format!("Davis CoPilot suggests (status {}):\n```dql\n{}\n```\nCheck it with verify_dql, then run it with execute_dql.", response.status, response.dql)
            };
            out.push_str(&notifications_text(&notifications));
            let output = GenerateOutput { dql: response.dql, status: response.status, message_token: response.message_token, notifications };
            Ok(ToolOutput::text(out).with_structured(&output))
        },
    )
    .with_output::<GenerateOutput>()
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainParams {
    /// The DQL statement to explain.
    pub dql: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExplainOutput {
    pub summary: String,
    pub explanation: String,
    pub status: String,
    pub message_token: String,
}

pub fn explain_definition() -> ToolDef {
    ToolDef::new::<ExplainParams, _, _>(
        "explain_dql_in_natural_language",
        "Explain DQL in Natural Language",
        "Ask Davis CoPilot to explain a DQL statement in plain language (a summary and a step-by-step explanation).",
        Annotations::READ,
        |ctx: ToolContext, params: ExplainParams| async move {
            let dql = params.dql.trim();
            if dql.is_empty() {
                return Err(ToolError::InvalidArguments("dql is empty: give the statement to explain".into()));
            }
            require_skill(&ctx, Skill::Dql2Nl).await?;
            let response = ctx.dynatrace.copilot_dql2nl(dql, ctx.deadline).await?;
            let mut text = if response.status == "FAILED" {
                "Davis CoPilot could not explain this statement (status FAILED); it only explains valid DQL, so check it with verify_dql first.".to_string()
            } else {
                format!("Summary: {}\n\n{}", response.summary, response.explanation)
            };
            text.push_str(&notifications_text(&response.metadata.map(|m| m.notifications).unwrap_or_default()));
            let output = ExplainOutput { summary: response.summary, explanation: response.explanation, status: response.status, message_token: response.message_token };
            Ok(ToolOutput::text(text).with_structured(&output))
        },
    )
    .with_output::<ExplainOutput>()
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatParams {
    /// The question for Davis CoPilot, e.g. "How do I monitor a Kubernetes cluster?".
    pub text: String,
    /// Extra context for the answer (supplementary information such as an error message or findings).
    #[serde(default)]
    pub context: Option<String>,
    /// An instruction on how to answer, e.g. "Answer in three bullet points".
    #[serde(default)]
    pub instruction: Option<String>,
    /// The `conversationState` of a previous answer, to continue that conversation.
    #[serde(default, rename = "conversationState")]
    pub conversation_state: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatOutput {
    pub text: String,
    pub status: String,
    pub sources: Vec<Source>,
    /// Pass back as conversationState to ask a follow-up question in the same conversation.
    pub conversation_state: Option<Value>,
}

pub fn chat_definition() -> ToolDef {
    ToolDef::new::<ChatParams, _, _>(
        "chat_with_davis_copilot",
        "Chat with Davis CoPilot",
        "Ask Davis CoPilot a question about Dynatrace (product, configuration, concepts, DQL) when no other tool fits; \
         the answer cites its sources.",
        Annotations { idempotent: false, ..Annotations::READ },
        |ctx: ToolContext, params: ChatParams| async move {
            let text = params.text.trim();
            if text.is_empty() {
                return Err(ToolError::InvalidArguments("text is empty: give the question".into()));
            }
            require_skill(&ctx, Skill::Conversation).await?;
            let mut context = Vec::new();
            if let Some(c) = params.context.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
                context.push(json!({"type": "supplementary", "value": c}));
            }
            if let Some(i) = params.instruction.as_deref().map(str::trim).filter(|i| !i.is_empty()) {
                context.push(json!({"type": "instruction", "value": i}));
            }
            let response = ctx.dynatrace.copilot_conversation(text, context, params.conversation_state, ctx.deadline).await?;
            let metadata = response.metadata.unwrap_or_default();
            let mut out = if response.status == "FAILED" {
                "Davis CoPilot could not answer this question (status FAILED). Rephrase it, or ask about a narrower topic.".to_string()
            } else {
                response.text.clone()
            };
            if !metadata.sources.is_empty() {
                out.push_str("\n\nSources:");
                for s in &metadata.sources {
                    out.push_str(&format!("\n- {}{}", s.title.as_deref().unwrap_or("(untitled)"), s.url.as_deref().map(|u| format!(": {u}")).unwrap_or_default()));
                }
            }
            out.push_str(&notifications_text(&metadata.notifications));
            let output = ChatOutput { text: response.text, status: response.status, sources: metadata.sources, conversation_state: response.state };
            Ok(ToolOutput::text(out).with_structured(&output))
        },
    )
    .with_output::<ChatOutput>()
}
