//! The SMTP listener and the reinjection client in process, with a paused clock for the
//! idle timeouts.

mod common;

use std::sync::Arc;

use filtermail::{Filter, Mode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

#[tokio::test(start_paused = true)]
async fn idle_client_gets_421_and_is_closed() {
    let config = chatmaild::Config::parse("[params]\nmail_domain = x.org\n").unwrap();
    let filter = Arc::new(Filter::new(&config, Mode::Outgoing, None));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(filtermail::run_smtp(listener, filter, stop.clone()));
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(b"EHLO x\r\nNOOP").await.unwrap();
    // Nothing more is sent; once the idle timeout passes, the server says so and closes.
    let mut got = Vec::new();
    c.read_to_end(&mut got).await.unwrap();
    let text = String::from_utf8(got).unwrap();
    assert!(text.starts_with("220 "), "{text}");
    assert!(
        text.ends_with("421 4.4.2 Error: timeout exceeded\r\n"),
        "{text}"
    );
    stop.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn stop_ends_the_accept_loop() {
    let config = chatmaild::Config::parse("[params]\nmail_domain = x.org\n").unwrap();
    let filter = Arc::new(Filter::new(&config, Mode::Incoming, None));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(filtermail::run_smtp(listener, filter, stop.clone()));
    stop.cancel();
    assert!(server.await.unwrap().is_ok());
}

#[tokio::test]
async fn idle_reinjection_connections_are_closed() {
    let sink = common::sink::start("250 Ok").await;
    let r = filtermail::Reinjector::new(
        format!("127.0.0.1:{}", sink.port),
        std::time::Duration::from_secs(30),
    );
    let msg = b"From: a@b.example\r\n\r\nhi\r\n";
    let reply = r
        .send("a@b.example", &["c@d.example".into()], false, msg)
        .await;
    assert_eq!(reply, filtermail::Reply::OK);
    assert_eq!(r.idle_connections(), 1);
    // Reused while fresh.
    let reply = r
        .send("a@b.example", &["c@d.example".into()], false, msg)
        .await;
    assert_eq!(reply, filtermail::Reply::OK);
    assert_eq!(
        sink.connections.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    // Closed once idle for long enough (virtual time from here on; the sends above needed
    // the real clock, as paused time would fire their I/O timeouts).
    tokio::time::pause();
    tokio::time::sleep(std::time::Duration::from_secs(15)).await;
    assert_eq!(r.idle_connections(), 0);
    assert_eq!(sink.messages().len(), 2);
}

/// The HTTP listener in process with an incoming-mode filter for `x.org`, whose mailboxes
/// (in the returned directory) hold the account `a@x.org`.
#[allow(clippy::unwrap_used, reason = "test setup")]
async fn http_server() -> (
    std::net::SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), filtermail::Error>>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    common::create_account(dir.path(), "a@x.org");
    let config = chatmaild::Config::parse(&format!(
        "[params]\nmail_domain = x.org\nmailboxes_dir = {}\n",
        dir.path().display()
    ))
    .unwrap();
    let filter = Arc::new(Filter::new(&config, Mode::Incoming, None));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(filtermail::run_mxdeliv(listener, filter, stop.clone()));
    (addr, stop, server, dir)
}

#[tokio::test(start_paused = true)]
async fn http_trickling_or_idle_clients_are_closed() {
    let (addr, stop, server, _dir) = http_server().await;
    // Half a request head, then silence: closed once the head timeout passes.
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(b"POST /mxdeliv HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got).await;
    assert!(started.elapsed() >= filtermail::MXDELIV_IO_TIMEOUT);
    assert!(!String::from_utf8_lossy(&got).contains(" 200 "), "{got:?}");
    // A request body that stops arriving: the connection is closed, nothing hangs.
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(
        b"POST / HTTP/1.1\r\nHost: x\r\nX-MAIL-TO: a@x.org\r\nContent-Length: 100\r\n\r\nabc",
    )
    .await
    .unwrap();
    let started = tokio::time::Instant::now();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got).await;
    assert!(started.elapsed() >= filtermail::MXDELIV_IO_TIMEOUT);
    stop.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn http_stop_closes_idle_connections() {
    let (addr, stop, server, _dir) = http_server().await;
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = c.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 405"));
    // The connection is kept alive and idle; stopping must not wait for it.
    stop.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .expect("stop waited for an idle connection")
        .unwrap()
        .unwrap();
    let n = c.read(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0, "idle connection left open");
}
