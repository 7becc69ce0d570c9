//! Black-box tests of the doveauth binary over its real unix socket.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: failing loudly is the point"
)]

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use support::{Client, Daemon, passdb};

const BIN: &str = env!("CARGO_BIN_EXE_doveauth");
const DOMAIN: &str = "chat.example.org";

fn start() -> Daemon {
    Daemon::start(BIN, DOMAIN, "")
}

fn json_password(reply: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(reply.strip_prefix('O').unwrap().trim_end()).unwrap();
    v["password"].as_str().unwrap().to_owned()
}

#[test]
fn first_login_creates_then_serves_the_same_hash() {
    let d = start();
    let mut c = d.client();
    c.send(b"H3\t2\t0\t\tauth\n");
    let addr = format!("abcdefghi@{DOMAIN}");
    assert_eq!(c.ask(&format!("Lshared/userdb/{addr}\t{addr}")), "N\n");
    let created = c.ask(&passdb("secret-password", &addr));
    let expected_prefix = format!(
        "O{{\"addr\": \"{addr}\", \"home\": \"{}/{addr}\", \"uid\": \"vmail\", \"gid\": \"vmail\", \"password\": \"{{SHA512-CRYPT}}$6$",
        d.mailboxes.display()
    );
    assert!(created.starts_with(&expected_prefix), "{created}");
    assert!(created.ends_with("\"}\n"));
    let hash = json_password(&created);
    let maildir = d.mailboxes.join(&addr);
    assert_eq!(
        std::fs::read_to_string(maildir.join("password")).unwrap(),
        hash
    );
    assert!(maildir.join("enforceE2EEincoming").exists());

    // A wrong password gets the stored hash (Dovecot then fails the login) and changes nothing.
    let again = c.ask(&passdb("other-password", &addr));
    assert_eq!(json_password(&again), hash);
    assert_eq!(c.ask(&format!("Lshared/userdb/{addr}\t{addr}")), again);
    assert_eq!(
        std::fs::read_to_string(maildir.join("password")).unwrap(),
        hash
    );

    // The stored hash is the glibc one: an independent implementation verifies it.
    let mcf = hash.strip_prefix("{SHA512-CRYPT}").unwrap();
    let out = std::process::Command::new("python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt,sys; print(crypt.crypt(sys.argv[1], sys.argv[2]) == sys.argv[2])",
        ])
        .args(["secret-password", mcf])
        .output();
    if let Ok(out) = out
        && out.status.success()
    {
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "True");
    }
    let (ok, stderr) = d.stop();
    assert!(ok, "clean exit on SIGTERM: {stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l == format!("Created address: {addr}")),
        "{stderr}"
    );
}

#[test]
fn refusals_reply_n_and_create_nothing() {
    let d = start();
    let mut c = d.client();
    for (user, pw) in [
        ("abcdefghi@other.org".to_owned(), "secret-password"),
        (format!("short@{DOMAIN}"), "secret-password"),
        (format!("abcdefghij@{DOMAIN}"), "secret-password"),
        (format!("Abcdefghi@{DOMAIN}"), "secret-password"),
        (format!("abcdefghi@{DOMAIN}"), "short"),
        (format!("abc/defgh@{DOMAIN}"), "secret-password"),
        (format!("../../etc@{DOMAIN}"), "secret-password"),
        // Dovecot tab-escapes control characters: this is `abcdefgh<TAB>@...` on the wire.
        (format!("abcdefgh\u{1}t@{DOMAIN}"), "secret-password"),
        (format!("abcdefgh\u{1}0@{DOMAIN}"), "secret-password"),
    ] {
        assert_eq!(c.ask(&passdb(pw, &user)), "N\n", "{user:?}");
    }
    let left: Vec<_> = std::fs::read_dir(&d.mailboxes)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(!d.dir.path().join("etc@chat.example.org").exists());
}

#[test]
fn malformed_requests_fail_without_dropping_the_connection() {
    let d = start();
    let mut c = d.client();
    assert_eq!(c.ask("Lnoslashes\tx"), "F\n");
    assert_eq!(c.ask("Lpriv/userdb/x@y\tx"), "F\n");
    assert_eq!(c.ask("Lshared/passdb/nouser\tx"), "F\n");
    assert_eq!(c.ask("Lshared/passdb/pw\\"), "F\n");
    c.send(b"Lshared/userdb/\xff\xfe@chat.example.org\tx\n");
    assert_eq!(c.line(), "F\n");
    c.send(b"\n   \n");
    assert_eq!(c.ask("I0\t0\tshared/other/"), "\n");
    assert_eq!(c.ask("C42"), "F\n", "commit of unknown transaction");
    assert_eq!(c.ask(&format!("Lshared/userdb/x@{DOMAIN}\tx")), "N\n");

    // An over-long line closes only that connection.
    let mut bad = d.client();
    bad.send(&vec![b'L'; 200_000]);
    assert!(bad.closed());
    assert_eq!(c.ask(&format!("Lshared/userdb/x@{DOMAIN}\tx")), "N\n");
}

