//! Black-box tests of `doveauth INI` (HTTP `/create`, SPEC §3.9) over real TCP on 127.0.0.1.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: failing loudly is the point"
)]

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};

mod support;

use chatmail_tests::support::{free_port, wait_for_port as wait_connect};
use support::http::{BIN, Conn, DOMAIN, Http, scrape, write_ini};

#[test]
fn creations_and_refusals_are_counted_on_the_metrics_socket() {
    let d = Http::start("");
    let mut c = d.conn();
    assert_eq!(
        c.create(&format!("abcdefghi@{DOMAIN}"), "secret-password"),
        200
    );
    let mut c = d.conn();
    assert_eq!(
        c.create(&format!("abcdefghi@{DOMAIN}"), "secret-password"),
        200
    );
    let mut c = d.conn();
    assert_eq!(c.create(&format!("abcdefghj@{DOMAIN}"), "short"), 403);
    let mut c = d.conn();
    assert_eq!(c.create(&format!("ab@{DOMAIN}"), "secret-password"), 403);
    let text = scrape(&d);
    for line in [
        "chatmail_doveauth_accounts_created_total 1",
        "chatmail_doveauth_lookups_total{kind=\"create\",result=\"found\"} 2",
        "chatmail_doveauth_lookups_total{kind=\"create\",result=\"not_found\"} 2",
        "chatmail_doveauth_creations_refused_total{reason=\"invalid_password\"} 1",
        "chatmail_doveauth_creations_refused_total{reason=\"invalid_name\"} 1",
        "chatmail_doveauth_creations_refused_total{reason=\"nocreate\"} 0",
        // One hash for the creation, one verification for the second login.
        "chatmail_doveauth_password_hash_duration_seconds_count 2",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
}

#[test]
fn create_then_verify_on_one_kept_alive_connection() {
    let d = Http::start("");
    let mut c = d.conn();
    let addr = format!("abcdefghi@{DOMAIN}");
    assert_eq!(c.create(&addr, "secret-password"), 200);
    let maildir = d.mailboxes.join(&addr);
    let hash = std::fs::read_to_string(maildir.join("password")).unwrap();
    assert!(hash.starts_with("{SHA512-CRYPT}$6$"), "{hash}");
    assert!(maildir.join("enforceE2EEincoming").exists());
    // The same connection serves the next request: the existing account's password.
    assert_eq!(c.create(&addr, "secret-password"), 200);
    // A wrong password for an existing account: 403, nothing changes, connection closed.
    assert_eq!(c.create(&addr, "other-password"), 403);
    assert!(c.closed());
    assert_eq!(
        std::fs::read_to_string(maildir.join("password")).unwrap(),
        hash
    );
    let (ok, stderr) = d.stop();
    assert!(ok, "clean exit on SIGTERM: {stderr}");
    let created: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("Created address:"))
        .collect();
    assert_eq!(created, [format!("Created address: {addr}")]);
}

#[test]
fn the_first_tab_splits_and_passwords_keep_theirs() {
    let d = Http::start("");
    let addr = format!("tabbed123@{DOMAIN}");
    assert_eq!(d.conn().create(&addr, "pass\tword\twith tabs"), 200);
    assert_eq!(d.conn().create(&addr, "pass\tword\twith tabs"), 200);
    assert_eq!(d.conn().create(&addr, "pass"), 403);
    assert_eq!(d.conn().create(&addr, "pass\tword"), 403);
    let utf8 = format!("umlaut123@{DOMAIN}");
    assert_eq!(d.conn().create(&utf8, "pässwörd€"), 200);
    assert_eq!(d.conn().create(&utf8, "passwörd€"), 403);
}

