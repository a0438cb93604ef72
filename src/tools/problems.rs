//! `list_problems` and `get_problem_details`: Davis problems from Grail (`dt.davis.problems`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::dql::{budget_note, run_statement};
use super::entities::{EntityRef, resolve_names};
use super::format::lenient_u32;
use super::{
    Annotations, Listing, ToolContext, ToolDef, ToolError, ToolOutput, list_field, num_field,
    text_field,
};
use crate::dynatrace::dql::{FilterFragment, Timeframe, string_literal};

/// Which problems to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum ProblemStatus {
    /// Open problems only.
    #[serde(
        rename = "ACTIVE",
        alias = "active",
        alias = "Active",
        alias = "OPEN",
        alias = "open"
    )]
    Active,
    /// Closed problems only.
    #[serde(rename = "CLOSED", alias = "closed", alias = "Closed")]
    Closed,
    /// Both (the default).
    #[default]
    #[serde(rename = "ALL", alias = "all", alias = "All")]
    All,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// How far back to look: a whole number and one unit of s, m, h, d, w, M, y (default 24h).
    #[serde(default)]
    pub timeframe: Option<String>,
    /// ACTIVE, CLOSED or ALL (default ALL).
    #[serde(default)]
    pub status: Option<ProblemStatus>,
    /// An extra DQL filter expression on problem fields, e.g. `event.category == "ERROR"` or
    /// `in(root_cause_entity_id, {"SERVICE-0B3E2C2F7E1F5A01"})`. No pipes or line breaks.
    #[serde(default, rename = "additionalFilter")]
    pub additional_filter: Option<String>,
    /// How many problems to return, newest first (1-5000, default 10).
    #[serde(
        default,
        rename = "maxProblemsToDisplay",
        deserialize_with = "lenient_u32"
    )]
    #[schemars(range(min = 1, max = 5000))]
    pub max_problems_to_display: Option<u32>,
}

/// One problem, as listed.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProblemSummary {
    /// Short id shown in the UI (P-…).
    pub display_id: Option<String>,
    /// The problem's event id, for get_problem_details.
    pub problem_id: Option<String>,
    pub name: Option<String>,
    /// ACTIVE or CLOSED.
    pub status: Option<String>,
    /// AVAILABILITY, ERROR, SLOWDOWN, RESOURCE_CONTENTION, CUSTOM_ALERT, …
    pub category: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub root_cause_entity_id: Option<String>,
    pub root_cause_entity_name: Option<String>,
    pub affected_entity_ids: Vec<String>,
    pub affected_users: Option<u64>,
    /// The problem in the Dynatrace UI.
    pub link: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListOutput {
    pub problems: Vec<ProblemSummary>,
    /// Whether more problems matched than were returned.
    pub has_more: bool,
}

pub fn list_definition() -> ToolDef {
    ToolDef::new::<ListParams, _, _>(
        "list_problems",
        "List Problems",
        "List Davis problems (availability, error, slowdown, resource problems) of the last timeframe, newest first, \
         with status, category, root cause and impact. Use get_problem_details for one problem's evidence.",
        Annotations::READ,
        run_list,
    )
    .with_output::<ListOutput>()
}

const PROBLEM_FIELDS: &str = "display_id, event.id, event.name, event.status, event.category, event.start, event.end, \
     root_cause_entity_id, root_cause_entity_name, affected_entity_ids, dt.davis.affected_users_count, affected_users_count";

fn list_query(
    timeframe: &Timeframe,
    status: ProblemStatus,
    filter: Option<&FilterFragment>,
    limit: u32,
) -> String {
    let mut dql = format!(
        "fetch dt.davis.problems, from: now()-{timeframe}, to: now()\n| filter isNull(dt.davis.is_duplicate) or not(dt.davis.is_duplicate)"
    );
    match status {
        ProblemStatus::Active => dql.push_str("\n| filter event.status == \"ACTIVE\""),
        ProblemStatus::Closed => dql.push_str("\n| filter event.status == \"CLOSED\""),
        ProblemStatus::All => {}
    }
    if let Some(filter) = filter {
        dql.push_str(&format!("\n| filter {}", filter.as_str()));
    }
    dql.push_str(&format!(
        "\n| sort event.start desc\n| limit {}\n| fields {PROBLEM_FIELDS}",
        limit + 1
    ));
    dql
}

