//! Hostile input against the real filtermail on its SMTP port (outgoing and incoming mode).
//!
//! As for the dict daemons: a clear SMTP reply or a closed connection for the offender,
//! bounded memory, other clients served meanwhile, nothing written, no panic in the log.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: failing loudly is the point"
)]

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chatmail_tests::dovecot::free_port;
use chatmail_tests::process::{ensure_nofile, status_kib};
use chatmail_tests::service::binary;

const MIB: usize = 1024 * 1024;

struct Filtermail {
    child: Child,
    root: tempfile::TempDir,
    port: u16,
}

impl Filtermail {
    /// filtermail in `mode` with a 1 MiB message limit; reinjection goes to a closed port.
    fn start(mode: &str) -> Filtermail {
        let bin = binary("filtermail", "filtermail");
        let root = tempfile::Builder::new()
            .prefix("hostile-smtp")
            .tempdir_in("/tmp")
            .unwrap();
        let mailboxes = root.path().join("mail");
        std::fs::create_dir(&mailboxes).unwrap();
        let (port, http_port, closed) = (free_port(), free_port(), free_port());
        let ini = root.path().join("chatmail.ini");
        std::fs::write(
            &ini,
            format!(
                "[params]\nmail_domain = chat.example.org\nmailboxes_dir = {}\nmax_message_size = {MIB}\nfiltermail_smtp_port = {port}\nfiltermail_smtp_port_incoming = {port}\nfiltermail_http_port_incoming = {http_port}\npostfix_reinject_port = {closed}\npostfix_reinject_port_incoming = {closed}\n",
                mailboxes.display()
            ),
        )
        .unwrap();
        let log = File::create(root.path().join("filtermail.log")).unwrap();
        let child = Command::new(bin)
            .arg(&ini)
            .arg(mode)
            // Incoming mode must not ask the internet for DKIM keys.
            .env("FILTERMAIL_SKIP_DKIM", "1")
            // Its metrics socket in the scratch root, not in a relay's /run/filtermail.
            .env(
                "CHATMAIL_METRICS_SOCKET",
                root.path().join("metrics.socket"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "filtermail did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Filtermail { child, root, port }
    }

    fn connect(&self) -> Smtp {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut smtp = Smtp {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        };
        let greeting = smtp.reply().expect("greeting");
        assert!(greeting.starts_with("220"), "{greeting}");
        smtp
    }

    fn rss_kib(&self) -> u64 {
        status_kib(self.child.id(), "VmRSS:")
    }

    fn assert_serving(&self) {
        let mut c = self.connect();
        assert_eq!(c.command("NOOP").as_deref(), Some("250 OK"));
    }

    fn finish(mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "filtermail exited"
        );
        self.assert_serving();
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let log =
            std::fs::read_to_string(self.root.path().join("filtermail.log")).unwrap_or_default();
        assert!(!log.contains("panicked"), "panic in log:\n{log}");
        assert_eq!(
            std::fs::read_dir(self.root.path().join("mail"))
                .unwrap()
                .count(),
            0,
            "filtermail wrote below mailboxes_dir"
        );
    }
}

impl Drop for Filtermail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Smtp {
    /// One reply (the last line of a multi-line one), without CRLF; `None` on EOF/reset.
    fn reply(&mut self) -> Option<String> {
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("reading reply: {e}"),
            }
            let line = line.trim_end().to_owned();
            if line.get(3..4) != Some("-") {
                return Some(line);
            }
        }
    }

    fn command(&mut self, cmd: &str) -> Option<String> {
        self.writer
            .write_all(format!("{cmd}\r\n").as_bytes())
            .ok()?;
        self.reply()
    }

    fn code(&mut self, cmd: &str) -> String {
        let reply = self
            .command(cmd)
            .unwrap_or_else(|| panic!("closed after {cmd:?}"));
        reply.get(..3).unwrap().to_owned()
    }
}

#[test]
fn bad_commands_get_smtp_errors() {
    let f = Filtermail::start("outgoing");
    let mut c = f.connect();
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
        c.writer.write_all(cmd).unwrap();
        let reply = c
            .reply()
            .unwrap_or_else(|| panic!("closed after {:?}", String::from_utf8_lossy(cmd)));
        assert!(
            reply.starts_with(code),
            "{:?} -> {reply}",
            String::from_utf8_lossy(cmd)
        );
    }
    // A bare LF and an over-long line end only their own connection, with a reply.
    let mut bare = f.connect();
    bare.writer.write_all(b"NOOP\n").unwrap();
    assert!(bare.reply().is_some_and(|r| r.starts_with("500")));
    let mut long = f.connect();
    let mut line = vec![b'X'; MIB];
    line.extend_from_slice(b"\r\n");
    let _ = long.writer.write_all(&line);
    let reply = long.reply();
    assert!(
        reply.as_deref().is_none_or(|r| r.starts_with("500")),
        "{reply:?}"
    );
    assert_eq!(c.code("NOOP"), "250");
    f.finish();
}

