//! Prompts: ready-made investigations, with the Go server's names and arguments. The texts are
//! this project's own. Arguments are validated: a missing required argument or a malformed
//! timeframe is a -32602 error whose message names the argument.

use rmcp::ErrorData as McpError;
use rmcp::model::{GetPromptResult, JsonObject, Prompt, PromptArgument, PromptMessage, Role};
use serde_json::Value;

use crate::dynatrace::dql::{Timeframe, string_literal};

struct Spec {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    /// (name, description, required)
    arguments: &'static [(&'static str, &'static str, bool)],
}

const PROMPTS: &[Spec] = &[
    Spec {
        name: "entity-deep-dive",
        title: "Entity deep dive",
        description: "Investigate one monitored entity: what it is, its problems, events, logs and dependencies.",
        arguments: &[
            (
                "entity_name",
                "Name, or part of the name, of the service, host or other entity",
                true,
            ),
            (
                "timeframe",
                "How far back to look, e.g. 24h or 7d (default 24h)",
                false,
            ),
        ],
    },
    Spec {
        name: "daily-summary",
        title: "Daily operations summary",
        description: "Summarise the environment's health: problems, vulnerabilities and frontend exceptions.",
        arguments: &[
            (
                "timeframe",
                "The period to summarise, e.g. 24h (default 24h)",
                false,
            ),
            (
                "focus_area",
                "all, problems, security or exceptions (default all)",
                false,
            ),
        ],
    },
    Spec {
        name: "explore-bucket",
        title: "Explore a Grail bucket",
        description: "Learn what a Grail bucket holds: its fields, typical values and useful queries.",
        arguments: &[
            (
                "bucket",
                "A bucket name from list_buckets, or a table such as logs",
                true,
            ),
            (
                "timeframe",
                "How far back to sample, e.g. 1h (default 1h)",
                false,
            ),
        ],
    },
    Spec {
        name: "explore-tags",
        title: "Explore tags",
        description: "Review how entities are tagged, find untagged ones and suggest a tagging scheme.",
        arguments: &[
            (
                "focus",
                "all, services, hosts or applications (default all)",
                false,
            ),
            ("tag_key", "A tag key to look at closely, e.g. env", false),
        ],
    },
];

/// The prompts for `prompts/list`.
pub fn list() -> Vec<Prompt> {
    PROMPTS
        .iter()
        .map(|spec| {
            let arguments = spec
                .arguments
                .iter()
                .map(|(name, description, required)| {
                    PromptArgument::new(*name)
                        .with_description(*description)
                        .with_required(*required)
                })
                .collect();
            Prompt::new(spec.name, Some(spec.description), Some(arguments)).with_title(spec.title)
        })
        .collect()
}

fn argument(arguments: &Option<JsonObject>, name: &str) -> Result<Option<String>, McpError> {
    match arguments.as_ref().and_then(|a| a.get(name)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(other) => Err(McpError::invalid_params(
            format!("argument `{name}` must be a string, got {other}"),
            None,
        )),
    }
}

fn required(arguments: &Option<JsonObject>, prompt: &str, name: &str) -> Result<String, McpError> {
    argument(arguments, name)?.ok_or_else(|| {
        McpError::invalid_params(
            format!(
                "prompt `{prompt}` needs the argument `{name}`; give it and call prompts/get again"
            ),
            None,
        )
    })
}

fn timeframe(arguments: &Option<JsonObject>, default: &str) -> Result<Timeframe, McpError> {
    let raw = argument(arguments, "timeframe")?.unwrap_or_else(|| default.to_string());
    Timeframe::parse(&raw)
        .map_err(|e| McpError::invalid_params(format!("argument `timeframe`: {e}"), None))
}

fn choice(
    arguments: &Option<JsonObject>,
    name: &str,
    allowed: &[&str],
) -> Result<String, McpError> {
    let value = argument(arguments, name)?
        .unwrap_or_else(|| allowed[0].to_string())
        .to_lowercase();
    if allowed.contains(&value.as_str()) {
        Ok(value)
    } else {
        Err(McpError::invalid_params(
            format!(
                "argument `{name}` must be one of {}, got `{value}`",
                allowed.join(", ")
            ),
            None,
        ))
    }
}

