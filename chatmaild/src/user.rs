//! The mailbox/user model: every path of a user, derived in one place (SPEC §1.5).
//!
//! [`User::new`] refuses any address that could name more than one path component, so
//! no input reaching a service can make it read or write outside `mailboxes_dir`. The
//! stricter rules for *creating* an account (our domain, local-part charset and length)
//! belong to doveauth. On-disk conventions mirror chatmaild's `user.py`:
//! - `password`: the Dovecot hash, ASCII, no newline; its mtime is the last-login day;
//! - `enforceE2EEincoming`: empty; its presence makes incoming cleartext rejected;
//! - `password.lock`, `metadata.json.lock`: `flock` files, left in place, except that a
//!   first login that creates no account removes the `password.lock` and empty mailbox it
//!   made ([`User::remove_if_unused`]);
//! - `blocked` (ours, [`crate::registry`]): the account is blocked while it exists, whatever
//!   its kind; `chatmail-admin block` renames `password` to it, so it holds the hash, and
//!   every reader of `password` (any Dovecot Lua script, the reference's services) sees no
//!   account. An empty one (a marker made by hand) blocks only in our doveauth.
//!
//! The tools reach the same files through directory handles ([`crate::mailbox`]); the
//! services run as the tree's owner and use the paths here, opening the last component
//! without following a link and never blocking on a FIFO.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::error::Error;
use crate::fs::{Durability, FileLock, sync_dir, sync_file, write_atomic};

/// The password file's name.
pub const PASSWORD: &str = "password";
/// The creation lock's name (the reference's `filelock` path).
pub const PASSWORD_LOCK: &str = "password.lock";
/// The E2EE marker's name.
pub const ENFORCE_E2EE: &str = "enforceE2EEincoming";
/// The name of a blocked account's password (or of a marker made by hand).
pub const BLOCKED: &str = "blocked";
/// The device-token file's name.
pub const METADATA: &str = "metadata.json";
/// The lock of `metadata.json`.
pub const METADATA_LOCK: &str = "metadata.json.lock";

/// Seconds of a day: last login is stored with this granularity.
pub const DAY: i64 = 86_400;

/// Longest address accepted: a mailbox directory name must fit one path component.
pub const MAX_ADDR_LEN: usize = 255;

/// Checks that `addr` can be a mailbox directory name: non-empty, has an `@`, no `/`, no
/// NUL or other control character, not longer than a file name may be.
pub fn validate_address(addr: &str) -> Result<(), Error> {
    let ok = !addr.is_empty()
        && addr.len() <= MAX_ADDR_LEN
        && addr.contains('@')
        && !addr.contains('/')
        && !addr.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidAddress(addr.to_owned()))
    }
}

/// `timestamp` rounded down to the start of its UTC day (`int(ts) // 86400 * 86400`).
pub fn day_timestamp(timestamp: i64) -> i64 {
    timestamp.div_euclid(DAY) * DAY
}

/// A mailbox and its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    addr: String,
    maildir: PathBuf,
}

impl User {
    /// The user `addr` of the relay configured by `config`.
    pub fn new(config: &Config, addr: &str) -> Result<User, Error> {
        User::in_dir(&config.mailboxes_dir, addr)
    }

    /// The user `addr` below `mailboxes_dir`.
    pub fn in_dir(mailboxes_dir: &Path, addr: &str) -> Result<User, Error> {
        validate_address(addr)?;
        Ok(User {
            addr: addr.to_owned(),
            maildir: mailboxes_dir.join(addr),
        })
    }

    /// The address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `<mailboxes_dir>/<addr>`, Dovecot's home and maildir of the user.
    pub fn maildir(&self) -> &Path {
        &self.maildir
    }

    /// The password file.
    pub fn password_path(&self) -> PathBuf {
        self.maildir.join(PASSWORD)
    }

    /// The lock serialising account creation.
    pub fn password_lock_path(&self) -> PathBuf {
        self.maildir.join(PASSWORD_LOCK)
    }

    /// The marker that rejects incoming cleartext.
    pub fn enforce_e2ee_path(&self) -> PathBuf {
        self.maildir.join(ENFORCE_E2EE)
    }

    /// The marker of a blocked account (written by `chatmail-admin block`).
    pub fn blocked_path(&self) -> PathBuf {
        self.maildir.join(BLOCKED)
    }

