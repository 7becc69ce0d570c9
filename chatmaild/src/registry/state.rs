//! The state directory beneath `mailboxes_dir`, the registration mode and the trash.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::{RegistrationMode, Registry, STATE_DIR};
use crate::dir::{Dir, Kind, is_absent};
use crate::error::Error;
use crate::fs::{Durability, FileLock};

/// The marker of invite-only registration, in the state directory.
const INVITE_ONLY: &str = "invite-only";

/// Imports in `tmp/` older than this are leftovers of a crash (younger ones may be running).
const STALE_IMPORT_SECS: i64 = 3600;

impl Registry {
    /// The handle on `mailboxes_dir`: the tool's, or opened by path now. `None` if it does
    /// not exist.
    pub(super) fn root(&self) -> Result<Option<Arc<Dir>>, Error> {
        if let Some(tree) = &self.tree {
            return Ok(Some(Arc::clone(tree)));
        }
        match Dir::open(&self.mailboxes_dir) {
            Ok(dir) => Ok(Some(Arc::new(dir))),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(Error::io(&self.mailboxes_dir, e)),
        }
    }

    /// The state directory; `None` if it does not exist (and `create` is false).
    pub(super) fn state(&self, create: bool) -> Result<Option<Dir>, Error> {
        let root = match self.root()? {
            Some(root) => root,
            None if create => {
                std::fs::create_dir_all(&self.mailboxes_dir)
                    .map_err(|e| Error::io(&self.mailboxes_dir, e))?;
                self.root()?
                    .ok_or_else(|| Error::io(&self.mailboxes_dir, io::ErrorKind::NotFound.into()))?
            }
            None => return Ok(None),
        };
        let opened = if create {
            root.open_or_create_dir(STATE_DIR)
        } else {
            root.open_dir(STATE_DIR)
        };
        match opened {
            Ok(dir) => Ok(Some(dir)),
            Err(e) if is_absent(&e) && !create => Ok(None),
            Err(e) => Err(Error::io(&self.state, e)),
        }
    }

    /// A subdirectory of the state directory; `None` if it does not exist (and `create` is
    /// false). Made with mode 0700, by whoever runs (the tree's owner).
    pub fn state_subdir(&self, name: &str, create: bool) -> Result<Option<Dir>, Error> {
        let Some(state) = self.state(create)? else {
            return Ok(None);
        };
        let opened = if create {
            state.open_or_create_dir(name)
        } else {
            state.open_dir(name)
        };
        match opened {
            Ok(dir) => Ok(Some(dir)),
            Err(e) if is_absent(&e) && !create => Ok(None),
            Err(e) => Err(Error::io(self.state.join(name), e)),
        }
    }

    /// A subdirectory, made if needed.
    pub(super) fn made_subdir(&self, name: &str) -> Result<Dir, Error> {
        self.state_subdir(name, true)?
            .ok_or_else(|| Error::io(self.state.join(name), io::ErrorKind::NotFound.into()))
    }

    /// Takes the lock file `name` of the state directory.
    pub(super) fn lock(&self, name: &str) -> Result<FileLock, Error> {
        let state = self
            .state(true)?
            .ok_or_else(|| Error::io(&self.state, io::ErrorKind::NotFound.into()))?;
        let path = self.state.join(name);
        let file = state.open_lock(name).map_err(|e| Error::io(&path, e))?;
        FileLock::wait(file).map_err(|e| Error::io(path, e))
    }

    // ---- registration mode ----

    /// The current mode: closed while `nocreate_file` exists (also one made by hand); an
    /// invite-only marker that cannot be looked at counts as there.
    pub fn mode(&self) -> RegistrationMode {
        if std::fs::symlink_metadata(&self.nocreate).is_ok() {
            return RegistrationMode::Closed;
        }
        let invite_only = match self.state(false) {
            Ok(Some(state)) => state.exists(INVITE_ONLY).unwrap_or(true),
            Ok(None) => false,
            Err(_) => true,
        };
        if invite_only {
            RegistrationMode::InviteOnly
        } else {
            RegistrationMode::Open
        }
    }

