//! The one place where failures become what the client sees.
//!
//! A failure the model can act on (bad argument, Dynatrace said no, a handle expired) becomes an
//! `isError: true` tool result whose text says what to change. Protocol errors (unknown tool,
//! malformed request) are produced by `mcp::McpServer` and rmcp as JSON-RPC errors.

use crate::dynatrace::DynatraceError;
use crate::tools::ToolError;

/// A short label for logs.
pub fn kind(error: &ToolError) -> &'static str {
    match error {
        ToolError::InvalidArguments(_) => "invalid_arguments",
        ToolError::Refused(_) => "refused",
        ToolError::Dynatrace(e) => e.kind(),
    }
}

/// The sentence the model reads.
pub fn message(tool: &str, error: &ToolError) -> String {
    match error {
        ToolError::InvalidArguments(text) => {
            format!("{tool}: {text}. Fix the arguments and call the tool again.")
        }
        ToolError::Refused(text) => format!("{tool}: {text}."),
        ToolError::Dynatrace(DynatraceError::BadRequest { .. }) => {
            format!("{tool}: {error}. Fix the statement or arguments and try again.")
        }
        // Only a query can be made cheaper; a token request or another call that hung is retried.
        ToolError::Dynatrace(DynatraceError::Timeout { what }) if what.contains("SSO") => format!(
            "{tool}: {error}. The Dynatrace SSO token endpoint did not answer in time: try again shortly; \
             if it persists, check the network path to it (proxy, NAT, DT_SSO_URL)."
        ),
        ToolError::Dynatrace(DynatraceError::Timeout { .. }) if runs_dql(tool) => format!(
            "{tool}: {error}. Narrow the query (shorter timeframe, more filters, a limit) or try again."
        ),
        ToolError::Dynatrace(DynatraceError::Timeout { .. }) => {
            format!("{tool}: {error}. Try again shortly.")
        }
        ToolError::Dynatrace(_) => format!("{tool}: {error}."),
    }
}

/// Whether a tool's work is a Grail query (which a narrower statement makes faster).
fn runs_dql(tool: &str) -> bool {
    matches!(
        tool,
        "execute_dql"
            | "list_problems"
            | "get_problem_details"
            | "list_vulnerabilities"
            | "list_exceptions"
            | "get_kubernetes_events"
            | "find_entity_by_name"
            | "get_entity_name"
            | "list_tags"
            | "find_entities_by_tag"
            | "list_buckets"
            | "describe_bucket"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_tool_and_the_fix() {
        let e =
            ToolError::InvalidArguments("recordLimit must be between 1 and 10000, got 0".into());
        assert_eq!(
            message("execute_dql", &e),
            "execute_dql: recordLimit must be between 1 and 10000, got 0. Fix the arguments and call the tool again."
        );
        let e = ToolError::Dynatrace(DynatraceError::Forbidden {
            message: "x".into(),
            missing_scopes: vec!["storage:logs:read".into()],
        });
        assert!(message("execute_dql", &e).contains("storage:logs:read"));
        assert_eq!(kind(&e), "forbidden");
        let sso = ToolError::Dynatrace(DynatraceError::Timeout {
            what: "SSO token request",
        });
        assert!(message("execute_dql", &sso).contains("SSO token endpoint"));
        assert!(!message("execute_dql", &sso).contains("Narrow"));
        let api = ToolError::Dynatrace(DynatraceError::Timeout {
            what: "Dynatrace API call",
        });
        assert!(message("execute_dql", &api).contains("Narrow the query"));
        assert!(!message("send_email", &api).contains("Narrow"));
        let cut = ToolError::Dynatrace(DynatraceError::Interrupted("reset".into()));
        assert!(!message("list_problems", &cut).contains("could not reach"));
    }
}
