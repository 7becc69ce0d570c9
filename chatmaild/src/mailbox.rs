//! One account's directory as the tools reach it: through a handle beneath the handle of
//! `mailboxes_dir` ([`crate::dir`]), never through a link. The layout is [`crate::user`]'s
//! (SPEC §1.5); the services use its path-based twin, [`crate::User`].
//!
//! What makes a directory an account: a `password` file, or, for a blocked account, the
//! same file renamed to `blocked` (see [`Mailbox::block`]). A directory with neither is no
//! account; if it holds only what a first login leaves before it writes the password (lock
//! files, temporary files, the E2EE marker, empty folders) it is a leftover that
//! [`Mailbox::is_leftover`] recognises, for `chatmail-expire` and `chatmail-admin import`.

use std::ffi::OsStr;
use std::io;
use std::time::Duration;

use crate::dir::{Dir, Kind, is_absent, refusal};
use crate::error::Error;
use crate::fs::{Durability, FileLock};
use crate::user::{BLOCKED, ENFORCE_E2EE, METADATA, METADATA_LOCK, PASSWORD, PASSWORD_LOCK};

/// Largest password file read (a hash is about 120 bytes).
pub const MAX_PASSWORD_FILE: u64 = 64 * 1024;

/// Largest `metadata.json` read (20 tokens of at most 4 KiB).
pub const MAX_METADATA_FILE: u64 = 1024 * 1024;

/// Folder levels a leftover may have (Dovecot makes `cur/`, `new/`, `tmp/` at most).
const LEFTOVER_DEPTH: usize = 2;

/// An account as it is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The password hash (from `password`, or from `blocked` while blocked).
    pub hash: String,
    /// Whether it is blocked.
    pub blocked: bool,
}

/// The outcome of taking an account's `password.lock`.
#[derive(Debug)]
pub enum Locked {
    /// Held: the lock file and the mailbox are still under their names.
    Held(FileLock),
    /// Someone else holds it (a login creating the account).
    Busy,
    /// The mailbox was moved away or replaced while this waited; open it again.
    Moved,
}

/// An account directory, open.
#[derive(Debug)]
pub struct Mailbox {
    addr: String,
    dir: Dir,
}

impl Mailbox {
    /// Opens `<root>/<addr>`; `None` if there is nothing under that name. A link or a
    /// non-directory there is an error.
    pub fn open(root: &Dir, addr: &str) -> Result<Option<Mailbox>, Error> {
        crate::user::validate_address(addr)?;
        match root.open_dir(addr) {
            Ok(dir) => Ok(Some(Mailbox {
                addr: addr.to_owned(),
                dir,
            })),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(Error::io(root.join(addr), e)),
        }
    }

    /// Opens `<root>/<addr>`, making the directory if it is not there.
    pub fn create(root: &Dir, addr: &str) -> Result<Mailbox, Error> {
        crate::user::validate_address(addr)?;
        let dir = root
            .open_or_create_dir(addr)
            .map_err(|e| Error::io(root.join(addr), e))?;
        Ok(Mailbox {
            addr: addr.to_owned(),
            dir,
        })
    }

