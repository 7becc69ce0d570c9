//! Idle client connections kept for reuse, per key, each for a limited time.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

// The tokio clock, so tests can run idle expiry on virtual time.
use tokio::time::Instant;

/// Idle connections by key (a host and the terms it was opened under, say), newest last.
#[derive(Debug)]
pub struct Pool<C> {
    idle: Mutex<HashMap<String, Vec<(C, Instant)>>>,
    per_key: usize,
    keep: Duration,
}

impl<C> Pool<C> {
    /// Keeps at most `per_key` connections per key, each for at most `keep`.
    pub fn new(per_key: usize, keep: Duration) -> Pool<C> {
        Pool {
            idle: Mutex::default(),
            per_key,
            keep,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<(C, Instant)>>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest connection kept under `key` that has not expired; expired ones are dropped.
    pub fn take(&self, key: &str) -> Option<C> {
        let mut map = self.lock();
        let list = map.get_mut(key)?;
        let now = Instant::now();
        list.retain(|(_, since)| now.duration_since(*since) < self.keep);
        let conn = list.pop().map(|(c, _)| c);
        if list.is_empty() {
            map.remove(key);
        }
        conn
    }

    /// Keeps `conn` under `key`, unless that key already holds as many as allowed.
    pub fn put(&self, key: &str, conn: C) {
        let mut map = self.lock();
        let list = map.entry(key.to_owned()).or_default();
        if list.len() < self.per_key {
            list.push((conn, Instant::now()));
        }
    }

    /// Removes and returns the connections kept too long (to be closed politely).
    pub fn expired(&self) -> Vec<C> {
        let now = Instant::now();
        let mut map = self.lock();
        let mut old = Vec::new();
        for list in map.values_mut() {
            let (gone, fresh): (Vec<_>, Vec<_>) = list
                .drain(..)
                .partition(|(_, since)| now.duration_since(*since) >= self.keep);
            *list = fresh;
            old.extend(gone.into_iter().map(|(c, _)| c));
        }
        map.retain(|_, l| !l.is_empty());
        old
    }

    /// How many connections are kept right now.
    pub fn len(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// Whether no connection is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn expiry_and_limits() {
        let pool = Pool::new(2, Duration::from_secs(10));
        for i in 0..3 {
            pool.put("a", i);
        }
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.take("a"), Some(1), "newest first");
        tokio::time::advance(Duration::from_secs(5)).await;
        pool.put("b", 7);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(pool.expired(), vec![0]);
        assert_eq!(pool.take("a"), None);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(pool.take("b"), None, "expired");
        assert!(pool.is_empty());
    }
}