    /// Sets the mode. `Closed` only creates `nocreate_file` (and so is undone by removing it
    /// by hand); `Open` and `InviteOnly` remove it, after the marker in the tree is set, so
    /// invite-only never passes through open.
    pub fn set_mode(&self, mode: RegistrationMode) -> Result<(), Error> {
        match mode {
            RegistrationMode::Closed => self.set_nocreate(true),
            RegistrationMode::InviteOnly | RegistrationMode::Open => {
                self.set_invite_only(mode == RegistrationMode::InviteOnly)?;
                self.set_nocreate(false)
            }
        }
    }

    /// The part of [`Registry::set_mode`] inside the tree: the invite-only marker.
    pub fn set_invite_only(&self, on: bool) -> Result<(), Error> {
        let path = self.state.join(INVITE_ONLY);
        if on {
            let state = self
                .state(true)?
                .ok_or_else(|| Error::io(&self.state, io::ErrorKind::NotFound.into()))?;
            state
                .write_atomic(INVITE_ONLY, b"", Durability::Fsync, Some(0o600))
                .map_err(|e| Error::io(path, e))
        } else if let Some(state) = self.state(false)? {
            remove_entry(&state, INVITE_ONLY).map_err(|e| Error::io(path, e))
        } else {
            Ok(())
        }
    }

    /// The part of [`Registry::set_mode`] outside the tree: `nocreate_file`, written or
    /// removed beneath its directory (opened with [`Dir::open_trusted`]) by whoever runs
    /// the tool (root, for `/etc/chatmail-nocreate`).
    pub fn set_nocreate(&self, on: bool) -> Result<(), Error> {
        let path = &self.nocreate;
        let there = std::fs::symlink_metadata(path).is_ok();
        if on == there {
            return Ok(());
        }
        let (parent, name) = split(path)?;
        let dir = Dir::open_trusted(parent).map_err(|e| Error::io(parent, e))?;
        let done = if on {
            dir.write_atomic(name, b"", Durability::Fsync, None)
        } else {
            remove_entry(&dir, name)
        };
        done.map_err(|e| Error::io(path, e))
    }

    // ---- trash ----

    /// The trash directory (made if needed) and a fresh name in it to move a mailbox to.
    pub fn trash(&self) -> Result<(Dir, OsString), Error> {
        let dir = self.made_subdir("trash")?;
        let name = crate::fs::temp_path(Path::new("account"));
        Ok((dir, name.into_os_string()))
    }

    /// Removes what interrupted deletions left in `trash/` (mailboxes already renamed away:
    /// removable at any time) and imports left in `tmp/` more than an hour ago (younger ones
    /// may belong to an import running right now). Links there are removed, not followed.
    pub fn clean_leftovers(&self) {
        let hour_ago = crate::wall_time::unix_seconds() - STALE_IMPORT_SECS;
        for (sub, old_only) in [("trash", false), ("tmp", true)] {
            let Ok(Some(dir)) = self.state_subdir(sub, false) else {
                continue;
            };
            for (name, _) in dir.entries().unwrap_or_default() {
                let old = dir
                    .stat(&name)
                    .ok()
                    .flatten()
                    .is_some_and(|m| m.mtime < hour_ago);
                if old || !old_only {
                    let _ = dir.remove_tree(&name);
                }
            }
        }
    }
}

/// `path`'s directory and file name.
fn split(path: &Path) -> Result<(&Path, &std::ffi::OsStr), Error> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::io(path, io::ErrorKind::InvalidInput.into()))?;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    Ok((parent.unwrap_or(Path::new(".")), name))
}

/// Removes a flag file (or an empty directory made by hand in its place; a link is removed
/// itself).
pub(super) fn remove_entry(dir: &Dir, name: impl AsRef<std::ffi::OsStr>) -> io::Result<()> {
    let name = name.as_ref();
    match dir.stat(name)? {
        Some(m) if m.kind == Kind::Dir => dir.remove_dir(name).map(drop),
        Some(_) => dir.remove_file(name).map(drop),
        None => Ok(()),
    }
}
