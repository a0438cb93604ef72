//! A stand-in for the Lambda Runtime API (`/2018-06-01/runtime/...`), for running the real binary
//! as a Lambda function on a developer machine: the tests check the answers of every front door's
//! event through it, the benchmark times invocations with it.
//!
//! [`RuntimeApi::invoke`] queues an event and waits for the function's `/response` (or `/error`);
//! the function picks it up with `GET /invocation/next`, which carries the request id, the
//! deadline, the function ARN and a trace id as the real API does.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};

const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:dynatrace-mcp";
const TRACE_ID: &str = "Root=1-5e9f0c65-1de4d666d4dd26aced652b6c";

/// What the function answered, and when.
type Answer = (Instant, Value);

struct Invocation {
    id: String,
    event: Value,
    deadline_ms: u64,
}

#[derive(Default)]
pub struct RuntimeApi {
    queue: Mutex<VecDeque<Invocation>>,
    queued: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    first_next: Mutex<Option<Instant>>,
    /// What the function posted to `/runtime/init/error`: its error type header and body.
    init_error: Mutex<Option<(String, Value)>>,
}

impl RuntimeApi {
    /// Serves the API on `127.0.0.1:<free port>`; pass the address as `AWS_LAMBDA_RUNTIME_API`.
    pub async fn start() -> std::io::Result<(Arc<Self>, SocketAddr)> {
        let api = Arc::new(Self::default());
        let router = axum::Router::new()
            .route(
                "/2018-06-01/runtime/invocation/next",
                axum::routing::get(next),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                axum::routing::post(respond),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                axum::routing::post(error),
            )
            .route(
                "/2018-06-01/runtime/init/error",
                axum::routing::post(init_error),
            )
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok((api, addr))
    }

    /// The init error the function reported, if any: the `Lambda-Runtime-Function-Error-Type`
    /// header and the JSON body.
    pub fn init_error(&self) -> Option<(String, Value)> {
        self.init_error.lock().unwrap().clone()
    }

    /// When the function first asked for work (the end of its init), if it has.
    pub fn first_next(&self) -> Option<Instant> {
        *self.first_next.lock().unwrap()
    }

    /// Queues `event` with `budget` of remaining time and waits (at most `budget` plus 30 s) for
    /// the function's answer: the time from queueing to the answer, and the response payload
    /// (`{"runtimeError": …}` when the function reported an error).
    pub async fn invoke(
        &self,
        id: &str,
        event: Value,
        budget: Duration,
    ) -> Result<(Duration, Value), String> {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap().insert(id.to_string(), tx);
        let queued = Instant::now();
        self.queue.lock().unwrap().push_back(Invocation {
            id: id.to_string(),
            event,
            deadline_ms: now_ms() + budget.as_millis() as u64,
        });
        // One consumer: notify_one keeps a permit if nobody waits yet, so no wake-up is lost.
        self.queued.notify_one();
        match tokio::time::timeout(budget + Duration::from_secs(30), rx).await {
            Ok(Ok((at, value))) => Ok((at.duration_since(queued), value)),
            _ => Err(format!("no response for invocation {id}")),
        }
    }

    fn answer(&self, id: &str, value: Value) {
        if let Some(tx) = self.waiting.lock().unwrap().remove(id) {
            let _ = tx.send((Instant::now(), value));
        }
    }
}

async fn next(State(api): State<Arc<RuntimeApi>>) -> impl IntoResponse {
    api.first_next
        .lock()
        .unwrap()
        .get_or_insert_with(Instant::now);
    loop {
        let item = api.queue.lock().unwrap().pop_front();
        if let Some(invocation) = item {
            let mut headers = HeaderMap::new();
            let header = |v: &str| HeaderValue::from_str(v).expect("ASCII header value");
            headers.insert("lambda-runtime-aws-request-id", header(&invocation.id));
            headers.insert(
                "lambda-runtime-deadline-ms",
                header(&invocation.deadline_ms.to_string()),
            );
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                HeaderValue::from_static(FUNCTION_ARN),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                HeaderValue::from_static(TRACE_ID),
            );
            return (headers, axum::Json(invocation.event));
        }
        api.queued.notified().await;
    }
}

async fn respond(
    State(api): State<Arc<RuntimeApi>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    api.answer(&id, serde_json::from_slice(&body).unwrap_or(Value::Null));
    StatusCode::ACCEPTED
}

async fn error(
    State(api): State<Arc<RuntimeApi>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    api.answer(&id, json!({"runtimeError": String::from_utf8_lossy(&body)}));
    StatusCode::ACCEPTED
}

async fn init_error(
    State(api): State<Arc<RuntimeApi>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let error_type = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    *api.init_error.lock().unwrap() = Some((error_type, body));
    StatusCode::ACCEPTED
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}
