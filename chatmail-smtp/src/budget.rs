//! The process-wide budget of message bytes in flight (`filtermail_memory_budget`), shared
//! by filtermail's filter (SMTP and HTTP together) and its delivery transport (LMTP).
//!
//! Every front end reserves the bytes of the message it is receiving before it stores
//! them, and keeps the reservation until the message has been passed on or refused. A
//! reservation that does not fit makes the message fail temporarily (451 / 503), so a flood
//! of large messages slows senders down instead of getting the process killed for memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::Reply;

/// The reply to a message the budget cannot hold (at `DATA` or after its data); the sender
/// retries. Each service names it among its own replies.
pub const OVER_BUDGET: Reply =
    Reply::fixed(451, "4.3.1 Error: too much mail in flight, try again later");

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

    /// Takes `n` more bytes for a reservation holding `own`; with `alone`, also past the
    /// limit if that reservation is the only one.
    fn try_take(&self, n: usize, own: usize, alone: bool) -> bool {
        self.in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n)
                    .filter(|&total| total <= self.limit || (alone && used == own))
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
        if budget.try_take(extra, self.bytes, false) {
            self.bytes = want;
            true
        } else {
            false
        }
    }

    /// Makes sure exactly `total` bytes are covered, past the limit too while this is the
    /// only reservation: a message its size limit admitted is never refused for the few
    /// bytes that stuffing it again for delivery adds.
    pub fn cover_alone(&mut self, total: usize) -> bool {
        if total <= self.bytes {
            return true;
        }
        let Some(budget) = &self.budget else {
            return true;
        };
        if budget.try_take(total - self.bytes, self.bytes, true) {
            self.bytes = total;
            true
        } else {
            false
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Gives back what is held beyond `total` bytes (once a temporary copy is gone).
    pub fn shrink_to(&mut self, total: usize) {
        if total >= self.bytes {
            return;
        }
        if let Some(budget) = &self.budget {
            budget.release(self.bytes - total);
        }
        self.bytes = total;
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
impl crate::Allowance for Reservation {
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
    fn a_reservation_alone_may_pass_the_limit() {
        let budget = MemoryBudget::new(100);
        let mut a = Reservation::new(Some(Arc::clone(&budget)));
        assert!(a.cover(90, 90));
        assert!(!a.cover(103, 103), "cover keeps the limit");
        assert!(a.cover_alone(103));
        assert_eq!(budget.in_use(), 103);
        let mut b = Reservation::new(Some(Arc::clone(&budget)));
        assert!(!b.cover_alone(1), "not alone");
        drop(a);
        assert!(b.cover(1, 1));
        let mut c = Reservation::new(Some(Arc::clone(&budget)));
        assert!(c.cover(99, 99));
        assert!(!c.cover_alone(100), "not alone either");
    }

    #[test]
    fn shrink_gives_back_the_surplus() {
        let budget = MemoryBudget::new(1024 * 1024);
        let mut r = Reservation::new(Some(Arc::clone(&budget)));
        assert!(r.cover(300 * 1024, usize::MAX));
        r.shrink_to(100 * 1024);
        assert_eq!((r.bytes(), budget.in_use()), (100 * 1024, 100 * 1024));
        r.shrink_to(200 * 1024);
        assert_eq!(r.bytes(), 100 * 1024, "never grows");
        drop(r);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn no_budget_is_unlimited() {
        let mut r = Reservation::new(None);
        assert!(r.cover(usize::MAX, usize::MAX));
        assert_eq!(r.bytes(), 0);
    }
}