fn problem_link(ctx: &ToolContext, id: &str) -> String {
    format!(
        "{}/ui/apps/dynatrace.davis.problems/problem/{id}",
        ctx.dynatrace.environment().base()
    )
}

fn summary(ctx: &ToolContext, record: &Value) -> ProblemSummary {
    let problem_id = text_field(record, "event.id");
    ProblemSummary {
        display_id: text_field(record, "display_id"),
        link: problem_id.as_deref().map(|id| problem_link(ctx, id)),
        problem_id,
        name: text_field(record, "event.name"),
        status: text_field(record, "event.status"),
        category: text_field(record, "event.category"),
        start: text_field(record, "event.start"),
        end: text_field(record, "event.end"),
        root_cause_entity_id: text_field(record, "root_cause_entity_id"),
        root_cause_entity_name: text_field(record, "root_cause_entity_name"),
        affected_entity_ids: list_field(record, "affected_entity_ids"),
        affected_users: num_field(record, "dt.davis.affected_users_count")
            .or_else(|| num_field(record, "affected_users_count"))
            .map(|n| n as u64),
    }
}

pub(crate) fn parse_timeframe(raw: Option<&str>, default: &str) -> Result<Timeframe, ToolError> {
    Timeframe::parse(raw.unwrap_or(default)).map_err(ToolError::InvalidArguments)
}

pub(crate) fn parse_filter(raw: Option<&str>) -> Result<Option<FilterFragment>, ToolError> {
    raw.map(FilterFragment::parse)
        .transpose()
        .map_err(ToolError::InvalidArguments)
}

pub(crate) fn bounded(
    value: Option<u32>,
    default: u32,
    max: u32,
    name: &str,
) -> Result<u32, ToolError> {
    let value = value.unwrap_or(default);
    if value == 0 || value > max {
        return Err(ToolError::InvalidArguments(format!(
            "{name} must be between 1 and {max}, got {value}"
        )));
    }
    Ok(value)
}

