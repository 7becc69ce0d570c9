//! A stock Dovecot authenticates against doveauth and records logins through lastlogin.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: failing loudly is the point"
)]

use std::time::Duration;

use chatmail_tests::Dovecot;
use chatmail_tests::dovecot::host_dovecot_is_23;

/// Dict passdb/userdb exists up to Dovecot 2.3; on a 2.4 machine (Debian 13) Lua auth is
/// all there is, and tests/relay_dovecot.rs covers it.
fn dict_auth_available() -> bool {
    let ok = host_dovecot_is_23();
    if !ok {
        eprintln!("not applicable: this machine's Dovecot is not 2.3 (no dict passdb/userdb)");
    }
    ok
}
use chatmail_tests::imap::Imap;
use chatmail_tests::support::{backdate_last_login, last_login_is_today};

const DOMAIN: &str = "chat.example.org";

#[test]
fn imap_login_creates_authenticates_and_tracks_last_login() {
    if !dict_auth_available() {
        return;
    }
    let dc = Dovecot::start(DOMAIN, "");
    let addr = format!("abcdefghi@{DOMAIN}");
    let password = "correct-horse-battery";

    // First login creates the account.
    let mut imap = Imap::connect(dc.imap_port);
    assert!(
        imap.login(&addr, password),
        "first login failed; log:\n{}",
        dc.log()
    );
    let (_, status) = imap.command("SELECT INBOX");
    assert!(status.starts_with("OK"), "{status}");
    let password_file = dc.mailboxes.join(&addr).join("password");
    let hash = std::fs::read_to_string(&password_file).unwrap();
    assert!(hash.starts_with("{SHA512-CRYPT}$6$"), "{hash}");

    // Dovecot's own verifier accepts the hash, and refuses another password.
    let (ok, _) = dc.doveadm(&["pw", "-t", &hash, "-p", password]);
    assert!(ok, "doveadm pw -t rejected our hash");
    let (ok, _) = dc.doveadm(&["pw", "-t", &hash, "-p", "not-the-password"]);
    assert!(!ok);

    // Log in again.
    assert!(Imap::connect(dc.imap_port).login(&addr, password));

    // doveadm iterates the userdb.
    let (ok, users) = dc.doveadm(&["user", "*"]);
    assert!(ok);
    assert_eq!(users.lines().collect::<Vec<_>>(), vec![addr.as_str()]);

    // Last login: an old mtime moves to today's day on the next login.
    backdate_last_login(&password_file);
    assert!(Imap::connect(dc.imap_port).login(&addr, password));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !last_login_is_today(&password_file) {
        assert!(
            std::time::Instant::now() < deadline,
            "last login not recorded; log:\n{}",
            dc.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Failed logins come last and in parallel: Dovecot delays every later authentication
    // from an address that failed (auth penalty). A wrong password fails and does not
    // overwrite; invalid names and other domains are refused and create nothing.
    let attempts: Vec<_> = [
        (addr.clone(), "wrong-password-123"),
        (format!("short@{DOMAIN}"), password),
        ("abcdefghi@other.org".to_owned(), password),
        (format!("UPPERcase@{DOMAIN}x"), password),
    ]
    .into_iter()
    .map(|(user, pw)| {
        let port = dc.imap_port;
        std::thread::spawn(move || (Imap::connect(port).login(&user, pw), user))
    })
    .collect();
    for attempt in attempts {
        let (ok, user) = attempt.join().unwrap();
        assert!(!ok, "{user} logged in");
    }
    assert_eq!(std::fs::read_to_string(&password_file).unwrap(), hash);
    let mailboxes: Vec<_> = std::fs::read_dir(&dc.mailboxes)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(mailboxes, vec![std::ffi::OsString::from(&addr)]);
}

#[test]
fn ip_relay_accounts_use_bracketed_addresses() {
    if !dict_auth_available() {
        return;
    }
    let dc = Dovecot::start("127.0.0.1", "");
    let addr = "abcdefghi@[127.0.0.1]";
    let mut imap = Imap::connect(dc.imap_port);
    assert!(
        imap.login(addr, "correct-horse-battery"),
        "log:\n{}",
        dc.log()
    );
    assert!(dc.mailboxes.join(addr).join("password").exists());
}

#[test]
fn argon2id_accounts_authenticate() {
    if !dict_auth_available() {
        return;
    }
    let dc = Dovecot::start(DOMAIN, "password_scheme = argon2id\n");
    let addr = format!("argonuser@{DOMAIN}");
    assert!(
        Imap::connect(dc.imap_port).login(&addr, "correct-horse-battery"),
        "log:\n{}",
        dc.log()
    );
    let hash = std::fs::read_to_string(dc.mailboxes.join(&addr).join("password")).unwrap();
    assert!(hash.starts_with("{ARGON2ID}$argon2id$"), "{hash}");
    let (ok, _) = dc.doveadm(&["pw", "-t", &hash, "-p", "correct-horse-battery"]);
    assert!(ok, "doveadm rejected our argon2id hash");
    assert!(Imap::connect(dc.imap_port).login(&addr, "correct-horse-battery"));
    assert!(!Imap::connect(dc.imap_port).login(&addr, "wrong-horse-battery"));
}

#[test]
fn creation_cap_is_per_client_and_a_temporary_failure() {
    if !dict_auth_available() {
        return;
    }
    // Per client 1, relay-wide 10: only if the dict key carries the client's address is the
    // second first login from 127.0.0.1 refused.
    let dc = Dovecot::start(DOMAIN, "max_creations_per_minute = 1\n");
    let first = format!("capfirst1@{DOMAIN}");
    assert!(
        Imap::connect(dc.imap_port).login(&first, "correct-horse-battery"),
        "log:\n{}",
        dc.log()
    );
    let second = format!("capsecond@{DOMAIN}");
    let mut imap = Imap::connect(dc.imap_port);
    let (_, status) = imap.command(&format!("LOGIN \"{second}\" \"correct-horse-battery\""));
    assert!(
        status.starts_with("NO [UNAVAILABLE]"),
        "{status}; log:\n{}",
        dc.log()
    );
    assert!(!dc.mailboxes.join(&second).exists(), "nothing left behind");
}
