//! A real `doveauth INI` (HTTP mode) on a free loopback port, and a raw HTTP/1.1 client.
#![allow(dead_code, reason = "each test file uses a different part")]
#![expect(
    clippy::unwrap_used,
    reason = "test support: failing loudly is the point"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_doveauth");
pub const DOMAIN: &str = "chat.example.org";

use chatmail_tests::support::{free_port, wait_for_port as wait_connect};

pub struct Http {
    pub child: Child,
    pub log: super::StderrLog,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub mailboxes: PathBuf,
}

/// Writes `chatmail.ini` for a test relay: system limits that never refuse (unless `extra`
/// sets them), the port, and `extra`.
pub fn write_ini(dir: &Path, port: u16, extra: &str) -> (PathBuf, PathBuf) {
    let mailboxes = dir.join("mail");
    std::fs::create_dir_all(&mailboxes).unwrap();
    let ini = dir.join("chatmail.ini");
    let limits: String = [
        "max_load_1m = 1000",
        "min_free_disk_space = 1M",
        "min_available_memory = 1M",
    ]
    .into_iter()
    .filter(|l| !extra.contains(l.split(' ').next().unwrap()))
    .map(|l| format!("{l}\n"))
    .collect();
    std::fs::write(
        &ini,
        format!(
            "[params]\nmail_domain = {DOMAIN}\nmailboxes_dir = {}\npassdb_path = {}\n{limits}doveauth_http_port = {port}\n{extra}",
            mailboxes.display(),
            dir.join("passdb.sqlite").display()
        ),
    )
    .unwrap();
    (ini, mailboxes)
}

impl Http {
    pub fn start(extra: &str) -> Http {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let (ini, mailboxes) = write_ini(dir.path(), port, extra);
        let mut child = Command::new(BIN)
            .arg(&ini)
            .env_remove("LISTEN_FDS")
            .env("CHATMAIL_METRICS_SOCKET", dir.path().join("metrics.socket"))
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = super::StderrLog::of(&mut child);
        wait_connect(port);
        Http {
            child,
            log,
            dir,
            port,
            mailboxes,
        }
    }

    pub fn conn(&self) -> Conn {
        Conn::new(self.port)
    }

    /// SIGTERM; returns (clean exit, stderr).
    pub fn stop(mut self) -> (bool, String) {
        super::stop_child(&mut self.child, &mut self.log)
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw HTTP/1.1 client: what is sent is exactly what the test writes.
pub struct Conn {
    pub reader: BufReader<TcpStream>,
    pub writer: TcpStream,
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Conn {
    pub fn new(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Conn {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    /// Sends `bytes`; the answer must have an empty body (as every `/create` answer has).
    pub fn raw(&mut self, bytes: &[u8]) -> Resp {
        self.writer.write_all(bytes).unwrap();
        let r = self.response();
        assert_eq!(r.body, "", "{r:?}");
        r
    }

    pub fn get(&mut self, path: &str) -> Resp {
        write!(
            self.writer,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        .unwrap();
        self.response()
    }

    pub fn post(&mut self, path: &str, body: &[u8]) -> Resp {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.raw(&req)
    }

    pub fn create(&mut self, addr: &str, password: &str) -> u16 {
        self.post("/create", format!("{addr}\t{password}").as_bytes())
            .status
    }

    pub fn response(&mut self) -> Resp {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status = line
            .strip_prefix("HTTP/1.1 ")
            .unwrap_or_else(|| panic!("status line {line:?}"))[..3]
            .parse()
            .unwrap();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            headers.push((k.to_owned(), v.trim().to_owned()));
        }
        let mut r = Resp {
            status,
            headers,
            body: String::new(),
        };
        let len: usize = r.header("content-length").unwrap().parse().unwrap();
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).unwrap();
        r.body = String::from_utf8(body).unwrap();
        if status == 200 {
            assert_eq!(r.header("connection"), None, "{r:?}");
        } else {
            assert_eq!(r.header("connection"), Some("close"), "{r:?}");
        }
        r
    }

    /// The server closed the connection.
    pub fn closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.reader.read(&mut buf), Ok(0) | Err(_))
    }
}

/// One snapshot of the daemon's metrics socket.
pub fn scrape(d: &Http) -> String {
    let mut text = String::new();
    std::os::unix::net::UnixStream::connect(d.dir.path().join("metrics.socket"))
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}
