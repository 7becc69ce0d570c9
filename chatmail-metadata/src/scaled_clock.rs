//! Wall-clock time and delays, with a test-only time scale.
//!
//! Token expiry and the notification deadline use Unix seconds, as the reference does.
//! Retry delays are real waits of up to 4096 s; to test the back-off schedule without
//! multi-minute sleeps, the environment variable [`TIME_SCALE_ENV`] divides every retry
//! delay by a factor. It exists for tests only; production leaves it unset (factor 1).

use std::time::Duration;

use crate::error::Error;

/// Name of the test-only environment variable holding the delay divisor.
pub const TIME_SCALE_ENV: &str = "CHATMAIL_METADATA_TIME_SCALE";

/// The service's notion of time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    scale: f64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock { scale: 1.0 }
    }
}

impl Clock {
    /// A clock whose delays are `1/scale` of the nominal ones (`scale` > 0).
    pub fn scaled(scale: f64) -> Result<Clock, Error> {
        if scale.is_finite() && scale > 0.0 {
            Ok(Clock { scale })
        } else {
            Err(Error::TimeScale(scale.to_string()))
        }
    }

    /// The clock configured by [`TIME_SCALE_ENV`] (unset or empty: real time).
    pub fn from_env() -> Result<Clock, Error> {
        match std::env::var(TIME_SCALE_ENV) {
            Ok(v) if !v.trim().is_empty() => match v.trim().parse::<f64>() {
                Ok(scale) => Clock::scaled(scale).map_err(|_| Error::TimeScale(v)),
                Err(_) => Err(Error::TimeScale(v)),
            },
            _ => Ok(Clock::default()),
        }
    }

    /// Unix time in whole seconds (`int(time.time())`).
    pub fn now(&self) -> i64 {
        chatmaild::wall_time::unix_seconds()
    }

    /// The real wait for a nominal delay of `secs` seconds.
    pub fn delay(&self, secs: u64) -> Duration {
        Duration::from_secs(secs).div_f64(self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling() {
        assert_eq!(Clock::default().delay(8), Duration::from_secs(8));
        assert_eq!(
            Clock::scaled(1000.0).unwrap().delay(4096),
            Duration::from_millis(4096)
        );
        assert!(Clock::scaled(0.0).is_err());
        assert!(Clock::scaled(-1.0).is_err());
        assert!(Clock::scaled(f64::NAN).is_err());
        assert!(Clock::default().now() > 1_700_000_000);
    }
}
