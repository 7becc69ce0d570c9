//! The mailbox scan shared by `chatmail-expire`, `chatmail-fsreport` and `chatmail-admin`
//! (SPEC §7.2), so every tool sees a mailbox tree the same way.
//!
//! One `readdir` per directory; the entry type comes from `readdir` itself (`d_type`), so
//! directories are never `stat`ed. Only messages (for mtime and size), the top-level
//! `password` (for the last login) and, when asked, other files (for their sizes) are
//! `stat`ed, always relative to the directory and without following symlinks.
//!
//! Differences to the reference, all required by SPEC §7 Note:
//! - symlinks are never followed, neither into directories nor to files: a symlink is
//!   neither a message nor an extra file;
//! - only the `password` directly in the mailbox sets the last login;
//! - entries that vanish while we look (Dovecot is live) are skipped silently, while
//!   entries that cannot be read are reported in [`MailboxStat::problems`] and skipped.

use std::ffi::{OsStr, OsString};
use std::fs::{self, DirEntry, FileType};
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::clock::float_time;
use crate::error::Error;

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
    /// Full path (mailbox directory joined with the relative path).
    pub path: PathBuf,
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
    /// mtime of the top-level `password` file (seconds, nanoseconds), if present.
    pub last_login: Option<(i64, i64)>,
    /// All messages, in directory listing order (depth first).
    pub messages: Vec<Message>,
    /// Number of other regular files.
    pub extra_files: u64,
    /// Total size of other regular files (0 unless [`ScanOptions::extra_sizes`]).
    pub extra_bytes: u64,
    /// Entries that could not be read, as `path: error` texts.
    pub problems: Vec<String>,
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

/// Scans one mailbox directory (SPEC §7.2).
pub fn scan_mailbox(dir: &Path, options: ScanOptions) -> Scan {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if vanished(&e) => return Scan::Vanished,
        Err(e) => return Scan::Unreadable(e),
    };
    let mut stat = MailboxStat {
        dir: dir.to_path_buf(),
        ..MailboxStat::default()
    };
    let mut walker = Walker {
        stat: &mut stat,
        options,
    };
    walker.entries(dir, entries, 0);
    Scan::Done(stat)
}

struct Walker<'a> {
    stat: &'a mut MailboxStat,
    options: ScanOptions,
}

impl Walker<'_> {
    fn problem(&mut self, path: &Path, e: &std::io::Error) {
        self.stat.problems.push(format!("{}: {e}", path.display()));
    }

    fn folder(&mut self, dir: &Path, depth: usize) {
        if depth > MAX_DEPTH {
            self.stat.problems.push(format!(
                "{}: folders nested too deep, skipped",
                dir.display()
            ));
            return;
        }
        match fs::read_dir(dir) {
            Ok(entries) => self.entries(dir, entries, depth),
            Err(e) if vanished(&e) => {}
            Err(e) => self.problem(dir, &e),
        }
    }

    fn entries(&mut self, dir: &Path, entries: fs::ReadDir, depth: usize) {
        for entry in entries {
            let Some((entry, file_type)) = self.entry(dir, entry) else {
                continue;
            };
            let name = entry.file_name();
            if file_type.is_dir() {
                match MaildirSub::from_name(&name) {
                    Some(sub) => self.messages(&entry.path(), sub, depth == 0),
                    None => self.folder(&entry.path(), depth + 1),
                }
            } else if file_type.is_file() {
                self.extra_file(&entry, &name, depth == 0);
            }
            // Symlinks, sockets, fifos and devices are neither messages nor extra files.
        }
    }

    /// Unpacks a directory entry and its type (from `d_type`; `lstat` only on file
    /// systems that do not fill it in).
    fn entry(
        &mut self,
        dir: &Path,
        entry: std::io::Result<DirEntry>,
    ) -> Option<(DirEntry, FileType)> {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                if !vanished(&e) {
                    self.problem(dir, &e);
                }
                return None;
            }
        };
        match entry.file_type() {
            Ok(t) => Some((entry, t)),
            Err(e) => {
                if !vanished(&e) {
                    self.problem(&entry.path(), &e);
                }
                None
            }
        }
    }

    fn extra_file(&mut self, entry: &DirEntry, name: &OsStr, top_level: bool) {
        let is_password = top_level && name == "password";
        if !is_password && !self.options.extra_sizes {
            self.stat.extra_files += 1;
            return;
        }
        match entry.metadata() {
            Ok(meta) if meta.is_file() => {
                self.stat.extra_files += 1;
                self.stat.extra_bytes += meta.len();
                if is_password {
                    self.stat.last_login = Some((meta.mtime(), meta.mtime_nsec()));
                }
            }
            Ok(_) => {}
            Err(e) if vanished(&e) => {}
            Err(e) => self.problem(&entry.path(), &e),
        }
    }

    fn messages(&mut self, dir: &Path, sub: MaildirSub, top_level: bool) {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if vanished(&e) => return,
            Err(e) => return self.problem(dir, &e),
        };
        for entry in entries {
            let Some((entry, file_type)) = self.entry(dir, entry) else {
                continue;
            };
            if !file_type.is_file() {
                continue;
            }
            // `DirEntry::metadata` is an `fstatat` relative to the open directory that
            // does not follow symlinks.
            match entry.metadata() {
                Ok(meta) if meta.is_file() => self.stat.messages.push(Message {
                    path: entry.path(),
                    mtime_secs: meta.mtime(),
                    mtime_nsec: meta.mtime_nsec(),
                    size: meta.len(),
                    sub,
                    top_level,
                }),
                Ok(_) => {}
                Err(e) if vanished(&e) => {}
                Err(e) => self.problem(&entry.path(), &e),
            }
        }
    }
}

