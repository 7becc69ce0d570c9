//! Builders for synthetic relay trees in temp dirs.
#![allow(
    dead_code,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: failing loudly is the point"
)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const DAY: f64 = 86_400.0;

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

pub fn set_mtime(path: &Path, t: f64) {
    let when = UNIX_EPOCH + Duration::from_secs_f64(t.max(0.0));
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_times(fs::FileTimes::new().set_accessed(when).set_modified(when))
        .unwrap();
}

/// Writes `size` bytes at `path` (creating parents) with mtime `t`.
pub fn write_file(path: &Path, size: usize, t: f64) -> PathBuf {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, vec![b'x'; size]).unwrap();
    set_mtime(path, t);
    path.to_path_buf()
}

/// A Dovecot maildir file name delivered at `time` with quota size `size`.
pub fn dovecot_name(time: u64, size: u64, seq: u32) -> String {
    format!(
        "{time}.M{seq}P4242.relay,S={size},W={}:2,S",
        size + size / 40
    )
}

pub struct Relay {
    pub dir: tempfile::TempDir,
    pub ini: PathBuf,
    pub mailboxes: PathBuf,
}

impl Relay {
    pub fn new() -> Relay {
        Relay::with_params("")
    }

    pub fn with_params(extra: &str) -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let mailboxes = dir.path().join("mail");
        fs::create_dir(&mailboxes).unwrap();
        let ini = dir.path().join("chatmail.ini");
        fs::write(
            &ini,
            format!(
                "[params]\nmail_domain = example.org\nmailboxes_dir = {}\n{extra}",
                mailboxes.display()
            ),
        )
        .unwrap();
        Relay {
            dir,
            ini,
            mailboxes,
        }
    }

    /// A mailbox directory without password.
    pub fn mailbox(&self, name: &str) -> PathBuf {
        let p = self.mailboxes.join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }

    /// A mailbox with a password whose mtime is `login` (epoch seconds).
    pub fn account_at(&self, name: &str, login: f64) -> PathBuf {
        let p = self.mailbox(name);
        write_file(&p.join("password"), 20, login);
        p
    }

    /// A mailbox whose last login was `days` days ago.
    pub fn account(&self, name: &str, days: f64) -> PathBuf {
        self.account_at(name, now() - days * DAY)
    }
}

/// Every entry under `dir` (not following symlinks) with its size and mtime.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, i64, bool)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            out.insert(e.path(), (m.len(), m.mtime(), m.is_dir()));
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

pub fn run(bin: &str, args: &[&std::ffi::OsStr]) -> Output {
    Command::new(bin).args(args).output().unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