/// `prompts/get`.
pub fn get(name: &str, arguments: &Option<JsonObject>) -> Result<GetPromptResult, McpError> {
    let (description, text) = match name {
        "entity-deep-dive" => {
            let entity = required(arguments, name, "entity_name")?;
            let tf = timeframe(arguments, "24h")?;
            (
                format!("Deep dive into {entity} over the last {tf}"),
                entity_deep_dive(&entity, &tf),
            )
        }
        "daily-summary" => {
            let tf = timeframe(arguments, "24h")?;
            let focus = choice(
                arguments,
                "focus_area",
                &["all", "problems", "security", "exceptions"],
            )?;
            (
                format!("Operations summary of the last {tf}"),
                daily_summary(&tf, &focus),
            )
        }
        "explore-bucket" => {
            let bucket = required(arguments, name, "bucket")?;
            let tf = timeframe(arguments, "1h")?;
            (
                format!("Exploring bucket {bucket}"),
                explore_bucket(&bucket, &tf),
            )
        }
        "explore-tags" => {
            let focus = choice(
                arguments,
                "focus",
                &["all", "services", "hosts", "applications"],
            )?;
            let key = argument(arguments, "tag_key")?;
            (
                "Tag review".to_string(),
                explore_tags(&focus, key.as_deref()),
            )
        }
        other => {
            let other = crate::identity::audit::cut(other, 64);
            return Err(McpError::invalid_params(
                format!(
                    "there is no prompt `{other}`: the prompts are {}",
                    PROMPTS
                        .iter()
                        .map(|p| p.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None,
            ));
        }
    };
    Ok(
        GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
            .with_description(description),
    )
}

fn entity_deep_dive(entity: &str, tf: &Timeframe) -> String {
    let quoted = string_literal(entity);
    format!(
        "Investigate the monitored entity {quoted} over the last {tf} and report what you find.\n\n\
         1. Identify it: call find_entity_by_name with entityNames [{quoted}]. If several entities match, say which \
         ones and continue with the most likely; note its id (e.g. SERVICE-…) and type.\n\
         2. Problems: call list_problems with timeframe \"{tf}\" and additionalFilter \
         `in(\"<id>\", affected_entity_ids) or root_cause_entity_id == \"<id>\"` (use the real id). For each problem \
         that matters, call get_problem_details.\n\
         3. Logs: with execute_dql, count recent log levels and show the newest errors, for a service for example:\n\
         ```dql\nfetch logs, from: now()-{tf}\n| filter dt.entity.service == \"<id>\"\n| summarize count(), by:{{loglevel}}\n```\n\
         ```dql\nfetch logs, from: now()-{tf}\n| filter dt.entity.service == \"<id>\" and loglevel == \"ERROR\"\n| sort timestamp desc\n| limit 20\n```\n\
         4. Requests (services): look at failures and slow calls in spans:\n\
         ```dql\nfetch spans, from: now()-{tf}\n| filter dt.entity.service == \"<id>\"\n| summarize count(), by:{{request.is_failed}}\n```\n\
         5. Changes: list deployments and other events that touched it with execute_dql on `fetch events` filtered \
         by the entity id.\n\n\
         Finish with: a one-paragraph health verdict, the top issues with evidence (ids, counts, timestamps), likely \
         causes, and concrete next steps. Keep every query to the timeframe above and add a limit."
    )
}

fn daily_summary(tf: &Timeframe, focus: &str) -> String {
    let mut sections = Vec::new();
    if matches!(focus, "all" | "problems") {
        sections.push(format!(
            "Problems: call list_problems with timeframe \"{tf}\" and status ALL (maxProblemsToDisplay 25). Group them \
             by category, say which are still active, and call get_problem_details for active ones with many affected \
             users."
        ));
    }
    if matches!(focus, "all" | "security") {
        sections.push(
            "Security: call list_vulnerabilities with riskScore 7.0 (maxVulnerabilitiesToDisplay 20). Name the \
             critical ones and the entities they affect."
                .to_string(),
        );
    }
    if matches!(focus, "all" | "exceptions") {
        sections.push(format!(
            "Frontend exceptions: call list_exceptions with timeframe \"{tf}\" (maxExceptionsToDisplay 25). Group by \
             error type and application."
        ));
    }
    sections.push(
        "Environment: call get_environment_info to confirm which environment this is.".to_string(),
    );
    let steps: String = sections
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{}. {s}\n", i + 1))
        .collect();
    format!(
        "Write an operations summary of the last {tf} for the on-call team.\n\n{steps}\n\
         Format: start with an overall status (green, amber or red) and one sentence why; then a short section per \
         area above with counts and the few items that need action (with ids); end with recommended actions, most \
         urgent first. Do not invent numbers: report only what the tools returned."
    )
}

fn explore_bucket(bucket: &str, tf: &Timeframe) -> String {
    let quoted = string_literal(bucket);
    format!(
        "Explain what the Grail bucket {quoted} contains and how to query it.\n\n\
         1. Call list_buckets (includeSystem true if it is not listed) and note the bucket's table, retention and size.\n\
         2. Call describe_bucket with bucket {quoted} and timeframe \"{tf}\" to see its fields, types and example values.\n\
         3. Pick the two or three most useful fields and count records by them with execute_dql, for example:\n\
         ```dql\nfetch logs, from: now()-{tf}\n| filter dt.system.bucket == {quoted}\n| summarize count(), by:{{loglevel}}\n```\n\
         (use the bucket's own table instead of logs when it differs).\n\n\
         Report: what the bucket is for, its key fields, data volume over the timeframe, and three ready-to-run DQL \
         statements for common questions about this data."
    )
}

fn explore_tags(focus: &str, key: Option<&str>) -> String {
    let entity_type = match focus {
        "services" => Some("SERVICE"),
        "hosts" => Some("HOST"),
        "applications" => Some("FRONTEND"),
        _ => None,
    };
    let type_hint = entity_type
        .map(|t| format!(" with entityType \"{t}\""))
        .unwrap_or_default();
    let key_step = match key {
        Some(key) => format!(
            "3. Call find_entities_by_tag with tag {} (maxResults 100) and check that its values are consistent \
             (spelling, case, environments).\n",
            string_literal(key)
        ),
        None => "3. For the two most used keys, call find_entities_by_tag with the key to see which entities carry it.\n".to_string(),
    };
    format!(
        "Review how entities are tagged in this environment.\n\n\
         1. Call list_tags{type_hint}{} to see the keys and values in use.\n\
         2. Find entities without tags, for example:\n\
         ```dql\nsmartscapeNodes \"{}\"\n| filter isNull(tags) or arraySize(tags) == 0\n| fields id, type, name\n| limit 50\n```\n\
         {key_step}\n\
         Report: the tag keys in use and how consistently they are applied, entities missing important tags, and a \
         short recommended tagging scheme (keys, allowed values, who sets them).",
        key.map(|k| format!(" and tagKeyFilter {}", string_literal(k)))
            .unwrap_or_default(),
        entity_type.unwrap_or("*"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, &str)]) -> Option<JsonObject> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(*v)))
                .collect(),
        )
    }

    #[test]
    fn missing_required_arguments_name_the_argument() {
        let err = get("entity-deep-dive", &None).unwrap_err();
        assert_eq!(err.code, rmcp::model::ErrorCode::INVALID_PARAMS);
        assert!(err.message.contains("entity_name"), "{}", err.message);
        let err = get("explore-bucket", &args(&[("timeframe", "1h")])).unwrap_err();
        assert!(err.message.contains("bucket"));
    }

    #[test]
    fn arguments_are_validated_and_quoted() {
        assert!(get("daily-summary", &args(&[("timeframe", "1h | fetch x")])).is_err());
        assert!(get("daily-summary", &args(&[("focus_area", "weather")])).is_err());
        let prompt = get("entity-deep-dive", &args(&[("entity_name", "pay\"ment")])).unwrap();
        let text = serde_json::to_string(&prompt).unwrap();
        assert!(text.contains("pay\\\\\\\"ment"), "{text}");
        assert!(
            get("nope", &None)
                .unwrap_err()
                .message
                .contains("entity-deep-dive")
        );
    }

    #[test]
    fn every_prompt_renders_with_defaults() {
        for (name, extra) in [
            ("entity-deep-dive", args(&[("entity_name", "payment")])),
            ("daily-summary", None),
            ("explore-bucket", args(&[("bucket", "default_logs")])),
            ("explore-tags", args(&[("tag_key", "env")])),
        ] {
            let result = get(name, &extra).unwrap();
            assert_eq!(result.messages.len(), 1, "{name}");
        }
        assert_eq!(list().len(), 4);
    }
}
