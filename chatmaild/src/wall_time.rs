//! Time: the real epoch "now" and the local-time renderings the reference prints.
//!
//! The reference computes "now" as `datetime.utcnow().timestamp()`, which is off by the
//! local UTC offset on hosts not running in UTC (SPEC §7 Note); here "now" is always the
//! real epoch time. Dates in log lines are rendered in local time, like Python's
//! `datetime.fromtimestamp`.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{Local, TimeZone};

/// Seconds since the epoch as a float, like Python's `time.time()`.
pub fn now() -> f64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Whole seconds since the epoch (0 before it), as the account registry stores times.
pub fn unix_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A file time as the float Python's `st_mtime` gives: `sec + nsec * 1e-9`.
pub fn float_time(secs: i64, nsec: i64) -> f64 {
    secs as f64 + nsec as f64 * 1e-9
}

/// `Mon DD` in local time (`strftime("%b %d")`), as the reference prints file dates.
pub fn month_day(secs: i64) -> String {
    match Local.timestamp_opt(secs, 0).earliest() {
        Some(t) => t.format("%b %d").to_string(),
        None => String::from("??? ??"),
    }
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` in local time, as Python's `str(datetime.fromtimestamp(t))`
/// (the fraction is left out when it is zero).
pub fn local_datetime(t: f64) -> String {
    let secs = t.floor();
    #[expect(
        clippy::cast_possible_truncation,
        reason = "floor of a current time, far inside i64"
    )]
    let (whole, micros) = (secs as i64, ((t - secs) * 1e6).round() as i64);
    let (whole, micros) = if micros >= 1_000_000 {
        (whole + 1, 0)
    } else {
        (whole, micros)
    };
    match Local.timestamp_opt(whole, 0).earliest() {
        Some(d) if micros == 0 => d.format("%Y-%m-%d %H:%M:%S").to_string(),
        Some(d) => format!("{}.{micros:06}", d.format("%Y-%m-%d %H:%M:%S")),
        None => format!("{t}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_time_matches_python() {
        assert_eq!(float_time(1_700_000_000, 500_000_000), 1_700_000_000.5);
        assert_eq!(float_time(0, 0), 0.0);
    }

    #[test]
    fn renderings_have_the_reference_shape() {
        let md = month_day(0);
        assert_eq!(md.len(), 6, "{md}");
        let dt = local_datetime(86_400.0 * 365.0);
        assert_eq!(dt.len(), 19, "{dt}");
        let dt = local_datetime(86_400.0 * 365.0 + 0.25);
        assert!(dt.ends_with(".250000"), "{dt}");
    }
}
