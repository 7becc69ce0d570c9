//! Removing a whole mailbox so that a crash leaves it whole or gone, and finishing what
//! an interrupted run left.

use std::fs;
use std::path::{Path, PathBuf};

/// Name prefix of a mailbox directory on its way out (`.expiring.<random>.tmp` in
/// `mailboxes_dir`). It has no `@`, so no service takes it for an account.
pub const REMOVING_PREFIX: &str = ".expiring.";

/// Removes a mailbox so that a crash at any point leaves it either whole under its name or
/// gone from every service's view: it is renamed away first (atomic within
/// `mailboxes_dir`) and deleted afterwards. Deleting it in place would let a crash leave
/// messages without a password, which the next login would take for a new account and
/// hand to whoever logs in, and which later runs keep as "not empty".
pub(crate) fn remove_mailbox(dir: &Path) -> std::io::Result<()> {
    let trash =
        chatmaild::fs::temp_path(&dir.with_file_name(REMOVING_PREFIX.trim_end_matches('.')));
    fs::rename(dir, &trash)?;
    fs::remove_dir_all(&trash)
}

/// Deletes what an interrupted run left of removed mailboxes ([`REMOVING_PREFIX`]
/// directories); returns their paths, for the log. Symbolic links are not followed.
pub fn finish_interrupted_removals(mailboxes_dir: &Path) -> Vec<(PathBuf, Option<std::io::Error>)> {
    let Ok(entries) = fs::read_dir(mailboxes_dir) else {
        return Vec::new();
    };
    let mut done = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(REMOVING_PREFIX)
            && name.ends_with(".tmp")
            && entry.file_type().is_ok_and(|t| t.is_dir())
        {
            let path = entry.path();
            let result = fs::remove_dir_all(&path).err();
            done.push((path, result));
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mailbox_is_renamed_away_before_it_is_deleted() {
        let root = tempfile::tempdir().unwrap();
        let vmail = root.path().join("vmail");
        let mbox = vmail.join("user@example.org");
        fs::create_dir_all(mbox.join("cur")).unwrap();
        fs::write(mbox.join("password"), "x").unwrap();
        fs::write(mbox.join("cur/1.m,S=1"), "m").unwrap();
        remove_mailbox(&mbox).unwrap();
        assert_eq!(fs::read_dir(&vmail).unwrap().count(), 0);
    }

    #[test]
    fn leftovers_of_an_interrupted_run_are_finished_and_nothing_else() {
        let root = tempfile::tempdir().unwrap();
        let vmail = root.path().join("vmail");
        let outside = root.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("keep"), "k").unwrap();
        let leftover = vmail.join(".expiring.0123456789abcdef.tmp");
        fs::create_dir_all(leftover.join("cur")).unwrap();
        fs::write(leftover.join("cur/1.m,S=1"), "m").unwrap();
        std::os::unix::fs::symlink(&outside, leftover.join("cur/link")).unwrap();
        std::os::unix::fs::symlink(&outside, vmail.join(".expiring.1.tmp")).unwrap();
        fs::create_dir_all(vmail.join("user@example.org")).unwrap();
        fs::create_dir_all(vmail.join(".expiring.notmp")).unwrap();
        let done = finish_interrupted_removals(&vmail);
        assert_eq!(done.len(), 1);
        assert!(done[0].1.is_none());
        assert!(!leftover.exists());
        assert!(outside.join("keep").exists(), "links are not followed");
        assert!(
            vmail.join(".expiring.1.tmp").exists(),
            "a symlink is not ours"
        );
        assert!(vmail.join("user@example.org").exists());
        assert!(vmail.join(".expiring.notmp").exists());
    }
}
