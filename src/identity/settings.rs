//! The identity settings: OAuth resource server, static-token principal, gateway authorizer trust,
//! Dynatrace token pass-through, rate limit and audit. Parsed with the rest of `Settings`; a bad
//! value stops start-up with one line naming the variable.

use std::time::Duration;

use url::Url;

use super::{Groups, ToolGroup};
use crate::config::{ConfigError, FrontDoor, Source};

/// `DT_TOKEN_PASSTHROUGH`: may a caller bring its own Dynatrace token?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassThrough {
    /// The header is refused: every call uses the server's credential.
    Off,
    /// A caller may send `X-Dynatrace-Token`; without it the server's credential is used.
    Optional,
    /// The server holds no Dynatrace credential; a call to Dynatrace without the header is refused.
    Required,
}

/// The scope names that unlock each tool group (Cognito's look like `<resource-server>/<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeNames {
    pub read: String,
    pub davis: String,
    pub write: String,
}

impl Default for ScopeNames {
    fn default() -> Self {
        Self {
            read: "dynatrace:read".into(),
            davis: "dynatrace:davis".into(),
            write: "dynatrace:write".into(),
        }
    }
}

impl ScopeNames {
    pub fn name(&self, group: ToolGroup) -> &str {
        match group {
            ToolGroup::Read => &self.read,
            ToolGroup::Davis => &self.davis,
            ToolGroup::Write => &self.write,
        }
    }

    /// The groups a list of granted scopes unlocks.
    pub fn groups<'a>(&self, scopes: impl IntoIterator<Item = &'a str>) -> Groups {
        let mut groups = Groups::NONE;
        for scope in scopes {
            for group in ToolGroup::ALL {
                if scope == self.name(group) {
                    groups.insert(group);
                }
            }
        }
        groups
    }

    /// The scope names of `groups`, space-separated (as in a `scope` parameter).
    pub fn joined(&self, groups: Groups) -> String {
        groups
            .iter()
            .map(|g| self.name(g))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The OAuth 2.1 resource server (`MCP_OAUTH_ISSUER`).
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// `iss` must equal this exactly.
    pub issuer: String,
    /// `MCP_PUBLIC_URL`: the canonical URL clients use for the MCP endpoint.
    pub public_url: Url,
    /// `aud` must contain one of these (`MCP_OAUTH_AUDIENCE`, default the public URL).
    pub audiences: Vec<String>,
    /// `MCP_OAUTH_JWKS_URL`: skips discovery.
    pub jwks_url: Option<Url>,
    /// `MCP_OAUTH_CLIENT_IDS`: tokens without `aud` (Cognito access tokens) are accepted when
    /// their `client_id` is one of these.
    pub client_ids: Vec<String>,
}

/// `MCP_RATE_LIMIT`: at most `calls` tool calls per `period` per principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub calls: u32,
    pub period: Duration,
}

#[derive(Debug, Clone)]
pub struct IdentitySettings {
    pub oauth: Option<OAuthSettings>,
    pub scope_names: ScopeNames,
    /// `MCP_AUTH_TOKEN_PRINCIPAL`: the subject the static token acts as.
    pub static_subject: String,
    /// `MCP_AUTH_TOKEN_SCOPES`: the groups the static token may use.
    pub static_groups: Groups,
    /// `MCP_TRUST_GATEWAY_AUTHORIZER=1` (Lambda only).
    pub trust_gateway: bool,
    pub passthrough: PassThrough,
    pub rate_limit: Option<RateLimit>,
    /// `MCP_AUDIT_LOG`: one audit line per tool call (default on).
    pub audit: bool,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            oauth: None,
            scope_names: ScopeNames::default(),
            static_subject: "static-token".into(),
            static_groups: Groups::ALL,
            trust_gateway: false,
            passthrough: PassThrough::Off,
            rate_limit: None,
            audit: true,
        }
    }
}

