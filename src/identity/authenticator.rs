//! Turns a request's credentials into a [`Principal`], or a [`Rejection`] that says why not.
//!
//! The order: API Gateway authorizer claims (Lambda, when trusted and present), then the static
//! token (`X-MCP-Auth-Token`, or a bearer equal to it), then a bearer JWT (OAuth). A server with
//! neither a static token nor OAuth configured lets every request in as `anonymous`, as before.
//! Tokens in a query string are never looked at.

use std::sync::Arc;

use http::{HeaderMap, header};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::jwt::{JwtVerifier, TokenError};
use super::{
    CallerToken, Groups, IdentitySettings, PASSTHROUGH_HEADER, PassThrough, Principal, Source,
};
use crate::dynatrace::HttpClient;

/// What API Gateway's authorizer already verified (taken from the Lambda event by
/// `crate::lambda`, never from an HTTP header).
#[derive(Debug, Clone, Default)]
pub struct GatewayClaims {
    /// The verified token was an ID token (`token_use: id`, or `nonce`/`at_hash`/`c_hash`):
    /// API Gateway's JWT authorizer does not tell them apart from access tokens.
    pub id_token: bool,
    pub subject: Option<String>,
    pub name: Option<String>,
    pub client_id: Option<String>,
    pub issuer: Option<String>,
    pub scopes: Vec<String>,
}

/// Why a request was not let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No credential, or one that is not valid: 401. `Some` when a bearer token was presented
    /// and failed verification (goes into `error_description`).
    Unauthenticated(Option<TokenError>),
    /// The credential is valid but grants none of this server's tool groups: 403 with the scopes
    /// to ask for.
    NoScope,
    /// The IdP's keys could not be fetched: 503, not the caller's fault.
    Unavailable(String),
    /// The `X-Dynatrace-Token` header is not acceptable: 400 with the reason.
    BadCallerToken(String),
}

pub struct Authenticator {
    settings: IdentitySettings,
    /// SHA-256 of `MCP_AUTH_TOKEN`: comparing digests keeps the comparison constant-time whatever
    /// the length of what the caller sent.
    static_digest: Option<[u8; 32]>,
    jwt: Option<JwtVerifier>,
    /// Tool groups the server offers at all (the server-wide switches).
    enabled: Groups,
    /// The environments' aliases, the default first (`X-Dynatrace-Tokens` names them).
    aliases: Vec<String>,
}

impl Authenticator {
    pub fn new(
        settings: IdentitySettings,
        static_token: Option<&SecretString>,
        enabled: Groups,
        http: Arc<HttpClient>,
    ) -> Self {
        let jwt = settings
            .oauth
            .clone()
            .map(|oauth| JwtVerifier::new(oauth, http));
        Self {
            static_digest: static_token
                .map(|t| Sha256::digest(t.expose_secret().as_bytes()).into()),
            settings,
            jwt,
            enabled,
            aliases: vec![crate::environments::DEFAULT_ALIAS.to_string()],
        }
    }

    /// The environments' aliases, the default first.
    pub fn with_environments(mut self, aliases: Vec<String>) -> Self {
        if !aliases.is_empty() {
            self.aliases = aliases;
        }
        self
    }

    pub fn settings(&self) -> &IdentitySettings {
        &self.settings
    }

    pub fn enabled(&self) -> Groups {
        self.enabled
    }

    pub fn verifier(&self) -> Option<&JwtVerifier> {
        self.jwt.as_ref()
    }

    /// Whether any request may come in without a credential.
    pub fn is_open(&self) -> bool {
        self.static_digest.is_none() && self.jwt.is_none() && !self.settings.trust_gateway
    }

