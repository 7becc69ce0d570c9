//! Hostile input against the real filtermail on its SMTP port (outgoing and incoming mode).
//!
//! As for the dict daemons: a clear SMTP reply or a closed connection for the offender,
//! bounded memory, other clients served meanwhile, nothing written, no panic in the log.
#![expect(clippy::unwrap_used, reason = "test code: failing loudly is the point")]

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chatmail_smtp::testing::Transcript;
use chatmail_tests::process::{ensure_nofile, status_kib};
use chatmail_tests::service::binary;
use chatmail_tests::support::{Scratch, free_port, read_lossy, wait_for_port};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const MIB: usize = 1024 * 1024;
/// The one account of the relay: incoming mode refuses recipients without a mailbox.
const ACCOUNT: &str = "abcdefghi@chat.example.org";

struct Filtermail {
    child: Child,
    scratch: Scratch,
    port: u16,
}

impl Filtermail {
    /// filtermail in `mode` with a 1 MiB message limit; reinjection goes to a closed port.
    fn start(mode: &str) -> Filtermail {
        let (port, http_port, closed) = (free_port(), free_port(), free_port());
        let scratch = Scratch::new("hostile-smtp", "chat.example.org", |_| {
            format!(
                "max_message_size = {MIB}\nfiltermail_smtp_port = {port}\nfiltermail_smtp_port_incoming = {port}\nfiltermail_http_port_incoming = {http_port}\npostfix_reinject_port = {closed}\npostfix_reinject_port_incoming = {closed}\n"
            )
        });
        let account = scratch.mailboxes.join(ACCOUNT);
        std::fs::create_dir(&account).unwrap();
        std::fs::write(account.join("password"), "{SHA512-CRYPT}$6$x").unwrap();
        let log = File::create(scratch.path("filtermail.log")).unwrap();
        let child = Command::new(binary("filtermail", "filtermail"))
            .arg(&scratch.ini)
            .arg(mode)
            // Incoming mode must not ask the internet for DKIM keys.
            .env("FILTERMAIL_SKIP_DKIM", "1")
            // Its metrics socket in the scratch root, not in a relay's /run/filtermail.
            .env("CHATMAIL_METRICS_SOCKET", scratch.path("metrics.socket"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        wait_for_port(port);
        Filtermail {
            child,
            scratch,
            port,
        }
    }

    /// A new SMTP session, greeting read.
    async fn connect(&self) -> Transcript {
        Transcript::connect(("127.0.0.1", self.port)).await
    }

    fn rss_kib(&self) -> u64 {
        status_kib(self.child.id(), "VmRSS:")
    }

    async fn assert_serving(&self) {
        let mut c = self.connect().await;
        assert_eq!(c.cmd("NOOP").await, "250 OK");
    }

    async fn finish(mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "filtermail exited"
        );
        self.assert_serving().await;
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let log = read_lossy(&self.scratch.path("filtermail.log"));
        assert!(!log.contains("panicked"), "panic in log:\n{log}");
        let entries = |dir: &std::path::Path| -> Vec<String> {
            std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            entries(&self.scratch.mailboxes),
            [ACCOUNT],
            "filtermail wrote below mailboxes_dir"
        );
        assert_eq!(
            entries(&self.scratch.mailboxes.join(ACCOUNT)),
            ["password"],
            "filtermail wrote into a mailbox"
        );
    }
}

impl Drop for Filtermail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reply code to `cmd`.
async fn code(c: &mut Transcript, cmd: &str) -> String {
    c.cmd(cmd).await.get(..3).unwrap().to_owned()
}

/// Opens a transaction up to the DATA go-ahead.
async fn start_data(c: &mut Transcript, from: &str, to: &str) {
    assert_eq!(code(c, &format!("MAIL FROM:<{from}>")).await, "250");
    assert_eq!(code(c, &format!("RCPT TO:<{to}>")).await, "250");
    assert_eq!(code(c, "DATA").await, "354");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_commands_get_smtp_errors() {
    let f = Filtermail::start("outgoing");
    let mut c = f.connect().await;
    for (cmd, code) in [
        (&b"\xff\xfe\x80garbage\r\n"[..], "500"),
        (b"NO\0OP\r\n", "500"),
        (b"FOO bar\r\n", "500"),
        (b"DATA\r\n", "503"),
        (b"RCPT TO:<a@b>\r\n", "503"),
        (b"MAIL FROM:<no-at-sign>\r\n", "5"),
        (b"MAIL FROM:<a@b@c>\r\n", "5"),
        (b"MAIL FROM:<a\x01b@c.org>\r\n", "5"),
        (b"MAIL FROM:<\xc3(@c.org>\r\n", "5"),
        (b"MAIL FROM:<u@chat.example.org>\r\n", "250"),
        (b"RCPT TO:<>\r\n", "501"),
        (b"RCPT TO:<../../../etc/passwd@chat.example.org>\r\n", "250"),
        (b"RSET\r\n", "250"),
    ] {
        c.send(cmd).await;
        let reply = c
            .try_last_reply()
            .await
            .unwrap_or_else(|| panic!("closed after {:?}", String::from_utf8_lossy(cmd)));
        assert!(
            reply.starts_with(code),
            "{:?} -> {reply}",
            String::from_utf8_lossy(cmd)
        );
    }
    // A bare LF and an over-long line end only their own connection, with a reply.
    let mut bare = f.connect().await;
    bare.send(b"NOOP\n").await;
    assert!(
        bare.try_last_reply()
            .await
            .is_some_and(|r| r.starts_with("500"))
    );
    let mut long = f.connect().await;
    let mut line = vec![b'X'; MIB];
    line.extend_from_slice(b"\r\n");
    let _ = long.stream().write_all(&line).await;
    let reply = long.try_last_reply().await;
    assert!(
        reply.as_deref().is_none_or(|r| r.starts_with("500")),
        "{reply:?}"
    );
    assert_eq!(code(&mut c, "NOOP").await, "250");
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_mib_message_is_refused_in_bounded_memory() {
    let f = Filtermail::start("outgoing");
    let rss = f.rss_kib();
    let mut c = f.connect().await;
    assert_eq!(code(&mut c, "EHLO client").await, "250");
    start_data(&mut c, "sender@chat.example.org", "rcpt@example.org").await;
    let mut block = Vec::with_capacity(MIB);
    while block.len() < MIB {
        block.extend_from_slice(&[b'a'; 998]);
        block.extend_from_slice(b"\r\n");
    }
    let other = tokio::spawn({
        let port = f.port;
        async move {
            // Meanwhile another client is served.
            let mut c = Transcript::connect(("127.0.0.1", port)).await;
            code(&mut c, "NOOP").await
        }
    });
    for _ in 0..100 {
        c.send(&block).await;
    }
    c.send(b".\r\n").await;
    assert_eq!(
        c.try_last_reply().await.as_deref().map(|r| &r[..3]),
        Some("552")
    );
    assert_eq!(other.await.unwrap(), "250");
    // The connection goes on with the next transaction.
    assert_eq!(code(&mut c, "RSET").await, "250");
    let grown = f.rss_kib().saturating_sub(rss);
    assert!(
        grown < 16 * 1024,
        "RSS grew by {grown} KiB for a 100 MiB message"
    );
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_half_closed_clients() {
    let f = Filtermail::start("incoming");
    let mut slow = f.connect().await;
    let trickle = tokio::spawn(async move {
        for b in b"NOOP slowly" {
            slow.send(&[*b]).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        slow.send(b"\r\n").await;
        slow.try_last_reply().await
    });
    let mut served = 0;
    while !trickle.is_finished() {
        f.assert_serving().await;
        served += 1;
    }
    assert_eq!(trickle.await.unwrap().as_deref(), Some("250 OK"));
    assert!(
        served >= 10,
        "only {served} clients served during the trickle"
    );
    // Command, then the write side shut: the reply still comes, then EOF.
    let mut c = f.connect().await;
    c.send(b"NOOP\r\n").await;
    c.stream().shutdown().await.unwrap();
    assert_eq!(c.try_last_reply().await.as_deref(), Some("250 OK"));
    assert_eq!(c.try_last_reply().await, None);
    // Gone in the middle of DATA.
    let mut c = f.connect().await;
    start_data(&mut c, "a@example.org", ACCOUNT).await;
    c.send(b"Subject: half\r\n\r\nbody").await;
    drop(c);
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_smtp_connections() {
    const IDLE: usize = 2000;
    ensure_nofile(IDLE as u64 + 200);
    let f = Filtermail::start("outgoing");
    f.assert_serving().await;
    let rss = f.rss_kib();
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let mut s = TcpStream::connect(("127.0.0.1", f.port)).await.unwrap();
        if i % 2 == 0 {
            s.write_all(b"EHLO half-").await.unwrap();
        }
        idle.push(s);
    }
    for _ in 0..20 {
        f.assert_serving().await;
    }
    let grown = f.rss_kib().saturating_sub(rss);
    eprintln!("{IDLE} idle SMTP connections: RSS +{grown} KiB");
    assert!(
        // Each session reserves a 64 KiB read buffer (about 40 KiB of it resident).
        grown < 128 * 1024,
        "{IDLE} idle connections cost {grown} KiB"
    );
    drop(idle);
    f.finish().await;
}

/// A message with `parts` sibling MIME parts and `depth` levels of nested multiparts.
fn mime_bomb(parts: usize, depth: usize) -> Vec<u8> {
    let mut m = String::from(
        "From: sender@chat.example.org\r\nTo: rcpt@example.org\r\nSubject: bomb\r\nMIME-Version: 1.0\r\n",
    );
    for level in 0..depth {
        m.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"n{level}\"\r\n\r\n--n{level}\r\n"
        ));
    }
    m.push_str("Content-Type: multipart/mixed; boundary=\"wide\"\r\n\r\n");
    for i in 0..parts {
        m.push_str(&format!(
            "--wide\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    m.push_str("--wide--\r\n");
    for level in (0..depth).rev() {
        m.push_str(&format!("--n{level}--\r\n"));
    }
    m.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mime_bombs_get_a_verdict() {
    for mode in ["outgoing", "incoming"] {
        let f = Filtermail::start(mode);
        let rss = f.rss_kib();
        for (parts, depth) in [(10_000, 0), (1, 1_000), (2_000, 500)] {
            let mut c = f.connect().await;
            assert_eq!(code(&mut c, "EHLO client").await, "250");
            // Incoming mail comes from elsewhere (our own domain is refused as its sender).
            let sender = match mode {
                "incoming" => "sender@example.org",
                _ => "sender@chat.example.org",
            };
            start_data(&mut c, sender, ACCOUNT).await;
            let bomb = mime_bomb(parts, depth);
            assert!(bomb.len() < MIB, "bomb of {} bytes", bomb.len());
            c.send(&bomb).await;
            c.send(b".\r\n").await;
            // Cleartext is refused (or, in incoming mode without a marker, passed on to the
            // closed reinjection port: a 4xx); either way a verdict, not a crash.
            let reply = c
                .try_last_reply()
                .await
                .expect("a verdict for the MIME bomb");
            assert!(
                reply.starts_with('4') || reply.starts_with('5'),
                "{mode} {parts}x{depth}: {reply}"
            );
            f.assert_serving().await;
        }
        let grown = f.rss_kib().saturating_sub(rss);
        assert!(grown < 64 * 1024, "RSS grew by {grown} KiB");
        f.finish().await;
    }
}