    /// Whether the account is blocked: one `stat`, on every lookup.
    pub fn is_blocked(&self) -> bool {
        fs::symlink_metadata(self.blocked_path()).is_ok()
    }

    /// Whether mail for this address may be accepted: the account exists as Dovecot sees
    /// it (a non-empty password file; the relay's Lua and dict userdb answer "unknown user"
    /// without one) and is not blocked. The one place that decides "has a mailbox": the
    /// incoming filter refuses every other recipient at `RCPT` (`550 5.1.1`), so nothing is
    /// queued that Dovecot would refuse and Postfix would then bounce. Two `stat`s.
    pub fn accepts_mail(&self) -> bool {
        fs::metadata(self.password_path()).is_ok_and(|m| m.is_file() && m.len() > 0)
            && !self.is_blocked()
    }

    /// The user's metadata (device tokens).
    pub fn metadata_path(&self) -> PathBuf {
        self.maildir.join(METADATA)
    }

    /// The lock serialising metadata changes.
    pub fn metadata_lock_path(&self) -> PathBuf {
        self.maildir.join(METADATA_LOCK)
    }

    /// The stored password hash; `None` if there is no file or it is empty.
    pub fn password(&self) -> Result<Option<String>, Error> {
        let path = self.password_path();
        let bytes = match read_small_file(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => {
                return Ok(None);
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        if bytes.is_empty() {
            tracing::error!("password is empty for: {}", self.addr);
            return Ok(None);
        }
        String::from_utf8(bytes).map(Some).map_err(|_| {
            Error::io(
                &path,
                std::io::Error::new(ErrorKind::InvalidData, "password file is not UTF-8"),
            )
        })
    }

    /// Creates the mailbox directory (with parents) if needed.
    pub fn create_maildir(&self) -> Result<(), Error> {
        fs::create_dir_all(&self.maildir).map_err(|e| Error::io(&self.maildir, e))
    }

    /// Takes the creation lock, waiting at most `timeout`; `Ok(None)` on timeout. Creates
    /// the mailbox directory if needed, and again if a refused first login removed it
    /// meanwhile ([`User::remove_if_unused`]).
    pub fn lock_password(&self, timeout: Duration) -> Result<Option<FileLock>, Error> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            self.create_maildir()?;
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match FileLock::acquire_timeout(&self.password_lock_path(), left) {
                Err(Error::Io { source, .. })
                    if source.kind() == ErrorKind::NotFound && !left.is_zero() => {}
                other => return other,
            }
        }
    }

