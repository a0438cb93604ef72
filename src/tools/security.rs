//! `list_vulnerabilities`: open, unmuted vulnerabilities from Grail's `security.events`.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::dql::{budget_note, run_statement};
use super::format::lenient_u32;
use super::problems::{bounded, parse_filter, parse_timeframe};
use super::{
    Annotations, Listing, ToolContext, ToolDef, ToolError, ToolOutput, list_field, num_field,
    text_field,
};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Minimum Davis risk score, 0-10 (default 8.0).
    #[serde(default, rename = "riskScore", deserialize_with = "lenient_f64")]
    #[schemars(range(min = 0.0, max = 10.0))]
    pub risk_score: Option<f64>,
    /// An extra DQL filter expression on vulnerability fields, e.g. `vulnerability.risk.level == "CRITICAL"`.
    /// No pipes or line breaks.
    #[serde(default, rename = "additionalFilter")]
    pub additional_filter: Option<String>,
    /// How many vulnerabilities to return, highest risk first (1-1000, default 25).
    #[serde(
        default,
        rename = "maxVulnerabilitiesToDisplay",
        deserialize_with = "lenient_u32"
    )]
    #[schemars(range(min = 1, max = 1000))]
    pub max_vulnerabilities_to_display: Option<u32>,
    /// How far back to look for state reports (default 30d).
    #[serde(default)]
    pub timeframe: Option<String>,
}

fn lenient_f64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("expected a number, got \"{s}\""))),
        Some(other) => Err(D::Error::custom(format!("expected a number, got {other}"))),
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Vulnerability {
    pub id: Option<String>,
    pub display_id: Option<String>,
    pub title: Option<String>,
    pub risk_score: Option<f64>,
    pub risk_level: Option<String>,
    pub cves: Vec<String>,
    pub affected_entity_id: Option<String>,
    pub affected_entity_name: Option<String>,
    pub link: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    pub vulnerabilities: Vec<Vulnerability>,
    pub has_more: bool,
}

pub fn list_vulnerabilities_definition() -> ToolDef {
    ToolDef::new::<Params, _, _>(
        "list_vulnerabilities",
        "List Vulnerabilities",
        "List open, unmuted vulnerabilities (Dynatrace Runtime Vulnerability Analytics) at or above a risk score, \
         highest risk first, with the affected entity.",
        Annotations::READ,
        run,
    )
    .with_output::<Output>()
}

async fn run(ctx: ToolContext, params: Params) -> Result<ToolOutput, ToolError> {
    let score = params.risk_score.unwrap_or(8.0);
    if !(0.0..=10.0).contains(&score) {
        return Err(ToolError::InvalidArguments(format!(
            "riskScore must be between 0 and 10, got {score}"
        )));
    }
    let timeframe = parse_timeframe(params.timeframe.as_deref(), "30d")?;
    let filter = parse_filter(params.additional_filter.as_deref())?;
    let max = bounded(
        params.max_vulnerabilities_to_display,
        25,
        1000,
        "maxVulnerabilitiesToDisplay",
    )?;
    let mut dql = format!(
        "fetch security.events, from: now()-{timeframe}, to: now()\n\
         | filter event.provider == \"Dynatrace\" and event.type == \"VULNERABILITY_STATE_REPORT_EVENT\" and event.level == \"ENTITY\"\n\
         | dedup {{vulnerability.display_id, affected_entity.id}}, sort: {{timestamp desc}}\n\
         | filter vulnerability.resolution.status == \"OPEN\"\n\
         | filter vulnerability.mute.status != \"MUTED\" and vulnerability.parent.mute.status != \"MUTED\"\n\
         | filter vulnerability.risk.score >= {score:.1}"
    );
    if let Some(filter) = &filter {
        dql.push_str(&format!("\n| filter {}", filter.as_str()));
    }
    dql.push_str(&format!(
        "\n| sort vulnerability.risk.score desc\n| limit {}\n| fields vulnerability.id, vulnerability.display_id, vulnerability.title, vulnerability.risk.score, vulnerability.risk.level, vulnerability.references.cve, affected_entity.id, affected_entity.name",
        max + 1
    ));
    let result = run_statement(&ctx, dql, u64::from(max) + 1, 2_000_000).await?;
    let has_more = result.records.len() > max as usize;
    let base = ctx.dynatrace.environment().base().to_string();
    let vulnerabilities: Vec<Vulnerability> = result
        .records
        .iter()
        .take(max as usize)
        .map(|r| {
            let id = text_field(r, "vulnerability.id");
            Vulnerability {
                link: id.as_deref().map(|id| {
                    format!(
                        "{base}/ui/apps/dynatrace.security.vulnerabilities/vulnerabilities/{id}"
                    )
                }),
                id,
                display_id: text_field(r, "vulnerability.display_id"),
                title: text_field(r, "vulnerability.title"),
                risk_score: num_field(r, "vulnerability.risk.score"),
                risk_level: text_field(r, "vulnerability.risk.level"),
                cves: list_field(r, "vulnerability.references.cve"),
                affected_entity_id: text_field(r, "affected_entity.id"),
                affected_entity_name: text_field(r, "affected_entity.name"),
            }
        })
        .collect();
    if vulnerabilities.is_empty() {
        return Ok(ToolOutput::text(format!(
            "No open, unmuted vulnerabilities with a risk score of {score:.1} or more were reported in the last {timeframe}."
        ))
        .with_structured(&Output { vulnerabilities, has_more }));
    }
    let mut listing = Listing::new(
        format!(
            "{} open vulnerabilit{} with risk score >= {score:.1} (last {timeframe}){}:\n",
            vulnerabilities.len(),
            if vulnerabilities.len() == 1 {
                "y"
            } else {
                "ies"
            },
            if has_more { ", more matched" } else { "" }
        ),
        ctx.result_budget / 2,
    );
    for v in &vulnerabilities {
        let cves = if v.cves.is_empty() {
            String::new()
        } else {
            format!(" [{}]", v.cves.join(", "))
        };
        listing.push(&format!(
            "- {} {}{cves}\n  risk {} {}, affects {} ({})\n",
            v.display_id.as_deref().unwrap_or("?"),
            v.title.as_deref().unwrap_or("(no title)"),
            v.risk_score
                .map(|s| format!("{s:.1}"))
                .unwrap_or_else(|| "?".into()),
            v.risk_level.as_deref().unwrap_or(""),
            v.affected_entity_name.as_deref().unwrap_or("?"),
            v.affected_entity_id.as_deref().unwrap_or("?"),
        ));
    }
    let mut text = listing.finish("raise riskScore or add an additionalFilter");
    if let Some(note) = budget_note(&ctx) {
        text.push('\n');
        text.push_str(&note);
    }
    Ok(ToolOutput::text(text).with_structured(&Output {
        vulnerabilities,
        has_more,
    }))
}
