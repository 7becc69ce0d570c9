//! Directory handles: how the tools reach every file of the mailbox tree.
//!
//! `mailboxes_dir` belongs to the services' user (vmail), and anything running as vmail
//! (Dovecot for every user, filtermail, chatmail-metadata) could put a symbolic link, a hard
//! link, a FIFO or a socket at any path in it. A tool that followed such a link would act on
//! a file elsewhere with its own rights. So a [`Dir`] is an open directory, and every path
//! below it is reached one component at a time with `openat(2)` and friends, never through a
//! symbolic link:
//!
//! - directories are opened with `O_DIRECTORY | O_NOFOLLOW`: a link or a non-directory is
//!   an error, never entered;
//! - a file is looked at with `fstatat(AT_SYMLINK_NOFOLLOW)` first and opened only if it is
//!   a regular file (`O_NOFOLLOW | O_NONBLOCK`, so a FIFO swapped in meanwhile cannot block
//!   the open), then checked again on the open descriptor;
//! - what is read for its content ([`Dir::read_file`]) must also have exactly one link, so a
//!   hard link to a file outside the tree (say `/etc/shadow`) is refused, not copied;
//! - writes create a new file (`O_CREAT | O_EXCL`) and `renameat` it over the name, which
//!   replaces a link instead of writing through it; removal is `unlinkat`, which removes a
//!   link itself; a tree is removed entry by entry beneath its handle.
//!
//! Names given to these methods are single path components; anything else is refused.
//! [`Dir::open_trusted`] opens a configured path (`mailboxes_dir`, a report's directory),
//! following a symbolic link only where nobody but root or this user could have made it.
//! The services, which run as vmail themselves, gain nothing by following vmail's links, and
//! keep their path-based reads ([`crate::User`]).

use std::ffi::{OsStr, OsString};
use std::io::{self, ErrorKind};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

mod changes;
mod files;
#[cfg(test)]
mod tests;

/// Deepest directory nesting [`Dir::remove_tree`] descends into (a Maildir++ tree is two or
/// three levels deep; a deeper one is refused rather than costing a descriptor per level).
pub const MAX_TREE_DEPTH: usize = 64;

/// Symbolic links [`Dir::open_trusted`] follows at most (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// What kind of file an entry is (from `d_type` or `lstat`, never through a link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A FIFO.
    Fifo,
    /// A unix socket.
    Socket,
    /// A character or block device.
    Device,
    /// The file system did not say.
    Unknown,
}

impl Kind {
    fn of(file_type: FileType) -> Kind {
        match file_type {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            FileType::Fifo => Kind::Fifo,
            FileType::Socket => Kind::Socket,
            FileType::CharacterDevice | FileType::BlockDevice => Kind::Device,
            FileType::Unknown => Kind::Unknown,
        }
    }

    /// How an error message names it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "a regular file",
            Kind::Dir => "a directory",
            Kind::Symlink => "a symbolic link",
            Kind::Fifo => "a FIFO",
            Kind::Socket => "a socket",
            Kind::Device => "a device node",
            Kind::Unknown => "of unknown type",
        }
    }
}

/// What `stat` says about one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Its kind.
    pub kind: Kind,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard links.
    pub nlink: u64,
    /// Device and inode: the file's identity.
    pub dev: u64,
    /// See `dev`.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds.
    pub mtime: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: i64,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
}

impl Meta {
    fn of(st: &rustix::fs::Stat) -> Meta {
        #[allow(
            clippy::useless_conversion,
            clippy::unnecessary_fallible_conversions,
            reason = "the field types of `struct stat` differ between architectures"
        )]
        Meta {
            kind: Kind::of(FileType::from_raw_mode(st.st_mode)),
            uid: st.st_uid,
            gid: st.st_gid,
            nlink: u64::from(st.st_nlink),
            dev: u64::from(st.st_dev),
            ino: u64::from(st.st_ino),
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: i64::from(st.st_mtime),
            mtime_nsec: i64::try_from(st.st_mtime_nsec).unwrap_or(0),
            mode: st.st_mode & 0o7777,
        }
    }

    /// Whether `other` is the very same file.
    pub fn same_file(&self, other: &Meta) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }
}

/// An error for something that is there but must not be used: the text says why.
pub fn refusal(why: impl Into<String>) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, why.into())
}

