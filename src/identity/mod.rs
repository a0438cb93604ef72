//! Who is calling (inbound identity): decided once per request at the front door, then carried
//! with the request to the tools as a [`Principal`].
//!
//! This is the inbound direction. How *this server* authenticates to Dynatrace (outbound) is
//! `crate::dynatrace::auth`; the two never share a credential: an MCP access token is only ever
//! checked here and never sent upstream.
//!
//! The ways in, each producing a `Principal` with a [`Source`]:
//!
//! | source | how | scopes |
//! |---|---|---|
//! | static token | `MCP_AUTH_TOKEN` in `X-MCP-Auth-Token` or `Authorization: Bearer` (constant-time) | `MCP_AUTH_TOKEN_SCOPES` (default: all) |
//! | OAuth | a JWT access token from `MCP_OAUTH_ISSUER`, verified against its JWKS ([`jwt`]) | the token's `scope`/`scp`/`roles`, mapped by [`ScopeNames`] |
//! | gateway | API Gateway's JWT/Cognito authorizer claims in the Lambda event (`MCP_TRUST_GATEWAY_AUTHORIZER=1`) | the claims' scopes |
//! | stdio | the local user of a stdio server | all |
//! | anonymous | a server with no auth configured (loopback, or `MCP_ALLOW_UNAUTHENTICATED=1`) | all |
//!
//! Scopes decide which [`ToolGroup`]s a caller may list and call; the server-wide switches
//! (`DT_ENABLE_DAVIS_COPILOT`, `DT_ENABLE_WRITE_TOOLS`) stay the outer limit.
//!
//! A caller may also bring its own Dynatrace token (`X-Dynatrace-Token`, with
//! `DT_TOKEN_PASSTHROUGH`): the request then reaches Dynatrace with that token only, and whatever
//! is bound to a caller (query handles, confirmations, rate limits) is bound to the principal
//! *and* that token, through [`Principal::binding`].

pub mod audit;
pub mod authenticator;
pub mod jwt;
pub mod metadata;
pub mod ratelimit;
pub mod settings;

use std::fmt;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

pub use authenticator::{Authenticator, Rejection};
pub use settings::{IdentitySettings, OAuthSettings, PassThrough, ScopeNames};

/// The header a caller sends its own Dynatrace platform token in.
pub const PASSTHROUGH_HEADER: &str = "x-dynatrace-token";

/// A group of tools that one scope unlocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToolGroup {
    /// Tools that only read (DQL, problems, entities, …).
    Read,
    /// Davis CoPilot and the Davis analyzers.
    Davis,
    /// Tools that change things (email, Slack, workflows, notebooks, events).
    Write,
}

impl ToolGroup {
    pub const ALL: [ToolGroup; 3] = [ToolGroup::Read, ToolGroup::Davis, ToolGroup::Write];

    pub fn name(self) -> &'static str {
        match self {
            ToolGroup::Read => "read",
            ToolGroup::Davis => "davis",
            ToolGroup::Write => "write",
        }
    }

    fn bit(self) -> u8 {
        match self {
            ToolGroup::Read => 1,
            ToolGroup::Davis => 2,
            ToolGroup::Write => 4,
        }
    }
}

/// A set of [`ToolGroup`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Groups(u8);

impl Groups {
    pub const NONE: Groups = Groups(0);
    pub const ALL: Groups = Groups(7);

    pub fn of(groups: &[ToolGroup]) -> Self {
        Groups(groups.iter().fold(0, |acc, g| acc | g.bit()))
    }

    pub fn contains(self, group: ToolGroup) -> bool {
        self.0 & group.bit() != 0
    }

    pub fn insert(&mut self, group: ToolGroup) {
        self.0 |= group.bit();
    }

    pub fn intersect(self, other: Groups) -> Groups {
        Groups(self.0 & other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = ToolGroup> {
        ToolGroup::ALL
            .into_iter()
            .filter(move |g| self.contains(*g))
    }
}

impl fmt::Debug for Groups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(ToolGroup::name))
            .finish()
    }
}

