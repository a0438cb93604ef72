//! Several Dynatrace environments behind one server: the registry.
//!
//! `DT_ENVIRONMENTS` (in the environment, in the file `DT_ENVIRONMENTS_FILE` names, or as a key of
//! the `DT_SECRET_ID` secret) is a JSON object from an alias to an environment:
//!
//! ```json
//! {"prod":    {"url": "https://abc12345.apps.dynatrace.com", "platformToken": "dt0s16.…", "description": "Production EU"},
//!  "staging": {"url": "…", "oauthClientId": "…", "oauthClientSecret": "…", "accountUrn": "urn:dtaccount:…"},
//!  "dev":     {"url": "…", "secretId": "mcp/dynatrace-dev"}}
//! ```
//!
//! The first alias is the default unless `DT_DEFAULT_ENVIRONMENT` names another. Without
//! `DT_ENVIRONMENTS`, `DT_ENVIRONMENT` and its credential variables make one environment named
//! `default`, exactly as before.
//!
//! Parsing ([`parse_registry`]) is synchronous and reports every problem at once, one line per
//! problem naming the alias; entries that name a Secrets Manager secret are completed by
//! [`resolve_secrets`] at cold start, all secrets in parallel. Secret values are `SecretString`
//! from the moment they are read and never reach a message.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use url::Url;

use tokio_util::task::TaskTracker;

use crate::config::{ConfigError, Credentials, DtEnvironment, parse_endpoint_url};
use crate::dynatrace::auth::TokenProvider;
use crate::dynatrace::{DynatraceClient, HttpClient};
use crate::identity::Principal;
use crate::tools::budget::GrailBudget;

/// The alias of the one environment `DT_ENVIRONMENT` configures.
pub const DEFAULT_ALIAS: &str = "default";
/// Environments one registry may hold: a fan-out to all of them must fit one request's deadline.
pub const MAX_ENVIRONMENTS: usize = 50;

/// The keys an entry may have.
const ENTRY_KEYS: &[&str] = &[
    "url",
    "description",
    "platformToken",
    "oauthClientId",
    "oauthClientSecret",
    "accountUrn",
    "secretId",
    "ssoUrl",
    "caBundle",
    "proxy",
    "grailBudgetGb",
    "scope",
];

/// Where an environment's credential comes from.
#[derive(Clone)]
pub enum CredentialSpec {
    Inline(Credentials),
    /// The name or ARN of a Secrets Manager secret holding it, read at cold start.
    Secret(String),
    /// None: every caller brings its own token (`DT_TOKEN_PASSTHROUGH=required`).
    None,
}

impl fmt::Debug for CredentialSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSpec::Inline(c) => c.fmt(f),
            CredentialSpec::Secret(id) => write!(f, "Secret({id})"),
            CredentialSpec::None => f.write_str("None"),
        }
    }
}

/// One configured environment, validated.
#[derive(Clone)]
pub struct EnvironmentSpec {
    pub alias: String,
    pub url: DtEnvironment,
    pub description: Option<String>,
    pub credential: CredentialSpec,
    /// The SSO token endpoint for its OAuth client; the server's `DT_SSO_URL` when unset.
    pub sso_url: Option<Url>,
    /// Extra PEM roots for this environment's HTTPS connections (beside `DT_CA_BUNDLE`'s).
    pub ca_bundle: Option<PathBuf>,
    /// An HTTPS proxy for this environment only.
    pub proxy: Option<Url>,
    /// Its own Grail budget: `None` keeps the server's `DT_GRAIL_QUERY_BUDGET_GB`,
    /// `Some(None)` is no budget.
    pub grail_budget_bytes: Option<Option<u64>>,
    /// The OAuth scope (or gateway claim scope) a caller needs to use it; `None`: every caller.
    pub scope: Option<String>,
}

