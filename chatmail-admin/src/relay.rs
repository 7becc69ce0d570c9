//! The relay as the commands see it: its configuration, the handle of `mailboxes_dir`
//! opened before anything else, and its account state.
//!
//! Every account is reached beneath that handle ([`chatmaild::mailbox::Mailbox`]): a link
//! where a mailbox, a password file, a lock or a marker should be is refused, never
//! followed, whoever planted it.

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use chatmaild::dir::{Dir, Kind};
use chatmaild::fs::FileLock;
use chatmaild::mailbox::{Locked, Mailbox};
use chatmaild::maildir::scan::{Scan, ScanOptions, scan_dir};
use chatmaild::privileges::{Owner, open_tree};
use chatmaild::registry::Registry;
use chatmaild::user::validate_address;
use chatmaild::{Config, User};

use crate::Error;

/// How long a command waits for a concurrent login's `password.lock`.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a command opens a mailbox again that moved away while it waited for the lock.
const MOVED_RETRIES: usize = 5;

/// The notification queue directory inside `mailboxes_dir` (chatmail-metadata's).
pub const NOTIFICATION_QUEUE: &str = "pending_notifications";

/// Largest queue item read (an address, a time and a token of at most 4 KiB).
const MAX_QUEUE_ITEM: u64 = 64 * 1024;

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

/// A relay as the commands see it.
#[derive(Debug, Clone)]
pub struct Relay {
    /// Its configuration.
    pub config: Config,
    /// Its account state (working beneath [`Relay::root`]).
    pub registry: Registry,
    root: Option<Arc<Dir>>,
}

impl Relay {
    /// The relay of `config`, with `mailboxes_dir` opened ([`Dir::open_trusted`]) by the
    /// user who runs the command, before any switch. With `create`, a missing
    /// `mailboxes_dir` is made first (mode 0700).
    pub fn open(config: Config, create: bool) -> Result<Relay, Error> {
        let dir = &config.mailboxes_dir;
        let mut root = open_tree(dir)?;
        if root.is_none() && create {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            root = open_tree(dir)?;
        }
        let mut registry = Registry::new(&config);
        if let Some(root) = &root {
            registry = registry.in_tree(Arc::clone(root));
        }
        Ok(Relay {
            config,
            registry,
            root,
        })
    }

    /// Whom the work in the tree runs as: its owner (`None`: there is no tree).
    pub fn owner(&self) -> Option<Owner> {
        self.root.as_deref().map(Owner::of)
    }

    /// The handle of `mailboxes_dir`.
    pub fn root(&self) -> Result<&Arc<Dir>, Error> {
        self.root.as_ref().ok_or_else(|| {
            Error::Refused(format!(
                "{} does not exist",
                self.config.mailboxes_dir.display()
            ))
        })
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

    /// The mailbox directory of `addr`, if there is one (a link there is an error).
    pub fn mailbox(&self, addr: &str) -> Result<Option<Mailbox>, Error> {
        self.user(addr)?;
        match &self.root {
            Some(root) => Ok(Mailbox::open(root, addr)?),
            None => Ok(None),
        }
    }

    /// An existing account's mailbox.
    pub fn existing(&self, addr: &str) -> Result<Mailbox, Error> {
        match self.mailbox(addr)? {
            Some(m) if m.has_account() => Ok(m),
            _ => Err(no_such_account(addr)),
        }
    }

    /// Every account (a directory with `@` in its name holding a password file, moved
    /// aside or not), sorted.
    pub fn addresses(&self) -> Result<Vec<String>, Error> {
        let Some(root) = &self.root else {
            return Ok(Vec::new());
        };
        let entries = root.entries().map_err(|e| Error::io(root.path(), e))?;
        let mut all: Vec<String> = entries
            .into_iter()
            .filter(|(_, kind)| *kind == Kind::Dir)
            .filter_map(|(name, _)| name.into_string().ok())
            .filter(|n| n.contains('@') && validate_address(n).is_ok())
            .filter(|n| {
                Mailbox::open(root, n)
                    .ok()
                    .flatten()
                    .is_some_and(|m| m.has_account())
            })
            .collect();
        all.sort();
        Ok(all)
    }

    /// What `list` shows of an account.
    pub fn info(&self, mailbox: &Mailbox) -> AccountInfo {
        let scanned = mailbox
            .dir()
            .try_clone()
            .map(|d| scan_dir(d, ScanOptions { extra_sizes: true }));
        let (bytes, messages) = match scanned {
            Ok(Scan::Done(s)) => (
                s.messages.iter().map(|m| m.size).sum::<u64>() + s.extra_bytes,
                s.messages.len() as u64,
            ),
            _ => (0, 0),
        };
        AccountInfo {
            addr: mailbox.addr().to_owned(),
            last_login: mailbox.last_login(),
            bytes,
            messages,
            tokens: read_metadata(mailbox).map_or(0, |m| count_tokens(&m)),
            enforce_e2ee: mailbox.enforces_e2ee(),
            blocked: mailbox.is_blocked(),
        }
    }

    /// The notification queue and the items of `addr` in it (files whose first line is
    /// the address; links and other odd entries are skipped).
    pub fn notifications(&self, addr: &str) -> Option<(Dir, Vec<OsString>)> {
        let queue = self.root.as_ref()?.open_dir(NOTIFICATION_QUEUE).ok()?;
        let mut found: Vec<OsString> = queue
            .entries()
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, kind)| *kind == Kind::File)
            .filter(|(name, _)| {
                queue.read_file(name, MAX_QUEUE_ITEM).is_ok_and(|c| {
                    c.is_some_and(|c| c.split(|b| *b == b'\n').next() == Some(addr.as_bytes()))
                })
            })
            .map(|(name, _)| name)
            .collect();
        found.sort();
        Some((queue, found))
    }

    /// Opens the mailbox of `addr` (making it with `create`) and takes its `password.lock`,
    /// opening it again if it moved away meanwhile.
    pub fn locked(&self, addr: &str, create: bool) -> Result<(Mailbox, FileLock), Error> {
        let root = self.root()?;
        for _ in 0..MOVED_RETRIES {
            let mailbox = if create {
                Mailbox::create(root, addr)?
            } else {
                self.mailbox(addr)?.ok_or_else(|| no_such_account(addr))?
            };
            match mailbox.lock(root, LOCK_TIMEOUT)? {
                Locked::Held(lock) => return Ok((mailbox, lock)),
                Locked::Busy => {
                    return Err(Error::Refused(format!(
                        "{addr} is busy (password.lock held)"
                    )));
                }
                Locked::Moved => {}
            }
        }
        Err(Error::Refused(format!(
            "{addr} keeps moving while it is locked; try again"
        )))
    }
}

/// The refusal for an address without an account.
pub fn no_such_account(addr: &str) -> Error {
    Error::Refused(format!("no such account: {addr}"))
}

/// `metadata.json` as JSON, if present and readable.
pub fn read_metadata(mailbox: &Mailbox) -> Option<serde_json::Value> {
    let bytes = mailbox.metadata().ok()??;
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
