//! The persistent notification queue (SPEC §5.5): one file per (message, token) in
//! `<mailboxes_dir>/pending_notifications/`, and the retry schedule.
//!
//! The file format is the reference's, so a queue left by one implementation is
//! delivered by the other: the name is a random UUIDv4 as 32 lower-case hex digits, the
//! content `<addr>\n<start_ts>\n<token>` without a trailing newline (the token is
//! everything after the second newline). Files are written under a temporary name ending
//! in `.tmp` and renamed, so a crash never leaves a half item under a real name; start-up
//! removes such leftovers.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use chatmaild::fs::{Durability, write_atomic};
use chatmaild::user::validate_address;
use rand::Rng;
use tracing::warn;

use crate::error::Error;

/// Name of the queue directory below `mailboxes_dir`.
pub const QUEUE_DIR: &str = "pending_notifications";

/// Base of the exponential back-off in seconds.
pub const BASE_DELAY: u64 = 8;

/// A notification is given up this many seconds after its message arrived (5 h).
pub const DROP_DEADLINE: i64 = 5 * 60 * 60;

/// Number of attempt levels: `int(log(DROP_DEADLINE) / log(BASE_DELAY)) + 1` = 5.
pub const LEVELS: usize = levels();

const fn levels() -> usize {
    // The largest n with BASE_DELAY^n <= DROP_DEADLINE, plus one.
    let mut n = 0;
    let mut power: u64 = 1;
    while power * BASE_DELAY <= DROP_DEADLINE.unsigned_abs() {
        power *= BASE_DELAY;
        n += 1;
    }
    n + 1
}

/// Logged (at warning) for every queue entry removed at start-up; the reference's text.
pub const SPURIOUS_LOG: &str = "removing spurious queue item";

/// Nominal delay before an attempt at `level`: 0, then `8^level` seconds.
pub fn delay_secs(level: usize) -> u64 {
    if level == 0 {
        0
    } else {
        let exp = u32::try_from(level).unwrap_or(u32::MAX);
        BASE_DELAY.saturating_pow(exp)
    }
}

/// When an attempt at `level` is due for an item of `start_ts`, queued at `now`:
/// `Some((when, delay))`, or `None` once past the level count or the deadline.
pub fn schedule(level: usize, now: i64, start_ts: i64) -> Option<(i64, u64)> {
    if level >= LEVELS {
        return None;
    }
    let delay = delay_secs(level);
    let when = now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
    (when <= start_ts.saturating_add(DROP_DEADLINE)).then_some((when, delay))
}

/// One queued notification and its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueItem {
    /// The queue file.
    pub path: PathBuf,
    /// The recipient whose token this is.
    pub addr: String,
    /// Unix time of the `messagenew` event.
    pub start_ts: i64,
    /// The device token, opaque.
    pub token: String,
}

impl QueueItem {
    /// Writes a new item to `dir` (temporary name, then rename) and returns it.
    pub fn create(dir: &Path, addr: &str, start_ts: i64, token: &str) -> Result<QueueItem, Error> {
        let path = dir.join(uuid4_hex());
        write_atomic(
            &path,
            encode(addr, start_ts, token).as_bytes(),
            Durability::Rename,
        )?;
        Ok(QueueItem {
            path,
            addr: addr.to_owned(),
            start_ts,
            token: token.to_owned(),
        })
    }

    /// Removes the file; an already missing file is fine.
    pub fn delete(&self) -> Result<(), Error> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }
}

/// The file content of an item.
pub fn encode(addr: &str, start_ts: i64, token: &str) -> String {
    format!("{addr}\n{start_ts}\n{token}")
}

/// Parses a file's content: UTF-8, three fields, an integer second field and an address
/// that passes SPEC §1.5 (it may be used to remove the token on a 410).
pub fn decode(content: &[u8]) -> Option<(String, i64, String)> {
    let text = std::str::from_utf8(content).ok()?;
    let mut parts = text.splitn(3, '\n');
    let (addr, ts, token) = (parts.next()?, parts.next()?, parts.next()?);
    // Python's int() accepts surrounding whitespace and a sign.
    let start_ts = ts.trim().parse::<i64>().ok()?;
    validate_address(addr).ok()?;
    Some((addr.to_owned(), start_ts, token.to_owned()))
}

/// A random UUIDv4 as 32 lower-case hex digits (Python's `uuid4().hex`).
pub fn uuid4_hex() -> String {
    let mut bytes: [u8; 16] = rand::rng().random();
    if let Some(b) = bytes.get_mut(6) {
        *b = (*b & 0x0f) | 0x40;
    }
    if let Some(b) = bytes.get_mut(8) {
        *b = (*b & 0x3f) | 0x80;
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Loads every item of `dir` at start-up. `.tmp` leftovers and entries that are not
/// valid items (unparsable, not UTF-8) are deleted with a warning; subdirectories and
/// unreadable files are skipped with a warning. Never fails on an entry.
pub fn load_dir(dir: &Path) -> Result<Vec<QueueItem>, Error> {
    let mut items = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                warn!("cannot list queue directory {}: {e}", dir.display());
                continue;
            }
        };
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            warn!("skipping directory in queue: {}", path.display());
            continue;
        }
        if entry.file_name().as_encoded_bytes().ends_with(b".tmp") {
            remove_spurious(&path);
            continue;
        }
        let content = match fs::read(&path) {
            Ok(c) => c,
            Err(e) => {
                warn!("skipping unreadable queue item {}: {e}", path.display());
                continue;
            }
        };
        match decode(&content) {
            Some((addr, start_ts, token)) => items.push(QueueItem {
                path,
                addr,
                start_ts,
                token,
            }),
            None => remove_spurious(&path),
        }
    }
    Ok(items)
}

