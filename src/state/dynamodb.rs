//! The DynamoDB [`StateStore`] (`MCP_STATE_TABLE`): every instance of a deployment, Lambda or
//! ECS, shares one on-demand table; no connection to manage, pay per request.
//!
//! The table has one key, `pk` (string), and DynamoDB's TTL on `expires_at` (Unix seconds)
//! removes what expired. Each operation is one request:
//!
//! | operation | request | consumed |
//! |---|---|---|
//! | claim (a write's confirmation) | `PutItem` with `attribute_not_exists(pk) OR expires_at < :now` | 1 WRU |
//! | add (budget after a query, a rate-limit window) | `UpdateItem` `ADD`, returning the new values | 1 WRU |
//! | get (budget before a query) | `GetItem`, strongly consistent | 1 RRU |
//! | reset (operator) | `DeleteItem` | 1 WRU |
//!
//! The conditional put is what makes a confirmation single-use across every instance: of any
//! number of concurrent claims of one key, DynamoDB lets exactly one write succeed.
//!
//! The client is built on first use (not at cold start, where the SDK's set-up would delay the
//! first answer) from the same credential chain as Secrets Manager: the function's or task's
//! role, `AWS_REGION`, and `AWS_ENDPOINT_URL` for a local endpoint. The SDK retries throttling
//! and transient errors with back-off; every call is also bounded by the request's deadline.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::{BoxFuture, Count, StateError, StateStore, call_budget};
use crate::deadline::Deadline;
use crate::signing::now_secs;

/// After the table could not be reached, calls fail at once for this long instead of each
/// waiting out its timeout (a blackholed endpoint would otherwise cost every call seconds).
pub const BREAKER_PAUSE: Duration = Duration::from_secs(15);

pub struct DynamoStore {
    table: String,
    client: OnceCell<Client>,
    /// Until when calls fail fast, after the table could not be reached.
    breaker: std::sync::Mutex<Option<Instant>>,
}

impl DynamoStore {
    pub fn new(table: String) -> Self {
        Self {
            table,
            client: OnceCell::new(),
            breaker: std::sync::Mutex::new(None),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let config = crate::aws::load(
                    TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(1))
                        .operation_attempt_timeout(Duration::from_millis(1500))
                        .build(),
                    RetryConfig::standard().with_max_attempts(3),
                )
                .await;
                Client::new(&config)
            })
            .await
    }

    fn error(&self, reason: impl Into<String>) -> StateError {
        StateError {
            store: "dynamodb",
            reason: reason.into(),
            unreachable: false,
        }
    }

    /// Runs one request within the request's deadline; fails at once while the breaker is open.
    async fn bounded<T, F>(&self, deadline: Deadline, request: F) -> Result<T, StateError>
    where
        F: std::future::Future<Output = Result<T, StateError>>,
    {
        let open_until = *self.breaker.lock().expect("breaker lock");
        if let Some(until) = open_until
            && Instant::now() < until
        {
            return Err(self.error(format!(
                "table {} could not be reached moments ago; not tried again for {} s",
                self.table,
                until.saturating_duration_since(Instant::now()).as_secs() + 1
            )));
        }
        let outcome = match tokio::time::timeout(call_budget(deadline), request).await {
            Ok(result) => result,
            Err(_) => Err(self.unreachable(format!("table {} did not answer in time", self.table))),
        };
        *self.breaker.lock().expect("breaker lock") = match &outcome {
            Err(e) if e.unreachable => Some(Instant::now() + BREAKER_PAUSE),
            _ => None,
        };
        outcome
    }

    fn unreachable(&self, reason: String) -> StateError {
        StateError {
            unreachable: true,
            ..self.error(reason)
        }
    }

    fn sdk_error<E, R>(&self, error: SdkError<E, R>) -> StateError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let reason = match &error {
            SdkError::ServiceError(service) => {
                let code = service.err().code().unwrap_or("ServiceError");
                let hint = match code {
                    "ResourceNotFoundException" => {
                        "no such table in this account and region: create it, or check MCP_STATE_TABLE and AWS_REGION"
                    }
                    "AccessDeniedException" => {
                        "access denied: the role needs dynamodb:GetItem, PutItem and UpdateItem on the table"
                    }
                    "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded" => "throttled",
                    _ => "refused",
                };
                format!("table {}: {code}: {hint}", self.table)
            }
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
                return self.unreachable(format!(
                    "table {} could not be reached ({})",
                    self.table,
                    DisplayErrorContext(&error)
                ));
            }
            _ => format!("table {}: {}", self.table, DisplayErrorContext(&error)),
        };
        self.error(reason)
    }
}