    /// Identifies the caller of one HTTP request.
    pub async fn identify(
        &self,
        headers: &HeaderMap,
        gateway: Option<&GatewayClaims>,
    ) -> Result<Principal, Rejection> {
        let mut principal = self.principal(headers, gateway).await?;
        principal.dynatrace_token = self.caller_token(headers)?;
        principal.environment_tokens = self.environment_tokens(headers)?;
        if let (Some(_), Some((alias, _))) = (
            &principal.dynatrace_token,
            principal
                .environment_tokens
                .iter()
                .find(|(a, _)| a.eq_ignore_ascii_case(&self.aliases[0])),
        ) {
            return Err(Rejection::BadCallerToken(format!(
                "X-Dynatrace-Token and X-Dynatrace-Tokens both give a token for the default environment `{alias}`: send it once"
            )));
        }
        Ok(principal)
    }

    async fn principal(
        &self,
        headers: &HeaderMap,
        gateway: Option<&GatewayClaims>,
    ) -> Result<Principal, Rejection> {
        if self.settings.trust_gateway
            && let Some(claims) = gateway
        {
            return self.gateway_principal(claims);
        }
        let custom = headers
            .get_all("x-mcp-auth-token")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim);
        let bearer = bearer(headers);
        if let Some(expected) = &self.static_digest
            && custom.chain(bearer).any(|token| {
                let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                bool::from(digest.ct_eq(expected))
            })
        {
            if self
                .settings
                .static_groups
                .intersect(self.enabled)
                .is_empty()
            {
                return Err(Rejection::NoScope);
            }
            return Ok(Principal {
                subject: self.settings.static_subject.clone(),
                source: Source::StaticToken,
                groups: self.settings.static_groups,
                ..Principal::anonymous()
            });
        }
        if let (Some(verifier), Some(token)) = (&self.jwt, bearer) {
            return match verifier.verify(token).await {
                Ok(claims) => {
                    let groups = self.settings.scope_names.groups(claims.scopes());
                    // A token without `sub` (some client-credential tokens) is its client; one
                    // with neither names nobody and is refused.
                    let Some(subject) = claims
                        .sub
                        .clone()
                        .or_else(|| claims.client().map(|c| format!("client:{c}")))
                    else {
                        return Err(Rejection::Unauthenticated(Some(TokenError::MissingClaim(
                            "sub",
                        ))));
                    };
                    let principal = Principal {
                        subject,
                        name: claims.name().map(str::to_string),
                        client_id: claims.client().map(str::to_string),
                        issuer: self.settings.oauth.as_ref().map(|o| o.issuer.clone()),
                        source: Source::OAuth,
                        groups,
                        scopes: Some(claims.scopes().into_iter().map(str::to_string).collect()),
                        ..Principal::anonymous()
                    };
                    if groups.intersect(self.enabled).is_empty() {
                        tracing::info!(subject = %principal.subject, "a valid token grants none of this server's scopes");
                        return Err(Rejection::NoScope);
                    }
                    Ok(principal)
                }
                Err(TokenError::KeysUnavailable(reason)) => Err(Rejection::Unavailable(reason)),
                Err(e) => {
                    tracing::info!(reason = %e, "rejected an OAuth access token");
                    Err(Rejection::Unauthenticated(Some(e)))
                }
            };
        }
        if self.is_open() {
            return Ok(Principal::anonymous());
        }
        tracing::info!(
            has_header = headers.contains_key("x-mcp-auth-token")
                || headers.contains_key(header::AUTHORIZATION),
            "rejected an MCP request without a valid credential"
        );
        Err(Rejection::Unauthenticated(None))
    }

    fn gateway_principal(&self, claims: &GatewayClaims) -> Result<Principal, Rejection> {
        if claims.id_token {
            return Err(Rejection::Unauthenticated(Some(TokenError::IdToken)));
        }
        let Some(subject) = claims
            .subject
            .clone()
            .or_else(|| claims.client_id.as_ref().map(|c| format!("client:{c}")))
        else {
            return Err(Rejection::Unauthenticated(Some(TokenError::MissingClaim(
                "sub",
            ))));
        };
        let groups = self
            .settings
            .scope_names
            .groups(claims.scopes.iter().map(String::as_str));
        let principal = Principal {
            subject,
            name: claims.name.clone(),
            client_id: claims.client_id.clone(),
            issuer: claims.issuer.clone(),
            source: Source::Gateway,
            groups,
            scopes: Some(claims.scopes.iter().cloned().collect()),
            ..Principal::anonymous()
        };
        if groups.intersect(self.enabled).is_empty() {
            return Err(Rejection::NoScope);
        }
        Ok(principal)
    }

    /// `X-Dynatrace-Token`, checked against `DT_TOKEN_PASSTHROUGH`.
    fn caller_token(&self, headers: &HeaderMap) -> Result<Option<CallerToken>, Rejection> {
        let mut values = headers.get_all(PASSTHROUGH_HEADER).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if self.settings.passthrough == PassThrough::Off {
            return Err(Rejection::BadCallerToken(
                "this server does not accept X-Dynatrace-Token (DT_TOKEN_PASSTHROUGH is off), so it would act with \
                 its own Dynatrace credential, not yours: remove the header, or ask the operator to set DT_TOKEN_PASSTHROUGH=1"
                    .into(),
            ));
        }
        if values.next().is_some() {
            return Err(Rejection::BadCallerToken(
                "send X-Dynatrace-Token once".into(),
            ));
        }
        let raw = value.to_str().map_err(|_| {
            Rejection::BadCallerToken("X-Dynatrace-Token must be plain ASCII".into())
        })?;
        checked_token(raw, "X-Dynatrace-Token").map(Some)
    }

    /// `X-Dynatrace-Tokens: alias=token;alias2=token2`: the caller's own tokens for named
    /// environments, checked against `DT_TOKEN_PASSTHROUGH` and the registry's aliases.
    fn environment_tokens(
        &self,
        headers: &HeaderMap,
    ) -> Result<Vec<(String, CallerToken)>, Rejection> {
        let mut values = headers.get_all(ENVIRONMENT_TOKENS_HEADER).iter();
        let Some(value) = values.next() else {
            return Ok(Vec::new());
        };
        if self.settings.passthrough == PassThrough::Off {
            return Err(Rejection::BadCallerToken(
                "this server does not accept X-Dynatrace-Tokens (DT_TOKEN_PASSTHROUGH is off), so it would act with \
                 its own Dynatrace credentials, not yours: remove the header, or ask the operator to set DT_TOKEN_PASSTHROUGH=1"
                    .into(),
            ));
        }
        if values.next().is_some() {
            return Err(Rejection::BadCallerToken(
                "send X-Dynatrace-Tokens once, with every alias in it: alias=token;alias2=token2"
                    .into(),
            ));
        }
        let raw = value.to_str().map_err(|_| {
            Rejection::BadCallerToken("X-Dynatrace-Tokens must be plain ASCII".into())
        })?;
        let mut tokens: Vec<(String, CallerToken)> = Vec::new();
        for pair in raw
            .split([';', ','])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let Some((alias, token)) = pair.split_once('=') else {
                return Err(Rejection::BadCallerToken(
                    "X-Dynatrace-Tokens must be alias=token pairs separated by ';' (e.g. prod=dt0s16.…;staging=dt0s16.…)"
                        .into(),
                ));
            };
            let alias = alias.trim();
            let Some(known) = self.aliases.iter().find(|a| a.eq_ignore_ascii_case(alias)) else {
                return Err(Rejection::BadCallerToken(format!(
                    "X-Dynatrace-Tokens names `{}`, which is not an environment of this server; its environments are {}",
                    crate::identity::audit::cut(alias, 40),
                    self.aliases.join(", ")
                )));
            };
            if tokens.iter().any(|(a, _)| a == known) {
                return Err(Rejection::BadCallerToken(format!(
                    "X-Dynatrace-Tokens gives `{known}` twice: send one token per environment"
                )));
            }
            tokens.push((known.clone(), checked_token(token, "X-Dynatrace-Tokens")?));
        }
        if tokens.is_empty() {
            return Err(Rejection::BadCallerToken(
                "X-Dynatrace-Tokens is empty: send alias=token pairs separated by ';', or leave the header out".into(),
            ));
        }
        Ok(tokens)
    }
}

