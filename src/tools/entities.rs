//! Entities: find by name, id → name, tags. Names and tags go through the Smartscape
//! (`smartscapeNodes`); ids resolve through the classic entity tables (`dt.entity.<type>`), whose
//! table follows from the id's prefix (`SERVICE-…` → `dt.entity.service`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::dql::{budget_note, run_statement};
use super::format::lenient_u32;
use super::problems::bounded;
use super::{
    Annotations, Listing, ToolContext, ToolDef, ToolError, ToolOutput, list_field, num_field,
    text_field,
};
use crate::dynatrace::dql::string_literal;

/// An entity id with its name and type, when known.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EntityRef {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl EntityRef {
    pub fn label(&self) -> String {
        match (&self.name, &self.kind) {
            (Some(name), Some(kind)) => format!("{name} ({kind}, {})", self.id),
            (Some(name), None) => format!("{name} ({})", self.id),
            _ => self.id.clone(),
        }
    }
}

/// The entity table of a classic entity id (`SERVICE-0B3E2C2F7E1F5A01` → `dt.entity.service`), or
/// `None` when the id does not have that form.
pub fn entity_table(id: &str) -> Option<String> {
    let (prefix, hex) = id.rsplit_once('-')?;
    let prefix_ok = !prefix.is_empty()
        && prefix.starts_with(|c: char| c.is_ascii_uppercase())
        && prefix
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    let hex_ok = hex.len() == 16 && hex.chars().all(|c| c.is_ascii_hexdigit());
    (prefix_ok && hex_ok).then(|| format!("dt.entity.{}", prefix.to_ascii_lowercase()))
}

/// Resolves entity ids to names with one query per entity table. Ids of no known form are
/// returned without a name.
pub(crate) async fn resolve_names(
    ctx: &ToolContext,
    ids: &[String],
) -> Result<Vec<EntityRef>, ToolError> {
    let mut by_table: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for id in ids {
        if let Some(table) = entity_table(id) {
            by_table.entry(table).or_default().push(id);
        }
    }
    let mut found = Vec::new();
    for (table, ids) in by_table {
        let list = ids
            .iter()
            .map(|id| string_literal(id))
            .collect::<Vec<_>>()
            .join(", ");
        let dql = format!(
            "fetch {table}\n| filter in(id, {{{list}}})\n| fields id, entity.name\n| limit {}",
            ids.len()
        );
        let result = match run_statement(ctx, dql, ids.len() as u64, 1_000_000).await {
            Ok(result) => result,
            // An entity type this environment does not have: leave those ids unnamed.
            Err(ToolError::Dynatrace(crate::dynatrace::DynatraceError::BadRequest { .. })) => {
                continue;
            }
            Err(e) => return Err(e),
        };
        let kind = table.trim_start_matches("dt.entity.").to_ascii_uppercase();
        for record in result.records {
            if let Some(id) = text_field(&record, "id") {
                found.push(EntityRef {
                    id,
                    name: text_field(&record, "entity.name"),
                    kind: Some(kind.clone()),
                });
            }
        }
    }
    Ok(ids
        .iter()
        .map(|id| {
            found
                .iter()
                .find(|e| &e.id == id)
                .cloned()
                .unwrap_or(EntityRef {
                    id: id.clone(),
                    name: None,
                    kind: None,
                })
        })
        .collect())
}

/// A Smartscape node type (`SERVICE`, `HOST`, `K8S_CLUSTER`…) or `*`.
fn node_type(raw: Option<&str>) -> Result<String, ToolError> {
    let raw = raw.map(str::trim).filter(|s| !s.is_empty()).unwrap_or("*");
    if raw == "*" || raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(raw.to_ascii_uppercase())
    } else {
        Err(ToolError::InvalidArguments(format!(
            "entityType `{raw}` is not a Smartscape node type: use a name such as SERVICE, HOST, PROCESS, K8S_CLUSTER, or * for all"
        )))
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindByNameParams {
    /// Names or parts of names to look for (1-20), e.g. ["payment", "checkout-service"].
    #[serde(rename = "entityNames")]
    pub entity_names: Vec<String>,
    /// How many entities to return (1-500, default 10).
    #[serde(
        default,
        rename = "maxEntitiesToDisplay",
        deserialize_with = "lenient_u32"
    )]
    #[schemars(range(min = 1, max = 500))]
    pub max_entities_to_display: Option<u32>,
    /// Also match the names case-insensitively and within tags (slower; default false).
    #[serde(default, rename = "extendedSearch")]
    pub extended_search: Option<bool>,
}

/// An entity found in the Smartscape.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FoundEntity {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub name: Option<String>,
    pub tags: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FoundOutput {
    pub entities: Vec<FoundEntity>,
    pub has_more: bool,
}

