//! Crash-safe file writes.
//!
//! Every state file of a relay (password, metadata, queue items, metrics) is written to a
//! unique temporary file in the same directory and renamed over the target, so a crash at
//! any point leaves either the old or the new complete file. Temporary names end in `.tmp`
//! because the reference's queue loader deletes exactly those leftovers at start-up.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::Rng;

use crate::error::Error;

/// Whether a write must reach the disk before it counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Rename only: survives a process crash, may lose the last seconds on power loss.
    /// For frequent state (device tokens, queue items), as relays run `mail_fsync = never`.
    Rename,
    /// `fsync` the file before and the directory after the rename: for rare, critical state
    /// such as a new account's password.
    Fsync,
}

/// A temporary path beside `path`: `<name>.<random>.tmp`.
pub fn temp_path(path: &Path) -> PathBuf {
    let suffix: u64 = rand::rng().random();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{name}.{suffix:016x}.tmp"))
}

/// Writes `bytes` to `path` atomically (temp file in the same directory, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8], durability: Durability) -> Result<(), Error> {
    write_atomic_mode(path, bytes, durability, None)
}

/// Like [`write_atomic`], with an explicit file mode (e.g. 0o644 for a metrics file that
/// node-exporter reads under another user); `None` leaves it to the umask.
pub fn write_atomic_mode(
    path: &Path,
    bytes: &[u8],
    durability: Durability,
    mode: Option<u32>,
) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = temp_path(path);
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        if let Some(mode) = mode {
            options.mode(mode);
        }
        let mut file = options.open(&tmp)?;
        if let Some(mode) = mode {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        file.write_all(bytes)?;
        if durability == Durability::Fsync {
            file.sync_all()?;
        }
        drop(file);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    if durability == Durability::Fsync
        && let Some(dir) = path.parent()
    {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Opens `path` with `options`, never through a symbolic link at its last component and
/// never waiting on a FIFO (`O_NOFOLLOW | O_NONBLOCK`), and only if it is a regular file.
pub(crate) fn open_regular(
    options: &mut fs::OpenOptions,
    path: &Path,
) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = options
        .custom_flags(i32::try_from(flags.bits()).unwrap_or(0))
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(crate::dir::refusal("not a regular file"));
    }
    Ok(file)
}

/// `fsync` of a directory: makes the names created, renamed or removed in it durable.
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::NONBLOCK;
    OpenOptions::new()
        .read(true)
        .custom_flags(i32::try_from(flags.bits()).unwrap_or(0))
        .open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// `fsync` of a file's data and metadata (the file is opened read-only, which Linux allows;