/// One platform token from a header, with an optional `Bearer ` in front.
fn checked_token(raw: &str, header: &str) -> Result<CallerToken, Rejection> {
    let token = raw.trim();
    let token = token
        .strip_prefix("Bearer ")
        .or_else(|| token.strip_prefix("bearer "))
        .unwrap_or(token)
        .trim();
    if token.is_empty() || token.len() > 8192 || !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Rejection::BadCallerToken(format!(
            "{header} must hold one Dynatrace platform token per environment (such as dt0s16.…), without spaces"
        )));
    }
    if token.starts_with("dt0c01.") {
        return Err(Rejection::BadCallerToken(format!(
            "{header} holds a classic API token (dt0c01.…), which the platform APIs do not accept: \
             create a platform token (dt0s16.…) in Account Management or the Dynatrace UI"
        )));
    }
    Ok(CallerToken::new(SecretString::from(token.to_string())))
}

/// The header with a caller's tokens for named environments.
pub const ENVIRONMENT_TOKENS_HEADER: &str = "x-dynatrace-tokens";

/// The `Authorization: Bearer` value, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ToolGroup;

    fn auth(settings: IdentitySettings, token: Option<&str>) -> Authenticator {
        let token = token.map(|t| SecretString::from(t.to_string()));
        Authenticator::new(
            settings,
            token.as_ref(),
            Groups::ALL,
            HttpClient::new(None).unwrap(),
        )
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    const TOKEN: &str = "a-static-token-of-some-length";

    #[tokio::test]
    async fn the_static_token_is_a_named_principal_with_its_own_groups() {
        let settings = IdentitySettings {
            static_subject: "ci-bot".into(),
            static_groups: Groups::of(&[ToolGroup::Read]),
            ..Default::default()
        };
        let a = auth(settings, Some(TOKEN));
        for h in [
            headers(&[("x-mcp-auth-token", TOKEN)]),
            headers(&[("authorization", &format!("Bearer {TOKEN}"))]),
        ] {
            let p = a.identify(&h, None).await.unwrap();
            assert_eq!(p.subject, "ci-bot");
            assert_eq!(p.source, Source::StaticToken);
            assert_eq!(p.groups, Groups::of(&[ToolGroup::Read]));
        }
        assert_eq!(
            a.identify(&headers(&[("x-mcp-auth-token", "wrong")]), None)
                .await
                .unwrap_err(),
            Rejection::Unauthenticated(None)
        );
        assert_eq!(
            a.identify(&HeaderMap::new(), None).await.unwrap_err(),
            Rejection::Unauthenticated(None)
        );
    }

    #[tokio::test]
    async fn an_unconfigured_server_lets_everyone_in_as_anonymous() {
        let a = auth(IdentitySettings::default(), None);
        let p = a.identify(&HeaderMap::new(), None).await.unwrap();
        assert_eq!(p.source, Source::Anonymous);
        assert_eq!(p.groups, Groups::ALL);
    }

    #[tokio::test]
    async fn gateway_claims_count_only_when_trusted() {
        let claims = GatewayClaims {
            id_token: false,
            subject: Some("alice".into()),
            name: None,
            client_id: Some("app".into()),
            issuer: Some("https://idp".into()),
            scopes: vec!["dynatrace:read".into(), "openid".into()],
        };
        let trusted = auth(
            IdentitySettings {
                trust_gateway: true,
                ..Default::default()
            },
            Some(TOKEN),
        );
        let p = trusted
            .identify(&HeaderMap::new(), Some(&claims))
            .await
            .unwrap();
        assert_eq!((p.subject.as_str(), p.source), ("alice", Source::Gateway));
        assert_eq!(p.groups, Groups::of(&[ToolGroup::Read]));
        let none = GatewayClaims {
            scopes: vec!["openid".into()],
            ..claims.clone()
        };
        assert_eq!(
            trusted
                .identify(&HeaderMap::new(), Some(&none))
                .await
                .unwrap_err(),
            Rejection::NoScope
        );
        let id = GatewayClaims {
            id_token: true,
            ..claims.clone()
        };
        assert_eq!(
            trusted
                .identify(&HeaderMap::new(), Some(&id))
                .await
                .unwrap_err(),
            Rejection::Unauthenticated(Some(TokenError::IdToken))
        );
        // Not trusted: the claims are ignored and the static token is required.
        let untrusted = auth(IdentitySettings::default(), Some(TOKEN));
        assert!(
            untrusted
                .identify(&HeaderMap::new(), Some(&claims))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn caller_tokens_follow_the_passthrough_setting() {
        let off = auth(IdentitySettings::default(), None);
        let h = headers(&[("x-dynatrace-token", "dt0s16.ABC.def")]);
        assert!(matches!(
            off.identify(&h, None).await,
            Err(Rejection::BadCallerToken(m)) if m.contains("DT_TOKEN_PASSTHROUGH")
        ));
        let on = auth(
            IdentitySettings {
                passthrough: PassThrough::Optional,
                ..Default::default()
            },
            None,
        );
        let p = on.identify(&h, None).await.unwrap();
        let token = p.dynatrace_token.unwrap();
        assert_eq!(token.secret().expose_secret(), "dt0s16.ABC.def");
        assert!(!format!("{token:?}").contains("ABC"));
        let p = on
            .identify(
                &headers(&[("x-dynatrace-token", "Bearer dt0s16.X.y")]),
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            p.dynatrace_token.unwrap().secret().expose_secret(),
            "dt0s16.X.y"
        );
        for bad in ["dt0c01.CLASSIC.token", "two words", ""] {
            let h = headers(&[("x-dynatrace-token", bad)]);
            assert!(
                matches!(
                    on.identify(&h, None).await,
                    Err(Rejection::BadCallerToken(_))
                ),
                "{bad:?}"
            );
        }
        let twice = headers(&[
            ("x-dynatrace-token", "dt0s16.A.b"),
            ("x-dynatrace-token", "dt0s16.C.d"),
        ]);
        assert!(on.identify(&twice, None).await.is_err());
    }

    #[tokio::test]
    async fn a_bearer_that_is_not_the_static_token_is_verified_as_a_jwt() {
        let settings = IdentitySettings {
            oauth: Some(crate::identity::OAuthSettings {
                issuer: "https://idp.example.com".into(),
                public_url: url::Url::parse("https://mcp.example.com/mcp").unwrap(),
                audiences: vec!["https://mcp.example.com/mcp".into()],
                jwks_url: Some(url::Url::parse("http://127.0.0.1:9/jwks").unwrap()),
                client_ids: vec![],
            }),
            ..Default::default()
        };
        let a = auth(settings, Some(TOKEN));
        // The static token still works alongside OAuth.
        let p = a
            .identify(
                &headers(&[("authorization", &format!("Bearer {TOKEN}"))]),
                None,
            )
            .await
            .unwrap();
        assert_eq!(p.source, Source::StaticToken);
        assert!(matches!(
            a.identify(&headers(&[("authorization", "Bearer not-a-jwt")]), None)
                .await,
            Err(Rejection::Unauthenticated(Some(TokenError::Malformed)))
        ));
        assert_eq!(
            a.identify(&HeaderMap::new(), None).await.unwrap_err(),
            Rejection::Unauthenticated(None)
        );
    }
}