#[test]
fn malformed_requests_get_400_404_501() {
    let d = Http::start("");
    let addr = format!("malformed@{DOMAIN}");
    let mut c = d.conn();
    assert_eq!(
        c.post("/create", b"malformed@chat.example.org\tp\xffssword12")
            .status,
        400
    );
    assert!(c.closed());
    assert_eq!(
        d.conn()
            .post("/create", format!("{addr}\tpass\0word12").as_bytes())
            .status,
        400
    );
    assert_eq!(
        d.conn()
            .post("/create", format!("{addr}\0\tpassword12").as_bytes())
            .status,
        400
    );
    let long = format!("{addr}\t{}", "x".repeat(513 - addr.len() - 1));
    assert_eq!(long.len(), 513);
    assert_eq!(d.conn().post("/create", long.as_bytes()).status, 400);
    let chunked = format!(
        "POST /create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{addr}\tpassword12\r\n0\r\n\r\n",
        addr.len() + 11
    );
    assert_eq!(
        d.conn().raw(chunked.as_bytes()).status,
        400,
        "no Content-Length"
    );
    assert_eq!(
        d.conn()
            .raw(b"POST /create HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
            .status,
        400
    );
    assert_eq!(
        d.conn()
            .post("/other", format!("{addr}\tpassword12").as_bytes())
            .status,
        404
    );
    assert_eq!(d.conn().post("/create/x", b"").status, 404);
    assert_eq!(
        d.conn()
            .raw(b"GET /create HTTP/1.1\r\nHost: x\r\n\r\n")
            .status,
        501
    );
    assert!(!d.mailboxes.join(&addr).exists(), "nothing was created");
    // A body of exactly 512 bytes is accepted.
    let max = format!("{addr}\t{}", "y".repeat(512 - addr.len() - 1));
    assert_eq!(max.len(), 512);
    assert_eq!(d.conn().post("/create", max.as_bytes()).status, 200);
}

#[test]
fn creation_rules_refuse_with_403() {
    let d = Http::start("");
    let mut c = d.conn();
    for (addr, pw) in [
        ("abcdefghi@other.org".to_owned(), "password12"),
        (format!("abcdefghi@{DOMAIN}"), "short"),
        (format!("Abcdefghi@{DOMAIN}"), "password12"),
        (format!("abcd+fghi@{DOMAIN}"), "password12"),
        (format!("abcdefgh@{DOMAIN}"), "password12"),
        (format!("abcdefghij@{DOMAIN}"), "password12"),
        (format!("abc/efghi@{DOMAIN}"), "password12"),
        (format!("a@b@{DOMAIN}"), "password12"),
        (format!("abcdefghi@{DOMAIN}"), ""),
    ] {
        assert_eq!(c.create(&addr, pw), 403, "{addr} {pw}");
        c = d.conn();
    }
    // No TAB at all: an address without a password.
    assert_eq!(
        d.conn()
            .post("/create", format!("abcdefghi@{DOMAIN}").as_bytes())
            .status,
        403
    );
    let entries: Vec<_> = std::fs::read_dir(&d.mailboxes).unwrap().collect();
    assert!(entries.is_empty(), "{entries:?}");
}

#[test]
fn concurrent_first_logins_create_one_account() {
    let d = Http::start("");
    let addr = format!("racer1234@{DOMAIN}");
    let n = 16;
    let barrier = Arc::new(Barrier::new(n));
    let port = d.port;
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut c = Conn::new(port);
                barrier.wait();
                c.create(&addr, "same-password")
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
    let (_, stderr) = d.stop();
    assert_eq!(stderr.matches("Created address:").count(), 1, "{stderr}");
}

#[test]
fn serves_a_tcp_socket_passed_by_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let configured = free_port();
    let passed = free_port();
    let (ini, mailboxes) = write_ini(dir.path(), configured, "");
    let mut child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(format!("127.0.0.1:{passed}"))
        .arg(BIN)
        .arg(&ini)
        .stderr(Stdio::null())
        .spawn()
        .expect("systemd-socket-activate (package systemd)");
    wait_connect(passed);
    let addr = format!("activated@{DOMAIN}");
    assert_eq!(Conn::new(passed).create(&addr, "password12"), 200);
    assert!(mailboxes.join(&addr).join("password").exists());
    assert!(
        TcpStream::connect(("127.0.0.1", configured)).is_err(),
        "the passed socket is used, no own bind"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn bad_command_lines_and_configs() {
    let out = Command::new(BIN).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = Command::new(BIN).args(["a", "b", "c"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("bad.ini");
    std::fs::write(
        &ini,
        "[params]\nmail_domain = x.org\ndoveauth_http_port = 70000\n",
    )
    .unwrap();
    let out = Command::new(BIN).arg(&ini).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("doveauth_http_port"));
}

#[test]
fn blocked_and_tombstoned_addresses_get_403() {
    use std::os::unix::fs::PermissionsExt;
    let d = Http::start("");
    let addr = format!("blocked12@{DOMAIN}");
    assert_eq!(d.conn().create(&addr, "secret-password"), 200);
    let maildir = d.mailboxes.join(&addr);
    std::fs::write(maildir.join("blocked"), "").unwrap();
    // What `chatmail-admin block` does too: a new ctime on the password file, so doveauth's
    // reply cache looks at the account again at once.
    let password = maildir.join("password");
    let mode = std::fs::metadata(&password).unwrap().permissions().mode();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(mode)).unwrap();
    assert_eq!(d.conn().create(&addr, "secret-password"), 403);
    std::fs::remove_file(maildir.join("blocked")).unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(mode)).unwrap();
    assert_eq!(d.conn().create(&addr, "secret-password"), 200);

    // A tombstoned address (an empty tombstone lasts forever) is never created again.
    let gone = format!("tombstone@{DOMAIN}");
    let stones = d.mailboxes.join(".chatmail-admin").join("tombstones");
    std::fs::create_dir_all(&stones).unwrap();
    std::fs::write(stones.join(&gone), "").unwrap();
    assert_eq!(d.conn().create(&gone, "secret-password"), 403);
    assert!(!d.mailboxes.join(&gone).join("password").exists());
}

const NEWEMAIL: &str = env!("CARGO_BIN_EXE_chatmail-newemail");

/// One run of the newemail CGI as fcgiwrap starts it: (header lines, JSON body).
fn newemail(ini: &Path, query: &str) -> (String, serde_json::Value) {
    let out = Command::new(NEWEMAIL)
        .env("CHATMAIL_INI", ini)
        .env("QUERY_STRING", query)
        .env("REQUEST_METHOD", "POST")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\n\n").unwrap();
    (head.to_owned(), serde_json::from_str(body).unwrap())
}

#[test]
fn newemail_creates_invited_accounts_through_doveauth_and_shares_the_rate_cap() {
    let d = Http::start("max_creations_per_minute_total = 3\n");
    let ini = d.dir.path().join("chatmail.ini");
    let config = chatmaild::Config::load(&ini).unwrap();
    let registry = chatmaild::registry::Registry::new(&config);
    registry
        .set_mode(chatmaild::registry::RegistrationMode::InviteOnly)
        .unwrap();
    let now = chatmaild::wall_time::unix_seconds();
    let two = registry.create_invitation(2, None, "", now).unwrap();
    let query = format!("invite={}", two.token);
    for _ in 0..2 {
        let (head, json) = newemail(&ini, &query);
        assert_eq!(head, "Content-Type: application/json");
        let email = json["email"].as_str().unwrap();
        assert!(
            d.mailboxes.join(email).join("password").is_file(),
            "created before the answer"
        );
        let password = json["password"].as_str().unwrap();
        assert!(password.starts_with(&format!("{}:", two.token)));
        assert_eq!(d.conn().create(email, password), 200, "and logs in");
    }
    let (head, json) = newemail(&ini, &query);
    assert_eq!(
        head,
        "Status: 403 Forbidden\nContent-Type: application/json"
    );
    assert!(json["reason"].as_str().unwrap().contains("not valid"));
    assert_eq!(
        registry.invitation(&two.token).unwrap().unwrap().uses_left,
        0
    );

    // The CGI's two creations and a first login's count against one cap of 3.
    let more = registry.create_invitation(5, None, "", now).unwrap();
    let login = format!("{}:long-enough-password", more.token);
    assert_eq!(d.conn().create(&format!("zzzzzzzzz@{DOMAIN}"), &login), 200);
    let (head, json) = newemail(&ini, &format!("invite={}", more.token));
    assert!(
        head.starts_with("Status: 503 Service Unavailable\n"),
        "{head}"
    );
    assert!(json["reason"].as_str().unwrap().contains("try again"));
    let mut c = d.conn();
    let r = c.post(
        "/create",
        format!("yyyyyyyyy@{DOMAIN}\t{}:another-password", more.token).as_bytes(),
    );
    assert_eq!((r.status, r.header("retry-after")), (403, Some("60")));
    assert_eq!(
        registry.invitation(&more.token).unwrap().unwrap().uses_left,
        4,
        "a refusal by the cap uses nothing"
    );
    let accounts = std::fs::read_dir(&d.mailboxes)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("password").is_file())
        .count();
    assert_eq!(accounts, 3, "two by the CGI, one by a login");
    let (clean, log) = d.stop();
    assert!(clean, "{log}");
    assert_eq!(
        log.matches("registration rejected: more than 3 creations per minute")
            .count(),
        2,
        "one line per refusal: {log}"
    );
    assert_eq!(
        log.matches("registration rejected: invalid invitation")
            .count(),
        1,
        "{log}"
    );
}