/// a regular file only, never through a link).
pub fn sync_file(path: &Path) -> Result<(), Error> {
    open_regular(OpenOptions::new().read(true), path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// An exclusive `flock(2)` on a lock file, released on drop. Python's `filelock` uses the
/// same call on the same paths, so a Python and a Rust service may run side by side.
///
/// A lock file may be removed by the one holding it (doveauth removes the `password.lock` of
/// a refused first login together with its empty mailbox): whoever waited on the removed
/// file then holds a lock nobody else can see. So a lock counts only once the path still
/// names the very file that was locked (same device and inode); otherwise it is taken again
/// on the file now at the path. Every locker of such a file must check this, as
/// [`FileLock::acquire`] and [`FileLock::acquire_timeout`] do.
#[derive(Debug)]
pub struct FileLock {
    file: File,
}

impl FileLock {
    /// Locks an open lock file, waiting at most `timeout`; `Ok(None)` on timeout.
    pub fn wait_for(file: File, timeout: Duration) -> std::io::Result<Option<FileLock>> {
        let deadline = Instant::now() + timeout;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Some(FileLock { file })),
                Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(fs::TryLockError::WouldBlock) => return Ok(None),
                Err(fs::TryLockError::Error(e)) => return Err(e),
            }
        }
    }

    /// Whether the file under `path` is still the one this lock holds (not moved away or
    /// replaced since it was opened).
    pub fn is_at(&self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (self.file.metadata(), fs::symlink_metadata(path)) {
            (Ok(held), Ok(there)) => (held.dev(), held.ino()) == (there.dev(), there.ino()),
            _ => false,
        }
    }

    /// The locked file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Locks an open lock file, waiting as long as it takes.
    pub fn wait(file: File) -> std::io::Result<FileLock> {
        file.lock()?;
        Ok(FileLock { file })
    }

    /// Opens (creating) `path` and blocks until the lock is held.
    pub fn acquire(path: &Path) -> Result<FileLock, Error> {
        loop {
            let file = open_lock_file(path)?;
            file.lock().map_err(|e| Error::io(path, e))?;
            let lock = FileLock { file };
            if lock.is_at(path) {
                return Ok(lock);
            }
        }
    }

    /// Like [`FileLock::acquire`], giving up after `timeout` (the reference waits 5 s
    /// for `password.lock`). Returns `Ok(None)` on timeout.
    pub fn acquire_timeout(path: &Path, timeout: Duration) -> Result<Option<FileLock>, Error> {
        let deadline = Instant::now() + timeout;
        let mut file = open_lock_file(path)?;
        loop {
            match file.try_lock() {
                Ok(()) => {
                    let lock = FileLock { file };
                    if lock.is_at(path) {
                        return Ok(Some(lock));
                    }
                    drop(lock);
                    file = open_lock_file(path)?;
                }
                Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(fs::TryLockError::WouldBlock) => return Ok(None),
                Err(fs::TryLockError::Error(e)) => return Err(Error::io(path, e)),
            }
        }
    }

    /// Removes the lock file while the lock is held, then releases it: a waiter that
    /// locks the removed file sees that it is gone and locks the path anew.
    pub fn remove(self, path: &Path) -> Result<(), Error> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(path, e)),
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Opens (creating) a lock file: a regular file only, never through a link, never waiting
/// on a FIFO.
fn open_lock_file(path: &Path) -> Result<File, Error> {
    open_regular(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
        path,
    )
    .map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("password");
        write_atomic(&p, b"old", Durability::Fsync).unwrap();
        write_atomic(&p, b"new", Durability::Rename).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("password")]);
        assert!(temp_path(&p).to_string_lossy().ends_with(".tmp"));
    }

    #[test]
    fn atomic_write_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.prom");
        write_atomic_mode(&p, b"x", Durability::Rename, Some(0o644)).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }

    #[test]
    fn atomic_write_into_missing_dir_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_atomic(&dir.path().join("nope/x"), b"x", Durability::Rename).unwrap_err();
        assert!(err.to_string().contains("nope/x"));
    }

    #[test]
    fn sync_of_missing_paths_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        sync_dir(dir.path()).unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        sync_file(&dir.path().join("f")).unwrap();
        assert!(sync_file(&dir.path().join("missing")).is_err());
        assert!(sync_dir(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn lock_excludes_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("password.lock");
        let held = FileLock::acquire(&p).unwrap();
        assert!(
            FileLock::acquire_timeout(&p, Duration::from_millis(30))
                .unwrap()
                .is_none()
        );
        drop(held);
        assert!(
            FileLock::acquire_timeout(&p, Duration::from_millis(30))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_waiter_on_a_removed_lock_file_locks_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("password.lock");
        let held = FileLock::acquire(&p).unwrap();
        let waiter = {
            let p = p.clone();
            std::thread::spawn(move || FileLock::acquire_timeout(&p, Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(50));
        held.remove(&p).unwrap();
        // Someone else creates and locks the path's new file first.
        let newer = FileLock::acquire(&p).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !waiter.is_finished(),
            "the waiter must not take the removed file's lock for the path's"
        );
        drop(newer);
        let got = waiter.join().unwrap().unwrap().expect("locked");
        assert!(got.is_at(&p));
    }
}
