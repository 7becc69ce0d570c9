//! Hostile input against the real dict daemons (doveauth, lastlogin) on their sockets.
//!
//! Every case checks the same four things afterwards: the daemon answered in protocol or
//! closed only the offending connection, its memory stayed bounded (VmRSS before/after),
//! other clients were still served, nothing was created outside `mailboxes_dir`, and its
//! log holds no panic.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: failing loudly is the point"
)]

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chatmail_tests::dict_client::passdb_line;
use chatmail_tests::process::{ensure_nofile, status_kib};
use chatmail_tests::service::binary;
use chatmail_tests::support::xorshift;

const DOMAIN: &str = "chat.example.org";
const MIB: usize = 1024 * 1024;

/// A daemon on a socket in its own directory, its stderr captured to a file. The
/// mailboxes live two levels down (`<root>/boxes/mail`) so an escape by `../` would show
/// up in `<root>/boxes` or `<root>`.
struct Daemon {
    child: Child,
    root: tempfile::TempDir,
    socket: PathBuf,
    mailboxes: PathBuf,
    log: PathBuf,
}

impl Daemon {
    fn start(package: &str) -> Daemon {
        Daemon::start_with(package, "")
    }

    /// Starts `package` with `extra` lines appended to the `[params]` section.
    fn start_with(package: &str, extra: &str) -> Daemon {
        let bin = binary(package, package);
        let root = tempfile::Builder::new()
            .prefix("hostile")
            .tempdir_in("/tmp")
            .unwrap();
        let mailboxes = root.path().join("boxes").join("mail");
        std::fs::create_dir_all(&mailboxes).unwrap();
        let ini = root.path().join("chatmail.ini");
        std::fs::write(
            &ini,
            format!(
                "[params]\nmail_domain = {DOMAIN}\nmailboxes_dir = {}\npassdb_path = {}\nmax_load_1m = 1000\nmin_free_disk_space = 1M\nmin_available_memory = 1M\n{extra}",
                mailboxes.display(),
                root.path().join("passdb.sqlite").display()
            ),
        )
        .unwrap();
        let socket = root.path().join("d.socket");
        let log = root.path().join("daemon.log");
        let child = Command::new(bin)
            .arg(&socket)
            .arg(&ini)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "{package} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon {
            child,
            root,
            socket,
            mailboxes,
            log,
        }
    }

    fn connect(&self) -> Conn {
        Conn::new(UnixStream::connect(&self.socket).unwrap())
    }

    /// Resident memory of the daemon in KiB.
    fn rss_kib(&self) -> u64 {
        status_kib(self.child.id(), "VmRSS:")
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .count()
    }

    /// A fresh client gets the right answer to a lookup.
    fn assert_serving(&self) {
        let mut c = self.connect();
        assert_eq!(
            c.ask(&format!(
                "Lshared/userdb/nobody1234@{DOMAIN}\tnobody1234@{DOMAIN}"
            )),
            "N"
        );
    }

    /// The final checks of every case; stops the daemon.
    fn finish(self) -> String {
        self.finish_checking(|name| name.ends_with(&format!("@{DOMAIN}")))
    }

    /// [`Daemon::finish`] with another rule for the names inside `mailboxes_dir`.
    fn finish_checking(mut self, allowed: impl Fn(&str) -> bool) -> String {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "daemon exited; log:\n{}",
            self.log_text()
        );
        self.assert_serving();
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let log = self.log_text();
        assert!(!log.contains("panicked"), "panic in log:\n{log}");
        // Nothing outside mailboxes_dir: the root and the mailboxes' parent hold exactly
        // what the test put there, and the daemon's metrics socket beside its socket.
        assert_eq!(
            names(self.root.path()),
            [
                "boxes",
                "chatmail.ini",
                "d.socket",
                "daemon.log",
                "metrics.socket"
            ],
            "unexpected file beside mailboxes_dir"
        );
        assert_eq!(names(&self.root.path().join("boxes")), ["mail"]);
        // Inside it, every entry is one mailbox directory of a valid address.
        for entry in std::fs::read_dir(&self.mailboxes).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            assert!(
                entry.file_type().unwrap().is_dir(),
                "{name} is not a directory"
            );
            assert!(allowed(&name), "{name:?}");
            assert!(!name.contains(['/', '\0', '\t', '\n']), "{name:?}");
        }
        log
    }

    fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap()).into_owned()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// A raw dict client.
struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Conn {
    fn new(stream: UnixStream) -> Conn {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Conn {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// The next reply line without its LF; `None` on EOF or a reset connection.
    fn line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => {
                assert_eq!(buf.pop(), Some(b'\n'), "reply without LF: {buf:?}");
                Some(String::from_utf8(buf).expect("replies are UTF-8"))
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => None,
            Err(e) => panic!("reading reply: {e}"),
        }
    }

    fn ask(&mut self, request: &str) -> String {
        self.send(format!("{request}\n").as_bytes());
        self.line().expect("connection closed instead of a reply")
    }

    /// Whether the daemon closed this connection (EOF or reset, no further reply).
    fn closed(&mut self) -> bool {
        self.line().is_none()
    }
}

fn passdb(addr: &str) -> String {
    passdb_line("correct-horse-battery", addr)
}

/// Deterministic pseudo-random bytes (xorshift), so a failure can be replayed.
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| xorshift(&mut seed).to_le_bytes()[0])
        .collect()
}

#[test]
fn undecodable_requests_get_failure_replies_and_the_connection_stays() {
    let d = Daemon::start("doveauth");
    let mut c = d.connect();
    for (request, reply) in [
        (&b"L\xff\xfe\tx\n"[..], "F"),
        (b"Lshared/userdb/\xc3(@chat.example.org\tx\n", "F"),
        (b"Lshared/userdb/a\x01zb@chat.example.org\n", "F"),
        (b"Lshared/passdb/pw\\\n", "F"),
        (b"Lshared\n", "F"),
        (b"Lpriv/userdb/x\n", "F"),
        (b"Lshared/userdb/a\0b@chat.example.org\n", "N"),
        (
            b"Lshared/passdb/correct-horse-battery\"abcd\0efgh@chat.example.org\n",
            "N",
        ),
        (b"I0\t0\tshared/other/\n", ""),
        (b"I0\t0\tshared/userdb/\xff\n", ""),
        (b"C\xff\n", "F"),
        (b"C77\n", "F"),
    ] {
        c.send(request);
        assert_eq!(
            c.line().as_deref(),
            Some(reply),
            "{:?}",
            String::from_utf8_lossy(request)
        );
    }
    // Ignored without a reply: the next reply belongs to the next lookup.
    c.send(b"\n \r\n\t\nX\nU1\tshared/x\nA\nT1\nZ\xff\xfe\nS\xff\tk\tv\nS404\tk\tv\nR9\n");
    assert_eq!(c.ask(&format!("Lshared/userdb/nobody9@{DOMAIN}")), "N");
    assert_eq!(std::fs::read_dir(&d.mailboxes).unwrap().count(), 0);
    d.finish();
}

#[test]
fn random_garbage_does_not_disturb_the_daemon() {
    let d = Daemon::start("doveauth");
    let rss = d.rss_kib();
    for seed in 1..=4u64 {
        let c = UnixStream::connect(&d.socket).unwrap();
        let mut reader = c.try_clone().unwrap();
        let drain = std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        let mut w = c;
        // Garbage may close the connection (an over-long line); that is allowed.
        let _ = w.write_all(&garbage(MIB, seed));
        let _ = w.shutdown(Shutdown::Write);
        drain.join().unwrap();
        d.assert_serving();
    }
    let grown = d.rss_kib().saturating_sub(rss);
    assert!(grown < 32 * 1024, "RSS grew by {grown} KiB");
    d.finish();
}

