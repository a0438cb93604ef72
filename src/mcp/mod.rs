//! The rmcp adapter: one `ServerHandler` that serves every front door.
//!
//! This module and `crate::http`/`crate::stdio` are the only places that name rmcp. Tools are
//! looked up in [`crate::tools::Registry`]; their published form (`Tool`) is converted once at
//! start-up. Each call gets a deadline (from the HTTP request's extensions when a front door set
//! one, else the configured tool timeout) and the request's cancellation token.

pub mod environments;
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
use crate::identity::{Principal, ToolGroup, audit};
use crate::startup::AppState;
use crate::state::{Policy, StateError};
use crate::tools::{ToolContext, ToolDef, ToolError};

const INSTRUCTIONS: &str = "Tools for one Dynatrace environment. Start with get_environment_info \
to check the connection. list_problems, get_problem_details, list_vulnerabilities, list_exceptions \
and get_kubernetes_events answer common questions directly; find_entity_by_name turns names into \
entity ids for DQL. execute_dql runs Dynatrace Query Language against Grail (logs, events, spans, \
metrics, entities); verify_dql checks a statement without running it; the resource dql://reference \
explains the language. Keep queries cheap: a timeframe, filters first, a limit. When execute_dql \
answers with a queryHandle, call it again with that handle to fetch the result. Tools that change \
things (email, Slack, workflows, notebooks, events) first return a preview and a confirmationToken: \
show the preview to the user, and repeat the call with the token only if they agree.";

/// The `_meta` key of a result's warnings: what went wrong without stopping the call (the shared
/// state store could not count a query against the budget, …).
pub const WARNINGS_META: &str = "dynatrace-mcp/warnings";

/// The MCP handler. Cheap to clone: it is two `Arc`s.
#[derive(Clone)]
pub struct McpServer {
    state: Arc<AppState>,
    /// `tools/list` entries, with the group each belongs to.
    published: Arc<Vec<(ToolGroup, Tool)>>,
    /// Who calls when a request carries no principal: the local user over stdio; nobody (no
    /// tool group) over HTTP, where the front door always attaches one.
    local: Arc<Principal>,
    /// `network.transport` in traces: `tcp` (HTTP) or `pipe` (stdio).
    transport: &'static str,
}

impl McpServer {
    /// The handler of the HTTP front door.
    pub fn new(state: Arc<AppState>) -> Self {
        Self::with_local(state, Principal::unidentified(), "tcp")
    }

    /// The handler of the stdio front door: the caller is the local user.
    pub fn for_stdio(state: Arc<AppState>) -> Self {
        Self::with_local(state, Principal::stdio(), "pipe")
    }

    fn with_local(state: Arc<AppState>, local: Principal, transport: &'static str) -> Self {
        let published = Arc::new(
            state
                .tools
                .iter()
                .map(|def| (def.group, publish(def)))
                .collect(),
        );
        Self {
            state,
            published,
            local: Arc::new(local),
            transport,
        }
    }

    /// Runs `work`, the answer to one MCP request, in that request's span when traces are on
    /// ([`crate::telemetry`]); else just runs it.
    async fn traced<T>(
        &self,
        method: &str,
        subject: Subject<'_>,
        context: &RequestContext<RoleServer>,
        work: impl Future<Output = Result<T, McpError>>,
    ) -> Result<T, McpError> {
        use opentelemetry::trace::FutureExt as _;

        let Some(tracer) = crate::telemetry::tracer() else {
            return work.await;
        };
        let (tool, prompt, resource_uri) = match subject {
            Subject::None => (None, None, None),
            Subject::Tool(name) => (Some(name), None, None),
            Subject::Prompt(name) => (None, Some(name), None),
            Subject::Resource(uri) => (None, None, Some(uri)),
        };
        let span = crate::telemetry::start_request(
            tracer,
            &crate::telemetry::McpRequest {
                method,
                tool,
                prompt,
                resource_uri,
                request_id: context.id.to_string(),
                protocol_version: context.protocol_version().map(|v| v.to_string()),
                transport: self.transport,
                meta: Some(&context.meta.0.0),
                headers: context
                    .extensions
                    .get::<http::request::Parts>()
                    .map(|parts| &parts.headers),
            },
        );
        let result = work.with_context(span.context()).await;
        span.end(
            result
                .as_ref()
                .err()
                .map(|e| (e.code.0, e.message.as_ref())),
        );
        result
    }