    /// Under the creation lock `lock`, removes what a first login that created nothing
    /// left: the lock file and the mailbox directory, if the directory holds nothing but
    /// the lock file (no password, no mail, nothing another process put there). Returns
    /// whether it removed the directory. Safe against a concurrent creation of the same
    /// address: the lock file goes while it is locked, and every locker checks after
    /// locking that the path still names the file it locked (see [`FileLock`]), so a
    /// waiter starts over with a new directory instead of writing into a removed one.
    pub fn remove_if_unused(&self, lock: FileLock) -> Result<bool, Error> {
        let lock_name = std::ffi::OsStr::new("password.lock");
        let entries = fs::read_dir(&self.maildir).map_err(|e| Error::io(&self.maildir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&self.maildir, e))?;
            if entry.file_name() != lock_name {
                return Ok(false);
            }
        }
        lock.remove(&self.password_lock_path())?;
        match fs::remove_dir(&self.maildir) {
            Ok(()) => Ok(true),
            // Someone put something there after the lock file went: theirs now.
            Err(e)
                if e.kind() == ErrorKind::DirectoryNotEmpty || e.kind() == ErrorKind::NotFound =>
            {
                Ok(false)
            }
            Err(e) => Err(Error::io(&self.maildir, e)),
        }
    }

    /// Marks the account as E2EE-only and writes a new password hash durably, as
    /// chatmaild's `set_password` does. The marker comes first: the password file is what
    /// makes an account exist, so a crash in between must never leave an account that
    /// accepts cleartext for good (later logins do not create the marker).
    ///
    /// Durable means that when this returns, a power loss keeps the account: the password
    /// file is synced before its rename, the mailbox directory after it (the password's and
    /// the marker's names) and `mailboxes_dir` last (the mailbox's own name, which a
    /// directory fsync of the mailbox does not cover). Callers answer success only then.
    pub fn set_password(&self, hash: &str) -> Result<(), Error> {
        self.set_password_with(hash, Durability::Fsync)
    }

    /// [`User::set_password`] with a chosen durability: the legacy migration writes many
    /// accounts without `fsync` and makes them durable in one pass with
    /// [`User::sync_account`] before it retires the database.
    pub fn set_password_with(&self, hash: &str, durability: Durability) -> Result<(), Error> {
        self.create_maildir()?;
        self.remove_stale_password_temps();
        let marker = self.enforce_e2ee_path();
        crate::fs::open_regular(fs::OpenOptions::new().create(true).append(true), &marker)
            .map_err(|e| Error::io(marker, e))?;
        // With `Fsync`, the directory fsync after the rename also persists the marker's entry.
        write_atomic(&self.password_path(), hash.as_bytes(), durability)?;
        if durability == Durability::Fsync {
            self.sync_mailbox_entry()?;
        }
        Ok(())
    }

    /// Makes an account written with [`Durability::Rename`] durable, except for its entry
    /// in `mailboxes_dir` (one [`crate::fs::sync_dir`] of it covers every account): `fsync`
    /// of the password file and of the mailbox directory.
    pub fn sync_account(&self) -> Result<(), Error> {
        sync_file(&self.password_path())?;
        sync_dir(&self.maildir)
    }

    /// `fsync` of the directory holding the mailbox (`mailboxes_dir`), so the mailbox's name
    /// survives a power loss. Always done, not only when this call created the directory:
    /// a crash after an earlier `mkdir` may have left that name unsynced.
    fn sync_mailbox_entry(&self) -> Result<(), Error> {
        match self.maildir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
            _ => sync_dir(Path::new(".")),
        }
    }

    /// Removes `password.<random>.tmp` files a crash left behind. Call it only while no
    /// one else writes the password (under the creation lock, or at start-up).
    fn remove_stale_password_temps(&self) {
        let Ok(entries) = fs::read_dir(&self.maildir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("password.") && name.ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Whether incoming cleartext may be delivered (no `enforceE2EEincoming`, of any kind:
    /// a marker that is there counts, even a link).
    pub fn incoming_cleartext_ok(&self) -> bool {
        fs::symlink_metadata(self.enforce_e2ee_path()).is_err()
    }

    /// The last-login time: the password file's mtime in whole seconds (a regular file only).
    pub fn last_login(&self) -> Option<i64> {
        let meta = fs::symlink_metadata(self.password_path()).ok()?;
        meta.is_file().then(|| mtime_secs(&meta))
    }

    /// Records a login at `timestamp` with day granularity: the password file's mtime
    /// becomes the start of that day. Never creates a file; returns whether it wrote.
    /// A missing password file is logged and is not an error, as in chatmaild.
    pub fn set_last_login(&self, timestamp: i64) -> Result<bool, Error> {
        let path = self.password_path();
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => {
                return Err(Error::io(path, crate::dir::refusal("not a regular file")));
            }
            Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => {
                tracing::error!("Can not get last login timestamp for {}", self.addr);
                return Ok(false);
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        let day = day_timestamp(timestamp);
        if mtime_secs(&meta) == day {
            return Ok(false);
        }
        let when = system_time(day);
        let file = crate::fs::open_regular(fs::File::options().write(true), &path)
            .map_err(|e| Error::io(&path, e))?;
        file.set_times(fs::FileTimes::new().set_accessed(when).set_modified(when))
            .map_err(|e| Error::io(&path, e))?;
        Ok(true)
    }
}

/// Reads a file expected to be small (a password hash) with as few system calls as
/// possible: this is on the path of every Dovecot login. A short read of a regular file
/// means end of file, so one `read` suffices; longer files fall back to `read_to_end`.
fn read_small_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = crate::fs::open_regular(fs::File::options().read(true), path)?;
    let mut buf = vec![0u8; 1024];
    let n = file.read(&mut buf)?;
    if n < buf.len() {
        buf.truncate(n);
        return Ok(buf);
    }
    file.read_to_end(&mut buf)?;
    Ok(buf)
}

/// A metadata's mtime in whole seconds since the epoch (negative before it).
pub fn mtime_secs(meta: &fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    meta.mtime()
}

fn system_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

#[cfg(test)]
mod tests;