const OAUTH_ONLY: &[&str] = &[
    "MCP_OAUTH_AUDIENCE",
    "MCP_OAUTH_JWKS_URL",
    "MCP_OAUTH_CLIENT_IDS",
];

impl IdentitySettings {
    pub fn from_source(source: &Source, front_door: FrontDoor) -> Result<Self, ConfigError> {
        let mut scope_names = ScopeNames::default();
        for (key, slot) in [
            ("MCP_OAUTH_SCOPE_READ", &mut scope_names.read),
            ("MCP_OAUTH_SCOPE_DAVIS", &mut scope_names.davis),
            ("MCP_OAUTH_SCOPE_WRITE", &mut scope_names.write),
        ] {
            if let Some(raw) = source.get(key) {
                if raw
                    .chars()
                    .any(|c| c.is_whitespace() || c == '"' || c == '\\')
                {
                    return Err(ConfigError::new(
                        source.origin(key),
                        "expected one scope name without spaces or quotes (e.g. dynatrace-mcp/read)",
                    ));
                }
                *slot = raw.to_string();
            }
        }
        if scope_names.read == scope_names.davis
            || scope_names.read == scope_names.write
            || scope_names.davis == scope_names.write
        {
            return Err(ConfigError::new(
                "MCP_OAUTH_SCOPE_READ",
                "the read, davis and write scope names must differ",
            ));
        }

        let oauth = match source.get("MCP_OAUTH_ISSUER") {
            None => {
                if let Some(key) = OAUTH_ONLY.iter().find(|k| source.get(k).is_some()) {
                    return Err(ConfigError::new(
                        source.origin(key),
                        "is only used with MCP_OAUTH_ISSUER: set the issuer too, or remove it",
                    ));
                }
                None
            }
            Some(issuer) => Some(oauth_from(source, issuer)?),
        };

        let static_subject = source
            .get("MCP_AUTH_TOKEN_PRINCIPAL")
            .unwrap_or("static-token")
            .to_string();
        if static_subject.len() > 128 || static_subject.chars().any(char::is_control) {
            return Err(ConfigError::new(
                source.origin("MCP_AUTH_TOKEN_PRINCIPAL"),
                "expected a short name (at most 128 characters) for the principal the static token acts as",
            ));
        }
        let static_groups = match source.get("MCP_AUTH_TOKEN_SCOPES") {
            None => Groups::ALL,
            Some(raw) => parse_groups(raw).map_err(|problem| {
                ConfigError::new(source.origin("MCP_AUTH_TOKEN_SCOPES"), problem)
            })?,
        };

        let trust_gateway = source.flag("MCP_TRUST_GATEWAY_AUTHORIZER")?;
        if trust_gateway && front_door != FrontDoor::Lambda {
            return Err(ConfigError::new(
                source.origin("MCP_TRUST_GATEWAY_AUTHORIZER"),
                "is honoured only on Lambda, where API Gateway's authorizer claims arrive in the event; \
                 remove it here (use MCP_OAUTH_ISSUER to verify tokens in this server)",
            ));
        }

        let passthrough = match source
            .get("DT_TOKEN_PASSTHROUGH")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("0") | Some("false") | Some("off") | Some("no") => PassThrough::Off,
            Some("1") | Some("true") | Some("on") | Some("yes") | Some("optional") => {
                PassThrough::Optional
            }
            Some("required") => PassThrough::Required,
            Some(_) => {
                return Err(ConfigError::new(
                    source.origin("DT_TOKEN_PASSTHROUGH"),
                    "expected 0, 1 or required",
                ));
            }
        };
        if passthrough != PassThrough::Off && front_door == FrontDoor::Stdio {
            return Err(ConfigError::new(
                source.origin("DT_TOKEN_PASSTHROUGH"),
                "needs the HTTP front door (serve or Lambda): over stdio there is no header to carry a caller's token; \
                 set DT_PLATFORM_TOKEN instead",
            ));
        }

