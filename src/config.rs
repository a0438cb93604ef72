//! Settings: the process environment, optionally layered under the JSON keys of a Secrets Manager
//! secret, parsed and validated once at start-up.
//!
//! Every variable of the seed deployment guide (`DT_ENVIRONMENT`, `OAUTH_CLIENT_ID`,
//! `OAUTH_CLIENT_SECRET`, `DT_ACCOUNT_URN`, `DT_PLATFORM_TOKEN`, `MCP_AUTH_TOKEN`, `MCP_LOG_LEVEL`)
//! keeps its name and meaning. Parsing happens here, at the edge: the rest of the crate receives
//! validated types (`DtEnvironment`, `Credentials`, …) and never reads the environment itself.
//!
//! A bad value stops start-up with one [`ConfigError`] line that names the variable and the
//! expected form. Secret values never appear in that line: they are held as [`SecretString`] from
//! the moment they are read.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::environments::{CredentialSpec, EnvironmentSpec, RegistryContext};
use crate::identity::{IdentitySettings, PassThrough};

/// The variables that hold the server's own Dynatrace credential.
const CREDENTIAL_VARIABLES: &[&str] = &[
    "DT_PLATFORM_TOKEN",
    "OAUTH_CLIENT_ID",
    "OAUTH_CLIENT_SECRET",
    "DT_ACCOUNT_URN",
];

/// The default SSO token endpoint of Dynatrace SaaS.
pub const DEFAULT_SSO_URL: &str = "https://sso.dynatrace.com/sso/oauth2/token";
/// Default request body limit for the HTTP front doors (1 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Default size budget of one tool result (text plus structured content, as they travel in the
/// JSON answer), sized for a model's context rather than for a transport's maximum: 60 KiB keeps
/// a whole answer, envelope included, under 64 kB (Claude Code caps a tool's output at 25,000
/// tokens by default).
pub const DEFAULT_RESULT_MAX_BYTES: usize = 60 * 1024;

/// Variables this server understands. A Secrets Manager secret may carry any of them; an unknown
/// key in the secret is reported (by name only) instead of being silently ignored.
pub const KNOWN_VARIABLES: &[&str] = &[
    "DT_ENVIRONMENT",
    "OAUTH_CLIENT_ID",
    "OAUTH_CLIENT_SECRET",
    "DT_ACCOUNT_URN",
    "DT_PLATFORM_TOKEN",
    "DT_SSO_URL",
    "DT_CA_BUNDLE",
    "MCP_AUTH_TOKEN",
    "MCP_LOG_LEVEL",
    "MCP_ALLOWED_HOSTS",
    "MCP_ALLOWED_ORIGINS",
    "MCP_ALLOW_UNAUTHENTICATED",
    "MCP_TOOL_TIMEOUT_SECONDS",
    "MCP_MAX_REQUEST_BYTES",
    "MCP_SIGNING_KEY",
    "MCP_RESULT_MAX_BYTES",
    "MCP_LOG_FORMAT",
    "DT_ENABLE_WRITE_TOOLS",
    "DT_ENABLE_DAVIS_COPILOT",
    "DT_GRAIL_QUERY_BUDGET_GB",
    "DT_QUERY_SCAN_LIMIT_GB",
    "SLACK_CONNECTION_ID",
    "MCP_CONFIRMATION_TTL_SECONDS",
    "MCP_AUTH_TOKEN_KEY",
    "MCP_AUTH_TOKEN_PRINCIPAL",
    "MCP_AUTH_TOKEN_SCOPES",
    "MCP_OAUTH_ISSUER",
    "MCP_PUBLIC_URL",
    "MCP_OAUTH_AUDIENCE",
    "MCP_OAUTH_JWKS_URL",
    "MCP_OAUTH_CLIENT_IDS",
    "MCP_OAUTH_SCOPE_READ",
    "MCP_OAUTH_SCOPE_DAVIS",
    "MCP_OAUTH_SCOPE_WRITE",
    "MCP_TRUST_GATEWAY_AUTHORIZER",
    "DT_TOKEN_PASSTHROUGH",
    "MCP_RATE_LIMIT",
    "MCP_AUDIT_LOG",
    "MCP_STATE_TABLE",
    "MCP_STATE_FAIL_CLOSED",
    "DT_GRAIL_USER_BUDGET_GB",
    "MCP_HEADER_READ_TIMEOUT_SECONDS",
    "MCP_MAX_CONCURRENT_REQUESTS",
    "MCP_MAX_CONNECTIONS",
    "MCP_SHUTDOWN_GRACE_SECONDS",
    "DT_ENVIRONMENTS",
    "DT_ENVIRONMENTS_FILE",
    "DT_DEFAULT_ENVIRONMENT",
    "MCP_METRICS",
    "MCP_METRICS_NAMESPACE",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_SERVICE_NAME",
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
];

/// A start-up configuration problem: which variable, and what form was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            variable: variable.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    /// One line per problem, each naming the variable (a registry reports several at once).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.problem.lines().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}: {}", self.variable, line)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Where settings come from: variable name → value. Empty values count as unset, as the seed's
/// task definition may pass `""` for a variable it does not use.
#[derive(Clone, Default)]
pub struct Source {
    vars: HashMap<String, String>,
    /// Which keys came from the Secrets Manager secret (for messages only).
    from_secret: Vec<String>,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: list the names only.
        let mut keys: Vec<_> = self.vars.keys().collect();
        keys.sort();
        f.debug_struct("Source").field("keys", &keys).finish()
    }
}

