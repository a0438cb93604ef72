//! Verifies OAuth access tokens that are JWTs (RFC 9068 and what Cognito, Entra ID, Okta and
//! Keycloak issue) against the issuer's JSON Web Key Set.
//!
//! The rules, each with a test below:
//! - only asymmetric algorithms (RS*, PS*, ES256/384, EdDSA): `none` does not parse, and an HMAC
//!   token can never be checked against a public key;
//! - the key is the JWKS entry named by `kid` (or the only signing key when the set has one);
//!   a key that declares its own `alg` must match the token's;
//! - `iss` equals the configured issuer exactly; `exp` is required, `nbf` honoured, both with
//!   [`CLOCK_SKEW`];
//! - `aud` contains one of the accepted audiences. Cognito access tokens carry no `aud` but a
//!   `client_id`: they are accepted only when that client is listed (`MCP_OAUTH_CLIENT_IDS`);
//!   ID tokens (`token_use: id`) are refused as access tokens.
//!
//! The key set is found through the issuer's OpenID configuration (or RFC 8414 metadata, or
//! `MCP_OAUTH_JWKS_URL`), fetched on first use, kept for [`KEYS_MAX_AGE`], and fetched again when a
//! token names a key it does not have (a rotation) — at most [`REFRESH_BURST`] times per
//! [`REFRESH_WINDOW`], one fetch at a time, so a flood of tokens with made-up `kid`s cannot hammer
//! the IdP.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;
use url::Url;

use super::{OAuthSettings, audit};
use crate::dynatrace::HttpClient;

/// Tolerance for clocks that disagree, applied to `exp` and `nbf`.
pub const CLOCK_SKEW: u64 = 30;
/// A key set is fetched again after this long, so revoked keys stop working.
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);
/// Key-set fetches allowed per [`REFRESH_WINDOW`] (the first fetch and unknown-`kid` refreshes).
pub const REFRESH_BURST: usize = 3;
pub const REFRESH_WINDOW: Duration = Duration::from_secs(60);
/// While the IdP cannot be reached, a cached key set is used for at most this long.
pub const STALE_LIMIT: Duration = Duration::from_secs(24 * 3600);
/// Time allowed for one discovery or JWKS request.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest key set or metadata document read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

const ALLOWED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why a token was not accepted. The text goes into `error_description` and the log: it names
/// the rule, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token is not a well-formed JWT")]
    Malformed,
    #[error("the token's signing algorithm {0} is not accepted (asymmetric algorithms only)")]
    Algorithm(String),
    #[error("the token was signed with a key the issuer does not publish")]
    UnknownKey,
    #[error("the token's signature is not valid")]
    Signature,
    #[error("the access token expired")]
    Expired,
    #[error("the access token is not valid yet (nbf is in the future)")]
    NotYetValid,
    #[error("the token was not issued by {0}")]
    Issuer(String),
    #[error("the token's audience is not this server (expected {0})")]
    Audience(String),
    #[error("an ID token is not an access token: send the access token")]
    IdToken,
    #[error("the token lacks a required claim ({0})")]
    MissingClaim(&'static str),
    /// The IdP could not be reached or answered nonsense: not the caller's fault.
    #[error("the authorization server's keys could not be fetched: {0}")]
    KeysUnavailable(String),
}