        let rate_limit =
            match source.get("MCP_RATE_LIMIT") {
                None => None,
                Some(raw) => Some(parse_rate_limit(raw).map_err(|problem| {
                    ConfigError::new(source.origin("MCP_RATE_LIMIT"), problem)
                })?),
            };

        let audit = match source
            .get("MCP_AUDIT_LOG")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("1") | Some("true") | Some("on") => true,
            Some("0") | Some("false") | Some("off") => false,
            Some(_) => {
                return Err(ConfigError::new(
                    source.origin("MCP_AUDIT_LOG"),
                    "expected on or off",
                ));
            }
        };

        Ok(Self {
            oauth,
            scope_names,
            static_subject,
            static_groups,
            trust_gateway,
            passthrough,
            rate_limit,
            audit,
        })
    }
}

fn oauth_from(source: &Source, issuer: &str) -> Result<OAuthSettings, ConfigError> {
    let issuer_url = crate::config::parse_endpoint_url(issuer).map_err(|problem| {
        ConfigError::new(
            source.origin("MCP_OAUTH_ISSUER"),
            format!(
                "{problem}; expected the authorization server's issuer URL exactly as its tokens carry it in `iss` \
                 (e.g. https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_AbCdEf123)"
            ),
        )
    })?;
    if issuer_url.query().is_some() || issuer_url.fragment().is_some() {
        return Err(ConfigError::new(
            source.origin("MCP_OAUTH_ISSUER"),
            "an issuer URL has no query string or fragment",
        ));
    }
    let Some(raw_public) = source.get("MCP_PUBLIC_URL") else {
        return Err(ConfigError::new(
            "MCP_PUBLIC_URL",
            "is required with MCP_OAUTH_ISSUER: set it to the URL clients use for the MCP endpoint, \
             e.g. https://mcp.example.com/mcp (behind API Gateway with a stage: https://<api>.execute-api.<region>.amazonaws.com/<stage>/mcp)",
        ));
    };
    let public_url = crate::config::parse_endpoint_url(raw_public)
        .map_err(|problem| {
            ConfigError::new(
                source.origin("MCP_PUBLIC_URL"),
                format!("{problem}; expected the MCP endpoint's public URL, e.g. https://mcp.example.com/mcp"),
            )
        })?;
    if public_url.query().is_some() || public_url.fragment().is_some() {
        return Err(ConfigError::new(
            source.origin("MCP_PUBLIC_URL"),
            "remove the query string and fragment: it is the MCP endpoint's URL, e.g. https://mcp.example.com/mcp",
        ));
    }
    let path = public_url.path();
    if !(path == "/" || path.ends_with("/mcp")) {
        return Err(ConfigError::new(
            source.origin("MCP_PUBLIC_URL"),
            format!(
                "the path must be the MCP endpoint, ending in /mcp (or / for the seed's root path); got `{path}`"
            ),
        ));
    }
    let audiences = match source.get("MCP_OAUTH_AUDIENCE") {
        Some(raw) => split(raw),
        None => vec![public_url.as_str().to_string()],
    };
    let jwks_url = match source.get("MCP_OAUTH_JWKS_URL") {
        None => None,
        Some(raw) => Some(crate::config::parse_endpoint_url(raw).map_err(|problem| {
            ConfigError::new(
                source.origin("MCP_OAUTH_JWKS_URL"),
                format!("{problem}; expected the URL of the issuer's JSON Web Key Set"),
            )
        })?),
    };
    let client_ids = source
        .get("MCP_OAUTH_CLIENT_IDS")
        .map(split)
        .unwrap_or_default();
    Ok(OAuthSettings {
        issuer: issuer.to_string(),
        public_url,
        audiences,
        jwks_url,
        client_ids,
    })
}

