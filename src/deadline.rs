//! A point in time by which a tool call must have answered.
//!
//! Every tool call gets one: the configured tool timeout, shortened on Lambda to the invocation's
//! remaining time minus a margin (so the function answers before API Gateway's 29–30 s cut-off).
//! It travels with the HTTP request as an extension and reaches tool code through
//! `ToolContext`. Built on `tokio::time::Instant` so tests can drive it with a paused clock.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn after(duration: Duration) -> Self {
        Self(Instant::now() + duration)
    }

    pub fn at(instant: Instant) -> Self {
        Self(instant)
    }

    pub fn instant(self) -> Instant {
        self.0
    }

    /// Time left, zero once passed.
    pub fn remaining(self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    pub fn has_passed(self) -> bool {
        self.remaining().is_zero()
    }

    /// The earlier of two deadlines.
    pub fn min(self, other: Deadline) -> Deadline {
        if other.0 < self.0 { other } else { self }
    }

    /// The deadline for work whose results must still be gathered and sent before this one (a
    /// fan-out's parts, reachability probes): 5 % of the time left earlier, at least 0.1 s and at
    /// most 1 s.
    pub fn leaving_room_to_answer(self) -> Deadline {
        let margin =
            (self.remaining() / 20).clamp(Duration::from_millis(100), Duration::from_secs(1));
        self.shortened_by(margin)
    }

    /// This deadline moved earlier by `margin` (never before now).
    pub fn shortened_by(self, margin: Duration) -> Deadline {
        let now = Instant::now();
        let at = self.0.checked_sub(margin).unwrap_or(now);
        Deadline(at.max(now))
    }
}

/// A request-scoped deadline, inserted into HTTP request extensions by the front doors.
#[derive(Debug, Clone, Copy)]
pub struct RequestDeadline(pub Deadline);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn remaining_counts_down_and_saturates() {
        let d = Deadline::after(Duration::from_secs(10));
        assert_eq!(d.remaining(), Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(d.remaining(), Duration::from_secs(6));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(d.has_passed());
        assert_eq!(d.remaining(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn min_and_shortened_by() {
        let a = Deadline::after(Duration::from_secs(10));
        let b = Deadline::after(Duration::from_secs(5));
        assert_eq!(a.min(b), b);
        assert_eq!(b.min(a), b);
        assert_eq!(
            a.shortened_by(Duration::from_secs(3)).remaining(),
            Duration::from_secs(7)
        );
        assert!(b.shortened_by(Duration::from_secs(30)).has_passed());
    }
}
