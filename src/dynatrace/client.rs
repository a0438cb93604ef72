//! The one client struct for Dynatrace platform APIs.
//!
//! Every call goes through [`DynatraceClient::call`], which owns the cross-cutting rules:
//! - the bearer comes from the [`TokenProvider`] for the call's scope set; a 401 on an OAuth token
//!   invalidates it and retries once with a fresh one;
//! - 429 and 503 are retried after `Retry-After` (or a short back-off), plus up to a fifth of jitter, while the caller's deadline
//!   leaves room, at most [`MAX_RETRIES`] times;
//! - every request is bounded by the caller's [`Deadline`];
//! - non-success statuses become typed [`DynatraceError`]s built from the platform's error envelope.
//!
//! Operation-specific code (Grail, environment, …) lives in sibling modules and only describes
//! requests and decodes bodies.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use sha2::Digest;

use super::auth::{TokenProvider, transport_error};
use super::error::DynatraceError;
use crate::config::{Credentials, DtEnvironment};
use crate::deadline::Deadline;

/// Retries after 429/503 per call.
pub const MAX_RETRIES: u32 = 3;
/// Used when a 429/503 carries no `Retry-After`.
const DEFAULT_BACKOFF: Duration = Duration::from_millis(500);
/// Sent as `dt-client-context`, which Dynatrace records with each query for auditing, when no
/// caller is known (a view per caller names the principal: [`DynatraceClient::for_caller`]).
const CLIENT_CONTEXT: &str = concat!("dynatrace-mcp/", env!("CARGO_PKG_VERSION"));

/// A request body.
#[derive(Debug, Clone)]
pub enum ApiBody {
    Json(serde_json::Value),
    /// Pre-encoded bytes with their content type (multipart uploads).
    Raw {
        content_type: String,
        bytes: Bytes,
    },
}

/// One request to a platform API.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    /// Path below the environment URL, starting with `/platform/`.
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<ApiBody>,
    /// OAuth scopes this call needs, space-separated (ignored for platform tokens).
    pub scopes: String,
    /// What the call is about, for messages ("query result", "environment").
    pub what: String,
}

impl ApiRequest {
    pub fn get(path: impl Into<String>, scopes: &str, what: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            query: Vec::new(),
            body: None,
            scopes: scopes.to_string(),
            what: what.into(),
        }
    }

    pub fn post(
        path: impl Into<String>,
        body: serde_json::Value,
        scopes: &str,
        what: impl Into<String>,
    ) -> Self {
        Self {
            method: Method::POST,
            path: path.into(),
            query: Vec::new(),
            body: Some(ApiBody::Json(body)),
            scopes: scopes.to_string(),
            what: what.into(),
        }
    }

    pub fn patch(
        path: impl Into<String>,
        body: serde_json::Value,
        scopes: &str,
        what: impl Into<String>,
    ) -> Self {
        Self {
            method: Method::PATCH,
            ..Self::post(path, body, scopes, what)
        }
    }

    /// A POST without a body.
    pub fn post_empty(path: impl Into<String>, scopes: &str, what: impl Into<String>) -> Self {
        Self {
            body: None,
            ..Self::post(path, serde_json::Value::Null, scopes, what)
        }
    }

    pub fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }
}

/// A successful (2xx) answer.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Bytes,
}

impl ApiResponse {
    pub fn json<T: DeserializeOwned>(&self, context: &str) -> Result<T, DynatraceError> {
        serde_json::from_slice(&self.body).map_err(|e| DynatraceError::Decode {
            context: context.to_string(),
            message: e.to_string(),
        })
    }
}

/// The client of one environment. The server holds one; each tool call works on a cheap view of
/// it made by [`DynatraceClient::for_caller`], which carries the caller's own token (when it sent
/// one) and names the caller in `dt-client-context`. Views share the connection pool, the token
/// cache; what a view learns with a caller's token (the CoPilot skills
/// it may use) is cached under that token, never shared with another caller.
#[derive(Clone)]
pub struct DynatraceClient {
    http: Arc<super::HttpClient>,
    environment: DtEnvironment,
    /// `None`: the server holds no credential and this caller sent none.
    credentials: Option<Credentials>,
    /// Whether `credentials` came from the caller (`X-Dynatrace-Token`).
    caller_token: bool,
    client_context: String,
    tokens: Arc<TokenProvider>,
    skills: Arc<super::copilot::SkillCache>,
    caller_skills:
        Arc<std::sync::Mutex<std::collections::HashMap<[u8; 32], Arc<super::copilot::SkillCache>>>>,
    /// Work left behind by calls (cancelling an abandoned query), awaited at shutdown.
    background: tokio_util::task::TaskTracker,
}

/// Callers' skill caches kept at most; past it the map starts over (they refill on demand).
const MAX_CALLER_CACHES: usize = 1024;

