//! Operations on accounts: listing, creation, password change, deletion, blocking.
//!
//! Each change of an account runs under its `password.lock`, the lock doveauth takes to
//! create it, so an operator command and a first login never interleave.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chatmaild::fs::{Durability, FileLock, match_owner, write_atomic};
use chatmaild::maildir::scan::{Scan, ScanOptions, scan_mailbox};
use chatmaild::registry::Registry;
use chatmaild::user::validate_address;
use chatmaild::{Config, User};
use rand::Rng;

use crate::Error;

/// How long a command waits for a concurrent login's `password.lock`.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// The notification queue directory inside `mailboxes_dir` (chatmail-metadata's).
pub const NOTIFICATION_QUEUE: &str = "pending_notifications";

/// One account as `list` and `info` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    /// The address.
    pub addr: String,
    /// The last-login day (the password file's mtime), Unix seconds.
    pub last_login: Option<i64>,
    /// Bytes of all files of the mailbox.
    pub bytes: u64,
    /// Message files (in `cur/`, `new/`, `tmp/` of every folder).
    pub messages: u64,
    /// Device tokens in `metadata.json`.
    pub tokens: u64,
    /// Whether incoming cleartext is rejected (`enforceE2EEincoming`).
    pub enforce_e2ee: bool,
    /// Whether the account is blocked.
    pub blocked: bool,
}

impl AccountInfo {
    /// The documented JSON object of `list --json` and `info --json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "addr": self.addr,
            "last_login": self.last_login.map(day),
            "bytes": self.bytes,
            "messages": self.messages,
            "tokens": self.tokens,
            "enforce_e2ee": self.enforce_e2ee,
            "blocked": self.blocked,
        })
    }
}

/// `YYYY-MM-DD` (UTC) of Unix seconds.
pub fn day(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map_or_else(|| secs.to_string(), |t| t.format("%Y-%m-%d").to_string())
}

/// The current Unix time in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A relay as the commands see it.
#[derive(Debug, Clone)]
pub struct Relay {
    /// Its configuration.
    pub config: Config,
    /// Its account state.
    pub registry: Registry,
}

impl Relay {
    /// The relay of `config`.
    pub fn new(config: Config) -> Relay {
        let registry = Registry::new(&config);
        Relay { config, registry }
    }

    /// The user `addr`, refused unless it is an address doveauth could have created: one
    /// path component, our domain, a local part of `a-z0-9._-`.
    pub fn user(&self, addr: &str) -> Result<User, Error> {
        let refuse = || Error::Refused(format!("not an address of this relay: {addr:?}"));
        validate_address(addr).map_err(|_| refuse())?;
        let local = addr
            .strip_suffix(&self.config.mail_domain)
            .and_then(|l| l.strip_suffix('@'))
            .ok_or_else(refuse)?;
        let ok = !local.is_empty()
            && local.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if !ok {
            return Err(refuse());
        }
        Ok(User::new(&self.config, addr)?)
    }

    /// An existing account (one with a password file).
    pub fn existing(&self, addr: &str) -> Result<User, Error> {
        let user = self.user(addr)?;
        if user.password()?.is_none() {
            return Err(Error::Refused(format!("no such account: {addr}")));
        }
        Ok(user)
    }

    /// Gives `path` the owner of `mailboxes_dir` (this runs as root, the services do not).
    pub fn own(&self, path: &Path) -> Result<(), Error> {
        Ok(match_owner(path, &self.config.mailboxes_dir)?)
    }

