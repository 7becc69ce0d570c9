//! A stopping filtermail (SIGTERM), in every mode: a session waiting for its next command
//! gets `421` at once and is closed (RFC 5321 §3.8), so an idle Postfix connection never
//! holds up the stop; a session in the middle of a message finishes it first.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, Eol, eml, sink};
use tokio::io::AsyncReadExt;

const FROM: &str = "alice@chat.example.org";
const TO: &str = "bob@chat.example.org";
const SHUTTING_DOWN: &str = "421 4.3.2 Service shutting down";

/// Sends SIGTERM (unless `sent` already) and returns how long the process then took to exit
/// (at most 10 s).
#[expect(
    clippy::unwrap_used,
    reason = "test helper: any failure fails the test"
)]
async fn stop(mut d: Daemon, sent: bool) -> (Duration, Daemon) {
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        if !sent {
            d.signal_term();
        }
        let status = d.wait_exit(Duration::from_secs(10));
        assert!(status.is_some_and(|s| s.success()), "{status:?}");
        (started.elapsed(), d)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_idle_sessions_with_421_at_once() {
    let sink = sink::start("250 Ok").await;
    for mode in ["outgoing", "incoming", "transport"] {
        let d = Daemon::start(mode, sink.port, "", &[("FILTERMAIL_SKIP_DKIM", "1")]);
        let mut c = d.connect().await;
        assert!(c.cmd("EHLO postfix").await.starts_with("250"), "{mode}");
        // Incoming mode: an idle connection to the /mxdeliv port as well.
        let mut http = match mode {
            "incoming" => Some(
                tokio::net::TcpStream::connect(("127.0.0.1", d.http_port))
                    .await
                    .unwrap(),
            ),
            _ => None,
        };
        let (took, _d) = stop(d, false).await;
        eprintln!("{mode}: exited {took:?} after SIGTERM");
        assert_eq!(c.reply().await, SHUTTING_DOWN, "{mode}");
        assert!(c.closed().await, "{mode}");
        if let Some(h) = http.as_mut() {
            let mut rest = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(1), h.read_to_end(&mut rest));
            assert!(read.await.is_ok(), "idle HTTP connection left open");
        }
        assert!(took < Duration::from_secs(2), "{mode}: {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_being_received_is_finished_before_the_421() {
    let sink = sink::start("250 Ok").await;
    let mut d = Daemon::start("outgoing", sink.port, "", &[]);
    let mut c = d.connect().await;
    assert!(c.cmd("EHLO postfix").await.starts_with("250"));
    assert_eq!(c.cmd(&format!("MAIL FROM:<{FROM}>")).await, "250 OK");
    assert_eq!(c.cmd(&format!("RCPT TO:<{TO}>")).await, "250 OK");
    assert!(c.cmd("DATA").await.starts_with("354"));
    let message = common::stuff(&eml("encrypted.eml", FROM, TO, "hi", Eol::Crlf));
    let (head, tail) = message.split_at(message.len() / 2);
    c.send(head).await;
    d.signal_term();
    // The session is in the middle of DATA: the process waits for it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(d.wait_exit(Duration::ZERO).is_none(), "exited mid-message");
    c.send(tail).await;
    c.send(b".\r\n").await;
    assert_eq!(c.reply().await, "250 OK");
    assert_eq!(sink.messages().len(), 1, "reinjected whole");
    assert_eq!(c.reply().await, SHUTTING_DOWN);
    assert!(c.closed().await);
    let (took, _d) = stop(d, true).await;
    assert!(took < Duration::from_secs(2), "{took:?}");
}
