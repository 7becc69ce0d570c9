//! Against a real Dovecot (Debian's dovecot-core): `mail_attribute_dict` on our socket,
//! IMAP METADATA from a client, and an LMTP delivery whose push hook (the project's Lua
//! script, `relay/dovecot/push_notification.lua`) sets `/private/messagenew`. Skipped when
//! Dovecot is not installed or the test does not run as root (Dovecot's master needs it).
// Test helpers outside #[test] functions: a failed step should panic with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const PUSH_LUA: &str = include_str!("../../relay/dovecot/push_notification.lua");

fn dovecot_available() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    // This test writes Dovecot 2.3's configuration language; 2.4 (Debian 13) is covered by
    // tests/tests/relay_dovecot.rs with the relay's 2.4 templates.
    let installed = Command::new("dovecot")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"2.3."));
    let vmail = Command::new("id")
        .arg("vmail")
        .output()
        .is_ok_and(|o| o.status.success());
    root && installed && vmail
}

/// A Dovecot master with its own config in `dir`; stopped on drop.
struct Dovecot {
    conf: PathBuf,
    imap_port: u16,
    lmtp_port: u16,
}

impl Dovecot {
    fn start(dir: &Path, vmail: &Path, socket: &Path) -> Dovecot {
        let (imap_port, lmtp_port) = (closed_port(), closed_port());
        fs::write(dir.join("push_notification.lua"), PUSH_LUA).unwrap();
        let conf = dir.join("dovecot.conf");
        let d = dir.display();
        let v = vmail.display();
        fs::write(
            &conf,
            format!(
                "base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
ssl = no
protocols = imap lmtp
listen = 127.0.0.1
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:{v}/%u
mail_uid = vmail
mail_gid = vmail
passdb {{
  driver = static
  args = password=pass
}}
userdb {{
  driver = static
  args = uid=vmail gid=vmail home={v}/%u
}}
imap_metadata = yes
mail_attribute_dict = proxy:{}:metadata
service imap-login {{
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
protocol lmtp {{
  mail_plugins = $mail_plugins mail_lua notify push_notification push_notification_lua
}}
plugin {{
  push_notification_driver = lua:file={d}/push_notification.lua
}}
",
                socket.display()
            ),
        )
        .unwrap();
        // The master daemonizes and keeps inherited pipes open: no captured output.
        let status = Command::new("dovecot")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "dovecot failed to start");
        Dovecot {
            conf,
            imap_port,
            lmtp_port,
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("dovecot")
            .arg("-c")
            .arg(&self.conf)
            .arg("stop")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs IMAP `commands` one at a time, each tagged, requiring a tagged `OK` for each;
/// returns every line read.
async fn imap(port: u16, commands: &[&str]) -> String {
    let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    let mut all = String::new();
    let mut line = String::new();
    r.read_line(&mut line).await.unwrap();
    for (i, cmd) in commands.iter().enumerate() {
        let tag = format!("t{i}");
        w.write_all(format!("{tag} {cmd}\r\n").as_bytes())
            .await
            .unwrap();
        loop {
            line.clear();
            assert!(r.read_line(&mut line).await.unwrap() > 0, "{all}");
            all.push_str(&line);
            if line.starts_with(&format!("{tag} ")) {
                assert!(line.starts_with(&format!("{tag} OK")), "{all}");
                break;
            }
        }
    }
    all
}

/// Delivers a small message over LMTP, requiring the expected reply to each step.
async fn lmtp_deliver(port: u16, from: &str, to: &str) {
    let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    let mut reply = async || {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            assert!(r.read_line(&mut line).await.unwrap() > 0);
            text.push_str(&line);
            if line.as_bytes().get(3) == Some(&b' ') {
                return text;
            }
        }
    };
    assert!(reply().await.starts_with("220"));
    for (cmd, code) in [
        ("LHLO localhost".to_owned(), "250"),
        (format!("MAIL FROM:<{from}>"), "250"),
        (format!("RCPT TO:<{to}>"), "250"),
        ("DATA".to_owned(), "354"),
        (
            format!("From: {from}\r\nTo: {to}\r\nSubject: [...]\r\n\r\nhello\r\n."),
            "250",
        ),
    ] {
        w.write_all(format!("{cmd}\r\n").as_bytes()).await.unwrap();
        let text = reply().await;
        assert!(text.starts_with(code), "{cmd}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_metadata_and_lmtp_push_through_real_dovecot() {
    if !dovecot_available() {
        eprintln!("skipped: needs root, the vmail user and dovecot-core");
        return;
    }
    let (url, mut rx) = start_server(Arc::new(|_: &str| 200)).await;
    let mut s = Service::new(&url, "");
    // Dovecot's mail processes run as vmail: they must reach the socket and mailboxes.
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let chown = Command::new("chown")
        .arg("vmail:vmail")
        .arg(&s.vmail)
        .status()
        .unwrap();
    assert!(chown.success());
    s.start();
    fs::set_permissions(&s.socket, fs::Permissions::from_mode(0o777)).unwrap();
    let dovecot = Dovecot::start(s.dir.path(), &s.vmail, &s.socket);

    let out = imap(
        dovecot.imap_port,
        &[
            "LOGIN user@example.org pass",
            "SETMETADATA INBOX (/private/devicetoken \"tok-dovecot\")",
            "GETMETADATA INBOX /private/devicetoken",
            "GETMETADATA \"\" /shared/vendor/deltachat/irohrelay",
            "GETMETADATA \"\" /shared/vendor/deltachat/maxsmtprecipients",
            "LOGOUT",
        ],
    )
    .await;
    assert!(
        out.contains("/private/devicetoken {11}\r\ntok-dovecot)"),
        "{out}"
    );
    assert!(
        out.contains("/shared/vendor/deltachat/irohrelay {19}\r\nhttps://example.org)"),
        "{out}"
    );
    assert!(
        out.contains("/shared/vendor/deltachat/maxsmtprecipients {4}\r\n1000)"),
        "{out}"
    );
    assert!(
        s.metadata_json(USER)
            .starts_with(r#"{"devicetoken": {"tok-dovecot": "#)
    );

    lmtp_deliver(dovecot.lmtp_port, "other@example.org", USER).await;
    assert_eq!(next(&mut rx).await.token, "tok-dovecot");
    wait_until(|| s.queue_files().is_empty(), "empty queue", || s.log());

    // A message from the user to themselves triggers no notification.
    lmtp_deliver(dovecot.lmtp_port, USER, USER).await;
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(500), rx.recv())
            .await
            .is_err()
    );
    drop(dovecot);
}

/// Sends one tagged IMAP command after logging in and returns its tagged reply line.
async fn imap_status(port: u16, login: &str, cmd: &str) -> String {
    let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    r.read_line(&mut line).await.unwrap();
    let mut tagged = String::new();
    for (tag, c) in [("a", login), ("b", cmd)] {
        w.write_all(format!("{tag} {c}\r\n").as_bytes())
            .await
            .unwrap();
        loop {
            line.clear();
            assert!(r.read_line(&mut line).await.unwrap() > 0);
            if line.starts_with(&format!("{tag} ")) {
                tagged = line.clone();
                break;
            }
        }
    }
    tagged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_and_surplus_tokens_through_real_dovecot() {
    if !dovecot_available() {
        eprintln!("skipped: needs root, the vmail user and dovecot-core");
        return;
    }
    let mut s = Service::new(&format!("http://127.0.0.1:{}/", closed_port()), "");
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let chown = Command::new("chown")
        .arg("vmail:vmail")
        .arg(&s.vmail)
        .status()
        .unwrap();
    assert!(chown.success());
    s.start();
    fs::set_permissions(&s.socket, fs::Permissions::from_mode(0o777)).unwrap();
    let dovecot = Dovecot::start(s.dir.path(), &s.vmail, &s.socket);
    let login = "LOGIN user@example.org pass";
    let set = |t: &str| format!("SETMETADATA INBOX (/private/devicetoken \"{t}\")");

    // Longer than the cap: the client is told no, nothing is stored.
    let long = "L".repeat(chatmail_metadata::MAX_TOKEN_LEN + 1);
    let reply = imap_status(dovecot.imap_port, login, &set(&long)).await;
    assert!(reply.starts_with("b NO"), "{reply}");
    assert!(!s.metadata_json(USER).contains("LLLL"));
    s.wait_log("device token of 4097 bytes refused");

    // A token of the size Delta Chat sends today is kept.
    let delta = format!("openpgp:{}", "Q".repeat(912));
    let reply = imap_status(dovecot.imap_port, login, &set(&delta)).await;
    assert!(reply.starts_with("b OK"), "{reply}");
    assert!(s.metadata_json(USER).contains(&delta));

    // 25 devices: the 20 set last are kept.
    for i in 0..25 {
        let reply = imap_status(dovecot.imap_port, login, &set(&format!("dev{i:02}"))).await;
        assert!(reply.starts_with("b OK"), "{reply}");
    }
    let want: Vec<String> = (5..25).map(|i| format!("dev{i:02}")).collect();
    assert_eq!(
        s.tokens(USER).await,
        format!("O{}\n", want.join(" ")).into_bytes()
    );
    drop(dovecot);
}
