//! The Grail budgets: how many bytes queries may scan before more are refused, and the tools that
//! show and reset them.
//!
//! Two budgets, both counted in the [`crate::state`] store:
//! - the deployment's (`DT_GRAIL_QUERY_BUDGET_GB`): every query of every caller, until an operator
//!   resets it. With `MCP_STATE_TABLE` every instance counts into one DynamoDB item, so ten Lambda
//!   instances let one budget through, not ten; without it the count is the instance's own;
//! - each principal's per UTC day (`DT_GRAIL_USER_BUDGET_GB`, off by default).
//!
//! Every DQL-backed tool calls [`check`] before a query (one read per budget) and [`record`]
//! after it (one atomic add per budget); [`note`] then warns from 80 %. Concurrent queries that
//! all pass the check may overshoot a budget by what they scan together: the check reads, the
//! bytes are only known when a query ends.
//!
//! When the store cannot answer, the budgets fail open (the query runs; the answer's metadata and
//! the log carry a warning) unless `MCP_STATE_FAIL_CLOSED=1`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::format::human_bytes;
use super::{Annotations, ToolContext, ToolDef, ToolError, ToolOutput};
use crate::identity::ToolGroup;
use crate::signing::now_secs;
use crate::state::{Policy, StateError, until_next_utc_day, utc_day};

/// The store key of the deployment's budget.
pub const DEPLOYMENT_KEY: &str = "grail#deployment";

/// The configured limits; the counts live in the state store.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrailBudget {
    /// `DT_GRAIL_QUERY_BUDGET_GB`, for the whole deployment.
    pub limit_bytes: Option<u64>,
    /// `DT_GRAIL_USER_BUDGET_GB`, per principal per UTC day.
    pub user_limit_bytes: Option<u64>,
}

/// The store key of an environment's budget: [`DEPLOYMENT_KEY`] for the one environment
/// `DT_ENVIRONMENT` configures (as before several environments), one per alias otherwise.
pub fn deployment_key(alias: &str) -> String {
    if alias == crate::environments::DEFAULT_ALIAS {
        DEPLOYMENT_KEY.to_string()
    } else {
        format!("{DEPLOYMENT_KEY}#{alias}")
    }
}

/// " in the environment `prod`" when the server has several environments (each its own budget).
fn in_environment(ctx: &ToolContext) -> String {
    if ctx.state.environments.len() > 1 {
        format!(" in the environment `{}`", ctx.environment.alias)
    } else {
        String::new()
    }
}

fn user_key(ctx: &ToolContext, now: u64) -> String {
    let alias = &ctx.environment.alias;
    if alias == crate::environments::DEFAULT_ALIAS {
        format!("grail#user#{}#{}", ctx.principal.rate_key(), utc_day(now))
    } else {
        format!(
            "grail#user#{}#{alias}#{}",
            ctx.principal.rate_key(),
            utc_day(now)
        )
    }
}

/// A store failure while checking or counting: a warning (fail open) or a refusal (fail closed).
fn on_failure(ctx: &ToolContext, error: &StateError, what: &str) -> Result<(), ToolError> {
    match ctx.state.state_policy {
        Policy::FailOpen => {
            tracing::warn!(error = %error, "{what}; going on (MCP_STATE_FAIL_CLOSED is off)");
            ctx.record.warn(format!("{}; {what}", StateError::PUBLIC));
            Ok(())
        }
        Policy::FailClosed => {
            tracing::warn!(error = %error, "{what}; the query is refused (MCP_STATE_FAIL_CLOSED=1)");
            Err(ToolError::Refused(format!(
                "{}, and this server refuses queries it cannot count against its Grail budget \
                 (MCP_STATE_FAIL_CLOSED=1); nothing was run: try again shortly",
                StateError::PUBLIC
            )))
        }
    }
}

/// Refuses a query once a budget is used up. The two counts are read at once.
pub async fn check(ctx: &ToolContext) -> Result<(), ToolError> {
    let budget = ctx.environment.budget;
    let store = &ctx.state.store;
    let now = now_secs();
    let user_key = user_key(ctx, now);
    let deployment = async {
        match budget.limit_bytes {
            Some(_) => Some(
                store
                    .get(&deployment_key(&ctx.environment.alias), ctx.deadline)
                    .await,
            ),
            None => None,
        }
    };
    let user = async {
        match budget.user_limit_bytes {
            Some(_) => Some(store.get(&user_key, ctx.deadline).await),
            None => None,
        }
    };
    let (deployment, user) = futures::join!(deployment, user);
    if let (Some(limit), Some(count)) = (budget.limit_bytes, deployment) {
        match count {
            Ok(count) if count.amount >= limit => {
                return Err(ToolError::Refused(format!(
                    "the Grail query budget of this deployment{} is used up: its queries scanned {} of {} allowed. {} \
                     Queries that scan less (shorter timeframe, filters first) stretch the budget",
                    in_environment(ctx),
                    human_bytes(count.amount),
                    human_bytes(limit),
                    reset_advice(ctx)
                )));
            }
            Ok(_) => {}
            Err(e) => on_failure(ctx, &e, "the deployment's Grail budget was not checked")?,
        }
    }
    if let (Some(limit), Some(count)) = (budget.user_limit_bytes, user) {
        match count {
            Ok(count) if count.amount >= limit => {
                return Err(ToolError::Refused(format!(
                    "your own Grail budget for today is used up: your queries scanned {} of {} allowed per UTC day \
                     (DT_GRAIL_USER_BUDGET_GB); it renews in {} h {} min",
                    human_bytes(count.amount),
                    human_bytes(limit),
                    until_next_utc_day(now) / 3600,
                    until_next_utc_day(now) % 3600 / 60
                )));
            }
            Ok(_) => {}
            Err(e) => on_failure(ctx, &e, "your daily Grail budget was not checked")?,
        }
    }
    Ok(())
}

