//! Resources: `dql://reference` (a DQL reference for assistants), `dql://rule` (short rules
//! for writing DQL), written for this project, and the results view, an MCP App
//! (`io.modelcontextprotocol/ui`, spec 2026-01-26). All compiled in.

use rmcp::ErrorData as McpError;
use rmcp::model::{MetaObject, ReadResourceResult, Resource, ResourceContents};

pub const REFERENCE_URI: &str = "dql://reference";
pub const RULE_URI: &str = "dql://rule";
pub const REFERENCE: &str = include_str!("content/dql-reference.md");
pub const RULE: &str = include_str!("content/dql-rule.md");

/// The results view: one self-contained HTML file (no script, style or font from the network;
/// its own CSP says `default-src 'none'`), rendered by hosts that support MCP Apps for the tools
/// whose `_meta.ui.resourceUri` names it. Hosts without MCP Apps never read it.
pub const RESULTS_VIEW_URI: &str = "ui://dynatrace-mcp/results.html";
pub const RESULTS_VIEW: &str = include_str!("ui/results.html");
/// The MIME type MCP Apps hosts render.
pub const APP_MIME: &str = "text/html;profile=mcp-app";

/// `_meta` of a tool whose results the view shows.
pub fn results_view_meta() -> MetaObject {
    ui_meta(serde_json::json!({"resourceUri": RESULTS_VIEW_URI}))
}

/// `{"ui": ui}`, the MCP Apps extension's key in a `_meta`.
fn ui_meta(ui: serde_json::Value) -> MetaObject {
    let mut map = serde_json::Map::new();
    map.insert("ui".to_string(), ui);
    MetaObject(map)
}

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
        Resource::new(RESULTS_VIEW_URI, "Query results view")
            .with_title("Query results (table and chart)")
            .with_description("An MCP App that shows execute_dql and list_problems results as a sortable table, and time series as a chart")
            .with_mime_type(APP_MIME)
            .with_size(RESULTS_VIEW.len() as u64),
    ]
}

pub fn read(uri: &str) -> Result<ReadResourceResult, McpError> {
    if uri == RESULTS_VIEW_URI {
        // No `csp` (the host's restrictive default: no connect or resource domains) and no
        // permissions: the view needs neither.
        return Ok(ReadResourceResult::new(vec![
            ResourceContents::text(RESULTS_VIEW, uri)
                .with_mime_type(APP_MIME)
                .with_meta(ui_meta(serde_json::json!({"prefersBorder": true}))),
        ]));
    }
    let text = match uri {
        REFERENCE_URI => REFERENCE,
        RULE_URI => RULE,
        other => {
            let other = crate::identity::audit::cut(other, 64);
            return Err(McpError::resource_not_found(
                format!(
                    "there is no resource `{other}`: the resources are {REFERENCE_URI}, {RULE_URI} and {RESULTS_VIEW_URI}"
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
