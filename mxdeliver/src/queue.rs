//! Per-destination queue slots (SPEC §6.12): at most [`PER_DESTINATION`] messages in flight to
//! one destination domain and at most [`MAX_DESTINATIONS`] destinations at once.
//!
//! A slot is reserved at `RCPT` time, so a full queue shows up as `421 Transport busy` before
//! Postfix sends any data, and is released when the delivery (or the transaction) ends. This
//! bounds both the memory held by queued messages and the connections we open to one relay.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Messages in flight per destination domain.
pub const PER_DESTINATION: usize = 30;
/// Destinations with messages in flight.
pub const MAX_DESTINATIONS: usize = 500;

/// The table of reserved slots, shared by all connections.
#[derive(Debug, Clone)]
pub struct Queues {
    inner: Arc<Mutex<HashMap<String, usize>>>,
    per_destination: usize,
    max_destinations: usize,
}

impl Default for Queues {
    fn default() -> Self {
        Queues::with_limits(PER_DESTINATION, MAX_DESTINATIONS)
    }
}

impl Queues {
    /// A table with the given limits (tests use small ones).
    pub fn with_limits(per_destination: usize, max_destinations: usize) -> Self {
        Queues {
            inner: Arc::default(),
            per_destination,
            max_destinations,
        }
    }

    /// Reserves one slot for `destination`, or `None` when its queue or the table is full.
    pub fn reserve(&self, destination: &str) -> Option<Slot> {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let full_table = map.len() >= self.max_destinations;
        match map.get_mut(destination) {
            Some(n) if *n < self.per_destination => *n += 1,
            Some(_) => return None,
            None if full_table || self.per_destination == 0 => return None,
            None => {
                map.insert(destination.to_owned(), 1);
            }
        }
        Some(Slot {
            queues: self.clone(),
            destination: destination.to_owned(),
        })
    }

    /// Slots currently reserved for `destination`.
    #[cfg(test)]
    pub fn in_flight(&self, destination: &str) -> usize {
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(destination).copied().unwrap_or(0)
    }
}

/// A reserved slot; dropping it frees the slot (and the destination entry when it was the last).
#[derive(Debug)]
pub struct Slot {
    queues: Queues,
    destination: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self
            .queues
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.destination) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.destination);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_destination_limit_and_release() {
        let q = Queues::with_limits(2, 10);
        let a = q.reserve("a.example").unwrap();
        let _b = q.reserve("a.example").unwrap();
        assert!(q.reserve("a.example").is_none());
        assert!(q.reserve("b.example").is_some());
        drop(a);
        assert!(q.reserve("a.example").is_some());
    }

    #[test]
    fn destination_limit() {
        let q = Queues::with_limits(5, 2);
        let _a = q.reserve("a").unwrap();
        let b = q.reserve("b").unwrap();
        assert!(q.reserve("c").is_none());
        assert!(
            q.reserve("a").is_some(),
            "known destinations still get slots"
        );
        drop(b);
        assert_eq!(q.in_flight("b"), 0);
        assert!(q.reserve("c").is_some());
    }
}