/// The claims this server reads. Anything else in the token is ignored.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
pub struct Claims {
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub azp: Option<String>,
    #[serde(default)]
    pub appid: Option<String>,
    #[serde(default)]
    pub aud: Option<OneOrMany>,
    #[serde(default)]
    pub scope: Option<OneOrMany>,
    #[serde(default)]
    pub scp: Option<OneOrMany>,
    #[serde(default)]
    pub roles: Option<OneOrMany>,
    /// Cognito user-pool groups: tokens from `InitiateAuth` carry no custom scopes, so a group
    /// named like a scope grants it.
    #[serde(default, rename = "cognito:groups")]
    pub cognito_groups: Option<OneOrMany>,
    #[serde(default)]
    pub token_use: Option<String>,
    /// Claims only ID tokens carry (OpenID Connect Core §2, §3.1.3.6, §3.3.2.11): an access token
    /// never has them.
    #[serde(default)]
    pub nonce: Option<serde_json::Value>,
    #[serde(default)]
    pub at_hash: Option<serde_json::Value>,
    #[serde(default)]
    pub c_hash: Option<serde_json::Value>,
    /// Readable names, for audit lines: Cognito's `username`, the OIDC `preferred_username`,
    /// `email`.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub preferred_username: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// A claim that is a string or an array of strings (`aud`, Okta's `scp`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values; a single string is split on spaces when `split` (scope strings).
    pub fn values(&self, split: bool) -> Vec<&str> {
        match self {
            OneOrMany::One(s) if split => s.split_whitespace().collect(),
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

impl Claims {
    /// Every scope the token grants: `scope` (RFC 9068, Cognito, Keycloak), `scp` (Entra ID,
    /// Okta), `roles` (Entra ID app roles for client-credential callers) and `cognito:groups`.
    pub fn scopes(&self) -> Vec<&str> {
        [&self.scope, &self.scp, &self.roles, &self.cognito_groups]
            .into_iter()
            .flatten()
            .flat_map(|claim| claim.values(true))
            .collect()
    }

    /// A readable name for the subject, when the token has one.
    pub fn name(&self) -> Option<&str> {
        self.username
            .as_deref()
            .or(self.preferred_username.as_deref())
            .or(self.email.as_deref())
    }

    /// The OAuth client the token was issued to.
    pub fn client(&self) -> Option<&str> {
        self.client_id
            .as_deref()
            .or(self.azp.as_deref())
            .or(self.appid.as_deref())
    }
}

struct KeySet {
    keys: HashMap<String, (DecodingKey, Option<Algorithm>)>,
    /// The only signing key, for tokens without `kid` when the set has exactly one.
    sole: Option<(DecodingKey, Option<Algorithm>)>,
    fetched: Instant,
}

#[derive(Default)]
struct FetchState {
    recent: Vec<Instant>,
    last_error: Option<TokenError>,
}

pub struct JwtVerifier {
    settings: OAuthSettings,
    http: Arc<HttpClient>,
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Held while fetching: when the recent fetches were attempted, and how the last one failed.
    fetch: Mutex<FetchState>,
    jwks_url: RwLock<Option<Url>>,
    refresh_window: Duration,
    fetches: std::sync::atomic::AtomicU64,
}

impl JwtVerifier {
    pub fn new(settings: OAuthSettings, http: Arc<HttpClient>) -> Self {
        crate::crypto::install();
        Self {
            jwks_url: RwLock::new(settings.jwks_url.clone()),
            settings,
            http,
            keys: RwLock::new(None),
            fetch: Mutex::new(FetchState::default()),
            refresh_window: REFRESH_WINDOW,
            fetches: Default::default(),
        }
    }

    /// For tests: the window in which at most [`REFRESH_BURST`] fetches happen.
    pub fn with_refresh_window(mut self, window: Duration) -> Self {
        self.refresh_window = window;
        self
    }

    /// How many times the key set was fetched (tests, diagnostics).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Checks `token` and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| match declared_alg(token) {
            // `none`, HS*, or a name jsonwebtoken does not know: refused by name.
            Some(alg) => TokenError::Algorithm(alg),
            None => TokenError::Malformed,
        })?;
        if !ALLOWED.contains(&header.alg) {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let (key, key_alg) = self.key_for(header.kid.as_deref()).await?;
        if key_alg.is_some_and(|alg| alg != header.alg) {
            return Err(TokenError::Signature);
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = CLOCK_SKEW;
        validation.validate_nbf = true;
        validation.validate_aud = false; // checked below, with the Cognito rule
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => TokenError::Expired,
                K::ImmatureSignature => TokenError::NotYetValid,
                K::InvalidIssuer => TokenError::Issuer(self.settings.issuer.clone()),
                K::MissingRequiredClaim(claim) if claim == "exp" => TokenError::MissingClaim("exp"),
                K::MissingRequiredClaim(_) => TokenError::Issuer(self.settings.issuer.clone()),
                K::InvalidSignature | K::InvalidAlgorithm | K::InvalidKeyFormat => {
                    TokenError::Signature
                }
                _ => TokenError::Malformed,
            }
        })?;
        let claims = data.claims;
        self.check_audience(&claims)?;
        Ok(claims)
    }

    fn check_audience(&self, claims: &Claims) -> Result<(), TokenError> {
        if claims.token_use.as_deref() == Some("id")
            || claims.nonce.is_some()
            || claims.at_hash.is_some()
            || claims.c_hash.is_some()
        {
            return Err(TokenError::IdToken);
        }
        let expected = || self.settings.audiences.join(" or ");
        match &claims.aud {
            Some(aud) => {
                let values = aud.values(false);
                if values
                    .iter()
                    .any(|a| self.settings.audiences.iter().any(|ok| ok == a))
                {
                    Ok(())
                } else {
                    Err(TokenError::Audience(expected()))
                }
            }
            // Cognito access tokens: no `aud`, a `client_id` that must be one of ours.
            None => match claims.client_id.as_deref() {
                Some(client)
                    if self.settings.client_ids.iter().any(|ok| ok == client)
                        && claims.token_use.as_deref().is_none_or(|u| u == "access") =>
                {
                    Ok(())
                }
                _ if self.settings.client_ids.is_empty() => Err(TokenError::Audience(expected())),
                _ => Err(TokenError::Audience(format!(
                    "{} or, without aud, a client_id among MCP_OAUTH_CLIENT_IDS",
                    expected()
                ))),
            },
        }
    }

    async fn key_for(
        &self,
        kid: Option<&str>,
    ) -> Result<(DecodingKey, Option<Algorithm>), TokenError> {
        if let Some(set) = self.current().await
            && let Some(key) = lookup(&set, kid)
        {
            return Ok(key);
        }
        let set = self.refresh().await?;
        lookup(&set, kid).ok_or(TokenError::UnknownKey)
    }

    /// The cached set, unless it is older than [`KEYS_MAX_AGE`].
    async fn current(&self) -> Option<Arc<KeySet>> {
        let guard = self.keys.read().await;
        guard
            .as_ref()
            .filter(|set| set.fetched.elapsed() < KEYS_MAX_AGE)
            .cloned()
    }

    /// Fetches the key set, unless the refresh budget is spent: at most [`REFRESH_BURST`] fetches
    /// per [`REFRESH_WINDOW`], one at a time. When the budget is spent the cached set (possibly
    /// stale) is used, or, with none, the last failure is returned at once: a flood of tokens with
    /// made-up `kid`s, or an unreachable IdP, costs the IdP a handful of fetches and the callers no
    /// waiting. A set older than [`STALE_LIMIT`] is not used when the IdP cannot be reached.
    async fn refresh(&self) -> Result<Arc<KeySet>, TokenError> {
        let mut fetch = self.fetch.lock().await;
        let cached = self
            .keys
            .read()
            .await
            .clone()
            .filter(|set| set.fetched.elapsed() < STALE_LIMIT);
        fetch.recent.retain(|at| at.elapsed() < self.refresh_window);
        if fetch.recent.len() >= REFRESH_BURST {
            return match (&cached, &fetch.last_error) {
                (Some(set), _) => Ok(set.clone()),
                (None, Some(e)) => Err(e.clone()),
                (None, None) => Err(TokenError::KeysUnavailable(
                    "too many key set fetches; try again in a minute".into(),
                )),
            };
        }
        fetch.recent.push(Instant::now());
        match self.fetch_keys().await {
            Ok(set) => {
                fetch.last_error = None;
                let set = Arc::new(set);
                *self.keys.write().await = Some(set.clone());
                Ok(set)
            }
            Err(e) => {
                tracing::error!(error = %e, issuer = %self.settings.issuer, "could not fetch the OAuth issuer's keys");
                fetch.last_error = Some(e.clone());
                match cached {
                    // A stale set still verifies tokens signed with known keys, for a while.
                    Some(set) => Ok(set),
                    None => Err(e),
                }
            }
        }
    }

    async fn fetch_keys(&self) -> Result<KeySet, TokenError> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Bound first: a guard in the match scrutinee would live through the arms.
        let known = self.jwks_url.read().await.clone();
        let jwks_url = match known {
            Some(url) => url,
            None => {
                let url = self.discover().await?;
                *self.jwks_url.write().await = Some(url.clone());
                url
            }
        };
        let body = self.get(&jwks_url).await?;
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| {
            TokenError::KeysUnavailable(format!("{jwks_url} is not a JSON Web Key Set ({e})"))
        })?;
        let mut keys = HashMap::new();
        let mut signing = Vec::new();
        for jwk in &set.keys {
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            let Some(entry) = decoding_key(jwk) else {
                continue;
            };
            if let Some(kid) = &jwk.common.key_id {
                keys.insert(kid.clone(), entry.clone());
            }
            signing.push(entry);
        }
        if signing.is_empty() {
            return Err(TokenError::KeysUnavailable(format!(
                "{jwks_url} holds no usable signing key"
            )));
        }
        tracing::info!(keys = signing.len(), url = %jwks_url, "fetched the OAuth issuer's signing keys");
        let sole = (signing.len() == 1).then(|| signing.remove(0));
        Ok(KeySet {
            keys,
            sole,
            fetched: Instant::now(),
        })
    }

    /// Finds `jwks_uri` in the issuer's OpenID configuration, else in its RFC 8414 metadata.
    /// The document must name the configured issuer (RFC 8414 §3.3), so a look-alike cannot
    /// substitute its own keys.
    async fn discover(&self) -> Result<Url, TokenError> {
        let issuer = &self.settings.issuer;
        let trimmed = issuer.trim_end_matches('/');
        let mut candidates = vec![format!("{trimmed}/.well-known/openid-configuration")];
        if let Ok(url) = Url::parse(trimmed) {
            let path = url.path().trim_end_matches('/');
            let origin = url.origin().ascii_serialization();
            candidates.push(format!(
                "{origin}/.well-known/oauth-authorization-server{path}"
            ));
        }
        let mut last_error = None;
        for candidate in candidates {
            let Ok(url) = Url::parse(&candidate) else {
                continue;
            };
            match self.get(&url).await {
                Ok(body) => {
                    #[derive(Deserialize)]
                    struct Metadata {
                        issuer: Option<String>,
                        jwks_uri: Option<String>,
                    }
                    let metadata: Metadata = serde_json::from_slice(&body).map_err(|_| {
                        TokenError::KeysUnavailable(format!(
                            "{url} is not a JSON metadata document"
                        ))
                    })?;
                    if metadata.issuer.as_deref() != Some(issuer.as_str()) {
                        return Err(TokenError::KeysUnavailable(format!(
                            "{url} names issuer {:?}, not {issuer}: check MCP_OAUTH_ISSUER (it must equal the tokens' iss exactly)",
                            metadata.issuer.unwrap_or_default()
                        )));
                    }
                    let jwks_uri = metadata.jwks_uri.ok_or_else(|| {
                        TokenError::KeysUnavailable(format!("{url} has no jwks_uri"))
                    })?;
                    return crate::config::parse_endpoint_url(&jwks_uri).map_err(|problem| {
                        TokenError::KeysUnavailable(format!("jwks_uri {jwks_uri}: {problem}"))
                    });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| TokenError::KeysUnavailable("no metadata URL".into())))
    }

    async fn get(&self, url: &Url) -> Result<bytes::Bytes, TokenError> {
        let client = self
            .http
            .get()
            .await
            .map_err(|e| TokenError::KeysUnavailable(e.to_string()))?;
        let response = client
            .get(url.clone())
            .header("accept", "application/json")
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| TokenError::KeysUnavailable(format!("{url}: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(TokenError::KeysUnavailable(format!(
                "{url} answered {status}"
            )));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(TokenError::KeysUnavailable(format!("{url} is too large")));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| TokenError::KeysUnavailable(format!("{url}: {e}")))?;
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(TokenError::KeysUnavailable(format!("{url} is too large")));
        }
        Ok(body)
    }
}