/// Whether an error means "not there" (also when a path component is not a directory).
pub fn is_absent(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
}

fn check_name(name: &OsStr) -> io::Result<&OsStr> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            format!("{name:?} is not a single file name"),
        ));
    }
    Ok(name)
}

/// The error of an open that met a symbolic link or a non-directory, said plainly.
fn open_error(e: rustix::io::Errno, wanted: &str) -> io::Error {
    match e {
        rustix::io::Errno::LOOP => refusal(format!("a symbolic link, not {wanted}; not followed")),
        rustix::io::Errno::NOTDIR => refusal(format!("not {wanted}")),
        rustix::io::Errno::NXIO => refusal(format!("a socket or device, not {wanted}")),
        e => e.into(),
    }
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NONBLOCK);

const FILE_FLAGS: OFlags = OFlags::NOFOLLOW
    .union(OFlags::CLOEXEC)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY);

/// What [`Dir::meta`] says when `fstat` of an open descriptor fails (it does not): no
/// identity matches it, and it belongs to nobody that could be switched from.
const UNKNOWN: Meta = Meta {
    kind: Kind::Unknown,
    uid: u32::MAX,
    gid: u32::MAX,
    nlink: 0,
    dev: u64::MAX,
    ino: u64::MAX,
    size: 0,
    mtime: 0,
    mtime_nsec: 0,
    mode: 0,
};

/// An open directory; the path is only for messages.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    /// `fstat` of the descriptor, taken when first asked (a scan opens many directories and
    /// needs no `stat` of them).
    meta: OnceLock<Meta>,
    /// Whether the descriptor's read position was used: a second listing opens `.` anew.
    listed: AtomicBool,
}

impl Dir {
    /// A handle whose `stat` is taken now (a tree's root: its owner is who the tools
    /// switch to, so a failing `fstat` is an error here).
    fn from_fd(fd: OwnedFd, path: PathBuf) -> io::Result<Dir> {
        let meta = Meta::of(&rustix::fs::fstat(&fd)?);
        Ok(Dir {
            fd,
            path,
            meta: OnceLock::from(meta),
            listed: AtomicBool::new(false),
        })
    }

    fn lazy(fd: OwnedFd, path: PathBuf) -> Dir {
        Dir {
            fd,
            path,
            meta: OnceLock::new(),
            listed: AtomicBool::new(false),
        }
    }

