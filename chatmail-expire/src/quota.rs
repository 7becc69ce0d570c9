//! The quota target pass (SPEC §7.4), shared by `chatmail-expire` (step 6, target 70% of
//! `max_mailbox_size`) and `chatmail-quota-expire` (target given by Dovecot's
//! `quota_warning`).
//!
//! Only files directly in `<mailbox>/cur` and `<mailbox>/new` whose names follow Dovecot's
//! pattern take part; their size is the `S=` size from the name, because that is what
//! Dovecot's quota counts (the disk size is irrelevant). The oldest go first, and nothing
//! delivered within the last 24 hours is ever removed: a full quota is the signal that
//! tells the owner's devices something is wrong.

use std::cmp::Ordering;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use crate::dovecot::{DovecotName, parse_name};
use chatmaild::dir::{Dir, Kind};
use chatmaild::maildir::scan::{Folders, Location, MaildirSub, vanished};

/// Messages younger than this (by their delivery time) are never removed.
pub const PROTECTED_SECS: f64 = 86_400.0;

/// A message taking part in the quota pass, ordered as the reference sorts: by delivery
/// time and quota size from the name (oldest, then smallest), then `cur/<name>`.
#[derive(Debug, Clone)]
pub struct QuotaEntry {
    /// Delivery time and quota size from the name.
    pub parsed: DovecotName,
    /// `cur` or `new`; with the name this is the reference's `cur/<name>` tie-breaker.
    pub sub: MaildirSub,
    /// The file name.
    pub name: OsString,
    /// The full path, for messages.
    pub path: PathBuf,
    /// Where it is: it is unlinked beneath its mailbox's handle.
    pub at: Location,
}

impl QuotaEntry {
    /// An entry for a file in `<mailbox>/<sub>/<name>` (at `at`) if its name parses.
    pub fn new(path: PathBuf, at: Location, sub: MaildirSub) -> Option<QuotaEntry> {
        let name = path.file_name()?.to_os_string();
        let parsed = parse_name(name.as_encoded_bytes())?;
        Some(QuotaEntry {
            parsed,
            sub,
            name,
            path,
            at,
        })
    }

    fn key(&self) -> (&DovecotName, MaildirSub, &OsString, &PathBuf) {
        (&self.parsed, self.sub, &self.name, &self.path)
    }

