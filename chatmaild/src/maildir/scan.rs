//! The mailbox scan shared by `chatmail-expire`, `chatmail-fsreport` and `chatmail-admin`
//! (SPEC §7.2), so every tool sees a mailbox tree the same way.
//!
//! Every directory is opened beneath its parent's handle ([`crate::dir::Dir`]), never
//! through a link, and each message keeps its mailbox's handle and its folder's names
//! ([`Location`]), so a later removal (`chatmail-expire`) opens the same folder again the
//! same way ([`Folders`]) and unlinks the entry that was scanned. Folder handles are not kept
//! open: a mailbox may have thousands of folders, and the descriptors are the process's. One `readdir` per
//! directory; the entry type comes from `readdir` itself (`d_type`), so directories are
//! never `stat`ed. Only messages (for mtime and size), the top-level `password` (for the
//! last login) and, when asked, other files (for their sizes) are `stat`ed, relative to
//! their directory and without following links.
//!
//! Differences to the reference, all required by SPEC §7 Note:
//! - symlinks are never followed, neither into directories nor to files: a symlink, a
//!   FIFO, a socket or a device is neither a message nor an extra file, and is reported
//!   in [`MailboxStat::warnings`];
//! - only the `password` directly in the mailbox sets the last login (or, for an account
//!   blocked by `chatmail-admin`, the same file moved to `blocked`);
//! - entries that vanish while we look (Dovecot is live) are skipped silently, while
//!   entries that cannot be read are reported in [`MailboxStat::problems`] and skipped.

use std::ffi::{OsStr, OsString};
use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::Arc;

use crate::dir::{Dir, Kind};
use crate::error::Error;
use crate::user::{BLOCKED, PASSWORD};
use crate::wall_time::float_time;

/// Folders nested deeper than this are reported and skipped (Dovecot's Maildir++ layout
/// is flat: `.Folder/cur`, so real mailboxes are two or three levels deep).
const MAX_DEPTH: usize = 32;

/// The three maildir folders whose files are messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MaildirSub {
    /// `cur/`: messages a client has seen.
    Cur,
    /// `new/`: delivered, not yet seen.
    New,
    /// `tmp/`: being delivered.
    Tmp,
}

impl MaildirSub {
    /// The folder for a directory name, if it is one of `cur`, `new`, `tmp`.
    pub fn from_name(name: &OsStr) -> Option<MaildirSub> {
        match name.as_encoded_bytes() {
            b"cur" => Some(MaildirSub::Cur),
            b"new" => Some(MaildirSub::New),
            b"tmp" => Some(MaildirSub::Tmp),
            _ => None,
        }
    }

    /// The directory name.
    pub fn name(self) -> &'static str {
        match self {
            MaildirSub::Cur => "cur",
            MaildirSub::New => "new",
            MaildirSub::Tmp => "tmp",
        }
    }
}

/// One message file.
#[derive(Debug, Clone)]
pub struct Message {
    /// Full path (mailbox directory joined with the relative path), for messages.
    pub path: PathBuf,
    /// Where it is, for removal.
    pub at: Location,
    /// Modification time, seconds part.
    pub mtime_secs: i64,
    /// Modification time, nanoseconds part.
    pub mtime_nsec: i64,
    /// Size on disk in bytes.
    pub size: u64,
    /// The maildir folder the file is directly in.
    pub sub: MaildirSub,
    /// Whether that folder is directly in the mailbox (`<mailbox>/cur`), not in a
    /// subfolder such as `.DeltaChat/cur`; only those count for the quota pass.
    pub top_level: bool,
}

impl Message {
    /// The mtime as the float Python's `st_mtime` gives.
    pub fn mtime(&self) -> f64 {
        float_time(self.mtime_secs, self.mtime_nsec)
    }

    /// The file name (last path component).
    pub fn file_name(&self) -> &OsStr {
        self.path.file_name().unwrap_or_default()
    }
}

/// Where a message is: its mailbox's handle and the names of its folder below it
/// (`["cur"]`, `[".DeltaChat", "cur"]`).
#[derive(Debug, Clone)]
pub struct Location {
    /// The mailbox.
    pub mailbox: Arc<Dir>,
    /// The folder's names below it.
    pub folder: Arc<[OsString]>,
}

/// Opens message folders again for removals beneath their mailbox's handle, one at a time
/// (the last one stays open, as removals come folder by folder).
#[derive(Debug, Default)]
pub struct Folders {
    last: Option<(Location, Dir)>,
}

