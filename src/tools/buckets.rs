//! Grail buckets: `list_buckets` (from `dt.system.buckets`) and `describe_bucket` (a sample of a
//! bucket's records with each field's type and example values).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::dql::{budget_note, run_statement};
use super::format::{human_bytes, lenient_u32, truncate_utf8};
use super::problems::{bounded, parse_timeframe};
use super::{
    Annotations, Listing, ToolContext, ToolDef, ToolError, ToolOutput, num_field, text_field,
};
use crate::dynatrace::dql::string_literal;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Also list Dynatrace's built-in system buckets (names starting with dt_ or dt.); default false.
    #[serde(default, rename = "includeSystem")]
    pub include_system: Option<bool>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    pub name: String,
    pub display_name: Option<String>,
    /// The table (data object) the bucket belongs to: logs, events, spans, bizevents…
    pub table: Option<String>,
    pub status: Option<String>,
    pub retention_days: Option<u64>,
    pub estimated_uncompressed_bytes: Option<u64>,
    pub records: Option<u64>,
    pub system: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListOutput {
    pub buckets: Vec<Bucket>,
}

pub fn list_definition() -> ToolDef {
    ToolDef::new::<ListParams, _, _>(
        "list_buckets",
        "List Buckets",
        "List the Grail buckets of this environment with their table (logs, events, spans, …), retention, size and \
         record count. describe_bucket shows a bucket's fields.",
        Annotations::READ,
        run_list,
    )
    .with_output::<ListOutput>()
}

fn is_system(name: &str) -> bool {
    name.starts_with("dt_") || name.starts_with("dt.")
}