/// Counts what a finished query scanned. A failure cannot undo the query: it is a warning.
pub async fn record(ctx: &ToolContext, scanned: u64) {
    let budget = ctx.environment.budget;
    let store = &ctx.state.store;
    let mut totals = ctx.record.totals();
    // The query already ran: counting it gets a second even when the answer's deadline is close.
    let deadline = ctx.deadline.max(crate::deadline::Deadline::after(
        std::time::Duration::from_secs(1),
    ));
    // Without a limit nothing is counted in a shared table (no cost for a number nobody reads);
    // the in-memory count is kept for get_grail_budget.
    if budget.limit_bytes.is_some() || store.name() == "memory" {
        match store
            .add(
                &deployment_key(&ctx.environment.alias),
                scanned,
                None,
                deadline,
            )
            .await
        {
            Ok(count) => totals.deployment = Some(count),
            Err(e) => {
                let _ = on_failure(ctx, &e, "this query's scanned bytes were not counted");
            }
        }
    }
    if budget.user_limit_bytes.is_some() {
        let now = now_secs();
        // Kept a day past its own, then DynamoDB's TTL removes it.
        let expires = now + until_next_utc_day(now) + 86_400;
        match store
            .add(&user_key(ctx, now), scanned, Some(expires), deadline)
            .await
        {
            Ok(count) => totals.user = Some(count),
            Err(e) => {
                let _ = on_failure(
                    ctx,
                    &e,
                    "this query's scanned bytes were not counted against your daily budget",
                );
            }
        }
    }
    ctx.record.set_totals(totals);
}

/// A warning once 80 % of a budget is used, from the counts [`record`] saw.
pub fn note(ctx: &ToolContext) -> Option<String> {
    let budget = ctx.environment.budget;
    let totals = ctx.record.totals();
    let warn = |used: u64, limit: u64, whose: &str| {
        let percent = used as f64 * 100.0 / limit as f64;
        (percent >= 80.0).then(|| {
            format!(
                "Warning: {whose} used {percent:.0} % of the Grail budget ({} of {}); prefer narrow timeframes and filters.",
                human_bytes(used),
                human_bytes(limit)
            )
        })
    };
    let deployment = budget
        .limit_bytes
        .zip(totals.deployment)
        .and_then(|(limit, count)| {
            warn(
                count.amount,
                limit,
                &format!("this deployment's queries{} have", in_environment(ctx)),
            )
        });
    let user = budget
        .user_limit_bytes
        .zip(totals.user)
        .and_then(|(limit, count)| warn(count.amount, limit, "your queries today have"));
    match (deployment, user) {
        (Some(a), Some(b)) => Some(format!("{a}\n{b}")),
        (a, b) => a.or(b),
    }
}

