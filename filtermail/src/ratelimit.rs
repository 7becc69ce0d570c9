//! Per-sender send rate limit for outgoing mail (SPEC §6.8): GCRA.
//!
//! Emission interval `T = 60 s / max_user_send_per_minute`, burst `max_user_send_burst_size`:
//! a fresh sender may send `burst` messages at once, then one per `T`. Only allowed attempts
//! consume capacity. The state per sender is one instant (the theoretical arrival time), and
//! keys whose instant has passed carry no information, so they are evicted.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many entries may accumulate before idle ones are swept.
const SWEEP_THRESHOLD: usize = 4096;

/// A GCRA limiter keyed by lower-cased sender address.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    tolerance: Duration,
    tat: Mutex<HashMap<String, Instant>>,
}

impl RateLimiter {
    /// `per_minute` messages per minute with bursts of `burst`; zero values count as one.
    pub fn new(per_minute: u32, burst: u32) -> RateLimiter {
        let interval = Duration::from_secs(60) / per_minute.max(1);
        let tolerance = interval * (burst.max(1) - 1);
        RateLimiter {
            interval,
            tolerance,
            tat: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `sender` may send one message at `now`; `Err` carries how long to wait.
    /// The address is compared case-insensitively, so case variants share one budget.
    pub fn check(&self, sender: &str, now: Instant) -> Result<(), Duration> {
        let key = sender.to_lowercase();
        let mut map = self.tat.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= SWEEP_THRESHOLD {
            map.retain(|_, tat| *tat > now);
        }
        let tat = map.get(&key).copied().map_or(now, |t| t.max(now));
        let ahead = tat.saturating_duration_since(now);
        if ahead > self.tolerance {
            return Err(ahead - self.tolerance);
        }
        map.insert(key, tat + self.interval);
        Ok(())
    }

    /// How many senders are tracked (for tests of the eviction).
    pub fn tracked(&self) -> usize {
        self.tat.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_per_interval() {
        let limiter = RateLimiter::new(60, 10);
        let t0 = Instant::now();
        for i in 0..10 {
            assert!(limiter.check("a@x.org", t0).is_ok(), "message {i}");
        }
        let wait = limiter.check("a@x.org", t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        // Case variants share the budget; other senders are independent.
        assert!(limiter.check("A@X.org", t0).is_err());
        assert!(limiter.check("b@x.org", t0).is_ok());
        // A refused attempt did not consume capacity: one interval later, exactly one more.
        let t1 = t0 + Duration::from_secs(1);
        assert!(limiter.check("a@x.org", t1).is_ok());
        assert!(limiter.check("a@x.org", t1).is_err());
        // After a long pause the full burst is back.
        let t2 = t0 + Duration::from_secs(3600);
        for _ in 0..10 {
            assert!(limiter.check("a@x.org", t2).is_ok());
        }
        assert!(limiter.check("a@x.org", t2).is_err());
    }

    #[test]
    fn burst_one_and_zero_config() {
        let limiter = RateLimiter::new(0, 0);
        let t0 = Instant::now();
        assert!(limiter.check("a@x", t0).is_ok());
        assert!(limiter.check("a@x", t0).is_err());
        assert!(limiter.check("a@x", t0 + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn idle_senders_evicted() {
        let limiter = RateLimiter::new(60, 1);
        let t0 = Instant::now();
        for i in 0..SWEEP_THRESHOLD {
            assert!(limiter.check(&format!("u{i}@x"), t0).is_ok());
        }
        assert_eq!(limiter.tracked(), SWEEP_THRESHOLD);
        assert!(limiter.check("late@x", t0 + Duration::from_secs(5)).is_ok());
        assert_eq!(limiter.tracked(), 1);
    }
}
