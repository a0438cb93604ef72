//! Documents: `find_documents` (dashboards and notebooks by title) and `create_dynatrace_notebook`
//! (write, behind confirmation).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::confirm::{self, Confirmation};
use super::format::lenient_u32;
use super::problems::bounded;
use super::{Annotations, Listing, ToolContext, ToolDef, ToolError, ToolOutput};
use crate::dynatrace::documents::DocumentMetadata;

/// Which documents to search.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DocumentKind {
    Dashboard,
    Notebook,
    /// Dashboards and notebooks (the default).
    #[default]
    All,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindParams {
    /// Text the title contains (case-insensitive), e.g. "payment"; leave out to list the most recent.
    #[serde(default)]
    pub name: Option<String>,
    /// dashboard, notebook or all (default all).
    #[serde(default, rename = "type")]
    pub kind: Option<DocumentKind>,
    /// How many documents to return, most recently modified first (1-100, default 20).
    #[serde(default, rename = "maxResults", deserialize_with = "lenient_u32")]
    #[schemars(range(min = 1, max = 100))]
    pub max_results: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FoundDocument {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub owner: String,
    pub description: Option<String>,
    pub last_modified: Option<String>,
    pub link: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindOutput {
    pub documents: Vec<FoundDocument>,
    pub total_count: u64,
}

pub fn find_definition() -> ToolDef {
    ToolDef::new::<FindParams, _, _>(
        "find_documents",
        "Find Documents",
        "Find dashboards and notebooks (including troubleshooting guides) by title, with links to open them.",
        Annotations::READ,
        run_find,
    )
    .with_output::<FindOutput>()
}

/// A document-filter string literal: single quotes, with `\` and `'` escaped.
fn filter_literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn document_link(base: &str, doc: &DocumentMetadata) -> String {
    let app = if doc.kind == "dashboard" {
        "dynatrace.dashboards/dashboard"
    } else {
        "dynatrace.notebooks/notebook"
    };
    format!("{base}/ui/apps/{app}/{}", doc.id)
}

async fn run_find(ctx: ToolContext, params: FindParams) -> Result<ToolOutput, ToolError> {
    let max = bounded(params.max_results, 20, 100, "maxResults")?;
    let mut filter = match params.kind.unwrap_or_default() {
        DocumentKind::Dashboard => "type == 'dashboard'".to_string(),
        DocumentKind::Notebook => "type == 'notebook'".to_string(),
        DocumentKind::All => "type in ('dashboard', 'notebook')".to_string(),
    };
    if let Some(name) = params
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        if name.len() > 200 {
            return Err(ToolError::InvalidArguments(
                "name is too long: give at most 200 characters of the title".into(),
            ));
        }
        filter.push_str(&format!(" and name contains {}", filter_literal(name)));
    }
    let list = ctx
        .dynatrace
        .list_documents(&filter, max, ctx.deadline)
        .await?;
    let base = ctx.dynatrace.environment().base().to_string();
    let documents: Vec<FoundDocument> = list
        .documents
        .into_iter()
        .map(|d| FoundDocument {
            link: document_link(&base, &d),
            last_modified: d
                .modification_info
                .get("lastModifiedTime")
                .and_then(Value::as_str)
                .map(str::to_string),
            id: d.id,
            name: d.name,
            kind: d.kind,
            owner: d.owner,
            description: d.description,
        })
        .collect();
    if documents.is_empty() {
        return Ok(
            ToolOutput::text("No dashboards or notebooks matched.").with_structured(&FindOutput {
                documents,
                total_count: list.total_count,
            }),
        );
    }
    let mut listing = Listing::new(
        format!(
            "{} of {} matching documents, most recently modified first:\n",
            documents.len(),
            list.total_count.max(documents.len() as u64)
        ),
        ctx.result_budget / 2,
    );
    for d in &documents {
        listing.push(&format!(
            "- {} \"{}\"{}\n  {}\n",
            d.kind,
            d.name,
            d.last_modified
                .as_deref()
                .map(|t| format!(", modified {t}"))
                .unwrap_or_default(),
            d.link
        ));
    }
    let text = listing.finish("narrow the name");
    Ok(ToolOutput::text(text).with_structured(&FindOutput {
        documents,
        total_count: list.total_count,
    }))
}

/// One section of a notebook.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// `dql` (a query section) or `markdown` (text).
    #[serde(rename = "type")]
    pub kind: SectionKind,
    /// The DQL statement or the markdown text.
    pub text: String,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SectionKind {
    Dql,
    Markdown,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNotebookParams {
    /// The notebook's title.
    pub name: String,
    /// A short description.
    #[serde(default)]
    pub description: Option<String>,
    /// The sections, in order (1-50).
    pub content: Vec<Section>,
    /// The confirmation token from this tool's preview; leave it out the first time.
    #[serde(default, rename = "confirmationToken")]
    pub confirmation_token: Option<String>,
}

pub fn create_notebook_definition() -> ToolDef {
    ToolDef::new::<CreateNotebookParams, _, _>(
        "create_dynatrace_notebook",
        "Create Dynatrace Notebook",
        "Save findings as a Dynatrace notebook of markdown and DQL sections. Needs confirmation: the first call returns \
         a preview and a confirmationToken; repeat the call with it to create the notebook.",
        Annotations {
            read_only: false,
            destructive: false,
            idempotent: false,
            open_world: true,
        },
        run_create_notebook,
    )
}

/// Notebook content (version 7), with section ids derived from their position so equal arguments
/// give an equal document.
fn notebook_content(sections: &[Section]) -> Value {
    let sections: Vec<Value> = sections
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let id = format!("00000000-0000-4000-8000-{:012x}", i + 1);
            match s.kind {
                SectionKind::Markdown => json!({"id": id, "type": "markdown", "markdown": s.text}),
                SectionKind::Dql => json!({"id": id, "type": "dql", "showTitle": false, "state": {"input": {"value": s.text}}}),
            }
        })
        .collect();
    json!({"version": "7", "sections": sections})
}