fn remove_spurious(path: &Path) {
    warn!("{SPURIOUS_LOG}: {}", path.display());
    if let Err(e) = fs::remove_file(path)
        && e.kind() != ErrorKind::NotFound
    {
        warn!("cannot remove {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_match_the_reference_formula() {
        #[expect(clippy::cast_precision_loss, reason = "small constants")]
        let python = ((DROP_DEADLINE as f64).ln() / (BASE_DELAY as f64).ln()).floor() + 1.0;
        assert_eq!(LEVELS, 5);
        assert_eq!(LEVELS.to_string(), python.to_string());
    }

    #[test]
    fn backoff_schedule() {
        let start = 1_700_000_000;
        let delays: Vec<u64> = (0..LEVELS).map(delay_secs).collect();
        assert_eq!(delays, [0, 8, 64, 512, 4096]);
        for (level, delay) in delays.iter().enumerate() {
            assert_eq!(
                schedule(level, start, start),
                Some((start + i64::try_from(*delay).unwrap(), *delay)),
                "level {level}"
            );
        }
        assert_eq!(schedule(LEVELS, start, start), None, "at most 5 attempts");
        // Past the 5 h deadline: dropped even at a low level.
        assert_eq!(
            schedule(1, start + DROP_DEADLINE - 8, start),
            Some((start + DROP_DEADLINE, 8))
        );
        assert_eq!(schedule(1, start + DROP_DEADLINE - 7, start), None);
        assert_eq!(schedule(0, start + DROP_DEADLINE + 1, start), None);
        // A restart resets the level, not the deadline.
        assert_eq!(
            schedule(0, start + DROP_DEADLINE, start),
            Some((start + DROP_DEADLINE, 0))
        );
        // The whole retry chain fits the deadline: 8 + 64 + 512 + 4096 < 18000.
        let mut now = start;
        for level in 0..LEVELS {
            let (when, _) = schedule(level, now, start).unwrap();
            now = when;
        }
        assert_eq!(now, start + 4680);
    }

    #[test]
    fn file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let item = QueueItem::create(dir.path(), "user@example.org", 432, "01234").unwrap();
        let name = item.path.file_name().unwrap().to_str().unwrap().to_owned();
        assert_eq!(name.len(), 32);
        assert!(name.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
        assert_eq!(&name[12..13], "4", "UUID version 4");
        assert!(
            matches!(&name[16..17], "8" | "9" | "a" | "b"),
            "RFC 4122 variant"
        );
        assert_eq!(
            fs::read(&item.path).unwrap(),
            b"user@example.org\n432\n01234"
        );
        let loaded = load_dir(dir.path()).unwrap();
        assert_eq!(loaded, vec![item.clone()]);
        item.delete().unwrap();
        item.delete().unwrap();
        assert!(load_dir(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn reads_the_reference_format() {
        // As Python's PersistentQueueItem.create writes it.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("3f2b8c0e5d8a4b6c9e1f0a2b3c4d5e6f");
        fs::write(&p, "user@example.org\n1700000000\ntoken with\nnewline").unwrap();
        let items = load_dir(dir.path()).unwrap();
        assert_eq!(
            items,
            vec![QueueItem {
                path: p,
                addr: "user@example.org".into(),
                start_ts: 1_700_000_000,
                token: "token with\nnewline".into()
            }]
        );
    }

    #[test]
    fn decode_cases() {
        for (content, ok) in [
            (&b"a@b\n1\nt"[..], true),
            (b"a@b\n 12 \n", true),
            (b"a@b\n-5\nt", true),
            (b"", false),
            (b"a@b\n1", false),
            (b"a@b\nx\nt", false),
            (b"a@b\n1.5\nt", false),
            (b"../x\n1\nt", false),
            (b"a@b\xff\n1\nt", false),
        ] {
            assert_eq!(decode(content).is_some(), ok, "{content:?}");
        }
    }

    #[test]
    fn startup_cleanup_never_fails_on_an_entry() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let good = QueueItem::create(d, "a@b.org", 5, "t").unwrap();
        fs::write(d.join("1203981203.tmp"), "a@b.org\n5\nt").unwrap();
        fs::write(d.join("1203981203"), "").unwrap();
        fs::write(d.join("binary"), b"\xff\xfe\n1\nt").unwrap();
        fs::create_dir(d.join("subdir")).unwrap();
        let items = load_dir(d).unwrap();
        assert_eq!(items, vec![good.clone()]);
        let mut left: Vec<_> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut want = vec![
            good.path.file_name().unwrap().to_str().unwrap().to_owned(),
            "subdir".to_owned(),
        ];
        want.sort();
        assert_eq!(left, want);
    }
}