impl fmt::Debug for EnvironmentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A proxy URL may carry a user and password: its host and port only.
        let proxy = self.proxy.as_ref().map(|p| {
            format!(
                "{}://{}:{}",
                p.scheme(),
                p.host_str().unwrap_or_default(),
                p.port_or_known_default().unwrap_or_default()
            )
        });
        f.debug_struct("EnvironmentSpec")
            .field("alias", &self.alias)
            .field("url", &self.url.base())
            .field("description", &self.description)
            .field("credential", &self.credential)
            .field("sso_url", &self.sso_url.as_ref().map(Url::as_str))
            .field("ca_bundle", &self.ca_bundle)
            .field("proxy", &proxy)
            .field("grail_budget_bytes", &self.grail_budget_bytes)
            .field("scope", &self.scope)
            .finish()
    }
}

impl EnvironmentSpec {
    /// The credential, once [`resolve_secrets`] has run.
    pub fn credentials(&self) -> Option<&Credentials> {
        match &self.credential {
            CredentialSpec::Inline(c) => Some(c),
            _ => None,
        }
    }
}

/// Whether `alias` is a usable alias: a letter or digit, then up to 31 letters, digits, `-`, `_`
/// or `.` (so it is one word in a schema, a header and a store key).
pub fn valid_alias(alias: &str) -> bool {
    let mut chars = alias.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && alias.len() <= 32
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The registry's entries in the order they were written (the first is the default), which
/// `serde_json::Map` (sorted) would lose.
struct Ordered(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object from alias to environment")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    entries.push((key, value));
                }
                Ok(Ordered(entries))
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// What the registry needs from the rest of the settings.
pub struct RegistryContext<'a> {
    /// Where the JSON came from, for messages (`DT_ENVIRONMENTS`, `DT_ENVIRONMENTS_FILE (…)`).
    pub origin: &'a str,
    /// `DT_TOKEN_PASSTHROUGH=required`: entries hold no credential.
    pub passthrough_required: bool,
    /// `DT_DEFAULT_ENVIRONMENT`.
    pub default_alias: Option<&'a str>,
}