    /// The address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The directory.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    fn io(&self, name: &str, e: io::Error) -> Error {
        Error::io(self.dir.join(name), e)
    }

    fn read_hash(&self, name: &str) -> Result<Option<String>, Error> {
        let Some(bytes) = self
            .dir
            .read_file(name, MAX_PASSWORD_FILE)
            .map_err(|e| self.io(name, e))?
        else {
            return Ok(None);
        };
        if bytes.is_empty() {
            return Ok(None);
        }
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| self.io(name, refusal("not UTF-8")))
    }

    /// The `password` file's hash; `None` if there is none or it is empty.
    pub fn password(&self) -> Result<Option<String>, Error> {
        self.read_hash(PASSWORD)
    }

    /// The account in this directory, if there is one.
    pub fn account(&self) -> Result<Option<Account>, Error> {
        if let Some(hash) = self.password()? {
            return Ok(Some(Account {
                hash,
                blocked: self.is_blocked(),
            }));
        }
        if self.stat_kind(BLOCKED) != Some(Kind::File) {
            return Ok(None);
        }
        Ok(self.read_hash(BLOCKED)?.map(|hash| Account {
            hash,
            blocked: true,
        }))
    }

    /// Whether there is an account here, from `stat` alone: a non-empty regular `password`,
    /// or a non-empty regular `blocked`.
    pub fn has_account(&self) -> bool {
        self.account_file().is_some()
    }

    /// The file that makes this an account and its `stat`.
    fn account_file(&self) -> Option<crate::dir::Meta> {
        [PASSWORD, BLOCKED].into_iter().find_map(|name| {
            self.dir
                .stat(name)
                .ok()
                .flatten()
                .filter(|m| m.kind == Kind::File && m.size > 0)
        })
    }

    fn stat_kind(&self, name: &str) -> Option<Kind> {
        self.dir.stat(name).ok().flatten().map(|m| m.kind)
    }

    /// Whether it is blocked: a `blocked` entry of any kind (one that cannot be looked at
    /// counts too).
    pub fn is_blocked(&self) -> bool {
        self.dir.exists(BLOCKED).unwrap_or(true)
    }

    /// Whether incoming cleartext is refused: an `enforceE2EEincoming` entry of any kind.
    pub fn enforces_e2ee(&self) -> bool {
        self.dir.exists(ENFORCE_E2EE).unwrap_or(true)
    }

    /// The last-login day: the mtime of the account's password file (moved aside or not).
    pub fn last_login(&self) -> Option<i64> {
        self.account_file().map(|m| m.mtime)
    }

    /// `metadata.json`, if there is one.
    pub fn metadata(&self) -> Result<Option<Vec<u8>>, Error> {
        self.dir
            .read_file(METADATA, MAX_METADATA_FILE)
            .map_err(|e| self.io(METADATA, e))
    }

    /// Takes `password.lock` (the lock doveauth creates accounts under), waiting at most
    /// `timeout`. The lock counts only if, once held, the lock file is still in this
    /// directory and this directory is still `<root>/<addr>`: a delete or an expiry may
    /// have moved it away while this waited.
    pub fn lock(&self, root: &Dir, timeout: Duration) -> Result<Locked, Error> {
        let file = self
            .dir
            .open_lock(PASSWORD_LOCK)
            .map_err(|e| self.io(PASSWORD_LOCK, e))?;
        let Some(lock) =
            FileLock::wait_for(file, timeout).map_err(|e| self.io(PASSWORD_LOCK, e))?
        else {
            return Ok(Locked::Busy);
        };
        let held = lock
            .file()
            .metadata()
            .map_err(|e| self.io(PASSWORD_LOCK, e))?;
        let still = |m: Option<crate::dir::Meta>, dev: u64, ino: u64| {
            m.is_some_and(|m| (m.dev, m.ino) == (dev, ino))
        };
        use std::os::unix::fs::MetadataExt;
        let here = self.dir.stat(PASSWORD_LOCK).ok().flatten();
        let named = root.stat(&self.addr).ok().flatten();
        if still(here, held.dev(), held.ino())
            && still(named, self.dir.meta().dev, self.dir.meta().ino)
        {
            Ok(Locked::Held(lock))
        } else {
            Ok(Locked::Moved)
        }
    }

    /// Writes a new password hash durably, in the order of [`crate::User::set_password`]:
    /// the E2EE marker first (a crash never leaves an account that takes cleartext), the
    /// password file synced and renamed into place, the directory synced, then `root` (the
    /// mailbox's own name). Call it under [`Mailbox::lock`].
    pub fn set_password(&self, root: &Dir, hash: &str) -> Result<(), Error> {
        self.remove_stale_password_temps();
        self.dir
            .touch(ENFORCE_E2EE)
            .map_err(|e| self.io(ENFORCE_E2EE, e))?;
        self.dir
            .write_atomic(PASSWORD, hash.as_bytes(), Durability::Fsync, None)
            .map_err(|e| self.io(PASSWORD, e))?;
        root.sync().map_err(|e| Error::io(root.path(), e))
    }

    /// Removes `password.<random>.tmp` files a crash left behind (under the lock only).
    fn remove_stale_password_temps(&self) {
        for (name, _) in self.dir.entries().unwrap_or_default() {
            let text = name.to_string_lossy();
            if text.starts_with("password.") && text.ends_with(".tmp") {
                let _ = self.dir.remove_file(&name);
            }
        }
    }

    /// Blocks the account: `password` is renamed to `blocked` (replacing a marker made by
    /// hand), one atomic step after which no reader of `password` (our doveauth, any Lua
    /// script Dovecot runs, the reference's services) sees an account, while the hash, its
    /// mtime (the last login) and the data stay. `false` if there was no `password` (not
    /// an account, or blocked already). Call it under [`Mailbox::lock`].
    pub fn block(&self) -> Result<bool, Error> {
        match self.stat_kind(PASSWORD) {
            None => Ok(false),
            Some(Kind::File) => {
                self.dir
                    .rename(PASSWORD, &self.dir, BLOCKED, true)
                    .map_err(|e| self.io(PASSWORD, e))?;
                self.dir.sync().map_err(|e| self.io(".", e))?;
                Ok(true)
            }
            Some(kind) => Err(self.io(
                PASSWORD,
                refusal(format!("{} is not a regular file", kind.name())),
            )),
        }
    }

    /// Unblocks the account: a hash in `blocked` goes back to `password`; a `blocked` beside
    /// a `password` (a marker made by hand) is removed. `false` if it was not blocked.
    /// Call it under [`Mailbox::lock`].
    pub fn unblock(&self) -> Result<bool, Error> {
        if self.stat_kind(BLOCKED).is_none() {
            return Ok(false);
        }
        let result = if self.stat_kind(PASSWORD).is_some() {
            self.dir.remove_file(BLOCKED).map(drop)
        } else {
            self.dir.rename(BLOCKED, &self.dir, PASSWORD, false)
        };
        result.map_err(|e| self.io(BLOCKED, e))?;
        self.dir.sync().map_err(|e| self.io(".", e))?;
        Ok(true)
    }

    /// Whether the directory holds nothing but what a first login leaves before its password
    /// is written (or when it is refused): `password.lock`, `metadata.json.lock`, files
    /// ending in `.tmp`, an empty `enforceE2EEincoming`, and folders with only these.
    /// Anything else (a message, `metadata.json`, a link, a FIFO) means no.
    pub fn is_leftover(&self) -> Result<bool, Error> {
        is_leftover(&self.dir).map_err(|e| Error::io(self.dir.path(), e))
    }
}

/// [`Mailbox::is_leftover`] of any open directory.
pub fn is_leftover(dir: &Dir) -> io::Result<bool> {
    only_leftovers(dir, 0)
}

fn only_leftovers(dir: &Dir, depth: usize) -> io::Result<bool> {
    for (name, kind) in dir.entries()? {
        let ok = match kind {
            Kind::File => is_leftover_file(dir, &name)?,
            Kind::Dir => {
                depth < LEFTOVER_DEPTH && only_leftovers(&dir.open_dir(&name)?, depth + 1)?
            }
            _ => false,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn is_leftover_file(dir: &Dir, name: &OsStr) -> io::Result<bool> {
    if name == PASSWORD_LOCK || name == METADATA_LOCK || name.as_encoded_bytes().ends_with(b".tmp")
    {
        return Ok(true);
    }
    if name == ENFORCE_E2EE {
        return Ok(dir.stat(name)?.is_some_and(|m| m.size == 0));
    }
    Ok(false)
}

#[cfg(test)]
mod tests;