fn split(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_groups(raw: &str) -> Result<Groups, String> {
    let mut groups = Groups::NONE;
    for item in split(raw) {
        match item.to_ascii_lowercase().as_str() {
            "read" => groups.insert(ToolGroup::Read),
            "davis" => groups.insert(ToolGroup::Davis),
            "write" => groups.insert(ToolGroup::Write),
            _ => {
                return Err(format!(
                    "expected tool groups separated by commas, from read, davis and write; got `{item}`"
                ));
            }
        }
    }
    if groups.is_empty() {
        return Err("name at least one tool group: read, davis or write".into());
    }
    Ok(groups)
}

/// `60/60s`, `100/1m`, `5/s`, `1000/1h`.
fn parse_rate_limit(raw: &str) -> Result<RateLimit, String> {
    let expected = "expected calls per period, such as 60/60s, 100/1m or 1000/1h";
    let (calls, period) = raw.split_once('/').ok_or_else(|| expected.to_string())?;
    let calls: u32 = calls
        .trim()
        .parse()
        .ok()
        .filter(|c| *c > 0)
        .ok_or_else(|| format!("{expected}; the number of calls must be a whole number above 0"))?;
    let period = period.trim();
    let split_at = period
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{expected}; the period needs a unit (s, m or h)"))?;
    let (amount, unit) = period.split_at(split_at);
    let amount: u64 = if amount.is_empty() {
        1
    } else {
        amount.parse().map_err(|_| expected.to_string())?
    };
    let seconds = match unit {
        "s" => Some(amount),
        "m" => amount.checked_mul(60),
        "h" => amount.checked_mul(3600),
        _ => return Err(format!("{expected}; the unit must be s, m or h")),
    }
    .unwrap_or(u64::MAX);
    if seconds == 0 || seconds > 86_400 {
        return Err(format!(
            "{expected}; the period must be between 1 s and 24 h"
        ));
    }
    Ok(RateLimit {
        calls,
        period: Duration::from_secs(seconds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(pairs: &[(&str, &str)]) -> Source {
        Source::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults_keep_todays_behaviour() {
        let s = IdentitySettings::from_source(&source(&[]), FrontDoor::Http).unwrap();
        assert!(s.oauth.is_none());
        assert_eq!(s.static_groups, Groups::ALL);
        assert_eq!(s.passthrough, PassThrough::Off);
        assert!(s.audit && s.rate_limit.is_none());
    }

    #[test]
    fn oauth_needs_a_public_url_and_defaults_the_audience_to_it() {
        let err = IdentitySettings::from_source(
            &source(&[("MCP_OAUTH_ISSUER", "https://idp.example.com")]),
            FrontDoor::Http,
        )
        .unwrap_err();
        assert_eq!(err.variable, "MCP_PUBLIC_URL");
        let s = IdentitySettings::from_source(
            &source(&[
                ("MCP_OAUTH_ISSUER", "https://idp.example.com/"),
                ("MCP_PUBLIC_URL", "https://mcp.example.com/mcp"),
            ]),
            FrontDoor::Http,
        )
        .unwrap();
        let oauth = s.oauth.unwrap();
        assert_eq!(oauth.issuer, "https://idp.example.com/", "kept exactly");
        assert_eq!(oauth.audiences, vec!["https://mcp.example.com/mcp"]);
        for bad in [
            "http://mcp.example.com/mcp",
            "https://mcp.example.com/other",
            "https://mcp.example.com/mcp?x=1",
        ] {
            let err = IdentitySettings::from_source(
                &source(&[
                    ("MCP_OAUTH_ISSUER", "https://idp.example.com"),
                    ("MCP_PUBLIC_URL", bad),
                ]),
                FrontDoor::Http,
            )
            .unwrap_err();
            assert_eq!(err.variable, "MCP_PUBLIC_URL", "{bad}");
        }
    }

    #[test]
    fn oauth_only_settings_without_an_issuer_are_refused() {
        let err = IdentitySettings::from_source(
            &source(&[("MCP_OAUTH_AUDIENCE", "api://x")]),
            FrontDoor::Http,
        )
        .unwrap_err();
        assert_eq!(err.variable, "MCP_OAUTH_AUDIENCE");
    }

    #[test]
    fn scope_names_map_to_groups() {
        let s = IdentitySettings::from_source(
            &source(&[
                ("MCP_OAUTH_SCOPE_READ", "dynatrace-mcp/read"),
                ("MCP_OAUTH_SCOPE_WRITE", "dynatrace-mcp/write"),
            ]),
            FrontDoor::Http,
        )
        .unwrap();
        let groups = s
            .scope_names
            .groups(["openid", "dynatrace-mcp/read", "dynatrace:davis"]);
        assert_eq!(groups, Groups::of(&[ToolGroup::Read, ToolGroup::Davis]));
        assert_eq!(
            s.scope_names.joined(Groups::ALL),
            "dynatrace-mcp/read dynatrace:davis dynatrace-mcp/write"
        );
        let err = IdentitySettings::from_source(
            &source(&[("MCP_OAUTH_SCOPE_READ", "a b")]),
            FrontDoor::Http,
        )
        .unwrap_err();
        assert_eq!(err.variable, "MCP_OAUTH_SCOPE_READ");
    }

    #[test]
    fn static_token_scopes_and_gateway_trust_parse() {
        let s = IdentitySettings::from_source(
            &source(&[
                ("MCP_AUTH_TOKEN_SCOPES", "read, davis"),
                ("MCP_TRUST_GATEWAY_AUTHORIZER", "1"),
            ]),
            FrontDoor::Lambda,
        )
        .unwrap();
        assert_eq!(
            s.static_groups,
            Groups::of(&[ToolGroup::Read, ToolGroup::Davis])
        );
        assert!(s.trust_gateway);
        let err = IdentitySettings::from_source(
            &source(&[("MCP_TRUST_GATEWAY_AUTHORIZER", "1")]),
            FrontDoor::Http,
        )
        .unwrap_err();
        assert_eq!(err.variable, "MCP_TRUST_GATEWAY_AUTHORIZER");
        let err = IdentitySettings::from_source(
            &source(&[("MCP_AUTH_TOKEN_SCOPES", "read,admin")]),
            FrontDoor::Http,
        )
        .unwrap_err();
        assert!(err.problem.contains("admin"));
    }

    #[test]
    fn passthrough_modes_parse_and_need_http() {
        for (raw, mode) in [
            ("1", PassThrough::Optional),
            ("optional", PassThrough::Optional),
            ("required", PassThrough::Required),
            ("0", PassThrough::Off),
        ] {
            let s = IdentitySettings::from_source(
                &source(&[("DT_TOKEN_PASSTHROUGH", raw)]),
                FrontDoor::Http,
            )
            .unwrap();
            assert_eq!(s.passthrough, mode, "{raw}");
        }
        assert!(
            IdentitySettings::from_source(
                &source(&[("DT_TOKEN_PASSTHROUGH", "1")]),
                FrontDoor::Stdio
            )
            .is_err()
        );
        assert!(
            IdentitySettings::from_source(
                &source(&[("DT_TOKEN_PASSTHROUGH", "maybe")]),
                FrontDoor::Http
            )
            .is_err()
        );
    }

    #[test]
    fn rate_limits_parse() {
        assert_eq!(
            parse_rate_limit("60/60s").unwrap(),
            RateLimit {
                calls: 60,
                period: Duration::from_secs(60)
            }
        );
        assert_eq!(
            parse_rate_limit("5/s").unwrap().period,
            Duration::from_secs(1)
        );
        assert_eq!(
            parse_rate_limit("100/2m").unwrap().period,
            Duration::from_secs(120)
        );
        assert_eq!(parse_rate_limit("1000/1h").unwrap().calls, 1000);
        for bad in [
            "60",
            "0/60s",
            "x/60s",
            "60/60",
            "60/60d",
            "60/0s",
            "60/48h",
            "1/99999999999999999h",
        ] {
            assert!(parse_rate_limit(bad).is_err(), "{bad}");
        }
    }
}