/// The `alg` a token's header declares, read without trusting anything else in it.
fn declared_alg(token: &str) -> Option<String> {
    use base64::Engine;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let alg = value.get("alg")?.as_str()?;
    Some(audit::cut(alg, 16))
}

fn lookup(set: &KeySet, kid: Option<&str>) -> Option<(DecodingKey, Option<Algorithm>)> {
    match kid {
        Some(kid) => set.keys.get(kid).cloned(),
        None => set.sole.clone(),
    }
}

/// A JWK as a verification key, with the algorithm it declares. Symmetric (`oct`) keys are
/// skipped: a public key set never legitimately holds one, and accepting it would let anyone
/// who reads the set sign tokens.
fn decoding_key(jwk: &Jwk) -> Option<(DecodingKey, Option<Algorithm>)> {
    if matches!(
        jwk.algorithm,
        jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)
    ) {
        return None;
    }
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(declared) => {
            let alg = match declared {
                KeyAlgorithm::RS256 => Algorithm::RS256,
                KeyAlgorithm::RS384 => Algorithm::RS384,
                KeyAlgorithm::RS512 => Algorithm::RS512,
                KeyAlgorithm::PS256 => Algorithm::PS256,
                KeyAlgorithm::PS384 => Algorithm::PS384,
                KeyAlgorithm::PS512 => Algorithm::PS512,
                KeyAlgorithm::ES256 => Algorithm::ES256,
                KeyAlgorithm::ES384 => Algorithm::ES384,
                KeyAlgorithm::EdDSA => Algorithm::EdDSA,
                // Encryption or symmetric algorithms: not a signing key for us.
                _ => return None,
            };
            Some(alg)
        }
    };
    DecodingKey::from_jwk(jwk).ok().map(|key| (key, alg))
}

