//! `chatmail-admin block` holds whatever Lua script Dovecot runs: with the relay's own
//! auth.lua, and with one that never looks at `blocked` (as the reference's
//! `/etc/dovecot/auth.lua`), a blocked account cannot log in with its password, cannot be
//! created anew by a stranger's first login (doveauth refuses), is unknown to userdb and
//! gets no mail over LMTP; `unblock` gives it back as it was.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: failing loudly is the point"
)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use chatmail_tests::imap::Imap;
use chatmail_tests::relay_dovecot::{DOMAIN, RelayDovecot, Series};
use chatmail_tests::service::binary;

/// Appended to the relay's auth.lua: `blocked` is never read, as in the reference's script
/// (the local `is_blocked` the lookups call is rebound).
const BLIND_TO_BLOCKED: &str = "\n-- test: a script that never reads `blocked`\nis_blocked = function(user) return false end\n";

fn admin(d: &RelayDovecot, args: &[&str]) -> String {
    let out = Command::new(binary("chatmail-admin", "chatmail-admin"))
        .arg("--config")
        .arg(d.ini())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chatmail-admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The LMTP reply to `RCPT TO:<to>`.
fn lmtp_rcpt(d: &RelayDovecot, to: &str) -> String {
    let s = TcpStream::connect(("127.0.0.1", d.lmtp_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let mut reply = || {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    };
    reply();
    for cmd in ["LHLO test", "MAIL FROM:<sender@example.net>"] {
        w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        reply();
    }
    w.write_all(format!("RCPT TO:<{to}>\r\n").as_bytes())
        .unwrap();
    let answer = reply();
    let _ = w.write_all(b"QUIT\r\n");
    answer
}

fn blocking_holds(series: Series, lua_tail: &str) {
    let d = RelayDovecot::start_with(series, "", "0", lua_tail);
    let addr = format!("blockedac@{DOMAIN}");
    let login = |pw: &str| Imap::connect(d.imap_port).login(&addr, pw);
    assert!(login("first-password"), "log:\n{}", d.log());
    assert!(lmtp_rcpt(&d, &addr).starts_with("250"));

    assert_eq!(admin(&d, &["block", &addr]), format!("blocked {addr}\n"));
    for pw in ["first-password", "a-strangers-password"] {
        assert!(
            !login(pw),
            "{series:?}: blocked account logged in with {pw}"
        );
    }
    let (known, _) = d.doveadm(&["user", &addr]);
    assert!(!known, "{series:?}: userdb knows a blocked account");
    let rcpt = lmtp_rcpt(&d, &addr);
    assert!(rcpt.starts_with('5'), "{series:?}: LMTP took mail: {rcpt}");
    let maildir = d.mailboxes.join(&addr);
    assert!(
        !maildir.join("password").exists(),
        "{series:?}: the account was created anew"
    );
    // A script blind to `blocked` sees no password and asks doveauth, which refuses.
    if !lua_tail.is_empty() {
        assert!(
            d.service_log("doveauth").contains(&format!(
                "registration rejected: account is blocked: {addr}"
            )),
            "{series:?}: doveauth log:\n{}",
            d.service_log("doveauth")
        );
    }

    assert_eq!(
        admin(&d, &["unblock", &addr]),
        format!("unblocked {addr}\n")
    );
    assert!(login("first-password"), "{series:?}: after unblock");
    assert!(!login("a-strangers-password"));
    assert!(lmtp_rcpt(&d, &addr).starts_with("250"));
}

#[test]
fn blocking_holds_with_the_relays_script_this_machine() {
    blocking_holds(Series::Host, "");
}

#[test]
fn blocking_holds_with_a_script_blind_to_blocked_this_machine() {
    blocking_holds(Series::Host, BLIND_TO_BLOCKED);
}

#[test]
fn blocking_holds_with_a_script_blind_to_blocked_debian13() {
    blocking_holds(Series::Debian13, BLIND_TO_BLOCKED);
}
