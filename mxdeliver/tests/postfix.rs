//! The transport behind a real Postfix (a private instance in a temporary directory, as
//! `default_transport = lmtp-filtermail:inet:[127.0.0.1]:<port>` like a relay configures it):
//! delivered mail reaches the test MX, a remote rejection makes Postfix bounce, an unreachable
//! MX leaves the message deferred in Postfix's queue. Skipped when Postfix is not installed or
//! the test does not run as root.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test fixtures: a failure should fail the test"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chatmail_smtp::testing::Transcript;
use common::*;
use tokio::net::TcpStream;

struct Postfix {
    dir: PathBuf,
}

impl Postfix {
    fn start(dir: &Path, smtpd_port: u16, lmtp_port: u16) -> Postfix {
        let d = dir.display();
        for sub in ["etc", "spool", "lib"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::write(
            dir.join("etc/main.cf"),
            format!(
                "compatibility_level = 3.6\nqueue_directory = {d}/spool\ndata_directory = {d}/lib\n\
                 mail_owner = postfix\nsetgid_group = postdrop\nmyhostname = relay.test\n\
                 myorigin = relay.test\nmydestination =\ninet_interfaces = 127.0.0.1\n\
                 inet_protocols = ipv4\nmynetworks = 127.0.0.0/8\n\
                 smtpd_relay_restrictions = permit_mynetworks, reject\n\
                 maillog_file_prefixes = {d}\nmaillog_file = {d}/maillog\n\
                 default_transport = lmtp-filtermail:inet:[127.0.0.1]:{lmtp_port}\n\
                 lmtp-filtermail_initial_destination_concurrency = 10000\n\
                 lmtp-filtermail_destination_concurrency_limit = 10000\n"
            ),
        )
        .unwrap();
        let services = [
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "lmtp unix - - n - - lmtp",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
            "lmtp-filtermail unix - - n - 500 lmtp\n  -o syslog_name=postfix/lmtp-filtermail\n  -o lmtp_header_checks=\n  -o lmtp_tls_security_level=none",
        ];
        let master = format!(
            "127.0.0.1:{smtpd_port} inet n - n - - smtpd\n{}\n",
            services.join("\n")
        );
        std::fs::write(dir.join("etc/master.cf"), master).unwrap();
        let chown = Command::new("chown")
            .arg("postfix")
            .arg(dir.join("lib"))
            .status()
            .unwrap();
        assert!(chown.success());
        let out = Command::new("postfix")
            .arg("-c")
            .arg(dir.join("etc"))
            .arg("start")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "postfix start: {out:?} {}",
            Postfix::log_of(dir)
        );
        Postfix {
            dir: dir.to_owned(),
        }
    }

    fn log_of(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("maillog")).unwrap_or_default()
    }

    fn log(&self) -> String {
        Postfix::log_of(&self.dir)
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(self.dir.join("etc"))
            .arg("abort")
            .output();
    }
}

fn can_run_postfix() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    root && Path::new("/usr/sbin/postfix").exists()
}

async fn submit(port: u16, from: &str, rcpts: &[&str]) {
    let mut s = Transcript::connect(("127.0.0.1", port)).await;
    let expect = |reply: String, code: &str| {
        let ok = reply.lines().all(|l| l.starts_with(code));
        assert!(ok, "expected {code}, got {reply:?}");
    };
    let mut cmds = vec![
        "EHLO client.test".to_string(),
        format!("MAIL FROM:<{from}>"),
    ];
    cmds.extend(rcpts.iter().map(|r| format!("RCPT TO:<{r}>")));
    for cmd in cmds {
        expect(s.cmd(&cmd).await, "250");
    }
    expect(s.cmd("DATA").await, "354");
    let msg = format!(
        "From: {from}\r\nTo: {}\r\nSubject: through postfix\r\n\r\n..dotted\r\n.\r\n",
        rcpts.join(", ")
    );
    s.send(msg.as_bytes()).await;
    expect(s.reply().await, "250");
    s.send(b"QUIT\r\n").await;
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool, log: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; maillog:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_delivers_bounces_and_defers() {
    if !can_run_postfix() {
        eprintln!("skipped: needs root and /usr/sbin/postfix");
        return;
    }
    let ca = Ca::new();
    let zone = Zone::default()
        .mx("a.test", &[(10, "mx.a.test")])
        .mx("b.test", &[(10, "mx.b.test")])
        .mx("down.test", &[(10, "mx.down.test")])
        .addr("mx.a.test", "127.0.0.1")
        .addr("mx.b.test", "127.0.0.1")
        .addr("mx.down.test", "127.0.0.2");
    let dns = dns_server(zone).await;
    let tls = ca.server_config(&["mx.a.test", "mx.b.test"]);
    let (smtp_port, mailbox) = smtp_mx(Some(tls)).await;
    let (lmtp, _stop) = start_transport(options(dns, &ca, smtp_port, free_port())).await;

    let dir = std::env::temp_dir().join(format!("mxdeliver-postfix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let smtpd_port = free_port();
    let postfix = Postfix::start(&dir, smtpd_port, lmtp.port());
    // Postfix's master opens its listeners asynchronously after `postfix start` returns.
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", smtpd_port)).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "smtpd did not start: {}",
            postfix.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    submit(
        smtpd_port,
        "sender@a.test",
        &["ok@a.test", "reject@b.test", "x@down.test"],
    )
    .await;

    let delivered = |mb: &Mailbox| {
        mb.lock()
            .unwrap()
            .iter()
            .any(|r| r.rcpts == ["ok@a.test"] && r.from == "sender@a.test" && r.tls)
    };
    wait_for(
        "delivery to ok@a.test",
        || delivered(&mailbox),
        || postfix.log(),
    )
    .await;
    let got = mailbox.lock().unwrap().clone();
    let msg = got.iter().find(|r| r.rcpts == ["ok@a.test"]).unwrap();
    assert!(
        String::from_utf8_lossy(&msg.wire).contains("\r\n..dotted\r\n"),
        "dot-stuffing survives Postfix and the transport"
    );

    let log_has = |needle: &str, status: &str| {
        postfix
            .log()
            .lines()
            .any(|l| l.contains(needle) && l.contains(status))
    };
    wait_for(
        "bounce of reject@b.test",
        || log_has("to=<reject@b.test>", "status=bounced"),
        || postfix.log(),
    )
    .await;
    assert!(
        postfix
            .log()
            .contains("550 5.1.1 No such user (forwarded from mx.b.test)"),
        "{}",
        postfix.log()
    );
    wait_for(
        "deferral of x@down.test",
        || log_has("to=<x@down.test>", "status=deferred"),
        || postfix.log(),
    )
    .await;
    assert!(
        log_has("to=<ok@a.test>", "status=sent"),
        "{}",
        postfix.log()
    );
    // The bounce (null sender) reaches the sender's MX.
    wait_for(
        "bounce message to sender@a.test",
        || {
            mailbox
                .lock()
                .unwrap()
                .iter()
                .any(|r| r.from.is_empty() && r.rcpts == ["sender@a.test"])
        },
        || postfix.log(),
    )
    .await;
    // The deferred message stays in Postfix's queue: nothing was acknowledged that was not sent.
    let deferred = walk_count(&dir.join("spool/deferred"));
    assert_eq!(deferred, 1, "{}", postfix.log());
    drop(postfix);
    let _ = std::fs::remove_dir_all(&dir);
}

fn walk_count(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                walk_count(&e.path())
            } else {
                1
            }
        })
        .sum()
}
