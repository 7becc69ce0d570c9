//! Regular files beneath a directory handle: looked at before they are opened, opened
//! without following a link or waiting on a FIFO, checked again on the descriptor.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, ErrorKind, Read};

use rustix::fs::{Mode, OFlags};

use super::{Dir, FILE_FLAGS, Kind, Meta, check_name, open_error, refusal};

impl Dir {
    /// Opens a regular file (optionally creating it), refusing links, FIFOs, sockets and
    /// devices without opening them. Returns the file and its `fstat`.
    fn open_regular(&self, name: &OsStr, flags: OFlags) -> io::Result<Option<(File, Meta)>> {
        let name = check_name(name)?;
        let before = self.stat(name)?;
        if let Some(m) = before
            && m.kind != Kind::File
        {
            return Err(refusal(format!("{} is not a regular file", m.kind.name())));
        }
        if before.is_none() && !flags.contains(OFlags::CREATE) {
            return Ok(None);
        }
        let fd = match rustix::fs::openat(
            &self.fd,
            name,
            flags | FILE_FLAGS,
            Mode::from_raw_mode(0o666),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) if !flags.contains(OFlags::CREATE) => return Ok(None),
            Err(e) => return Err(open_error(e, "a regular file")),
        };
        let meta = Meta::of(&rustix::fs::fstat(&fd)?);
        if meta.kind != Kind::File || before.is_some_and(|b| !b.same_file(&meta)) {
            return Err(refusal("replaced while it was opened"));
        }
        Ok(Some((File::from(fd), meta)))
    }

    /// Reads a small regular file that has exactly one link, at most `max` bytes; `None` if
    /// it is not there. Anything else (a link, a FIFO, a hard link, a larger file) is an
    /// error: its content could be another file's.
    pub fn read_file(&self, name: impl AsRef<OsStr>, max: u64) -> io::Result<Option<Vec<u8>>> {
        let Some((file, meta)) = self.open_regular(name.as_ref(), OFlags::RDONLY)? else {
            return Ok(None);
        };
        if meta.nlink != 1 {
            return Err(refusal(format!(
                "has {} hard links; not read (it could be another file's)",
                meta.nlink
            )));
        }
        let mut bytes = Vec::new();
        file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > max {
            return Err(refusal(format!("larger than {max} bytes")));
        }
        Ok(Some(bytes))
    }

    /// Creates an empty regular file if there is none (a marker); an existing regular file
    /// is left as it is.
    pub fn touch(&self, name: impl AsRef<OsStr>) -> io::Result<()> {
        self.open_regular(name.as_ref(), OFlags::WRONLY | OFlags::CREATE)?;
        Ok(())
    }

    /// Opens (creating) a lock file for `flock`: a regular file only.
    /// A hard-linked lock file is refused: it would be shared with whatever else it is.
    pub fn open_lock(&self, name: impl AsRef<OsStr>) -> io::Result<File> {
        self.open_existing_or(name.as_ref(), OFlags::CREATE)?
            .ok_or_else(|| io::Error::from(ErrorKind::NotFound))
    }

    /// Opens an existing lock file without creating it; `None` if there is none.
    pub fn open_existing_lock(&self, name: impl AsRef<OsStr>) -> io::Result<Option<File>> {
        self.open_existing_or(name.as_ref(), OFlags::empty())
    }

    fn open_existing_or(&self, name: &OsStr, create: OFlags) -> io::Result<Option<File>> {
        let Some((file, meta)) = self.open_regular(name, OFlags::RDWR | create)? else {
            return Ok(None);
        };
        if meta.nlink != 1 {
            return Err(refusal(format!(
                "a lock file with {} hard links",
                meta.nlink
            )));
        }
        Ok(Some(file))
    }

    /// Sets the access and modification time of a regular file to `secs` (through its
    /// descriptor: a link is never followed).
    pub fn set_mtime(&self, name: impl AsRef<OsStr>, secs: i64) -> io::Result<()> {
        let (file, _) = self
            .open_regular(name.as_ref(), OFlags::RDONLY)?
            .ok_or_else(|| io::Error::from(ErrorKind::NotFound))?;
        let t = rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        };
        rustix::fs::futimens(
            &file,
            &rustix::fs::Timestamps {
                last_access: t,
                last_modification: t,
            },
        )?;
        Ok(())
    }
}
