//! Bearer tokens for Dynatrace: a platform token as configured, or OAuth client-credentials
//! tokens from the SSO endpoint, cached until shortly before they expire.
//!
//! The cache is keyed by (credential fingerprint, SSO URL, scopes), never a single shared slot:
//! a token obtained for one credential can never be served to a caller presenting another, which
//! is what per-user credentials behind one endpoint will need. Each key has its own async mutex,
//! so at most one refresh per key is in flight; callers that arrive during a refresh wait for it
//! and then reuse its token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use url::Url;

use super::error::DynatraceError;
use crate::config::Credentials;
use crate::deadline::Deadline;

/// Refresh this long before the token expires (capped at a fifth of its lifetime for short ones).
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// A bearer token ready to be put in an `Authorization` header.
#[derive(Clone)]
pub struct Bearer {
    token: SecretString,
    /// Identifies which cached token this is, so a 401 invalidates only that one.
    generation: u64,
}

impl Bearer {
    pub fn header_value(&self) -> String {
        format!("Bearer {}", self.token.expose_secret())
    }
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer([redacted])")
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    credential: [u8; 32],
    scopes: String,
}

struct Cached {
    token: SecretString,
    refresh_at: Instant,
    generation: u64,
}

#[derive(Default)]
struct Slot {
    current: tokio::sync::Mutex<Option<Cached>>,
}

/// Hands out bearer tokens for a credential and a scope set.
pub struct TokenProvider {
    http: Arc<super::HttpClient>,
    sso_url: Url,
    slots: Mutex<HashMap<CacheKey, Arc<Slot>>>,
    generation: std::sync::atomic::AtomicU64,
    token_requests: std::sync::atomic::AtomicU64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// RFC 6749 error fields plus Dynatrace's own (`issueId` is a support correlation id).
#[derive(Deserialize, Default)]
struct TokenErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default, rename = "issueId")]
    issue_id: String,
}

impl TokenProvider {
    pub fn new(http: Arc<super::HttpClient>, sso_url: Url) -> Self {
        Self {
            http,
            sso_url,
            slots: Mutex::new(HashMap::new()),
            generation: Default::default(),
            token_requests: Default::default(),
        }
    }

