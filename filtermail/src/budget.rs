//! The process-wide budget of message bytes in flight (SMTP and HTTP together).
//!
//! Every front end reserves the bytes of the message it is receiving before it stores
//! them, and keeps the reservation until the message has been reinjected or refused. A
//! reservation that does not fit makes the message fail temporarily (451 / 503), so a flood
//! of large messages slows senders down instead of getting the process killed for memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes a reservation grows by at least, so the shared counter is touched once per
/// 64 KiB, not once per read.
const GROW_STEP: usize = 64 * 1024;

/// A limit on the bytes all messages in flight may hold at once.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    in_use: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            in_use: AtomicUsize::new(0),
        })
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }

    /// Whether nothing at all is left (a new message is refused before it is read).
    pub fn exhausted(&self) -> bool {
        self.in_use() >= self.limit
    }

    fn try_take(&self, n: usize) -> bool {
        self.in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn release(&self, n: usize) {
        self.in_use.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Bytes taken from a [`MemoryBudget`] (none without a budget); given back on drop.
#[derive(Debug, Default)]
pub struct Reservation {
    budget: Option<Arc<MemoryBudget>>,
    bytes: usize,
}

impl Reservation {
    /// An empty reservation against `budget` (`None`: unlimited).
    pub fn new(budget: Option<Arc<MemoryBudget>>) -> Reservation {
        Reservation { budget, bytes: 0 }
    }

    /// Makes sure `total` bytes are covered, growing in steps of at least 64 KiB but never
    /// past `cap`; `false` if the budget cannot cover them.
    pub fn cover(&mut self, total: usize, cap: usize) -> bool {
        if total <= self.bytes {
            return true;
        }
        let Some(budget) = &self.budget else {
            return true;
        };
        let want = total
            .max(self.bytes.saturating_add(GROW_STEP))
            .min(cap.max(total));
        let extra = want - self.bytes;
        if budget.try_take(extra) {
            self.bytes = want;
            true
        } else {
            false
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Gives everything back now.
    pub fn release(&mut self) {
        if let Some(budget) = &self.budget {
            budget.release(self.bytes);
        }
        self.bytes = 0;
    }
}

/// The DATA receiver grows its message under the reservation.
impl chatmail_smtp::Allowance for Reservation {
    fn cover(&mut self, total: usize, max: usize) -> bool {
        Reservation::cover(self, total, max)
    }
    fn release(&mut self) {
        Reservation::release(self);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_limit_and_give_back() {
        let budget = MemoryBudget::new(200 * 1024);
        let mut a = Reservation::new(Some(Arc::clone(&budget)));
        assert!(a.cover(10, usize::MAX));
        assert_eq!(a.bytes(), GROW_STEP);
        assert!(a.cover(150 * 1024, usize::MAX));
        let mut b = Reservation::new(Some(Arc::clone(&budget)));
        assert!(b.cover(40 * 1024, 40 * 1024));
        assert_eq!(budget.in_use(), 190 * 1024);
        assert!(!b.cover(60 * 1024, usize::MAX), "over the limit");
        drop(a);
        assert_eq!(budget.in_use(), 40 * 1024);
        assert!(b.cover(100 * 1024, usize::MAX));
        b.release();
        assert_eq!(budget.in_use(), 0);
        assert!(!budget.exhausted());
    }

    #[test]
    fn no_budget_is_unlimited() {
        let mut r = Reservation::new(None);
        assert!(r.cover(usize::MAX, usize::MAX));
        assert_eq!(r.bytes(), 0);
    }
}
