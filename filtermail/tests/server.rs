//! The SMTP listener and the reinjection client in process, with a paused clock for the
//! idle timeouts.

mod common;

use std::sync::Arc;

use filtermail::{Filter, Mode, server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

#[tokio::test(start_paused = true)]
async fn idle_client_gets_421_and_is_closed() {
    let config = chatmaild::Config::parse("[params]\nmail_domain = x.org\n").unwrap();
    let filter = Arc::new(Filter::new(&config, Mode::Outgoing, None));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(server::run(listener, filter, stop.clone()));
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
    let server = tokio::spawn(server::run(listener, filter, stop.clone()));
    stop.cancel();
    assert!(server.await.unwrap().is_ok());
}

#[tokio::test]
async fn idle_reinjection_connections_are_closed() {
    let sink = common::sink::Sink::start("250 Ok").await;
    let r = filtermail::reinject::Reinjector::new(
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
