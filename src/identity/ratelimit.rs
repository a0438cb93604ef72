//! Per-principal rate limit on tool calls (`MCP_RATE_LIMIT`, e.g. `60/60s`).
//!
//! In one instance (no `MCP_STATE_TABLE`): the generic cell rate algorithm. Each principal has one
//! "theoretical arrival time"; a call is allowed when it is no more than `period` ahead of now,
//! and pushes it by `period / calls`. So a caller may burst up to `calls` at once and then sustain
//! `calls` per `period`, and the time to wait when refused is exact. One timestamp per principal;
//! entries that fell behind are pruned.
//!
//! Across instances (`MCP_STATE_TABLE`): a fixed window per principal in the shared store, one
//! atomic add per call (`rate#<principal>#<window>`, gone with DynamoDB's TTL). A caller gets at
//! most `calls` per window across every instance; at a window's edge two windows' worth may pass
//! within one period, the usual price of fixed windows for one write per call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::settings::RateLimit;
use crate::deadline::Deadline;
use crate::signing::now_secs;
use crate::state::{StateError, StateStore};

pub struct RateLimiter {
    limit: RateLimit,
    interval: Duration,
    /// Counted in the shared store instead of here.
    shared: bool,
    state: Mutex<State>,
}

struct State {
    tat: HashMap<String, Instant>,
    last_prune: Instant,
}

impl RateLimiter {
    /// `shared`: count in the state store, so the limit holds across instances.
    pub fn new(limit: RateLimit, shared: bool) -> Self {
        Self {
            interval: limit.period / limit.calls,
            shared,
            limit,
            state: Mutex::new(State {
                tat: HashMap::new(),
                last_prune: Instant::now(),
            }),
        }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes one call for `key`: `Ok(Err(wait))` when the caller must wait that long first,
    /// `Err` when the shared store could not count it.
    pub async fn take_in(
        &self,
        store: &dyn StateStore,
        key: &str,
        deadline: Deadline,
    ) -> Result<Result<(), Duration>, StateError> {
        if !self.shared {
            return Ok(self.take(key));
        }
        let period = self.limit.period.as_secs().max(1);
        let now = now_secs();
        let window = now / period;
        let window_end = (window + 1) * period;
        let count = store
            .add(
                &format!("rate#{key}#{window}"),
                1,
                Some(window_end + period),
                deadline,
            )
            .await?;
        if count.amount > u64::from(self.limit.calls) {
            return Ok(Err(Duration::from_secs(window_end - now)));
        }
        Ok(Ok(()))
    }

    /// Takes one call for `key` in this instance; `Err(wait)` when the caller must wait first.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut state = self.state.lock().expect("rate limiter lock");
        // Entries whose schedule has passed hold nothing: drop them every minute (or period).
        if now.duration_since(state.last_prune) > self.limit.period.min(Duration::from_secs(60)) {
            state.tat.retain(|_, tat| *tat > now);
            state.last_prune = now;
        }
        let tat = state.tat.get(key).copied().unwrap_or(now).max(now);
        let next = tat + self.interval;
        // Allowed while the schedule is at most one period ahead of now.
        if next.duration_since(now) > self.limit.period {
            let wait = next.duration_since(now) - self.limit.period;
            return Err(wait);
        }
        state.tat.insert(key.to_string(), next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn allows_a_burst_then_the_sustained_rate_per_key() {
        let limiter = RateLimiter::new(
            RateLimit {
                calls: 3,
                period: Duration::from_secs(60),
            },
            false,
        );
        for _ in 0..3 {
            assert!(limiter.take("alice").is_ok());
        }
        let wait = limiter.take("alice").unwrap_err();
        assert_eq!(wait, Duration::from_secs(20));
        // Another principal has its own budget.
        assert!(limiter.take("bob").is_ok());
        tokio::time::advance(Duration::from_secs(19)).await;
        assert!(limiter.take("alice").is_err());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(limiter.take("alice").is_ok());
        assert!(limiter.take("alice").is_err());
        // After a quiet period the full burst is back.
        tokio::time::advance(Duration::from_secs(120)).await;
        for _ in 0..3 {
            assert!(limiter.take("alice").is_ok());
        }
    }

    #[tokio::test]
    async fn shared_windows_count_in_the_store() {
        let store = crate::state::memory::MemoryStore::default();
        let limiter = RateLimiter::new(
            RateLimit {
                calls: 2,
                period: Duration::from_secs(3600),
            },
            true,
        );
        let deadline = Deadline::after(Duration::from_secs(5));
        assert_eq!(limiter.take_in(&store, "a", deadline).await, Ok(Ok(())));
        assert_eq!(limiter.take_in(&store, "a", deadline).await, Ok(Ok(())));
        let refused = limiter.take_in(&store, "a", deadline).await.unwrap();
        let wait = refused.unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(3600));
        assert_eq!(limiter.take_in(&store, "b", deadline).await, Ok(Ok(())));
    }
}
