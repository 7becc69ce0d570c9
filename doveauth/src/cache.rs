//! A cache of userdb replies, validated against the password file on every use.
//!
//! Every Dovecot login reads the user's password file. Instead of opening and reading it
//! and rendering the reply each time, the reply is kept with the file's identity (device, inode, size, mtime and
//! ctime in nanoseconds) and served only while one `stat` shows the very same file: an
//! atomic replacement (new inode), a write or a `utime` (new ctime) or a deletion by
//! expiry all make the next lookup read the file again. The cache never answers for a
//! file that is not there.
//!
//! A "not blocked" answer (no `<maildir>/blocked`) is kept with the entry for
//! [`BLOCK_RECHECK`], so a login repeated within that time costs no second `stat`.
//! `chatmail-admin block` renames the password file to `blocked`, so the next lookup finds
//! no file and drops the entry: its block takes effect at once; a marker made by hand
//! beside the password takes effect within [`BLOCK_RECHECK`].

use std::collections::HashMap;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatmaild::User;

use crate::userdb::userdb_json;

/// How long a "not blocked" answer is trusted without looking again.
pub const BLOCK_RECHECK: Duration = Duration::from_secs(1);

/// Most users kept; when full the cache starts over (cheap, and only costs re-reads).
pub const MAX_ENTRIES: usize = 100_000;

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// userdb/passdb replies (JSON, a function of address and hash) by address.
#[derive(Debug, Default)]
pub struct HashCache {
    entries: Mutex<HashMap<String, Entry>>,
}

/// One user's cached reply.
#[derive(Debug)]
struct Entry {
    id: FileId,
    json: Arc<str>,
    /// When the `blocked` marker was last seen absent for this version of the file.
    not_blocked_at: Option<Instant>,
}

impl HashCache {
    /// The user's userdb reply (`None`: no password file or an empty one), from the cache
    /// when the password file is unchanged.
    pub fn userdb_json(&self, user: &User) -> Result<Option<Arc<str>>, chatmaild::Error> {
        let path = user.password_path();
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => {
                self.forget(user.addr());
                return Ok(None);
            }
            Err(e) => return Err(chatmaild::Error::io(path, e)),
        };
        let id = FileId::of(&meta);
        if let Some(entry) = self.lock().get(user.addr())
            && entry.id == id
        {
            return Ok(Some(entry.json.clone()));
        }
        let Some(hash) = user.password()? else {
            self.forget(user.addr());
            return Ok(None);
        };
        // Remember it only if the file did not change while it was read.
        let json: Arc<str> = userdb_json(user, &hash).into();
        if std::fs::metadata(&path).is_ok_and(|m| FileId::of(&m) == id) {
            let mut entries = self.lock();
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            let entry = Entry {
                id,
                json: json.clone(),
                not_blocked_at: None,
            };
            entries.insert(user.addr().to_owned(), entry);
        }
        Ok(Some(json))
    }

    /// Whether `user` is blocked. Call it after [`HashCache::userdb_json`], which drops the
    /// entry of a changed password file.
    pub fn is_blocked(&self, user: &User) -> bool {
        self.is_blocked_at(user, Instant::now())
    }

    /// [`HashCache::is_blocked`] at `now`.
    pub fn is_blocked_at(&self, user: &User, now: Instant) -> bool {
        let fresh = |e: &Entry| {
            e.not_blocked_at
                .is_some_and(|t| now.saturating_duration_since(t) < BLOCK_RECHECK)
        };
        if self.lock().get(user.addr()).is_some_and(fresh) {
            return false;
        }
        let blocked = user.is_blocked();
        if let Some(e) = self.lock().get_mut(user.addr()) {
            e.not_blocked_at = (!blocked).then_some(now);
        }
        blocked
    }

    fn forget(&self, addr: &str) {
        self.lock().remove(addr);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave the map inconsistent (single calls).
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatmaild::fs::{Durability, write_atomic};

    /// The hash inside the cached reply.
    struct Hashes<'a>(&'a HashCache, &'a User);

    impl Hashes<'_> {
        fn get(&self) -> Result<Option<String>, chatmaild::Error> {
            Ok(self.0.userdb_json(self.1)?.map(|json| {
                assert_eq!(
                    *json,
                    crate::userdb::userdb_json(self.1, json.rsplit('"').nth(1).unwrap())
                );
                json.rsplit('"').nth(1).unwrap().to_owned()
            }))
        }
    }

    #[test]
    fn follows_every_change_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let user = User::in_dir(dir.path(), "a@c.org").unwrap();
        let c = HashCache::default();
        let cache = Hashes(&c, &user);
        assert_eq!(cache.get().unwrap(), None);
        user.set_password("{SHA512-CRYPT}$6$one").unwrap();
        assert_eq!(
            cache.get().unwrap().as_deref(),
            Some("{SHA512-CRYPT}$6$one")
        );
        assert_eq!(
            cache.get().unwrap().as_deref(),
            Some("{SHA512-CRYPT}$6$one")
        );
        // Atomic replacement by another process.
        write_atomic(
            &user.password_path(),
            b"{SHA512-CRYPT}$6$two",
            Durability::Rename,
        )
        .unwrap();
        assert_eq!(
            cache.get().unwrap().as_deref(),
            Some("{SHA512-CRYPT}$6$two")
        );
        // In-place rewrite of the same length.
        std::fs::write(user.password_path(), b"{SHA512-CRYPT}$6$TWO").unwrap();
        assert_eq!(
            cache.get().unwrap().as_deref(),
            Some("{SHA512-CRYPT}$6$TWO")
        );
        // Deleted by expiry: no stale answer.
        std::fs::remove_dir_all(user.maildir()).unwrap();
        assert_eq!(cache.get().unwrap(), None);
        // Recreated empty: absent.
        std::fs::create_dir(user.maildir()).unwrap();
        std::fs::write(user.password_path(), b"").unwrap();
        assert_eq!(cache.get().unwrap(), None);
    }

    #[test]
    fn block_marker_is_rechecked() {
        let dir = tempfile::tempdir().unwrap();
        let user = User::in_dir(dir.path(), "a@c.org").unwrap();
        let c = HashCache::default();
        user.set_password("{SHA512-CRYPT}$6$one").unwrap();
        let t0 = Instant::now();
        assert!(c.userdb_json(&user).unwrap().is_some());
        assert!(!c.is_blocked_at(&user, t0));
        std::fs::write(user.blocked_path(), b"").unwrap();
        assert!(
            !c.is_blocked_at(&user, t0 + BLOCK_RECHECK / 2),
            "within the recheck time"
        );
        assert!(c.is_blocked_at(&user, t0 + BLOCK_RECHECK), "seen after it");
        assert!(
            c.is_blocked_at(&user, t0 + BLOCK_RECHECK / 2),
            "never cached"
        );
        // What chatmail-admin does: a new ctime of the password file drops the entry.
        std::fs::remove_file(user.blocked_path()).unwrap();
        assert!(!c.is_blocked_at(&user, t0));
        std::fs::write(user.blocked_path(), b"").unwrap();
        let perms = std::fs::metadata(user.password_path())
            .unwrap()
            .permissions();
        std::fs::set_permissions(user.password_path(), perms).unwrap();
        assert!(c.userdb_json(&user).unwrap().is_some());
        assert!(c.is_blocked_at(&user, t0), "at once");
    }
}
