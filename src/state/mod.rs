//! State shared by every instance of a deployment: single-use claims (write confirmations),
//! counters (Grail budgets, rate-limit windows).
//!
//! Lambda instances and ECS tasks share no memory, so a promise kept in memory holds per
//! instance only: a confirmation could be replayed against another instance, ten instances would
//! let ten budgets through. [`StateStore`] is the one small interface such promises go through;
//! [`memory::MemoryStore`] serves stdio, a single container and tests, and
//! [`dynamodb::DynamoStore`] (`MCP_STATE_TABLE`) every instance of a deployment at once.
//!
//! Every call is bounded by the request's deadline (and [`CALL_TIMEOUT`]): no request hangs on
//! the store. What a failure means is the caller's decision, by kind of promise ([`Policy`]):
//! a claim that cannot be recorded refuses the write it guards; budgets and rate limits go on
//! (fail open, with a warning) unless `MCP_STATE_FAIL_CLOSED=1`.

pub mod dynamodb;
pub mod memory;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::deadline::Deadline;

/// The longest one store call may take (within the request's deadline).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The store could not answer: unreachable, throttled past its retries, or out of time. The
/// text (table name, what to check) is for the log; callers get [`StateError::PUBLIC`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the shared state store ({store}) could not be used: {reason}")]
pub struct StateError {
    pub store: &'static str,
    pub reason: String,
    /// Not reached at all (network, timeout), as opposed to refused.
    pub unreachable: bool,
}

impl StateError {
    /// What a caller is told: no table names or IAM hints in tool answers.
    pub const PUBLIC: &'static str = "the server's shared state store could not be used just now";
}

/// The counts of one counter item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// What is counted (bytes scanned, calls).
    pub amount: u64,
    /// How many additions made it (queries).
    pub events: u64,
}

pub trait StateStore: Send + Sync {
    /// `memory` or `dynamodb`, for messages.
    fn name(&self) -> &'static str;

    /// Records `key` as used, once: `true` the first time across every instance sharing the
    /// store, `false` when it was already claimed. Kept at least until `expires_at` (Unix s).
    fn claim<'a>(
        &'a self,
        key: &'a str,
        expires_at: u64,
        deadline: Deadline,
    ) -> BoxFuture<'a, Result<bool, StateError>>;

    /// Adds `amount` (and one event) to the counter `key` atomically; returns the new count. The
    /// counter may be dropped after `expires_at` when given. Keys that expire must name their
    /// period (a day, a window): after `expires_at` the memory store starts a counter over, while
    /// DynamoDB may still add to the old item until its TTL removes it.
    fn add<'a>(
        &'a self,
        key: &'a str,
        amount: u64,
        expires_at: Option<u64>,
        deadline: Deadline,
    ) -> BoxFuture<'a, Result<Count, StateError>>;

    /// The counter `key` (zero when it does not exist).
    fn get<'a>(
        &'a self,
        key: &'a str,
        deadline: Deadline,
    ) -> BoxFuture<'a, Result<Count, StateError>>;

    /// Removes the counter `key`.
    fn reset<'a>(
        &'a self,
        key: &'a str,
        deadline: Deadline,
    ) -> BoxFuture<'a, Result<(), StateError>>;
}

/// What happens to a budget or a rate limit when the store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Go on, with a warning in the log and in the answer's metadata.
    FailOpen,
    /// Refuse, with a sentence.
    FailClosed,
}

/// How long a call to the store may take, given the request's deadline.
pub(crate) fn call_budget(deadline: Deadline) -> Duration {
    deadline.remaining().min(CALL_TIMEOUT)
}

/// The UTC day of a Unix time, as `YYYY-MM-DD` (per-day counter keys).
pub fn utc_day(unix_secs: u64) -> String {
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let days = (unix_secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Seconds until the next UTC midnight.
pub fn until_next_utc_day(unix_secs: u64) -> u64 {
    86_400 - unix_secs % 86_400
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_days() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(951_782_400), "2000-02-29");
        assert_eq!(utc_day(1_796_160_444), "2026-12-01");
        assert_eq!(utc_day(1_798_761_599), "2026-12-31");
        assert_eq!(utc_day(1_798_761_600), "2027-01-01");
        assert_eq!(until_next_utc_day(1_798_761_599), 1);
        assert_eq!(until_next_utc_day(1_798_761_600), 86_400);
    }
}
