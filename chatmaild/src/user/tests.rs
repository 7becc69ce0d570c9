//! Address validation, the paths of a user, and the password file's life.

use super::*;

#[test]
fn address_validation() {
    for (addr, ok) in [
        ("user@example.org", true),
        ("..@x", true),
        ("a@[1.2.3.4]", true),
        ("", false),
        ("nodomain", false),
        ("../../etc@x", false),
        ("/abs@x", false),
        ("a@x/..", false),
        ("nul\0@x", false),
        ("tab\t@x", false),
        ("nl\n@x", false),
        ("del\u{7f}@x", false),
        ("c1\u{85}@x", false),
    ] {
        assert_eq!(validate_address(addr).is_ok(), ok, "{addr:?}");
    }
    assert!(validate_address(&format!("{}@x", "a".repeat(300))).is_err());
}

#[test]
fn paths_stay_inside() {
    let u = User::in_dir(Path::new("/m"), "..@x").unwrap();
    assert_eq!(u.maildir(), Path::new("/m/..@x"));
    assert_eq!(u.maildir().parent(), Some(Path::new("/m")));
    assert_eq!(u.password_path(), Path::new("/m/..@x/password"));
    assert_eq!(
        u.enforce_e2ee_path(),
        Path::new("/m/..@x/enforceE2EEincoming")
    );
    assert_eq!(
        u.metadata_lock_path(),
        Path::new("/m/..@x/metadata.json.lock")
    );
}

#[test]
fn a_lock_whose_mailbox_moved_away_meanwhile_is_taken_anew() {
    let dir = tempfile::tempdir().unwrap();
    let u = User::in_dir(dir.path(), "a@c.org").unwrap();
    let held = u.lock_password(Duration::from_secs(1)).unwrap().unwrap();
    let waiter = {
        let u = u.clone();
        std::thread::spawn(move || u.lock_password(Duration::from_secs(10)).unwrap())
    };
    std::thread::sleep(Duration::from_millis(100));
    // A delete moves the mailbox away under the lock, then lets go.
    fs::rename(u.maildir(), dir.path().join("trash")).unwrap();
    drop(held);
    let lock = waiter.join().unwrap().unwrap();
    assert!(
        lock.is_at(&u.password_lock_path()),
        "locked where the path is now"
    );
    assert!(u.maildir().is_dir());
}

#[test]
fn password_and_last_login() {
    let dir = tempfile::tempdir().unwrap();
    let u = User::in_dir(dir.path(), "a@c.org").unwrap();
    assert_eq!(u.password().unwrap(), None);
    assert!(!u.set_last_login(1_700_000_123).unwrap(), "never creates");
    assert!(!u.password_path().exists());
    fs::create_dir_all(u.maildir()).unwrap();
    fs::write(u.maildir().join("password.0123456789abcdef.tmp"), b"{SHA5").unwrap();
    u.set_password("{SHA512-CRYPT}$6$abc").unwrap();
    assert!(
        !u.maildir().join("password.0123456789abcdef.tmp").exists(),
        "crash leftovers removed"
    );
    assert_eq!(
        u.password().unwrap().as_deref(),
        Some("{SHA512-CRYPT}$6$abc")
    );
    assert!(!u.incoming_cleartext_ok());
    assert!(u.set_last_login(1_700_000_123).unwrap());
    assert_eq!(u.last_login(), Some(1_699_920_000));
    assert!(
        !u.set_last_login(1_699_999_999).unwrap(),
        "same day: no write"
    );
    fs::write(u.password_path(), b"").unwrap();
    assert_eq!(u.password().unwrap(), None);
    let long = "x".repeat(5000);
    fs::write(u.password_path(), &long).unwrap();
    assert_eq!(u.password().unwrap().as_deref(), Some(long.as_str()));
    fs::write(u.password_path(), "y".repeat(1024)).unwrap();
    assert_eq!(u.password().unwrap().map(|p| p.len()), Some(1024));
    assert_eq!(day_timestamp(-1), -DAY);
}

#[test]
fn an_unused_mailbox_is_removed_under_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let u = User::in_dir(dir.path(), "a@c.org").unwrap();
    let lock = u.lock_password(Duration::from_secs(1)).unwrap().unwrap();
    assert!(u.remove_if_unused(lock).unwrap());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "nothing left");
    // A mailbox with anything else in it stays, with its lock file.
    let lock = u.lock_password(Duration::from_secs(1)).unwrap().unwrap();
    fs::write(u.maildir().join("enforceE2EEincoming"), b"").unwrap();
    assert!(!u.remove_if_unused(lock).unwrap());
    assert!(u.password_lock_path().exists());
}

#[test]
fn accepts_mail_only_for_a_live_account() {
    let dir = tempfile::tempdir().unwrap();
    let u = User::in_dir(dir.path(), "a@c.org").unwrap();
    assert!(!u.accepts_mail(), "no mailbox");
    fs::create_dir_all(u.maildir()).unwrap();
    fs::write(u.enforce_e2ee_path(), b"").unwrap();
    assert!(!u.accepts_mail(), "a directory without password file");
    fs::write(u.password_path(), b"").unwrap();
    assert!(!u.accepts_mail(), "an empty password file is no account");
    u.set_password("{SHA512-CRYPT}$6$abc").unwrap();
    assert!(u.accepts_mail());
    fs::write(u.blocked_path(), b"").unwrap();
    assert!(!u.accepts_mail(), "blocked");
    fs::remove_file(u.blocked_path()).unwrap();
    fs::remove_file(u.password_path()).unwrap();
    fs::create_dir(u.password_path()).unwrap();
    assert!(!u.accepts_mail(), "a directory named password");
}