    /// Opens `path` as the services do: every component followed. Only for processes that
    /// gain nothing by not following (they run as the tree's owner).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::open(path, DIR_FLAGS.difference(OFlags::NOFOLLOW), Mode::empty())
            .map_err(|e| open_error(e, "a directory"))?;
        Dir::from_fd(fd, path.to_path_buf())
    }

    /// Opens a configured directory from `/`, one component at a time. A symbolic link is
    /// followed only inside a directory that belongs to root or to this process's user and
    /// that nobody else may write to; anywhere else (say `/home/vmail/mail` made a link by
    /// vmail) it is refused, so the directory opened is the one its owner set up.
    pub fn open_trusted(path: &Path) -> io::Result<Dir> {
        let absolute = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()?.join(path)
        };
        let root = || rustix::fs::open("/", DIR_FLAGS, Mode::empty());
        let mut fd = root()?;
        let mut todo: std::collections::VecDeque<OsString> = components(&absolute);
        let mut links = 0;
        while let Some(name) = todo.pop_front() {
            let meta = Meta::of(&rustix::fs::statat(&fd, &*name, AtFlags::SYMLINK_NOFOLLOW)?);
            if meta.kind != Kind::Symlink {
                fd = rustix::fs::openat(&fd, &*name, DIR_FLAGS, Mode::empty())
                    .map_err(|e| open_error(e, "a directory"))?;
                continue;
            }
            links += 1;
            let parent = Meta::of(&rustix::fs::fstat(&fd)?);
            if links > MAX_LINKS || !trusted(&parent) {
                return Err(refusal(format!(
                    "{}: the symbolic link {name:?} is in a directory that others may change; not followed",
                    path.display()
                )));
            }
            let target = rustix::fs::readlinkat(&fd, &*name, Vec::new())?;
            let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
            if target.is_absolute() {
                fd = root()?;
            }
            for (i, c) in components(&target).into_iter().enumerate() {
                todo.insert(i, c);
            }
        }
        Dir::from_fd(fd, path.to_path_buf())
    }

    /// The path it was opened as (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path/name`, for messages.
    pub fn join(&self, name: impl AsRef<OsStr>) -> PathBuf {
        self.path.join(name.as_ref())
    }

    /// What `fstat` says of it (taken once).
    pub fn meta(&self) -> &Meta {
        self.meta
            .get_or_init(|| rustix::fs::fstat(&self.fd).map_or(UNKNOWN, |st| Meta::of(&st)))
    }

    /// `lstat` of an entry; `None` if there is none.
    pub fn stat(&self, name: impl AsRef<OsStr>) -> io::Result<Option<Meta>> {
        let name = check_name(name.as_ref())?;
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Meta::of(&st))),
            Err(e) => {
                let e = io::Error::from(e);
                if is_absent(&e) { Ok(None) } else { Err(e) }
            }
        }
    }

    /// Whether an entry of any kind exists (a marker's presence is what counts).
    pub fn exists(&self, name: impl AsRef<OsStr>) -> io::Result<bool> {
        Ok(self.stat(name)?.is_some())
    }

    /// Opens a subdirectory; a link or anything else is refused.
    pub fn open_dir(&self, name: impl AsRef<OsStr>) -> io::Result<Dir> {
        let name = check_name(name.as_ref())?;
        let fd =
            rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty()).map_err(|e| {
                match (e, self.stat(name)) {
                    (rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP, Ok(Some(m))) => {
                        refusal(format!("{}, not a directory; not followed", m.kind.name()))
                    }
                    (e, _) => open_error(e, "a directory"),
                }
            })?;
        Ok(Dir::lazy(fd, self.join(name)))
    }

    /// Opens a subdirectory, making it first if it is not there (`mode` 0700).
    pub fn open_or_create_dir(&self, name: impl AsRef<OsStr>) -> io::Result<Dir> {
        let name = check_name(name.as_ref())?;
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => self.open_dir(name),
            Err(e) => Err(e.into()),
        }
    }

    /// The entries (without `.` and `..`) and their kinds, in directory order. The first
    /// listing reads the handle itself; a later one (or one at the same time on another
    /// thread) opens `.` beneath it for a read position of its own.
    pub fn entries(&self) -> io::Result<Vec<(OsString, Kind)>> {
        if self.listed.swap(true, Ordering::AcqRel) {
            let again = rustix::fs::openat(&self.fd, ".", DIR_FLAGS, Mode::empty())?;
            return self.read_entries(&again);
        }
        self.read_entries(&self.fd)
    }

    fn read_entries(&self, fd: &OwnedFd) -> io::Result<Vec<(OsString, Kind)>> {
        let mut out = Vec::new();
        let mut buf: Vec<u8> = Vec::with_capacity(32 * 1024);
        let mut raw = rustix::fs::RawDir::new(fd, buf.spare_capacity_mut());
        while let Some(entry) = raw.next() {
            let entry = entry?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let mut kind = Kind::of(entry.file_type());
            if kind == Kind::Unknown {
                kind = self.stat(name)?.map_or(Kind::Unknown, |m| m.kind);
            }
            out.push((name.to_os_string(), kind));
        }
        Ok(out)
    }

    /// `fsync` of the directory: its entries' names become durable.
    pub fn sync(&self) -> io::Result<()> {
        rustix::fs::fsync(&self.fd)?;
        Ok(())
    }

    /// A second handle on the same directory (it shares the read position, so neither lists
    /// through the descriptor itself any more).
    pub fn try_clone(&self) -> io::Result<Dir> {
        self.listed.store(true, Ordering::Release);
        Ok(Dir {
            fd: self.fd.as_fd().try_clone_to_owned()?,
            path: self.path.clone(),
            meta: self.meta.clone(),
            listed: AtomicBool::new(true),
        })
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A path's components as names to walk (`..` kept, `.` and the root dropped).
fn components(path: &Path) -> std::collections::VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// Whether a link in directory `meta` can only have been made by root or by this user:
/// the directory belongs to one of them and no one else may write to it.
fn trusted(meta: &Meta) -> bool {
    let me = rustix::process::geteuid().as_raw();
    (meta.uid == 0 || meta.uid == me) && meta.mode & 0o022 == 0
}