    /// Unlinks the file beneath its mailbox's handle (`folders` opens its folder again); a
    /// file that is already gone counts as removed.
    pub fn remove(&self, folders: &mut Folders) -> std::io::Result<()> {
        match folders.unlink(&self.at, &self.name) {
            Ok(_) => Ok(()),
            Err(e) if vanished(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl PartialEq for QuotaEntry {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for QuotaEntry {}

impl PartialOrd for QuotaEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for QuotaEntry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// Lists the quota candidates of an open mailbox (`cur/` and `new/` directly in it). Only
/// regular files count (from `readdir`'s type, no `stat`): links are never touched, and a
/// `cur` or `new` that is a link is not entered. A missing folder is empty; an unreadable
/// one is reported in the second list.
pub fn list_entries(mailbox: &Arc<Dir>) -> (Vec<QuotaEntry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for sub in [MaildirSub::Cur, MaildirSub::New] {
        let path = mailbox.join(sub.name());
        let listing = match mailbox.open_dir(sub.name()) {
            Ok(dir) => dir.entries().map(|l| (dir, l)),
            Err(e) => Err(e),
        };
        let at = Location {
            mailbox: Arc::clone(mailbox),
            folder: [std::ffi::OsString::from(sub.name())].into(),
        };
        let (folder, listing) = match listing {
            Ok(listing) => listing,
            Err(e) if vanished(&e) => continue,
            Err(e) => {
                problems.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        for (name, kind) in listing {
            if kind == Kind::File {
                entries.extend(QuotaEntry::new(folder.join(&name), at.clone(), sub));
            }
        }
    }
    (entries, problems)
}

/// Removes the oldest entries while the total quota size is above `target_bytes`,
/// stopping at the first entry delivered after `now - 24h`. `remove` does (or, in a dry
/// run, pretends) the removal and says whether the file is gone; a file that could not be
/// removed still counts in the total, so the pass goes on with the next one. Returns the
/// number of files removed.
pub fn expire_to_target(
    mut entries: Vec<QuotaEntry>,
    target_bytes: f64,
    now: f64,
    mut remove: impl FnMut(&QuotaEntry) -> bool,
) -> u64 {
    entries.sort_unstable();
    let mut total = entries
        .iter()
        .fold(0u64, |sum, e| sum.saturating_add(e.parsed.size));
    let cutoff = now - PROTECTED_SECS;
    let mut removed = 0;
    for entry in &entries {
        if to_f64(total) <= target_bytes || to_f64(entry.parsed.time) > cutoff {
            break;
        }
        if remove(entry) {
            total = total.saturating_sub(entry.parsed.size);
            removed += 1;
        }
    }
    removed
}

/// Python compares an int with a float exactly; for the sizes and times here (far below
/// 2^53) the conversion is exact too.
fn to_f64(n: u64) -> f64 {
    n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(time: u64, size: u64, sub: MaildirSub, name: &str) -> QuotaEntry {
        static DIR: std::sync::OnceLock<Arc<Dir>> = std::sync::OnceLock::new();
        QuotaEntry {
            parsed: DovecotName { time, size },
            sub,
            name: name.into(),
            path: PathBuf::from(name),
            at: Location {
                mailbox: Arc::clone(
                    DIR.get_or_init(|| Arc::new(Dir::open(std::path::Path::new("/")).unwrap())),
                ),
                folder: [].into(),
            },
        }
    }

    #[test]
    fn oldest_first_until_target() {
        let now = 10_000_000.0;
        let entries = vec![
            entry(300, 10, MaildirSub::Cur, "c"),
            entry(100, 10, MaildirSub::New, "a"),
            entry(200, 10, MaildirSub::Cur, "b"),
        ];
        let mut order = Vec::new();
        let n = expire_to_target(entries, 10.0, now, |e| {
            order.push(e.name.clone());
            true
        });
        assert_eq!(n, 2);
        assert_eq!(order, ["a", "b"]);
    }

    #[test]
    fn equal_total_and_target_stops() {
        let entries = vec![entry(1, 10, MaildirSub::Cur, "a")];
        assert_eq!(expire_to_target(entries.clone(), 10.0, 1e9, |_| true), 0);
        assert_eq!(expire_to_target(entries, 9.0, 1e9, |_| true), 1);
    }

    #[test]
    fn last_24_hours_protected() {
        let now = 1_000_000.0;
        let entries = vec![
            entry(1_000_000 - 86_400, 10, MaildirSub::Cur, "exactly-24h"),
            entry(1_000_000 - 86_399, 10, MaildirSub::Cur, "younger"),
            entry(1, 10, MaildirSub::Cur, "old"),
        ];
        let mut removed = Vec::new();
        let n = expire_to_target(entries, 0.0, now, |e| {
            removed.push(e.name.clone());
            true
        });
        assert_eq!(n, 2);
        assert_eq!(removed, ["old", "exactly-24h"]);
    }

    #[test]
    fn ties_by_size_then_cur_before_new_then_name() {
        let entries = vec![
            entry(5, 20, MaildirSub::Cur, "x"),
            entry(5, 10, MaildirSub::New, "a"),
            entry(5, 10, MaildirSub::Cur, "z"),
            entry(5, 10, MaildirSub::Cur, "b"),
        ];
        let mut removed = Vec::new();
        expire_to_target(entries, 0.0, 1e9, |e| {
            removed.push(e.name.clone());
            true
        });
        assert_eq!(removed, ["b", "z", "a", "x"]);
    }

    #[test]
    fn failed_removal_keeps_counting() {
        let entries = vec![
            entry(1, 10, MaildirSub::Cur, "stuck"),
            entry(2, 10, MaildirSub::Cur, "next"),
        ];
        let mut seen = Vec::new();
        let n = expire_to_target(entries, 10.0, 1e9, |e| {
            seen.push(e.name.clone());
            e.name != "stuck"
        });
        assert_eq!(n, 1);
        assert_eq!(seen, ["stuck", "next"]);
    }
}
