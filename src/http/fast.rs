//! `tools/list` from bytes: the answer depends only on the caller's tool groups and the protocol
//! version, so it is serialized once per such pair and then copied, instead of building an rmcp
//! service, a one-shot transport and four tasks per request and serializing 27 KiB of schemas.
//!
//! Only a request rmcp would certainly answer 200 is answered here: a plain legacy-era
//! (`initialize`-based) `tools/list` with no parameters, on a Host rmcp allows, with no `Origin`,
//! the Accept and Content-Type rmcp wants and a small body. Everything else, errors included, goes
//! to rmcp with its body unchanged, so every refusal still comes from rmcp. The cached bytes are
//! rmcp's own answer to the first such request (its `result`), so the two cannot drift apart, and
//! only the `id` is written here, with rmcp's own `RequestId` type.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use rmcp::model::{ProtocolVersion, RequestId};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::identity::{Groups, Principal};

/// Larger bodies are no plain `tools/list`; rmcp reads them.
const MAX_BODY: usize = 4096;
/// Longest cached answer: more would be no `tools/list` of ours.
const MAX_ANSWER: usize = 1 << 20;
const MODERN: &str = "2026-07-28";

/// The cache, shared by the `/mcp` and `/` routes.
pub(super) struct ToolsList {
    /// `None`: every Host (rmcp's allow-list is off).
    allowed_hosts: Option<Vec<(String, Option<u16>)>>,
    max_body: usize,
    /// `MCP_MAX_REQUEST_BYTES`: the most of a body read here when it turns out longer than its
    /// `Content-Length` (a Lambda event's header can say anything; hyper holds a connection's body
    /// to it).
    max_request_bytes: usize,
    /// (tool groups, the `MCP-Protocol-Version` header as sent) → the `result` of rmcp's answer.
    answers: Mutex<HashMap<(Groups, Option<ProtocolVersion>), Bytes>>,
}

/// A request that may be answered from the cache.
pub(super) struct Hit {
    key: (Groups, Option<ProtocolVersion>),
    id: RequestId,
}

/// What rmcp must see: the request as it came (its body already read).
pub(super) enum Probe {
    Hit(Hit, Request<Body>),
    Pass(Request<Body>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Message<'a> {
    jsonrpc: &'a str,
    id: RequestId,
    method: &'a str,
    #[serde(default)]
    params: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    result: &'a RawValue,
}

impl ToolsList {
    pub(super) fn new(allowed_hosts: Option<&[String]>, max_request_bytes: usize) -> Self {
        ToolsList {
            allowed_hosts: allowed_hosts
                .map(|hosts| hosts.iter().filter_map(|h| authority(h)).collect()),
            max_body: MAX_BODY.min(max_request_bytes),
            max_request_bytes,
            answers: Mutex::new(HashMap::new()),
        }
    }

