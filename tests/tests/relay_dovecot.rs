//! The relay's Dovecot templates on a real Dovecot, this machine's (2.3 on Debian 12) and
//! Debian 13's 2.4:
//! Lua passdb/userdb with doveauth's HTTP /create, last login, IMAP METADATA, a push from
//! an LMTP delivery, the quota warning and a full mailbox as a temporary failure (SPEC §3.9,
//! §4, §5, §7.5, §10.2).
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: failing loudly is the point"
)]

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chatmail_tests::imap::Imap;
use chatmail_tests::relay_dovecot::{DOMAIN, QUOTA_MB, RelayDovecot, Series};
use chatmail_tests::support::{backdate_last_login, last_login_is_today};

fn wait(what: &str, d: &RelayDovecot, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} ({:?}); dovecot log:\n{}",
            d.series,
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn auth_and_last_login(series: Series) {
    let mut d = RelayDovecot::start(series, "");
    let addr = format!("abcdefghi@{DOMAIN}");
    let password = "correct-horse-battery";
    let password_file = d.mailboxes.join(&addr).join("password");

    // First login: Lua finds no password file and asks doveauth to create the account.
    assert!(
        Imap::connect(d.imap_port).login(&addr, password),
        "first login failed ({series:?}); log:\n{}\ndoveauth:\n{}",
        d.log(),
        d.service_log("doveauth")
    );
    let hash = std::fs::read_to_string(&password_file).unwrap();
    assert!(hash.starts_with("{SHA512-CRYPT}$6$"), "{hash}");
    assert!(d.mailboxes.join(&addr).join("enforceE2EEincoming").exists());
    assert_eq!(
        d.service_log("doveauth")
            .matches(&format!("Created address: {addr}"))
            .count(),
        1
    );

    // Existing account: Lua serves the hash, Dovecot verifies; no new request to doveauth.
    let mut imap = Imap::connect(d.imap_port);
    assert!(imap.login(&addr, password));
    let (_, status) = imap.command("SELECT INBOX");
    assert!(status.starts_with("OK"), "{status}");

    // userdb lookups and iteration go through Lua too.
    let (ok, user) = d.doveadm(&["user", "-f", "home", &addr]);
    assert!(ok, "doveadm user: {user}; log:\n{}", d.log());
    assert_eq!(user.trim(), d.mailboxes.join(&addr).display().to_string());
    let (ok, users) = d.doveadm(&["user", "*"]);
    assert!(ok);
    assert_eq!(users.lines().collect::<Vec<_>>(), vec![addr.as_str()]);

    // Last login: an old mtime moves to today's day on the next login (lastlogin dict).
    backdate_last_login(&password_file);
    assert!(Imap::connect(d.imap_port).login(&addr, password));
    wait("last login recorded", &d, || {
        last_login_is_today(&password_file)
    });

    // Failures, in parallel (no penalty waits): a wrong password does not overwrite, invalid
    // names and other domains create nothing.
    let attempts: Vec<_> = [
        (addr.clone(), "wrong-password-123"),
        (format!("short@{DOMAIN}"), password),
        ("abcdefghi@other.org".to_owned(), password),
        (format!("abc.efghi@{DOMAIN}"), "short"),
        (format!("../etcpass@{DOMAIN}"), password),
    ]
    .into_iter()
    .map(|(user, pw)| {
        let port = d.imap_port;
        std::thread::spawn(move || (Imap::connect(port).login(&user, pw), user))
    })
    .collect();
    for attempt in attempts {
        let (ok, user) = attempt.join().unwrap();
        assert!(!ok, "{user} logged in ({series:?})");
    }
    assert_eq!(std::fs::read_to_string(&password_file).unwrap(), hash);
    let mailboxes: Vec<_> = std::fs::read_dir(&d.mailboxes)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "pending_notifications")
        .collect();
    assert_eq!(mailboxes, vec![std::ffi::OsString::from(&addr)]);

    // doveauth down: a new address gets a temporary failure, not "no such user", and the
    // existing account still logs in (its hash comes from the file).
    d.stop_service("doveauth");
    let mut imap = Imap::connect(d.imap_port);
    let (_, reply) = imap.command(&format!("LOGIN \"newuser12@{DOMAIN}\" \"{password}\""));
    assert!(reply.contains("UNAVAILABLE"), "{reply}");
    assert!(Imap::connect(d.imap_port).login(&addr, password));
    assert!(!d.mailboxes.join(format!("newuser12@{DOMAIN}")).exists());
}

#[test]
fn lua_auth_and_last_login_this_machine() {
    auth_and_last_login(Series::Host);
}

#[test]
fn lua_auth_and_last_login_debian13() {
    auth_and_last_login(Series::Debian13);
}

