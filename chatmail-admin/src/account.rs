//! Changes of one account: creation, password change, deletion, blocking.
//!
//! Each runs under the account's `password.lock`, the lock doveauth takes to create it, so
//! an operator command and a first login never interleave. A tombstone is written before
//! the account it protects goes, and lifted only after the account it protects exists,
//! under that account's lock: at no moment is the address free for a stranger's first
//! login.

use chatmaild::Config;
use chatmaild::dir::Kind;
use chatmaild::fs::Durability;
use chatmaild::user::{BLOCKED, PASSWORD};
use chatmaild::wall_time::unix_seconds as now;
use rand::Rng;

use crate::Error;
use crate::relay::{Relay, no_such_account};

/// How often a mailbox tree in the trash is attempted to be removed (Dovecot may still add
/// files to a mailbox it has open).
const REMOVE_ATTEMPTS: usize = 5;

impl Relay {
    /// Creates `addr` with `password` hashed as doveauth does. A tombstoned address is
    /// refused unless `force`, which lifts the tombstone once the account exists.
    pub fn create(&self, addr: &str, password: &str, force: bool) -> Result<(), Error> {
        self.user(addr)?;
        self.check_password(password)?;
        let tombstoned = || self.registry.is_tombstoned(addr, now());
        if tombstoned() && !force {
            return Err(tombstone_refusal(addr));
        }
        let (mailbox, _lock) = self.locked(addr, true)?;
        if mailbox.has_account() {
            return Err(Error::Refused(format!("{addr} exists")));
        }
        // Again under the lock: a delete may have tombstoned it meanwhile.
        let lift = tombstoned();
        if lift && !force {
            return Err(tombstone_refusal(addr));
        }
        let hash = chatmaild::hash::hash_password(self.config.password_scheme, password)?;
        mailbox.set_password(self.root()?, &hash)?;
        if lift {
            self.registry.remove_tombstone(addr)?;
        }
        Ok(())
    }

    /// Replaces the password of an existing account (blocked or not), keeping its
    /// last-login day.
    pub fn passwd(&self, addr: &str, password: &str) -> Result<(), Error> {
        self.check_password(password)?;
        let (mailbox, _lock) = self.locked(addr, false)?;
        if !mailbox.has_account() {
            return Err(no_such_account(addr));
        }
        let kind = |name| mailbox.dir().stat(name).ok().flatten().map(|m| m.kind);
        let name = if kind(PASSWORD) == Some(Kind::File) {
            PASSWORD
        } else {
            BLOCKED
        };
        let last_login = mailbox.last_login();
        let hash = chatmaild::hash::hash_password(self.config.password_scheme, password)?;
        let dir = mailbox.dir();
        dir.write_atomic(name, hash.as_bytes(), Durability::Fsync, None)
            .map_err(|e| Error::io(dir.join(name), e))?;
        if let Some(t) = last_login {
            dir.set_mtime(name, t)
                .map_err(|e| Error::io(dir.join(name), e))?;
        }
        Ok(())
    }

    /// Refuses a password doveauth would not accept at a first login.
    pub fn check_password(&self, password: &str) -> Result<(), Error> {
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
        if self.mailbox(addr)?.is_none() {
            return Err(no_such_account(addr));
        }
        self.registry.clean_leftovers();
        let root = self.root()?;
        let (trash, name) = self.registry.trash()?;
        let until = {
            let (_mailbox, _lock) = self.locked(addr, false)?;
            let until = self.registry.write_tombstone(addr, now())?;
            root.rename(addr, &trash, &name, false)
                .map_err(|e| Error::io(root.join(addr), e))?;
            until
        };
        if let Some((queue, items)) = self.notifications(addr) {
            for item in items {
                let _ = queue.remove_file(&item);
            }
        }
        let mut last = Ok(());
        for _ in 0..REMOVE_ATTEMPTS {
            last = trash.remove_tree(&name);
            if last.is_ok() {
                break;
            }
        }
        last.map_err(|e| Error::io(trash.join(&name), e))?;
        Ok(until)
    }

    /// Blocks or unblocks an existing account; returns whether that changed anything.
    /// Blocking moves the password file aside ([`chatmaild::mailbox::Mailbox::block`]), so
    /// it holds whatever passdb Dovecot runs; a marker made by hand beside a password is
    /// completed the same way.
    pub fn set_blocked(&self, addr: &str, blocked: bool) -> Result<bool, Error> {
        let (mailbox, _lock) = self.locked(addr, false)?;
        let account = mailbox.account()?.ok_or_else(|| no_such_account(addr))?;
        if blocked {
            Ok(mailbox.block()?)
        } else if account.blocked {
            Ok(mailbox.unblock()?)
        } else {
            Ok(false)
        }
    }
}

fn tombstone_refusal(addr: &str) -> Error {
    Error::Refused(format!("{addr} is tombstoned; --force creates it anyway"))
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