impl Folders {
    /// Unlinks `name` in the folder `at`; `false` if it was gone already. A folder that is
    /// a link now is refused, not entered.
    pub fn unlink(&mut self, at: &Location, name: &OsStr) -> std::io::Result<bool> {
        let same = |(l, _): &(Location, Dir)| {
            Arc::ptr_eq(&l.mailbox, &at.mailbox) && Arc::ptr_eq(&l.folder, &at.folder)
        };
        if !self.last.as_ref().is_some_and(same) {
            self.last = None;
            let mut dir: Option<Dir> = None;
            for name in at.folder.iter() {
                let parent = dir.as_ref().unwrap_or(&at.mailbox);
                dir = Some(parent.open_dir(name)?);
            }
            let dir = match dir {
                Some(dir) => dir,
                None => at.mailbox.try_clone()?,
            };
            self.last = Some((at.clone(), dir));
        }
        match &self.last {
            Some((_, dir)) => dir.remove_file(name),
            None => Ok(false),
        }
    }
}

/// What to collect besides messages and the last login.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScanOptions {
    /// `stat` every other file for its size (fsreport needs it, expire does not).
    pub extra_sizes: bool,
}

/// Everything the expiry and report decisions need about one mailbox.
#[derive(Debug, Clone, Default)]
pub struct MailboxStat {
    /// The mailbox directory.
    pub dir: PathBuf,
    /// Its handle (`None` only in a default value).
    pub handle: Option<Arc<Dir>>,
    /// mtime of the top-level `password` file (seconds, nanoseconds), if present; for an
    /// account blocked by `chatmail-admin`, of `blocked` (the same file, renamed).
    pub last_login: Option<(i64, i64)>,
    /// All messages, in directory listing order (depth first).
    pub messages: Vec<Message>,
    /// Number of other regular files.
    pub extra_files: u64,
    /// Total size of other regular files (0 unless [`ScanOptions::extra_sizes`]).
    pub extra_bytes: u64,
    /// Entries that could not be read, as `path: error` texts.
    pub problems: Vec<String>,
    /// Entries skipped because they are neither regular files nor directories (links,
    /// FIFOs, sockets, devices), as `path: kind` texts.
    pub warnings: Vec<String>,
}

impl MailboxStat {
    /// The last login as a float, like the reference's `last_login`.
    pub fn last_login_f64(&self) -> Option<f64> {
        self.last_login.map(|(s, n)| float_time(s, n))
    }

    /// The mailbox name (the address).
    pub fn name(&self) -> &OsStr {
        self.dir.file_name().unwrap_or_default()
    }
}

/// The outcome of scanning one mailbox directory.
#[derive(Debug)]
pub enum Scan {
    /// The directory was read (possibly with problems in subfolders).
    Done(MailboxStat),
    /// The directory disappeared before it could be read.
    Vanished,
    /// The directory itself could not be read; nothing is known about the mailbox.
    Unreadable(std::io::Error),
}

/// Scans the mailbox `name` below `root` (SPEC §7.2).
pub fn scan_mailbox(root: &Dir, name: &OsStr, options: ScanOptions) -> Scan {
    match root.open_dir(name) {
        Ok(dir) => scan_dir(dir, options),
        Err(e) if vanished(&e) => Scan::Vanished,
        Err(e) => Scan::Unreadable(e),
    }
}

/// Scans an open mailbox directory (SPEC §7.2).
pub fn scan_dir(dir: Dir, options: ScanOptions) -> Scan {
    let entries = match dir.entries() {
        Ok(entries) => entries,
        Err(e) if vanished(&e) => return Scan::Vanished,
        Err(e) => return Scan::Unreadable(e),
    };
    let dir = Arc::new(dir);
    let mut stat = MailboxStat {
        dir: dir.path().to_path_buf(),
        handle: Some(Arc::clone(&dir)),
        ..MailboxStat::default()
    };
    let mut walker = Walker {
        stat: &mut stat,
        options,
        blocked_login: None,
        mailbox: Arc::clone(&dir),
    };
    walker.entries(&dir, entries, &[]);
    let blocked_login = walker.blocked_login;
    if stat.last_login.is_none() {
        stat.last_login = blocked_login;
    }
    Scan::Done(stat)
}

struct Walker<'a> {
    stat: &'a mut MailboxStat,
    options: ScanOptions,
    /// The mtime of a non-empty top-level `blocked` (a blocked account's password).
    blocked_login: Option<(i64, i64)>,
    /// The mailbox's handle, for the messages' [`Location`].
    mailbox: Arc<Dir>,
}