    /// The caller of a request: what the HTTP front door identified, else the local user.
    fn principal(&self, context: &RequestContext<RoleServer>) -> Arc<Principal> {
        context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Arc<Principal>>())
            .cloned()
            .unwrap_or_else(|| self.local.clone())
    }
}

/// What an MCP request names, for its span.
#[derive(Clone, Copy)]
enum Subject<'a> {
    None,
    Tool(&'a str),
    Prompt(&'a str),
    Resource(&'a str),
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
    if matches!(def.name, "execute_dql" | "list_problems") {
        tool.meta = Some(resources::results_view_meta());
    }
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

    /// rmcp's default answer repeats the method whole; a name a megabyte long comes back cut.
    async fn on_custom_request(
        &self,
        request: rmcp::model::CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CustomResult, McpError> {
        // An unknown method's name is the caller's: the span is named for none of them.
        self.traced("_OTHER", Subject::None, &context, async {
            Err(McpError::new(
                rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                format!("method not found: `{}`", audit::cut(&request.method, 64)),
                None,
            ))
        })
        .await
    }

    /// rmcp's own `initialize` (peer info, version negotiation), in a span.
    async fn initialize(
        &self,
        request: rmcp::model::InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::InitializeResult, McpError> {
        self.traced("initialize", Subject::None, &context, async {
            context.peer.set_peer_info(request.clone());
            self.negotiate_initialize(&request)
        })
        .await
    }

    async fn ping(&self, context: RequestContext<RoleServer>) -> Result<(), McpError> {
        self.traced("ping", Subject::None, &context, async { Ok(()) })
            .await
    }

    /// rmcp's own answers to the requests below, each in a span.
    async fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::DiscoverResult, McpError> {
        self.traced("server/discover", Subject::None, &context, async {
            Ok(rmcp::model::DiscoverResult::from_server_info(
                self.supported_protocol_versions().into_owned(),
                self.get_info(),
            ))
        })
        .await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourceTemplatesResult, McpError> {
        self.traced("resources/templates/list", Subject::None, &context, async {
            Ok(rmcp::model::ListResourceTemplatesResult::default())
        })
        .await
    }

    async fn complete(
        &self,
        _request: rmcp::model::CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CompleteResult, McpError> {
        self.traced("completion/complete", Subject::None, &context, async {
            Err(McpError::method_not_found::<
                rmcp::model::CompleteRequestMethod,
            >())
        })
        .await
    }

    /// Only the tools the caller's scopes allow.
    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        self.traced("tools/list", Subject::None, &context, async {
            let groups = self.principal(&context).groups;
            let tools = self
                .published
                .iter()
                .filter(|(group, _)| groups.contains(*group))
                .map(|(_, tool)| tool.clone())
                .collect();
            Ok(ListToolsResult::with_all_items(tools))
        })
        .await
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        self.traced("prompts/list", Subject::None, &context, async {
            Ok(ListPromptsResult::with_all_items(prompts::list()))
        })
        .await
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        // Only a prompt this server has names the span (`gen_ai.prompt.name` is low-cardinality);
        // the list is looked at only when there is a span to name.
        let known = crate::telemetry::tracer().is_some()
            && prompts::list().iter().any(|p| p.name == request.name);
        let subject = match known {
            true => Subject::Prompt(&request.name),
            false => Subject::None,
        };
        self.traced("prompts/get", subject, &context, async {
            prompts::get(&request.name, &request.arguments).map(Into::into)
        })
        .await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        self.traced("resources/list", Subject::None, &context, async {
            Ok(ListResourcesResult::with_all_items(resources::list()))
        })
        .await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        self.traced(
            "resources/read",
            Subject::Resource(audit::cut(&request.uri, 256).as_ref()),
            &context,
            async { resources::read(&request.uri).map(Into::into) },
        )
        .await
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.published
            .iter()
            .find(|(_, t)| t.name == name)
            .map(|(_, t)| t.clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let def = self.state.tools.get(&request.name);
        // An unknown tool's name is the caller's: only a tool this server has names the span.
        let subject = def.map_or(Subject::None, |def| Subject::Tool(def.name));
        self.traced(
            "tools/call",
            subject,
            &context,
            self.run_tool(def, request, &context),
        )
        .await
    }
}

impl McpServer {
    /// `tools/call` of `def` (`None`: no tool of that name): admission, the tool, the answer's
    /// budget, then audit and metrics.
    async fn run_tool(
        &self,
        def: Option<&ToolDef>,
        request: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let Some(def) = def else {
            return Err(McpError::invalid_params(
                format!(
                    "unknown tool `{}`: call tools/list for the tools this server offers",
                    audit::cut(&request.name, 64)
                ),
                None,
            ));
        };
        let principal = self.principal(context);
        let started = Instant::now();
        let deadline = request_deadline(context)
            .unwrap_or_else(|| Deadline::after(self.state.settings.tool_timeout));
        // The call stops when its client goes away or when the server's shutdown grace is over.
        let cancel = self.state.stopping.child_token();
        let _linked = link(&context.ct, &cancel);
        let ctx = ToolContext::new(self.state.clone(), principal.clone(), deadline, cancel);
        let outcome = match self.admit(&ctx, def).await {
            Ok(()) => {
                let call =
                    environments::dispatch(def, ctx.clone(), request.arguments.unwrap_or_default());
                audit::scope(ctx.record.clone(), call).await
            }
            Err(refusal) => Err(refusal),
        };
        // The bytes of the answer's text and structured content, for the audit line.
        let mut result_bytes = 0;
        let (mut result, outcome) = match outcome {
            Ok(mut output) => {
                // Text and structured content share the budget; a tool's text takes at most
                // half of it, so structured content always keeps the other half.
                let budget = self.state.settings.result_budget_bytes;
                let text_cost = crate::tools::format::escaped_len(&output.text);
                if let Some(structured) = output.structured.as_mut() {
                    let (note, size) = crate::tools::format::fit_structured_measured(
                        structured,
                        budget.saturating_sub(text_cost).max(budget / 2),
                    );
                    result_bytes = size;
                    if let Some(note) = note {
                        output.text.push('\n');
                        output.text.push_str(&note);
                    }
                }
                result_bytes += output.text.len();
                let mut result = CallToolResult::success(vec![ContentBlock::text(output.text)]);
                result.structured_content = output.structured;
                (result, "ok")
            }
            Err(error) => {
                let kind = errors::kind(&error);
                let text = errors::message(def.name, &error);
                result_bytes = text.len();
                (CallToolResult::error(vec![ContentBlock::text(text)]), kind)
            }
        };
        let warnings = ctx.record.warnings();
        if !warnings.is_empty() {
            let mut meta = result.meta.take().unwrap_or_default();
            meta.0
                .insert(WARNINGS_META.to_string(), serde_json::json!(warnings));
            result.meta = Some(meta);
        }
        let latency = started.elapsed();
        let environment = ctx.record.environments();
        crate::telemetry::annotate_call(
            outcome,
            environment.as_deref(),
            ctx.record.scanned_bytes(),
            result_bytes,
        );
        if self.state.settings.identity.audit {
            audit::emit(
                &audit::Entry {
                    principal: &principal,
                    tool: def.name,
                    outcome,
                    result_bytes,
                    latency_ms: latency.as_millis() as u64,
                    request_id: request_id(context).as_ref(),
                },
                &ctx.record,
            );
        }
        if let Some(metrics) = &self.state.settings.metrics {
            metrics.record(&crate::metrics::Call {
                tool: def.name,
                outcome,
                principal_class: principal.source.name(),
                environment: environment.as_deref(),
                latency_ms: latency.as_secs_f64() * 1000.0,
                scanned_bytes: ctx.record.scanned_bytes(),
                result_bytes: result_bytes as u64,
                upstream_retries: ctx.record.retries(),
            });
        }
        Ok(result.into())
    }
}

impl McpServer {
    /// Whether the caller may call `def` now: its scopes, then its rate limit.
    async fn admit(&self, ctx: &ToolContext, def: &ToolDef) -> Result<(), ToolError> {
        let principal = &ctx.principal;
        if !principal.groups.contains(def.group) {
            let names = &self.state.settings.identity.scope_names;
            return Err(ToolError::Refused(format!(
                "your credential does not allow the {} tools (they need the scope {}), so nothing was done; \
                 ask the operator for that scope, or use a tool from tools/list",
                def.group.name(),
                names.name(def.group)
            )));
        }
        let Some(limiter) = &self.state.rate_limiter else {
            return Ok(());
        };
        match limiter
            .take_in(
                self.state.store.as_ref(),
                &principal.rate_key(),
                ctx.deadline,
            )
            .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(wait)) => Err(rate_limited(limiter, wait)),
            Err(e) => match self.state.state_policy {
                // Without the shared count, each instance still holds the limit on its own.
                Policy::FailOpen => {
                    tracing::warn!(error = %e, "the shared rate limit was not counted; this instance's own applies");
                    ctx.record.warn(format!(
                        "{}; the rate limit was counted by this instance only",
                        StateError::PUBLIC
                    ));
                    limiter
                        .take(&principal.rate_key())
                        .map_err(|wait| rate_limited(limiter, wait))
                }
                Policy::FailClosed => {
                    tracing::warn!(error = %e, "the rate limit was not counted; the call is refused");
                    Err(ToolError::Refused(format!(
                        "{}, and this server refuses calls it cannot count against its rate limit \
                         (MCP_STATE_FAIL_CLOSED=1); try again shortly",
                        StateError::PUBLIC
                    )))
                }
            },
        }
    }
}

/// The refusal of a call past the rate limit, with when to retry.
fn rate_limited(
    limiter: &crate::identity::ratelimit::RateLimiter,
    wait: std::time::Duration,
) -> ToolError {
    let limit = limiter.limit();
    ToolError::Refused(format!(
        "rate limit: at most {} tool calls per {} s per caller; retry in {} s",
        limit.calls,
        limit.period.as_secs(),
        wait.as_secs_f64().ceil().max(1.0) as u64
    ))
}

/// Cancels `to` when `from` is cancelled, until the returned guard is dropped.
fn link(
    from: &tokio_util::sync::CancellationToken,
    to: &tokio_util::sync::CancellationToken,
) -> tokio_util::sync::DropGuard {
    let done = tokio_util::sync::CancellationToken::new();
    let (from, to, watch) = (from.clone(), to.clone(), done.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = from.cancelled() => to.cancel(),
            _ = watch.cancelled() => {}
        }
    });
    done.drop_guard()
}

/// The request id the HTTP front door attached, if any.
fn request_id(context: &RequestContext<RoleServer>) -> Option<crate::identity::audit::RequestId> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<crate::identity::audit::RequestId>())
        .cloned()
}

/// The deadline a front door attached to the HTTP request, if any.
fn request_deadline(context: &RequestContext<RoleServer>) -> Option<Deadline> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<RequestDeadline>())
        .map(|d| d.0)
}