pub fn find_by_name_definition() -> ToolDef {
    ToolDef::new::<FindByNameParams, _, _>(
        "find_entity_by_name",
        "Find Entity By Name",
        "Find monitored entities (services, hosts, processes, Kubernetes objects…) whose name contains any of the \
         given texts; returns their ids, types and tags, for use in DQL filters.",
        Annotations::READ,
        run_find_by_name,
    )
    .with_output::<FoundOutput>()
}

fn found(record: &Value) -> Option<FoundEntity> {
    Some(FoundEntity {
        id: text_field(record, "id")?,
        kind: text_field(record, "type"),
        name: text_field(record, "name"),
        tags: list_field(record, "tags"),
    })
}

fn render_entities(entities: &[FoundEntity], budget: usize, header: String) -> String {
    let mut listing = Listing::new(header, budget);
    for e in entities {
        let mut line = format!(
            "- {} ({}) id {}\n",
            e.name.as_deref().unwrap_or("(no name)"),
            e.kind.as_deref().unwrap_or("?"),
            e.id
        );
        if !e.tags.is_empty() {
            line.push_str(&format!("  tags: {}\n", e.tags.join(", ")));
        }
        listing.push(&line);
    }
    listing.finish("ask for fewer entities or a narrower name")
}

async fn run_find_by_name(
    ctx: ToolContext,
    params: FindByNameParams,
) -> Result<ToolOutput, ToolError> {
    let names: Vec<String> = params
        .entity_names
        .iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() || names.len() > 20 {
        return Err(ToolError::InvalidArguments(
            "entityNames needs 1 to 20 non-empty names or parts of names, e.g. [\"payment\"]"
                .into(),
        ));
    }
    let max = bounded(
        params.max_entities_to_display,
        10,
        500,
        "maxEntitiesToDisplay",
    )?;
    let extended = params.extended_search.unwrap_or(false);
    let conditions = names
        .iter()
        .map(|n| {
            let literal = string_literal(n);
            if extended {
                let lower = string_literal(&n.to_lowercase());
                format!(
                    "contains(lower(name), {lower}) or contains(lower(toString(tags)), {lower})"
                )
            } else {
                format!("contains(name, {literal})")
            }
        })
        .collect::<Vec<_>>()
        .join(" or ");
    let dql = format!(
        "smartscapeNodes \"*\"\n| filter {conditions}\n| fields id, type, name, tags\n| limit {}",
        max + 1
    );
    let result = run_statement(&ctx, dql, u64::from(max) + 1, 1_000_000).await?;
    let has_more = result.records.len() > max as usize;
    let entities: Vec<FoundEntity> = result
        .records
        .iter()
        .take(max as usize)
        .filter_map(found)
        .collect();
    if entities.is_empty() {
        return Ok(ToolOutput::text(format!(
            "No entity has a name containing {}. Try a shorter part of the name, or extendedSearch: true.",
            names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(" or ")
        ))
        .with_structured(&FoundOutput { entities, has_more }));
    }
    let mut text = render_entities(
        &entities,
        ctx.result_budget / 2,
        format!(
            "{} entit{} found{}:\n",
            entities.len(),
            if entities.len() == 1 { "y" } else { "ies" },
            if has_more { " (more matched)" } else { "" }
        ),
    );
    text.push_str("Use an id in DQL, e.g. `fetch logs | filter dt.entity.service == \"<id>\"`.");
    if let Some(note) = budget_note(&ctx) {
        text.push('\n');
        text.push_str(&note);
    }
    Ok(ToolOutput::text(text).with_structured(&FoundOutput { entities, has_more }))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetNameParams {
    /// Entity ids such as SERVICE-0B3E2C2F7E1F5A01 or HOST-8CCED98AFA59084C (1-50).
    #[serde(rename = "entityIds")]
    pub entity_ids: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetNameOutput {
    pub entities: Vec<EntityRef>,
    /// Ids no entity was found for.
    pub not_found: Vec<String>,
}

pub fn get_name_definition() -> ToolDef {
    ToolDef::new::<GetNameParams, _, _>(
        "get_entity_name",
        "Get Entity Name",
        "Turn entity ids (SERVICE-…, HOST-…, PROCESS_GROUP-…) into their names and types.",
        Annotations::READ,
        run_get_name,
    )
    .with_output::<GetNameOutput>()
}

async fn run_get_name(ctx: ToolContext, params: GetNameParams) -> Result<ToolOutput, ToolError> {
    let ids: Vec<String> = params
        .entity_ids
        .iter()
        .map(|i| i.trim().to_string())
        .filter(|i| !i.is_empty())
        .collect();
    if ids.is_empty() || ids.len() > 50 {
        return Err(ToolError::InvalidArguments(
            "entityIds needs 1 to 50 entity ids such as SERVICE-0B3E2C2F7E1F5A01".into(),
        ));
    }
    if let Some(bad) = ids.iter().find(|id| entity_table(id).is_none()) {
        return Err(ToolError::InvalidArguments(format!(
            "`{bad}` is not an entity id: ids look like TYPE-<16 hex digits>, e.g. SERVICE-0B3E2C2F7E1F5A01"
        )));
    }
    let resolved = resolve_names(&ctx, &ids).await?;
    let (entities, missing): (Vec<EntityRef>, Vec<EntityRef>) =
        resolved.into_iter().partition(|e| e.name.is_some());
    let not_found: Vec<String> = missing.into_iter().map(|e| e.id).collect();
    let mut text = String::new();
    for e in &entities {
        text.push_str(&format!("- {} → {}\n", e.id, e.label()));
    }
    if !not_found.is_empty() {
        text.push_str(&format!(
            "No entity found for: {} (it may not exist or not have been seen recently).",
            not_found.join(", ")
        ));
    }
    Ok(
        ToolOutput::text(text.trim_end().to_string()).with_structured(&GetNameOutput {
            entities,
            not_found,
        }),
    )
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListTagsParams {
    /// Only tags of this Smartscape node type (e.g. SERVICE, HOST); default all.
    #[serde(default, rename = "entityType")]
    pub entity_type: Option<String>,
    /// Only tag keys containing this text (case-insensitive).
    #[serde(default, rename = "tagKeyFilter")]
    pub tag_key_filter: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagKey {
    pub key: String,
    /// Entities carrying the key, over all its values.
    pub entities: u64,
    /// Values with their entity counts, most used first (a tag without value has value "").
    pub values: Vec<TagValue>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TagValue {
    pub value: String,
    pub count: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListTagsOutput {
    pub keys: Vec<TagKey>,
}

pub fn list_tags_definition() -> ToolDef {
    ToolDef::new::<ListTagsParams, _, _>(
        "list_tags",
        "List Tags",
        "List the tags used on entities, grouped by key with their values and how many entities carry each.",
        Annotations::READ,
        run_list_tags,
    )
    .with_output::<ListTagsOutput>()
}

async fn run_list_tags(ctx: ToolContext, params: ListTagsParams) -> Result<ToolOutput, ToolError> {
    let node = node_type(params.entity_type.as_deref())?;
    let dql = format!(
        "smartscapeNodes {}\n| filter isNotNull(tags)\n| expand tag = tags\n| summarize count = count(), by: {{tag}}\n| sort count desc\n| limit 500",
        string_literal(&node)
    );
    let result = run_statement(&ctx, dql, 500, 2_000_000).await?;
    let key_filter = params
        .tag_key_filter
        .as_deref()
        .map(|f| f.trim().to_lowercase())
        .filter(|f| !f.is_empty());
    let mut keys: BTreeMap<String, Vec<TagValue>> = BTreeMap::new();
    for record in &result.records {
        let Some(tag) = text_field(record, "tag") else {
            continue;
        };
        let (key, value) = match tag.split_once(':') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (tag.clone(), String::new()),
        };
        if key_filter
            .as_ref()
            .is_some_and(|f| !key.to_lowercase().contains(f))
        {
            continue;
        }
        let count = num_field(record, "count").unwrap_or(0.0) as u64;
        keys.entry(key).or_default().push(TagValue { value, count });
    }
    let mut keys: Vec<TagKey> = keys
        .into_iter()
        .map(|(key, mut values)| {
            values.sort_by(|a, b| b.count.cmp(&a.count).then(a.value.cmp(&b.value)));
            TagKey {
                entities: values.iter().map(|v| v.count).sum(),
                key,
                values,
            }
        })
        .collect();
    keys.sort_by(|a, b| b.entities.cmp(&a.entities).then(a.key.cmp(&b.key)));
    if keys.is_empty() {
        return Ok(ToolOutput::text(format!(
            "No tags found{}{}.",
            if node == "*" {
                String::new()
            } else {
                format!(" on {node} entities")
            },
            key_filter
                .map(|f| format!(" with a key containing \"{f}\""))
                .unwrap_or_default()
        ))
        .with_structured(&ListTagsOutput { keys }));
    }
    let mut listing = Listing::new(
        format!(
            "{} tag keys{}:\n",
            keys.len(),
            if node == "*" {
                String::new()
            } else {
                format!(" on {node} entities")
            }
        ),
        ctx.result_budget / 2,
    );
    for k in &keys {
        let shown: Vec<String> = k
            .values
            .iter()
            .take(10)
            .map(|v| {
                if v.value.is_empty() {
                    format!("(no value) {}", v.count)
                } else {
                    format!("{} {}", v.value, v.count)
                }
            })
            .collect();
        let more = if k.values.len() > 10 {
            format!(", … {} more values", k.values.len() - 10)
        } else {
            String::new()
        };
        listing.push(&format!(
            "- {} ({} entities): {}{more}\n",
            k.key,
            k.entities,
            shown.join(", ")
        ));
    }
    let mut text = listing.finish("filter with tagKeyFilter or entityType");
    text.push_str("Next: find_entities_by_tag with a tag such as \"key:value\".");
    Ok(ToolOutput::text(text).with_structured(&ListTagsOutput { keys }))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindByTagParams {
    /// The tag: `key:value` for an exact match, or `key` for any value of that key.
    pub tag: String,
    /// Only this Smartscape node type (e.g. SERVICE, HOST); default all.
    #[serde(default, rename = "entityType")]
    pub entity_type: Option<String>,
    /// How many entities to return (1-500, default 50).
    #[serde(default, rename = "maxResults", deserialize_with = "lenient_u32")]
    #[schemars(range(min = 1, max = 500))]
    pub max_results: Option<u32>,
}

pub fn find_by_tag_definition() -> ToolDef {
    ToolDef::new::<FindByTagParams, _, _>(
        "find_entities_by_tag",
        "Find Entities by Tag",
        "Find the entities carrying a tag: `key:value` matches exactly, `key` matches any value of the key.",
        Annotations::READ,
        run_find_by_tag,
    )
    .with_output::<FoundOutput>()
}

async fn run_find_by_tag(
    ctx: ToolContext,
    params: FindByTagParams,
) -> Result<ToolOutput, ToolError> {
    let tag = params.tag.trim();
    if tag.is_empty() {
        return Err(ToolError::InvalidArguments(
            "tag is empty: give key:value or a key, e.g. \"env:prod\"".into(),
        ));
    }
    let node = node_type(params.entity_type.as_deref())?;
    let max = bounded(params.max_results, 50, 500, "maxResults")?;
    let condition = if tag.contains(':') {
        format!("tag == {}", string_literal(tag))
    } else {
        format!(
            "tag == {} or startsWith(tag, {})",
            string_literal(tag),
            string_literal(&format!("{tag}:"))
        )
    };
    let dql = format!(
        "smartscapeNodes {}\n| filter isNotNull(tags)\n| expand tag = tags\n| filter {condition}\n| dedup id\n| fields id, type, name, tags\n| limit {}",
        string_literal(&node),
        max + 1
    );
    let result = run_statement(&ctx, dql, u64::from(max) + 1, 2_000_000).await?;
    let has_more = result.records.len() > max as usize;
    let entities: Vec<FoundEntity> = result
        .records
        .iter()
        .take(max as usize)
        .filter_map(found)
        .collect();
    if entities.is_empty() {
        return Ok(ToolOutput::text(format!(
            "No entities carry the tag \"{tag}\". list_tags shows the tags in use."
        ))
        .with_structured(&FoundOutput { entities, has_more }));
    }
    let text = render_entities(
        &entities,
        ctx.result_budget / 2,
        format!(
            "{} entit{} with tag \"{tag}\"{}:\n",
            entities.len(),
            if entities.len() == 1 { "y" } else { "ies" },
            if has_more {
                " (more matched: raise maxResults)"
            } else {
                ""
            }
        ),
    );
    Ok(ToolOutput::text(text).with_structured(&FoundOutput { entities, has_more }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_tables_follow_the_id_prefix() {
        assert_eq!(
            entity_table("SERVICE-0B3E2C2F7E1F5A01").as_deref(),
            Some("dt.entity.service")
        );
        assert_eq!(
            entity_table("PROCESS_GROUP_INSTANCE-0B3E2C2F7E1F5A01").as_deref(),
            Some("dt.entity.process_group_instance")
        );
        assert_eq!(entity_table("service-0B3E2C2F7E1F5A01"), None);
        assert_eq!(entity_table("SERVICE-0B3E"), None);
        assert_eq!(entity_table("SERVICE | fetch logs-0B3E2C2F7E1F5A01"), None);
    }

    #[test]
    fn node_types_are_identifiers_or_star() {
        assert_eq!(node_type(None).unwrap(), "*");
        assert_eq!(node_type(Some("service")).unwrap(), "SERVICE");
        assert!(node_type(Some("SERVICE\" | fetch logs")).is_err());
    }
}
