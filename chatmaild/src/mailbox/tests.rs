//! The tools' view of an account directory.

use super::*;

fn setup() -> (tempfile::TempDir, Dir) {
    let tmp = tempfile::tempdir().unwrap();
    let root = Dir::open(tmp.path()).unwrap();
    (tmp, root)
}

#[test]
fn block_moves_the_password_aside_and_unblock_brings_it_back() {
    let (tmp, root) = setup();
    let m = Mailbox::create(&root, "a@c.org").unwrap();
    let Locked::Held(_lock) = m.lock(&root, Duration::from_secs(1)).unwrap() else {
        panic!("not locked");
    };
    assert!(!m.has_account());
    m.set_password(&root, "{PLAIN}x").unwrap();
    assert!(m.enforces_e2ee());
    m.dir().set_mtime(PASSWORD, 86_400).unwrap();
    assert!(m.block().unwrap());
    assert!(!tmp.path().join("a@c.org/password").exists());
    assert!(!m.block().unwrap(), "already blocked");
    let account = m.account().unwrap().unwrap();
    assert_eq!((account.hash.as_str(), account.blocked), ("{PLAIN}x", true));
    assert_eq!(m.last_login(), Some(86_400), "the last login stays");
    assert!(m.unblock().unwrap());
    assert!(!m.is_blocked());
    assert_eq!(m.password().unwrap().as_deref(), Some("{PLAIN}x"));
    std::fs::write(tmp.path().join("a@c.org/blocked"), b"").unwrap();
    assert!(
        m.account().unwrap().unwrap().blocked,
        "a marker made by hand"
    );
    assert!(m.unblock().unwrap());
    assert_eq!(m.password().unwrap().as_deref(), Some("{PLAIN}x"));
}

#[test]
fn a_lock_on_a_mailbox_moved_away_does_not_count() {
    let (tmp, root) = setup();
    let m = Mailbox::create(&root, "a@c.org").unwrap();
    std::fs::rename(tmp.path().join("a@c.org"), tmp.path().join("elsewhere")).unwrap();
    assert!(matches!(
        m.lock(&root, Duration::from_secs(1)).unwrap(),
        Locked::Moved
    ));
    let again = Mailbox::create(&root, "a@c.org").unwrap();
    let Locked::Held(_held) = again.lock(&root, Duration::from_secs(1)).unwrap() else {
        panic!("not held");
    };
    assert!(matches!(
        again.lock(&root, Duration::from_millis(20)).unwrap(),
        Locked::Busy
    ));
}

#[test]
fn leftovers_of_a_first_login() {
    let (tmp, root) = setup();
    let m = Mailbox::create(&root, "a@c.org").unwrap();
    let path = tmp.path().join("a@c.org");
    std::fs::write(path.join("password.lock"), b"").unwrap();
    std::fs::write(path.join("password.0123456789abcdef.tmp"), b"{SHA").unwrap();
    std::fs::write(path.join("enforceE2EEincoming"), b"").unwrap();
    std::fs::create_dir_all(path.join("tmp")).unwrap();
    assert!(m.is_leftover().unwrap());
    std::fs::write(path.join("enforceE2EEincoming"), b"x").unwrap();
    assert!(
        !m.is_leftover().unwrap(),
        "a marker with content is not ours"
    );
    std::fs::write(path.join("enforceE2EEincoming"), b"").unwrap();
    std::os::unix::fs::symlink("/", path.join("tmp/link")).unwrap();
    assert!(!m.is_leftover().unwrap(), "a link is not a leftover");
    std::fs::remove_file(path.join("tmp/link")).unwrap();
    std::fs::write(path.join("metadata.json"), b"{}").unwrap();
    assert!(!m.is_leftover().unwrap());
}

#[test]
fn a_link_where_the_mailbox_should_be_is_an_error() {
    let (tmp, root) = setup();
    std::os::unix::fs::symlink("/etc", tmp.path().join("a@c.org")).unwrap();
    assert!(Mailbox::open(&root, "a@c.org").is_err());
    assert!(Mailbox::create(&root, "a@c.org").is_err());
    assert!(Mailbox::open(&root, "b@c.org").unwrap().is_none());
    assert!(Mailbox::open(&root, "../x@c.org").is_err());
}