async fn run_create_notebook(
    ctx: ToolContext,
    params: CreateNotebookParams,
) -> Result<ToolOutput, ToolError> {
    let name = params.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ToolError::InvalidArguments(
            "name must be 1 to 200 characters".into(),
        ));
    }
    if params.content.is_empty() || params.content.len() > 50 {
        return Err(ToolError::InvalidArguments(
            "content needs 1 to 50 sections ({type: dql|markdown, text})".into(),
        ));
    }
    if params.content.iter().any(|s| s.text.trim().is_empty()) {
        return Err(ToolError::InvalidArguments(
            "every section needs a non-empty text".into(),
        ));
    }
    let description = params
        .description
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty());
    let content = notebook_content(&params.content);
    let planned =
        json!({"name": name, "type": "notebook", "description": description, "content": content});
    let action = format!(
        "create the notebook \"{name}\" with {} sections",
        params.content.len()
    );
    match confirm::check(
        &ctx,
        "create_dynatrace_notebook",
        action,
        planned,
        params.confirmation_token.as_deref(),
    )
    .await?
    {
        Confirmation::Preview(preview) => return Ok(preview),
        Confirmation::Granted => {}
    }
    let created = ctx
        .dynatrace
        .create_document(name, "notebook", description, &content, ctx.deadline)
        .await?;
    let link = document_link(ctx.dynatrace.environment().base(), &created);
    Ok(ToolOutput::text(format!(
        "Created the notebook \"{}\" ({}). Open it: {link}",
        created.name, created.id
    ))
    .with_structured(&json!({"id": created.id, "name": created.name, "link": link})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_literals_escape_quotes() {
        assert_eq!(filter_literal("payments"), "'payments'");
        assert_eq!(filter_literal("o'brien\\x"), "'o\\'brien\\\\x'");
    }
}