/// Whether an error only means the entry is gone (removed by Dovecot or a user meanwhile).
pub fn vanished(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
}

/// The mailboxes directory listing, cut like the reference's `listdir(...)[:maxnum]`.
#[derive(Debug)]
pub enum Listing {
    /// `mailboxes_dir` does not exist.
    Missing,
    /// The mailbox directories (names containing `@`), in listing order.
    Mailboxes(Vec<PathBuf>),
}

/// Lists `mailboxes_dir`: the first `maxnum` entries (Python slice semantics, so a
/// negative value drops entries from the end), then those whose name contains `@`.
///
/// Entries that are not directories (a stray file, a symlink) are never mailboxes: a
/// symlink could point anywhere, and removing or scanning through it could reach
/// outside `mailboxes_dir`. They are returned in the second list for reporting.
pub fn list_mailboxes(
    mailboxes_dir: &Path,
    maxnum: Option<i64>,
) -> Result<(Listing, Vec<PathBuf>), Error> {
    let entries = match fs::read_dir(mailboxes_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok((Listing::Missing, Vec::new())),
        Err(e) => return Err(Error::io(mailboxes_dir, e)),
    };
    let mut all: Vec<(OsString, Option<FileType>)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(mailboxes_dir, e))?;
        let file_type = entry.file_type().ok();
        all.push((entry.file_name(), file_type));
    }
    let keep = python_slice_len(all.len(), maxnum);
    let mut mailboxes = Vec::new();
    let mut skipped = Vec::new();
    for (name, file_type) in all.into_iter().take(keep) {
        if !name.as_encoded_bytes().contains(&b'@') {
            continue;
        }
        let path = mailboxes_dir.join(&name);
        if file_type.is_some_and(|t| t.is_dir()) {
            mailboxes.push(path);
        } else {
            skipped.push(path);
        }
    }
    Ok((Listing::Mailboxes(mailboxes), skipped))
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
mod tests {
    use super::*;

    #[test]
    fn slice_semantics() {
        assert_eq!(python_slice_len(5, None), 5);
        assert_eq!(python_slice_len(5, Some(0)), 0);
        assert_eq!(python_slice_len(5, Some(3)), 3);
        assert_eq!(python_slice_len(5, Some(9)), 5);
        assert_eq!(python_slice_len(5, Some(-2)), 3);
        assert_eq!(python_slice_len(5, Some(-9)), 0);
    }

    #[test]
    fn sub_names() {
        assert_eq!(
            MaildirSub::from_name(OsStr::new("cur")),
            Some(MaildirSub::Cur)
        );
        assert_eq!(
            MaildirSub::from_name(OsStr::new("new")),
            Some(MaildirSub::New)
        );
        assert_eq!(
            MaildirSub::from_name(OsStr::new("tmp")),
            Some(MaildirSub::Tmp)
        );
        assert_eq!(MaildirSub::from_name(OsStr::new("Cur")), None);
        assert_eq!(MaildirSub::Tmp.name(), "tmp");
    }
}