#[test]
fn one_mib_line_closes_only_its_connection() {
    let d = Daemon::start("doveauth");
    let mut bystander = d.connect();
    assert_eq!(bystander.ask("Lshared/userdb/x@chat.example.org"), "N");
    let rss = d.rss_kib();
    for _ in 0..8 {
        let mut c = d.connect();
        let mut line = b"Lshared/userdb/".to_vec();
        line.resize(MIB, b'a');
        line.push(b'\n');
        // The daemon may close the connection before the whole line is written.
        let _ = c.writer.write_all(&line);
        assert!(c.closed(), "over-long line got a reply");
    }
    // A line at the limit is still served.
    let mut c = d.connect();
    let mut line = format!("Lshared/userdb/{}@{DOMAIN}", "a".repeat(300)).into_bytes();
    line.resize(64 * 1024 - 20, b'a');
    line.push(b'\n');
    c.send(&line);
    assert_eq!(c.line().as_deref(), Some("N"));
    assert_eq!(bystander.ask("Lshared/userdb/y@chat.example.org"), "N");
    let grown = d.rss_kib().saturating_sub(rss);
    assert!(grown < 16 * 1024, "RSS grew by {grown} KiB");
    d.finish();
}

#[test]
fn hundred_mib_streams_are_consumed_in_bounded_memory() {
    let d = Daemon::start("doveauth");
    let rss = d.rss_kib();
    // 100 MiB of valid but ignored lines, then one lookup: exactly one reply comes back.
    let mut c = d.connect();
    let mut chunk = Vec::with_capacity(MIB);
    while chunk.len() < MIB {
        chunk.extend_from_slice(b"U1\t");
        chunk.extend_from_slice(&[b'k'; 1020]);
        chunk.push(b'\n');
    }
    for _ in 0..100 {
        c.send(&chunk);
    }
    assert_eq!(c.ask(&format!("Lshared/userdb/nobody@{DOMAIN}")), "N");
    // 100 MiB without any LF: the daemon closes the connection long before the end.
    let mut c = d.connect();
    let block = vec![b'L'; MIB];
    let mut sent = 0;
    for _ in 0..100 {
        match c.writer.write_all(&block) {
            Ok(()) => sent += block.len(),
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
                    "{e}"
                );
                break;
            }
        }
    }
    assert!(
        sent < 100 * MIB,
        "the daemon accepted 100 MiB without a line end"
    );
    let grown = d.rss_kib().saturating_sub(rss);
    assert!(grown < 16 * 1024, "RSS grew by {grown} KiB");
    d.finish();
}

