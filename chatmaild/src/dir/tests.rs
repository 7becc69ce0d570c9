//! Every kind of odd entry at a name the tools use: refused or replaced, never followed,
//! never blocking.

use super::*;
use crate::fs::Durability;
use std::os::unix::fs::{PermissionsExt, symlink};

struct Scene {
    _tmp: tempfile::TempDir,
    tree: PathBuf,
    outside: PathBuf,
}

/// A tree beside an `outside` directory holding `secret` (a file) and `sub/` (a directory).
fn scene() -> Scene {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(outside.join("sub")).unwrap();
    std::fs::write(outside.join("secret"), b"secret").unwrap();
    std::fs::create_dir(&tree).unwrap();
    Scene {
        _tmp: tmp,
        tree,
        outside,
    }
}

fn fifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}

#[test]
fn links_are_refused_where_a_directory_or_file_is_read() {
    let s = scene();
    symlink(s.outside.join("sub"), s.tree.join("dirlink")).unwrap();
    symlink(s.outside.join("secret"), s.tree.join("filelink")).unwrap();
    std::fs::hard_link(s.outside.join("secret"), s.tree.join("hardlink")).unwrap();
    fifo(&s.tree.join("fifo"));
    std::os::unix::net::UnixListener::bind(s.tree.join("socket")).unwrap();
    std::fs::write(s.tree.join("big"), vec![b'x'; 100]).unwrap();
    let dir = Dir::open(&s.tree).unwrap();
    let err = dir.open_dir("dirlink").unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(dir.open_dir("filelink").is_err());
    for name in ["filelink", "hardlink", "fifo", "socket", "dirlink"] {
        let err = dir.read_file(name, 1000).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData, "{name}: {err}");
    }
    assert!(dir.read_file("big", 99).is_err(), "over the limit");
    assert_eq!(dir.read_file("big", 100).unwrap().unwrap().len(), 100);
    assert_eq!(dir.read_file("missing", 10).unwrap(), None);
    for name in ["fifo", "socket", "filelink"] {
        assert!(dir.open_lock(name).is_err(), "{name}");
        assert!(dir.touch(name).is_err(), "{name}");
    }
    assert!(dir.open_lock("fresh.lock").is_ok());
    assert_eq!(dir.stat("filelink").unwrap().unwrap().kind, Kind::Symlink);
    for bad in ["", ".", "..", "a/b"] {
        assert_eq!(dir.stat(bad).unwrap_err().kind(), ErrorKind::InvalidInput);
    }
    assert_eq!(std::fs::read(s.outside.join("secret")).unwrap(), b"secret");
}

#[test]
fn writes_replace_links_and_removal_never_follows() {
    let s = scene();
    symlink(s.outside.join("secret"), s.tree.join("password")).unwrap();
    std::fs::create_dir(s.tree.join("box")).unwrap();
    symlink(&s.outside, s.tree.join("box/escape")).unwrap();
    symlink(s.outside.join("sub"), s.tree.join("box/cur")).unwrap();
    std::fs::hard_link(s.outside.join("secret"), s.tree.join("box/hard")).unwrap();
    let dir = Dir::open(&s.tree).unwrap();
    dir.write_atomic("password", b"hash", Durability::Fsync, Some(0o600))
        .unwrap();
    assert_eq!(std::fs::read(s.tree.join("password")).unwrap(), b"hash");
    assert_eq!(
        std::fs::metadata(s.tree.join("password"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    dir.remove_tree("box").unwrap();
    assert!(!s.tree.join("box").exists());
    assert_eq!(std::fs::read(s.outside.join("secret")).unwrap(), b"secret");
    assert!(s.outside.join("sub").is_dir());
    assert!(!dir.remove_file("box").unwrap(), "gone already");
    assert!(
        dir.create_new("password", None).is_err(),
        "never an existing name"
    );
}

#[test]
fn a_trusted_walk_follows_only_links_nobody_else_could_make() {
    let s = scene();
    let open = s.tree.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    symlink(&s.outside, open.join("mail")).unwrap();
    let err = Dir::open_trusted(&open.join("mail")).unwrap_err();
    assert!(err.to_string().contains("others may change"), "{err}");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = Dir::open_trusted(&open.join("mail")).unwrap();
    assert!(
        dir.stat("secret").unwrap().is_some(),
        "a link of the owner's"
    );
    let dotdot = Dir::open_trusted(&open.join("mail/../tree/open/mail/sub")).unwrap();
    assert_eq!(dotdot.meta().kind, Kind::Dir);
    std::fs::write(s.tree.join("file"), b"").unwrap();
    assert!(Dir::open_trusted(&s.tree.join("file")).is_err());
    assert!(is_absent(
        &Dir::open_trusted(&s.tree.join("missing")).unwrap_err()
    ));
}

#[test]
fn entries_and_renames() {
    let s = scene();
    let dir = Dir::open(&s.tree).unwrap();
    let sub = dir.open_or_create_dir("a").unwrap();
    sub.touch("marker").unwrap();
    symlink("/", s.tree.join("l")).unwrap();
    let mut names = dir.entries().unwrap();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        names,
        [
            (OsString::from("a"), Kind::Dir),
            (OsString::from("l"), Kind::Symlink)
        ]
    );
    sub.rename("marker", &dir, "moved", false).unwrap();
    assert!(s.tree.join("moved").exists());
    std::fs::write(s.tree.join("taken"), b"").unwrap();
    let err = dir.rename("moved", &dir, "taken", false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    dir.set_mtime("taken", 86_400).unwrap();
    assert_eq!(dir.stat("taken").unwrap().unwrap().mtime, 86_400);
}
