//! Who the tools act as: the owner of the mailbox tree, never root.
//!
//! `chatmail-admin`, `chatmail-expire`, `chatmail-quota-expire` and `chatmail-fsreport` are
//! often started as root (by hand, from cron, by a deployment tool). The tree they work on
//! belongs to the services' user, and whatever runs as that user could have planted links
//! in it; root following one would act outside the tree with root's rights. So every tool
//! opens the tree first ([`crate::dir::Dir::open_trusted`]), then does all its work in the
//! tree through [`as_owner`]: with the tree owner's uid and gid and no supplementary groups.
//! What it then touches it could have touched as vmail anyway.
//!
//! Linux keeps credentials per thread (glibc's `setuid` changes every thread of a process
//! in turn), so the work runs on a thread of its own that drops its credentials with the
//! raw system calls before it touches the tree: `setgroups(0)`, `setresgid`, `setresuid`,
//! in that order, real, effective and saved ids alike, so there is no way back; then it
//! checks that the switch back to root fails. Threads it starts (the expiry's workers)
//! inherit the dropped credentials. The calling thread keeps its own: a tool writes the few
//! files outside the tree that an operator names (`nocreate_file`, a report textfile, an
//! export file) there, after the tree work, and never inside the tree.

use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::dir::{Dir, is_absent};
use crate::error::Error;

/// Opens the tree a tool works on (`mailboxes_dir`, or the one mailbox of
/// `chatmail-quota-expire`) with [`Dir::open_trusted`], before anything else; `None` if it
/// does not exist.
pub fn open_tree(path: &Path) -> Result<Option<Arc<Dir>>, Error> {
    match Dir::open_trusted(path) {
        Ok(dir) => Ok(Some(Arc::new(dir))),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// A uid and gid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The user id.
    pub uid: u32,
    /// The group id.
    pub gid: u32,
}

impl Owner {
    /// The owner of an open directory (the tree's root).
    pub fn of(dir: &Dir) -> Owner {
        Owner {
            uid: dir.meta().uid,
            gid: dir.meta().gid,
        }
    }

    /// Whether a process of the current thread's effective user must switch to this owner
    /// before touching the tree: it runs as root and the tree is not root's.
    pub fn needs_switch(&self) -> bool {
        rustix::process::geteuid().is_root() && self.uid != 0
    }
}

/// Runs `work` as `owner` when this runs as root and the tree is not root's (otherwise on
/// the calling thread, unchanged: a tree that belongs to root, as in tests, or a tool
/// already running as vmail from its systemd unit). A panic in `work` is passed on.
pub fn as_owner<T: Send>(owner: Owner, work: impl FnOnce() -> T + Send) -> Result<T, Error> {
    if !owner.needs_switch() {
        return Ok(work());
    }
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            drop_thread_to(owner).map_err(|source| Error::Privileges {
                uid: owner.uid,
                gid: owner.gid,
                source,
            })?;
            Ok(work())
        });
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Gives the calling thread `owner`'s credentials for good and checks it cannot go back.
fn drop_thread_to(owner: Owner) -> io::Result<()> {
    use rustix::process::{Gid, Uid};
    use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid};
    let (uid, gid) = (Uid::from_raw(owner.uid), Gid::from_raw(owner.gid));
    set_thread_groups(&[])?;
    set_thread_res_gid(gid, gid, gid)?;
    set_thread_res_uid(uid, uid, uid)?;
    let now = (
        rustix::process::getuid(),
        rustix::process::geteuid(),
        rustix::process::getgid(),
        rustix::process::getegid(),
    );
    if now != (uid, uid, gid, gid) || set_thread_res_uid(Uid::ROOT, Uid::ROOT, Uid::ROOT).is_ok() {
        return Err(io::Error::other("the credentials did not change for good"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_runs_as_the_owner_and_the_caller_keeps_its_identity() {
        let me = rustix::process::geteuid();
        let dir = tempfile::tempdir().unwrap();
        if !me.is_root() {
            // Not root: nothing to switch, the work runs here.
            let owner = Owner::of(&Dir::open(dir.path()).unwrap());
            assert!(!owner.needs_switch());
            assert_eq!(as_owner(owner, rustix::process::geteuid).unwrap(), me);
            return;
        }
        let nobody = Owner {
            uid: 65534,
            gid: 65534,
        };
        let (uid, gid, groups) = as_owner(nobody, || {
            let groups = std::fs::read_to_string("/proc/thread-self/status")
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix("Groups:").map(|g| g.trim().to_owned()))
                .unwrap();
            (
                rustix::process::geteuid(),
                rustix::process::getegid(),
                groups,
            )
        })
        .unwrap();
        assert_eq!((uid.as_raw(), gid.as_raw()), (65534, 65534));
        assert_eq!(groups, "", "supplementary groups cleared");
        assert!(
            rustix::process::geteuid().is_root(),
            "the caller keeps root"
        );
        let root = Owner { uid: 0, gid: 0 };
        assert!(!root.needs_switch(), "a tree of root's needs no switch");
    }
}