impl Walker<'_> {
    fn problem(&mut self, path: &std::path::Path, e: &std::io::Error) {
        self.stat.problems.push(format!("{}: {e}", path.display()));
    }

    fn skipped(&mut self, dir: &Dir, name: &OsStr, kind: Kind) {
        self.stat.warnings.push(format!(
            "{}: {}, not followed",
            dir.join(name).display(),
            kind.name()
        ));
    }

    /// `names`: the folder's names below the mailbox (its depth is their number).
    fn folder(&mut self, parent: &Dir, names: &[OsString]) {
        let Some(name) = names.last() else { return };
        let path = parent.join(name);
        if names.len() > MAX_DEPTH {
            self.stat.problems.push(format!(
                "{}: folders nested too deep, skipped",
                path.display()
            ));
            return;
        }
        match parent.open_dir(name).and_then(|d| Ok((d.entries()?, d))) {
            Ok((entries, dir)) => self.entries(&dir, entries, names),
            Err(e) if vanished(&e) => {}
            Err(e) => self.problem(&path, &e),
        }
    }

    /// The entries of `dir`, the folder `names` below the mailbox (none: the mailbox).
    fn entries(&mut self, dir: &Dir, entries: Vec<(OsString, Kind)>, names: &[OsString]) {
        let top_level = names.is_empty();
        for (name, kind) in entries {
            let below = || [names, std::slice::from_ref(&name)].concat();
            match kind {
                Kind::Dir => match MaildirSub::from_name(&name) {
                    Some(sub) => self.messages(dir, &below(), sub, top_level),
                    None => self.folder(dir, &below()),
                },
                Kind::File => self.extra_file(dir, &name, top_level),
                other => self.skipped(dir, &name, other),
            }
        }
    }

    fn extra_file(&mut self, dir: &Dir, name: &OsStr, top_level: bool) {
        let is_password = top_level && name == PASSWORD;
        let is_blocked = top_level && name == BLOCKED;
        if !is_password && !is_blocked && !self.options.extra_sizes {
            self.stat.extra_files += 1;
            return;
        }
        match dir.stat(name) {
            Ok(Some(meta)) if meta.kind == Kind::File => {
                self.stat.extra_files += 1;
                self.stat.extra_bytes += meta.size;
                if is_password {
                    self.stat.last_login = Some((meta.mtime, meta.mtime_nsec));
                } else if is_blocked && meta.size > 0 {
                    self.blocked_login = Some((meta.mtime, meta.mtime_nsec));
                }
            }
            Ok(_) => {}
            Err(e) if vanished(&e) => {}
            Err(e) => self.problem(&dir.join(name), &e),
        }
    }

    fn messages(&mut self, parent: &Dir, names: &[OsString], sub: MaildirSub, top_level: bool) {
        let Some(name) = names.last() else { return };
        let folder = match parent.open_dir(name) {
            Ok(folder) => folder,
            Err(e) if vanished(&e) => return,
            Err(e) => return self.problem(&parent.join(name), &e),
        };
        let at = Location {
            mailbox: Arc::clone(&self.mailbox),
            folder: names.into(),
        };
        let entries = match folder.entries() {
            Ok(entries) => entries,
            Err(e) if vanished(&e) => return,
            Err(e) => return self.problem(folder.path(), &e),
        };
        for (name, kind) in entries {
            if kind != Kind::File {
                if kind != Kind::Dir {
                    self.skipped(&folder, &name, kind);
                }
                continue;
            }
            // `fstatat` relative to the open folder, not following links.
            match folder.stat(&name) {
                Ok(Some(meta)) if meta.kind == Kind::File => self.stat.messages.push(Message {
                    path: folder.join(&name),
                    at: at.clone(),
                    mtime_secs: meta.mtime,
                    mtime_nsec: meta.mtime_nsec,
                    size: meta.size,
                    sub,
                    top_level,
                }),
                Ok(_) => {}
                Err(e) if vanished(&e) => {}
                Err(e) => self.problem(&folder.join(&name), &e),
            }
        }
    }
}

/// Whether an error only means the entry is gone (removed by Dovecot or a user meanwhile).
pub fn vanished(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
}

/// Lists `mailboxes_dir` (its open handle): the first `maxnum` entries (Python slice
/// semantics, so a negative value drops entries from the end), then those whose name
/// contains `@`. Returns the mailbox names, and the paths of `@` entries that are not
/// directories (a stray file, a link: never mailboxes, since removing or scanning through
/// a link could reach outside `mailboxes_dir`), for reporting.
pub fn list_mailboxes(
    root: &Dir,
    maxnum: Option<i64>,
) -> Result<(Vec<OsString>, Vec<PathBuf>), Error> {
    let all = root.entries().map_err(|e| Error::io(root.path(), e))?;
    let keep = python_slice_len(all.len(), maxnum);
    let mut mailboxes = Vec::new();
    let mut skipped = Vec::new();
    for (name, kind) in all.into_iter().take(keep) {
        if !name.as_encoded_bytes().contains(&b'@') {
            continue;
        }
        if kind == Kind::Dir {
            mailboxes.push(name);
        } else {
            skipped.push(root.join(&name));
        }
    }
    Ok((mailboxes, skipped))
}

/// How many items `list[:maxnum]` keeps.
fn python_slice_len(len: usize, maxnum: Option<i64>) -> usize {
    match maxnum {
        None => len,
        Some(n) if n >= 0 => len.min(usize::try_from(n).unwrap_or(usize::MAX)),
        Some(n) => len.saturating_sub(usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX)),
    }
}

#[cfg(test)]
mod tests;