impl DynatraceClient {
    pub fn new(
        http: Arc<super::HttpClient>,
        environment: DtEnvironment,
        credentials: Option<Credentials>,
        tokens: Arc<TokenProvider>,
    ) -> Self {
        Self {
            http,
            environment,
            credentials,
            caller_token: false,
            client_context: CLIENT_CONTEXT.to_string(),
            tokens,
            skills: Arc::default(),
            caller_skills: Arc::default(),
            background: tokio_util::task::TaskTracker::new(),
        }
    }

    /// Shares `tracker` for the work calls leave behind (one per server, for every environment).
    pub fn with_background(mut self, tracker: tokio_util::task::TaskTracker) -> Self {
        self.background = tracker;
        self
    }

    /// The tasks calls left behind (query cancellations); shutdown waits for them.
    pub fn background(&self) -> &tokio_util::task::TaskTracker {
        &self.background
    }

    /// A view for one caller: its own token instead of the server's credential when it sent one,
    /// and `client_context` (which names the principal) in `dt-client-context`.
    pub fn for_caller(&self, token: Option<&SecretString>, client_context: String) -> Self {
        let mut view = self.clone();
        view.client_context = client_context;
        if let Some(token) = token {
            let key: [u8; 32] = sha2::Sha256::digest(token.expose_secret().as_bytes()).into();
            let mut caches = self.caller_skills.lock().expect("skill caches lock");
            if caches.len() >= MAX_CALLER_CACHES && !caches.contains_key(&key) {
                caches.clear();
            }
            view.skills = caches.entry(key).or_default().clone();
            view.credentials = Some(Credentials::PlatformToken(token.clone()));
            view.caller_token = true;
        }
        view
    }

    /// Whether this view acts with the caller's own token.
    pub fn uses_caller_token(&self) -> bool {
        self.caller_token
    }

    pub(crate) fn skill_cache(&self) -> &super::copilot::SkillCache {
        &self.skills
    }

    pub fn environment(&self) -> &DtEnvironment {
        &self.environment
    }

    pub fn tokens(&self) -> &TokenProvider {
        &self.tokens
    }

    /// Sends `request`, applying auth, refresh-on-401, retry-on-429/503 and the deadline.
    pub async fn call(
        &self,
        request: &ApiRequest,
        deadline: Deadline,
    ) -> Result<ApiResponse, DynatraceError> {
        let url = self.environment.url(&request.path);
        let mut refreshed = false;
        let mut retries = 0;
        // Every request sent again (after a 429/503 or a token refresh): `http.request.resend_count`.
        let mut attempt = 0;
        loop {
            let remaining = deadline.remaining();
            if remaining.is_zero() {
                return Err(DynatraceError::Timeout {
                    what: "Dynatrace API call",
                });
            }
            let Some(credentials) = &self.credentials else {
                return Err(DynatraceError::NoCredential);
            };
            let bearer = self
                .tokens
                .bearer(credentials, &request.scopes, deadline)
                .await?;
            let mut builder = self
                .http
                .get()
                .await?
                .request(request.method.clone(), &url)
                .header(AUTHORIZATION, bearer.header_value())
                .header(ACCEPT, "application/json")
                .header("dt-client-context", self.client_context.as_str())
                .timeout(deadline.remaining());
            if !request.query.is_empty() {
                builder = builder.query(&request.query);
            }
            match &request.body {
                Some(ApiBody::Json(body)) => {
                    builder = builder
                        .header(CONTENT_TYPE, "application/json")
                        .body(serde_json::to_vec(body).expect("JSON values serialize"));
                }
                Some(ApiBody::Raw {
                    content_type,
                    bytes,
                }) => {
                    builder = builder
                        .header(CONTENT_TYPE, content_type.as_str())
                        .body(bytes.clone());
                }
                None => {}
            }
            let (status, (retry_after, body)) = super::send_traced(
                builder,
                (&request.method, &url),
                attempt,
                "Dynatrace API call",
                |response| async {
                    let retry_after = parse_retry_after(response.headers());
                    Ok((retry_after, read_capped(response, &request.what).await?))
                },
            )
            .await?;
            attempt += 1;
            tracing::debug!(method = %request.method, path = %request.path, status, "dynatrace call");
            if (200..=299).contains(&status) {
                return Ok(ApiResponse { status, body });
            }
            // Only error bodies are searched for `retryAfterSeconds`: parsing every successful
            // body a second time cost about 8 % of the CPU of an execute_dql call.
            let retry_after = retry_after.or_else(|| retry_after_from_body(&body));

            match status {
                401 if !refreshed && TokenProvider::can_refresh(credentials) => {
                    // The token may have been revoked or expired early: fetch a new one, once.
                    self.tokens
                        .invalidate(credentials, &request.scopes, &bearer)
                        .await;
                    refreshed = true;
                }
                401 if self.caller_token => {
                    let message =
                        match DynatraceError::from_response(status, &body, &request.what, None) {
                            DynatraceError::Unauthorized { message } => message,
                            other => other.to_string(),
                        };
                    return Err(DynatraceError::CallerTokenRejected { message });
                }
                429 | 503 => {
                    let wait =
                        with_jitter(retry_after.unwrap_or(DEFAULT_BACKOFF * 2u32.pow(retries)));
                    // Only wait when the retry can still finish before the deadline.
                    if retries < MAX_RETRIES
                        && wait + Duration::from_millis(200) < deadline.remaining()
                    {
                        retries += 1;
                        crate::identity::audit::note_retry();
                        tracing::info!(
                            status,
                            wait_ms = wait.as_millis() as u64,
                            retries,
                            "Dynatrace asked to retry later"
                        );
                        tokio::time::sleep(wait).await;
                    } else {
                        return Err(DynatraceError::from_response(
                            status,
                            &body,
                            &request.what,
                            retry_after,
                        ));
                    }
                }
                _ => {
                    return Err(DynatraceError::from_response(
                        status,
                        &body,
                        &request.what,
                        retry_after,
                    ));
                }
            }
        }
    }
}

