//! The server's own traces: OpenTelemetry spans over OTLP/HTTP (protobuf) when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
//!
//! Spans, after the OpenTelemetry semantic conventions for MCP and GenAI:
//! - one `SERVER` span per MCP request, named `{mcp.method.name} {target}` (`tools/call
//!   execute_dql`, `tools/list`); for `tools/call` it is also the GenAI `execute_tool` span
//!   (`gen_ai.operation.name`, `gen_ai.tool.name`), as the conventions have the MCP server span
//!   stand for the tool's execution. Its parent is the W3C context in the request's
//!   `params._meta` (`traceparent`, `tracestate`), else the HTTP request's `traceparent` header;
//!   when both came, the header's context is a link.
//! - one `CLIENT` span per Dynatrace HTTP request (each retry its own), child of the MCP span,
//!   whose context goes to Dynatrace in `traceparent`, so the trace runs on into the platform.
//!
//! Spans are batched by the SDK's batch processor (its own thread) and sent with the server's own
//! reqwest client on the server's tokio runtime: no second HTTP or TLS stack. On Lambda the
//! invocation flushes them before it answers ([`flush`]): a frozen instance holds none.
//!
//! Everything here is a no-op branch when tracing is off ([`tracer`] is `None`).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    Link, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use crate::config::{ConfigError, Source};

/// `OTEL_EXPORTER_OTLP_*`: where spans go. Header values are secrets (an ingest token): they never
/// appear in `Debug` or in a message.
#[derive(Clone, PartialEq)]
pub struct TraceSettings {
    /// The full URL spans are POSTed to (`…/v1/traces`, or the traces endpoint as given).
    endpoint: url::Url,
    headers: Vec<(String, String)>,
    timeout: Duration,
    service_name: String,
    sampler: SamplerSetting,
}

/// `OTEL_TRACES_SAMPLER` (and `OTEL_TRACES_SAMPLER_ARG`), checked here so a typo stops the start
/// instead of silently sampling everything, and honoured from the secret too.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SamplerSetting {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedRatio(f64),
}

impl SamplerSetting {
    fn from_source(source: &Source) -> Result<Self, ConfigError> {
        let ratio = || -> Result<f64, ConfigError> {
            match source.get("OTEL_TRACES_SAMPLER_ARG") {
                None => Ok(1.0),
                Some(raw) => match raw.parse::<f64>() {
                    Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                    _ => Err(ConfigError::new(
                        source.origin("OTEL_TRACES_SAMPLER_ARG"),
                        "expected the share of traces to keep, from 0 to 1 (e.g. 0.25)",
                    )),
                },
            }
        };
        Ok(match source.get("OTEL_TRACES_SAMPLER") {
            None | Some("parentbased_always_on") => Self::ParentBasedAlwaysOn,
            Some("always_on") => Self::AlwaysOn,
            Some("always_off") => Self::AlwaysOff,
            Some("traceidratio") => Self::Ratio(ratio()?),
            Some("parentbased_always_off") => Self::ParentBasedAlwaysOff,
            Some("parentbased_traceidratio") => Self::ParentBasedRatio(ratio()?),
            Some(_) => {
                return Err(ConfigError::new(
                    source.origin("OTEL_TRACES_SAMPLER"),
                    "expected parentbased_always_on (the default), parentbased_traceidratio, \
                     parentbased_always_off, always_on, always_off or traceidratio",
                ));
            }
        })
    }

    fn sampler(self) -> opentelemetry_sdk::trace::Sampler {
        use opentelemetry_sdk::trace::Sampler;
        match self {
            Self::AlwaysOn => Sampler::AlwaysOn,
            Self::AlwaysOff => Sampler::AlwaysOff,
            Self::Ratio(r) => Sampler::TraceIdRatioBased(r),
            Self::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            Self::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            Self::ParentBasedRatio(r) => {
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
            }
        }
    }
}

