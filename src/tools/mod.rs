//! The tools, as plain async functions over this crate's own types.
//!
//! Every tool file has the same shape: a documented `Params` struct (its `///` docs become the
//! JSON Schema the model reads), an `Output` struct for `structuredContent` where the result is
//! data, one async `run` function, and a `definition()` that ties them together. A new tool is
//! one file plus one line in [`registry`].
//!
//! Tool code never names rmcp, axum, Lambda or stdio: it receives a [`ToolContext`] and returns a
//! [`ToolOutput`] or a [`ToolError`]; `crate::mcp` adapts both to the protocol.

pub mod analyzers;
pub mod buckets;
pub mod budget;
pub mod confirm;
pub mod copilot;
pub mod documents;
pub mod dql;
pub mod entities;
pub mod environment;
pub mod events;
pub mod format;
pub mod notify;
pub mod problems;
pub mod security;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::deadline::Deadline;
use crate::dynatrace::{DynatraceClient, DynatraceError};
use crate::environments::Environment;
use crate::identity::audit::CallRecord;
use crate::identity::{Principal, ToolGroup};
use crate::startup::AppState;

/// What a tool call gets besides its arguments.
#[derive(Clone)]
pub struct ToolContext {
    pub state: Arc<AppState>,
    /// Who is calling.
    pub principal: Arc<Principal>,
    /// The environment this call works on (the default one unless the call named another).
    pub environment: Arc<Environment>,
    /// Whether the call named its environment (`environment`), rather than taking the default:
    /// a query handle then must belong to it.
    pub explicit_environment: bool,
    /// The Dynatrace client of that environment as this caller: its own token when it sent one,
    /// its name in `dt-client-context`.
    pub dynatrace: Arc<DynatraceClient>,
    /// Bytes this call's text may take (`MCP_RESULT_MAX_BYTES`, shared out in a fan-out).
    pub result_budget: usize,
    /// When the answer must be on its way back to the client.
    pub deadline: Deadline,
    /// Cancelled when the client gave up on this call (disconnect, `notifications/cancelled`).
    pub cancel: CancellationToken,
    /// What the call did, for its audit line (DQL sent, bytes scanned).
    pub record: Arc<CallRecord>,
}

impl ToolContext {
    /// A context for `principal`, with a deadline and nothing recorded yet.
    pub fn new(
        state: Arc<AppState>,
        principal: Arc<Principal>,
        deadline: Deadline,
        cancel: CancellationToken,
    ) -> Self {
        let environment = state.environments.default_environment().clone();
        let dynatrace = Arc::new(caller_view(&environment, &principal, true));
        Self {
            result_budget: state.settings.result_budget_bytes,
            state,
            principal,
            environment,
            explicit_environment: false,
            dynatrace,
            deadline,
            cancel,
            record: Arc::default(),
        }
    }

    /// The same call in the environment `environment`.
    pub fn in_environment(&self, environment: Arc<Environment>, explicit: bool) -> Self {
        let default = Arc::ptr_eq(&environment, self.state.environments.default_environment());
        Self {
            dynatrace: Arc::new(caller_view(&environment, &self.principal, default)),
            environment,
            explicit_environment: explicit,
            ..self.clone()
        }
    }
}

/// `environment`'s client as `principal`: with the caller's own token for it, when it sent one.
fn caller_view(environment: &Environment, principal: &Principal, default: bool) -> DynatraceClient {
    environment.client.for_caller(
        principal
            .token_for(&environment.alias, default)
            .map(|t| t.secret()),
        principal.client_context(),
    )
}

/// A successful tool answer: a concise text block for the model, and optionally the same data as
/// `structuredContent` (conforming to the tool's output schema).
#[derive(Debug, Clone)]
pub struct ToolOutput {
    pub text: String,
    pub structured: Option<Value>,
}

impl ToolOutput {
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            structured: None,
        }
    }

    pub fn with_structured<T: serde::Serialize>(mut self, value: &T) -> Self {
        self.structured = Some(serde_json::to_value(value).expect("tool outputs serialize"));
        self
    }
}

/// A failure the model can act on. `crate::mcp::errors` turns it into an `isError` result whose
/// text says what to change.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The arguments do not fit the schema or a rule; the text names the argument.
    #[error("{0}")]
    InvalidArguments(String),
    #[error(transparent)]
    Dynatrace(#[from] DynatraceError),
    /// A condition the model can address in another way (a handle that expired, …).
    #[error("{0}")]
    Refused(String),
}

