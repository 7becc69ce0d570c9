//! Removing a whole mailbox (an inactive account, SPEC §7.3 step 2) so that a crash leaves
//! it whole or gone, finishing what an interrupted run left, and removing a directory
//! without a password (step 3: an empty one, or what refused first logins left).
//!
//! All beneath the handle of `mailboxes_dir`: a mailbox is renamed within it and removed
//! entry by entry without following a link ([`chatmaild::dir::Dir::remove_tree`]).

use std::ffi::{OsStr, OsString};
use std::fs::TryLockError;
use std::io;
use std::path::{Path, PathBuf};

use chatmaild::dir::{Dir, Kind};
use chatmaild::maildir::scan::MailboxStat;
use chatmaild::user::PASSWORD_LOCK;

use crate::expire::{Outcome, Policy, now_secs};

/// Name prefix of a mailbox directory on its way out (`.expiring.<random>.tmp` in
/// `mailboxes_dir`). It has no `@`, so no service takes it for an account.
pub const REMOVING_PREFIX: &str = ".expiring.";

/// A fresh `.expiring.<random>.tmp` name.
fn removing_name() -> OsString {
    chatmaild::fs::temp_path(Path::new(REMOVING_PREFIX.trim_end_matches('.'))).into_os_string()
}

/// No password: an empty directory goes (a half-created account), and so does one that
/// holds only what a refused or interrupted first login leaves (lock and temporary files;
/// [`chatmaild::mailbox::Mailbox::is_leftover`]), unless a login holds its lock right now.
pub(crate) fn remove_if_empty(policy: &Policy, root: &Dir, stat: &MailboxStat, out: &mut Outcome) {
    if policy.dry_run {
        return;
    }
    let name = stat.name();
    if root.remove_dir(name).unwrap_or(false) {
        out.removed_mailboxes += 1;
        return;
    }
    match remove_leftover(root, name) {
        Ok(true) => {
            if policy.verbose {
                out.line(format_args!(
                    "removing {} (no password, only lock or temporary files)",
                    stat.dir.display()
                ));
            }
            out.removed_mailboxes += 1;
        }
        Ok(false) => out.line(format_args!(
            "Skipped deleting {}, doesn't have last_login but isn't empty",
            stat.dir.display()
        )),
        Err(e) => out.failure(&stat.dir, &e),
    }
}

/// An inactive account: tombstoned, then removed as a whole.
pub(crate) fn remove_inactive(policy: &Policy, root: &Dir, stat: &MailboxStat, out: &mut Outcome) {
    let dir = stat.dir.as_path();
    let name = stat.name();
    if policy.verbose {
        out.line(format_args!("removing {}", dir.display()));
    }
    if let Some(registry) = &policy.tombstones
        && let Err(e) = registry.write_tombstone(&stat.name().to_string_lossy(), now_secs(policy))
    {
        // Never free an address without its tombstone: keep the mailbox for the next run.
        out.failures += 1;
        out.line(format_args!("not removing {}: {e}", dir.display()));
        return;
    }
    // One rename takes the account away at once (a crash while the tree is removed
    // leaves no half account): into the state directory's trash, or where that cannot be
    // done to `.expiring.<random>.tmp` beside it.
    let gone = policy
        .tombstones
        .as_ref()
        .and_then(|r| r.trash().ok())
        .filter(|(trash, tmp)| root.rename(name, trash, tmp, false).is_ok());
    if !policy.dry_run
        && let Err(e) = match &gone {
            Some((trash, tmp)) => trash.remove_tree(tmp),
            None => remove_mailbox(root, name),
        }
        && !chatmaild::maildir::scan::vanished(&e)
    {
        out.failure(dir, &e);
        return;
    }
    out.removed_mailboxes += 1;
    out.removed_bytes += stat.messages.iter().map(|m| m.size).sum::<u64>();
}

/// Removes the mailbox `name` of `root` so that a crash at any point leaves it either whole
/// under its name or gone from every service's view: it is renamed away first (atomic
/// within `mailboxes_dir`) and deleted afterwards. Deleting it in place would let a crash
/// leave messages without a password, which the next login would take for a new account
/// and hand to whoever logs in, and which later runs keep as "not empty".
pub(crate) fn remove_mailbox(root: &Dir, name: &OsStr) -> io::Result<()> {
    let trash = removing_name();
    root.rename(name, root, &trash, false)?;
    root.remove_tree(&trash)
}

