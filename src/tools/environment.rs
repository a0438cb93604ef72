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

/// `list_environments` takes no parameters.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListParams {}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListOutput {
    /// The environments this caller may use, the default first.
    pub environments: Vec<EnvironmentEntry>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentEntry {
    /// Pass as `environment` to other tools.
    pub alias: String,
    /// The environment's platform URL.
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The environment tools use when `environment` is absent.
    pub default: bool,
    /// Whether the environment answered just now with the credential this caller's calls use.
    pub reachable: bool,
    /// The environment (tenant) id it reported, when reachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_id: Option<String>,
    /// Why it is not reachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

pub fn list_definition() -> ToolDef {
    ToolDef::new::<ListParams, _, _>(
        "list_environments",
        "List Environments",
        "List the Dynatrace environments this server can query: each one's alias (pass it as \
         `environment` to the other tools), URL, description, whether it is the default, and whether \
         it answers right now with your credentials.",
        Annotations::READ,
        list,
    )
    .with_output::<ListOutput>()
    .without_environment()
}

/// How long one environment may take to answer the reachability check.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

async fn list(ctx: ToolContext, _params: ListParams) -> Result<ToolOutput, ToolError> {
    let environments = &ctx.state.environments;
    let default = environments.default_environment().alias.clone();
    let allowed = environments.allowed_for(&ctx.principal)?;
    // The probes end a little before the answer is due, so the list goes out in time.
    let deadline = ctx
        .deadline
        .leaving_room_to_answer()
        .min(crate::deadline::Deadline::after(PROBE_TIMEOUT));
    let probes = allowed.iter().map(|environment| {
        let view = ctx.in_environment(environment.clone(), true);
        async move { view.dynatrace.environment_info(deadline).await }
    });
    let answers = tokio::select! {
        answers = futures::future::join_all(probes) => answers,
        _ = ctx.cancel.cancelled() => {
            return Err(ToolError::Refused("the call was cancelled before the environments answered".into()));
        }
    };
    let mut entries = Vec::with_capacity(allowed.len());
    let mut text = format!("{} Dynatrace environments:\n", allowed.len());
    for (environment, answer) in allowed.iter().zip(answers) {
        let (reachable, environment_id, problem) = match answer {
            Ok(info) => (true, Some(info.environment_id), None),
            Err(e) => (false, None, Some(e.to_string())),
        };
        let entry = EnvironmentEntry {
            alias: environment.alias.clone(),
            url: environment.url().base().to_string(),
            description: environment.description.clone(),
            default: environment.alias == default,
            reachable,
            environment_id,
            problem,
        };
        text.push_str(&format!(
            "- {}{}: {}{} — {}\n",
            entry.alias,
            if entry.default { " (default)" } else { "" },
            entry.url,
            entry
                .description
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default(),
            match (&entry.environment_id, &entry.problem) {
                (Some(id), _) => format!("reachable, environment id {id}"),
                (None, Some(problem)) => format!("NOT reachable: {problem}"),
                (None, None) => "NOT reachable".to_string(),
            }
        ));
        entries.push(entry);
    }
    text.push_str(
        "Pass an alias as `environment` to any tool; list_problems, list_vulnerabilities, execute_dql, \
         find_entity_by_name and get_environment_info also take \"*\" or a list of aliases to ask several at once.",
    );
    Ok(ToolOutput::text(text).with_structured(&ListOutput {
        environments: entries,
    }))
}