fn number(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn read_number(
    item: Option<&std::collections::HashMap<String, AttributeValue>>,
    name: &str,
) -> u64 {
    item.and_then(|item| item.get(name))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl StateStore for DynamoStore {
    fn name(&self) -> &'static str {
        "dynamodb"
    }

    fn claim<'a>(
        &'a self,
        key: &'a str,
        expires_at: u64,
        deadline: Deadline,
    ) -> BoxFuture<'a, Result<bool, StateError>> {
        Box::pin(self.bounded(deadline, async move {
            // Who claims: when the SDK retries a put whose first attempt succeeded but did not
            // answer in time, the retry's failed condition shows our own owner, and the claim is ours.
            let owner = format!("{:032x}", rand::random::<u128>());
            let result = self
                .client()
                .await
                .put_item()
                .table_name(&self.table)
                .item("pk", AttributeValue::S(key.to_string()))
                .item("expires_at", number(expires_at))
                .item("owner", AttributeValue::S(owner.clone()))
                // TTL removes items lazily: an expired claim may still be there, and no longer counts.
                .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
                .expression_attribute_values(":now", number(now_secs()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match result {
                Ok(_) => Ok(true),
                Err(SdkError::ServiceError(service)) => match service.err() {
                    PutItemError::ConditionalCheckFailedException(failed) => {
                        let previous = failed
                            .item()
                            .and_then(|item| item.get("owner"))
                            .and_then(|v| v.as_s().ok());
                        Ok(previous == Some(&owner))
                    }
                    _ => Err(self.sdk_error(SdkError::ServiceError(service))),
                },
                Err(e) => Err(self.sdk_error(e)),
            }
        }))
    }

    fn add<'a>(
        &'a self,
        key: &'a str,
        amount: u64,
        expires_at: Option<u64>,
        deadline: Deadline,
    ) -> BoxFuture<'a, Result<Count, StateError>> {
        Box::pin(self.bounded(deadline, async move {
            let mut request = self
                .client()
                .await
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(key.to_string()))
                .expression_attribute_names("#a", "amount")
                .expression_attribute_names("#n", "events")
                .expression_attribute_values(":a", number(amount))
                .expression_attribute_values(":one", number(1))
                .return_values(ReturnValue::UpdatedNew);
            request = match expires_at {
                Some(expires_at) => request
                    .update_expression("ADD #a :a, #n :one SET #x = :x")
                    .expression_attribute_names("#x", "expires_at")
                    .expression_attribute_values(":x", number(expires_at)),
                None => request.update_expression("ADD #a :a, #n :one"),
            };
            let output = request.send().await.map_err(|e| self.sdk_error(e))?;
            let attributes = output.attributes();
            Ok(Count {
                amount: read_number(attributes, "amount"),
                events: read_number(attributes, "events"),
            })
        }))
    }

    fn get<'a>(
        &'a self,
        key: &'a str,
        deadline: Deadline,
    ) -> BoxFuture<'a, Result<Count, StateError>> {
        Box::pin(self.bounded(deadline, async move {
            let output = self
                .client()
                .await
                .get_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(key.to_string()))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| self.sdk_error(e))?;
            let item = output.item();
            // An expired counter TTL has not removed yet counts for nothing.
            let expires = read_number(item, "expires_at");
            if expires != 0 && expires < now_secs() {
                return Ok(Count::default());
            }
            Ok(Count {
                amount: read_number(item, "amount"),
                events: read_number(item, "events"),
            })
        }))
    }

    fn reset<'a>(
        &'a self,
        key: &'a str,
        deadline: Deadline,
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(self.bounded(deadline, async move {
            self.client()
                .await
                .delete_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(key.to_string()))
                .send()
                .await
                .map_err(|e| self.sdk_error(e))?;
            Ok(())
        }))
    }
}
