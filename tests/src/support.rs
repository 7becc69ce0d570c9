//! What every test that runs a workspace binary needs: a free port, a `chatmail.ini`, a
//! child process that is killed when the test ends, and waiting until it listens.

use std::io::{BufRead, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

/// A private directory in /tmp with an empty `mail/` and a `chatmail.ini` for `domain` whose
/// `mailboxes_dir` is that directory, plus the lines `extra` gives for the directory's path;
/// removed on drop.
#[derive(Debug)]
pub struct Scratch {
    /// The directory.
    pub root: tempfile::TempDir,
    /// `mailboxes_dir`.
    pub mailboxes: PathBuf,
    /// The `chatmail.ini`.
    pub ini: PathBuf,
}

impl Scratch {
    /// Creates it; `prefix` names the directory.
    pub fn new(prefix: &str, domain: &str, extra: impl FnOnce(&Path) -> String) -> Scratch {
        let root = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in("/tmp")
            .unwrap();
        let mailboxes = root.path().join("mail");
        std::fs::create_dir(&mailboxes).unwrap();
        let ini = write_ini(
            root.path(),
            domain,
            &format!(
                "mailboxes_dir = {}\n{}",
                mailboxes.display(),
                extra(root.path())
            ),
        );
        Scratch {
            root,
            mailboxes,
            ini,
        }
    }

    /// `name` inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }
}

/// Spawns `command` with its stderr appended to `log` (one log across restarts) and waits
/// until the unix socket `socket` accepts; panics with the log if the process exits first.
pub fn spawn_with_socket(command: &mut Command, socket: &Path, log: &Path) -> Child {
    let file = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + START_TIMEOUT;
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "{command:?} exited at start:\n{}",
            read_lossy(log)
        );
        assert!(Instant::now() < deadline, "{command:?} did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

/// The file at `path` as text (invalid UTF-8 replaced), empty if it does not exist.
pub fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// The number of kill/restart rounds of a crash test: `CRASH_ITERATIONS`, else `default`.
pub fn crash_iterations(default: u64) -> u64 {
    std::env::var("CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The next number of a deterministic pseudo-random sequence (xorshift64), so a failing
/// round of a crash or hostile-input test can be replayed from its seed.
pub fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Sets `path`'s modification time to day 100 of the epoch: a password file whose last
/// login lastlogin recorded long ago.
pub fn backdate_last_login(path: &Path) {
    let long_ago = std::time::UNIX_EPOCH + Duration::from_secs(86_400 * 100);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
}

/// Whether `path`'s modification time is the start of today (UTC): the day lastlogin
/// records for a login.
pub fn last_login_is_today(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let today = chatmaild::wall_time::unix_seconds() / 86_400 * 86_400;
    std::fs::metadata(path).is_ok_and(|m| m.mtime() == today)
}

/// The kill of a crash test's round: waits until `reached()` (the round's progress passed
/// its pseudo-random target), 20 s passed or every client finished, then `jitter` more,
/// kills `child` and stops (`stop`) and joins the clients. True when a client was still
/// running at the kill, i.e. the kill landed in the middle of the work.
pub fn kill_mid_round(
    child: &mut Child,
    clients: Vec<std::thread::JoinHandle<()>>,
    stop: &std::sync::atomic::AtomicBool,
    reached: impl Fn() -> bool,
    jitter: Duration,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reached() && Instant::now() < deadline && clients.iter().any(|c| !c.is_finished()) {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(jitter);
    let mid = clients.iter().any(|c| !c.is_finished());
    child.kill().unwrap();
    child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    mid
}