impl std::fmt::Debug for TraceSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceSettings")
            .field("endpoint", &self.endpoint_for_log())
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .field("service_name", &self.service_name)
            .field("sampler", &self.sampler)
            .finish()
    }
}

/// The default `service.name`.
pub const DEFAULT_SERVICE_NAME: &str = "dynatrace-mcp";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl TraceSettings {
    /// `None` when traces are off: no endpoint, `OTEL_SDK_DISABLED=true` or
    /// `OTEL_TRACES_EXPORTER=none`.
    pub fn from_source(source: &Source) -> Result<Option<Self>, ConfigError> {
        if let Some(disabled) = source.get("OTEL_SDK_DISABLED") {
            match disabled.to_ascii_lowercase().as_str() {
                "true" => return Ok(None),
                "false" => {}
                _ => {
                    return Err(ConfigError::new(
                        source.origin("OTEL_SDK_DISABLED"),
                        "expected true or false",
                    ));
                }
            }
        }
        match source
            .get("OTEL_TRACES_EXPORTER")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(_) => {
                return Err(ConfigError::new(
                    source.origin("OTEL_TRACES_EXPORTER"),
                    "expected otlp (the only exporter this server has) or none",
                ));
            }
        }
        let endpoint = match traces_or_general(
            source,
            [
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ],
        ) {
            // A base endpoint (the general variable) gets /v1/traces; the traces one is taken whole.
            Some((key, raw)) => {
                parse_endpoint(source, key, raw, key == "OTEL_EXPORTER_OTLP_ENDPOINT")?
            }
            None => return Ok(None),
        };
        if let Some((key, protocol)) = traces_or_general(
            source,
            [
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ],
        ) && protocol != "http/protobuf"
        {
            return Err(ConfigError::new(
                source.origin(key),
                "expected http/protobuf: this server sends OTLP over HTTP with protobuf, which the \
                 OpenTelemetry Collector (port 4318) and Dynatrace's /api/v2/otlp both take; unset it \
                 or set http/protobuf",
            ));
        }
        if let Some((key, compression)) = traces_or_general(
            source,
            [
                "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
                "OTEL_EXPORTER_OTLP_COMPRESSION",
            ],
        ) && compression != "none"
        {
            return Err(ConfigError::new(
                source.origin(key),
                "expected none: this server sends spans uncompressed (a batch is a few kB); unset it",
            ));
        }
        let headers = match traces_or_general(
            source,
            [
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                "OTEL_EXPORTER_OTLP_HEADERS",
            ],
        ) {
            Some((key, raw)) => parse_headers(raw)
                .map_err(|problem| ConfigError::new(source.origin(key), problem))?,
            None => Vec::new(),
        };
        let mut timeout = DEFAULT_TIMEOUT;
        for key in [
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        ] {
            if let Some(raw) = source.get(key) {
                timeout = match raw.parse::<u64>() {
                    Ok(ms) if (1..=120_000).contains(&ms) => Duration::from_millis(ms),
                    _ => {
                        return Err(ConfigError::new(
                            source.origin(key),
                            "expected milliseconds from 1 to 120000 (the OpenTelemetry default is 10000)",
                        ));
                    }
                };
            }
        }
        let service_name = source
            .get("OTEL_SERVICE_NAME")
            .unwrap_or(DEFAULT_SERVICE_NAME)
            .to_string();
        let sampler = SamplerSetting::from_source(source)?;
        Ok(Some(Self {
            endpoint,
            headers,
            timeout,
            service_name,
            sampler,
        }))
    }

    /// The endpoint without anything after the path (for the start-up line).
    pub fn endpoint_for_log(&self) -> String {
        let mut url = self.endpoint.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.to_string()
    }
}

/// The first of `[traces, general]` that is set, and its value: the traces variable wins over the
/// general one, as everywhere in `OTEL_EXPORTER_OTLP_*`.
fn traces_or_general<'a>(
    source: &'a Source,
    keys: [&'static str; 2],
) -> Option<(&'static str, &'a str)> {
    keys.into_iter()
        .find_map(|key| source.get(key).map(|value| (key, value)))
}