/// How the caller got in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    StaticToken,
    OAuth,
    Gateway,
    Stdio,
    Anonymous,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::StaticToken => "static_token",
            Source::OAuth => "oauth",
            Source::Gateway => "gateway",
            Source::Stdio => "stdio",
            Source::Anonymous => "anonymous",
        }
    }
}

/// A caller's own Dynatrace token (`X-Dynatrace-Token`), with a short fingerprint for logs.
#[derive(Clone)]
pub struct CallerToken {
    token: SecretString,
    /// First 12 hex digits of SHA-256 of the token: identifies it in audit lines, reveals nothing.
    fingerprint: String,
}

impl CallerToken {
    pub fn new(token: SecretString) -> Self {
        let digest = Sha256::digest(token.expose_secret().as_bytes());
        let fingerprint = hex(&digest[..6]);
        Self { token, fingerprint }
    }

    pub fn secret(&self) -> &SecretString {
        &self.token
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

impl fmt::Debug for CallerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CallerToken({})", self.fingerprint)
    }
}

/// Who is calling, and what they may do.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `sub` of an OAuth token, the configured name of the static token, `anonymous`, or the
    /// local user name over stdio.
    pub subject: String,
    /// A readable name (`username`, `preferred_username`, `email`), for audit lines only.
    pub name: Option<String>,
    /// The OAuth client (`client_id`, `azp` or `appid`), when the token names one.
    pub client_id: Option<String>,
    /// The issuer that vouched for `subject` (OAuth and gateway), so equal subjects of two
    /// issuers stay apart.
    pub issuer: Option<String>,
    pub source: Source,
    /// Tool groups the credential's scopes allow (before the server-wide switches).
    pub groups: Groups,
    /// The caller's own Dynatrace token, when it sent one and pass-through is on: for the default
    /// environment (`X-Dynatrace-Token`).
    pub dynatrace_token: Option<CallerToken>,
    /// Its own tokens for named environments (`X-Dynatrace-Tokens: alias=token;…`), by alias.
    pub environment_tokens: Vec<(String, CallerToken)>,
    /// The scopes of an OAuth token or of the gateway's claims (environment access,
    /// [`crate::environments::Environment::allows`]); `None` for callers identified otherwise.
    pub scopes: Option<Arc<[String]>>,
}

impl Principal {
    pub fn anonymous() -> Self {
        Self {
            subject: "anonymous".into(),
            name: None,
            client_id: None,
            issuer: None,
            source: Source::Anonymous,
            groups: Groups::ALL,
            dynatrace_token: None,
            environment_tokens: Vec::new(),
            scopes: None,
        }
    }

