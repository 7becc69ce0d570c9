//! Tombstones: addresses that cannot be registered again until a given time.

use std::fs;
use std::io::ErrorKind;
use std::path::PathBuf;

use super::{Registry, remove_if_present};
use crate::error::Error;
use crate::fs::{Durability, match_owner, write_atomic};
use crate::user::validate_address;

impl Registry {
    /// `tombstones/<addr>`; `addr` must be a valid mailbox name.
    pub fn tombstone_path(&self, addr: &str) -> Result<PathBuf, Error> {
        validate_address(addr)?;
        Ok(self.state.join("tombstones").join(addr))
    }

    /// Until when `addr` is tombstoned (`i64::MAX`: forever), whether or not that has passed.
    pub fn tombstone_until(&self, addr: &str) -> Result<Option<i64>, Error> {
        let path = self.tombstone_path(addr)?;
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(parse_until(&bytes))),
            Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => {
                Ok(None)
            }
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Whether `addr` may not be registered at `now`. An unreadable tombstone counts.
    pub fn is_tombstoned(&self, addr: &str, now: i64) -> bool {
        match self.tombstone_until(addr) {
            Ok(until) => until.is_some_and(|t| now < t),
            Err(_) => true,
        }
    }

    /// Tombstones `addr` for `tombstone_days` from `now` (never shortening an existing one);
    /// returns the end, or `None` when `tombstone_days` is 0.
    pub fn write_tombstone(&self, addr: &str, now: i64) -> Result<Option<i64>, Error> {
        let path = self.tombstone_path(addr)?;
        if self.tombstone_secs == 0 {
            return Ok(None);
        }
        self.state_subdir("tombstones")?;
        let until = now
            .saturating_add(self.tombstone_secs)
            .max(self.tombstone_until(addr)?.unwrap_or(0));
        write_atomic(&path, format!("{until}\n").as_bytes(), Durability::Fsync)?;
        match_owner(&path, &self.mailboxes_dir)?;
        Ok(Some(until))
    }

    /// Lifts the tombstone of `addr`; returns whether there was one.
    pub fn remove_tombstone(&self, addr: &str) -> Result<bool, Error> {
        let path = self.tombstone_path(addr)?;
        remove_if_present(&path)
    }

    /// Removes tombstones that ended before `now`; returns how many.
    pub fn prune_tombstones(&self, now: i64) -> Result<usize, Error> {
        let dir = self.state.join("tombstones");
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(0);
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let Ok(bytes) = fs::read(entry.path()) else {
                continue;
            };
            if parse_until(&bytes) <= now && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A tombstone's end from its content: a missing or bad number means forever (an operator
/// may reserve an address with an empty file).
fn parse_until(bytes: &[u8]) -> i64 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(i64::MAX)
}