/// Hints for clients about what a tool does (MCP tool annotations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Annotations {
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    pub open_world: bool,
}

impl Annotations {
    /// A tool that only reads from Dynatrace.
    pub const READ: Annotations = Annotations {
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: true,
    };
}

pub type JsonObject = Map<String, Value>;
type BoxFuture = Pin<Box<dyn Future<Output = Result<ToolOutput, ToolError>> + Send>>;
type Handler = Arc<dyn Fn(ToolContext, JsonObject) -> BoxFuture + Send + Sync>;

/// A tool: its published contract and its handler.
#[derive(Clone)]
pub struct ToolDef {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub input_schema: Arc<JsonObject>,
    pub output_schema: Option<Arc<JsonObject>>,
    pub annotations: Annotations,
    /// The scope group that unlocks this tool.
    pub group: ToolGroup,
    /// Takes `environment` (every tool but `list_environments`).
    pub takes_environment: bool,
    /// May ask several environments at once (`environment: "*"` or a list of aliases).
    pub fans_out: bool,
    handler: Handler,
}

impl std::fmt::Debug for ToolDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolDef")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ToolDef {
    /// A tool whose arguments deserialize into `P`; the input schema is generated from `P`.
    pub fn new<P, F, Fut>(
        name: &'static str,
        title: &'static str,
        description: &'static str,
        annotations: Annotations,
        run: F,
    ) -> Self
    where
        P: JsonSchema + DeserializeOwned + Send + 'static,
        F: Fn(ToolContext, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ToolOutput, ToolError>> + Send + 'static,
    {
        let run = Arc::new(run);
        let handler: Handler = Arc::new(move |ctx, args| {
            let run = run.clone();
            Box::pin(async move {
                let params: P = parse_arguments(args)?;
                run(ctx, params).await
            })
        });
        Self {
            name,
            title,
            description,
            input_schema: Arc::new(schema_for::<P>()),
            output_schema: None,
            annotations,
            group: ToolGroup::Read,
            takes_environment: true,
            fans_out: false,
            handler,
        }
    }

    /// A tool that works on the registry itself, not on one environment (`list_environments`).
    pub fn without_environment(mut self) -> Self {
        self.takes_environment = false;
        self
    }

    /// Publishes `environment` in the input schema: an enum of the aliases, each described; for a
    /// tool that fans out, also `"*"` and a list of aliases, and an output schema that admits the
    /// merged answer. Only called with more than one environment, so a single environment's
    /// schemas stay exactly as the Go server's.
    fn publish_environments(&mut self, environments: &[crate::environments::EnvironmentSpec]) {
        if !self.takes_environment {
            return;
        }
        let aliases: Vec<Value> = environments
            .iter()
            .map(|e| Value::from(e.alias.clone()))
            .collect();
        let described: Vec<String> = environments
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut line = format!("`{}`", e.alias);
                if let Some(d) = &e.description {
                    line.push_str(&format!(": {d}"));
                }
                if i == 0 {
                    line.push_str(" (default)");
                }
                line
            })
            .collect();
        let mut description = format!(
            "The Dynatrace environment to use: {}. When absent, `{}`.",
            described.join("; "),
            environments[0].alias
        );
        let schema = if self.fans_out {
            description.push_str(
                " \"*\" (every environment) or a list of aliases asks them all at once; the answer is \
                 labelled by environment, and one that fails is reported beside the others.",
            );
            let mut with_all = aliases.clone();
            with_all.push(Value::from("*"));
            serde_json::json!({
                "description": description,
                "anyOf": [
                    {"type": "string", "enum": with_all},
                    {"type": "array", "items": {"type": "string", "enum": aliases}, "minItems": 1, "uniqueItems": true}
                ]
            })
        } else {
            serde_json::json!({"type": "string", "enum": aliases, "description": description})
        };
        let mut input = (*self.input_schema).clone();
        if let Some(Value::Object(properties)) = input.get_mut("properties") {
            properties.insert("environment".into(), schema);
        }
        self.input_schema = Arc::new(input);
        if self.fans_out
            && let Some(single) = &self.output_schema
        {
            let merged = serde_json::json!({
                "type": "object",
                "description": "One environment's answer, or, when several were asked, each one's labelled by alias.",
                "anyOf": [Value::Object((**single).clone()), fan_out_schema(single)]
            });
            self.output_schema = Some(Arc::new(merged.as_object().expect("an object").clone()));
        }
    }

    fn in_group(mut self, group: ToolGroup) -> Self {
        self.group = group;
        self
    }

    /// Declares the `structuredContent` schema, generated from `O`.
    pub fn with_output<O: JsonSchema>(mut self) -> Self {
        self.output_schema = Some(Arc::new(schema_for::<O>()));
        self
    }

    pub async fn call(&self, ctx: ToolContext, args: JsonObject) -> Result<ToolOutput, ToolError> {
        (self.handler)(ctx, args).await
    }
}

