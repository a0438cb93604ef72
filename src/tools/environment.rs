//! `get_environment_info`: which Dynatrace environment this server talks to, and whether the
//! credentials work.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Annotations, ToolContext, ToolDef, ToolError, ToolOutput};
use crate::dynatrace::environment::EnvironmentInfo;

/// No parameters.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    /// The environment (tenant) id.
    pub environment_id: String,
    /// The environment's platform URL.
    pub environment_url: String,
    /// Lifecycle state as Dynatrace reports it (e.g. ACTIVE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Environment type as Dynatrace reports it.
    #[serde(skip_serializing_if = "Option::is_none", rename = "type")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_time: Option<String>,
}

pub fn definition() -> ToolDef {
    ToolDef::new::<Params, _, _>(
        "get_environment_info",
        "Get Environment Info",
        "Get information about the connected Dynatrace environment (tenant) and check that the \
         connection and credentials work. Use this first when other tools fail.",
        Annotations::READ,
        run,
    )
    .with_output::<Output>()
}

async fn run(ctx: ToolContext, _params: Params) -> Result<ToolOutput, ToolError> {
    let client = &ctx.dynatrace;
    let info: EnvironmentInfo = client.environment_info(ctx.deadline).await?;
    let output = Output {
        environment_id: info.environment_id,
        environment_url: client.environment().base().to_string(),
        state: info.state,
        kind: info.kind,
        create_time: info.create_time,
        block_time: info.block_time,
    };
    let mut text = format!(
        "Dynatrace environment {} at {}",
        output.environment_id, output.environment_url
    );
    for (label, value) in [
        ("State", &output.state),
        ("Type", &output.kind),
        ("Created", &output.create_time),
        ("Blocked since", &output.block_time),
    ] {
        if let Some(value) = value {
            text.push_str(&format!("\n- {label}: {value}"));
        }
    }
    text.push_str("\nThe credentials work: other tools can query this environment.");
    Ok(ToolOutput::text(text).with_structured(&output))
}
