//! The in-memory [`StateStore`]: one instance's memory. Right for stdio, a single container and
//! tests; in a deployment of many instances each keeps its own, which is what `MCP_STATE_TABLE`
//! is for.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{BoxFuture, Count, StateError, StateStore};
use crate::deadline::Deadline;
use crate::signing::now_secs;

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    claims: HashMap<String, u64>,
    counters: HashMap<String, (Count, Option<u64>)>,
    last_prune: u64,
}

impl Inner {
    /// Drops what expired, at most once a minute.
    fn prune(&mut self, now: u64) {
        if now.saturating_sub(self.last_prune) < 60 {
            return;
        }
        self.last_prune = now;
        self.claims.retain(|_, expires| *expires >= now);
        self.counters
            .retain(|_, (_, expires)| expires.is_none_or(|e| e >= now));
    }
}

impl StateStore for MemoryStore {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn claim<'a>(
        &'a self,
        key: &'a str,
        expires_at: u64,
        _deadline: Deadline,
    ) -> BoxFuture<'a, Result<bool, StateError>> {
        Box::pin(async move {
            let now = now_secs();
            let mut inner = self.inner.lock().expect("state lock");
            inner.prune(now);
            match inner.claims.get(key) {
                Some(expires) if *expires >= now => Ok(false),
                _ => {
                    inner.claims.insert(key.to_string(), expires_at);
                    Ok(true)
                }
            }
        })
    }

    fn add<'a>(
        &'a self,
        key: &'a str,
        amount: u64,
        expires_at: Option<u64>,
        _deadline: Deadline,
    ) -> BoxFuture<'a, Result<Count, StateError>> {
        Box::pin(async move {
            let now = now_secs();
            let mut inner = self.inner.lock().expect("state lock");
            inner.prune(now);
            let entry = inner
                .counters
                .entry(key.to_string())
                .or_insert((Count::default(), expires_at));
            if entry.1.is_some_and(|e| e < now) {
                *entry = (Count::default(), expires_at);
            }
            entry.0.amount = entry.0.amount.saturating_add(amount);
            entry.0.events += 1;
            if expires_at.is_some() {
                entry.1 = expires_at;
            }
            Ok(entry.0)
        })
    }

    fn get<'a>(
        &'a self,
        key: &'a str,
        _deadline: Deadline,
    ) -> BoxFuture<'a, Result<Count, StateError>> {
        Box::pin(async move {
            let now = now_secs();
            let inner = self.inner.lock().expect("state lock");
            Ok(match inner.counters.get(key) {
                Some((count, expires)) if expires.is_none_or(|e| e >= now) => *count,
                _ => Count::default(),
            })
        })
    }

    fn reset<'a>(
        &'a self,
        key: &'a str,
        _deadline: Deadline,
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move {
            self.inner.lock().expect("state lock").counters.remove(key);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn soon() -> Deadline {
        Deadline::after(Duration::from_secs(5))
    }

    #[tokio::test]
    async fn claims_hold_once_and_counters_add_up() {
        let store = MemoryStore::default();
        let later = now_secs() + 60;
        assert!(store.claim("a", later, soon()).await.unwrap());
        assert!(!store.claim("a", later, soon()).await.unwrap());
        assert!(store.claim("b", later, soon()).await.unwrap());
        // An expired claim no longer blocks.
        assert!(store.claim("old", now_secs() - 1, soon()).await.unwrap());
        assert!(store.claim("old", later, soon()).await.unwrap());

        assert_eq!(store.get("c", soon()).await.unwrap(), Count::default());
        store.add("c", 10, None, soon()).await.unwrap();
        let count = store.add("c", 5, None, soon()).await.unwrap();
        assert_eq!(
            count,
            Count {
                amount: 15,
                events: 2
            }
        );
        assert_eq!(store.get("c", soon()).await.unwrap(), count);
        store.reset("c", soon()).await.unwrap();
        assert_eq!(store.get("c", soon()).await.unwrap(), Count::default());
        // An expired counter starts over.
        store
            .add("d", 7, Some(now_secs() - 1), soon())
            .await
            .unwrap();
        assert_eq!(store.get("d", soon()).await.unwrap(), Count::default());
        let count = store.add("d", 1, Some(later), soon()).await.unwrap();
        assert_eq!(
            count,
            Count {
                amount: 1,
                events: 1
            }
        );
    }
}