/// What a caller can do about a used-up deployment budget.
fn reset_advice(ctx: &ToolContext) -> String {
    if ctx.state.store.name() == "memory" {
        "To continue, call reset_grail_budget (with the write scope; it resets this server's count), or ask the \
         operator to raise DT_GRAIL_QUERY_BUDGET_GB."
            .into()
    } else {
        "It is shared by every instance: ask the operator to raise DT_GRAIL_QUERY_BUDGET_GB or to reset it \
         (`dynatrace-mcp grail-budget reset`)."
            .into()
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    /// Bytes scanned by this deployment's queries (this server's, without a shared table) since the last reset.
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
    /// Whether the count is shared by every instance (a DynamoDB table) or this instance's own.
    pub shared: bool,
    /// Bytes the caller's queries scanned today (UTC), when a per-caller budget is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_scanned_bytes: Option<u64>,
    /// The caller's daily budget in bytes, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_limit_bytes: Option<u64>,
    /// Bytes the caller has left today, when a per-caller budget is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_remaining_bytes: Option<u64>,
}

async fn status(ctx: &ToolContext) -> Result<Output, ToolError> {
    let budget = ctx.environment.budget;
    let store = &ctx.state.store;
    let unavailable = |e: StateError| {
        ToolError::Refused(format!(
            "{e}: the budget cannot be shown now; try again shortly"
        ))
    };
    let deployment = store
        .get(&deployment_key(&ctx.environment.alias), ctx.deadline)
        .await
        .map_err(unavailable)?;
    let user = match budget.user_limit_bytes {
        Some(_) => Some(
            store
                .get(&user_key(ctx, now_secs()), ctx.deadline)
                .await
                .map_err(unavailable)?,
        ),
        None => None,
    };
    let limit = budget.limit_bytes;
    Ok(Output {
        scanned_bytes: deployment.amount,
        queries: deployment.events,
        limit_bytes: limit,
        remaining_bytes: limit.map(|l| l.saturating_sub(deployment.amount)),
        exhausted: limit.is_some_and(|l| deployment.amount >= l)
            || user
                .zip(budget.user_limit_bytes)
                .is_some_and(|(u, l)| u.amount >= l),
        shared: store.name() != "memory",
        user_scanned_bytes: user.map(|u| u.amount),
        user_limit_bytes: budget.user_limit_bytes,
        user_remaining_bytes: user
            .zip(budget.user_limit_bytes)
            .map(|(u, l)| l.saturating_sub(u.amount)),
    })
}

/// Which environment's budget an answer is about, when there are several.
fn environment_line(ctx: &ToolContext) -> String {
    match in_environment(ctx) {
        e if e.is_empty() => e,
        e => format!("\n(This is the budget{e}; each environment has its own.)"),
    }
}

fn describe(output: &Output) -> String {
    let whose = if output.shared {
        "this deployment (every instance)"
    } else {
        "this server"
    };
    let mut text = match output.limit_bytes {
        Some(limit) => format!(
            "Grail budget of {whose}: {} scanned by {} queries, {} of {} left{}.",
            human_bytes(output.scanned_bytes),
            output.queries,
            human_bytes(output.remaining_bytes.unwrap_or(0)),
            human_bytes(limit),
            if output
                .limit_bytes
                .is_some_and(|l| output.scanned_bytes >= l)
            {
                " (used up: queries are refused until it is reset)"
            } else {
                ""
            }
        ),
        None if output.shared => "No Grail budget is set for this deployment.".to_string(),
        None => format!(
            "No Grail budget is set for this server; its queries scanned {} in {} queries.",
            human_bytes(output.scanned_bytes),
            output.queries
        ),
    };
    if let (Some(used), Some(limit)) = (output.user_scanned_bytes, output.user_limit_bytes) {
        text.push_str(&format!(
            "\nYour own budget today (UTC): {} of {} scanned, {} left.",
            human_bytes(used),
            human_bytes(limit),
            human_bytes(limit.saturating_sub(used))
        ));
    }
    text
}

pub fn get_definition() -> ToolDef {
    ToolDef::new::<Params, _, _>(
        "get_grail_budget",
        "Get Grail Budget",
        "Show how much data this deployment's DQL queries have scanned in Grail, how much of its query budget is left, \
         and, when set, how much of your own daily budget.",
        Annotations { open_world: false, ..Annotations::READ },
        |ctx: ToolContext, _params: Params| async move {
            let output = status(&ctx).await?;
            Ok(ToolOutput::text(format!("{}{}", describe(&output), environment_line(&ctx)))
                .with_structured(&output))
        },
    )
    .with_output::<Output>()
}

pub fn reset_definition() -> ToolDef {
    ToolDef::new::<Params, _, _>(
        "reset_grail_budget",
        "Reset Grail Budget",
        "Reset this server's count of scanned Grail bytes to zero, so queries refused for an exhausted budget run again. \
         Needs the write scope; a budget shared by every instance (a DynamoDB table) is reset by the operator only.",
        Annotations {
            read_only: false,
            destructive: false,
            idempotent: true,
            open_world: false,
        },
        |ctx: ToolContext, _params: Params| async move {
            if ctx.state.store.name() != "memory" {
                return Err(ToolError::Refused(
                    "nothing was reset: this deployment's Grail budget is shared by every instance, and only an \
                     operator resets it (`dynatrace-mcp grail-budget reset`, with access to the state table); \
                     per-caller daily budgets renew at midnight UTC"
                        .into(),
                ));
            }
            // The count is shared by every caller of this instance: resetting it lifts the cost
            // cap for everyone, so it takes a caller who may change things.
            if !ctx.principal.groups.contains(ToolGroup::Write) {
                return Err(ToolError::Refused(format!(
                    "nothing was reset: the Grail budget is shared by every caller of this server, and resetting it \
                     needs the write scope ({}), which your credential does not carry; ask the operator",
                    ctx.state.settings.identity.scope_names.write
                )));
            }
            let before = status(&ctx).await?;
            ctx.state
                .store
                .reset(&deployment_key(&ctx.environment.alias), ctx.deadline)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "the Grail budget could not be reset");
                    ToolError::Refused(format!("{}: nothing was reset", StateError::PUBLIC))
                })?;
            tracing::info!(scanned_bytes = before.scanned_bytes, "Grail budget reset by a tool call");
            let output = status(&ctx).await?;
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