    /// How many SSO token requests this provider has made (for tests and the benchmark).
    pub fn token_requests(&self) -> u64 {
        self.token_requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A bearer for `credentials` with `scopes` (space-separated), from the cache when it is fresh.
    pub async fn bearer(
        &self,
        credentials: &Credentials,
        scopes: &str,
        deadline: Deadline,
    ) -> Result<Bearer, DynatraceError> {
        let (client_id, client_secret, account_urn) = match credentials {
            Credentials::PlatformToken(token) => {
                return Ok(Bearer {
                    token: token.clone(),
                    generation: 0,
                });
            }
            Credentials::OAuth {
                client_id,
                client_secret,
                account_urn,
            } => (client_id, client_secret, account_urn),
        };
        let slot = self.slot(credentials, scopes);
        let mut current = slot.current.lock().await;
        if let Some(cached) = current.as_ref()
            && Instant::now() < cached.refresh_at
        {
            return Ok(Bearer {
                token: cached.token.clone(),
                generation: cached.generation,
            });
        }
        // Still holding the slot's lock: concurrent callers for this key wait for this refresh.
        let fresh = self
            .request_token(client_id, client_secret, account_urn, scopes, deadline)
            .await?;
        let bearer = Bearer {
            token: fresh.token.clone(),
            generation: fresh.generation,
        };
        *current = Some(fresh);
        Ok(bearer)
    }

    /// Forgets `used` after Dynatrace answered 401 to it, unless a newer token already replaced it.
    pub async fn invalidate(&self, credentials: &Credentials, scopes: &str, used: &Bearer) {
        if matches!(credentials, Credentials::PlatformToken(_)) {
            return;
        }
        let slot = self.slot(credentials, scopes);
        let mut current = slot.current.lock().await;
        if current
            .as_ref()
            .is_some_and(|cached| cached.generation == used.generation)
        {
            *current = None;
        }
    }

    /// Whether refreshing can help after a 401 (only OAuth tokens can be refreshed).
    pub fn can_refresh(credentials: &Credentials) -> bool {
        matches!(credentials, Credentials::OAuth { .. })
    }

    fn slot(&self, credentials: &Credentials, scopes: &str) -> Arc<Slot> {
        let mut hasher = Sha256::new();
        hasher.update(self.sso_url.as_str().as_bytes());
        hasher.update(b"\n");
        hasher.update(credentials.fingerprint_material());
        let key = CacheKey {
            credential: hasher.finalize().into(),
            scopes: scopes.to_string(),
        };
        let mut slots = self.slots.lock().expect("token cache lock poisoned");
        slots.entry(key).or_default().clone()
    }

    async fn request_token(
        &self,
        client_id: &str,
        client_secret: &SecretString,
        account_urn: &str,
        scopes: &str,
        deadline: Deadline,
    ) -> Result<Cached, DynatraceError> {
        let remaining = deadline.remaining();
        if remaining.is_zero() {
            return Err(DynatraceError::Timeout {
                what: "SSO token request",
            });
        }
        self.token_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret.expose_secret()),
            ("resource", account_urn),
        ];
        if !scopes.is_empty() {
            form.push(("scope", scopes));
        }
        let started = Instant::now();
        let builder = self
            .http
            .get()
            .await?
            .post(self.sso_url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .timeout(remaining);
        let (status, body) = super::send_traced(
            builder,
            (&reqwest::Method::POST, self.sso_url.as_str()),
            0,
            "SSO token request",
            |response| async {
                response
                    .bytes()
                    .await
                    .map_err(|e| transport_error(e, "SSO token request"))
            },
        )
        .await?;
        if status != 200 {
            let parsed: TokenErrorBody = serde_json::from_slice(&body).unwrap_or_default();
            let error = if parsed.error.is_empty() {
                "unexpected response".to_string()
            } else {
                parsed.error
            };
            // Defensive: an SSO implementation that echoes the request must not leak the secret.
            let mut description = parsed
                .error_description
                .replace(client_secret.expose_secret(), "[redacted]");
            if !parsed.issue_id.is_empty() {
                if !description.is_empty() {
                    description.push_str("; ");
                }
                description.push_str(&format!("Dynatrace issue id {}", parsed.issue_id));
            }
            return Err(DynatraceError::TokenRequest {
                status,
                error,
                description,
            });
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| DynatraceError::Decode {
                context: "SSO token response".to_string(),
                message: e.to_string(),
            })?;
        if parsed.access_token.is_empty() {
            return Err(DynatraceError::Decode {
                context: "SSO token response".to_string(),
                message: "access_token is empty".to_string(),
            });
        }
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(300));
        let margin = REFRESH_MARGIN.min(lifetime / 5);
        let refresh_at = started + lifetime.saturating_sub(margin);
        tracing::debug!(
            lifetime_s = lifetime.as_secs(),
            "obtained an OAuth token from the SSO endpoint"
        );
        Ok(Cached {
            token: SecretString::from(parsed.access_token),
            refresh_at,
            generation: self
                .generation
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1,
        })
    }
}

/// Maps a reqwest failure to a typed error without echoing URLs that could carry secrets.
pub(crate) fn transport_error(error: reqwest::Error, what: &'static str) -> DynatraceError {
    if error.is_timeout() {
        DynatraceError::Timeout { what }
    } else if error.is_connect() {
        let cause = root_cause(&error);
        let lower = cause.to_ascii_lowercase();
        let hint = if lower.contains("lookup") || lower.contains("dns") || lower.contains("resolve")
        {
            if what.starts_with("SSO") {
                "; the host name does not resolve: check DT_SSO_URL and this network's DNS"
            } else {
                "; the host name does not resolve: check the environment URL (DT_ENVIRONMENT, or the entry's url in DT_ENVIRONMENTS) and this network's DNS"
            }
        } else if lower.contains("refused") {
            "; nothing answers at that address: check the URL's host and port, and any proxy"
        } else {
            ""
        };
        DynatraceError::Network(format!("{what}: connection failed ({cause}){hint}"))
    } else if error.is_decode() || error.is_body() || error.is_request() {
        // Connected, then broken off (reset, cut-off body, a proxy closing on us).
        DynatraceError::Interrupted(format!("{what}: {}", root_cause(&error)))
    } else {
        DynatraceError::Network(format!("{what}: {}", root_cause(&error)))
    }
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut source = error;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}
