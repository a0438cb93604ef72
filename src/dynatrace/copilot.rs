//! Davis CoPilot skills: `/platform/davis/copilot/v1` (shapes from `@dynatrace-sdk/client-davis-copilot`).
//!
//! Which skills a tenant has is asked once and cached for five minutes, so a tool can say "this
//! environment has no nl2dql skill" instead of relaying a raw 4xx.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::client::{ApiRequest, DynatraceClient};
use super::error::DynatraceError;
use crate::deadline::Deadline;

const BASE: &str = "/platform/davis/copilot/v1";
const SKILLS_TTL: Duration = Duration::from_secs(300);

/// A CoPilot skill and the scope that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skill {
    Nl2Dql,
    Dql2Nl,
    Conversation,
    DocumentSearch,
}

impl Skill {
    /// The name in `AvailableSkillsResponse.skills`.
    pub fn name(self) -> &'static str {
        match self {
            Skill::Nl2Dql => "nl2dql",
            Skill::Dql2Nl => "dql2nl",
            Skill::Conversation => "conversation",
            Skill::DocumentSearch => "documentSearch",
        }
    }

    pub fn scope(self) -> &'static str {
        match self {
            Skill::Nl2Dql => "davis-copilot:nl2dql:execute",
            Skill::Dql2Nl => "davis-copilot:dql2nl:execute",
            Skill::Conversation => "davis-copilot:conversations:execute",
            Skill::DocumentSearch => "davis-copilot:document-search:execute",
        }
    }
}

/// Cache of the tenant's skills.
#[derive(Default)]
pub struct SkillCache(Mutex<Option<(Instant, Vec<String>)>>);

#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
pub struct CopilotNotification {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(
        default,
        rename = "notificationType",
        skip_serializing_if = "Option::is_none"
    )]
    pub notification_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct CopilotMetadata {
    #[serde(default)]
    pub notifications: Vec<CopilotNotification>,
    #[serde(default)]
    pub sources: Vec<Source>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
pub struct Source {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Nl2DqlResponse {
    #[serde(default)]
    pub dql: String,
    #[serde(default)]
    pub message_token: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub metadata: Option<CopilotMetadata>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dql2NlResponse {
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub explanation: String,
    #[serde(default)]
    pub message_token: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub metadata: Option<CopilotMetadata>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationResponse {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub message_token: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub state: Option<Value>,
    #[serde(default)]
    pub metadata: Option<CopilotMetadata>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentSearchResponse {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub results: Vec<DocumentSearchResult>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentSearchResult {
    pub document_id: String,
    #[serde(default)]
    pub relevance_score: f64,
    #[serde(default)]
    pub document_metadata: Value,
}

impl DynatraceClient {
    /// Whether this tenant offers `skill`: `Ok(false)` is a clear "no", not an error.
    pub async fn copilot_has_skill(
        &self,
        skill: Skill,
        deadline: Deadline,
    ) -> Result<bool, DynatraceError> {
        if let Some((at, skills)) = self.skill_cache().0.lock().expect("skill cache").clone()
            && at.elapsed() < SKILLS_TTL
        {
            return Ok(skills.iter().any(|s| s == skill.name()));
        }
        #[derive(Deserialize)]
        struct Skills {
            #[serde(default)]
            skills: Vec<String>,
        }
        let request = ApiRequest::get(
            format!("{BASE}/skills"),
            skill.scope(),
            "the Davis CoPilot skills",
        );
        let skills: Skills = match self.call(&request, deadline).await {
            Ok(response) => response.json("CoPilot skills")?,
            // An environment without CoPilot has no skills endpoint.
            Err(DynatraceError::NotFound { .. }) => Skills { skills: Vec::new() },
            Err(e) => return Err(e),
        };
        let has = skills.skills.iter().any(|s| s == skill.name());
        *self.skill_cache().0.lock().expect("skill cache") = Some((Instant::now(), skills.skills));
        Ok(has)
    }

    pub async fn copilot_nl2dql(
        &self,
        text: &str,
        deadline: Deadline,
    ) -> Result<Nl2DqlResponse, DynatraceError> {
        let request = ApiRequest::post(
            format!("{BASE}/skills/nl2dql:generate"),
            json!({ "text": text }),
            Skill::Nl2Dql.scope(),
            "the nl2dql skill",
        );
        self.call(&request, deadline).await?.json("nl2dql")
    }

    pub async fn copilot_dql2nl(
        &self,
        dql: &str,
        deadline: Deadline,
    ) -> Result<Dql2NlResponse, DynatraceError> {
        let request = ApiRequest::post(
            format!("{BASE}/skills/dql2nl:explain"),
            json!({ "dql": dql }),
            Skill::Dql2Nl.scope(),
            "the dql2nl skill",
        );
        self.call(&request, deadline).await?.json("dql2nl")
    }

    /// `conversations:message` with optional context items (`{type, value}`) and a previous `state`.
    pub async fn copilot_conversation(
        &self,
        text: &str,
        context: Vec<Value>,
        state: Option<Value>,
        deadline: Deadline,
    ) -> Result<ConversationResponse, DynatraceError> {
        let mut body = json!({ "text": text });
        if !context.is_empty() {
            body["context"] = Value::Array(context);
        }
        if let Some(state) = state {
            body["state"] = state;
        }
        let request = ApiRequest::post(
            format!("{BASE}/skills/conversations:message"),
            body,
            Skill::Conversation.scope(),
            "the conversation skill",
        );
        self.call(&request, deadline)
            .await?
            .json("conversations:message")
    }

    pub async fn copilot_document_search(
        &self,
        texts: &[String],
        collections: &[&str],
        deadline: Deadline,
    ) -> Result<DocumentSearchResponse, DynatraceError> {
        let request = ApiRequest::post(
            format!("{BASE}/skills/document-search:execute"),
            json!({ "texts": texts, "collections": collections }),
            Skill::DocumentSearch.scope(),
            "the document-search skill",
        );
        self.call(&request, deadline).await?.json("document-search")
    }
}
