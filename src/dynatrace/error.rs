//! Typed failures of calls to Dynatrace.
//!
//! The variants are the cases a caller branches on (refresh on 401, wait on 429, name the missing
//! scope on 403, show the parser's position on 400). Their `Display` is a sentence a model or an
//! operator can act on; `mcp::errors` turns them into `isError` tool results. No variant ever
//! holds a credential.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// Where a DQL parser error points, as Dynatrace reports it (`details.syntaxErrorPosition`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct TokenPosition {
    pub line: u32,
    pub column: u32,
    #[serde(default)]
    pub index: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct SyntaxErrorPosition {
    pub start: TokenPosition,
    pub end: TokenPosition,
}

#[derive(Debug, thiserror::Error)]
pub enum DynatraceError {
    #[error(
        "Dynatrace rejected the credentials (HTTP 401{}). Check that the platform token or OAuth client is valid and not expired",
        fmt_message(message)
    )]
    Unauthorized { message: String },

    #[error("{}", forbidden_sentence(message, missing_scopes))]
    Forbidden {
        message: String,
        missing_scopes: Vec<String>,
    },

    #[error("Dynatrace found nothing at {what} (HTTP 404{})", fmt_message(message))]
    NotFound { what: String, message: String },

    #[error("{}", bad_request_sentence(message, position.as_ref()))]
    BadRequest {
        message: String,
        position: Option<SyntaxErrorPosition>,
        details: Option<Value>,
    },

    #[error("{}", rate_limited_sentence(*retry_after))]
    RateLimited { retry_after: Option<Duration> },

    #[error(
        "Dynatrace answered HTTP {status}{}; this is a problem on the Dynatrace side, try again shortly",
        fmt_message(message)
    )]
    Upstream { status: u16, message: String },

    #[error(
        "Dynatrace answered with an unexpected HTTP {status}{}",
        fmt_message(message)
    )]
    UnexpectedStatus { status: u16, message: String },

    #[error("the call to Dynatrace did not finish within the time left for this request ({what})")]
    Timeout { what: &'static str },

    #[error("could not reach Dynatrace: {0}")]
    Network(String),

    /// The answer was larger than this server reads ([`super::client::UPSTREAM_MAX_BYTES`]).
    #[error(
        "Dynatrace (or a proxy on the way) sent more than {} MiB for {what}, more than this server reads; \
         ask for less (a narrower filter or timeframe, a limit, fewer fields)",
        limit / (1024 * 1024)
    )]
    TooLarge { what: String, limit: usize },

    /// Dynatrace (or a proxy on the way) was reached, but the exchange broke off: a reset
    /// connection, a cut-off body.
    #[error(
        "the connection to Dynatrace broke off before its answer was complete ({0}); try again"
    )]
    Interrupted(String),

    #[error("Dynatrace sent a response this server could not read ({context}): {message}")]
    Decode { context: String, message: String },

    /// The server holds no Dynatrace credential (`DT_TOKEN_PASSTHROUGH=required`) and the caller
    /// sent none.
    #[error(
        "this server acts with each caller's own Dynatrace token and none was sent for this environment: send your \
         platform token (dt0s16.…) in the X-Dynatrace-Token header of every request (add it to your MCP client's \
         headers); for a named environment, in X-Dynatrace-Tokens: alias=token;alias2=token2"
    )]
    NoCredential,

    /// Dynatrace refused the token the caller sent in `X-Dynatrace-Token`.
    #[error(
        "Dynatrace rejected the token you sent for this environment (X-Dynatrace-Token, or its alias in \
         X-Dynatrace-Tokens) (HTTP 401{}): check that it is a valid, unexpired platform token of this environment",
        fmt_message(message)
    )]
    CallerTokenRejected { message: String },

    #[error("{}", sso_sentence(*status, error, description))]
    TokenRequest {
        status: u16,
        error: String,
        description: String,
    },
}