#[test]
fn slowloris_does_not_block_other_clients() {
    let d = Daemon::start("doveauth");
    let request = format!("Lshared/userdb/slowclient@{DOMAIN}\tslowclient@{DOMAIN}\n");
    let mut slow = d.connect();
    let mut writer = slow.writer.try_clone().unwrap();
    let slow_bytes = request.as_bytes().to_vec();
    let trickle = std::thread::spawn(move || {
        // A few bytes, slowly (~2.5 s), then the rest of the line.
        for b in slow_bytes.iter().take(25) {
            writer.write_all(&[*b]).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        writer.write_all(slow_bytes.get(25..).unwrap()).unwrap();
    });
    let mut served = 0;
    while !trickle.is_finished() {
        d.assert_serving();
        served += 1;
    }
    trickle.join().unwrap();
    assert!(
        served >= 10,
        "only {served} lookups served while one client trickled"
    );
    assert_eq!(
        slow.line().as_deref(),
        Some("N"),
        "the slow request itself is answered"
    );
    d.finish();
}

#[test]
fn half_closed_and_vanishing_clients() {
    let d = Daemon::start("doveauth");
    // Request, then shut the write side: the reply still comes, then EOF.
    let mut c = d.connect();
    c.send(format!("Lshared/userdb/a@{DOMAIN}\n").as_bytes());
    c.writer.shutdown(Shutdown::Write).unwrap();
    assert_eq!(c.line().as_deref(), Some("N"));
    assert!(c.closed());
    // A last request without LF before the shutdown is answered too.
    let mut c = d.connect();
    c.send(format!("Lshared/userdb/a@{DOMAIN}\nLshared/userdb/b@{DOMAIN}").as_bytes());
    c.writer.shutdown(Shutdown::Write).unwrap();
    assert_eq!(c.line().as_deref(), Some("N"));
    assert_eq!(c.line().as_deref(), Some("N"));
    assert!(c.closed());
    // Shut down at once: EOF, nothing else.
    let mut c = d.connect();
    c.writer.shutdown(Shutdown::Write).unwrap();
    assert!(c.closed());
    // Thousands of requests, then gone without reading: replies hit a closed socket.
    for _ in 0..20 {
        let mut c = UnixStream::connect(&d.socket).unwrap();
        let burst = format!("Lshared/userdb/a@{DOMAIN}\n").repeat(5000);
        let _ = c.write_all(burst.as_bytes());
        drop(c);
    }
    // Read side closed while the daemon still writes.
    let c = UnixStream::connect(&d.socket).unwrap();
    c.shutdown(Shutdown::Read).unwrap();
    let mut w = c;
    let _ = w.write_all(
        format!("Lshared/userdb/a@{DOMAIN}\n")
            .repeat(5000)
            .as_bytes(),
    );
    drop(w);
    d.finish();
}

#[test]
fn two_thousand_idle_connections_cost_little_and_block_nobody() {
    const IDLE: usize = 2000;
    ensure_nofile(IDLE as u64 + 200);
    let d = Daemon::start("doveauth");
    // Descriptors before any client of this test.
    let fds = d.open_fds();
    d.assert_serving();
    let rss = d.rss_kib();
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        if i % 2 == 0 {
            // Half of them leave a request unfinished.
            s.write_all(b"Lshared/userdb/").unwrap();
        }
        idle.push(s);
    }
    // Every idle connection is accepted and held (one descriptor each; the baseline may
    // still count the start-up probe's connection, hence the slack of 2) ...
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.open_fds() + 2 < fds + IDLE {
        assert!(
            Instant::now() < deadline,
            "only {} of {IDLE} connections accepted",
            d.open_fds() - fds
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // ... while new clients are served.
    for _ in 0..50 {
        d.assert_serving();
    }
    let grown = d.rss_kib().saturating_sub(rss);
    eprintln!(
        "{IDLE} idle connections: RSS +{grown} KiB ({} B each)",
        grown * 1024 / IDLE as u64
    );
    assert!(
        grown < 32 * 1024,
        "{IDLE} idle connections cost {grown} KiB"
    );
    // Closing them releases every descriptor.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.open_fds() > fds + 2 {
        assert!(
            Instant::now() < deadline,
            "descriptors not released: {} vs {fds}",
            d.open_fds()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    d.finish();
}

#[test]
fn transactions_never_committed_are_bounded() {
    let d = Daemon::start("lastlogin");
    let mut c = d.connect();
    // Commit of an unknown transaction fails; an empty transaction commits.
    assert_eq!(c.ask("C999"), "F");
    c.send(b"B1\tu@chat.example.org\n");
    assert_eq!(c.ask("C1"), "O");
    // A failed set fails its commit; the connection stays usable.
    c.send(b"B2\tu@chat.example.org\nS2\tshared/last-login/u@chat.example.org\tnot-a-time\n");
    assert_eq!(c.ask("C2"), "F");
    let rss = d.rss_kib();
    // Thousands of transactions opened and never committed, on many connections.
    for round in 0..10 {
        let mut c = d.connect();
        let mut burst = String::new();
        for tid in 0..1500 {
            burst.push_str(&format!("B{tid}\tuser{round}@{DOMAIN}\nS{tid}\tshared/last-login/user{round}@{DOMAIN}\t1700000000\n"));
        }
        c.send(burst.as_bytes());
        // The per-connection limit refused the late ones; the early ones are open.
        assert_eq!(c.ask("C1499"), "F");
        assert_eq!(c.ask("C0"), "O");
        drop(c);
    }
    let grown = d.rss_kib().saturating_sub(rss);
    assert!(grown < 16 * 1024, "RSS grew by {grown} KiB");
    // lastlogin never creates anything, even for sets of unknown users.
    assert_eq!(std::fs::read_dir(&d.mailboxes).unwrap().count(), 0);
    d.finish();
}

/// Addresses that try to leave mailboxes_dir or to be something they are not, each as
/// it goes on the wire (dict-escaped) and as Dovecot's `%E` would leave it.
fn hostile_addresses() -> Vec<String> {
    let tag = std::process::id();
    let long = "a".repeat(300);
    let huge = "b".repeat(30_000);
    vec![
        format!("../../../tmp/escape{tag}@{DOMAIN}"),
        format!("../{DOMAIN}"),
        format!("..@{DOMAIN}"),
        format!("/tmp/absolute{tag}@{DOMAIN}"),
        format!("%2e%2e%2fabcde@{DOMAIN}"),
        format!("..%2fabcde@{DOMAIN}"),
        format!("%2Ftmp%2Fx@{DOMAIN}"),
        // Unicode look-alikes of '/' and '.': division slash, fullwidth solidus,
        // one-dot leader, fraction slash.
        format!("abc\u{2215}defg@{DOMAIN}"),
        format!("abc\u{ff0f}defg@{DOMAIN}"),
        format!("\u{2024}\u{2024}\u{2215}abcd@{DOMAIN}"),
        format!("abcd\u{2044}efgh@{DOMAIN}"),
        // NUL, TAB, LF, CR by dict escape.
        format!("abcd\x010efgh@{DOMAIN}"),
        format!("abcd\x01tefgh@{DOMAIN}"),
        format!("abcd\x01nefgh@{DOMAIN}"),
        format!("abcd\x01refgh@{DOMAIN}"),
        // Other domains and domain tricks.
        "abcdefghi@other.org".to_owned(),
        format!("abcdefghi@{DOMAIN}.evil.org"),
        format!("abcdefghi@evil.{DOMAIN}"),
        format!("abcdefghi@{}", DOMAIN.to_uppercase()),
        format!("abcd@efgh@{DOMAIN}"),
        format!("abcdefghi@{DOMAIN}/../.."),
        format!("@{DOMAIN}"),
        DOMAIN.to_owned(),
        // Over-long local parts: past the account rule, past NAME_MAX, near the line limit.
        format!("{}@{DOMAIN}", &long[..10]),
        format!("{long}@{DOMAIN}"),
        format!("{huge}@{DOMAIN}"),
    ]
}

#[test]
fn doveauth_refuses_hostile_addresses_and_writes_nothing() {
    let d = Daemon::start("doveauth");
    let mut c = d.connect();
    for addr in hostile_addresses() {
        for request in [passdb(&addr), format!("Lshared/userdb/{addr}\t{addr}")] {
            let reply = c.ask(&request);
            assert_eq!(reply, "N", "{:?}", &request[..request.len().min(120)]);
        }
    }
    assert_eq!(
        std::fs::read_dir(&d.mailboxes).unwrap().count(),
        0,
        "an account was created"
    );
    // Nine dots are a valid local part: the account stays one component below.
    let dots = format!(".........@{DOMAIN}");
    assert!(c.ask(&passdb(&dots)).starts_with("O{"));
    assert!(d.mailboxes.join(&dots).join("password").is_file());
    let tag = std::process::id();
    assert!(!Path::new(&format!("/tmp/escape{tag}@{DOMAIN}")).exists());
    assert!(!Path::new(&format!("/tmp/absolute{tag}@{DOMAIN}")).exists());
    let log = d.finish();
    assert!(!log.contains("Created address: ../"), "{log}");
}

#[test]
fn lastlogin_refuses_hostile_addresses_and_writes_nothing() {
    let d = Daemon::start("lastlogin");
    // An existing account whose password mtime must not move for hostile keys.
    let victim = d.mailboxes.join(format!("victimabc@{DOMAIN}"));
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("password"), "{SHA512-CRYPT}$6$x").unwrap();
    let mtime = || {
        std::fs::metadata(victim.join("password"))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before = mtime();
    let mut c = d.connect();
    for (tid, addr) in hostile_addresses().into_iter().enumerate() {
        c.send(format!("B{tid}\t{addr}\nS{tid}\tshared/last-login/{addr}\t86400\n").as_bytes());
        let reply = c.ask(&format!("C{tid}"));
        assert!(reply == "O" || reply == "F", "{reply}");
        c.send(
            format!("B{tid}\tx\nS{tid}\tshared/last-login/{addr}/../victimabc@{DOMAIN}\t86400\n")
                .as_bytes(),
        );
        assert_eq!(c.ask(&format!("C{tid}")), "F");
    }
    assert_eq!(mtime(), before, "a hostile key touched another account");
    assert_eq!(names(&d.mailboxes), [format!("victimabc@{DOMAIN}")]);
    assert_eq!(names(&victim), ["password"], "lastlogin created a file");
    std::fs::remove_dir_all(&victim).unwrap();
    d.finish();
}

#[test]
fn metadata_refuses_hostile_users_and_stays_inside() {
    // Notifications would go to a closed local port, never out.
    let d = Daemon::start_with(
        "chatmail-metadata",
        "notification_url = http://127.0.0.1:9/notify\n",
    );
    let mut c = d.connect();
    c.send(b"L\xff\xfe\tx\n");
    assert_eq!(c.line().as_deref(), Some("F"));
    assert_eq!(
        c.ask("Lpriv/guid/devicetoken"),
        "N",
        "no user: no such user"
    );
    assert_eq!(c.ask("C404"), "F");
    for (tid, addr) in hostile_addresses().into_iter().enumerate() {
        // A '/', or a control character by dict escape, can never name a mailbox.
        let impossible = addr.contains(['/', '\x01']) || addr.len() > 255 || !addr.contains('@');
        c.send(format!("B{tid}\t{addr}\nS{tid}\tpriv/guid/devicetoken\ttoken{tid}\n").as_bytes());
        let reply = c.ask(&format!("C{tid}"));
        if impossible {
            assert_eq!(reply, "F", "{:?}", &addr[..addr.len().min(80)]);
        } else {
            assert!(reply == "O" || reply == "F", "{reply}");
        }
        let tokens = c.ask(&format!("Lpriv/guid/devicetoken\t{addr}"));
        assert!(tokens == "N" || tokens.starts_with('O'), "{tokens}");
        c.send(format!("B{tid}\t{addr}\nS{tid}\tpriv/guid/../../devicetoken\tx\n").as_bytes());
        assert_eq!(c.ask(&format!("C{tid}")), "F");
    }
    let tag = std::process::id();
    assert!(!Path::new(&format!("/tmp/escape{tag}@{DOMAIN}")).exists());
    assert!(!Path::new(&format!("/tmp/absolute{tag}@{DOMAIN}")).exists());
    eprintln!("metadata stored for: {:?}", names(&d.mailboxes));
    // Whatever was stored is one directory per address directly below mailboxes_dir,
    // holding only the metadata files.
    for entry in std::fs::read_dir(&d.mailboxes).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name == "pending_notifications" {
            continue;
        }
        for file in names(&entry.path()) {
            assert!(
                file == "metadata.json" || file == "metadata.json.lock" || file.ends_with(".tmp"),
                "{name}/{file}"
            );
        }
    }
    d.finish_checking(|name| {
        name == "pending_notifications" || (name.contains('@') && name.len() <= 255)
    });
}