impl Source {
    /// The process environment.
    pub fn from_env() -> Self {
        Self::from_pairs(std::env::vars())
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        Self {
            vars,
            from_secret: Vec::new(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(|v| v.trim())
    }

    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let value = value.into();
        let key = key.into();
        if value.trim().is_empty() {
            self.vars.remove(&key);
        } else {
            self.vars.insert(key, value);
        }
    }

    /// The Secrets Manager secret id, if one is configured (`DT_SECRET_ID`, or `MCP_SECRET_ID`).
    pub fn secret_id(&self) -> Option<&str> {
        self.get("DT_SECRET_ID")
            .or_else(|| self.get("MCP_SECRET_ID"))
    }

    /// Lays the keys of a secret's JSON object over this source. Returns the keys that are not
    /// variables this server knows (they are ignored, and the caller reports them by name).
    ///
    /// `MCP_AUTH_TOKEN_KEY` (from the environment) names the key that holds the auth token when it
    /// is not `MCP_AUTH_TOKEN`, e.g. a secret shared with other services.
    pub fn overlay_secret(&mut self, secret_json: &str) -> Result<Vec<String>, ConfigError> {
        let token_key = self
            .get("MCP_AUTH_TOKEN_KEY")
            .filter(|k| *k != "MCP_AUTH_TOKEN")
            .map(str::to_string);
        let parsed: serde_json::Value = serde_json::from_str(secret_json).map_err(|_| {
            ConfigError::new(
                "DT_SECRET_ID",
                "the secret's value is not JSON; store a JSON object such as \
                 {\"DT_ENVIRONMENT\":\"https://abc12345.apps.dynatrace.com\",\"DT_PLATFORM_TOKEN\":\"dt0s16....\"}",
            )
        })?;
        let serde_json::Value::Object(map) = parsed else {
            return Err(ConfigError::new(
                "DT_SECRET_ID",
                "the secret's value must be a JSON object whose keys are variable names (e.g. DT_ENVIRONMENT)",
            ));
        };
        let mut unknown = Vec::new();
        for (key, value) in map {
            let key = if token_key.as_deref() == Some(key.as_str()) {
                "MCP_AUTH_TOKEN".to_string()
            } else {
                key
            };
            if !KNOWN_VARIABLES.contains(&key.as_str()) {
                unknown.push(key);
                continue;
            }
            let value = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Null => continue,
                // The registry may be stored as an object rather than a string holding one; its
                // text is taken as written, since the order of its aliases matters (the first is
                // the default) and a parsed map sorts them.
                serde_json::Value::Object(_) if key == "DT_ENVIRONMENTS" => {
                    #[derive(serde::Deserialize)]
                    struct Registry<'a> {
                        #[serde(rename = "DT_ENVIRONMENTS", borrow)]
                        registry: &'a serde_json::value::RawValue,
                    }
                    serde_json::from_str::<Registry>(secret_json)
                        .map(|r| r.registry.get().to_string())
                        .map_err(|_| {
                            ConfigError::new("DT_ENVIRONMENTS (in secret)", "must be a JSON object")
                        })?
                }
                _ => {
                    return Err(ConfigError::new(
                        format!("{key} (in secret)"),
                        "must be a string",
                    ));
                }
            };
            self.from_secret.push(key.clone());
            self.set(key, value);
        }
        Ok(unknown)
    }

    pub(crate) fn origin(&self, key: &str) -> String {
        if self.from_secret.iter().any(|k| k == key) {
            format!("{key} (from the secret)")
        } else {
            key.to_string()
        }
    }

    pub(crate) fn flag(&self, key: &str) -> Result<bool, ConfigError> {
        match self.get(key).map(str::to_ascii_lowercase).as_deref() {
            None | Some("0") | Some("false") | Some("no") | Some("off") => Ok(false),
            Some("1") | Some("true") | Some("yes") | Some("on") => Ok(true),
            Some(_) => Err(ConfigError::new(
                self.origin(key),
                "expected 1 or 0 (true or false)",
            )),
        }
    }
}

/// A validated Dynatrace platform environment URL, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtEnvironment(Url);

impl DtEnvironment {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let expected = "expected the platform URL of your environment, such as https://abc12345.apps.dynatrace.com";
        let url = Url::parse(raw.trim())
            .map_err(|_| format!("{expected}; got a value that is not a URL"))?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if host.is_empty() {
            return Err(format!("{expected}; the URL has no host"));
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback_host(&host) => {}
            "http" => {
                return Err(format!(
                    "{expected}; http:// is only accepted for a loopback address, use https://"
                ));
            }
            _ => return Err(format!("{expected}; the scheme must be https")),
        }
        if host.ends_with(".live.dynatrace.com") {
            let id = host.trim_end_matches(".live.dynatrace.com");
            return Err(format!(
                "{host} is the classic (Gen2) API host; the platform APIs this server calls live under \
                 apps.dynatrace.com: use https://{id}.apps.dynatrace.com"
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "{expected}; remove the user name and password from the URL"
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("{expected}; remove the query string and fragment"));
        }
        let mut url = url;
        let trimmed = url.path().trim_end_matches('/').to_string();
        url.set_path(&trimmed);
        Ok(Self(url))
    }

    /// The base URL as a string without trailing slash, e.g. `https://abc12345.apps.dynatrace.com`.
    pub fn base(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }

    /// An absolute URL for a platform API path (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base(), path)
    }
}

fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// How this server authenticates to Dynatrace.
#[derive(Clone)]
pub enum Credentials {
    /// `DT_PLATFORM_TOKEN`, sent as `Authorization: Bearer …`.
    PlatformToken(SecretString),
    /// OAuth client credentials, exchanged at the SSO token endpoint.
    OAuth {
        client_id: String,
        client_secret: SecretString,
        account_urn: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::PlatformToken(_) => f.write_str("PlatformToken([redacted])"),
            Credentials::OAuth {
                client_id,
                account_urn,
                ..
            } => f
                .debug_struct("OAuth")
                .field("client_id", client_id)
                .field("client_secret", &"[redacted]")
                .field("account_urn", account_urn)
                .finish(),
        }
    }
}

impl Credentials {
    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::PlatformToken(_) => "platform token",
            Credentials::OAuth { .. } => "OAuth client credentials",
        }
    }

    /// Bytes that identify this credential without revealing it: used to derive keys (cache keys,
    /// the default signing key), never logged.
    pub fn fingerprint_material(&self) -> Vec<u8> {
        match self {
            Credentials::PlatformToken(token) => {
                [b"platform:".as_slice(), token.expose_secret().as_bytes()].concat()
            }
            Credentials::OAuth {
                client_id,
                client_secret,
                account_urn,
            } => [
                b"oauth:".as_slice(),
                client_id.as_bytes(),
                b"\n",
                client_secret.expose_secret().as_bytes(),
                b"\n",
                account_urn.as_bytes(),
            ]
            .concat(),
        }
    }
}

/// `MCP_LOG_LEVEL`: the seed's names (`off`, `error`, `warn`, `info`, `debug`) plus `trace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        Ok(match raw.trim().to_ascii_lowercase().as_str() {
            "off" | "none" => LogLevel::Off,
            "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            // `access` is the Go server's name for its request log level.
            "info" | "access" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => {
                return Err(ConfigError::new(
                    "MCP_LOG_LEVEL",
                    "expected one of off, error, warn, info, debug, trace",
                ));
            }
        })
    }

    pub fn from_source(source: &Source) -> Result<Self, ConfigError> {
        source
            .get("MCP_LOG_LEVEL")
            .map(LogLevel::parse)
            .transpose()
            .map(|level| level.unwrap_or(LogLevel::Info))
    }

    pub fn as_filter(self) -> &'static str {
        match self {
            LogLevel::Off => "off",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// Which front door is starting: it changes defaults (timeouts, the Host allow-list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontDoor {
    Http,
    Lambda,
    Stdio,
}

