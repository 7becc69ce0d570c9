//! Changes beneath a directory handle: new files renamed into place, links removed rather
//! than followed, trees removed entry by entry.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, ErrorKind, Write};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};

use super::{Dir, FILE_FLAGS, Kind, MAX_TREE_DEPTH, check_name, is_absent, refusal};
use crate::fs::Durability;

impl Dir {
    /// Writes `name` atomically: a new file `<name>.<random>.tmp` (`O_EXCL`: never an
    /// existing one), then `renameat` over the name, which replaces whatever was there
    /// (a link included) without writing through it. `mode` is set explicitly if given.
    pub fn write_atomic(
        &self,
        name: impl AsRef<OsStr>,
        bytes: &[u8],
        durability: Durability,
        mode: Option<u32>,
    ) -> io::Result<()> {
        let name = check_name(name.as_ref())?;
        let tmp = crate::fs::temp_path(Path::new(name));
        let result = (|| -> io::Result<()> {
            let mut file = self.create_new(tmp.as_os_str(), mode)?;
            file.write_all(bytes)?;
            if durability == Durability::Fsync {
                file.sync_all()?;
            }
            drop(file);
            rustix::fs::renameat(&self.fd, &tmp, &self.fd, name)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&self.fd, &tmp, AtFlags::empty());
        }
        result?;
        if durability == Durability::Fsync {
            self.sync()?;
        }
        Ok(())
    }

    /// Creates a new file for writing; fails if the name exists in any form.
    pub fn create_new(&self, name: impl AsRef<OsStr>, mode: Option<u32>) -> io::Result<File> {
        let name = check_name(name.as_ref())?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | FILE_FLAGS;
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            flags,
            Mode::from_raw_mode(mode.unwrap_or(0o666)),
        )?;
        if let Some(mode) = mode {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
        }
        Ok(File::from(fd))
    }

    /// Removes a non-directory entry (a link itself, never its target); `false` if there
    /// was none.
    pub fn remove_file(&self, name: impl AsRef<OsStr>) -> io::Result<bool> {
        self.unlink(name.as_ref(), AtFlags::empty())
    }

    /// Removes an empty directory; `false` if there was none.
    pub fn remove_dir(&self, name: impl AsRef<OsStr>) -> io::Result<bool> {
        self.unlink(name.as_ref(), AtFlags::REMOVEDIR)
    }

    fn unlink(&self, name: &OsStr, flags: AtFlags) -> io::Result<bool> {
        let name = check_name(name)?;
        match rustix::fs::unlinkat(&self.fd, name, flags) {
            Ok(()) => Ok(true),
            Err(e) => {
                let e = io::Error::from(e);
                if is_absent(&e) { Ok(false) } else { Err(e) }
            }
        }
    }

    /// `renameat(self/name, to/to_name)`; with `replace` false an existing `to_name` is an
    /// error (`RENAME_NOREPLACE`, `AlreadyExists`).
    pub fn rename(
        &self,
        name: impl AsRef<OsStr>,
        to: &Dir,
        to_name: impl AsRef<OsStr>,
        replace: bool,
    ) -> io::Result<()> {
        let (name, to_name) = (check_name(name.as_ref())?, check_name(to_name.as_ref())?);
        let flags = if replace {
            RenameFlags::empty()
        } else {
            RenameFlags::NOREPLACE
        };
        rustix::fs::renameat_with(&self.fd, name, &to.fd, to_name, flags)?;
        Ok(())
    }

    /// Removes `name` and everything below it, beneath this handle: links are removed, never
    /// followed. A missing `name` is not an error.
    pub fn remove_tree(&self, name: impl AsRef<OsStr>) -> io::Result<()> {
        let name = check_name(name.as_ref())?;
        match self.stat(name)? {
            None => Ok(()),
            Some(m) if m.kind != Kind::Dir => self.remove_file(name).map(drop),
            Some(_) => self.remove_subtree(name, 0),
        }
    }

    fn remove_subtree(&self, name: &OsStr, depth: usize) -> io::Result<()> {
        if depth >= MAX_TREE_DEPTH {
            return Err(refusal(format!(
                "{}: nested deeper than {MAX_TREE_DEPTH} levels",
                self.join(name).display()
            )));
        }
        let dir = match self.open_dir(name) {
            Ok(dir) => dir,
            Err(e) if is_absent(&e) => return Ok(()),
            // Replaced by a link or a file meanwhile: remove that entry itself.
            Err(e) if e.kind() == ErrorKind::InvalidData => {
                return self.remove_file(name).map(drop);
            }
            Err(e) => return Err(e),
        };
        for (entry, kind) in dir.entries()? {
            if kind == Kind::Dir {
                dir.remove_subtree(&entry, depth + 1)?;
            } else {
                dir.remove_file(&entry)?;
            }
        }
        self.remove_dir(name).map(drop)
    }
}
