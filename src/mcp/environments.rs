//! Which environment a tool call works on: the `environment` argument, checked against the
//! registry and the caller's access, and the fan-out of read tools to several environments.
//!
//! A fan-out runs the tool once per environment, concurrently, each part with the same arguments,
//! a share of the result budget and a deadline a little before the request's, so the merged answer
//! is back in time even when one environment is slow. A part that fails or runs out of time is
//! reported beside the others' answers; the call fails only when every part did.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::environments::Environment;
use crate::identity::audit::CallRecord;
use crate::tools::{JsonObject, ToolContext, ToolDef, ToolError, ToolOutput};

/// What the call asked for.
enum Selection {
    One(Arc<Environment>, bool),
    Many(Vec<Arc<Environment>>),
}

/// Runs `def` in the environment(s) the arguments name.
pub async fn dispatch(
    def: &ToolDef,
    ctx: ToolContext,
    mut args: JsonObject,
) -> Result<ToolOutput, ToolError> {
    if !def.takes_environment {
        return def.call(ctx, args).await;
    }
    let requested = args.remove("environment");
    // A handle names its own environment (`execute_dql` checks the caller may use it): without
    // `environment`, the default's access is not asked for.
    let follows_handle = requested.is_none() && args.contains_key("queryHandle");
    let selection = match select(def, &ctx, requested, follows_handle)? {
        // `"*"` or a list that comes to one environment is a call to that one, in its own shape
        // (the published output schema has the merged shape only with several environments).
        Selection::Many(mut list) if list.len() == 1 => {
            Selection::One(list.pop().expect("one"), true)
        }
        selection => selection,
    };
    match selection {
        Selection::One(environment, explicit) => {
            ctx.record.environment(&environment.alias);
            let ctx = if Arc::ptr_eq(&environment, &ctx.environment) {
                ToolContext {
                    explicit_environment: explicit,
                    ..ctx
                }
            } else {
                ctx.in_environment(environment, explicit)
            };
            def.call(ctx, args).await
        }
        Selection::Many(environments) => {
            if args.contains_key("queryHandle") {
                return Err(ToolError::InvalidArguments(
                    "a queryHandle belongs to one environment: call execute_dql with the queryHandle alone \
                     (without environment), and it fetches the result where the query runs"
                        .into(),
                ));
            }
            fan_out(def, ctx, args, environments).await
        }
    }
}

fn select(
    def: &ToolDef,
    ctx: &ToolContext,
    requested: Option<Value>,
    follows_handle: bool,
) -> Result<Selection, ToolError> {
    let registry = &ctx.state.environments;
    let resolve = |alias: &str| -> Result<Arc<Environment>, ToolError> {
        let environment = registry.get(alias.trim()).ok_or_else(|| {
            ToolError::InvalidArguments(format!(
                "invalid argument `environment`: unknown environment `{}`; use one of: {}{}",
                crate::identity::audit::cut(alias, 40),
                registry.aliases(),
                if def.fans_out {
                    " (or \"*\" for all of them)"
                } else {
                    ""
                }
            ))
        })?;
        allowed(ctx, environment)?;
        Ok(environment.clone())
    };
    let several = |aliases: Vec<&str>| -> Result<Selection, ToolError> {
        if !def.fans_out {
            return Err(ToolError::InvalidArguments(format!(
                "invalid argument `environment`: {} works on one environment at a time; give one alias ({}). \
                 list_problems, list_vulnerabilities, execute_dql, find_entity_by_name and get_environment_info \
                 take several",
                def.name,
                registry.aliases()
            )));
        }
        let mut list: Vec<Arc<Environment>> = Vec::new();
        for alias in aliases {
            let environment = resolve(alias)?;
            if !list.iter().any(|e| Arc::ptr_eq(e, &environment)) {
                list.push(environment);
            }
        }
        Ok(Selection::Many(list))
    };
    match requested {
        None | Some(Value::Null) => {
            let environment = registry.default_environment();
            if !follows_handle {
                allowed(ctx, environment)?;
            }
            Ok(Selection::One(environment.clone(), false))
        }
        Some(Value::String(s)) if s.trim() == "*" => {
            if !def.fans_out {
                return several(vec!["*"]);
            }
            Ok(Selection::Many(registry.allowed_for(&ctx.principal)?))
        }
        Some(Value::String(s)) if s.contains(',') => {
            several(s.split(',').filter(|a| !a.trim().is_empty()).collect())
        }
        Some(Value::String(s)) => Ok(Selection::One(resolve(&s)?, true)),
        Some(Value::Array(items)) => {
            let aliases: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
            match aliases {
                Some(aliases) if aliases.len() == 1 => {
                    Ok(Selection::One(resolve(aliases[0])?, true))
                }
                Some(aliases) if !aliases.is_empty() => several(aliases),
                _ => Err(ToolError::InvalidArguments(format!(
                    "invalid argument `environment`: expected an alias ({}) or a non-empty list of aliases",
                    registry.aliases()
                ))),
            }
        }
        Some(_) => Err(ToolError::InvalidArguments(format!(
            "invalid argument `environment`: expected an alias as a string ({})",
            registry.aliases()
        ))),
    }
}

