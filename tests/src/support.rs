//! What every test that runs a workspace binary needs: a free port, a `chatmail.ini`, a
//! child process that is killed when the test ends, and waiting until it listens.

use std::io::{BufRead, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// How long a started service may take to listen.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `<dir>/chatmail.ini` with `[params]`, `mail_domain = <domain>` and the `extra`
/// lines, and returns its path.
pub fn write_ini(dir: &Path, domain: &str, extra: &str) -> PathBuf {
    let ini = dir.join("chatmail.ini");
    std::fs::write(&ini, format!("[params]\nmail_domain = {domain}\n{extra}")).unwrap();
    ini
}

/// Waits until `ready` holds, polling every 20 ms; panics after [`START_TIMEOUT`].
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + START_TIMEOUT;
    while !ready() {
        assert!(Instant::now() < deadline, "{what} did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the unix socket at `path` accepts connections.
pub fn wait_for_socket(path: &Path) {
    wait_until(&path.display().to_string(), || {
        std::os::unix::net::UnixStream::connect(path).is_ok()
    });
}

/// Waits until 127.0.0.1:`port` accepts connections.
pub fn wait_for_port(port: u16) {
    wait_until(&format!("127.0.0.1:{port}"), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// Reads one HTTP/1.1 request from a fake server's connection and returns its body
/// (`Content-Length` bytes); `None` when the peer closed the connection.
pub fn read_http_request(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}

/// Stops `child` as systemd does: SIGTERM, up to `grace` to exit, then SIGKILL; reaps it.
pub fn terminate(mut child: Child, grace: Duration) {
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Sends SIGTERM to `child`, waits for it and returns (clean exit, its piped stderr).
pub fn stop_with_stderr(child: &mut Child) -> (bool, String) {
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    let mut err = String::new();
    if let Some(mut s) = child.stderr.take() {
        s.read_to_string(&mut err).unwrap();
    }
    (status.success(), err)
}

/// A child process killed (and reaped) when dropped, so a failing test leaves none behind.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
