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
//! The switch is done with the raw system calls: `setgroups(0)`, `setresgid`, `setresuid`,
//! in that order, real, effective and saved ids alike, so there is no way back; then the
//! switch back to root is tried and must fail. Linux keeps credentials per thread (glibc's
//! `setuid` changes every thread of a process in turn), and threads started afterwards (the
//! expiry's workers) inherit them. A command that has nothing to do outside the tree
//! afterwards switches its only thread, so the whole process: [`Afterwards::Nothing`]. One
//! that must still write a file an operator names outside the tree (`nocreate_file`, a
//! report textfile, an export file) runs the tree work on a thread of its own that switches,
//! and writes that file from the calling thread after it: [`Afterwards::WritesOutside`].

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

/// Whether the caller still needs its own identity after the tree work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Afterwards {
    /// No: the whole process may switch (if it has no other thread).
    Nothing,
    /// Yes: it writes a file outside the tree afterwards.
    WritesOutside,
}

/// Runs `work` as `owner` when this runs as root and the tree is not root's (otherwise on
/// the calling thread, unchanged: a tree that belongs to root, as in tests, or a tool
/// already running as vmail from its systemd unit). A panic in `work` is passed on.
pub fn as_owner<T: Send>(
    owner: Owner,
    afterwards: Afterwards,
    work: impl FnOnce() -> T + Send,
) -> Result<T, Error> {
    if !owner.needs_switch() {
        return Ok(work());
    }
    let failed = |source| Error::Privileges {
        uid: owner.uid,
        gid: owner.gid,
        source,
    };
    if afterwards == Afterwards::Nothing && single_threaded() {
        drop_thread_to(owner).map_err(failed)?;
        return Ok(work());
    }
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            drop_thread_to(owner).map_err(failed)?;
            Ok(work())
        });
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Whether this process has one thread only (then switching it switches the process).
fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|tasks| tasks.count() == 1)
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
            let work = rustix::process::geteuid;
            assert_eq!(as_owner(owner, Afterwards::Nothing, work).unwrap(), me);
            return;
        }
        let nobody = Owner {
            uid: 65534,
            gid: 65534,
        };
        let (uid, gid, groups) = as_owner(nobody, Afterwards::WritesOutside, || {
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
