//! `chatmail-admin` against a running relay: a stock Dovecot authenticating through
//! doveauth sees every change at once (blocking, passwords, deletion with its tombstone,
//! registration mode, export and import).
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: failing loudly is the point"
)]

use std::path::Path;
use std::process::Command;

use chatmail_tests::Dovecot;
use chatmail_tests::imap::Imap;
use chatmail_tests::process::spawn_with_input;
use chatmail_tests::service::binary;

const DOMAIN: &str = "chat.example.org";

/// A relay whose nocreate flag lives in a private directory (/etc/chatmail-nocreate is the
/// host's); the directory goes when the returned guard drops.
fn start() -> (Dovecot, tempfile::TempDir) {
    use std::os::unix::fs::PermissionsExt;
    let flag_dir = tempfile::Builder::new()
        .prefix("nocreate")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(flag_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dc = Dovecot::start(
        DOMAIN,
        &format!(
            "nocreate_file = {}\n",
            flag_dir.path().join("flag").display()
        ),
    );
    (dc, flag_dir)
}

/// Runs chatmail-admin on the relay's config; asserts success and returns stdout.
fn admin(dc: &Dovecot, args: &[&str], stdin: &str) -> String {
    let mut command = Command::new(binary("chatmail-admin", "chatmail-admin"));
    command.arg("--config").arg(&dc.ini).args(args);
    let out = spawn_with_input(&mut command, stdin)
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "chatmail-admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn login(dc: &Dovecot, user: &str, password: &str) -> bool {
    Imap::connect(dc.imap_port).login(user, password)
}

fn addr(local: &str) -> String {
    format!("{local}@{DOMAIN}")
}

#[test]
fn block_passwd_delete_and_registration_through_dovecot() {
    let (dc, _flag) = start();
    let a = addr("operated1");
    assert!(login(&dc, &a, "first-password"), "log:\n{}", dc.log());

    admin(&dc, &["block", &a], "");
    assert!(
        !login(&dc, &a, "first-password"),
        "a blocked account logs in"
    );
    let (known, _) = dc.doveadm(&["user", &a]);
    assert!(
        !known,
        "userdb still knows a blocked account (LMTP would deliver)"
    );
    admin(&dc, &["unblock", &a], "");
    assert!(login(&dc, &a, "first-password"), "log:\n{}", dc.log());

    admin(&dc, &["passwd", &a], "second-password\n");
    assert!(
        !login(&dc, &a, "first-password"),
        "the old password still works"
    );
    assert!(login(&dc, &a, "second-password"));

    // A deleted account's mail is gone and its address cannot be registered again.
    let mut imap = Imap::connect(dc.imap_port);
    assert!(imap.login(&a, "second-password"));
    let (_, status) = imap.command("CREATE Kept");
    assert!(status.starts_with("OK"), "{status}");
    drop(imap);
    admin(&dc, &["delete", &a], "");
    assert!(!dc.mailboxes.join(&a).exists());
    for pw in ["second-password", "a-new-password"] {
        assert!(
            !login(&dc, &a, pw),
            "tombstoned address re-registered with {pw}"
        );
    }
    assert!(!dc.mailboxes.join(&a).join("password").exists());

    // Registration closed: no new accounts, existing ones still log in.
    let b = addr("existing1");
    assert!(login(&dc, &b, "existing-password"));
    admin(&dc, &["registration", "close"], "");
    assert!(!login(&dc, &addr("newcomer1"), "newcomer-password"));
    assert!(login(&dc, &b, "existing-password"));
    admin(&dc, &["registration", "open"], "");
    assert!(login(&dc, &addr("newcomer1"), "newcomer-password"));
}

#[test]
fn invitation_creates_exactly_its_accounts_through_dovecot() {
    let (dc, _flag) = start();
    admin(&dc, &["registration", "invite-only"], "");
    assert!(!login(&dc, &addr("uninvited"), "some-password"));
    let out = admin(&dc, &["invite", "create", "--uses", "2"], "");
    let token = out.split_whitespace().nth(1).unwrap().to_owned();
    let pw = |p: &str| format!("{token}:{p}");
    assert!(
        login(&dc, &addr("invited01"), &pw("secret-one")),
        "log:\n{}",
        dc.log()
    );
    assert!(login(&dc, &addr("invited02"), &pw("secret-two")));
    assert!(
        !login(&dc, &addr("invited03"), &pw("secret-three")),
        "a third account"
    );
    // The clients keep the password they used: it keeps working.
    assert!(login(&dc, &addr("invited01"), &pw("secret-one")));
}

#[test]
fn export_purge_import_keeps_passwords_and_device_tokens() {
    let (dc, _flag) = start();
    let accounts = [
        ("movedacc1", "moved-password-1"),
        ("movedacc2", "moved-password-2"),
    ];
    for (local, pw) in accounts {
        assert!(login(&dc, &addr(local), pw), "log:\n{}", dc.log());
    }
    let metadata = dc.mailboxes.join(addr("movedacc1")).join("metadata.json");
    std::fs::write(
        &metadata,
        r#"{"devicetoken": {"device-token-1": 1700000000}}"#,
    )
    .unwrap();
    let export = admin(&dc, &["export"], "");

    // Purge: every mailbox goes (as `scripts/relay purge` deletes the state).
    for entry in std::fs::read_dir(&dc.mailboxes).unwrap() {
        std::fs::remove_dir_all(entry.unwrap().path()).unwrap();
    }
    let out = admin(&dc, &["import", "-"], &export);
    assert!(out.starts_with("imported 2 accounts"), "{out}");
    for (local, pw) in accounts {
        assert!(
            login(&dc, &addr(local), pw),
            "{local} after import; log:\n{}",
            dc.log()
        );
    }
    let restored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap();
    assert_eq!(restored["devicetoken"]["device-token-1"], 1_700_000_000);
    owned_by_vmail(&dc.mailboxes.join(addr("movedacc1")));
}

/// Everything the import wrote belongs to vmail, so Dovecot and the services can use it.
fn owned_by_vmail(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let (uid, _) = chatmail_tests::dovecot::vmail_ids();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        assert_eq!(
            entry.metadata().unwrap().uid(),
            uid,
            "{}",
            entry.path().display()
        );
    }
}

#[test]
fn expired_account_cannot_be_registered_again() {
    let (dc, _flag) = start();
    let a = addr("expiredac");
    assert!(login(&dc, &a, "expired-password"), "log:\n{}", dc.log());
    let password = dc.mailboxes.join(&a).join("password");
    // The login's last_login update (the day, from lastlogin) lands asynchronously; backdating
    // before it would be undone by it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::metadata(&password)
        .and_then(|m| m.modified())
        .map(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
                % 86_400
        })
        .unwrap_or(1)
        != 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no last-login update: {}",
            dc.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(100 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&password)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    let expire = |args: &[&str]| {
        let out = Command::new(binary("chatmail-expire", "chatmail-expire"))
            .arg(&dc.ini)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    expire(&["-v"]);
    assert!(password.exists(), "a dry run removed the account");
    assert!(
        !dc.mailboxes.join(".chatmail-admin").exists(),
        "a dry run wrote state"
    );
    expire(&["-v", "--remove"]);
    assert!(!dc.mailboxes.join(&a).exists());
    for pw in ["expired-password", "another-password"] {
        assert!(
            !login(&dc, &a, pw),
            "expired address re-registered with {pw}"
        );
    }
    assert!(!password.exists());
}
