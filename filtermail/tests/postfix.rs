//! filtermail behind a real Postfix: a private Postfix instance on loopback with the
//! relay's `smtpd_proxy_filter` arrangement (submission port → filtermail → reinjection
//! port), relaying accepted mail to a local sink. Skipped when Postfix is not installed or
//! the test does not run as root (Postfix's master must start as root).
#![allow(clippy::unwrap_used, reason = "test setup fails loudly")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::sink;
use common::{Daemon, Eol, eml, free_port};

const POSTFIX: &str = "/usr/sbin/postfix";

/// A private Postfix instance; stopped on drop.
struct Postfix {
    conf: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new(POSTFIX)
            .arg("-c")
            .arg(&self.conf)
            .arg("stop")
            .output();
    }
}

fn runnable() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    Path::new(POSTFIX).exists() && root
}

fn start_postfix(submit: u16, filter: u16, reinject: u16, relay: u16) -> Postfix {
    let dir = tempfile::tempdir().unwrap();
    // Postfix's unprivileged processes must reach the queue below this directory.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = dir.path();
    let conf = root.join("etc");
    for d in ["etc", "spool", "data"] {
        std::fs::create_dir(root.join(d)).unwrap();
    }
    let chown = Command::new("chown")
        .arg("postfix")
        .arg(root.join("data"))
        .status()
        .unwrap();
    assert!(chown.success());
    std::fs::write(
        conf.join("main.cf"),
        format!(
            "compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.test
mydestination =
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{relay}
smtp_tls_security_level = none
smtputf8_enable = no
maillog_file_prefixes = {root}
maillog_file = {root}/maillog
",
            root = root.display()
        ),
    )
    .unwrap();
    // The proxy arrangement of the relay's master.cf: submission through the filter,
    // the reinjection listener without it.
    std::fs::write(
        conf.join("master.cf"),
        format!(
            "127.0.0.1:{submit} inet n - n - - smtpd
  -o smtpd_proxy_filter=127.0.0.1:{filter}
127.0.0.1:{reinject} inet n - n - 10 smtpd
  -o smtpd_proxy_filter=
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"
        ),
    )
    .unwrap();
    let out = Command::new(POSTFIX)
        .arg("-c")
        .arg(&conf)
        .arg("start")
        .output()
        .unwrap();
    assert!(out.status.success(), "postfix start: {out:?}");
    Postfix { conf, _dir: dir }
}

/// Waits (bounded) until `port` accepts connections.
async fn wait_listening(port: u16) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("postfix did not listen on {port}");
}

impl Postfix {
    fn maillog(&self) -> String {
        let log = self.conf.parent().unwrap().join("maillog");
        String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned()
    }

    fn queue_is_empty(&self) -> bool {
        let out = Command::new("postqueue")
            .arg("-c")
            .arg(&self.conf)
            .arg("-p")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("Mail queue is empty")
    }
}

/// Incoming mail that filtermail accepted but Postfix cannot deliver comes back to no one:
/// filtermail reinjects it with `NOTIFY=NEVER`, so Postfix's bounce daemon finds no
/// recipient to report and sends nothing (a bounce would carry the message, which only the
/// incoming filter saw, to a sender that may be forged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_incoming_mail_is_not_bounced() {
    if !runnable() {
        eprintln!("skipped: needs {POSTFIX} and root");
        return;
    }
    // Postfix relays everything to this sink, which refuses bob: a permanent failure.
    let mut script = chatmail_smtp::testing::Script::reinjection("250 2.0.0 Ok: queued");
    script.refuse_rcpt = Some(("bob@", "550 5.1.1 <bob@chat.example.org>: User unknown"));
    let sink = chatmail_smtp::testing::FakeServer::start(script).await;
    let (port25, reinject) = (free_port(), free_port());
    let fm = Daemon::start("incoming", reinject, "", &[("FILTERMAIL_SKIP_DKIM", "1")]);
    let postfix = start_postfix(port25, fm.port, reinject, sink.port);
    wait_listening(port25).await;
    let from = "alice@remote.example";
    let to = "bob@chat.example.org";
    let mut c = common::connect_port(port25).await;
    assert!(c.cmd("EHLO peer.example").await.starts_with("250"));
    let msg = eml("plain.eml", from, to, "cleartext", Eol::Crlf);
    let r = c.transaction(from, &[to], &msg).await;
    assert!(r.starts_with("250"), "{r}");
    for _ in 0..300 {
        if postfix.maillog().contains("status=bounced") && postfix.queue_is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = postfix.maillog();
    assert!(
        log.contains("status=bounced"),
        "not delivered nor bounced: {log}"
    );
    assert!(postfix.queue_is_empty(), "{log}");
    assert!(!log.contains("non-delivery notification"), "{log}");
    assert!(
        sink.messages().iter().all(|m| !m.from.is_empty()),
        "a bounce left: {:?}",
        sink.messages()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_real_postfix() {
    if !runnable() {
        eprintln!("skipped: needs {POSTFIX} and root");
        return;
    }
    let sink = sink::start("250 2.0.0 Ok: queued").await;
    let (submit, reinject) = (free_port(), free_port());
    let fm = Daemon::start("outgoing", reinject, "", &[]);
    let _postfix = start_postfix(submit, fm.port, reinject, sink.port);
    let mut client = None;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", submit))
            .await
            .is_ok()
        {
            client = Some(());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(client.is_some(), "postfix did not listen");
    let from = "alice@chat.example.org";
    let to = "bob@remote.example";
    let mut c = common::connect_port(submit).await;
    assert!(c.cmd("EHLO client.example").await.starts_with("250"));
    let plain = eml("plain.eml", from, to, "x", Eol::Crlf);
    assert_eq!(
        c.transaction(from, &[to], &plain).await,
        "523 Encryption Needed: Invalid Unencrypted Mail"
    );
    let enc = eml("encrypted.eml", from, to, "x", Eol::Crlf);
    let r = c.transaction(from, &[to], &enc).await;
    assert!(r.starts_with("250"), "{r}");
    let mut delivered = Vec::new();
    for _ in 0..100 {
        delivered = sink.messages();
        if !delivered.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(delivered.len(), 1, "Postfix relayed the accepted message");
    // Postfix prepends its Received header; the message itself arrives unchanged.
    assert!(delivered[0].data.ends_with(&enc));
    assert_eq!(delivered[0].rcpts, vec![to.to_string()]);
}