#[test]
fn hundred_mib_message_is_refused_in_bounded_memory() {
    let f = Filtermail::start("outgoing");
    let rss = f.rss_kib();
    let mut c = f.connect();
    assert_eq!(c.code("EHLO client"), "250");
    assert_eq!(c.code("MAIL FROM:<sender@chat.example.org>"), "250");
    assert_eq!(c.code("RCPT TO:<rcpt@example.org>"), "250");
    assert_eq!(c.code("DATA"), "354");
    let mut block = Vec::with_capacity(MIB);
    while block.len() < MIB {
        block.extend_from_slice(&[b'a'; 998]);
        block.extend_from_slice(b"\r\n");
    }
    let other = std::thread::spawn({
        let port = f.port;
        move || {
            // Meanwhile another client is served.
            let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
            let mut smtp = Smtp {
                reader: BufReader::new(s.try_clone().unwrap()),
                writer: s,
            };
            assert!(smtp.reply().unwrap().starts_with("220"));
            smtp.code("NOOP")
        }
    });
    for _ in 0..100 {
        c.writer.write_all(&block).unwrap();
    }
    c.writer.write_all(b".\r\n").unwrap();
    assert_eq!(c.reply().as_deref().map(|r| &r[..3]), Some("552"));
    assert_eq!(other.join().unwrap(), "250");
    // The connection goes on with the next transaction.
    assert_eq!(c.code("RSET"), "250");
    let grown = f.rss_kib().saturating_sub(rss);
    assert!(
        grown < 16 * 1024,
        "RSS grew by {grown} KiB for a 100 MiB message"
    );
    f.finish();
}

#[test]
fn slowloris_and_half_closed_clients() {
    let f = Filtermail::start("incoming");
    let mut slow = f.connect();
    let mut writer = slow.writer.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for b in b"NOOP slowly" {
            writer.write_all(&[*b]).unwrap();
            std::thread::sleep(Duration::from_millis(200));
        }
        writer.write_all(b"\r\n").unwrap();
    });
    let mut served = 0;
    while !trickle.is_finished() {
        f.assert_serving();
        served += 1;
    }
    trickle.join().unwrap();
    assert!(
        served >= 10,
        "only {served} clients served during the trickle"
    );
    assert_eq!(slow.reply().as_deref(), Some("250 OK"));
    // Command, then the write side shut: the reply still comes, then EOF.
    let mut c = f.connect();
    c.writer.write_all(b"NOOP\r\n").unwrap();
    c.writer.shutdown(Shutdown::Write).unwrap();
    assert_eq!(c.reply().as_deref(), Some("250 OK"));
    assert_eq!(c.reply(), None);
    // Gone in the middle of DATA.
    let mut c = f.connect();
    assert_eq!(c.code("MAIL FROM:<a@example.org>"), "250");
    assert_eq!(c.code("RCPT TO:<abcdefghi@chat.example.org>"), "250");
    assert_eq!(c.code("DATA"), "354");
    c.writer.write_all(b"Subject: half\r\n\r\nbody").unwrap();
    drop(c);
    f.finish();
}

#[test]
fn two_thousand_idle_smtp_connections() {
    const IDLE: usize = 2000;
    ensure_nofile(IDLE as u64 + 200);
    let f = Filtermail::start("outgoing");
    f.assert_serving();
    let rss = f.rss_kib();
    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", f.port)).unwrap();
            if i % 2 == 0 {
                s.write_all(b"EHLO half-").unwrap();
            }
            s
        })
        .collect();
    for _ in 0..20 {
        f.assert_serving();
    }
    let grown = f.rss_kib().saturating_sub(rss);
    eprintln!("{IDLE} idle SMTP connections: RSS +{grown} KiB");
    assert!(
        // Each session reserves a 64 KiB read buffer (about 40 KiB of it resident).
        grown < 128 * 1024,
        "{IDLE} idle connections cost {grown} KiB"
    );
    drop(idle);
    f.finish();
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

#[test]
fn mime_bombs_get_a_verdict() {
    for mode in ["outgoing", "incoming"] {
        let f = Filtermail::start(mode);
        let rss = f.rss_kib();
        for (parts, depth) in [(10_000, 0), (1, 1_000), (2_000, 500)] {
            let mut c = f.connect();
            assert_eq!(c.code("EHLO client"), "250");
            assert_eq!(c.code("MAIL FROM:<sender@chat.example.org>"), "250");
            assert_eq!(c.code("RCPT TO:<abcdefghi@chat.example.org>"), "250");
            assert_eq!(c.code("DATA"), "354");
            let bomb = mime_bomb(parts, depth);
            assert!(bomb.len() < MIB, "bomb of {} bytes", bomb.len());
            c.writer.write_all(&bomb).unwrap();
            c.writer.write_all(b".\r\n").unwrap();
            // Cleartext is refused (or, in incoming mode without a marker, passed on to the
            // closed reinjection port: a 4xx); either way a verdict, not a crash.
            let reply = c.reply().expect("a verdict for the MIME bomb");
            assert!(
                reply.starts_with('4') || reply.starts_with('5'),
                "{mode} {parts}x{depth}: {reply}"
            );
            f.assert_serving();
        }
        let grown = f.rss_kib().saturating_sub(rss);
        assert!(grown < 64 * 1024, "RSS grew by {grown} KiB");
        f.finish();
    }
}