/// Removes the mailbox `name` if it holds only what a first login leaves before its
/// password exists ([`chatmaild::mailbox::is_leftover`]): refused logins (the creation
/// cap, a system limit, an invitation check) leave `<addr>/password.lock`, and nothing
/// else would ever remove it. Skipped (`false`) while someone holds that lock (a login
/// creating the account right now) and when anything else is in it. The check is repeated
/// under the lock, and the directory is renamed away only if it is still the one checked;
/// a login that waited for the lock meanwhile sees its lock file moved and takes a new one
/// ([`chatmaild::User::lock_password`]).
pub(crate) fn remove_leftover(root: &Dir, name: &OsStr) -> io::Result<bool> {
    let mailbox = root.open_dir(name)?;
    if !chatmaild::mailbox::is_leftover(&mailbox)? {
        return Ok(false);
    }
    let _lock = match mailbox.open_existing_lock(PASSWORD_LOCK)? {
        Some(file) => match file.try_lock() {
            Ok(()) => Some(file),
            Err(TryLockError::WouldBlock) => return Ok(false),
            Err(TryLockError::Error(e)) => return Err(e),
        },
        None => None,
    };
    let still_there = root
        .stat(name)?
        .is_some_and(|m| m.same_file(mailbox.meta()));
    if !still_there || !chatmaild::mailbox::is_leftover(&mailbox)? {
        return Ok(false);
    }
    remove_mailbox(root, name)?;
    Ok(true)
}

/// Deletes what an interrupted run left of removed mailboxes ([`REMOVING_PREFIX`]
/// directories); returns their paths, for the log. Links are not followed.
pub fn finish_interrupted_removals(root: &Dir) -> Vec<(PathBuf, Option<io::Error>)> {
    let mut done = Vec::new();
    for (name, kind) in root.entries().unwrap_or_default() {
        let text = name.to_string_lossy();
        if text.starts_with(REMOVING_PREFIX) && text.ends_with(".tmp") && kind == Kind::Dir {
            let result = root.remove_tree(&name).err();
            done.push((root.join(&name), result));
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn a_mailbox_is_renamed_away_before_it_is_deleted() {
        let root = tempfile::tempdir().unwrap();
        let vmail = root.path().join("vmail");
        let mbox = vmail.join("user@example.org");
        fs::create_dir_all(mbox.join("cur")).unwrap();
        fs::write(mbox.join("password"), "x").unwrap();
        fs::write(mbox.join("cur/1.m,S=1"), "m").unwrap();
        let dir = Dir::open(&vmail).unwrap();
        remove_mailbox(&dir, OsStr::new("user@example.org")).unwrap();
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
        let done = finish_interrupted_removals(&Dir::open(&vmail).unwrap());
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

    #[test]
    fn a_refused_logins_leftover_goes_unless_locked_or_holding_more() {
        let root = tempfile::tempdir().unwrap();
        let vmail = root.path().join("vmail");
        let name = |n: &str| OsString::from(format!("{n}@example.org"));
        for n in ["lockonly", "withtmp", "busy", "withmail", "withlink"] {
            fs::create_dir_all(vmail.join(name(n))).unwrap();
            fs::write(vmail.join(name(n)).join("password.lock"), "").unwrap();
        }
        fs::write(
            vmail.join(name("withtmp")).join("password.0123.tmp"),
            "{SHA",
        )
        .unwrap();
        fs::write(vmail.join(name("withtmp")).join("enforceE2EEincoming"), "").unwrap();
        fs::create_dir_all(vmail.join(name("withtmp")).join("tmp")).unwrap();
        fs::create_dir_all(vmail.join(name("withmail")).join("cur")).unwrap();
        fs::write(vmail.join(name("withmail")).join("cur/1.m,S=1"), "m").unwrap();
        std::os::unix::fs::symlink("/etc", vmail.join(name("withlink")).join("tmp")).unwrap();
        let held = fs::File::open(vmail.join(name("busy")).join("password.lock")).unwrap();
        held.lock().unwrap();
        let dir = Dir::open(&vmail).unwrap();
        for (n, removed) in [
            ("lockonly", true),
            ("withtmp", true),
            ("busy", false),
            ("withmail", false),
            ("withlink", false),
        ] {
            assert_eq!(remove_leftover(&dir, &name(n)).unwrap(), removed, "{n}");
            assert_eq!(vmail.join(name(n)).exists(), !removed, "{n}");
        }
        assert!(Path::new("/etc/passwd").exists());
    }
}