    /// Every account (a directory with `@` in its name and a password file), sorted.
    pub fn addresses(&self) -> Result<Vec<String>, Error> {
        let dir = &self.config.mailboxes_dir;
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(dir, e)),
        };
        let mut all: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.contains('@') && validate_address(n).is_ok())
            .filter(|n| dir.join(n).join("password").is_file())
            .collect();
        all.sort();
        Ok(all)
    }

    /// What `list` shows of `user`.
    pub fn info(&self, user: &User) -> AccountInfo {
        let (bytes, messages) =
            match scan_mailbox(user.maildir(), ScanOptions { extra_sizes: true }) {
                Scan::Done(s) => (
                    s.messages.iter().map(|m| m.size).sum::<u64>() + s.extra_bytes,
                    s.messages.len() as u64,
                ),
                Scan::Vanished | Scan::Unreadable(_) => (0, 0),
            };
        AccountInfo {
            addr: user.addr().to_owned(),
            last_login: user.last_login(),
            bytes,
            messages,
            tokens: read_metadata(user).map_or(0, |m| count_tokens(&m)),
            enforce_e2ee: !user.incoming_cleartext_ok(),
            blocked: user.is_blocked(),
        }
    }

    /// Queued notifications of `addr`: queue files whose first line is the address.
    pub fn notifications(&self, addr: &str) -> Vec<PathBuf> {
        let dir = self.config.mailboxes_dir.join(NOTIFICATION_QUEUE);
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| {
                fs::read(e.path())
                    .is_ok_and(|c| c.split(|b| *b == b'\n').next() == Some(addr.as_bytes()))
            })
            .map(|e| e.path())
            .collect();
        found.sort();
        found
    }

    fn lock(&self, user: &User) -> Result<FileLock, Error> {
        // A symlink in place of a mailbox would make the lock (and more) land elsewhere.
        if fs::symlink_metadata(user.maildir()).is_ok_and(|m| !m.is_dir()) {
            return Err(Error::Refused(format!(
                "{} is not a directory",
                user.maildir().display()
            )));
        }
        let lock = user.lock_password(LOCK_TIMEOUT)?.ok_or_else(|| {
            Error::Refused(format!("{} is busy (password.lock held)", user.addr()))
        })?;
        self.own(user.maildir())?;
        self.own(&user.password_lock_path())?;
        Ok(lock)
    }

    /// Creates `addr` with `password` hashed as doveauth does. A tombstoned address is
    /// refused unless `force` (which lifts the tombstone).
    pub fn create(&self, addr: &str, password: &str, force: bool) -> Result<(), Error> {
        let user = self.user(addr)?;
        if self.registry.is_tombstoned(addr, now()) {
            if !force {
                return Err(Error::Refused(format!(
                    "{addr} is tombstoned; --force creates it anyway"
                )));
            }
            self.registry.remove_tombstone(addr)?;
        }
        self.check_password(password)?;
        fs::create_dir_all(&self.config.mailboxes_dir)
            .map_err(|e| Error::io(&self.config.mailboxes_dir, e))?;
        let _lock = self.lock(&user)?;
        if user.password()?.is_some() {
            return Err(Error::Refused(format!("{addr} exists")));
        }
        let hash = chatmaild::hash::hash_password(self.config.password_scheme, password)?;
        user.set_password(&hash)?;
        self.own(&user.enforce_e2ee_path())?;
        self.own(&user.password_path())
    }

    /// Replaces the password of an existing account, keeping its last-login day.
    pub fn passwd(&self, addr: &str, password: &str) -> Result<(), Error> {
        let user = self.existing(addr)?;
        self.check_password(password)?;
        let _lock = self.lock(&user)?;
        let path = user.password_path();
        let last_login = fs::metadata(&path).and_then(|m| m.modified()).ok();
        let hash = chatmaild::hash::hash_password(self.config.password_scheme, password)?;
        write_atomic(&path, hash.as_bytes(), Durability::Fsync)?;
        self.own(&path)?;
        if let Some(t) = last_login {
            let file = fs::File::options()
                .write(true)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            file.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
                .map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
    }

    fn check_password(&self, password: &str) -> Result<(), Error> {
        let min = self.config.password_min_length;
        if password.chars().count() < min {
            return Err(Error::Refused(format!(
                "the password needs at least {min} characters"
            )));
        }
        if password.chars().any(char::is_control) {
            return Err(Error::Refused("the password has control characters".into()));
        }
        Ok(())
    }

    /// Deletes an account: tombstone first (so no first login takes the address), then one
    /// rename moves the mailbox out of the way (the account is gone at once and for good),
    /// then its queued notifications and the tree go. A crash leaves the account whole
    /// (before the rename) or gone (after); leftovers in `trash/` go on the next delete.
    /// Returns the tombstone's end.
    pub fn delete(&self, addr: &str) -> Result<Option<i64>, Error> {
        let user = self.user(addr)?;
        if !fs::symlink_metadata(user.maildir()).is_ok_and(|m| m.is_dir()) {
            return Err(Error::Refused(format!("no such account: {addr}")));
        }
        self.registry.clean_leftovers();
        let trash = self.registry.trash_path()?;
        let until = {
            let _lock = self.lock(&user)?;
            let until = self.registry.write_tombstone(addr, now())?;
            fs::rename(user.maildir(), &trash).map_err(|e| Error::io(user.maildir(), e))?;
            until
        };
        for item in self.notifications(addr) {
            let _ = fs::remove_file(item);
        }
        remove_tree(&trash)?;
        Ok(until)
    }

    /// Blocks or unblocks an existing account; returns whether that changed anything.
    pub fn set_blocked(&self, addr: &str, blocked: bool) -> Result<bool, Error> {
        let user = self.existing(addr)?;
        let _lock = self.lock(&user)?;
        let marker = user.blocked_path();
        if user.is_blocked() == blocked {
            return Ok(false);
        }
        if blocked {
            write_atomic(&marker, b"", Durability::Fsync)?;
            self.own(&marker)?;
        } else {
            fs::remove_file(&marker).map_err(|e| Error::io(&marker, e))?;
        }
        // A new ctime of the password file makes doveauth look at the marker at once
        // (its reply cache is keyed on the file's identity, ctime included).
        let path = user.password_path();
        let perms = fs::metadata(&path)
            .map_err(|e| Error::io(&path, e))?
            .permissions();
        fs::set_permissions(&path, perms).map_err(|e| Error::io(&path, e))?;
        Ok(true)
    }
}

/// Removes a directory tree; a mailbox still open in Dovecot may gain files meanwhile, so
/// it tries a few times.
fn remove_tree(path: &Path) -> Result<(), Error> {
    let mut last = None;
    for _ in 0..5 {
        match fs::remove_dir_all(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(Error::io(
        path,
        last.unwrap_or_else(|| std::io::Error::other("not removed")),
    ))
}

/// `metadata.json` as JSON, if present and readable.
pub fn read_metadata(user: &User) -> Option<serde_json::Value> {
    let bytes = fs::read(user.metadata_path()).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Device tokens in a `metadata.json` value (object form or the legacy list).
pub fn count_tokens(metadata: &serde_json::Value) -> u64 {
    match metadata.get("devicetoken") {
        Some(serde_json::Value::Object(m)) => m.len() as u64,
        Some(serde_json::Value::Array(a)) => a.len() as u64,
        _ => 0,
    }
}

/// A random password as chatmail-newemail makes them: `password_min_length + 3` characters
/// of letters, digits and ASCII punctuation.
pub fn random_password(config: &Config) -> String {
    const ALPHABET: &[u8] =
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    let mut rng = rand::rng();
    (0..config.password_min_length + 3)
        .map(|_| {
            char::from(
                ALPHABET
                    .get(rng.random_range(0..ALPHABET.len()))
                    .copied()
                    .unwrap_or(b'x'),
            )
        })
        .collect()
}