    /// The caller's own token for the environment `alias` (`default` says whether it is the
    /// default environment, which `X-Dynatrace-Token` is for).
    pub fn token_for(&self, alias: &str, default: bool) -> Option<&CallerToken> {
        self.environment_tokens
            .iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(alias))
            .map(|(_, t)| t)
            .or(self.dynatrace_token.as_ref().filter(|_| default))
    }

    /// A request no front door identified: no tool group (the HTTP front door always identifies;
    /// this only guards against a path that forgot to).
    pub fn unidentified() -> Self {
        Self {
            subject: "unidentified".into(),
            groups: Groups::NONE,
            ..Self::anonymous()
        }
    }

    /// The local user of a stdio server (one person's own machine): every group.
    pub fn stdio() -> Self {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .unwrap_or_else(|_| "local".into());
        Self {
            subject: format!("stdio:{user}"),
            source: Source::Stdio,
            ..Self::anonymous()
        }
    }

    /// What handles, confirmations and rate limits are bound to: the principal (source, issuer,
    /// subject) and, when it sent one, its own Dynatrace token. Two callers sharing a static token
    /// but sending different Dynatrace tokens are two bindings. A hash: no secret inside.
    pub fn binding(&self) -> String {
        self.key(true)
    }

    /// What a rate limit counts against: the principal. A caller's own Dynatrace token is part of
    /// it only for anonymous callers (no other identity), so an authenticated caller cannot get a
    /// fresh allowance by sending another token.
    pub fn rate_key(&self) -> String {
        self.key(self.source == Source::Anonymous)
    }

    fn key(&self, with_token: bool) -> String {
        let mut hasher = Sha256::new();
        let token = self
            .dynatrace_token
            .as_ref()
            .filter(|_| with_token)
            .map(|t| t.secret().expose_secret().as_bytes());
        let environment_tokens = self
            .environment_tokens
            .iter()
            .filter(|_| with_token)
            .flat_map(|(alias, t)| [alias.as_bytes(), t.secret().expose_secret().as_bytes()]);
        // Length-prefixed, so no choice of subject or issuer can collide with another split.
        for part in [
            Some(self.source.name().as_bytes()),
            Some(self.issuer.as_deref().unwrap_or("").as_bytes()),
            Some(self.subject.as_bytes()),
            token,
        ]
        .into_iter()
        .flatten()
        .chain(environment_tokens)
        {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        hex(&hasher.finalize()[..12])
    }

    /// A short, header-safe description for Dynatrace's `dt-client-context`, so Grail's own
    /// query records show who ran a query.
    pub fn client_context(&self) -> String {
        let mut who = match &self.dynatrace_token {
            Some(token) if self.source == Source::Anonymous => {
                format!("dt-token:{}", token.fingerprint())
            }
            _ => self.subject.clone(),
        };
        who.retain(|c| c.is_ascii_graphic() && c != '"' && c != ',' && c != ';');
        who.truncate(96);
        format!(
            "dynatrace-mcp/{} principal={who} source={}",
            crate::VERSION,
            self.source.name()
        )
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_hold_what_was_inserted() {
        let mut g = Groups::NONE;
        assert!(g.is_empty());
        g.insert(ToolGroup::Davis);
        assert!(g.contains(ToolGroup::Davis) && !g.contains(ToolGroup::Read));
        assert_eq!(format!("{g:?}"), "[\"davis\"]");
        assert_eq!(
            Groups::ALL.intersect(Groups::of(&[ToolGroup::Read])),
            Groups::of(&[ToolGroup::Read])
        );
    }

    #[test]
    fn bindings_differ_by_subject_source_and_caller_token() {
        let a = Principal::anonymous();
        let mut b = a.clone();
        b.subject = "alice".into();
        b.source = Source::OAuth;
        assert_ne!(a.binding(), b.binding());
        let mut c = b.clone();
        c.dynatrace_token = Some(CallerToken::new(SecretString::from("dt0s16.A.x")));
        let mut d = b.clone();
        d.dynatrace_token = Some(CallerToken::new(SecretString::from("dt0s16.B.y")));
        assert_ne!(c.binding(), d.binding());
        assert_ne!(b.binding(), c.binding());
        assert!(!c.binding().contains("dt0s16"));
        // Rate limits count the principal, whatever token it sends; anonymous callers by token.
        assert_eq!(c.rate_key(), d.rate_key());
        let mut e = a.clone();
        e.dynatrace_token = c.dynatrace_token.clone();
        let mut f = a.clone();
        f.dynatrace_token = d.dynatrace_token.clone();
        assert_ne!(e.rate_key(), f.rate_key());
    }

    #[test]
    fn client_context_is_header_safe_and_names_no_secret() {
        let mut p = Principal::anonymous();
        p.subject = "alice \"x\";\n@example.com".into();
        p.source = Source::OAuth;
        let ctx = p.client_context();
        assert!(
            ctx.ends_with("principal=alicex@example.com source=oauth"),
            "{ctx}"
        );
        assert!(http::HeaderValue::from_str(&ctx).is_ok());
        let mut q = Principal::anonymous();
        q.dynatrace_token = Some(CallerToken::new(SecretString::from("dt0s16.SECRET")));
        let ctx = q.client_context();
        assert!(
            ctx.contains("principal=dt-token:") && !ctx.contains("SECRET"),
            "{ctx}"
        );
    }
}