#[cfg(test)]
mod tests {
    //! Unit tests sign their own tokens with fixed test keys (the end-to-end tests use real
    //! identity providers). The JWKS is served by a tiny axum app on loopback, which also counts
    //! fetches and can rotate keys.

    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{Value, json};
    use std::sync::atomic::{AtomicUsize, Ordering};

    const ISSUER: &str = "https://idp.example.com/tenant";
    const AUDIENCE: &str = "https://mcp.example.com/mcp";

    // Two 2048-bit RSA keys (PKCS#8 DER, base64) generated for these tests only, and their JWKs.
    const KEY_A_DER: &str = include_str!("testdata/key_a.der.b64");
    const KEY_B_DER: &str = include_str!("testdata/key_b.der.b64");
    const JWK_A: &str = include_str!("testdata/key_a.jwk.json");
    const JWK_B: &str = include_str!("testdata/key_b.jwk.json");

    fn der(b64: &str) -> Vec<u8> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .unwrap()
    }

    fn now() -> u64 {
        crate::signing::now_secs()
    }

    fn sign(kid: Option<&str>, key_der: &str, claims: Value) -> String {
        crate::crypto::install();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_der(&der(key_der))).unwrap()
    }

    fn claims() -> Value {
        json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now() + 300, "iat": now(),
               "scope": "dynatrace:read dynatrace:write", "client_id": "app-1"})
    }

    struct Idp {
        url: String,
        keys: Arc<std::sync::Mutex<Vec<Value>>>,
        fetches: Arc<AtomicUsize>,
    }

    async fn idp() -> Idp {
        let keys = Arc::new(std::sync::Mutex::new(vec![
            serde_json::from_str::<Value>(JWK_A).unwrap(),
        ]));
        let fetches = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let issuer = url.clone();
        let (k, f) = (keys.clone(), fetches.clone());
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || {
                    let issuer = issuer.clone();
                    async move {
                        axum::Json(json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")}))
                    }
                }),
            )
            .route(
                "/jwks",
                axum::routing::get(move || {
                    let (k, f) = (k.clone(), f.clone());
                    async move {
                        f.fetch_add(1, Ordering::SeqCst);
                        axum::Json(json!({"keys": *k.lock().unwrap()}))
                    }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Idp { url, keys, fetches }
    }

    fn verifier(issuer: &str, jwks: Option<String>, client_ids: &[&str]) -> JwtVerifier {
        JwtVerifier::new(
            OAuthSettings {
                issuer: issuer.to_string(),
                public_url: Url::parse(AUDIENCE).unwrap(),
                audiences: vec![AUDIENCE.to_string()],
                jwks_url: jwks.map(|u| Url::parse(&u).unwrap()),
                client_ids: client_ids.iter().map(|s| s.to_string()).collect(),
            },
            HttpClient::new(None).unwrap(),
        )
        .with_refresh_window(Duration::from_millis(500))
    }

    async fn setup() -> (Idp, JwtVerifier) {
        let idp = idp().await;
        let v = verifier(ISSUER, Some(format!("{}/jwks", idp.url)), &[]);
        (idp, v)
    }

    #[tokio::test]
    async fn a_valid_token_yields_its_claims_and_scopes() {
        let (_idp, v) = setup().await;
        let claims = v
            .verify(&sign(Some("a"), KEY_A_DER, claims()))
            .await
            .unwrap();
        assert_eq!(claims.sub.as_deref(), Some("alice"));
        assert_eq!(claims.client(), Some("app-1"));
        assert_eq!(claims.scopes(), vec!["dynatrace:read", "dynatrace:write"]);
    }

    #[tokio::test]
    async fn expired_and_not_yet_valid_tokens_are_refused_beyond_the_skew() {
        let (_idp, v) = setup().await;
        let mut c = claims();
        c["exp"] = json!(now() - CLOCK_SKEW - 5);
        assert_eq!(
            v.verify(&sign(Some("a"), KEY_A_DER, c)).await,
            Err(TokenError::Expired)
        );
        let mut c = claims();
        c["exp"] = json!(now() - 5);
        assert!(
            v.verify(&sign(Some("a"), KEY_A_DER, c)).await.is_ok(),
            "within the skew"
        );
        let mut c = claims();
        c["nbf"] = json!(now() + CLOCK_SKEW + 60);
        assert_eq!(
            v.verify(&sign(Some("a"), KEY_A_DER, c)).await,
            Err(TokenError::NotYetValid)
        );
        let mut c = claims();
        c.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            v.verify(&sign(Some("a"), KEY_A_DER, c)).await,
            Err(TokenError::MissingClaim("exp"))
        );
    }

    #[tokio::test]
    async fn wrong_issuer_and_wrong_audience_are_refused() {
        let (_idp, v) = setup().await;
        let mut c = claims();
        c["iss"] = json!("https://idp.example.com/tenant/");
        assert!(matches!(
            v.verify(&sign(Some("a"), KEY_A_DER, c)).await,
            Err(TokenError::Issuer(_))
        ));
        let mut c = claims();
        c.as_object_mut().unwrap().remove("iss");
        assert!(matches!(
            v.verify(&sign(Some("a"), KEY_A_DER, c)).await,
            Err(TokenError::Issuer(_))
        ));
        let mut c = claims();
        c["aud"] = json!(["https://other.example.com/mcp", "account"]);
        assert!(matches!(
            v.verify(&sign(Some("a"), KEY_A_DER, c)).await,
            Err(TokenError::Audience(_))
        ));
        let mut c = claims();
        c["aud"] = json!(["account", AUDIENCE]);
        assert!(v.verify(&sign(Some("a"), KEY_A_DER, c)).await.is_ok());
    }

    #[tokio::test]
    async fn cognito_tokens_without_aud_need_a_listed_client() {
        let idp = idp().await;
        let v = verifier(ISSUER, Some(format!("{}/jwks", idp.url)), &["cognito-app"]);
        let mut c = claims();
        c.as_object_mut().unwrap().remove("aud");
        c["client_id"] = json!("cognito-app");
        c["token_use"] = json!("access");
        assert!(
            v.verify(&sign(Some("a"), KEY_A_DER, c.clone()))
                .await
                .is_ok()
        );
        c["client_id"] = json!("other-app");
        assert!(matches!(
            v.verify(&sign(Some("a"), KEY_A_DER, c.clone())).await,
            Err(TokenError::Audience(_))
        ));
        c["client_id"] = json!("cognito-app");
        c["token_use"] = json!("id");
        assert_eq!(
            v.verify(&sign(Some("a"), KEY_A_DER, c)).await,
            Err(TokenError::IdToken)
        );
        // Other providers' ID tokens have no token_use, but claims an access token never has.
        for marker in ["nonce", "at_hash", "c_hash"] {
            let mut c = claims();
            c[marker] = json!("x");
            assert_eq!(
                v.verify(&sign(Some("a"), KEY_A_DER, c)).await,
                Err(TokenError::IdToken),
                "{marker}"
            );
        }
        // Without MCP_OAUTH_CLIENT_IDS a token without aud is never accepted.
        let (_idp, strict) = setup().await;
        let mut c = claims();
        c.as_object_mut().unwrap().remove("aud");
        assert!(matches!(
            strict.verify(&sign(Some("a"), KEY_A_DER, c)).await,
            Err(TokenError::Audience(_))
        ));
    }

    #[tokio::test]
    async fn alg_none_and_hmac_tokens_are_refused() {
        use base64::Engine;
        let (_idp, v) = setup().await;
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
        };
        let none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "kid": "a"})),
            b64(&claims())
        );
        assert_eq!(
            v.verify(&none).await,
            Err(TokenError::Algorithm("none".into()))
        );
        // HS256 signed with the public key's bytes: the classic key-confusion attack.
        let jwk: Value = serde_json::from_str(JWK_A).unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("a".into());
        let forged = jsonwebtoken::encode(
            &header,
            &claims(),
            &EncodingKey::from_secret(jwk["n"].as_str().unwrap().as_bytes()),
        )
        .unwrap();
        assert_eq!(
            v.verify(&forged).await,
            Err(TokenError::Algorithm("HS256".into()))
        );
        assert_eq!(v.verify("not.a.jwt").await, Err(TokenError::Malformed));
        assert_eq!(v.verify("").await, Err(TokenError::Malformed));
    }

    #[tokio::test]
    async fn a_key_the_jwks_does_not_have_is_refused_and_fetches_are_rate_limited() {
        let (idp, v) = setup().await;
        v.verify(&sign(Some("a"), KEY_A_DER, claims()))
            .await
            .unwrap();
        assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);
        // Key B is not published: a token signed with it, under either kid, fails.
        assert_eq!(
            v.verify(&sign(Some("b"), KEY_B_DER, claims())).await,
            Err(TokenError::UnknownKey)
        );
        assert_eq!(
            v.verify(&sign(Some("a"), KEY_B_DER, claims())).await,
            Err(TokenError::Signature)
        );
        // A flood of unknown kids costs at most the refresh burst (tokens signed first: signing
        // is slow in a debug build, and the window must not pass during the flood).
        let flood: Vec<String> = (0..50)
            .map(|i| sign(Some(&format!("made-up-{i}")), KEY_B_DER, claims()))
            .collect();
        let v = v.with_refresh_window(Duration::from_secs(60));
        for token in &flood {
            assert_eq!(v.verify(token).await, Err(TokenError::UnknownKey));
        }
        assert_eq!(idp.fetches.load(Ordering::SeqCst), REFRESH_BURST);
    }

    #[tokio::test]
    async fn the_refresh_budget_comes_back_after_its_window() {
        let (idp, v) = setup().await;
        let v = v.with_refresh_window(Duration::from_millis(800));
        let tokens: Vec<String> = (0..REFRESH_BURST + 2)
            .map(|i| sign(Some(&format!("unknown-{i}")), KEY_B_DER, claims()))
            .collect();
        for token in &tokens[..=REFRESH_BURST] {
            assert_eq!(v.verify(token).await, Err(TokenError::UnknownKey));
        }
        assert_eq!(idp.fetches.load(Ordering::SeqCst), REFRESH_BURST);
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(
            v.verify(&tokens[REFRESH_BURST + 1]).await,
            Err(TokenError::UnknownKey)
        );
        assert_eq!(idp.fetches.load(Ordering::SeqCst), REFRESH_BURST + 1);
    }

    #[tokio::test]
    async fn a_rotated_key_is_picked_up_on_its_first_token() {
        let (idp, v) = setup().await;
        v.verify(&sign(Some("a"), KEY_A_DER, claims()))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        idp.keys
            .lock()
            .unwrap()
            .push(serde_json::from_str(JWK_B).unwrap());
        let claims_b = v
            .verify(&sign(Some("b"), KEY_B_DER, claims()))
            .await
            .unwrap();
        assert_eq!(claims_b.sub.as_deref(), Some("alice"));
        assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
        // Known keys need no fetch.
        v.verify(&sign(Some("a"), KEY_A_DER, claims()))
            .await
            .unwrap();
        assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn discovery_finds_the_jwks_and_checks_the_issuer() {
        let idp = idp().await;
        let v = verifier(&idp.url, None, &[]);
        let mut c = claims();
        c["iss"] = json!(idp.url);
        assert!(v.verify(&sign(Some("a"), KEY_A_DER, c)).await.is_ok());
        // The metadata names its own issuer: a different configured issuer is refused.
        let other = verifier(&format!("{}/other", idp.url), None, &[]);
        let mut c = claims();
        c["iss"] = json!(format!("{}/other", idp.url));
        assert!(matches!(
            other.verify(&sign(Some("a"), KEY_A_DER, c)).await,
            Err(TokenError::KeysUnavailable(_))
        ));
    }

    #[tokio::test]
    async fn an_unreachable_idp_is_not_the_callers_fault_and_is_not_hammered() {
        let jwks = Arc::new(AtomicUsize::new(0));
        // A server that counts fetches and always fails.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let counter = jwks.clone();
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { axum::http::StatusCode::SERVICE_UNAVAILABLE }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let v = verifier(ISSUER, Some(url), &[]);
        for _ in 0..20 {
            assert!(matches!(
                v.verify(&sign(Some("a"), KEY_A_DER, claims())).await,
                Err(TokenError::KeysUnavailable(_))
            ));
        }
        assert_eq!(jwks.load(Ordering::SeqCst), REFRESH_BURST);
    }

    #[tokio::test]
    async fn a_key_that_declares_another_algorithm_is_not_used() {
        let idp = idp().await;
        let mut jwk: Value = serde_json::from_str(JWK_A).unwrap();
        jwk["alg"] = json!("RS512");
        *idp.keys.lock().unwrap() = vec![jwk];
        let v = verifier(ISSUER, Some(format!("{}/jwks", idp.url)), &[]);
        assert_eq!(
            v.verify(&sign(Some("a"), KEY_A_DER, claims())).await,
            Err(TokenError::Signature)
        );
    }
}