impl DynatraceError {
    /// A short, stable label (logs, metrics' `Outcome`, a span's `error.type`).
    pub fn kind(&self) -> &'static str {
        match self {
            DynatraceError::Unauthorized { .. } => "unauthorized",
            DynatraceError::Forbidden { .. } => "forbidden",
            DynatraceError::NotFound { .. } => "not_found",
            DynatraceError::BadRequest { .. } => "bad_request",
            DynatraceError::RateLimited { .. } => "rate_limited",
            DynatraceError::Upstream { .. } | DynatraceError::UnexpectedStatus { .. } => "upstream",
            DynatraceError::Timeout { .. } => "timeout",
            DynatraceError::Network(_) => "network",
            DynatraceError::Interrupted(_) => "interrupted",
            DynatraceError::TooLarge { .. } => "too_large",
            DynatraceError::Decode { .. } => "decode",
            DynatraceError::TokenRequest { .. } => "token_request",
            DynatraceError::NoCredential => "no_credential",
            DynatraceError::CallerTokenRejected { .. } => "caller_token_rejected",
        }
    }

    /// Builds the error for a non-success status from the platform's error envelope
    /// (`{"error":{"code","message","details"}}`), falling back to the raw body.
    pub fn from_response(
        status: u16,
        body: &[u8],
        what: &str,
        retry_after: Option<Duration>,
    ) -> Self {
        let envelope = parse_envelope(body);
        let message = envelope
            .as_ref()
            .and_then(|e| e.message.clone())
            .unwrap_or_else(|| short_body(body));
        let details = envelope.as_ref().and_then(|e| e.details.clone());
        match status {
            400 | 422 => {
                let position = details
                    .as_ref()
                    .and_then(|d| d.get("syntaxErrorPosition"))
                    .and_then(|p| serde_json::from_value(p.clone()).ok());
                // The parser's own sentence is in details.errorMessage when present.
                let message = details
                    .as_ref()
                    .and_then(|d| d.get("errorMessage"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or(message);
                DynatraceError::BadRequest {
                    message,
                    position,
                    details,
                }
            }
            401 => DynatraceError::Unauthorized { message },
            403 => {
                let missing_scopes = details
                    .as_ref()
                    .and_then(|d| d.get("missingScopes"))
                    .and_then(Value::as_array)
                    .map(|scopes| {
                        scopes
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                DynatraceError::Forbidden {
                    message,
                    missing_scopes,
                }
            }
            404 => DynatraceError::NotFound {
                what: what.to_string(),
                message,
            },
            429 => DynatraceError::RateLimited { retry_after },
            500..=599 => DynatraceError::Upstream { status, message },
            _ => DynatraceError::UnexpectedStatus { status, message },
        }
    }

    /// Whether retrying the same request later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DynatraceError::RateLimited { .. }
                | DynatraceError::Upstream { .. }
                | DynatraceError::Network(_)
                | DynatraceError::Interrupted(_)
                | DynatraceError::Timeout { .. }
        )
    }
}

#[derive(Debug, Deserialize)]
struct Envelope {
    error: EnvelopeBody,
}

#[derive(Debug, Deserialize)]
struct EnvelopeBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    details: Option<Value>,
}

fn parse_envelope(body: &[u8]) -> Option<EnvelopeBody> {
    serde_json::from_slice::<Envelope>(body)
        .ok()
        .map(|e| e.error)
}

/// At most 300 characters of a non-JSON body, on one line.
fn short_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if let Some(page) = html_page(&text) {
        return page;
    }
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = one_line.chars().take(300).collect();
    if one_line.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// A proxy's or load balancer's HTML page, named by its title instead of quoted: markup is
/// noise to a model and may carry whatever the proxy put there.
fn html_page(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let start = lower.trim_start();
    if !(start.starts_with("<!doctype html")
        || start.starts_with("<html")
        || lower.contains("<body"))
    {
        return None;
    }
    let title = lower
        .find("<title>")
        .map(|at| at + "<title>".len())
        .and_then(|from| {
            lower[from..]
                .find("</title>")
                .map(|len| &text[from..from + len])
        })
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|t| !t.is_empty() && t.chars().all(|c| !c.is_control() && c != '<'))
        .map(|t| format!(" titled \"{}\"", t.chars().take(80).collect::<String>()))
        .unwrap_or_default();
    Some(format!(
        "an HTML page{title} instead of Dynatrace's JSON (a proxy, firewall or load balancer between this server and Dynatrace answered)"
    ))
}

