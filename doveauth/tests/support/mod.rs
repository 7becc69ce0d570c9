//! A real doveauth process on a temporary socket, and a raw dict client.
#![allow(dead_code, reason = "each test file uses a different part")]
#![expect(
    clippy::unwrap_used,
    reason = "test support: failing loudly is the point"
)]

pub mod http;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The `L` line of a passdb lookup, as Dovecot sends it.
pub use chatmail_tests::dict_client::passdb_line as passdb;

/// A child's stderr, read as it comes (a daemon that logs more than a pipe holds would
/// otherwise block), returned whole at the end.
pub struct StderrLog(Option<std::thread::JoinHandle<String>>);

impl StderrLog {
    /// Starts reading `child`'s piped stderr.
    pub fn of(child: &mut Child) -> StderrLog {
        let mut err = child.stderr.take().unwrap();
        StderrLog(Some(std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        })))
    }

    /// Everything the child wrote (call once it has exited).
    pub fn text(&mut self) -> String {
        self.0.take().map(|t| t.join().unwrap()).unwrap_or_default()
    }
}

/// SIGTERM, wait; (exit success, stderr).
pub fn stop_child(child: &mut Child, log: &mut StderrLog) -> (bool, String) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    (status.success(), log.text())
}

pub struct Daemon {
    pub child: Child,
    pub log: StderrLog,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub mailboxes: PathBuf,
    pub ini: PathBuf,
}

impl Daemon {
    /// Starts `bin` with a config for `domain` plus `extra` ini lines.
    pub fn start(bin: &str, domain: &str, extra: &str) -> Daemon {
        Daemon::start_with(bin, domain, |_| extra.to_owned())
    }

    /// Like [`Daemon::start`], with ini lines made from the temporary directory.
    pub fn start_with(bin: &str, domain: &str, extra: impl FnOnce(&Path) -> String) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let extra = extra(dir.path());
        let mailboxes = dir.path().join("mail");
        std::fs::create_dir(&mailboxes).unwrap();
        let ini = dir.path().join("chatmail.ini");
        std::fs::write(
            &ini,
            format!(
                "[params]\nmail_domain = {domain}\nmailboxes_dir = {}\npassdb_path = {}\nmax_load_1m = 1000\nmin_free_disk_space = 1M\nmin_available_memory = 1M\n{extra}",
                mailboxes.display(),
                dir.path().join("passdb.sqlite").display()
            ),
        )
        .unwrap();
        let socket = dir.path().join("s.socket");
        let mut child = Command::new(bin)
            .arg(&socket)
            .arg(&ini)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = StderrLog::of(&mut child);
        let d = Daemon {
            child,
            log,
            dir,
            socket,
            mailboxes,
            ini,
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&self) {
        chatmail_tests::support::wait_for_socket(&self.socket);
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.socket)
    }

    /// Stops with SIGTERM and returns (exit success, stderr).
    pub fn stop(mut self) -> (bool, String) {
        stop_child(&mut self.child, &mut self.log)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Client {
    pub reader: BufReader<UnixStream>,
    pub writer: UnixStream,
}

impl Client {
    pub fn connect(path: &Path) -> Client {
        let s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Client {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    pub fn line(&mut self) -> String {
        let mut buf = Vec::new();
        self.reader.read_until(b'\n', &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    /// Sends one request line and reads one reply line.
    pub fn ask(&mut self, request: &str) -> String {
        self.send(format!("{request}\n").as_bytes());
        self.line()
    }

    /// True if the server closed the connection.
    pub fn closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.reader.read(&mut buf), Ok(0) | Err(_))
    }
}

/// A passdb lookup whose key carries the client's address, as `password_key =
/// passdb/%Ew"%Eu"%{rip}` makes it.
pub fn passdb_from(password: &str, user: &str, client: &str) -> String {
    let plain = passdb(password, user);
    let (key, rest) = plain.split_once('\t').unwrap();
    format!("{key}\"{client}\t{rest}")
}