fn metadata_push_quota(series: Series) {
    let d = RelayDovecot::start(series, "");
    let addr = format!("metadata1@{DOMAIN}");
    let password = "correct-horse-battery";
    let mut imap = Imap::connect(d.imap_port);
    assert!(imap.login(&addr, password), "log:\n{}", d.log());

    // Capabilities the clients look for.
    let (caps, _) = imap.command("CAPABILITY");
    let caps = caps.concat();
    for cap in ["XDELTAPUSH", "XCHATMAIL", "METADATA", "QUOTA"] {
        assert!(caps.contains(cap), "{cap} missing ({series:?}): {caps}");
    }

    // METADATA: a device token is stored by chatmail-metadata and read back.
    let (_, status) = imap.command("SETMETADATA INBOX (/private/devicetoken \"tok-relay\")");
    assert!(status.starts_with("OK"), "{status}; log:\n{}", d.log());
    let (untagged, status) = imap.command("GETMETADATA INBOX /private/devicetoken");
    assert!(status.starts_with("OK"), "{status}");
    assert!(untagged.concat().contains("tok-relay"), "{untagged:?}");
    let meta = std::fs::read_to_string(d.mailboxes.join(&addr).join("metadata.json")).unwrap();
    assert!(meta.contains("tok-relay"), "{meta}");
    // A server entry answered by chatmail-metadata.
    let (untagged, _) = imap.command("GETMETADATA \"\" /shared/vendor/deltachat/maxsmtprecipients");
    assert!(untagged.concat().contains("1000"), "{untagged:?}");

    // LMTP delivery from someone else: the Lua hook sets messagenew, a push goes out.
    let msg = format!(
        "From: <other@example.org>\r\nTo: <{addr}>\r\nSubject: hi\r\nMessage-ID: <push1@x>\r\n\r\nhello\r\n"
    );
    let reply = d.lmtp_deliver("other@example.org", &addr, msg.as_bytes());
    assert!(reply.starts_with("250"), "{reply}");
    assert!(
        d.notify.wait_for("tok-relay", Duration::from_secs(20)),
        "no push ({series:?}); dovecot:\n{}\nmetadata:\n{}",
        d.log(),
        d.service_log("metadata")
    );

    // Quota: old messages just under 75%, then a delivery crossing it runs the
    // quota-warning script, which expires the oldest down to 70%.
    let maildir = d.mailboxes.join(&addr);
    let cur = maildir.join("cur");
    let owner = std::fs::metadata(&maildir).unwrap();
    let limit = QUOTA_MB * 1_048_576;
    let size = limit / 10;
    let count = limit * 75 / 100 / size - 1;
    let old = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 10 * 86_400;
    let mut planted = Vec::new();
    for i in 0..count {
        let f = cur.join(format!("{}.M{i}P1.test,S={size},W={size}:2,S", old + i));
        let mut body = b"Subject: old\r\n\r\n".to_vec();
        body.resize(usize::try_from(size).unwrap(), b'x');
        std::fs::write(&f, body).unwrap();
        std::os::unix::fs::chown(&f, Some(owner.uid()), Some(owner.gid())).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(UNIX_EPOCH + Duration::from_secs(old + i))
            .unwrap();
        planted.push(f);
    }
    let _ = std::fs::remove_file(maildir.join("maildirsize"));
    let big = format!(
        "From: <other@example.org>\r\nTo: <{addr}>\r\nSubject: big\r\nMessage-ID: <big1@x>\r\n\r\n{}",
        format!("{}\r\n", "y".repeat(998)).repeat(usize::try_from(limit / 5 / 1000).unwrap())
    );
    let reply = d.lmtp_deliver("other@example.org", &addr, big.as_bytes());
    assert!(reply.starts_with("250"), "{reply}");
    wait("oldest message expired by the quota warning", &d, || {
        !planted[0].exists()
    });
}

#[test]
fn metadata_push_and_quota_this_machine() {
    metadata_push_quota(Series::Host);
}

#[test]
fn metadata_push_and_quota_debian13() {
    metadata_push_quota(Series::Debian13);
}