/// The most of one answer this server reads. Grail answers at most `recordSizeLimitMB` (10 MiB)
/// of records plus their envelope; anything larger is not a Dynatrace answer worth holding (a
/// proxy's stream, a runaway body), and reading it whole is how one call could take the memory
/// of every other.
pub const UPSTREAM_MAX_BYTES: usize = 24 * 1024 * 1024;

/// Reads a body up to [`UPSTREAM_MAX_BYTES`]: refused at once when its announced length is
/// larger, stopped as soon as it grows past the cap.
async fn read_capped(mut response: reqwest::Response, what: &str) -> Result<Bytes, DynatraceError> {
    let too_large = || DynatraceError::TooLarge {
        what: what.to_string(),
        limit: UPSTREAM_MAX_BYTES,
    };
    if response
        .content_length()
        .is_some_and(|len| len > UPSTREAM_MAX_BYTES as u64)
    {
        return Err(too_large());
    }
    // The announced length at once (at most the cap, checked above): growing by doubling would
    // copy a large body several times and touch up to twice its size.
    let mut body = bytes::BytesMut::with_capacity(response.content_length().unwrap_or(0) as usize);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(e, "Dynatrace API call"))?
    {
        if body.len() + chunk.len() > UPSTREAM_MAX_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Percent-encodes one path segment (an id or a name from user input), so it can never add
/// segments or a query to the path.
pub fn path_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// `wait` plus up to a fifth more (at least 100 ms of spread), so that the instances a 429 or 503
/// turned away do not all come back in the same millisecond.
fn with_jitter(wait: Duration) -> Duration {
    let spread = (wait.as_millis() as u64 / 5).max(100);
    wait + Duration::from_millis(rand::random_range(0..=spread))
}

/// `Retry-After` as delay-seconds or an HTTP date; capped at five minutes.
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(secs) = value.parse::<f64>() {
        if !(secs.is_finite() && secs >= 0.0) {
            return None;
        }
        Duration::from_secs_f64(secs)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO)
    };
    Some(wait.min(Duration::from_secs(300)))
}

/// `error.retryAfterSeconds`, which Grail sets on throttling besides the header.
fn retry_after_from_body(body: &[u8]) -> Option<Duration> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let secs = value.get("error")?.get("retryAfterSeconds")?.as_f64()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(300.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn path_segments_cannot_escape() {
        assert_eq!(
            path_segment("dt.statistics.GenericForecastAnalyzer"),
            "dt.statistics.GenericForecastAnalyzer"
        );
        assert_eq!(path_segment("w/1?x=y"), "w%2F1%3Fx%3Dy");
        assert_eq!(path_segment("../.."), "..%2F..");
    }

    #[test]
    fn jitter_adds_up_to_a_fifth_and_spreads() {
        let waits: Vec<Duration> = (0..200)
            .map(|_| with_jitter(Duration::from_secs(2)))
            .collect();
        assert!(waits.iter().all(|w| *w >= Duration::from_secs(2)));
        assert!(waits.iter().all(|w| *w <= Duration::from_millis(2400)));
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(distinct.len() > 50, "{} distinct waits", distinct.len());
        assert!(with_jitter(Duration::ZERO) <= Duration::from_millis(100));
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("0.5"));
        assert_eq!(
            parse_retry_after(&headers),
            Some(Duration::from_millis(500))
        );
        headers.insert(RETRY_AFTER, HeaderValue::from_static("99999"));
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(300)));
        let date = httpdate::fmt_http_date(std::time::SystemTime::now() - Duration::from_secs(5));
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
        assert_eq!(parse_retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&headers), None);
    }
}
