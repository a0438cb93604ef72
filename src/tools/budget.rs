//! The Grail budget: how many bytes this server's queries may scan before it refuses more, and
//! the tools that show and reset it.
//!
//! Every DQL-backed tool goes through [`GrailBudget::check`] before a query and reports
//! [`GrailBudget::note`] after it. The count is per process (per Lambda instance or ECS task):
//! it bounds what one instance's callers can spend, it is not an account-wide quota.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::format::human_bytes;
use super::{Annotations, ToolContext, ToolDef, ToolError, ToolOutput};
use crate::dynatrace::grail::GrailUsage;

/// The configured limit; the running total lives in the client's [`GrailUsage`].
#[derive(Debug, Clone, Copy)]
pub struct GrailBudget {
    pub limit_bytes: Option<u64>,
}

impl GrailBudget {
    /// Refuses a query once the budget is used up.
    pub fn check(&self, usage: &GrailUsage) -> Result<(), ToolError> {
        let Some(limit) = self.limit_bytes else {
            return Ok(());
        };
        let used = usage.scanned_bytes();
        if used >= limit {
            return Err(ToolError::Refused(format!(
                "the Grail query budget of this server is used up: its queries scanned {} of {} allowed. \
                 To continue, call reset_grail_budget (it resets this server's count), or ask the operator to raise \
                 DT_GRAIL_QUERY_BUDGET_GB. Queries that scan less (shorter timeframe, filters first) stretch the budget",
                human_bytes(used),
                human_bytes(limit)
            )));
        }
        Ok(())
    }

    /// A warning once 80 % of the budget is used.
    pub fn note(&self, usage: &GrailUsage) -> Option<String> {
        let limit = self.limit_bytes?;
        let used = usage.scanned_bytes();
        let percent = used as f64 * 100.0 / limit as f64;
        (percent >= 80.0).then(|| {
            format!(
                "Warning: this server's queries have used {percent:.0} % of the Grail budget ({} of {}); \
                 prefer narrow timeframes and filters.",
                human_bytes(used),
                human_bytes(limit)
            )
        })
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    /// Bytes scanned by this server's queries since start-up or the last reset.
    pub scanned_bytes: u64,
    /// Queries counted.
    pub queries: u64,
    /// The budget in bytes; absent when unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_bytes: Option<u64>,
    /// Bytes left; absent when unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_bytes: Option<u64>,
    /// Whether new queries are refused.
    pub exhausted: bool,
}

fn status(ctx: &ToolContext) -> Output {
    let usage = ctx.dynatrace.grail_usage();
    let limit = ctx.state.budget.limit_bytes;
    let scanned = usage.scanned_bytes();
    Output {
        scanned_bytes: scanned,
        queries: usage.queries(),
        limit_bytes: limit,
        remaining_bytes: limit.map(|l| l.saturating_sub(scanned)),
        exhausted: limit.is_some_and(|l| scanned >= l),
    }
}

fn describe(output: &Output) -> String {
    match output.limit_bytes {
        Some(limit) => format!(
            "Grail budget of this server: {} scanned by {} queries, {} of {} left{}.",
            human_bytes(output.scanned_bytes),
            output.queries,
            human_bytes(output.remaining_bytes.unwrap_or(0)),
            human_bytes(limit),
            if output.exhausted {
                " (used up: queries are refused until it is reset)"
            } else {
                ""
            }
        ),
        None => format!(
            "No Grail budget is set for this server; its queries scanned {} in {} queries.",
            human_bytes(output.scanned_bytes),
            output.queries
        ),
    }
}

pub fn get_definition() -> ToolDef {
    ToolDef::new::<Params, _, _>(
        "get_grail_budget",
        "Get Grail Budget",
        "Show how much data this server's DQL queries have scanned in Grail and how much of its query budget is left.",
        Annotations { open_world: false, ..Annotations::READ },
        |ctx: ToolContext, _params: Params| async move {
            let output = status(&ctx);
            Ok(ToolOutput::text(describe(&output)).with_structured(&output))
        },
    )
    .with_output::<Output>()
}

pub fn reset_definition() -> ToolDef {
    ToolDef::new::<Params, _, _>(
        "reset_grail_budget",
        "Reset Grail Budget",
        "Reset this server's count of scanned Grail bytes to zero, so queries refused for an exhausted budget run again. \
         The count is per server instance; the limit itself (DT_GRAIL_QUERY_BUDGET_GB) stays.",
        Annotations {
            read_only: false,
            destructive: false,
            idempotent: true,
            open_world: false,
        },
        |ctx: ToolContext, _params: Params| async move {
            // The count is shared by every caller of this instance: resetting it lifts the cost
            // cap for everyone, so it takes a caller who may change things.
            if !ctx.principal.groups.contains(crate::identity::ToolGroup::Write) {
                return Err(ToolError::Refused(format!(
                    "nothing was reset: the Grail budget is shared by every caller of this server, and resetting it \
                     needs the write scope ({}), which your credential does not carry; ask the operator",
                    ctx.state.settings.identity.scope_names.write
                )));
            }
            let before = status(&ctx);
            ctx.dynatrace.grail_usage().reset();
            tracing::info!(scanned_bytes = before.scanned_bytes, "Grail budget reset by a tool call");
            let output = status(&ctx);
            let text = format!(
                "The Grail budget count was reset (it stood at {}). {}",
                human_bytes(before.scanned_bytes),
                describe(&output)
            );
            Ok(ToolOutput::text(text).with_structured(&output))
        },
    )
    .with_output::<Output>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_refuses_at_the_limit_and_warns_from_80_percent() {
        let usage = GrailUsage::default();
        let budget = GrailBudget {
            limit_bytes: Some(1000),
        };
        assert!(budget.check(&usage).is_ok());
        assert!(budget.note(&usage).is_none());
        usage.record(800);
        assert!(budget.note(&usage).unwrap().contains("80 %"));
        assert!(budget.check(&usage).is_ok());
        usage.record(200);
        let err = budget.check(&usage).unwrap_err().to_string();
        assert!(
            err.contains("reset_grail_budget") && err.contains("DT_GRAIL_QUERY_BUDGET_GB"),
            "{err}"
        );
        assert!(GrailBudget { limit_bytes: None }.check(&usage).is_ok());
    }
}