#[test]
fn iterate_lists_accounts_with_password() {
    let d = start();
    let mut c = d.client();
    for u in ["aaaaaaaaa", "bbbbbbbbb"] {
        assert!(
            c.ask(&passdb("secret-password", &format!("{u}@{DOMAIN}")))
                .starts_with('O')
        );
    }
    std::fs::create_dir(d.mailboxes.join(format!("nopasswd@{DOMAIN}"))).unwrap();
    std::fs::create_dir(d.mailboxes.join("pending_notifications")).unwrap();
    c.send(b"I0\t0\tshared/userdb/\n");
    let mut rows = HashSet::new();
    loop {
        let l = c.line();
        if l == "\n" {
            break;
        }
        rows.insert(l);
    }
    let expected: HashSet<String> = ["aaaaaaaaa", "bbbbbbbbb"]
        .iter()
        .map(|u| format!("Oshared/userdb/{u}@{DOMAIN}\t\n"))
        .collect();
    assert_eq!(rows, expected);
}

#[test]
fn concurrent_first_logins_create_one_account() {
    let d = start();
    let addr = format!("racerace1@{DOMAIN}");
    let n = 100;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (socket, barrier, addr) = (d.socket.clone(), barrier.clone(), addr.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(&socket);
                barrier.wait();
                json_password(&c.ask(&passdb(&format!("password-{i:04}"), &addr)))
            })
        })
        .collect();
    let hashes: HashSet<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(hashes.len(), 1, "every login saw the one stored hash");
    let stored = std::fs::read_to_string(d.mailboxes.join(&addr).join("password")).unwrap();
    assert!(hashes.contains(&stored));
    let (_, stderr) = d.stop();
    assert_eq!(stderr.matches("Created address: ").count(), 1, "{stderr}");
}

#[test]
fn thousand_connections_at_once_are_served() {
    let d = start();
    let mut clients: Vec<Client> = (0..1000).map(|_| d.client()).collect();
    for c in &mut clients {
        c.send(format!("Lshared/userdb/nobody123@{DOMAIN}\tx\n").as_bytes());
    }
    for c in &mut clients {
        assert_eq!(c.line(), "N\n");
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let d = start();
    let mut c = d.client();
    let addr = format!("pipeline1@{DOMAIN}");
    c.send(
        format!(
            "H3\t2\t0\t\tauth\nLshared/userdb/{addr}\t{addr}\n{}\nLshared/userdb/{addr}\t{addr}\nLbad\n",
            passdb("secret-password", &addr)
        )
        .as_bytes(),
    );
    assert_eq!(c.line(), "N\n");
    let created = c.line();
    assert!(created.starts_with("O{"));
    assert_eq!(c.line(), created);
    assert_eq!(c.line(), "F\n");
}

#[test]
fn ip_relay_uses_bracketed_domain() {
    let d = Daemon::start(BIN, "127.0.0.1", "");
    let mut c = d.client();
    assert!(
        c.ask(&passdb("secret-password", "abcdefghi@[127.0.0.1]"))
            .starts_with("O{\"addr\": \"abcdefghi@[127.0.0.1]\"")
    );
    assert_eq!(
        c.ask(&passdb("secret-password", "abcdefghi@127.0.0.1")),
        "N\n"
    );
}

#[test]
fn usage_and_config_errors_exit_with_codes() {
    // One argument is HTTP mode (tests/http.rs); none or three are a usage error.
    let out = std::process::Command::new(BIN)
        .args(["a", "b", "c"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("doveauth SOCKET_PATH INI_PATH"));
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("chatmail.ini");
    std::fs::write(&ini, "[params]\nmail_domain = x.org\nmax_load_1m = lots\n").unwrap();
    let out = std::process::Command::new(BIN)
        .arg(dir.path().join("s"))
        .arg(&ini)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 3") && err.contains("max_load_1m") && err.contains("lots"),
        "{err}"
    );
}

#[test]
fn dict_lookups_and_creations_are_counted_on_the_metrics_socket() {
    use std::io::Read;
    let d = start();
    let mut c = d.client();
    let addr = format!("abcdefghi@{DOMAIN}");
    assert_eq!(c.ask(&format!("Lshared/userdb/{addr}\t{addr}")), "N\n");
    assert!(c.ask(&passdb("secret-password", &addr)).starts_with('O'));
    assert!(c.ask(&passdb("secret-password", &addr)).starts_with('O'));
    assert!(
        c.ask(&format!("Lshared/userdb/{addr}\t{addr}"))
            .starts_with('O')
    );
    assert_eq!(
        c.ask(&passdb("short", &format!("abcdefghj@{DOMAIN}"))),
        "N\n"
    );
    assert_eq!(c.ask("Lpriv/userdb/x@y\tx"), "F\n");
    let mut text = String::new();
    std::os::unix::net::UnixStream::connect(d.dir.path().join("metrics.socket"))
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    for line in [
        "chatmail_doveauth_accounts_created_total 1",
        "chatmail_doveauth_lookups_total{kind=\"userdb\",result=\"not_found\"} 1",
        "chatmail_doveauth_lookups_total{kind=\"userdb\",result=\"found\"} 1",
        "chatmail_doveauth_lookups_total{kind=\"passdb\",result=\"found\"} 2",
        "chatmail_doveauth_lookups_total{kind=\"passdb\",result=\"not_found\"} 1",
        "chatmail_doveauth_lookups_total{kind=\"passdb\",result=\"failed\"} 1",
        "chatmail_doveauth_creations_refused_total{reason=\"invalid_password\"} 1",
        "chatmail_doveauth_password_hash_duration_seconds_count 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
}
