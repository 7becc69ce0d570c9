//! Test harness: the real `chatmail-metadata` binary on a unix socket in a temp dir, a
//! local HTTP/1.1 server playing the notification service, dict transcripts.
// Each test binary uses a different part of the harness; it is test code, where a
// failed step should panic with its cause.
#![allow(
    dead_code,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixStream};
use tokio::sync::mpsc;

pub const USER: &str = "user@example.org";
pub const WAIT: Duration = Duration::from_secs(30);

/// One running (or stopped) service with its files.
pub struct Service {
    pub dir: tempfile::TempDir,
    pub vmail: PathBuf,
    pub ini: PathBuf,
    pub socket: PathBuf,
    pub stderr: PathBuf,
    pub time_scale: Option<f64>,
    pub extra_env: Vec<(String, String)>,
    child: Option<Child>,
    starts: usize,
}

impl Service {
    /// A service posting to `url`, with `extra` lines in `[params]`; not started.
    pub fn new(url: &str, extra: &str) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let vmail = dir.path().join("vmail");
        fs::create_dir(&vmail).unwrap();
        let ini = chatmail_tests::support::write_ini(
            dir.path(),
            "example.org",
            &format!(
                "mailboxes_dir = {}\nnotification_url = {url}\nturn_socket_path = {}\n{extra}\n",
                vmail.display(),
                dir.path().join("turn.socket").display()
            ),
        );
        Service {
            socket: dir.path().join("metadata.socket"),
            stderr: dir.path().join("stderr-0.log"),
            vmail,
            ini,
            dir,
            time_scale: None,
            extra_env: Vec::new(),
            child: None,
            starts: 0,
        }
    }

    pub fn queue_dir(&self) -> PathBuf {
        self.vmail.join("pending_notifications")
    }

    pub fn queue_files(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.queue_dir())
            .map(|d| {
                d.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn metadata_json(&self, addr: &str) -> String {
        fs::read_to_string(self.vmail.join(addr).join("metadata.json")).unwrap_or_default()
    }

    /// Starts the binary and waits for its readiness notification.
    pub fn start(&mut self) {
        let notify = self.dir.path().join(format!("notify-{}.sock", self.starts));
        let ready = UnixDatagram::bind(&notify).unwrap();
        ready.set_read_timeout(Some(WAIT)).unwrap();
        self.stderr = self.dir.path().join(format!("stderr-{}.log", self.starts));
        self.starts += 1;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatmail-metadata"));
        cmd.arg(&self.socket)
            .arg(&self.ini)
            .env("NOTIFY_SOCKET", &notify)
            .env("RUST_LOG", "info")
            .env_remove("LISTEN_FDS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&self.stderr).unwrap());
        if let Some(scale) = self.time_scale {
            cmd.env("CHATMAIL_METADATA_TIME_SCALE", scale.to_string());
        }
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().unwrap());
        let mut buf = [0u8; 256];
        let n = ready
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no readiness: {e}; stderr: {}", self.log()));
        assert!(
            String::from_utf8_lossy(&buf[..n]).contains("READY=1"),
            "{}",
            self.log()
        );
    }

    /// Stops the process with SIGKILL (nothing may be lost).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
        child.wait().unwrap()
    }

    /// The current run's log.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until the log contains `needle` (or panics after [`WAIT`]).
    pub fn wait_log(&self, needle: &str) {
        wait_until(
            || self.log().contains(needle),
            &format!("log line {needle:?}"),
            || self.log(),
        );
    }

    /// Sends `input` on a fresh connection, closes the write side and returns every
    /// reply byte.
    pub async fn transcript(&self, input: &[u8]) -> Vec<u8> {
        let mut s = UnixStream::connect(&self.socket).await.unwrap();
        s.write_all(input).await.unwrap();
        s.shutdown().await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(WAIT, s.read_to_end(&mut out))
            .await
            .expect("reply in time")
            .unwrap();
        out
    }

    pub async fn set_token(&self, addr: &str, token: &str) {
        let req =
            format!("H3\t2\t0\t\tmetadata\nB1\t{addr}\nS1\tpriv/guid00/devicetoken\t{token}\nC1\n");
        assert_eq!(self.transcript(req.as_bytes()).await, b"O\n");
    }

    pub async fn message_new(&self, addr: &str) {
        let req = format!("B7\t{addr}\nS7\tpriv/guid00/messagenew\nC7\n");
        assert_eq!(self.transcript(req.as_bytes()).await, b"O\n");
    }

    pub async fn tokens(&self, addr: &str) -> Vec<u8> {
        self.transcript(format!("Lpriv/0123/devicetoken\t{addr}\n").as_bytes())
            .await
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `cond` until true; panics with `what` and `ctx()` after [`WAIT`].
pub fn wait_until(mut cond: impl FnMut() -> bool, what: &str, ctx: impl Fn() -> String) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; {}",
            ctx()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A request the notification server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub token: String,
    pub path: String,
    pub at: Instant,
}

/// How the notification server answers a token.
pub type Responder = Arc<dyn Fn(&str) -> u16 + Send + Sync>;

/// A local HTTP/1.1 server playing the notification service on `listener`; every
/// request is reported on the returned channel.
pub fn notification_server(
    listener: TcpListener,
    respond: Responder,
) -> mpsc::UnboundedReceiver<Received> {
    gated_notification_server(listener, respond, None)
}

/// Holds the answer to one token until `release` is notified (a slow server).
#[derive(Clone)]
pub struct Gate {
    pub token: String,
    pub release: Arc<tokio::sync::Notify>,
}

/// Like [`notification_server`], answering `gate.token` only once the gate opens.
pub fn gated_notification_server(
    listener: TcpListener,
    respond: Responder,
    gate: Option<Gate>,
) -> mpsc::UnboundedReceiver<Received> {
    slow_notification_server(listener, respond, gate, Duration::ZERO)
}

/// Like [`gated_notification_server`], taking `latency` to answer every request (as a
/// distant notification service does).
pub fn slow_notification_server(
    listener: TcpListener,
    respond: Responder,
    gate: Option<Gate>,
    latency: Duration,
) -> mpsc::UnboundedReceiver<Received> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve_http_slow(
                stream,
                respond.clone(),
                tx.clone(),
                gate.clone(),
                latency,
            ));
        }
    });
    rx
}