    /// Reads the body of a request that may be a plain `tools/list`; anything else passes as it is.
    /// A body that fails to arrive gets rmcp's answer to that, a 500 (which `parse_errors` turns
    /// into a 400 parse error).
    pub(super) async fn probe(&self, request: Request<Body>) -> Result<Probe, Response> {
        let Some((groups, version)) = self.eligible(&request) else {
            return Ok(Probe::Pass(request));
        };
        let (parts, body) = request.into_parts();
        // Content-Length (checked) is at most max_body, and hyper holds a connection's body to it;
        // a Lambda event's body is whatever the event holds, so it is read up to the request limit.
        let bytes = match axum::body::to_bytes(body, self.max_request_bytes).await {
            Ok(bytes) => bytes,
            Err(e) if is_length_limit(&e) => {
                return Err(super::jsonrpc_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    -32600,
                    &format!(
                        "the request body is larger than {} bytes (MCP_MAX_REQUEST_BYTES)",
                        self.max_request_bytes
                    ),
                ));
            }
            Err(_) => {
                return Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "failed to read request body",
                )
                    .into_response());
            }
        };
        // Longer than it said: no plain tools/list of ours; rmcp reads it as it came.
        if bytes.len() > self.max_body {
            return Ok(Probe::Pass(Request::from_parts(parts, Body::from(bytes))));
        }
        let hit = serde_json::from_slice::<Message>(&bytes)
            .ok()
            .and_then(|m| {
                (m.jsonrpc == "2.0"
                    && m.method == "tools/list"
                    && m.params.as_ref().is_none_or(|p| p.is_empty()))
                .then_some(Hit {
                    key: (groups, version),
                    id: m.id,
                })
            });
        let request = Request::from_parts(parts, Body::from(bytes));
        Ok(match hit {
            Some(hit) => Probe::Hit(hit, request),
            None => Probe::Pass(request),
        })
    }

    /// The cached answer to `hit`, if there is one: the envelope around the shared bytes of the
    /// result, which are written as they are (no copy into one buffer per answer).
    pub(super) fn answer(&self, hit: &Hit) -> Option<Response> {
        let result = self.answers.lock().unwrap().get(&hit.key).cloned()?;
        let body = Chunks([Bytes::from(head(&hit.id)), result, Bytes::from_static(b"}")].into());
        let mut response = Response::new(Body::new(body));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Some(response)
    }

    /// Keeps the `result` of rmcp's answer to `hit` and gives the answer back unchanged.
    pub(super) async fn remember(&self, hit: Hit, response: Response) -> Response {
        let plain_json = response.status() == StatusCode::OK
            && response.headers().len() == 1
            && response.headers().get(header::CONTENT_TYPE)
                == Some(&HeaderValue::from_static("application/json"));
        if !plain_json {
            return response;
        }
        let (parts, body) = response.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_ANSWER).await {
            Ok(bytes) => bytes,
            Err(_) => {
                return (StatusCode::INTERNAL_SERVER_ERROR, "answer too large").into_response();
            }
        };
        if let Ok(answer) = serde_json::from_slice::<Answer>(&bytes) {
            let result = Bytes::copy_from_slice(answer.result.get().as_bytes());
            // Only when the envelope rebuilt from it is rmcp's answer byte for byte.
            if envelope(&hit.id, &result) == bytes {
                self.answers.lock().unwrap().insert(hit.key, result);
            }
        }
        Response::from_parts(parts, Body::from(bytes))
    }

    /// The caller's tool groups and protocol version, when nothing in the head says rmcp might
    /// answer anything but 200.
    fn eligible(&self, request: &Request<Body>) -> Option<(Groups, Option<ProtocolVersion>)> {
        let headers = request.headers();
        if request.method() != Method::POST || headers.contains_key(header::ORIGIN) {
            return None;
        }
        let groups = request.extensions().get::<Arc<Principal>>()?.groups;
        if let Some(allowed) = &self.allowed_hosts {
            let host = headers.get(header::HOST)?.to_str().ok()?;
            let (name, port) = authority(host)?;
            if !allowed
                .iter()
                .any(|(a, p)| *a == name && p.is_none_or(|p| port == Some(p)))
            {
                return None;
            }
        }
        if !accepts_both(headers) || !json_content(headers) {
            return None;
        }
        let length: usize = single(headers, &header::CONTENT_LENGTH)?.parse().ok()?;
        if length > self.max_body || headers.contains_key(header::TRANSFER_ENCODING) {
            return None;
        }
        // Any other MCP header (Mcp-Method, Mcp-Session-Id, …) is rmcp's to judge.
        if headers
            .keys()
            .any(|k| k.as_str().starts_with("mcp-") && k.as_str() != "mcp-protocol-version")
        {
            return None;
        }
        let version = match headers.get_all("mcp-protocol-version").iter().count() {
            0 => None,
            1 => {
                let value = single(headers, "mcp-protocol-version")?;
                let known = ProtocolVersion::KNOWN_VERSIONS
                    .iter()
                    .find(|v| v.as_str() == value)?;
                if value >= MODERN {
                    return None;
                }
                Some(known.clone())
            }
            _ => return None,
        };
        Some((groups, version))
    }
}

/// Whether reading a body failed on its length limit (not on the body itself).
fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// `host[:port]`, lower-cased, brackets of an IPv6 address removed, as rmcp compares them.
fn authority(value: &str) -> Option<(String, Option<u16>)> {
    let authority = axum::http::uri::Authority::try_from(value.trim()).ok()?;
    let host = authority
        .host()
        .trim_matches('[')
        .trim_matches(']')
        .to_ascii_lowercase();
    Some((host, authority.port_u16()))
}

/// Both media types, in plain values (no parameters or quality weights to interpret).
fn accepts_both(headers: &HeaderMap) -> bool {
    let (mut json, mut sse) = (false, false);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        if value.contains([';', '"']) {
            return false;
        }
        for item in value.split(',') {
            let item = item.trim();
            json |= item.eq_ignore_ascii_case("application/json");
            sse |= item.eq_ignore_ascii_case("text/event-stream");
        }
    }
    json && sse
}

fn json_content(headers: &HeaderMap) -> bool {
    single(headers, &header::CONTENT_TYPE).is_some_and(|value| {
        let essence = value.split_once(';').map_or(value, |(essence, _)| essence);
        essence.trim().eq_ignore_ascii_case("application/json")
    })
}

/// The value of a header sent exactly once, as text.
fn single(headers: &HeaderMap, name: impl axum::http::header::AsHeaderName + Copy) -> Option<&str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    values.next().is_none().then_some(())?;
    value.to_str().ok()
}

/// rmcp's serialization of a JSON-RPC response: `{"jsonrpc":"2.0","id":…,"result":…}`.
fn envelope(id: &RequestId, result: &[u8]) -> Vec<u8> {
    let mut body = head(id);
    body.extend_from_slice(result);
    body.push(b'}');
    body
}

/// The envelope up to its result: `{"jsonrpc":"2.0","id":…,"result":`.
fn head(id: &RequestId) -> Vec<u8> {
    let id = serde_json::to_vec(id).unwrap_or_default();
    let mut head = Vec::with_capacity(id.len() + 32);
    head.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    head.extend_from_slice(&id);
    head.extend_from_slice(br#","result":"#);
    head
}

/// A body of a few buffers sent as they are, with its exact length (so hyper writes
/// `Content-Length`, as for rmcp's one-buffer answer).
struct Chunks(VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.iter().map(|b| b.len() as u64).sum())
    }
}