/// The validated settings of one process.
#[derive(Clone)]
pub struct Settings {
    /// The default environment's URL.
    pub environment: DtEnvironment,
    /// The default environment's credential; `None` only with `DT_TOKEN_PASSTHROUGH=required`,
    /// where every caller brings its own token (or until an environment's secret is read:
    /// [`Settings::resolve_environment_secrets`]).
    pub credentials: Option<Credentials>,
    /// Every environment, the default first: `DT_ENVIRONMENTS`, or the one `DT_ENVIRONMENT`
    /// configures under the alias `default`.
    pub environments: Vec<EnvironmentSpec>,
    /// Whether `DT_ENVIRONMENTS` configured them (tools then take `environment`, and
    /// `list_environments` is offered).
    pub registry: bool,
    pub sso_url: Url,
    /// `MCP_AUTH_TOKEN`: required on every MCP request over HTTP when set.
    pub mcp_auth_token: Option<SecretString>,
    /// `MCP_ALLOW_UNAUTHENTICATED=1`: a gateway in front authenticates callers.
    pub allow_unauthenticated: bool,
    /// `MCP_ALLOWED_HOSTS`: `None` when unset (the front door picks its default), `Some(vec![])`
    /// when set to `*` (any Host).
    pub allowed_hosts: Option<Vec<String>>,
    /// `MCP_ALLOWED_ORIGINS`: `None` when unset.
    pub allowed_origins: Option<Vec<String>>,
    pub log_level: LogLevel,
    /// The longest a tool call may take, before any Lambda deadline is applied.
    pub tool_timeout: Duration,
    pub max_request_bytes: usize,
    /// `MCP_HEADER_READ_TIMEOUT_SECONDS` (`serve`): how long a client may take to send a request's
    /// headers, an idle keep-alive connection included, before the connection is closed.
    pub header_read_timeout: Duration,
    /// `MCP_MAX_CONCURRENT_REQUESTS`: MCP requests served at once; past it, 503 with `Retry-After`.
    pub max_concurrent_requests: usize,
    /// `MCP_MAX_CONNECTIONS` (`serve`): open connections; past it, a new one gets 503 and is closed.
    pub max_connections: usize,
    /// `MCP_SHUTDOWN_GRACE_SECONDS` (`serve`): after SIGTERM, how long calls in flight may run
    /// before they are cancelled (and their Grail queries with them).
    pub shutdown_grace: Duration,
    /// `MCP_RESULT_MAX_BYTES`: size budget of one tool result.
    pub result_budget_bytes: usize,
    /// `DT_CA_BUNDLE`: extra PEM roots trusted for outbound HTTPS, beside the system's.
    pub ca_bundle: Option<PathBuf>,
    /// `MCP_SIGNING_KEY`: signs handles handed to clients (query handles). When unset, a key is
    /// derived from the Dynatrace credential, so every instance that shares it agrees.
    pub signing_key: Option<SecretString>,
    /// `DT_ENABLE_WRITE_TOOLS=1`: list and allow the tools that change things (email, Slack,
    /// workflows, notebooks, events), each behind a confirmation step.
    pub enable_write_tools: bool,
    /// `DT_ENABLE_DAVIS_COPILOT=1` (or `true`): list the Davis CoPilot and analyzer tools, as the Go
    /// server's switch does.
    pub enable_davis_copilot: bool,
    /// `DT_GRAIL_QUERY_BUDGET_GB`: bytes Grail may scan for this process before queries are
    /// refused (decimal GB, default 1000); `None` when set to 0 or -1 (unlimited).
    pub grail_budget_bytes: Option<u64>,
    /// `DT_GRAIL_USER_BUDGET_GB`: bytes one principal's queries may scan per UTC day; `None` (the
    /// default) for no per-principal budget.
    pub grail_user_budget_bytes: Option<u64>,
    /// `MCP_STATE_TABLE`: the DynamoDB table every instance shares confirmations, budgets and rate
    /// limits through; `None`: each instance keeps its own in memory.
    pub state_table: Option<String>,
    /// `MCP_STATE_FAIL_CLOSED=1`: budgets and rate limits refuse calls when the table cannot be
    /// used (confirmations always do).
    pub state_fail_closed: bool,
    /// `DT_QUERY_SCAN_LIMIT_GB`: Grail's per-query scan limit (`defaultScanLimitGbytes`).
    pub query_scan_limit_gb: Option<f64>,
    /// `SLACK_CONNECTION_ID`: the Slack connection `send_slack_message` posts through.
    pub slack_connection_id: Option<String>,
    /// `MCP_CONFIRMATION_TTL_SECONDS`: how long a write preview's confirmation token is valid.
    pub confirmation_ttl: Duration,
    /// Who may call: OAuth, the static token's principal, gateway trust, pass-through, rate
    /// limit, audit.
    pub identity: IdentitySettings,
    /// `MCP_METRICS`, `MCP_METRICS_NAMESPACE`: one EMF record per tool call; `None` when off.
    pub metrics: Option<crate::metrics::Metrics>,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` and the other `OTEL_*` exporter variables: OpenTelemetry
    /// spans over OTLP/HTTP; `None` when off.
    pub traces: Option<crate::telemetry::TraceSettings>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("environment", &self.environment.base())
            .field("credentials", &self.credentials)
            .field("environments", &self.environments)
            .field("sso_url", &self.sso_url.as_str())
            .field(
                "mcp_auth_token",
                &self.mcp_auth_token.as_ref().map(|_| "[redacted]"),
            )
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("allowed_origins", &self.allowed_origins)
            .field("log_level", &self.log_level)
            .field("tool_timeout", &self.tool_timeout)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("result_budget_bytes", &self.result_budget_bytes)
            .field("ca_bundle", &self.ca_bundle)
            .field("enable_write_tools", &self.enable_write_tools)
            .field("enable_davis_copilot", &self.enable_davis_copilot)
            .field("grail_budget_bytes", &self.grail_budget_bytes)
            .field("grail_user_budget_bytes", &self.grail_user_budget_bytes)
            .field("state_table", &self.state_table)
            .field("query_scan_limit_gb", &self.query_scan_limit_gb)
            .field("identity", &self.identity)
            .field("metrics", &self.metrics)
            .field("traces", &self.traces)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Parses and validates every setting. The first problem found is returned.
    pub fn from_source(source: &Source, front_door: FrontDoor) -> Result<Self, ConfigError> {
        let identity = IdentitySettings::from_source(source, front_door)?;
        let passthrough_required = identity.passthrough == PassThrough::Required;
        let (environments, registry) = match registry_json(source)? {
            Some((raw, origin)) => {
                if let Some(key) = std::iter::once(&"DT_ENVIRONMENT")
                    .chain(CREDENTIAL_VARIABLES)
                    .find(|k| source.get(k).is_some())
                {
                    return Err(ConfigError::new(
                        source.origin(key),
                        format!(
                            "must not be set with {origin}: the registry names every environment with its own credential; \
                             move it into an entry of the registry, or remove {origin}"
                        ),
                    ));
                }
                let specs = crate::environments::parse_registry(
                    &raw,
                    &RegistryContext {
                        origin: &origin,
                        passthrough_required,
                        default_alias: source.get("DT_DEFAULT_ENVIRONMENT"),
                    },
                )?;
                (specs, true)
            }
            None => {
                if source.get("DT_DEFAULT_ENVIRONMENT").is_some() {
                    return Err(ConfigError::new(
                        source.origin("DT_DEFAULT_ENVIRONMENT"),
                        "only applies with DT_ENVIRONMENTS (several environments); remove it, or configure DT_ENVIRONMENTS",
                    ));
                }
                (
                    vec![single_environment(source, passthrough_required)?],
                    false,
                )
            }
        };
        if passthrough_required && source.get("MCP_SIGNING_KEY").is_none() {
            return Err(ConfigError::new(
                "MCP_SIGNING_KEY",
                "is required with DT_TOKEN_PASSTHROUGH=required: there is no server credential to derive the key \
                 that signs query handles and confirmations from, and every instance must share it \
                 (e.g. `openssl rand -hex 32`, stored in the secret)",
            ));
        }
        let environment = environments[0].url.clone();
        let credentials = environments[0].credentials().cloned();

        let sso_url = match source.get("DT_SSO_URL") {
            None => Url::parse(DEFAULT_SSO_URL).expect("default SSO URL is valid"),
            Some(raw) => parse_endpoint_url(raw).map_err(|problem| {
                ConfigError::new(
                    source.origin("DT_SSO_URL"),
                    format!("{problem}; expected the token endpoint, such as {DEFAULT_SSO_URL}"),
                )
            })?,
        };

        let mcp_auth_token = source
            .get("MCP_AUTH_TOKEN")
            .map(|token| SecretString::from(token.to_string()));
        if let Some(token) = &mcp_auth_token
            && token.expose_secret().len() < 16
        {
            return Err(ConfigError::new(
                source.origin("MCP_AUTH_TOKEN"),
                "is too short: use at least 16 random characters (e.g. `openssl rand -hex 32`)",
            ));
        }

        let allowed_hosts = source.get("MCP_ALLOWED_HOSTS").map(|raw| {
            let list = split_list(raw);
            if list.iter().any(|h| h == "*") {
                Vec::new()
            } else {
                list
            }
        });
        if let Some(hosts) = &allowed_hosts
            && let Some(bad) = hosts.iter().find(|h| h.contains("://") || h.contains('/'))
        {
            return Err(ConfigError::new(
                source.origin("MCP_ALLOWED_HOSTS"),
                format!(
                    "expected host names or host:port pairs separated by commas (e.g. mcp.example.com,mcp.example.com:443), or *; `{bad}` looks like a URL"
                ),
            ));
        }

        // Each origin with its port spelled out: a portless entry means the scheme's default
        // port, not every port (crate::cors).
        let allowed_origins = match source.get("MCP_ALLOWED_ORIGINS") {
            None => None,
            Some(raw) => Some(
                split_list(raw)
                    .iter()
                    .map(|o| crate::cors::AllowedOrigin::parse(o).map(|o| o.to_string()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|problem| {
                        ConfigError::new(
                            source.origin("MCP_ALLOWED_ORIGINS"),
                            format!(
                                "expected origins separated by commas (e.g. https://app.example.com,http://localhost:*); {problem}"
                            ),
                        )
                    })?,
            ),
        };

        let default_timeout = match front_door {
            FrontDoor::Lambda | FrontDoor::Http => 25,
            FrontDoor::Stdio => 60,
        };
        let tool_timeout = match source.get("MCP_TOOL_TIMEOUT_SECONDS") {
            None => Duration::from_secs(default_timeout),
            Some(raw) => match raw.parse::<u64>() {
                Ok(secs @ 1..=900) => Duration::from_secs(secs),
                _ => {
                    return Err(ConfigError::new(
                        source.origin("MCP_TOOL_TIMEOUT_SECONDS"),
                        "expected a whole number of seconds between 1 and 900",
                    ));
                }
            },
        };

        let max_request_bytes = match source.get("MCP_MAX_REQUEST_BYTES") {
            None => DEFAULT_MAX_REQUEST_BYTES,
            Some(raw) => match raw.parse::<usize>() {
                Ok(bytes @ 1024..=10_485_760) => bytes,
                _ => {
                    return Err(ConfigError::new(
                        source.origin("MCP_MAX_REQUEST_BYTES"),
                        "expected a number of bytes between 1024 and 10485760",
                    ));
                }
            },
        };

        // Longer than an ALB's default idle timeout (60 s), so the load balancer, not this server,
        // closes idle keep-alive connections (AWS's advice, against 502s on a closing connection).
        let header_read_timeout = match source.get("MCP_HEADER_READ_TIMEOUT_SECONDS") {
            None => Duration::from_secs(75),
            Some(raw) => match raw.parse::<u64>() {
                Ok(secs @ 1..=3600) => Duration::from_secs(secs),
                _ => {
                    return Err(ConfigError::new(
                        source.origin("MCP_HEADER_READ_TIMEOUT_SECONDS"),
                        "expected a whole number of seconds between 1 and 3600",
                    ));
                }
            },
        };

        let max_concurrent_requests =
            bounded_whole(source, "MCP_MAX_CONCURRENT_REQUESTS", 256, 1, 100_000)? as usize;
        let max_connections =
            bounded_whole(source, "MCP_MAX_CONNECTIONS", 1024, 1, 1_000_000)? as usize;
        // Below ECS's default stopTimeout (30 s): calls are cancelled, and their queries with them,
        // before the task is killed.
        let shutdown_grace = Duration::from_secs(bounded_whole(
            source,
            "MCP_SHUTDOWN_GRACE_SECONDS",
            25,
            0,
            115,
        )?);

        let result_budget_bytes = match source.get("MCP_RESULT_MAX_BYTES") {
            None => DEFAULT_RESULT_MAX_BYTES,
            Some(raw) => match raw.parse::<usize>() {
                Ok(bytes @ 4096..=5_000_000) => bytes,
                _ => {
                    return Err(ConfigError::new(
                        source.origin("MCP_RESULT_MAX_BYTES"),
                        "expected a number of bytes between 4096 and 5000000 (Lambda answers at most 6 MB, an ALB 1 MB)",
                    ));
                }
            },
        };

        let ca_bundle = source.get("DT_CA_BUNDLE").map(PathBuf::from);
        if let Some(path) = &ca_bundle
            && !path.is_file()
        {
            return Err(ConfigError::new(
                source.origin("DT_CA_BUNDLE"),
                format!(
                    "expected the path of a PEM file of CA certificates; {} is not a readable file",
                    path.display()
                ),
            ));
        }

        let signing_key = source
            .get("MCP_SIGNING_KEY")
            .map(|key| SecretString::from(key.to_string()));
        if let Some(key) = &signing_key
            && key.expose_secret().len() < 32
        {
            return Err(ConfigError::new(
                source.origin("MCP_SIGNING_KEY"),
                "is too short: use at least 32 random characters (e.g. `openssl rand -hex 32`)",
            ));
        }

        let grail_budget_bytes = match source.get("DT_GRAIL_QUERY_BUDGET_GB") {
            None => Some(1000 * 1_000_000_000),
            Some(raw) => match raw.parse::<f64>() {
                Ok(gb) if gb == 0.0 || gb == -1.0 => None,
                Ok(gb) if gb > 0.0 && gb <= 1_000_000.0 => Some((gb * 1e9) as u64),
                _ => {
                    return Err(ConfigError::new(
                        source.origin("DT_GRAIL_QUERY_BUDGET_GB"),
                        "expected a number of GB greater than 0 (e.g. 1000), or -1 for no budget",
                    ));
                }
            },
        };
        let grail_user_budget_bytes = match source.get("DT_GRAIL_USER_BUDGET_GB") {
            None => None,
            Some(raw) => match raw.parse::<f64>() {
                Ok(gb) if gb == 0.0 || gb == -1.0 => None,
                Ok(gb) if gb > 0.0 && gb <= 1_000_000.0 => Some((gb * 1e9) as u64),
                _ => {
                    return Err(ConfigError::new(
                        source.origin("DT_GRAIL_USER_BUDGET_GB"),
                        "expected a number of GB greater than 0 that each caller may scan per UTC day (e.g. 100), or -1 for none",
                    ));
                }
            },
        };
        let state_table = source.get("MCP_STATE_TABLE").map(str::to_string);
        if let Some(table) = &state_table
            && (!(3..=255).contains(&table.len())
                || table
                    .chars()
                    .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))))
        {
            return Err(ConfigError::new(
                source.origin("MCP_STATE_TABLE"),
                "expected a DynamoDB table name: 3 to 255 letters, digits, '_', '-' or '.' (e.g. dynatrace-mcp-state)",
            ));
        }
        let confirmation_ttl = match source.get("MCP_CONFIRMATION_TTL_SECONDS") {
            None => Duration::from_secs(300),
            Some(raw) => match raw.parse::<u64>() {
                Ok(secs @ 1..=3600) => Duration::from_secs(secs),
                _ => {
                    return Err(ConfigError::new(
                        source.origin("MCP_CONFIRMATION_TTL_SECONDS"),
                        "expected a whole number of seconds between 1 and 3600",
                    ));
                }
            },
        };
        let query_scan_limit_gb = match source.get("DT_QUERY_SCAN_LIMIT_GB") {
            None => None,
            Some(raw) => match raw.parse::<f64>() {
                Ok(gb) if gb > 0.0 && gb <= 100_000.0 => Some(gb),
                _ => {
                    return Err(ConfigError::new(
                        source.origin("DT_QUERY_SCAN_LIMIT_GB"),
                        "expected a number of GB greater than 0 that one query may scan (e.g. 500)",
                    ));
                }
            },
        };

        Ok(Settings {
            environment,
            credentials,
            environments,
            registry,
            sso_url,
            mcp_auth_token,
            allow_unauthenticated: source.flag("MCP_ALLOW_UNAUTHENTICATED")?,
            allowed_hosts,
            allowed_origins,
            log_level: LogLevel::from_source(source)?,
            tool_timeout,
            max_request_bytes,
            header_read_timeout,
            max_concurrent_requests,
            max_connections,
            shutdown_grace,
            result_budget_bytes,
            ca_bundle,
            signing_key,
            enable_write_tools: source.flag("DT_ENABLE_WRITE_TOOLS")?,
            enable_davis_copilot: source.flag("DT_ENABLE_DAVIS_COPILOT")?,
            grail_budget_bytes,
            grail_user_budget_bytes,
            state_fail_closed: source.flag("MCP_STATE_FAIL_CLOSED")?,
            state_table,
            query_scan_limit_gb,
            slack_connection_id: source.get("SLACK_CONNECTION_ID").map(str::to_string),
            confirmation_ttl,
            identity,
            metrics: crate::metrics::Metrics::from_source(source, front_door)?,
            traces: crate::telemetry::TraceSettings::from_source(source)?,
        })
    }

    /// Reads the Secrets Manager secrets that registry entries name (`secretId`), all at once, at
    /// cold start. Without such entries, does nothing.
    pub async fn resolve_environment_secrets(&mut self) -> Result<(), ConfigError> {
        crate::environments::resolve_secrets(&mut self.environments).await?;
        self.credentials = self.environments[0].credentials().cloned();
        Ok(())
    }

    /// The non-secret settings as name → value, for the start-up log line.
    pub fn summary(&self) -> BTreeMap<&'static str, String> {
        let mut map = BTreeMap::new();
        map.insert("environment", self.environment.base().to_string());
        if self.registry {
            map.insert(
                "environments",
                self.environments
                    .iter()
                    .map(|e| format!("{}={}", e.alias, e.url.base()))
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        map.insert(
            "credentials",
            self.credentials
                .as_ref()
                .map_or("none (callers send their own)", Credentials::kind)
                .to_string(),
        );
        map.insert(
            "auth_token",
            if self.mcp_auth_token.is_some() {
                "set"
            } else {
                "unset"
            }
            .to_string(),
        );
        map.insert(
            "oauth_issuer",
            self.identity
                .oauth
                .as_ref()
                .map_or("unset".to_string(), |o| o.issuer.clone()),
        );
        map.insert(
            "token_passthrough",
            format!("{:?}", self.identity.passthrough).to_ascii_lowercase(),
        );
        map.insert(
            "state",
            self.state_table
                .as_ref()
                .map_or("memory (this instance)".to_string(), |t| {
                    format!("dynamodb table {t}")
                }),
        );
        map.insert("tool_timeout_s", self.tool_timeout.as_secs().to_string());
        map.insert("write_tools", self.enable_write_tools.to_string());
        map.insert("davis_copilot", self.enable_davis_copilot.to_string());
        map.insert(
            "metrics",
            self.metrics.as_ref().map_or("off".to_string(), |m| {
                format!("emf namespace {}", m.namespace())
            }),
        );
        map.insert(
            "traces",
            self.traces.as_ref().map_or("off".to_string(), |t| {
                format!("otlp {}", t.endpoint_for_log())
            }),
        );
        map
    }
}

/// The registry's JSON and where it came from: `DT_ENVIRONMENTS`, or the file
/// `DT_ENVIRONMENTS_FILE` names.
fn registry_json(source: &Source) -> Result<Option<(String, String)>, ConfigError> {
    match (
        source.get("DT_ENVIRONMENTS"),
        source.get("DT_ENVIRONMENTS_FILE"),
    ) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(ConfigError::new(
            source.origin("DT_ENVIRONMENTS_FILE"),
            "set DT_ENVIRONMENTS or DT_ENVIRONMENTS_FILE, not both",
        )),
        (Some(raw), None) => Ok(Some((raw.to_string(), source.origin("DT_ENVIRONMENTS")))),
        (None, Some(path)) => {
            let raw = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new(
                    source.origin("DT_ENVIRONMENTS_FILE"),
                    format!("cannot read {path}: {e}; expected the path of a JSON file holding the registry"),
                )
            })?;
            Ok(Some((raw, format!("DT_ENVIRONMENTS_FILE ({path})"))))
        }
    }
}

/// `DT_ENVIRONMENT` and its credential variables: one environment, alias `default`.
fn single_environment(
    source: &Source,
    passthrough_required: bool,
) -> Result<EnvironmentSpec, ConfigError> {
    let url = match source.get("DT_ENVIRONMENT") {
        Some(raw) => DtEnvironment::parse(raw)
            .map_err(|problem| ConfigError::new(source.origin("DT_ENVIRONMENT"), problem))?,
        None => {
            return Err(ConfigError::new(
                "DT_ENVIRONMENT",
                "is required: set it to your environment's platform URL, such as https://abc12345.apps.dynatrace.com \
                 (or DT_ENVIRONMENTS for several environments)",
            ));
        }
    };
    let credential = if passthrough_required {
        if let Some(key) = CREDENTIAL_VARIABLES
            .iter()
            .find(|k| source.get(k).is_some())
        {
            return Err(ConfigError::new(
                source.origin(key),
                "must not be set with DT_TOKEN_PASSTHROUGH=required: the server then holds no Dynatrace \
                 credential and every caller sends its own (X-Dynatrace-Token); remove it, or use DT_TOKEN_PASSTHROUGH=1",
            ));
        }
        CredentialSpec::None
    } else {
        CredentialSpec::Inline(credentials_from(source)?)
    };
    Ok(EnvironmentSpec {
        alias: crate::environments::DEFAULT_ALIAS.to_string(),
        url,
        description: None,
        credential,
        sso_url: None,
        ca_bundle: None,
        proxy: None,
        grail_budget_bytes: None,
        scope: None,
    })
}

fn credentials_from(source: &Source) -> Result<Credentials, ConfigError> {
    // A platform token wins when both are configured, as in the Go server.
    if let Some(token) = source.get("DT_PLATFORM_TOKEN") {
        if token.chars().any(char::is_whitespace) {
            return Err(ConfigError::new(
                source.origin("DT_PLATFORM_TOKEN"),
                "must not contain spaces or line breaks (expected a platform token such as dt0s16.XXXX)",
            ));
        }
        return Ok(Credentials::PlatformToken(SecretString::from(
            token.to_string(),
        )));
    }
    let client_id = source.get("OAUTH_CLIENT_ID");
    let client_secret = source.get("OAUTH_CLIENT_SECRET");
    let account_urn = source.get("DT_ACCOUNT_URN");
    match (client_id, client_secret, account_urn) {
        (None, None, None) => Err(ConfigError::new(
            "DT_PLATFORM_TOKEN",
            "no Dynatrace credentials: set DT_PLATFORM_TOKEN, or all of OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET and DT_ACCOUNT_URN",
        )),
        (None, _, _) => Err(ConfigError::new(
            "OAUTH_CLIENT_ID",
            "is required with OAuth credentials (expected a client id such as dt0s02.XXXXXXXX)",
        )),
        (_, None, _) => Err(ConfigError::new(
            "OAUTH_CLIENT_SECRET",
            "is required with OAuth credentials (expected the client secret issued with OAUTH_CLIENT_ID)",
        )),
        (_, _, None) => Err(ConfigError::new(
            "DT_ACCOUNT_URN",
            "is required with OAuth credentials (expected urn:dtaccount:<account-uuid>)",
        )),
        (Some(id), Some(secret), Some(urn)) => {
            if !urn.starts_with("urn:dtaccount:") || urn.len() <= "urn:dtaccount:".len() {
                return Err(ConfigError::new(
                    source.origin("DT_ACCOUNT_URN"),
                    "expected urn:dtaccount:<account-uuid>",
                ));
            }
            if id.chars().any(char::is_whitespace) {
                return Err(ConfigError::new(
                    source.origin("OAUTH_CLIENT_ID"),
                    "must not contain spaces (expected a client id such as dt0s02.XXXXXXXX)",
                ));
            }
            Ok(Credentials::OAuth {
                client_id: id.to_string(),
                client_secret: SecretString::from(secret.to_string()),
                account_urn: urn.to_string(),
            })
        }
    }
}

pub(crate) fn parse_endpoint_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|_| "not a URL".to_string())?;
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    match url.scheme() {
        "https" if !host.is_empty() => Ok(url),
        "http" if is_loopback_host(&host) => Ok(url),
        "http" => Err("http:// is only accepted for a loopback address".to_string()),
        _ => Err("the scheme must be https".to_string()),
    }
}

/// A whole number setting within `min..=max`, `default` when unset.
fn bounded_whole(
    source: &Source,
    name: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    match source.get(name) {
        None => Ok(default),
        Some(raw) => match raw.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ConfigError::new(
                source.origin(name),
                format!("expected a whole number between {min} and {max}"),
            )),
        },
    }
}

fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(pairs: &[(&str, &str)]) -> Source {
        Source::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    fn platform(extra: &[(&str, &str)]) -> Source {
        let mut pairs = vec![
            ("DT_ENVIRONMENT", "https://abc12345.apps.dynatrace.com/"),
            ("DT_PLATFORM_TOKEN", "dt0s16.SAMPLE.SECRETVALUE"),
        ];
        pairs.extend_from_slice(extra);
        source(&pairs)
    }

    #[test]
    fn environment_is_normalised_without_trailing_slash() {
        let s = Settings::from_source(&platform(&[]), FrontDoor::Http).unwrap();
        assert_eq!(s.environment.base(), "https://abc12345.apps.dynatrace.com");
        assert_eq!(
            s.environment.url("/platform/x"),
            "https://abc12345.apps.dynatrace.com/platform/x"
        );
    }

    #[test]
    fn environment_rejects_live_host_with_a_hint() {
        let err = DtEnvironment::parse("https://abc12345.live.dynatrace.com").unwrap_err();
        assert!(err.contains("https://abc12345.apps.dynatrace.com"), "{err}");
    }

    #[test]
    fn environment_rejects_plain_http_unless_loopback() {
        assert!(DtEnvironment::parse("http://abc12345.apps.dynatrace.com").is_err());
        assert!(DtEnvironment::parse("http://127.0.0.1:8080").is_ok());
        assert!(DtEnvironment::parse("http://localhost:8080").is_ok());
        assert!(DtEnvironment::parse("http://[::1]:8080").is_ok());
        assert!(DtEnvironment::parse("ftp://x.apps.dynatrace.com").is_err());
        assert!(DtEnvironment::parse("abc12345").is_err());
    }

    #[test]
    fn missing_environment_names_the_variable() {
        let err = Settings::from_source(&source(&[("DT_PLATFORM_TOKEN", "x")]), FrontDoor::Http)
            .unwrap_err();
        assert_eq!(err.variable, "DT_ENVIRONMENT");
    }

    #[test]
    fn empty_strings_count_as_unset() {
        let err = Settings::from_source(
            &source(&[("DT_ENVIRONMENT", "  "), ("DT_PLATFORM_TOKEN", "x")]),
            FrontDoor::Http,
        )
        .unwrap_err();
        assert_eq!(err.variable, "DT_ENVIRONMENT");
        assert!(err.problem.contains("required"));
    }

    #[test]
    fn credentials_are_required_and_partial_oauth_names_the_missing_part() {
        let base = [("DT_ENVIRONMENT", "https://abc12345.apps.dynatrace.com")];
        let err = Settings::from_source(&source(&base), FrontDoor::Http).unwrap_err();
        assert!(err.problem.contains("OAUTH_CLIENT_ID"));
        let err = Settings::from_source(
            &source(&[
                base[0],
                ("OAUTH_CLIENT_ID", "dt0s02.ABC"),
                ("OAUTH_CLIENT_SECRET", "s"),
            ]),
            FrontDoor::Http,
        )
        .unwrap_err();
        assert_eq!(err.variable, "DT_ACCOUNT_URN");
        let err = Settings::from_source(
            &source(&[
                base[0],
                ("OAUTH_CLIENT_ID", "dt0s02.ABC"),
                ("OAUTH_CLIENT_SECRET", "very-secret-value"),
                ("DT_ACCOUNT_URN", "account-1"),
            ]),
            FrontDoor::Http,
        )
        .unwrap_err();
        assert_eq!(err.variable, "DT_ACCOUNT_URN");
        assert!(!err.to_string().contains("very-secret-value"));
    }

    #[test]
    fn oauth_credentials_parse() {
        let s = Settings::from_source(
            &source(&[
                ("DT_ENVIRONMENT", "https://abc12345.apps.dynatrace.com"),
                ("OAUTH_CLIENT_ID", "dt0s02.ABC"),
                ("OAUTH_CLIENT_SECRET", "dt0s02.ABC.DEF"),
                ("DT_ACCOUNT_URN", "urn:dtaccount:1234"),
            ]),
            FrontDoor::Http,
        )
        .unwrap();
        assert!(matches!(s.credentials, Some(Credentials::OAuth { .. })));
        let debug = format!("{s:?}");
        assert!(!debug.contains("dt0s02.ABC.DEF"), "{debug}");
    }

    #[test]
    fn platform_token_wins_over_oauth() {
        let s = Settings::from_source(
            &platform(&[("OAUTH_CLIENT_ID", "dt0s02.ABC")]),
            FrontDoor::Http,
        )
        .unwrap();
        assert!(matches!(s.credentials, Some(Credentials::PlatformToken(_))));
    }

    #[test]
    fn secret_values_never_reach_errors_or_debug_output() {
        let err = Settings::from_source(
            &platform(&[("MCP_AUTH_TOKEN", "short-secret")]),
            FrontDoor::Http,
        )
        .unwrap_err();
        assert_eq!(err.variable, "MCP_AUTH_TOKEN");
        assert!(!err.to_string().contains("short-secret"));
        let s = Settings::from_source(
            &platform(&[("MCP_AUTH_TOKEN", "a-long-enough-auth-token")]),
            FrontDoor::Http,
        )
        .unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("a-long-enough-auth-token"));
        assert!(!debug.contains("SECRETVALUE"));
    }

    #[test]
    fn log_levels_parse_case_insensitively_and_reject_unknown() {
        assert_eq!(LogLevel::parse("DEBUG").unwrap(), LogLevel::Debug);
        assert_eq!(LogLevel::parse("warning").unwrap(), LogLevel::Warn);
        assert_eq!(LogLevel::parse("access").unwrap(), LogLevel::Info);
        assert_eq!(
            LogLevel::parse("loud").unwrap_err().variable,
            "MCP_LOG_LEVEL"
        );
    }

    #[test]
    fn tool_timeout_defaults_per_front_door_and_validates() {
        let s = Settings::from_source(&platform(&[]), FrontDoor::Lambda).unwrap();
        assert_eq!(s.tool_timeout, Duration::from_secs(25));
        let s = Settings::from_source(&platform(&[]), FrontDoor::Stdio).unwrap();
        assert_eq!(s.tool_timeout, Duration::from_secs(60));
        let err = Settings::from_source(
            &platform(&[("MCP_TOOL_TIMEOUT_SECONDS", "0")]),
            FrontDoor::Http,
        )
        .unwrap_err();
        assert_eq!(err.variable, "MCP_TOOL_TIMEOUT_SECONDS");
    }

    #[test]
    fn allowed_hosts_and_origins_parse() {
        let s = Settings::from_source(
            &platform(&[
                (
                    "MCP_ALLOWED_HOSTS",
                    "mcp.example.com, abc.execute-api.us-east-1.amazonaws.com",
                ),
                ("MCP_ALLOWED_ORIGINS", "https://app.example.com"),
            ]),
            FrontDoor::Http,
        )
        .unwrap();
        assert_eq!(s.allowed_hosts.unwrap().len(), 2);
        let s = Settings::from_source(&platform(&[("MCP_ALLOWED_HOSTS", "*")]), FrontDoor::Http)
            .unwrap();
        assert_eq!(s.allowed_hosts, Some(vec![]));
        let err = Settings::from_source(
            &platform(&[("MCP_ALLOWED_HOSTS", "https://mcp.example.com")]),
            FrontDoor::Http,
        )
        .unwrap_err();
        assert_eq!(err.variable, "MCP_ALLOWED_HOSTS");
        let err = Settings::from_source(
            &platform(&[("MCP_ALLOWED_ORIGINS", "app.example.com")]),
            FrontDoor::Http,
        )
        .unwrap_err();
        assert_eq!(err.variable, "MCP_ALLOWED_ORIGINS");
    }

    #[test]
    fn secret_overlay_wins_and_reports_unknown_keys() {
        let mut src = platform(&[]);
        let unknown = src
            .overlay_secret(r#"{"DT_ENVIRONMENT":"https://zzz99999.apps.dynatrace.com","DT_ENVIRONMNET":"typo","MCP_LOG_LEVEL":"debug"}"#)
            .unwrap();
        assert_eq!(unknown, vec!["DT_ENVIRONMNET".to_string()]);
        let s = Settings::from_source(&src, FrontDoor::Lambda).unwrap();
        assert_eq!(s.environment.base(), "https://zzz99999.apps.dynatrace.com");
        assert_eq!(s.log_level, LogLevel::Debug);
    }

    #[test]
    fn the_auth_token_can_come_from_another_key_of_the_secret() {
        let mut src = platform(&[("MCP_AUTH_TOKEN_KEY", "mcp-token")]);
        let unknown = src
            .overlay_secret(r#"{"mcp-token":"a-long-enough-auth-token"}"#)
            .unwrap();
        assert!(unknown.is_empty());
        let s = Settings::from_source(&src, FrontDoor::Lambda).unwrap();
        assert_eq!(
            s.mcp_auth_token
                .as_ref()
                .map(|t| t.expose_secret().to_string()),
            Some("a-long-enough-auth-token".to_string())
        );
    }

    #[test]
    fn a_registry_in_the_secret_keeps_its_order_as_an_object_or_a_string() {
        let registry = r#"{"zeta": {"url": "https://z.apps.dynatrace.com", "platformToken": "dt0s16.Z"},
                           "alpha": {"url": "https://a.apps.dynatrace.com", "platformToken": "dt0s16.A"}}"#;
        for secret in [
            format!(r#"{{"DT_ENVIRONMENTS": {registry}}}"#),
            format!(
                r#"{{"DT_ENVIRONMENTS": {}}}"#,
                serde_json::Value::from(registry)
            ),
        ] {
            let mut src = Source::default();
            src.overlay_secret(&secret).unwrap();
            let s = Settings::from_source(&src, FrontDoor::Http).unwrap();
            let aliases: Vec<_> = s.environments.iter().map(|e| e.alias.as_str()).collect();
            assert_eq!(aliases, ["zeta", "alpha"], "the first alias is the default");
            assert!(s.registry);
            assert_eq!(s.environment.base(), "https://z.apps.dynatrace.com");
        }
    }

    #[test]
    fn secret_overlay_rejects_non_objects_and_reports_origin() {
        let mut src = platform(&[]);
        assert!(src.overlay_secret("not json").is_err());
        assert!(src.overlay_secret("[1,2]").is_err());
        src.overlay_secret(r#"{"DT_ENVIRONMENT":"http://example.com"}"#)
            .unwrap();
        let err = Settings::from_source(&src, FrontDoor::Lambda).unwrap_err();
        assert_eq!(err.variable, "DT_ENVIRONMENT (from the secret)");
    }

    #[test]
    fn budget_and_scan_limit_parse() {
        let s = Settings::from_source(&platform(&[]), FrontDoor::Http).unwrap();
        assert_eq!(s.grail_budget_bytes, Some(1_000_000_000_000));
        assert_eq!(s.query_scan_limit_gb, None);
        let s = Settings::from_source(
            &platform(&[
                ("DT_GRAIL_QUERY_BUDGET_GB", "-1"),
                ("DT_QUERY_SCAN_LIMIT_GB", "50"),
            ]),
            FrontDoor::Http,
        )
        .unwrap();
        assert_eq!(s.grail_budget_bytes, None);
        assert_eq!(s.query_scan_limit_gb, Some(50.0));
        for bad in ["abc", "-5", "1.5.1"] {
            let err = Settings::from_source(
                &platform(&[("DT_GRAIL_QUERY_BUDGET_GB", bad)]),
                FrontDoor::Http,
            )
            .unwrap_err();
            assert_eq!(err.variable, "DT_GRAIL_QUERY_BUDGET_GB");
        }
    }

    #[test]
    fn state_table_and_user_budget_parse() {
        let s = Settings::from_source(&platform(&[]), FrontDoor::Http).unwrap();
        assert_eq!(
            (s.state_table.as_deref(), s.grail_user_budget_bytes),
            (None, None)
        );
        let s = Settings::from_source(
            &platform(&[
                ("MCP_STATE_TABLE", "dynatrace-mcp-state"),
                ("DT_GRAIL_USER_BUDGET_GB", "2.5"),
                ("MCP_STATE_FAIL_CLOSED", "1"),
            ]),
            FrontDoor::Lambda,
        )
        .unwrap();
        assert_eq!(s.state_table.as_deref(), Some("dynatrace-mcp-state"));
        assert_eq!(s.grail_user_budget_bytes, Some(2_500_000_000));
        assert!(s.state_fail_closed);
        for bad in ["ab", "my table", "arn:aws:dynamodb:us-east-1:1:table/x"] {
            let err =
                Settings::from_source(&platform(&[("MCP_STATE_TABLE", bad)]), FrontDoor::Http)
                    .unwrap_err();
            assert_eq!(err.variable, "MCP_STATE_TABLE", "{bad}");
        }
    }

    #[test]
    fn switches_accept_one_and_true() {
        let s = Settings::from_source(
            &platform(&[
                ("DT_ENABLE_DAVIS_COPILOT", "true"),
                ("DT_ENABLE_WRITE_TOOLS", "1"),
            ]),
            FrontDoor::Http,
        )
        .unwrap();
        assert!(s.enable_davis_copilot && s.enable_write_tools);
    }

    #[test]
    fn flags_reject_unclear_values() {
        let err = Settings::from_source(
            &platform(&[("MCP_ALLOW_UNAUTHENTICATED", "maybe")]),
            FrontDoor::Http,
        )
        .unwrap_err();
        assert_eq!(err.variable, "MCP_ALLOW_UNAUTHENTICATED");
    }
}