/// Serves HTTP/1.1 requests of one connection (keep-alive) until EOF.
pub async fn serve_http<S>(stream: S, respond: Responder, tx: mpsc::UnboundedSender<Received>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    serve_http_gated(stream, respond, tx, None).await;
}

/// [`serve_http`] with an optional [`Gate`].
pub async fn serve_http_gated<S>(
    stream: S,
    respond: Responder,
    tx: mpsc::UnboundedSender<Received>,
    gate: Option<Gate>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    serve_http_slow(stream, respond, tx, gate, Duration::ZERO).await;
}

/// [`serve_http_gated`], answering each request `latency` after it arrived.
pub async fn serve_http_slow<S>(
    stream: S,
    respond: Responder,
    tx: mpsc::UnboundedSender<Received>,
    gate: Option<Gate>,
    latency: Duration,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut r = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).await.unwrap();
        let token = String::from_utf8(body).unwrap();
        let status = respond(&token);
        let gated = gate.as_ref().filter(|g| g.token == token).cloned();
        let _ = tx.send(Received {
            token,
            path,
            at: Instant::now(),
        });
        if let Some(g) = gated {
            g.release.notified().await;
        }
        tokio::time::sleep(latency).await;
        let resp = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
        if r.get_mut().write_all(resp.as_bytes()).await.is_err() {
            return;
        }
        let _ = r.get_mut().flush().await;
    }
}

/// Binds a notification server on a free loopback port; returns its URL and channel.
pub async fn start_server(respond: Responder) -> (String, mpsc::UnboundedReceiver<Received>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", l.local_addr().unwrap());
    (url, notification_server(l, respond))
}

/// Receives the next request or panics after [`WAIT`].
pub async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("notification in time")
        .expect("server running")
}

/// A free loopback port with nothing listening.
pub fn closed_port() -> u16 {
    chatmail_tests::support::free_port()
}

/// Writes a queue item exactly as the reference does.
pub fn write_reference_item(dir: &Path, name: &str, addr: &str, start_ts: i64, token: &str) {
    fs::write(dir.join(name), format!("{addr}\n{start_ts}\n{token}")).unwrap();
}

/// Now, in Unix seconds, as the queue stores times.
pub fn now() -> i64 {
    chatmaild::wall_time::unix_seconds()
}

impl Service {
    /// The text the service publishes on its metrics socket.
    pub async fn metrics(&self) -> String {
        let path = self.socket.with_file_name("metrics.socket");
        let mut s = UnixStream::connect(&path).await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(WAIT, s.read_to_string(&mut out))
            .await
            .expect("metrics in time")
            .unwrap();
        out
    }

    /// The value of the `chatmail_metadata_notifications_total` sample of `event`.
    pub async fn notification_events(&self, event: &str) -> u64 {
        let needle = format!("chatmail_metadata_notifications_total{{event=\"{event}\"}} ");
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(&needle))
            .unwrap_or_else(|| panic!("no {needle} in {text}"))
            .parse()
            .unwrap()
    }
}

/// A notification service answering 200 after `latency`; its URL and channel.
pub async fn slow_server(latency: Duration) -> (String, mpsc::UnboundedReceiver<Received>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", l.local_addr().unwrap());
    let rx = slow_notification_server(l, Arc::new(|_: &str| 200), None, latency);
    (url, rx)
}

/// A started service whose notification service is down (nothing listens on the returned
/// port), with two devices of `user`: `tokA` and `tokB`.
pub async fn started_with_server_down(user: &str) -> (Service, u16) {
    let port = closed_port();
    let mut s = Service::new(&format!("http://127.0.0.1:{port}/notify"), "");
    s.start();
    s.set_token(user, "tokA").await;
    s.set_token(user, "tokB").await;
    (s, port)
}

/// The tokens of the requests received within `within`, sorted.
pub async fn drain_tokens(
    rx: &mut mpsc::UnboundedReceiver<Received>,
    within: Duration,
) -> Vec<String> {
    let mut tokens: Vec<String> = drain(rx, within)
        .await
        .into_iter()
        .map(|r| r.token)
        .collect();
    tokens.sort();
    tokens
}

/// Every request received within `within`.
pub async fn drain(rx: &mut mpsc::UnboundedReceiver<Received>, within: Duration) -> Vec<Received> {
    let mut got = Vec::new();
    while let Ok(Some(r)) = tokio::time::timeout(within, rx.recv()).await {
        got.push(r);
    }
    got
}