#[test]
fn registration_mode_is_answered_and_the_cgi_refuses_without_an_invitation() {
    use chatmaild::registry::RegistrationMode;
    // A private nocreate flag: the default one (/etc/chatmail-nocreate) would close every
    // other test's relay on this machine.
    let flag = tempfile::tempdir().unwrap();
    let d = Http::start(&format!(
        "nocreate_file = {}\n",
        flag.path().join("nocreate").display()
    ));
    let ini = d.dir.path().join("chatmail.ini");
    let config = chatmaild::Config::load(&ini).unwrap();
    let registry = chatmaild::registry::Registry::new(&config);
    let mut c = d.conn();
    let r = c.get("/registration");
    assert_eq!((r.status, r.body.as_str()), (200, "open\n"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let (head, json) = newemail(&ini, "");
    assert_eq!(head, "Content-Type: application/json");
    assert!(json["email"].as_str().unwrap().ends_with(DOMAIN));

    let now = chatmaild::wall_time::unix_seconds();
    let inv = registry.create_invitation(1, None, "", now).unwrap();
    for (mode, word, reason) in [
        (
            RegistrationMode::InviteOnly,
            "invite-only\n",
            "This relay accepts new accounts by invitation only.",
        ),
        (
            RegistrationMode::Closed,
            "close\n",
            "This relay does not accept new accounts.",
        ),
    ] {
        registry.set_mode(mode).unwrap();
        // On the same kept-alive connection: the answer follows the mode at once.
        assert_eq!(c.get("/registration").body, word);
        let (head, json) = newemail(&ini, "");
        assert_eq!(
            head, "Status: 403 Forbidden\nContent-Type: application/json",
            "{mode:?}"
        );
        assert_eq!(json["reason"], reason);
    }
    // Closed, a valid invitation is refused too, with the closed reason, and stays unused.
    let (head, json) = newemail(&ini, &format!("invite={}", inv.token));
    assert!(head.starts_with("Status: 403 Forbidden\n"), "{head}");
    assert_eq!(json["reason"], "This relay does not accept new accounts.");
    assert_eq!(
        registry.invitation(&inv.token).unwrap().unwrap().uses_left,
        1
    );

    registry.set_mode(RegistrationMode::Open).unwrap();
    assert_eq!(c.get("/registration").body, "open\n");
    let (head, json) = newemail(&ini, "");
    assert_eq!(head, "Content-Type: application/json");
    let (email, password) = (
        json["email"].as_str().unwrap(),
        json["password"].as_str().unwrap(),
    );
    assert_eq!(d.conn().create(email, password), 200, "and they log in");

    assert_eq!(
        d.conn()
            .raw(b"POST /registration HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            .status,
        501
    );
    assert_eq!(d.conn().get("/registration/x").status, 404);
    let accounts = std::fs::read_dir(&d.mailboxes)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("password").is_file())
        .count();
    assert_eq!(accounts, 1, "only the open relay's login created one");
}

/// A second relay on the same machine gives doveauth another loopback address
/// (`doveauth_http_host`): it listens there and nowhere else, and the newemail CGI finds it
/// there (an invited account exists before the CGI answers).
#[test]
fn listens_on_doveauth_http_host_and_the_cgi_asks_there() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (ini, mailboxes) = write_ini(dir.path(), port, "doveauth_http_host = 127.0.0.2\n");
    let child = Command::new(BIN)
        .arg(&ini)
        .env_remove("LISTEN_FDS")
        .env("CHATMAIL_METRICS_SOCKET", dir.path().join("metrics.socket"))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _child = chatmail_tests::support::KillOnDrop(child);
    chatmail_tests::support::wait_until("doveauth on 127.0.0.2", || {
        TcpStream::connect(("127.0.0.2", port)).is_ok()
    });
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());

    let config = chatmaild::Config::load(&ini).unwrap();
    let registry = chatmaild::registry::Registry::new(&config);
    registry
        .set_mode(chatmaild::registry::RegistrationMode::InviteOnly)
        .unwrap();
    let now = chatmaild::wall_time::unix_seconds();
    let one = registry.create_invitation(1, None, "", now).unwrap();
    let (head, json) = newemail(&ini, &format!("invite={}", one.token));
    assert_eq!(head, "Content-Type: application/json");
    let email = json["email"].as_str().unwrap();
    assert!(mailboxes.join(email).join("password").is_file());
}