async fn run_list(ctx: ToolContext, params: ListParams) -> Result<ToolOutput, ToolError> {
    let timeframe = parse_timeframe(params.timeframe.as_deref(), "24h")?;
    let filter = parse_filter(params.additional_filter.as_deref())?;
    let max = bounded(
        params.max_problems_to_display,
        10,
        5000,
        "maxProblemsToDisplay",
    )?;
    let status = params.status.unwrap_or_default();
    let result = run_statement(
        &ctx,
        list_query(&timeframe, status, filter.as_ref(), max),
        u64::from(max) + 1,
        5_000_000,
    )
    .await?;
    let has_more = result.records.len() > max as usize;
    let problems: Vec<ProblemSummary> = result
        .records
        .iter()
        .take(max as usize)
        .map(|r| summary(&ctx, r))
        .collect();
    if problems.is_empty() {
        let output = ListOutput { problems, has_more };
        return Ok(ToolOutput::text(format!(
            "No {}problems in the last {timeframe}.",
            match status {
                ProblemStatus::Active => "active ",
                ProblemStatus::Closed => "closed ",
                ProblemStatus::All => "",
            }
        ))
        .with_structured(&output));
    }
    let mut listing = Listing::new(
        format!(
            "{} problem{} in the last {timeframe}{}, newest first:\n",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            if has_more {
                " (more matched: raise maxProblemsToDisplay)"
            } else {
                ""
            }
        ),
        ctx.result_budget / 2,
    );
    for p in &problems {
        let mut line = format!(
            "- {} {} {}: {}\n",
            p.display_id.as_deref().unwrap_or("?"),
            p.status.as_deref().unwrap_or("?"),
            p.category.as_deref().unwrap_or("?"),
            p.name.as_deref().unwrap_or("(no name)")
        );
        let mut facts = Vec::new();
        if let Some(start) = &p.start {
            facts.push(format!("started {start}"));
        }
        if let Some(end) = &p.end {
            facts.push(format!("closed {end}"));
        }
        if let Some(root) = &p.root_cause_entity_name {
            facts.push(format!(
                "root cause {root}{}",
                p.root_cause_entity_id
                    .as_deref()
                    .map(|id| format!(" ({id})"))
                    .unwrap_or_default()
            ));
        }
        facts.push(format!("{} affected entities", p.affected_entity_ids.len()));
        if let Some(users) = p.affected_users {
            facts.push(format!("{users} affected users"));
        }
        line.push_str(&format!("  {}\n", facts.join(", ")));
        if let Some(id) = &p.problem_id {
            line.push_str(&format!("  problemId {id}\n"));
        }
        listing.push(&line);
    }
    let mut text = listing.finish("lower maxProblemsToDisplay or filter with additionalFilter");
    text.push_str("Next: get_problem_details with a problemId (or display id) for root cause, affected entities and evidence.");
    if let Some(note) = budget_note(&ctx) {
        text.push('\n');
        text.push_str(&note);
    }
    Ok(ToolOutput::text(text).with_structured(&ListOutput { problems, has_more }))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetailsParams {
    /// The problem's id (`event.id`, from list_problems) or its display id such as P-24113120.
    #[serde(rename = "problemId")]
    pub problem_id: String,
    /// How far back to look for it (default 30d).
    #[serde(default)]
    pub timeframe: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DetailsOutput {
    pub problem: ProblemSummary,
    pub description: Option<String>,
    /// The root-cause entity and the affected entities with their names and types.
    pub root_cause_entity: Option<EntityRef>,
    pub affected_entities: Vec<EntityRef>,
    /// The Davis events that are this problem's evidence.
    pub evidence: Vec<Value>,
    /// Every field of the problem record, as Grail returned it.
    pub record: Value,
}

pub fn details_definition() -> ToolDef {
    ToolDef::new::<DetailsParams, _, _>(
        "get_problem_details",
        "Get Problem Details",
        "Get one Davis problem by id or display id (P-…): status, timing, root-cause entity, affected entities \
         with names, the evidence events and a link to the problem in Dynatrace.",
        Annotations::READ,
        run_details,
    )
    .with_output::<DetailsOutput>()
}

async fn run_details(ctx: ToolContext, params: DetailsParams) -> Result<ToolOutput, ToolError> {
    let id = params.problem_id.trim();
    if id.is_empty() {
        return Err(ToolError::InvalidArguments(
            "problemId is empty: give a problem id or display id (P-…) from list_problems".into(),
        ));
    }
    let timeframe = parse_timeframe(params.timeframe.as_deref(), "30d")?;
    let literal = string_literal(id);
    let dql = format!(
        "fetch dt.davis.problems, from: now()-{timeframe}, to: now()\n| filter event.id == {literal} or display_id == {literal}\n| sort timestamp desc\n| limit 1"
    );
    let result = run_statement(&ctx, dql, 1, 1_000_000).await?;
    let Some(record) = result.records.into_iter().next() else {
        return Err(ToolError::Refused(format!(
            "no problem with id or display id `{id}` in the last {timeframe}: check the id with list_problems, or widen timeframe"
        )));
    };
    let problem = summary(&ctx, &record);

    let mut ids = problem.affected_entity_ids.clone();
    if let Some(root) = &problem.root_cause_entity_id
        && !ids.contains(root)
    {
        ids.push(root.clone());
    }
    let names = resolve_names(&ctx, &ids).await?;
    let find = |id: &str| {
        names
            .iter()
            .find(|e| e.id == id)
            .cloned()
            .unwrap_or(EntityRef {
                id: id.to_string(),
                name: None,
                kind: None,
            })
    };
    let affected_entities: Vec<EntityRef> = problem
        .affected_entity_ids
        .iter()
        .map(|id| find(id))
        .collect();
    let root_cause_entity = problem.root_cause_entity_id.as_deref().map(find);

    let event_ids = list_field(&record, "dt.davis.event_ids");
    let evidence = if event_ids.is_empty() {
        Vec::new()
    } else {
        let list = event_ids
            .iter()
            .take(50)
            .map(|e| string_literal(e))
            .collect::<Vec<_>>()
            .join(", ");
        let dql = format!(
            "fetch events, from: now()-{timeframe}, to: now()\n| filter in(event.id, {{{list}}})\n| sort timestamp asc\n| limit 50\n| fields timestamp, event.id, event.name, event.type, event.kind, event.status, event.start, event.end, dt.entity.service, dt.entity.host, k8s.namespace.name, k8s.pod.name"
        );
        run_statement(&ctx, dql, 50, 1_000_000).await?.records
    };

    let mut text = format!(
        "Problem {} ({}): {}\nStatus {}, category {}, started {}{}.\n",
        problem.display_id.as_deref().unwrap_or("?"),
        problem.problem_id.as_deref().unwrap_or("?"),
        problem.name.as_deref().unwrap_or("(no name)"),
        problem.status.as_deref().unwrap_or("?"),
        problem.category.as_deref().unwrap_or("?"),
        problem.start.as_deref().unwrap_or("?"),
        problem
            .end
            .as_deref()
            .map(|e| format!(", closed {e}"))
            .unwrap_or_default(),
    );
    let description = text_field(&record, "event.description");
    if let Some(d) = &description {
        text.push_str(&format!("Description: {d}\n"));
    }
    if let Some(root) = &root_cause_entity {
        text.push_str(&format!("Root cause: {}\n", root.label()));
    }
    if !affected_entities.is_empty() {
        text.push_str("Affected entities:\n");
        for e in &affected_entities {
            text.push_str(&format!("- {}\n", e.label()));
        }
    }
    if let Some(users) = problem.affected_users {
        text.push_str(&format!("Affected users: {users}\n"));
    }
    if evidence.is_empty() {
        text.push_str("No evidence events are linked to this problem.\n");
    } else {
        text.push_str(&format!("Evidence ({} events):\n", evidence.len()));
        for e in evidence.iter().take(20) {
            text.push_str(&format!(
                "- {} {} ({})\n",
                text_field(e, "timestamp").unwrap_or_default(),
                text_field(e, "event.name").unwrap_or_default(),
                text_field(e, "event.type").unwrap_or_default()
            ));
        }
    }
    if let Some(link) = &problem.link {
        text.push_str(&format!("Open in Dynatrace: {link}\n"));
    }
    text.push_str(
        "Next: execute_dql on logs or spans of the root-cause entity around the start time.",
    );
    let output = DetailsOutput {
        problem,
        description,
        root_cause_entity,
        affected_entities,
        evidence,
        record,
    };
    Ok(ToolOutput::text(text).with_structured(&output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_query_applies_status_filter_and_limit() {
        let tf = Timeframe::parse("2h").unwrap();
        let filter = FilterFragment::parse("event.category == \"ERROR\"").unwrap();
        let q = list_query(&tf, ProblemStatus::Active, Some(&filter), 5);
        assert!(q.starts_with("fetch dt.davis.problems, from: now()-2h, to: now()"));
        assert!(q.contains("| filter event.status == \"ACTIVE\""));
        assert!(q.contains("| filter event.category == \"ERROR\""));
        assert!(q.contains("| limit 6"));
    }

    #[test]
    fn status_accepts_the_go_servers_spellings() {
        for (raw, expected) in [
            ("\"ACTIVE\"", ProblemStatus::Active),
            ("\"closed\"", ProblemStatus::Closed),
            ("\"ALL\"", ProblemStatus::All),
        ] {
            assert_eq!(
                serde_json::from_str::<ProblemStatus>(raw).unwrap(),
                expected
            );
        }
        assert!(serde_json::from_str::<ProblemStatus>("\"OPENED\"").is_err());
    }
}