/// Refuses an environment the caller's scopes do not include.
fn allowed(ctx: &ToolContext, environment: &Environment) -> Result<(), ToolError> {
    if environment.allows(&ctx.principal) {
        return Ok(());
    }
    let others: Vec<String> = ctx
        .state
        .environments
        .allowed_for(&ctx.principal)
        .unwrap_or_default()
        .iter()
        .map(|e| e.alias.clone())
        .collect();
    Err(ToolError::Refused(format!(
        "your credential does not allow the environment `{}` (it needs the scope {}), so nothing was done; {}",
        environment.alias,
        environment.scope.as_deref().unwrap_or_default(),
        if others.is_empty() {
            "ask the operator for that scope".to_string()
        } else {
            format!(
                "you may use {}, or ask the operator for that scope",
                others.join(", ")
            )
        }
    )))
}

/// One environment's part of a fan-out.
struct Part {
    environment: Arc<Environment>,
    record: Arc<CallRecord>,
    outcome: Result<ToolOutput, ToolError>,
    elapsed: Duration,
}

async fn fan_out(
    def: &ToolDef,
    ctx: ToolContext,
    args: JsonObject,
    environments: Vec<Arc<Environment>>,
) -> Result<ToolOutput, ToolError> {
    // The parts leave the request time for merging and sending the answer.
    let deadline = ctx.deadline.leaving_room_to_answer();
    // Each part gets its share of the result budget, for its text and its structured content, so the
    // merged answer fits the budget without cutting whole environments out of it.
    // (Less what labels each part in the merged structure: its alias, status and time.)
    let n = environments.len();
    let share = (ctx.result_budget.saturating_sub(256 + 128 * n) / n).max(256);
    // A part stops at the request's own deadline at the latest: its tool aims at `deadline`, and
    // the margin lets what it does after its answer (counting the bytes Grail scanned) finish.
    let hard_stop = ctx.deadline;
    let parts = environments.iter().map(|environment| {
        let mut part = ctx.in_environment(environment.clone(), true);
        part.deadline = deadline;
        part.result_budget = share;
        part.record = Arc::default();
        let args = args.clone();
        async move {
            let started = Instant::now();
            let outcome =
                match tokio::time::timeout_at(hard_stop.instant(), def.call(part.clone(), args))
                    .await
                {
                    Ok(outcome) => outcome,
                    Err(_) => Err(ToolError::Refused(format!(
                        "no answer within the {:.1} s this request had left; ask this environment alone, \
                         or with a shorter timeframe",
                        started.elapsed().as_secs_f64()
                    ))),
                };
            Part {
                environment: environment.clone(),
                record: part.record,
                outcome,
                elapsed: started.elapsed(),
            }
        }
    });
    let parts = futures::future::join_all(parts).await;
    merge(def, &ctx, parts, share)
}

fn merge(
    def: &ToolDef,
    ctx: &ToolContext,
    parts: Vec<Part>,
    share: usize,
) -> Result<ToolOutput, ToolError> {
    let failed = parts.iter().filter(|p| p.outcome.is_err()).count();
    let aliases: Vec<&str> = parts.iter().map(|p| p.environment.alias.as_str()).collect();
    let mut text = format!(
        "{} from {} environments ({}): {} answered{}.\n",
        def.name,
        parts.len(),
        aliases.join(", "),
        parts.len() - failed,
        if failed > 0 {
            format!(", {failed} failed (reported below)")
        } else {
            String::new()
        }
    );
    let mut entries = Vec::with_capacity(parts.len());
    for part in &parts {
        let alias = &part.environment.alias;
        ctx.record.absorb(alias, &part.record);
        let label = match &part.environment.description {
            Some(d) => format!("{alias} ({d})"),
            None => alias.clone(),
        };
        let elapsed_ms = part.elapsed.as_millis() as u64;
        match &part.outcome {
            Ok(output) => {
                text.push_str(&format!("\n=== environment {label} ===\n{}\n", output.text));
                let mut entry =
                    json!({"environment": alias, "status": "ok", "elapsedMs": elapsed_ms});
                if let Some(structured) = &output.structured {
                    let mut structured = structured.clone();
                    // As for a whole answer: the part's text and structured content share its share.
                    let room = share
                        .saturating_sub(crate::tools::format::escaped_len(&output.text))
                        .max(share / 2);
                    if let Some(note) = crate::tools::format::fit_structured(&mut structured, room)
                    {
                        text.push_str(&note);
                        text.push('\n');
                    }
                    entry["result"] = structured;
                }
                entries.push(entry);
            }
            Err(error) => {
                let message = crate::tools::format::truncate_utf8(
                    &super::errors::message(def.name, error),
                    share,
                );
                text.push_str(&format!(
                    "\n=== environment {label}: FAILED ===\n{message}\n"
                ));
                entries.push(json!({
                    "environment": alias,
                    "status": "error",
                    "error": message,
                    "elapsedMs": elapsed_ms
                }));
            }
        }
    }
    if failed == parts.len() {
        return Err(ToolError::Refused(text));
    }
    let structured = json!({ "environments": entries });
    Ok(ToolOutput {
        text,
        structured: def.output_schema.as_ref().map(|_| structured),
    })
}
