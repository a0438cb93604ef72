//! Per-principal rate limit on tool calls (`MCP_RATE_LIMIT`, e.g. `60/60s`), in memory per
//! instance (a shared store comes with the shared-state work).
//!
//! The generic cell rate algorithm: each principal has one "theoretical arrival time"; a call is
//! allowed when it is no more than `period` ahead of now, and pushes it by `period / calls`. So a
//! caller may burst up to `calls` at once and then sustain `calls` per `period`, and the time to
//! wait when refused is exact. One timestamp per principal; entries that fell behind are pruned.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::settings::RateLimit;

pub struct RateLimiter {
    limit: RateLimit,
    interval: Duration,
    state: Mutex<State>,
}

struct State {
    tat: HashMap<String, Instant>,
    last_prune: Instant,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            interval: limit.period / limit.calls,
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

    /// Takes one call for `key`; `Err(wait)` when the caller must wait that long first.
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
        let limiter = RateLimiter::new(RateLimit {
            calls: 3,
            period: Duration::from_secs(60),
        });
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
}
