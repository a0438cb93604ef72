//! Resources: `dql://reference` (a DQL reference for assistants) and `dql://rule` (short rules
//! for writing DQL), written for this project. The text is compiled in.

use rmcp::ErrorData as McpError;
use rmcp::model::{ReadResourceResult, Resource, ResourceContents};

pub const REFERENCE_URI: &str = "dql://reference";
pub const RULE_URI: &str = "dql://rule";
pub const REFERENCE: &str = include_str!("content/dql-reference.md");
pub const RULE: &str = include_str!("content/dql-rule.md");

pub fn list() -> Vec<Resource> {
    vec![
        Resource::new(REFERENCE_URI, "DQL Language Reference")
            .with_title("DQL reference")
            .with_description("Dynatrace Query Language: data sources, commands, functions, metrics, entities, cost, with examples")
            .with_mime_type("text/markdown")
            .with_size(REFERENCE.len() as u64),
        Resource::new(RULE_URI, "DQL Assistant Rule")
            .with_title("Rules for writing DQL")
            .with_description("Short rules for assistants writing DQL, with a template")
            .with_mime_type("text/markdown")
            .with_size(RULE.len() as u64),
    ]
}

pub fn read(uri: &str) -> Result<ReadResourceResult, McpError> {
    let text = match uri {
        REFERENCE_URI => REFERENCE,
        RULE_URI => RULE,
        other => {
            let other = crate::identity::audit::cut(other, 64);
            return Err(McpError::resource_not_found(
                format!(
                    "there is no resource `{other}`: the resources are {REFERENCE_URI} and {RULE_URI}"
                ),
                // SEP-2164: the URI asked for, in `data` (cut like the message).
                Some(serde_json::json!({ "uri": other })),
            ));
        }
    };
    Ok(ReadResourceResult::new(vec![
        ResourceContents::text(text, uri).with_mime_type("text/markdown"),
    ]))
}
