//! The rmcp adapter: one `ServerHandler` that serves every front door.
//!
//! This module and `crate::http`/`crate::stdio` are the only places that name rmcp. Tools are
//! looked up in [`crate::tools::Registry`]; their published form (`Tool`) is converted once at
//! start-up. Each call gets a deadline (from the HTTP request's extensions when a front door set
//! one, else the configured tool timeout) and the request's cancellation token.

pub mod errors;
pub mod prompts;
pub mod resources;

use std::sync::Arc;
use std::time::Instant;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams,
    GetPromptResponse, Implementation, ListPromptsResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities,
    ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};

use crate::deadline::{Deadline, RequestDeadline};
use crate::startup::AppState;
use crate::tools::{ToolContext, ToolDef};

const INSTRUCTIONS: &str = "Tools for one Dynatrace environment. Start with get_environment_info \
to check the connection. list_problems, get_problem_details, list_vulnerabilities, list_exceptions \
and get_kubernetes_events answer common questions directly; find_entity_by_name turns names into \
entity ids for DQL. execute_dql runs Dynatrace Query Language against Grail (logs, events, spans, \
metrics, entities); verify_dql checks a statement without running it; the resource dql://reference \
explains the language. Keep queries cheap: a timeframe, filters first, a limit. When execute_dql \
answers with a queryHandle, call it again with that handle to fetch the result. Tools that change \
things (email, Slack, workflows, notebooks, events) first return a preview and a confirmationToken: \
show the preview to the user, and repeat the call with the token only if they agree.";

/// The MCP handler. Cheap to clone: it is one `Arc`.
#[derive(Clone)]
pub struct McpServer {
    state: Arc<AppState>,
    published: Arc<Vec<Tool>>,
}

impl McpServer {
    pub fn new(state: Arc<AppState>) -> Self {
        let published = Arc::new(state.tools.iter().map(publish).collect());
        Self { state, published }
    }
}

/// The `tools/list` form of a tool.
fn publish(def: &ToolDef) -> Tool {
    let annotations = ToolAnnotations::with_title(def.title)
        .read_only(def.annotations.read_only)
        .destructive(def.annotations.destructive)
        .idempotent(def.annotations.idempotent)
        .open_world(def.annotations.open_world);
    let mut tool = Tool::new(def.name, def.description, def.input_schema.clone());
    tool.title = Some(def.title.to_string());
    tool.output_schema = def.output_schema.clone();
    tool.annotations = Some(annotations);
    tool
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .build(),
        )
        .with_server_info(
            Implementation::new(crate::SERVER_NAME, crate::VERSION)
                .with_title("Dynatrace MCP Server (Rust)"),
        )
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items((*self.published).clone()))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(ListPromptsResult::with_all_items(prompts::list()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        prompts::get(&request.name, &request.arguments).map(Into::into)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(resources::list()))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        resources::read(&request.uri).map(Into::into)
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.published.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let Some(def) = self.state.tools.get(&request.name) else {
            return Err(McpError::invalid_params(
                format!(
                    "unknown tool `{}`: call tools/list for the tools this server offers",
                    request.name
                ),
                None,
            ));
        };
        let deadline = request_deadline(&context)
            .unwrap_or_else(|| Deadline::after(self.state.settings.tool_timeout));
        let ctx = ToolContext {
            state: self.state.clone(),
            deadline,
            cancel: context.ct.clone(),
        };
        let args = request.arguments.unwrap_or_default();
        let started = Instant::now();
        let outcome = def.call(ctx, args).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let result = match outcome {
            Ok(output) => {
                tracing::info!(tool = def.name, elapsed_ms, outcome = "ok", "tool call");
                let mut result = CallToolResult::success(vec![ContentBlock::text(output.text)]);
                result.structured_content = output.structured;
                result
            }
            Err(error) => {
                let kind = errors::kind(&error);
                tracing::info!(tool = def.name, elapsed_ms, outcome = kind, "tool call");
                CallToolResult::error(vec![ContentBlock::text(errors::message(def.name, &error))])
            }
        };
        Ok(result.into())
    }
}

/// The deadline a front door attached to the HTTP request, if any.
fn request_deadline(context: &RequestContext<RoleServer>) -> Option<Deadline> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<RequestDeadline>())
        .map(|d| d.0)
}
