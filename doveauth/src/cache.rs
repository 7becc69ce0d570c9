//! A cache of userdb replies, validated against the password file on every use.
//!
//! Every Dovecot login reads the user's password file. Instead of opening and reading it
//! and rendering the reply each time, the reply is kept with the file's identity (device, inode, size, mtime and
//! ctime in nanoseconds) and served only while one `stat` shows the very same file: an
//! atomic replacement (new inode), a write or a `utime` (new ctime) or a deletion by
//! expiry all make the next lookup read the file again. The cache never answers for a
//! file that is not there.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};

use chatmaild::User;

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
    entries: Mutex<HashMap<String, (FileId, Arc<str>)>>,
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
        if let Some((cached_id, hash)) = self.lock().get(user.addr())
            && *cached_id == id
        {
            return Ok(Some(hash.clone()));
        }
        let Some(hash) = user.password()? else {
            self.forget(user.addr());
            return Ok(None);
        };
        // Remember it only if the file did not change while it was read.
        let json: Arc<str> = user.userdb_json(&hash).into();
        if std::fs::metadata(&path).is_ok_and(|m| FileId::of(&m) == id) {
            let mut entries = self.lock();
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(user.addr().to_owned(), (id, json.clone()));
        }
        Ok(Some(json))
    }

    fn forget(&self, addr: &str) {
        self.lock().remove(addr);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (FileId, Arc<str>)>> {
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
                assert_eq!(*json, self.1.userdb_json(json.rsplit('"').nth(1).unwrap()));
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
}