/// The `structuredContent` of a fan-out: each environment's answer (`single`) or error.
fn fan_out_schema(single: &JsonObject) -> Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "environments": {
                "type": "array",
                "description": "One entry per environment asked, in the order asked.",
                "items": {
                    "type": "object",
                    "properties": {
                        "environment": {"type": "string", "description": "The alias."},
                        "status": {"type": "string", "enum": ["ok", "error"]},
                        "result": Value::Object(single.clone()),
                        "error": {"type": "string", "description": "Why this environment gave no answer."},
                        "elapsedMs": {"type": "integer", "minimum": 0}
                    },
                    "required": ["environment", "status"]
                }
            }
        },
        "required": ["environments"]
    })
}

/// The tools that may ask several environments at once.
const FAN_OUT_TOOLS: &[&str] = &[
    "get_environment_info",
    "list_problems",
    "list_vulnerabilities",
    "execute_dql",
    "find_entity_by_name",
];

/// Deserializes arguments, turning serde's message into one that names the argument.
fn parse_arguments<P: DeserializeOwned>(args: JsonObject) -> Result<P, ToolError> {
    serde_path_to_error::deserialize(Value::Object(args)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ToolError::InvalidArguments(format!("invalid arguments: {inner}"))
        } else {
            ToolError::InvalidArguments(format!("invalid argument `{path}`: {inner}"))
        }
    })
}

/// A JSON Schema (2020-12, inlined, without `$schema`/`title`) for `T`.
pub fn schema_for<T: JsonSchema>() -> JsonObject {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.meta_schema = None;
    settings.inline_subschemas = true;
    let schema = settings.into_generator().into_root_schema_for::<T>();
    let mut value = schema.to_value();
    let object = value.as_object_mut().expect("a root schema is an object");
    object.remove("title");
    let mut object = std::mem::take(object);
    normalize_schema(&mut object);
    // Tools without parameters still publish an object schema with (empty) properties.
    if !object.contains_key("properties") && object.get("type") == Some(&Value::from("object")) {
        object.insert("properties".into(), Value::Object(Map::new()));
    }
    object
}