/// A full mailbox refuses a delivery temporarily (`quota_full_tempfail`), so Postfix keeps
/// the message and retries instead of bouncing it to its sender (a bounce would pass no
/// filter), and nothing is stored.
fn full_mailbox_tempfails(series: Series) {
    let d = RelayDovecot::start(series, "");
    let addr = format!("quotafull@{DOMAIN}");
    assert!(
        Imap::connect(d.imap_port).login(&addr, "correct-horse-battery"),
        "log:
{}",
        d.log()
    );
    // Dovecot's maildir++ quota trusts a fresh `maildirsize` with the configured limit and
    // a single usage line: this one says the mailbox is over its quota.
    let maildir = d.mailboxes.join(&addr);
    let owner = std::fs::metadata(&maildir).unwrap();
    let limit = QUOTA_MB * 1_048_576;
    let size_file = maildir.join("maildirsize");
    std::fs::write(&size_file, format!("{limit}S\n{} 1\n", limit + 1)).unwrap();
    std::os::unix::fs::chown(&size_file, Some(owner.uid()), Some(owner.gid())).unwrap();
    let msg = format!(
        "From: <other@example.org>\r\nTo: <{addr}>\r\nSubject: hi\r\nMessage-ID: <full1@x>\r\n\r\nhello\r\n"
    );
    let reply = d.lmtp_deliver("other@example.org", &addr, msg.as_bytes());
    assert!(
        reply.starts_with("452 4.2.2"),
        "{reply} ({series:?}); log:\n{}",
        d.log()
    );
    for sub in ["new", "cur", "tmp"] {
        let stored = std::fs::read_dir(maildir.join(sub)).map_or(0, Iterator::count);
        assert_eq!(stored, 0, "{sub} ({series:?})");
    }
}

#[test]
fn full_mailbox_tempfails_this_machine() {
    full_mailbox_tempfails(Series::Host);
}

#[test]
fn full_mailbox_tempfails_debian13() {
    full_mailbox_tempfails(Series::Debian13);
}

/// The auth cache keeps a replaced password file's old hash working for at most the TTL.
fn cache_ttl_bounds_old_hashes(series: Series) {
    let d = RelayDovecot::start_with_cache_ttl(series, "", "2s");
    let addr = format!("cachettl1@{DOMAIN}");
    assert!(
        Imap::connect(d.imap_port).login(&addr, "first-password-1"),
        "log:\n{}",
        d.log()
    );
    assert!(Imap::connect(d.imap_port).login(&addr, "first-password-1"));
    // The account is expired and its address registered again with another password.
    let (ok, hash) = d.doveadm(&["pw", "-s", "SHA512-CRYPT", "-p", "second-password-2"]);
    assert!(ok, "doveadm pw");
    let password_file = d.mailboxes.join(&addr).join("password");
    std::fs::write(&password_file, hash.trim()).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !Imap::connect(d.imap_port).login(&addr, "first-password-1"),
        "old password still works after the cache TTL ({series:?})"
    );
    assert!(Imap::connect(d.imap_port).login(&addr, "second-password-2"));
}

#[test]
fn auth_cache_ttl_bounds_old_hashes_this_machine() {
    cache_ttl_bounds_old_hashes(Series::Host);
}

#[test]
fn auth_cache_ttl_bounds_old_hashes_debian13() {
    cache_ttl_bounds_old_hashes(Series::Debian13);
}

/// The per-client creation cap through the Lua script: Dovecot's remote IP reaches
/// doveauth (only then is the second first login from 127.0.0.1 over the per-client cap of
/// 1; the relay-wide ceiling is 10), the refusal is a temporary failure the client sees as
/// `[UNAVAILABLE]`, not a wrong password, and it leaves nothing. The refused login comes
/// after doveauth's head deadline closed the auth worker's kept-alive connection, so it also
/// shows that Dovecot opens a new one instead of failing.
fn creation_cap_is_per_client_and_temporary(series: Series) {
    let d = RelayDovecot::start(series, "max_creations_per_minute = 1\n");
    let first = format!("capfirst1@{DOMAIN}");
    assert!(
        Imap::connect(d.imap_port).login(&first, "correct-horse-battery"),
        "first login ({series:?}); log:\n{}\ndoveauth:\n{}",
        d.log(),
        d.service_log("doveauth")
    );
    // doveauth's head deadline (doveauth::http::HEAD_TIMEOUT, 5 s) and a margin.
    std::thread::sleep(Duration::from_secs(7));
    let second = format!("capsecond@{DOMAIN}");
    let mut imap = Imap::connect(d.imap_port);
    let (_, status) = imap.command(&format!("LOGIN \"{second}\" \"correct-horse-battery\""));
    assert!(
        status.starts_with("NO [UNAVAILABLE]"),
        "{status} ({series:?}); log:\n{}",
        d.log()
    );
    assert!(!d.mailboxes.join(&second).exists(), "nothing left behind");
    let log = d.service_log("doveauth");
    assert_eq!(
        log.matches("registration rejected: more than 1 creations per minute from 127.0.0.1")
            .count(),
        1,
        "{log}"
    );
    assert!(
        Imap::connect(d.imap_port).login(&first, "correct-horse-battery"),
        "the existing account still logs in"
    );
}

#[test]
fn creation_cap_is_per_client_and_temporary_this_machine() {
    creation_cap_is_per_client_and_temporary(Series::Host);
}

#[test]
fn creation_cap_is_per_client_and_temporary_debian13() {
    creation_cap_is_per_client_and_temporary(Series::Debian13);
}
