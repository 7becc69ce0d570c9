//! Tombstones: addresses that cannot be registered again until a given time.

use std::path::PathBuf;

use super::Registry;
use super::state::remove_entry;
use crate::dir::is_absent;
use crate::error::Error;
use crate::fs::Durability;
use crate::user::validate_address;

/// Largest tombstone file read (a number and a newline).
const MAX_TOMBSTONE_FILE: u64 = 64;

impl Registry {
    /// `tombstones/<addr>`; `addr` must be a valid mailbox name.
    pub fn tombstone_path(&self, addr: &str) -> Result<PathBuf, Error> {
        validate_address(addr)?;
        Ok(self.state.join("tombstones").join(addr))
    }

    /// Until when `addr` is tombstoned (`i64::MAX`: forever), whether or not that has passed.
    /// A tombstone that is not a plain file (a link, a FIFO) is an error.
    pub fn tombstone_until(&self, addr: &str) -> Result<Option<i64>, Error> {
        let path = self.tombstone_path(addr)?;
        let Some(dir) = self.state_subdir("tombstones", false)? else {
            return Ok(None);
        };
        match dir.read_file(addr, MAX_TOMBSTONE_FILE) {
            Ok(bytes) => Ok(bytes.map(|b| parse_until(&b))),
            Err(e) if is_absent(&e) => Ok(None),
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
    /// returns the end, or `None` when `tombstone_days` is 0. An unreadable old tombstone is
    /// replaced by a new one (a link is replaced, never written through).
    pub fn write_tombstone(&self, addr: &str, now: i64) -> Result<Option<i64>, Error> {
        let path = self.tombstone_path(addr)?;
        if self.tombstone_secs == 0 {
            return Ok(None);
        }
        let dir = self.made_subdir("tombstones")?;
        let until = now
            .saturating_add(self.tombstone_secs)
            .max(self.tombstone_until(addr).ok().flatten().unwrap_or(0));
        dir.write_atomic(
            addr,
            format!("{until}\n").as_bytes(),
            Durability::Fsync,
            Some(0o600),
        )
        .map_err(|e| Error::io(path, e))?;
        Ok(Some(until))
    }

    /// Lifts the tombstone of `addr`; returns whether there was one.
    pub fn remove_tombstone(&self, addr: &str) -> Result<bool, Error> {
        let path = self.tombstone_path(addr)?;
        let Some(dir) = self.state_subdir("tombstones", false)? else {
            return Ok(false);
        };
        let there = dir.exists(addr).map_err(|e| Error::io(&path, e))?;
        remove_entry(&dir, addr).map_err(|e| Error::io(&path, e))?;
        if there {
            dir.sync().map_err(|e| Error::io(&path, e))?;
        }
        Ok(there)
    }

    /// Removes tombstones that ended before `now`; returns how many. Entries that are not
    /// readable tombstones are left alone (they keep their address reserved).
    pub fn prune_tombstones(&self, now: i64) -> Result<usize, Error> {
        let Some(dir) = self.state_subdir("tombstones", false)? else {
            return Ok(0);
        };
        let entries = dir.entries().map_err(|e| Error::io(dir.path(), e))?;
        let mut removed = 0;
        for (name, _) in entries {
            let Ok(Some(bytes)) = dir.read_file(&name, MAX_TOMBSTONE_FILE) else {
                continue;
            };
            if parse_until(&bytes) <= now && dir.remove_file(&name).unwrap_or(false) {
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
