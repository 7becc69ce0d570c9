//! Shared fixtures of the integration tests.
// Test scaffolding: a failed setup step should abort the test loudly, and each test binary
// uses only some helpers.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    reason = "test scaffolding"
)]

use std::path::PathBuf;

/// Line endings a fixture is rendered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eol {
    Lf,
    Crlf,
}

/// The fixture `name` from `tests/data`, placeholders filled, with uniform line endings.
pub fn eml(name: &str, from: &str, to: &str, subject: &str, eol: Eol) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replace('\r', "")
        .replace("{from_addr}", from)
        .replace("{to_addr}", to)
        .replace("{subject}", subject);
    match eol {
        Eol::Lf => text.into_bytes(),
        Eol::Crlf => text.replace('\n', "\r\n").into_bytes(),
    }
}

/// Every fixture name.
pub fn all_fixtures() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".eml"))
        .collect();
    names.sort();
    names
}

pub mod sink;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

pub use chatmail_tests::support::free_port;

/// The accounts of the relay every daemon starts with (`mail_domain = chat.example.org`):
/// incoming mode refuses recipients without a mailbox at `RCPT`, so the recipients the
/// tests write to exist.
pub const ACCOUNTS: &[&str] = &["bob@chat.example.org", "carol@chat.example.org"];

/// A remote sender for incoming mail (incoming mode refuses senders of our own domain).
pub const REMOTE: &str = "alice@remote.example";

/// Creates the account `addr` below `mailboxes`: its password file only, so it takes
/// incoming cleartext until a test writes `enforceE2EEincoming`; returns its mailbox.
pub fn create_account(mailboxes: &std::path::Path, addr: &str) -> PathBuf {
    let user = chatmaild::User::in_dir(mailboxes, addr).unwrap();
    user.create_maildir().unwrap();
    std::fs::write(user.password_path(), "{SHA512-CRYPT}$6$test").unwrap();
    user.maildir().to_path_buf()
}

/// A running `filtermail` binary; killed on drop.
pub struct Daemon {
    child: Child,
    /// The port it listens on (SMTP, or LMTP in transport mode).
    pub port: u16,
    /// The HTTP `/mxdeliv` port of incoming mode.
    pub http_port: u16,
    /// Its stderr lines so far (after the first).
    pub log: Arc<Mutex<Vec<String>>>,
    /// The first stderr lines, up to and including the one with `loop`.
    pub startup: Vec<String>,
    /// The temp dir holding its config and mailboxes.
    pub dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts `filtermail <ini> <mode>` with extra `[params]` lines and environment.
    pub fn start(mode: &str, reinject_port: u16, extra: &str, env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let http_port = free_port();
        let mailboxes = dir.path().join("mailboxes");
        std::fs::create_dir(&mailboxes).unwrap();
        for addr in ACCOUNTS {
            create_account(&mailboxes, addr);
        }
        let ini = dir.path().join("chatmail.ini");
        std::fs::write(
            &ini,
            format!(
                "[params]\nmail_domain = chat.example.org\nfiltermail_smtp_port = {port}\nfiltermail_smtp_port_incoming = {port}\nfiltermail_lmtp_port_transport = {port}\nfiltermail_http_port_incoming = {http_port}\npostfix_reinject_port = {reinject_port}\npostfix_reinject_port_incoming = {reinject_port}\nmailboxes_dir = {}\n{extra}",
                mailboxes.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_filtermail"));
        cmd.arg(&ini)
            .arg(mode)
            .stderr(Stdio::piped())
            .stdout(Stdio::null());
        cmd.env_remove("FILTERMAIL_SKIP_DKIM")
            .env("RUST_LOG", "info")
            .env("CHATMAIL_METRICS_SOCKET", dir.path().join("metrics.socket"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut reader = std::io::BufReader::new(stderr);
        let mut startup = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                panic!("filtermail exited during startup: {startup:?}");
            }
            let has_loop = line.contains("loop");
            startup.push(line.trim_end().to_string());
            if has_loop {
                break;
            }
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { return };
                log2.lock().unwrap().push(line);
            }
        });
        Daemon {
            child,
            port,
            http_port,
            log,
            startup,
            dir,
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit; `None` if it did not exit.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.signal_term();
        self.wait_exit(std::time::Duration::from_secs(10))
    }

    /// Sends SIGTERM.
    pub fn signal_term(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits up to `limit` for the exit; `None` if it is still running.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// The mailboxes directory.
    pub fn mailboxes(&self) -> std::path::PathBuf {
        self.dir.path().join("mailboxes")
    }

    /// Stderr lines so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits (bounded) until a log line contains `needle`; returns whether one did.
    pub async fn wait_log(&self, needle: &str) -> bool {
        for _ in 0..200 {
            if self.log_lines().iter().any(|l| l.contains(needle)) {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        false
    }

    /// Connects an SMTP client and reads the greeting.
    pub async fn connect(&self) -> Client {
        connect_port(self.port).await
    }
}

/// An SMTP client connected to 127.0.0.1:`port`, greeting read.
pub async fn connect_port(port: u16) -> Client {
    Client::connect(("127.0.0.1", port)).await
}

/// A raw SMTP client for transcripts, and dot-stuffing for DATA (not every test uses both).
#[allow(unused_imports)]
pub use chatmail_smtp::{stuff, testing::Transcript as Client};