/// Parses `DT_ENVIRONMENTS`. Returns the entries (the default first) or one error whose problem
/// has one line per problem found, each naming its alias.
pub fn parse_registry(
    raw: &str,
    context: &RegistryContext<'_>,
) -> Result<Vec<EnvironmentSpec>, ConfigError> {
    let example = "expected a JSON object from alias to environment, such as \
                   {\"prod\": {\"url\": \"https://abc12345.apps.dynatrace.com\", \"platformToken\": \"dt0s16.…\"}}";
    let Ordered(entries) = serde_json::from_str(raw).map_err(|e| {
        // serde's message may quote the input, which holds secrets: only its position.
        ConfigError::new(
            context.origin,
            format!(
                "{example}; the JSON does not parse (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    if entries.is_empty() {
        return Err(ConfigError::new(
            context.origin,
            format!("{example}; the object is empty"),
        ));
    }
    let mut problems = Vec::new();
    if entries.len() > MAX_ENVIRONMENTS {
        problems.push(format!(
            "{} environments configured; at most {MAX_ENVIRONMENTS} are supported",
            entries.len()
        ));
    }
    let mut specs = Vec::new();
    for (index, (alias, value)) in entries.iter().enumerate() {
        if !valid_alias(alias) {
            problems.push(format!(
                "alias `{}`: use 1 to 32 letters, digits, '-', '_' or '.', starting with a letter or digit",
                crate::identity::audit::cut(alias, 40)
            ));
            continue;
        }
        if entries[..index]
            .iter()
            .any(|(a, _)| a.eq_ignore_ascii_case(alias))
        {
            problems.push(format!("{alias}: the alias is given twice"));
            continue;
        }
        match parse_entry(alias, value, context.passthrough_required) {
            Ok(spec) => specs.push(spec),
            Err(mut lines) => problems.append(&mut lines),
        }
    }
    if let Some(default) = context.default_alias
        && !entries
            .iter()
            .any(|(alias, _)| alias.eq_ignore_ascii_case(default))
    {
        problems.push(format!(
            "DT_DEFAULT_ENVIRONMENT names `{}`, which is not an alias here; use one of {}",
            crate::identity::audit::cut(default, 40),
            entries
                .iter()
                .map(|(a, _)| a.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !problems.is_empty() {
        return Err(ConfigError::new(context.origin, problems.join("\n")));
    }
    if let Some(default) = context.default_alias {
        let at = specs
            .iter()
            .position(|s| s.alias.eq_ignore_ascii_case(default))
            .expect("checked");
        let spec = specs.remove(at);
        specs.insert(0, spec);
    }
    Ok(specs)
}

/// One entry, or its problems (each line names the alias).
fn parse_entry(
    alias: &str,
    value: &Value,
    passthrough_required: bool,
) -> Result<EnvironmentSpec, Vec<String>> {
    let mut problems = Vec::new();
    let Value::Object(map) = value else {
        return Err(vec![format!(
            "{alias}: expected an object such as {{\"url\": \"https://abc12345.apps.dynatrace.com\", \"platformToken\": \"dt0s16.…\"}}"
        )]);
    };
    for key in map.keys() {
        if !ENTRY_KEYS.contains(&key.as_str()) {
            problems.push(format!(
                "{alias}: unknown key `{}`; the keys are {}",
                crate::identity::audit::cut(key, 40),
                ENTRY_KEYS.join(", ")
            ));
        }
    }
    let mut text = |key: &str| -> Option<String> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(s.trim().to_string()),
            Some(_) => {
                problems.push(format!("{alias}: `{key}` must be a string"));
                None
            }
        }
    };
    let url = text("url");
    let description = text("description");
    let platform_token = text("platformToken");
    let client_id = text("oauthClientId");
    let client_secret = text("oauthClientSecret");
    let account_urn = text("accountUrn");
    let secret_id = text("secretId");
    let sso_url = text("ssoUrl");
    let ca_bundle = text("caBundle");
    let proxy = text("proxy");
    let scope = text("scope");

    let url = match url.as_deref().map(DtEnvironment::parse) {
        None => {
            problems.push(format!(
                "{alias}: `url` is required: the environment's platform URL, such as https://abc12345.apps.dynatrace.com"
            ));
            None
        }
        Some(Err(problem)) => {
            problems.push(format!("{alias}: url: {problem}"));
            None
        }
        Some(Ok(url)) => Some(url),
    };
    let oauth_given = client_id.is_some() || client_secret.is_some() || account_urn.is_some();
    let credential = match (platform_token, oauth_given, secret_id) {
        _ if passthrough_required => {
            if map.contains_key("platformToken") || oauth_given || map.contains_key("secretId") {
                problems.push(format!(
                    "{alias}: holds a credential, but with DT_TOKEN_PASSTHROUGH=required every caller sends its own; \
                     remove platformToken, oauthClient* and secretId"
                ));
            }
            Some(CredentialSpec::None)
        }
        (Some(_), true, _) | (Some(_), _, Some(_)) | (_, true, Some(_)) => {
            problems.push(format!(
                "{alias}: give one credential: platformToken, or oauthClientId with oauthClientSecret and accountUrn, or secretId"
            ));
            None
        }
        (Some(token), false, None) => match platform_token_credential(&token) {
            Ok(c) => Some(CredentialSpec::Inline(c)),
            Err(problem) => {
                problems.push(format!("{alias}: platformToken {problem}"));
                None
            }
        },
        (None, true, None) => {
            match oauth_credential(
                client_id.as_deref(),
                client_secret.as_deref(),
                account_urn.as_deref(),
            ) {
                Ok(c) => Some(CredentialSpec::Inline(c)),
                Err(problem) => {
                    problems.push(format!("{alias}: {problem}"));
                    None
                }
            }
        }
        (None, false, Some(id)) => Some(CredentialSpec::Secret(id)),
        (None, false, None) => {
            problems.push(format!(
                "{alias}: no credential: give platformToken, or oauthClientId, oauthClientSecret and accountUrn, \
                 or secretId (a Secrets Manager secret holding them)"
            ));
            None
        }
    };
    let sso_url = sso_url.and_then(|raw| match parse_endpoint_url(&raw) {
        Ok(url) => Some(url),
        Err(problem) => {
            problems.push(format!(
                "{alias}: ssoUrl: {problem}; expected the token endpoint, such as {}",
                crate::config::DEFAULT_SSO_URL
            ));
            None
        }
    });
    let ca_bundle = ca_bundle.map(PathBuf::from).filter(|path| {
        let ok = path.is_file();
        if !ok {
            problems.push(format!(
                "{alias}: caBundle: {} is not a readable file; expected the path of a PEM file of CA certificates",
                path.display()
            ));
        }
        ok
    });
    let proxy = proxy.and_then(|raw| match Url::parse(&raw) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            Some(url)
        }
        _ => {
            problems.push(format!(
                "{alias}: proxy: expected a proxy URL such as http://proxy.internal:3128"
            ));
            None
        }
    });
    let grail_budget_bytes = match map.get("grailBudgetGb") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_f64() {
            Some(gb) if gb == 0.0 || gb == -1.0 => Some(None),
            Some(gb) if gb > 0.0 && gb <= 1_000_000.0 => Some(Some((gb * 1e9) as u64)),
            _ => {
                problems.push(format!(
                    "{alias}: grailBudgetGb: expected a number of GB greater than 0 (e.g. 500), or -1 for no budget"
                ));
                None
            }
        },
    };
    if let Some(scope) = &scope
        && (scope.len() > 256 || scope.chars().any(|c| c.is_whitespace() || c == '"'))
    {
        problems.push(format!(
            "{alias}: scope: expected one OAuth scope name without spaces, such as dynatrace-mcp/env.{alias}"
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(EnvironmentSpec {
        alias: alias.to_string(),
        url: url.expect("checked"),
        description,
        credential: credential.expect("checked"),
        sso_url,
        ca_bundle,
        proxy,
        grail_budget_bytes,
        scope,
    })
}

fn platform_token_credential(token: &str) -> Result<Credentials, String> {
    if token.chars().any(char::is_whitespace) {
        return Err("must not contain spaces or line breaks (expected a platform token such as dt0s16.XXXX)".into());
    }
    if token.starts_with("dt0c01.") {
        return Err("holds a classic API token (dt0c01.…), which the platform APIs do not accept: use a platform token (dt0s16.…)".into());
    }
    Ok(Credentials::PlatformToken(SecretString::from(
        token.to_string(),
    )))
}

fn oauth_credential(
    client_id: Option<&str>,
    client_secret: Option<&str>,
    account_urn: Option<&str>,
) -> Result<Credentials, String> {
    let (Some(id), Some(secret), Some(urn)) = (client_id, client_secret, account_urn) else {
        let missing: Vec<&str> = [
            ("oauthClientId", client_id),
            ("oauthClientSecret", client_secret),
            ("accountUrn", account_urn),
        ]
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| *k)
        .collect();
        return Err(format!(
            "an OAuth client needs oauthClientId, oauthClientSecret and accountUrn; missing {}",
            missing.join(", ")
        ));
    };
    if !urn.starts_with("urn:dtaccount:") || urn.len() <= "urn:dtaccount:".len() {
        return Err("accountUrn: expected urn:dtaccount:<account-uuid>".into());
    }
    if id.chars().any(char::is_whitespace) {
        return Err(
            "oauthClientId: must not contain spaces (expected a client id such as dt0s02.XXXXXXXX)"
                .into(),
        );
    }
    Ok(Credentials::OAuth {
        client_id: id.to_string(),
        client_secret: SecretString::from(secret.to_string()),
        account_urn: urn.to_string(),
    })
}

/// The credential in an environment's own secret: its JSON object holds `platformToken`, or
/// `oauthClientId`, `oauthClientSecret` and `accountUrn` (or the seed's names for them:
/// `DT_PLATFORM_TOKEN`, `OAUTH_CLIENT_ID`, `OAUTH_CLIENT_SECRET`, `DT_ACCOUNT_URN`), and
/// optionally `url` / `DT_ENVIRONMENT`, which must then match the registry's.
pub fn credential_from_secret(
    spec: &EnvironmentSpec,
    secret_id: &str,
    value: &SecretString,
) -> Result<Credentials, String> {
    let prefix = format!("{}: secret `{secret_id}`", spec.alias);
    let parsed: Value = serde_json::from_str(value.expose_secret()).map_err(|_| {
        format!("{prefix}: its value is not JSON; store {{\"platformToken\": \"dt0s16.…\"}} or the OAuth client's keys")
    })?;
    let Value::Object(map) = parsed else {
        return Err(format!("{prefix}: its value must be a JSON object"));
    };
    let get = |names: [&str; 2]| {
        names
            .iter()
            .find_map(|n| map.get(*n).and_then(Value::as_str))
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    if let Some(url) = get(["url", "DT_ENVIRONMENT"])
        && DtEnvironment::parse(url).ok().as_ref() != Some(&spec.url)
    {
        return Err(format!(
            "{prefix}: names the environment {}, but the registry gives {} for this alias; correct one of them",
            crate::identity::audit::cut(url, 80),
            spec.url.base()
        ));
    }
    let token = get(["platformToken", "DT_PLATFORM_TOKEN"]);
    let client_id = get(["oauthClientId", "OAUTH_CLIENT_ID"]);
    let client_secret = get(["oauthClientSecret", "OAUTH_CLIENT_SECRET"]);
    let account_urn = get(["accountUrn", "DT_ACCOUNT_URN"]);
    match token {
        Some(token) => {
            platform_token_credential(token).map_err(|p| format!("{prefix}: platformToken {p}"))
        }
        None if client_id.is_some() || client_secret.is_some() || account_urn.is_some() => {
            oauth_credential(client_id, client_secret, account_urn)
                .map_err(|p| format!("{prefix}: {p}"))
        }
        None => Err(format!(
            "{prefix}: holds no credential; store platformToken (or DT_PLATFORM_TOKEN), or oauthClientId, \
             oauthClientSecret and accountUrn"
        )),
    }
}

/// Reads every entry's `secretId` at once and puts the credential in its place. Every failure is
/// one line of the returned error.
pub async fn resolve_secrets(specs: &mut [EnvironmentSpec]) -> Result<(), ConfigError> {
    let wanted: Vec<(usize, String)> = specs
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match &s.credential {
            CredentialSpec::Secret(id) => Some((i, id.clone())),
            _ => None,
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = wanted.iter().map(|(_, id)| id.as_str()).collect();
    let values = crate::secrets::read_secrets(&ids).await;
    let mut problems = Vec::new();
    for ((index, id), value) in wanted.into_iter().zip(values) {
        let spec = &mut specs[index];
        match value {
            Ok(value) => match credential_from_secret(spec, &id, &value) {
                Ok(credentials) => spec.credential = CredentialSpec::Inline(credentials),
                Err(problem) => problems.push(problem),
            },
            Err(e) => problems.push(format!("{}: {}", spec.alias, e.problem)),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::new("DT_ENVIRONMENTS", problems.join("\n")))
    }
}

/// One environment as the running server holds it: its own client (token provider, OAuth cache,
/// HTTPS settings), Grail budget and access scope.
pub struct Environment {
    pub alias: String,
    pub description: Option<String>,
    pub client: Arc<DynatraceClient>,
    pub budget: GrailBudget,
    /// The scope a caller with OAuth or gateway claims needs to use it.
    pub scope: Option<String>,
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment")
            .field("alias", &self.alias)
            .field("url", &self.client.environment().base())
            .finish_non_exhaustive()
    }
}

impl Environment {
    pub fn url(&self) -> &DtEnvironment {
        self.client.environment()
    }

    /// Whether `principal` may use this environment: callers identified by OAuth or by the
    /// gateway's claims need its scope; the static token, stdio and an open server may use all.
    pub fn allows(&self, principal: &Principal) -> bool {
        match (&self.scope, principal.scopes.as_deref()) {
            (None, _) => true,
            (Some(scope), Some(scopes)) => scopes.iter().any(|s| s == scope),
            (Some(_), None) => true,
        }
    }
}

/// Every configured environment, the default first.
pub struct Environments {
    list: Vec<Arc<Environment>>,
    /// `DT_ENVIRONMENTS` configured them.
    registry: bool,
    background: TaskTracker,
}

impl Environments {
    /// Builds one client per environment. Entries without their own CA bundle or proxy share
    /// `shared` (one connection pool); the others get their own HTTPS client.
    pub fn build(
        settings: &crate::config::Settings,
        shared: Arc<HttpClient>,
        extra_ca: Option<&[u8]>,
    ) -> anyhow::Result<Self> {
        let background = TaskTracker::new();
        let mut list = Vec::with_capacity(settings.environments.len());
        for spec in &settings.environments {
            if let CredentialSpec::Secret(id) = &spec.credential {
                anyhow::bail!(
                    "DT_ENVIRONMENTS: {}: secret `{id}` was not read (Settings::resolve_environment_secrets)",
                    spec.alias
                );
            }
            let http = if spec.ca_bundle.is_none() && spec.proxy.is_none() {
                shared.clone()
            } else {
                let mut pem = extra_ca.map(<[u8]>::to_vec).unwrap_or_default();
                if let Some(path) = &spec.ca_bundle {
                    let own = std::fs::read(path).map_err(|e| {
                        anyhow::anyhow!(
                            "DT_ENVIRONMENTS: {}: caBundle: cannot read {}: {e}",
                            spec.alias,
                            path.display()
                        )
                    })?;
                    pem.push(b'\n');
                    pem.extend_from_slice(&own);
                }
                HttpClient::with_proxy((!pem.is_empty()).then_some(&pem[..]), spec.proxy.as_ref())
                    .map_err(|e| anyhow::anyhow!("DT_ENVIRONMENTS: {}: {e}", spec.alias))?
            };
            let sso = spec
                .sso_url
                .clone()
                .unwrap_or_else(|| settings.sso_url.clone());
            let tokens = Arc::new(TokenProvider::new(http.clone(), sso));
            let client =
                DynatraceClient::new(http, spec.url.clone(), spec.credentials().cloned(), tokens)
                    .with_background(background.clone());
            list.push(Arc::new(Environment {
                alias: spec.alias.clone(),
                description: spec.description.clone(),
                client: Arc::new(client),
                budget: GrailBudget {
                    limit_bytes: spec
                        .grail_budget_bytes
                        .unwrap_or(settings.grail_budget_bytes),
                    user_limit_bytes: settings.grail_user_budget_bytes,
                },
                scope: spec.scope.clone(),
            }));
        }
        Ok(Self {
            list,
            registry: settings.registry,
            background,
        })
    }

    /// The default environment.
    pub fn default_environment(&self) -> &Arc<Environment> {
        &self.list[0]
    }

    /// The environment named `alias` (aliases match without regard to case).
    pub fn get(&self, alias: &str) -> Option<&Arc<Environment>> {
        self.list
            .iter()
            .find(|e| e.alias.eq_ignore_ascii_case(alias))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Environment>> {
        self.list.iter()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether `DT_ENVIRONMENTS` configured them (rather than `DT_ENVIRONMENT` alone).
    pub fn is_registry(&self) -> bool {
        self.registry
    }

    /// The environments `principal` may use ([`Environment::allows`]), the default first; a
    /// refusal that says so when there are none.
    pub fn allowed_for(
        &self,
        principal: &Principal,
    ) -> Result<Vec<Arc<Environment>>, crate::tools::ToolError> {
        let allowed: Vec<_> = self
            .list
            .iter()
            .filter(|e| e.allows(principal))
            .cloned()
            .collect();
        if allowed.is_empty() {
            return Err(crate::tools::ToolError::Refused(format!(
                "your credential allows none of this server's environments ({}); ask the operator for an environment's scope",
                self.aliases()
            )));
        }
        Ok(allowed)
    }

    /// The aliases, comma-separated, for messages.
    pub fn aliases(&self) -> String {
        self.list
            .iter()
            .map(|e| e.alias.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Work calls left behind (query cancellations) in every environment; shutdown waits for it.
    pub fn background(&self) -> &TaskTracker {
        &self.background
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> RegistryContext<'static> {
        RegistryContext {
            origin: "DT_ENVIRONMENTS",
            passthrough_required: false,
            default_alias: None,
        }
    }

    #[test]
    fn three_environments_keep_their_order_and_credentials() {
        let raw = r#"{
            "prod": {"url": "https://abc12345.apps.dynatrace.com", "platformToken": "dt0s16.P.secret", "description": "Production EU"},
            "staging": {"url": "https://def67890.apps.dynatrace.com", "oauthClientId": "dt0s02.S", "oauthClientSecret": "dt0s02.S.secret", "accountUrn": "urn:dtaccount:1"},
            "dev": {"url": "https://ghi13579.apps.dynatrace.com", "secretId": "mcp/dynatrace-dev", "grailBudgetGb": 50, "scope": "mcp/env.dev"}
        }"#;
        let specs = parse_registry(raw, &context()).unwrap();
        let aliases: Vec<_> = specs.iter().map(|s| s.alias.as_str()).collect();
        assert_eq!(aliases, ["prod", "staging", "dev"]);
        assert_eq!(specs[0].description.as_deref(), Some("Production EU"));
        assert!(matches!(
            specs[0].credential,
            CredentialSpec::Inline(Credentials::PlatformToken(_))
        ));
        assert!(matches!(
            specs[1].credential,
            CredentialSpec::Inline(Credentials::OAuth { .. })
        ));
        assert!(
            matches!(&specs[2].credential, CredentialSpec::Secret(id) if id == "mcp/dynatrace-dev")
        );
        assert_eq!(specs[2].grail_budget_bytes, Some(Some(50_000_000_000)));
        assert_eq!(specs[2].scope.as_deref(), Some("mcp/env.dev"));
    }

    #[test]
    fn the_named_default_comes_first() {
        let raw = r#"{"a": {"url": "https://a.apps.dynatrace.com", "platformToken": "t1"},
                      "b": {"url": "https://b.apps.dynatrace.com", "platformToken": "t2"}}"#;
        let specs = parse_registry(
            raw,
            &RegistryContext {
                default_alias: Some("b"),
                ..context()
            },
        )
        .unwrap();
        assert_eq!(specs[0].alias, "b");
        let error = parse_registry(
            raw,
            &RegistryContext {
                default_alias: Some("c"),
                ..context()
            },
        )
        .unwrap_err();
        assert!(error.problem.contains("use one of a, b"), "{error}");
    }

    #[test]
    fn every_problem_is_one_line_naming_its_alias_without_secrets() {
        let raw = r#"{
            "prod": {"url": "https://abc.live.dynatrace.com", "platformToken": "dt0s16.TOPSECRET"},
            "staging": {"url": "https://s.apps.dynatrace.com", "oauthClientId": "x", "oauthClientSecret": "SUPERSECRET"},
            "dev": {"platfromToken": "dt0s16.ALSOSECRET"},
            "bad alias": {},
            "ok": {"url": "https://ok.apps.dynatrace.com", "platformToken": "dt0s16.OK", "grailBudgetGb": "lots"}
        }"#;
        let error = parse_registry(raw, &context()).unwrap_err();
        let text = error.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.iter().all(|l| l.starts_with("DT_ENVIRONMENTS: ")),
            "{text}"
        );
        for (alias, needle) in [
            ("prod", "classic (Gen2) API host"),
            ("staging", "missing accountUrn"),
            ("dev", "unknown key `platfromToken`"),
            ("dev", "`url` is required"),
            ("ok", "grailBudgetGb"),
        ] {
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains(&format!(": {alias}: ")) && l.contains(needle)),
                "{alias}/{needle} in {text}"
            );
        }
        assert!(text.contains("alias `bad alias`"), "{text}");
        for secret in ["TOPSECRET", "SUPERSECRET", "ALSOSECRET"] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let raw = r#"{"p": {"url": "https://p.apps.dynatrace.com", "oauthClientId": "dt0s02.ID",
                            "oauthClientSecret": "CLIENTSECRET", "accountUrn": "urn:dtaccount:1",
                            "proxy": "http://user:PROXYPASSWORD@proxy.internal:3128"}}"#;
        let specs = parse_registry(raw, &context()).unwrap();
        let debug = format!("{specs:?}");
        assert!(
            debug.contains("proxy.internal:3128") && debug.contains("dt0s02.ID"),
            "{debug}"
        );
        assert!(
            !debug.contains("CLIENTSECRET") && !debug.contains("PROXYPASSWORD"),
            "{debug}"
        );
    }

    #[test]
    fn malformed_json_names_the_position_not_the_content() {
        let error =
            parse_registry(r#"{"prod": {"platformToken": "dt0s16.LEAK"#, &context()).unwrap_err();
        assert!(error.problem.contains("line 1"), "{error}");
        assert!(!error.to_string().contains("LEAK"));
    }

    #[test]
    fn passthrough_required_entries_hold_no_credential() {
        let ctx = RegistryContext {
            passthrough_required: true,
            ..context()
        };
        let specs =
            parse_registry(r#"{"p": {"url": "https://p.apps.dynatrace.com"}}"#, &ctx).unwrap();
        assert!(matches!(specs[0].credential, CredentialSpec::None));
        let error = parse_registry(
            r#"{"p": {"url": "https://p.apps.dynatrace.com", "platformToken": "t"}}"#,
            &ctx,
        )
        .unwrap_err();
        assert!(error.problem.contains("every caller sends its own"));
    }

    #[test]
    fn a_secret_supplies_the_credential_in_either_spelling() {
        let spec = parse_registry(
            r#"{"dev": {"url": "https://d.apps.dynatrace.com", "secretId": "s"}}"#,
            &context(),
        )
        .unwrap()
        .remove(0);
        let secret = |json: &str| SecretString::from(json.to_string());
        assert!(matches!(
            credential_from_secret(&spec, "s", &secret(r#"{"DT_PLATFORM_TOKEN": "dt0s16.X"}"#)),
            Ok(Credentials::PlatformToken(_))
        ));
        assert!(matches!(
            credential_from_secret(
                &spec,
                "s",
                &secret(
                    r#"{"oauthClientId": "i", "oauthClientSecret": "s3cr3t", "accountUrn": "urn:dtaccount:9"}"#
                )
            ),
            Ok(Credentials::OAuth { .. })
        ));
        let wrong = credential_from_secret(
            &spec,
            "s",
            &secret(r#"{"DT_ENVIRONMENT": "https://other.apps.dynatrace.com", "DT_PLATFORM_TOKEN": "dt0s16.SECRET"}"#),
        )
        .unwrap_err();
        assert!(
            wrong.contains("dev: secret `s`: names the environment"),
            "{wrong}"
        );
        assert!(!wrong.contains("SECRET\""));
        let empty = credential_from_secret(&spec, "s", &secret("{}")).unwrap_err();
        assert!(empty.contains("holds no credential"));
    }
}