async fn run_list(ctx: ToolContext, params: ListParams) -> Result<ToolOutput, ToolError> {
    let include_system = params.include_system.unwrap_or(false);
    let dql = "fetch dt.system.buckets\n| fields name, display_name, table, status, retention_days, estimated_uncompressed_bytes, records\n| sort name asc\n| limit 1000".to_string();
    let result = run_statement(&ctx, dql, 1000, 2_000_000).await?;
    let buckets: Vec<Bucket> = result
        .records
        .iter()
        .filter_map(|r| {
            let name = text_field(r, "name")?;
            Some(Bucket {
                system: is_system(&name),
                display_name: text_field(r, "display_name"),
                table: text_field(r, "table"),
                status: text_field(r, "status"),
                retention_days: num_field(r, "retention_days").map(|n| n as u64),
                estimated_uncompressed_bytes: num_field(r, "estimated_uncompressed_bytes")
                    .map(|n| n as u64),
                records: num_field(r, "records").map(|n| n as u64),
                name,
            })
        })
        .filter(|b| include_system || !b.system)
        .collect();
    if buckets.is_empty() {
        return Ok(ToolOutput::text("No buckets found.".to_string())
            .with_structured(&ListOutput { buckets }));
    }
    let mut by_table: BTreeMap<&str, Vec<&Bucket>> = BTreeMap::new();
    for b in &buckets {
        by_table
            .entry(b.table.as_deref().unwrap_or("(unknown table)"))
            .or_default()
            .push(b);
    }
    let mut listing = Listing::new(
        format!(
            "{} buckets{}:\n",
            buckets.len(),
            if include_system {
                ""
            } else {
                " (system buckets hidden: includeSystem shows them)"
            }
        ),
        ctx.result_budget / 2,
    );
    for (table, list) in by_table {
        let mut block = format!("{table}:\n");
        for b in list {
            let mut facts = Vec::new();
            if let Some(days) = b.retention_days {
                facts.push(format!("retention {days} d"));
            }
            if let Some(bytes) = b.estimated_uncompressed_bytes {
                facts.push(human_bytes(bytes));
            }
            if let Some(records) = b.records {
                facts.push(format!("{records} records"));
            }
            if let Some(status) = &b.status {
                facts.push(status.clone());
            }
            block.push_str(&format!(
                "- {}{}: {}\n",
                b.name,
                b.display_name
                    .as_deref()
                    .filter(|d| *d != b.name)
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default(),
                facts.join(", ")
            ));
        }
        listing.push(&block);
    }
    let mut text = listing.finish("use describe_bucket for one bucket");
    text.push_str(
        "Query a bucket's records with `fetch <table> | filter dt.system.bucket == \"<bucket>\"`.",
    );
    Ok(ToolOutput::text(text).with_structured(&ListOutput { buckets }))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DescribeParams {
    /// A bucket name from list_buckets (e.g. default_logs), or a table name (logs, events, spans, bizevents…).
    pub bucket: String,
    /// How many recent records to sample (1-500, default 100).
    #[serde(default, rename = "sampleSize", deserialize_with = "lenient_u32")]
    #[schemars(range(min = 1, max = 500))]
    pub sample_size: Option<u32>,
    /// How far back to sample (default 1h).
    #[serde(default)]
    pub timeframe: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldInfo {
    pub name: String,
    /// Grail's type for the field (string, long, double, timestamp, array, record, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// In how many sampled records the field is set.
    pub present: usize,
    /// Up to three example values, shortened.
    pub examples: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeOutput {
    pub bucket: String,
    pub table: String,
    pub sampled_records: usize,
    pub fields: Vec<FieldInfo>,
}

pub fn describe_definition() -> ToolDef {
    ToolDef::new::<DescribeParams, _, _>(
        "describe_bucket",
        "Describe Bucket",
        "Describe a Grail bucket (or table) from a sample of its recent records: every field with its type, how \
         often it is set and example values, plus queries to start from.",
        Annotations::READ,
        run_describe,
    )
    .with_output::<DescribeOutput>()
}

const TABLES: &[&str] = &[
    "logs",
    "events",
    "spans",
    "bizevents",
    "security.events",
    "user.events",
    "user.sessions",
    "dt.davis.problems",
    "dt.davis.events",
    "dt.system.events",
];

fn table_name_ok(table: &str) -> bool {
    !table.is_empty()
        && table.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && table
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
}

async fn run_describe(ctx: ToolContext, params: DescribeParams) -> Result<ToolOutput, ToolError> {
    let bucket = params.bucket.trim().to_string();
    if bucket.is_empty() {
        return Err(ToolError::InvalidArguments(
            "bucket is empty: give a bucket name from list_buckets, or a table such as logs".into(),
        ));
    }
    let sample = bounded(params.sample_size, 100, 500, "sampleSize")?;
    let timeframe = parse_timeframe(params.timeframe.as_deref(), "1h")?;
    let lookup = format!(
        "fetch dt.system.buckets\n| filter name == {}\n| fields name, table\n| limit 1",
        string_literal(&bucket)
    );
    let found = run_statement(&ctx, lookup, 1, 100_000).await?;
    let (table, bucket_filter) = match found.records.first().and_then(|r| text_field(r, "table")) {
        Some(table) => (table, Some(bucket.clone())),
        None if TABLES.contains(&bucket.as_str()) => (bucket.clone(), None),
        None => {
            return Err(ToolError::Refused(format!(
                "there is no bucket named `{bucket}`: list_buckets shows the bucket names (or give a table such as logs, events, spans)"
            )));
        }
    };
    if !table_name_ok(&table) {
        return Err(ToolError::Refused(format!(
            "the bucket's table `{table}` cannot be queried by name"
        )));
    }
    let mut dql = format!("fetch {table}, from: now()-{timeframe}, to: now()");
    if let Some(name) = &bucket_filter {
        dql.push_str(&format!(
            "\n| filter dt.system.bucket == {}",
            string_literal(name)
        ));
    }
    dql.push_str(&format!("\n| limit {sample}"));
    let result = run_statement(&ctx, dql, u64::from(sample), 2_000_000).await?;

    let mut types: BTreeMap<String, String> = BTreeMap::new();
    for entry in &result.types {
        if let Some(Value::Object(mappings)) = entry.get("mappings") {
            for (field, t) in mappings {
                if let Some(kind) = t.get("type").and_then(Value::as_str) {
                    types
                        .entry(field.clone())
                        .or_insert_with(|| kind.to_string());
                }
            }
        }
    }
    let mut fields: BTreeMap<String, FieldInfo> = BTreeMap::new();
    for record in &result.records {
        let Value::Object(map) = record else { continue };
        for (name, value) in map {
            let info = fields.entry(name.clone()).or_insert_with(|| FieldInfo {
                name: name.clone(),
                kind: types
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| json_kind(value).to_string()),
                present: 0,
                examples: Vec::new(),
            });
            if value.is_null() {
                continue;
            }
            info.present += 1;
            let shown = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let shown = if shown.chars().count() > 60 {
                format!("{}…", truncate_utf8(&shown, 57))
            } else {
                shown
            };
            if info.examples.len() < 3 && !info.examples.contains(&shown) {
                info.examples.push(shown);
            }
        }
    }
    let mut fields: Vec<FieldInfo> = fields.into_values().collect();
    // Most often set first, then by name: deterministic.
    fields.sort_by(|a, b| b.present.cmp(&a.present).then(a.name.cmp(&b.name)));
    let sampled = result.records.len();
    if sampled == 0 {
        return Ok(ToolOutput::text(format!(
            "No records in `{bucket}` (table {table}) in the last {timeframe}: try a longer timeframe."
        ))
        .with_structured(&DescribeOutput { bucket, table, sampled_records: 0, fields }));
    }
    let mut listing = Listing::new(
        format!(
            "Bucket `{bucket}` (table {table}): {} fields in {sampled} records from the last {timeframe}:\n",
            fields.len()
        ),
        ctx.result_budget / 2,
    );
    for f in &fields {
        listing.push(&format!(
            "- {} ({}, set in {}/{sampled}): {}\n",
            f.name,
            f.kind,
            f.present,
            f.examples
                .iter()
                .map(|e| format!("`{}`", e.replace('`', "'")))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut text = listing.finish("sample fewer records");
    let filter = bucket_filter
        .as_ref()
        .map(|b| format!(" | filter dt.system.bucket == {}", string_literal(b)))
        .unwrap_or_default();
    text.push_str(&format!(
        "Start from: `fetch {table}, from: now()-1h{filter} | limit 20`, or count by a field: `fetch {table}, from: now()-1h{filter} | summarize count(), by:{{<field>}}`."
    ));
    if let Some(note) = budget_note(&ctx) {
        text.push('\n');
        text.push_str(&note);
    }
    Ok(ToolOutput::text(text).with_structured(&DescribeOutput {
        bucket,
        table,
        sampled_records: sampled,
        fields,
    }))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "double",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "record",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        assert!(table_name_ok("logs"));
        assert!(table_name_ok("security.events"));
        assert!(!table_name_ok("logs | fetch x"));
        assert!(!table_name_ok("Logs"));
        assert!(!table_name_ok(""));
    }
}