fn fmt_message(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

fn forbidden_sentence(message: &str, missing: &[String]) -> String {
    if missing.is_empty() {
        format!(
            "Dynatrace refused the request (HTTP 403{}). The token or OAuth client lacks a permission this call needs",
            fmt_message(message)
        )
    } else {
        format!(
            "Dynatrace refused the request (HTTP 403): the token lacks the scope{} {}. Add {} to the platform token or OAuth client, then try again",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
            if missing.len() == 1 { "it" } else { "them" },
        )
    }
}

fn bad_request_sentence(message: &str, position: Option<&SyntaxErrorPosition>) -> String {
    match position {
        Some(p) => format!(
            "Dynatrace rejected the request: {message} (at line {}, column {})",
            p.start.line, p.start.column
        ),
        None => format!("Dynatrace rejected the request: {message}"),
    }
}

fn rate_limited_sentence(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(
            "Dynatrace is rate limiting this client (HTTP 429); try again in {} s",
            d.as_secs().max(1)
        ),
        None => "Dynatrace is rate limiting this client (HTTP 429); try again shortly".to_string(),
    }
}

fn sso_sentence(status: u16, error: &str, description: &str) -> String {
    let hint = match error {
        "invalid_client" => {
            " Check OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET (the client may have been deleted or the secret rotated)"
        }
        "invalid_scope" => {
            " The OAuth client is not allowed one of the requested scopes: grant it in the account's OAuth client settings"
        }
        "invalid_request" | "invalid_target" => {
            " Check DT_ACCOUNT_URN (urn:dtaccount:<account-uuid>)"
        }
        _ => "",
    };
    let description = if description.is_empty() {
        String::new()
    } else {
        format!(" ({description})")
    };
    format!(
        "The Dynatrace SSO token request failed with HTTP {status}: {error}{description}.{hint}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_html_page_is_named_by_its_title_not_quoted() {
        let page =
            b"<html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1></body></html>";
        let text = short_body(page);
        assert!(
            text.contains("an HTML page titled \"502 Bad Gateway\""),
            "{text}"
        );
        assert!(!text.contains('<'), "{text}");
        let text = short_body(b"<!DOCTYPE html><body>denied</body>");
        assert!(text.starts_with("an HTML page instead of"), "{text}");
        assert_eq!(short_body(b"plain words"), "plain words");
    }

    #[test]
    fn forbidden_names_missing_scopes() {
        let body = br#"{"error":{"code":403,"message":"Forbidden","details":{"missingScopes":["storage:logs:read","storage:buckets:read"]}}}"#;
        let err = DynatraceError::from_response(403, body, "query", None);
        let text = err.to_string();
        assert!(
            text.contains("storage:logs:read, storage:buckets:read"),
            "{text}"
        );
    }

    #[test]
    fn bad_request_shows_parser_message_and_position() {
        let body = br#"{"error":{"code":400,"message":"PARSE_ERROR","details":{"errorMessage":"The command `fetsh` doesn't exist.","syntaxErrorPosition":{"start":{"column":1,"index":0,"line":1},"end":{"column":5,"index":4,"line":1}}}}}"#;
        let err = DynatraceError::from_response(400, body, "query", None);
        assert_eq!(
            err.to_string(),
            "Dynatrace rejected the request: The command `fetsh` doesn't exist. (at line 1, column 1)"
        );
    }

    #[test]
    fn non_json_bodies_are_shortened() {
        let body = "x".repeat(1000);
        let err = DynatraceError::from_response(502, body.as_bytes(), "query", None);
        assert!(err.to_string().len() < 450);
        assert!(err.is_transient());
    }

    #[test]
    fn rate_limit_mentions_retry_after() {
        let err = DynatraceError::from_response(429, b"{}", "q", Some(Duration::from_secs(7)));
        assert!(err.to_string().contains("7 s"));
    }
}