/// Makes a schemars schema one every MCP client takes, in one walk over it:
/// - schemars marks Rust integer widths as `format: uint32`, `int64`, …; those are not JSON Schema
///   formats and some clients warn about them on every call. The ranges stay as `minimum`/`maximum`.
/// - schemars writes an unconstrained property (a `serde_json::Value`) as the boolean schema
///   `true`. That is valid JSON Schema, but the MCP schema types `properties` values as objects, and
///   clients that validate `tools/list` (the Inspector, the conformance suite's wire check) reject
///   the whole list. `{}` means the same and is accepted everywhere.
fn normalize_schema(object: &mut JsonObject) {
    if object
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|f| {
            matches!(
                f,
                "uint"
                    | "uint8"
                    | "uint16"
                    | "uint32"
                    | "uint64"
                    | "int"
                    | "int8"
                    | "int16"
                    | "int32"
                    | "int64"
                    | "double"
                    | "float"
            )
        })
    {
        object.remove("format");
    }
    for (key, value) in object.iter_mut() {
        match value {
            Value::Bool(true) if key == "items" => *value = Value::Object(Map::new()),
            // Maps from names to schemas, not schemas themselves.
            Value::Object(named) if key == "properties" || key == "$defs" => {
                for schema in named.values_mut() {
                    match schema {
                        Value::Bool(true) => *schema = Value::Object(Map::new()),
                        Value::Object(schema) => normalize_schema(schema),
                        _ => {}
                    }
                }
            }
            Value::Object(child) => normalize_schema(child),
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(child) = item {
                        normalize_schema(child);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Every tool this server offers, in `tools/list` order.
#[derive(Clone, Debug)]
pub struct Registry {
    tools: Vec<ToolDef>,
}

impl Registry {
    /// The groups at least one tool of which is offered (the server-wide switches).
    pub fn groups(&self) -> crate::identity::Groups {
        let mut groups = crate::identity::Groups::NONE;
        for tool in &self.tools {
            groups.insert(tool.group);
        }
        groups
    }

    pub fn get(&self, name: &str) -> Option<&ToolDef> {
        self.tools.iter().find(|t| t.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &ToolDef> {
        self.tools.iter()
    }

    pub fn len(&self) -> usize {
        self.tools.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }
}

/// Builds the registry once at start-up: reads always; the Davis tools with
/// `DT_ENABLE_DAVIS_COPILOT`; the tools that change things only with `DT_ENABLE_WRITE_TOOLS`.
pub fn registry(settings: &crate::config::Settings) -> Registry {
    let mut tools = vec![environment::definition()];
    if settings.registry {
        tools.push(environment::list_definition());
    }
    tools.extend([
        problems::list_definition(),
        problems::details_definition(),
        security::list_vulnerabilities_definition(),
        entities::find_by_name_definition(),
        entities::get_name_definition(),
        dql::execute_definition(),
        dql::verify_definition(),
        events::kubernetes_definition(),
        events::exceptions_definition(),
        buckets::list_definition(),
        buckets::describe_definition(),
        entities::list_tags_definition(),
        entities::find_by_tag_definition(),
        documents::find_definition(),
        budget::get_definition(),
        budget::reset_definition(),
    ]);
    if settings.enable_davis_copilot {
        tools.extend(
            [
                copilot::generate_definition(),
                copilot::explain_definition(),
                copilot::chat_definition(),
                analyzers::list_definition(),
                analyzers::execute_definition(),
            ]
            .map(|t| t.in_group(ToolGroup::Davis)),
        );
    }
    if settings.enable_write_tools {
        tools.extend(
            [
                notify::create_workflow_definition(),
                notify::make_workflow_public_definition(),
                notify::send_email_definition(),
                notify::send_slack_definition(),
                documents::create_notebook_definition(),
                events::send_event_definition(),
            ]
            .map(|t| t.in_group(ToolGroup::Write)),
        );
    }
    for tool in &mut tools {
        tool.fans_out = FAN_OUT_TOOLS.contains(&tool.name);
        if settings.environments.len() > 1 {
            tool.publish_environments(&settings.environments);
        }
    }
    Registry { tools }
}

/// A record field as text (strings as they are, numbers and booleans printed).
pub(crate) fn text_field(record: &Value, key: &str) -> Option<String> {
    match record.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A record field as a number (Grail sends longs as strings).
pub(crate) fn num_field(record: &Value, key: &str) -> Option<f64> {
    match record.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A record field as a list of strings.
pub(crate) fn list_field(record: &Value, key: &str) -> Vec<String> {
    match record.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .or_else(|| (!v.is_null()).then(|| v.to_string()))
            })
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Appends `item` unless the text would pass `budget` bytes; says how many were left out.
pub(crate) struct Listing {
    pub text: String,
    budget: usize,
    pub shown: usize,
    pub left_out: usize,
    /// The first item alone was larger than the budget and is shown cut.
    cut: bool,
}

impl Listing {
    pub fn new(header: String, budget: usize) -> Self {
        Self {
            text: header,
            budget,
            shown: 0,
            left_out: 0,
            cut: false,
        }
    }

    pub fn push(&mut self, item: &str) {
        if self.left_out > 0 || (self.shown > 0 && self.text.len() + item.len() > self.budget) {
            self.left_out += 1;
            return;
        }
        let room = self.budget.saturating_sub(self.text.len()).max(256);
        if item.len() > room {
            // One item larger than the whole budget: its first lines, up to the budget.
            let head = format::truncate_utf8(item, room);
            let head = head.rfind('\n').map_or(head.as_str(), |at| &head[..=at]);
            self.text.push_str(head);
            self.text.push_str("…\n");
            self.cut = true;
        } else {
            self.text.push_str(item);
        }
        self.shown += 1;
    }

    /// The text with a closing note when items were left out.
    pub fn finish(mut self, how_to_see_more: &str) -> String {
        if self.cut {
            self.text.push_str(&format!(
                "\n(cut to fit the response budget: {how_to_see_more}.)"
            ));
        }
        if self.left_out > 0 {
            self.text.push_str(&format!(
                "\n{} more left out to fit the response budget: {how_to_see_more}.",
                self.left_out
            ));
        }
        self.text
    }
}