/// An OTLP/HTTP endpoint: `http(s)://host[:port][/path]`, no user name or password (put a token
/// in `OTEL_EXPORTER_OTLP_HEADERS`). A base endpoint gets `/v1/traces` appended, as the
/// OpenTelemetry specification has it.
fn parse_endpoint(
    source: &Source,
    key: &str,
    raw: &str,
    base: bool,
) -> Result<url::Url, ConfigError> {
    let expected = "expected the URL of an OTLP/HTTP receiver, such as http://localhost:4318 (an OpenTelemetry \
                    Collector) or https://abc12345.live.dynatrace.com/api/v2/otlp (Dynatrace)";
    let url = url::Url::parse(raw).map_err(|_| {
        ConfigError::new(
            source.origin(key),
            format!("{expected}; got a value that is not a URL"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new(
            source.origin(key),
            format!("{expected}; only http and https URLs with a host are taken"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(
            source.origin(key),
            format!(
                "{expected}; remove the user name and password from the URL and send credentials in OTEL_EXPORTER_OTLP_HEADERS"
            ),
        ));
    }
    if !base {
        return Ok(url);
    }
    let mut url = url;
    let path = format!("{}/v1/traces", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url)
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value` pairs separated by commas, values percent-encoded
/// (`Authorization=Api-Token%20dt0c01.…`). A problem names the pair by position, never its value.
fn parse_headers(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut headers = Vec::new();
    for (i, pair) in raw.split(',').enumerate() {
        if pair.trim().is_empty() {
            continue;
        }
        let problem = |what: &str| {
            format!(
                "pair {} {what}; expected key=value pairs separated by commas, values percent-encoded \
                 (e.g. Authorization=Api-Token%20dt0c01.…)",
                i + 1
            )
        };
        let Some((key, value)) = pair.split_once('=') else {
            return Err(problem("has no ="));
        };
        let key = key.trim();
        let value = percent_encoding::percent_decode_str(value.trim())
            .decode_utf8()
            .map_err(|_| problem("is not UTF-8 once decoded"))?;
        if http::HeaderName::from_bytes(key.as_bytes()).is_err() {
            return Err(problem("has a key that is no HTTP header name"));
        }
        if http::HeaderValue::from_str(&value).is_err() {
            return Err(problem("has a value that is no HTTP header value"));
        }
        headers.push((key.to_string(), value.into_owned()));
    }
    Ok(headers)
}

/// The tracer, once [`install`] ran; `None` when traces are off.
static TRACER: OnceLock<(SdkTracerProvider, SdkTracer)> = OnceLock::new();

/// The tracer, when traces are on.
pub fn tracer() -> Option<&'static SdkTracer> {
    TRACER.get().map(|(_, tracer)| tracer)
}

/// Starts the exporter. Spans are sent by `http` on the current tokio runtime. Called once, by
/// `startup::build_state`; a second call keeps the first tracer.
pub fn install(
    settings: &TraceSettings,
    http: std::sync::Arc<crate::dynatrace::HttpClient>,
) -> anyhow::Result<()> {
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};

    // The headers are set by our client on every export, after the exporter's own: the exporter
    // would otherwise lay OTEL_EXPORTER_OTLP_HEADERS from the process environment over the
    // settings' (which may come from the secret).
    let headers = settings
        .headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                http::HeaderName::from_bytes(k.as_bytes()).ok()?,
                http::HeaderValue::from_str(v).ok()?,
            ))
        })
        .collect();
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| anyhow::anyhow!("traces: the exporter needs the async runtime"))?;
    let client = OtlpClient {
        http,
        runtime,
        timeout: settings.timeout,
        headers,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(settings.endpoint.as_str())
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_timeout(settings.timeout)
        .build()
        .map_err(|e| {
            anyhow::anyhow!("OTEL_EXPORTER_OTLP_ENDPOINT: cannot build the exporter: {e}")
        })?;
    let mut resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attribute(KeyValue::new("service.version", crate::VERSION));
    if let Ok(function) = std::env::var("AWS_LAMBDA_FUNCTION_NAME") {
        resource = resource.with_attributes([
            KeyValue::new("cloud.provider", "aws"),
            KeyValue::new("cloud.platform", "aws_lambda"),
            KeyValue::new("faas.name", function),
        ]);
    }
    if let Ok(region) = std::env::var("AWS_REGION") {
        resource = resource.with_attribute(KeyValue::new("cloud.region", region));
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(settings.sampler.sampler())
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer(crate::SERVER_NAME);
    let _ = TRACER.set((provider, tracer));
    Ok(())
}

/// The longest a Lambda invocation waits for its spans to be sent: a receiver that hangs must not
/// cost every invocation its export timeout.
pub const MAX_FLUSH_WAIT: Duration = Duration::from_secs(2);

/// Sends the spans ended so far and waits for the receiver's answer, at most `limit` (and the
/// export timeout). Lambda calls it before each invocation answers; what misses the limit is sent
/// while the instance runs next.
pub async fn flush(limit: Duration) {
    let Some((provider, _)) = TRACER.get() else {
        return;
    };
    let provider = provider.clone();
    let flushing = tokio::task::spawn_blocking(move || provider.force_flush());
    match tokio::time::timeout(limit, flushing).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => warn_export(format_args!("{e}")),
        Ok(Err(_)) => {}
        Err(_) => warn_export(format_args!(
            "the receiver did not take them within {} ms",
            limit.as_millis()
        )),
    }
}

/// Sends what is left and stops the exporter (at exit), waiting at most `limit`.
pub async fn shutdown(limit: Duration) {
    let Some((provider, _)) = TRACER.get() else {
        return;
    };
    let provider = provider.clone();
    let stopping = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(limit));
    if tokio::time::timeout(limit + Duration::from_millis(100), stopping)
        .await
        .is_err()
    {
        tracing::warn!("spans still unsent at exit were dropped");
    }
}

/// At most one export warning a minute: a receiver that is down should not fill the log.
fn warn_export(what: std::fmt::Arguments<'_>) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST.load(Ordering::Relaxed);
    if now >= last + 60
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(problem = %what, "spans were not exported (at most one such line a minute)");
    }
}

/// The exporter's HTTP client: the server's own reqwest client (its roots, `DT_CA_BUNDLE`, proxy),
/// run on the server's runtime. The SDK's batch thread awaits the spawned request.
struct OtlpClient {
    http: std::sync::Arc<crate::dynatrace::HttpClient>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
    /// `OTEL_EXPORTER_OTLP_HEADERS`; values are secrets.
    headers: http::HeaderMap,
}

impl std::fmt::Debug for OtlpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpClient").finish_non_exhaustive()
    }
}

/// The most of a receiver's answer that is read (an OTLP answer is a few bytes).
const MAX_ANSWER: usize = 64 * 1024;

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let http = self.http.clone();
        let timeout = self.timeout;
        let headers = self.headers.clone();
        let sent = self.runtime.spawn(async move {
            let client = http.get().await.map_err(|e| e.to_string())?;
            let (mut parts, body) = request.into_parts();
            for (name, value) in &headers {
                parts.headers.insert(name, value.clone());
            }
            let url = parts.uri.to_string();
            let mut response = client
                .request(parts.method, url)
                .headers(parts.headers)
                .body(body)
                .timeout(timeout)
                .send()
                .await
                // reqwest's message names the URL and the cause, never a header.
                .map_err(|e| format!("{}", e.without_url()))?;
            let status = response.status();
            let mut answer = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
                if answer.len() + chunk.len() > MAX_ANSWER {
                    break;
                }
                answer.extend_from_slice(&chunk);
            }
            Ok::<_, String>((status, answer))
        });
        let (status, answer) = match sent.await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                warn_export(format_args!("the OTLP receiver could not be reached: {e}"));
                return Err(e.into());
            }
            Err(e) => return Err(Box::new(e)),
        };
        if !status.is_success() {
            warn_export(format_args!(
                "the OTLP receiver answered HTTP {}",
                status.as_u16()
            ));
        }
        Ok(http::Response::builder()
            .status(status)
            .body(bytes::Bytes::from(answer))?)
    }
}

/// The W3C trace context of `extractor`, if it holds a valid one.
fn extract(extractor: &dyn Extractor) -> Option<Context> {
    let cx = TraceContextPropagator::new().extract(extractor);
    cx.span().span_context().is_valid().then_some(cx)
}

/// `params._meta` as a propagation carrier.
struct MetaCarrier<'a>(&'a serde_json::Map<String, serde_json::Value>);

impl Extractor for MetaCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(serde_json::Value::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// What an MCP request span is made from.
pub struct McpRequest<'a> {
    pub method: &'a str,
    pub tool: Option<&'a str>,
    pub prompt: Option<&'a str>,
    pub resource_uri: Option<&'a str>,
    pub request_id: String,
    pub protocol_version: Option<String>,
    /// `tcp` (HTTP) or `pipe` (stdio).
    pub transport: &'static str,
    /// The request's `params._meta`.
    pub meta: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// The HTTP request's headers, when it came over HTTP.
    pub headers: Option<&'a http::HeaderMap>,
}

/// Starts the `SERVER` span of an MCP request.
pub fn start_request(tracer: &SdkTracer, request: &McpRequest<'_>) -> RequestSpan {
    let from_meta = request.meta.and_then(|meta| extract(&MetaCarrier(meta)));
    let from_header = request
        .headers
        .and_then(|headers| extract(&opentelemetry_http::HeaderExtractor(headers)));
    let (parent, link) = match (from_meta, from_header) {
        (Some(meta), header) => (meta, header),
        (None, Some(header)) => (header, None),
        (None, None) => (Context::new(), None),
    };
    // The span's target: the tool or the prompt.
    let name = match request.tool.or(request.prompt) {
        Some(target) => format!("{} {target}", request.method),
        None => request.method.to_string(),
    };
    let mut attributes = Vec::with_capacity(8);
    attributes.push(KeyValue::new("mcp.method.name", request.method.to_string()));
    attributes.push(KeyValue::new(
        "jsonrpc.request.id",
        request.request_id.clone(),
    ));
    attributes.push(KeyValue::new("network.transport", request.transport));
    if request.transport == "tcp" {
        attributes.push(KeyValue::new("network.protocol.name", "http"));
    }
    if let Some(version) = &request.protocol_version {
        attributes.push(KeyValue::new("mcp.protocol.version", version.clone()));
    }
    if let Some(tool) = request.tool {
        attributes.push(KeyValue::new("gen_ai.operation.name", "execute_tool"));
        attributes.push(KeyValue::new("gen_ai.tool.name", tool.to_string()));
    }
    if let Some(prompt) = request.prompt {
        attributes.push(KeyValue::new("gen_ai.prompt.name", prompt.to_string()));
    }
    if let Some(uri) = request.resource_uri {
        attributes.push(KeyValue::new("mcp.resource.uri", uri.to_string()));
    }
    let mut builder = tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .with_attributes(attributes);
    if let Some(link) = link {
        builder = builder.with_links(vec![Link::with_context(link.span().span_context().clone())]);
    }
    let span = builder.start_with_context(tracer, &parent);
    RequestSpan {
        cx: parent.with_span(span),
        ended: false,
    }
}

/// An MCP request's span. Dropped without [`RequestSpan::end`] (the client went away and the
/// request's future was dropped), it ends as `error.type` `cancelled`.
pub struct RequestSpan {
    cx: Context,
    ended: bool,
}

impl RequestSpan {
    /// The context the request's work runs in (`FutureExt::with_context`).
    pub fn context(&self) -> Context {
        self.cx.clone()
    }

    /// Ends the span; `error` is the JSON-RPC error (code, message) if the request failed.
    pub fn end(mut self, error: Option<(i32, &str)>) {
        let span = self.cx.span();
        if let Some((code, message)) = error {
            span.set_attribute(KeyValue::new("error.type", code.to_string()));
            span.set_attribute(KeyValue::new("rpc.response.status_code", code.to_string()));
            span.set_status(Status::error(message.to_string()));
        }
        span.end();
        self.ended = true;
    }
}

impl Drop for RequestSpan {
    fn drop(&mut self) {
        if !self.ended {
            let span = self.cx.span();
            span.set_attribute(KeyValue::new("error.type", "cancelled"));
            span.set_status(Status::error(
                "the request was cancelled before it answered",
            ));
            span.end();
        }
    }
}

/// Adds a tool call's own figures to the current MCP span (when traces are on). A tool's error
/// result (`isError`) is `error.type` `tool_error`, as the conventions say, with this server's
/// kind of error (`timeout`, `rate_limited`, …) as the status description.
pub fn annotate_call(
    outcome: &str,
    environment: Option<&str>,
    scanned_bytes: u64,
    result_bytes: usize,
) {
    if tracer().is_none() {
        return;
    }
    let cx = Context::current();
    let span = cx.span();
    span.set_attribute(KeyValue::new("dynatrace_mcp.outcome", outcome.to_string()));
    if outcome != "ok" {
        span.set_attribute(KeyValue::new("error.type", "tool_error"));
        span.set_status(Status::error(outcome.to_string()));
    }
    if let Some(environment) = environment {
        span.set_attribute(KeyValue::new(
            "dynatrace_mcp.environment",
            environment.to_string(),
        ));
    }
    span.set_attribute(KeyValue::new(
        "dynatrace_mcp.grail.scanned_bytes",
        scanned_bytes as i64,
    ));
    span.set_attribute(KeyValue::new(
        "dynatrace_mcp.result_bytes",
        result_bytes as i64,
    ));
}

/// The trace and span id of the current span (lowercase hex), when traces are on: the audit line
/// carries them, so a log line leads to its trace.
pub fn current_ids() -> Option<(String, String)> {
    tracer()?;
    let cx = Context::current();
    let span = cx.span();
    let context = span.span_context();
    context.is_valid().then(|| {
        (
            context.trace_id().to_string(),
            context.span_id().to_string(),
        )
    })
}

/// The `CLIENT` span of one Dynatrace HTTP request, child of the current context.
pub struct Outbound {
    cx: Context,
}

impl Outbound {
    /// `None` when traces are off. `url` is the request's URL without its query string.
    pub fn start(method: &http::Method, url: &str, resend_count: u32) -> Option<Self> {
        let tracer = tracer()?;
        let mut attributes = Vec::with_capacity(6);
        attributes.push(KeyValue::new("http.request.method", method.to_string()));
        attributes.push(KeyValue::new("url.full", url.to_string()));
        if let Ok(parsed) = url::Url::parse(url) {
            if let Some(host) = parsed.host_str() {
                attributes.push(KeyValue::new("server.address", host.to_string()));
            }
            if let Some(port) = parsed.port_or_known_default() {
                attributes.push(KeyValue::new("server.port", i64::from(port)));
            }
        }
        if resend_count > 0 {
            attributes.push(KeyValue::new(
                "http.request.resend_count",
                i64::from(resend_count),
            ));
        }
        let parent = Context::current();
        let span = tracer
            .span_builder(method.to_string())
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        Some(Self {
            cx: parent.with_span(span),
        })
    }

    /// The `traceparent` (and `tracestate`) headers that carry this span to Dynatrace.
    pub fn headers(&self) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        TraceContextPropagator::new().inject_context(&self.cx, &mut HeaderInjector(&mut headers));
        headers
    }

    /// Ends the span with the response's status, or the transport error's kind.
    pub fn finish(self, outcome: Result<u16, &str>) {
        let span = self.cx.span();
        match outcome {
            Ok(status) => {
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status),
                ));
                if status >= 400 {
                    span.set_attribute(KeyValue::new("error.type", status.to_string()));
                    span.set_status(Status::error(String::new()));
                }
            }
            Err(kind) => {
                span.set_attribute(KeyValue::new("error.type", kind.to_string()));
                span.set_status(Status::error(String::new()));
            }
        }
        span.end();
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Option<TraceSettings>, ConfigError> {
        TraceSettings::from_source(&Source::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn off_without_an_endpoint_or_when_disabled() {
        assert_eq!(settings(&[]).unwrap(), None);
        assert_eq!(
            settings(&[("OTEL_EXPORTER_OTLP_HEADERS", "a=b")]).unwrap(),
            None
        );
        for (key, value) in [
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            assert_eq!(
                settings(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
                    (key, value)
                ])
                .unwrap(),
                None
            );
        }
    }

    #[test]
    fn a_base_endpoint_gets_the_traces_path_and_a_traces_endpoint_is_taken_as_is() {
        let base = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318")])
            .unwrap()
            .unwrap();
        assert_eq!(base.endpoint.as_str(), "http://localhost:4318/v1/traces");
        let dynatrace = settings(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://abc12345.live.dynatrace.com/api/v2/otlp/",
        )])
        .unwrap()
        .unwrap();
        assert_eq!(
            dynatrace.endpoint.as_str(),
            "https://abc12345.live.dynatrace.com/api/v2/otlp/v1/traces"
        );
        let traces = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://collector:4318/custom",
            ),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(traces.endpoint.as_str(), "http://collector:4318/custom");
        assert_eq!(traces.timeout, DEFAULT_TIMEOUT);
        assert_eq!(traces.service_name, DEFAULT_SERVICE_NAME);
    }

    #[test]
    fn bad_settings_say_what_to_change_without_repeating_secrets() {
        let endpoint = |value: &str| {
            settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", value)])
                .unwrap_err()
                .to_string()
        };
        assert!(
            endpoint("localhost:4318").contains("http and https"),
            "{}",
            endpoint("localhost:4318")
        );
        assert!(endpoint("not a url").contains("not a URL"));
        let with_password = endpoint("https://user:hunter2@collector:4318");
        assert!(with_password.contains("OTEL_EXPORTER_OTLP_HEADERS"));
        assert!(!with_password.contains("hunter2"));

        let protocol = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .unwrap_err();
        assert_eq!(protocol.variable, "OTEL_EXPORTER_OTLP_PROTOCOL");
        assert!(protocol.problem.contains("http/protobuf"));

        let headers = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "ok=1,Authorization Api-Token dt0c01.SECRET",
            ),
        ])
        .unwrap_err();
        assert!(headers.problem.contains("pair 2 has no ="), "{headers}");
        assert!(!headers.to_string().contains("SECRET"));

        let timeout = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
        ])
        .unwrap_err();
        assert!(timeout.problem.contains("milliseconds"));

        assert!(
            settings(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
                ("OTEL_TRACES_EXPORTER", "zipkin"),
            ])
            .is_err()
        );
        let sampler = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ])
        .unwrap_err();
        assert_eq!(sampler.variable, "OTEL_TRACES_SAMPLER_ARG");
        let typo = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
            ("OTEL_TRACES_SAMPLER", "parentbased_ratio"),
        ])
        .unwrap_err();
        assert!(typo.problem.contains("parentbased_traceidratio"), "{typo}");
        let ratio = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(ratio.sampler, SamplerSetting::ParentBasedRatio(0.25));

        // The traces-specific protocol wins over the general one; compression is refused.
        assert!(
            settings(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ])
            .is_ok()
        );
        let gzip = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ])
        .unwrap_err();
        assert_eq!(gzip.variable, "OTEL_EXPORTER_OTLP_COMPRESSION");
    }

    #[test]
    fn headers_are_percent_decoded_and_kept_out_of_debug() {
        let traces = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "Authorization=Api-Token%20dt0c01.SECRET, x-tenant = a%2Cb",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            traces.headers,
            vec![
                (
                    "Authorization".to_string(),
                    "Api-Token dt0c01.SECRET".to_string()
                ),
                ("x-tenant".to_string(), "a,b".to_string()),
            ]
        );
        assert_eq!(traces.timeout, Duration::from_millis(2500));
        let debug = format!("{traces:?}");
        assert!(
            debug.contains("Authorization") && !debug.contains("SECRET"),
            "{debug}"
        );
    }

    /// Keeps what the SDK exports (a simple processor exports each span as it ends).
    #[derive(Debug, Clone, Default)]
    struct Collect(std::sync::Arc<std::sync::Mutex<Vec<opentelemetry_sdk::trace::SpanData>>>);

    impl opentelemetry_sdk::trace::SpanExporter for Collect {
        async fn export(
            &self,
            batch: Vec<opentelemetry_sdk::trace::SpanData>,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    fn attribute(span: &opentelemetry_sdk::trace::SpanData, key: &str) -> Option<String> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    }

    #[test]
    fn the_meta_context_is_the_parent_and_the_header_a_link() {
        let spans = Collect::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        let tracer = provider.tracer("test");
        let meta: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
            r#"{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#,
        )
        .unwrap();
        let bad: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"traceparent":"00-zz-00-01"}"#).unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap(),
        );
        let request = |id: &str, meta, headers| McpRequest {
            method: "tools/call",
            tool: Some("execute_dql"),
            prompt: None,
            resource_uri: None,
            request_id: id.into(),
            protocol_version: None,
            transport: "tcp",
            meta,
            headers,
        };
        start_request(&tracer, &request("both", Some(&meta), Some(&headers))).end(None);
        start_request(&tracer, &request("header", None, Some(&headers))).end(None);
        start_request(&tracer, &request("bad", Some(&bad), None)).end(Some((-32602, "nope")));
        // Dropped before it answered: the client went away.
        drop(start_request(&tracer, &request("dropped", None, None)));

        let spans = spans.0.lock().unwrap().clone();
        let by_id = |id: &str| {
            spans
                .iter()
                .find(|s| attribute(s, "jsonrpc.request.id").as_deref() == Some(id))
                .unwrap_or_else(|| panic!("no span {id}"))
        };
        let both = by_id("both");
        assert_eq!(both.name, "tools/call execute_dql");
        assert_eq!(
            both.span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(both.parent_span_id.to_string(), "00f067aa0ba902b7");
        assert!(both.parent_span_is_remote);
        let links: Vec<_> = both.links.iter().collect();
        assert_eq!(links.len(), 1);
        assert_eq!(
            links[0].span_context.span_id().to_string(),
            "b7ad6b7169203331"
        );
        assert_eq!(
            attribute(both, "gen_ai.operation.name").as_deref(),
            Some("execute_tool")
        );

        let header = by_id("header");
        assert_eq!(header.parent_span_id.to_string(), "b7ad6b7169203331");
        assert_eq!(header.links.iter().count(), 0);

        // A malformed traceparent is ignored: a new trace, no parent.
        let bad = by_id("bad");
        assert_eq!(bad.parent_span_id, opentelemetry::trace::SpanId::INVALID);
        assert_eq!(attribute(bad, "error.type").as_deref(), Some("-32602"));
        assert!(matches!(&bad.status, Status::Error { description } if description == "nope"));

        let dropped = by_id("dropped");
        assert_eq!(
            attribute(dropped, "error.type").as_deref(),
            Some("cancelled")
        );
        assert!(matches!(dropped.status, Status::Error { .. }));
    }
}
