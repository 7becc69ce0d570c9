//! The HTTP `/mxdeliv` listener of the real binary in incoming mode (SPEC §6.11): raw
//! HTTP/1.x over TCP, HTTP/2 with prior knowledge through hyper's client, reinjection into
//! a local SMTP sink.
// The request helpers below are test code too: a failed step should abort the test loudly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test helpers"
)]

mod common;

use std::time::Duration;

use common::sink;
use common::{Daemon, Eol, eml};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FROM: &str = "alice@remote.example";
const TO: &str = "bob@chat.example.org";
/// Upper bound for anything the server should answer promptly (a hang guard, not timing).
const PATIENCE: Duration = Duration::from_secs(20);

fn daemon(sink: &sink::Sink, extra: &str) -> Daemon {
    Daemon::start(
        "incoming",
        sink.port,
        extra,
        &[("FILTERMAIL_SKIP_DKIM", "1")],
    )
}

/// A cleartext message with lines that need dot-stuffing.
fn message() -> Vec<u8> {
    let mut m = eml("plain.eml", FROM, TO, "hi", Eol::Crlf);
    m.extend_from_slice(b".leading dot\r\n..two dots\r\n.\r\nlast\r\n");
    m
}

/// An HTTP/1.x response: status code, headers (raw) and body.
#[derive(Debug)]
struct Resp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

fn parse(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    Resp {
        status,
        head,
        body: raw[split + 4..].to_vec(),
    }
}

/// Sends `head` + `body` on a new connection and reads until the server closes it.
async fn raw_request(port: u16, head: &str, body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut got))
        .await
        .expect("response timeout")
        .unwrap();
    parse(&got)
}

/// A `Connection: close` HTTP/1.1 POST with the given extra header lines.
async fn post(port: u16, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut head = format!(
        "POST /mxdeliv HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    raw_request(port, &head, body).await
}

#[tokio::test]
async fn accepted_message_is_reinjected_byte_exact() {
    let sink = sink::start("250 2.0.0 Ok").await;
    let d = daemon(&sink, "");
    let msg = message();
    let r = post(
        d.http_port,
        &[
            ("X-MAIL-FROM", FROM),
            ("X-MAIL-TO", TO),
            ("X-MAIL-TO", "carol@chat.example.org"),
        ],
        &common::stuff(&msg),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, b"250 OK");
    let got = sink.messages();
    assert_eq!(got.len(), 1);
    assert!(got[0].mail_line.starts_with(&format!("MAIL FROM:<{FROM}>")));
    assert_eq!(got[0].rcpts, vec![TO, "carol@chat.example.org"]);
    assert_eq!(got[0].data, msg, "reinjected bytes differ");
    assert!(d.wait_log("Incoming: Filtering unencrypted mail.").await);
}

#[tokio::test]
async fn null_sender_when_header_absent() {
    let sink = sink::start("250 2.0.0 Ok").await;
    let d = daemon(&sink, "");
    let msg = eml(
        "mailer-daemon.eml",
        "MAILER-DAEMON@remote.example",
        TO,
        "x",
        Eol::Crlf,
    );
    let r = post(d.http_port, &[("X-MAIL-TO", TO)], &common::stuff(&msg)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let got = sink.messages();
    assert_eq!(got.len(), 1);
    assert!(got[0].mail_line.starts_with("MAIL FROM:<>"), "{got:?}");
    assert_eq!(got[0].data, msg);
}

#[tokio::test]
async fn cleartext_to_enforcing_recipient_is_400_523() {
    let sink = sink::start("250 2.0.0 Ok").await;
    let d = daemon(&sink, "");
    let mbox = d.mailboxes().join(TO);
    std::fs::create_dir_all(&mbox).unwrap();
    std::fs::write(mbox.join("enforceE2EEincoming"), b"").unwrap();
    let r = post(
        d.http_port,
        &[("X-MAIL-FROM", FROM), ("X-MAIL-TO", TO)],
        &common::stuff(&message()),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.body, b"523 Encryption Needed: Invalid Unencrypted Mail");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn reinjection_rejection_keeps_its_class() {
    // A permanent reinjection rejection is a 400; a temporary one must stay retryable.
    let sink = sink::start("554 5.7.1 no thanks").await;
    let d = daemon(&sink, "");
    let body = common::stuff(&message());
    let r = post(
        d.http_port,
        &[("X-MAIL-FROM", FROM), ("X-MAIL-TO", TO)],
        &body,
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.starts_with(b"554 5.7.1 no thanks"), "{r:?}");

    let sink = sink::start("451 4.3.0 later").await;
    let d = daemon(&sink, "");
    let r = post(
        d.http_port,
        &[("X-MAIL-FROM", FROM), ("X-MAIL-TO", TO)],
        &body,
    )
    .await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.starts_with(b"451 4.3.0 later"), "{r:?}");
    assert!(
        r.head.to_ascii_lowercase().contains("retry-after: 60"),
        "{r:?}"
    );
}

#[tokio::test]
async fn other_methods_are_405() {
    let sink = sink::start("250 2.0.0 Ok").await;
    let d = daemon(&sink, "");
    for method in ["GET", "PUT", "HEAD"] {
        let r = raw_request(
            d.http_port,
            &format!("{method} /mxdeliv HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            b"",
        )
        .await;
        assert_eq!(r.status, 405, "{method}: {r:?}");
        if method != "HEAD" {
            assert_eq!(r.body, b"Method Not Allowed");
        }
    }
}

#[tokio::test]
async fn http_1_0_works() {
    let sink = sink::start("250 2.0.0 Ok").await;
    let d = daemon(&sink, "");
    let body = common::stuff(&message());
    let head = format!(
        "POST /anything HTTP/1.0\r\nX-MAIL-FROM: {FROM}\r\nX-MAIL-TO: {TO}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // HTTP/1.0 closes after the response: read_to_end returns.
    let r = raw_request(d.http_port, &head, &body).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, b"250 OK");
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(sink.messages()[0].data, message());
}

/// An HTTP/2 client connection with prior knowledge to 127.0.0.1:`port`.
async fn h2c(port: u16) -> SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// POSTs `body` with `headers` to `/mxdeliv` over `sender`: (version, status, body).
async fn h2_post(
    sender: &mut SendRequest<Full<Bytes>>,
    port: u16,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (hyper::Version, u16, Vec<u8>) {
    let mut req = hyper::Request::post(format!("http://127.0.0.1:{port}/mxdeliv"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body))).unwrap();
    let resp = tokio::time::timeout(PATIENCE, sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let (version, status) = (resp.version(), resp.status().as_u16());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (version, status, body.to_vec())
}

#[tokio::test]
async fn h2c_prior_knowledge_works() {
    let sink = sink::start("250 2.0.0 Ok").await;
    let d = daemon(&sink, "");
    let mut sender = h2c(d.http_port).await;
    for i in 0..2 {
        let headers = [("X-MAIL-FROM", FROM), ("X-MAIL-TO", TO)];
        let body = common::stuff(&message());
        let (version, status, body) = h2_post(&mut sender, d.http_port, &headers, body).await;
        assert_eq!(version, hyper::Version::HTTP_2);
        assert_eq!(status, 200, "request {i}");
        assert_eq!(&body[..], b"250 OK");
    }
    let got = sink.messages();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].data, message());
}

#[tokio::test]
async fn h2c_oversized_body_gets_413() {
    let sink = sink::start("250 2.0.0 Ok").await;
    let d = daemon(&sink, "max_message_size = 10000\n");
    let mut sender = h2c(d.http_port).await;
    // Just over the limit (the declared length alone does not rule it out), and far over.
    for size in [12_000, 1_000_000] {
        let (_, status, body) = h2_post(
            &mut sender,
            d.http_port,
            &[("X-MAIL-TO", TO)],
            vec![b'x'; size],
        )
        .await;
        assert_eq!(status, 413, "{size}");
        assert_eq!(&body[..], b"552 Message exceeds maximum size");
    }
    // The connection is still usable.
    let headers = [("X-MAIL-FROM", FROM), ("X-MAIL-TO", TO)];
    let body = common::stuff(&message());
    let (_, status, _) = h2_post(&mut sender, d.http_port, &headers, body).await;
    assert_eq!(status, 200);
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn oversized_streamed_body_is_413_before_the_end() {
    let sink = sink::start("250 2.0.0 Ok").await;
    let d = daemon(&sink, "max_message_size = 10000\n");
    let mut s = TcpStream::connect(("127.0.0.1", d.http_port))
        .await
        .unwrap();
    s.write_all(
        format!(
            "POST /mxdeliv HTTP/1.1\r\nHost: x\r\nX-MAIL-FROM: {FROM}\r\nX-MAIL-TO: {TO}\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let (mut rd, mut wr) = s.into_split();
    // 100 KB in chunks, then the body is left unfinished: an answer can only come from a
    // server that stops reading at the limit.
    let writer = tokio::spawn(async move {
        let line = [b'x'; 998];
        let mut chunk = Vec::new();
        chunk.extend_from_slice(b"3e8\r\n");
        chunk.extend_from_slice(&line);
        chunk.extend_from_slice(b"\r\n\r\n");
        for _ in 0..100 {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
        }
        // Keep the connection open (unfinished body) until the test ends.
        std::future::pending::<()>().await;
        drop(wr);
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let r = tokio::time::timeout(PATIENCE, async {
        loop {
            let n = rd.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if let Some(p) = got.windows(4).position(|w| w == b"\r\n\r\n")
                && got.len() >= p + 4 + 32
            {
                break;
            }
        }
    })
    .await;
    writer.abort();
    assert!(r.is_ok(), "no response before the body ended");
    let r = parse(&got);
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.body, b"552 Message exceeds maximum size");
    assert!(sink.messages().is_empty());

    // A declared length far over the limit is refused without reading the body.
    let r = raw_request(
        d.http_port,
        &format!(
            "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-MAIL-TO: {TO}\r\nContent-Length: 1000000000\r\n\r\n"
        ),
        b"",
    )
    .await;
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.body, b"552 Message exceeds maximum size");
}

#[tokio::test]
async fn oversized_body_is_discarded_and_the_connection_kept() {
    let sink = sink::start("250 2.0.0 Ok").await;
    let d = daemon(&sink, "max_message_size = 10000\n");
    let mut s = TcpStream::connect(("127.0.0.1", d.http_port))
        .await
        .unwrap();
    let big = vec![b'x'; 12_000];
    s.write_all(
        format!("POST / HTTP/1.1\r\nHost: x\r\nX-MAIL-TO: {TO}\r\nContent-Length: 12000\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    s.write_all(&big).await.unwrap();
    let body = common::stuff(&message());
    s.write_all(
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-MAIL-FROM: {FROM}\r\nX-MAIL-TO: {TO}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    s.write_all(&body).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&got);
    let first = text.find("HTTP/1.1 413").expect("413 first");
    let second = text.find("HTTP/1.1 200").expect("then 200");
    assert!(first < second, "{text}");
    assert!(text.contains("552 Message exceeds maximum size"), "{text}");
    assert_eq!(sink.messages().len(), 1);
}

/// The envelope rules of SMTP's MAIL and RCPT: a sender of our own domain or a recipient
/// without a mailbox refuses the whole request with 400 and the SMTP reply; nothing is
/// reinjected, also for the recipients that exist.
#[tokio::test]
async fn local_senders_and_unknown_recipients_are_400() {
    let sink = sink::start("250 2.0.0 Ok").await;
    let d = daemon(&sink, "");
    let blocked = common::create_account(&d.mailboxes(), "dave@chat.example.org");
    std::fs::write(blocked.join("blocked"), b"").unwrap();
    let body = common::stuff(&eml("encrypted.eml", FROM, TO, "hi", Eol::Crlf));
    for rcpt in [
        "nobody@chat.example.org",
        "dave@chat.example.org",
        "bob@other.example",
    ] {
        let r = post(
            d.http_port,
            &[
                ("X-MAIL-FROM", FROM),
                ("X-MAIL-TO", TO),
                ("X-MAIL-TO", rcpt),
            ],
            &body,
        )
        .await;
        assert_eq!(r.status, 400, "{rcpt}: {r:?}");
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            format!("550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown")
        );
    }
    for sender in [
        "carol@chat.example.org",
        "<Carol+x@Chat.Example.ORG.>",
        "\"carol\"@chat.example.org",
    ] {
        let r = post(
            d.http_port,
            &[("X-MAIL-FROM", sender), ("X-MAIL-TO", TO)],
            &body,
        )
        .await;
        assert_eq!(r.status, 400, "{sender}: {r:?}");
        assert_eq!(
            r.body,
            b"550 5.7.1 Sender address rejected: users of this domain send only through submission"
        );
    }
    assert!(sink.messages().is_empty());
    // The null sender, and a remote one, to an existing mailbox.
    for headers in [
        &[("X-MAIL-TO", TO)][..],
        &[("X-MAIL-FROM", "<>"), ("X-MAIL-TO", TO)],
        &[
            ("X-MAIL-FROM", FROM),
            ("X-MAIL-TO", "Bob+x@chat.example.org"),
        ],
    ] {
        let r = post(d.http_port, headers, &body).await;
        assert_eq!(r.status, 200, "{headers:?}: {r:?}");
    }
    assert_eq!(sink.messages().len(), 3);
}

#[tokio::test]
async fn malformed_requests_are_400() {
    let sink = sink::start("250 2.0.0 Ok").await;
    let d = daemon(&sink, "");
    let body = common::stuff(&message());
    // No recipient.
    let r = post(d.http_port, &[("X-MAIL-FROM", FROM)], &body).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        String::from_utf8_lossy(&r.body).contains("X-MAIL-TO"),
        "{r:?}"
    );
    // Unusable addresses.
    for (k, v) in [
        ("X-MAIL-TO", "a b@c.example"),
        ("X-MAIL-TO", "<>"),
        ("X-MAIL-FROM", "x>y@c.example"),
    ] {
        let r = post(d.http_port, &[("X-MAIL-TO", TO), (k, v)], &body).await;
        assert_eq!(r.status, 400, "{k}: {v}: {r:?}");
    }
    // Recipient spellings whose mailbox Postfix would have to guess.
    for v in [
        "\"bob\"@chat.example.org",
        "@relay.example:bob@chat.example.org",
        "bob%chat.example.org@chat.example.org",
    ] {
        let r = post(d.http_port, &[("X-MAIL-TO", v)], &body).await;
        assert_eq!(r.status, 400, "{v}: {r:?}");
        assert_eq!(r.body, b"553 5.1.3 Recipient address not in plain form");
    }
    // Two senders.
    let r = post(
        d.http_port,
        &[
            ("X-MAIL-TO", TO),
            ("X-MAIL-FROM", FROM),
            ("X-MAIL-FROM", FROM),
        ],
        &body,
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    // Data after a lone "." line, and a body without its final CRLF.
    for bad in [
        &b"Subject: x\r\n\r\n.\r\nmore\r\n"[..],
        b"Subject: x\r\n\r\nno crlf",
        b"Subject: x\nFrom: y@z\r\n\r\nbare LF\r\n",
        b"Subject: x\r\n\r\nbare\rCR\r\n",
    ] {
        let r = post(
            d.http_port,
            &[("X-MAIL-FROM", FROM), ("X-MAIL-TO", TO)],
            bad,
        )
        .await;
        assert_eq!(r.status, 400, "{r:?}");
        assert_eq!(r.body, b"500 Invalid DATA");
    }
    // Not HTTP at all, and a header line without a colon.
    let r = raw_request(d.http_port, "NONSENSE\r\n\r\n", b"").await;
    assert_eq!(r.status, 400, "{r:?}");
    let r = raw_request(
        d.http_port,
        "POST / HTTP/1.1\r\nHost: x\r\nX-MAIL-TO\r\nContent-Length: 0\r\n\r\n",
        b"",
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(sink.messages().is_empty());
    // The server is still fine.
    let r = post(
        d.http_port,
        &[("X-MAIL-FROM", FROM), ("X-MAIL-TO", TO)],
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn sigterm_stops_both_listeners() {
    let sink = sink::start("250 2.0.0 Ok").await;
    let mut d = daemon(&sink, "");
    // An idle keep-alive HTTP connection must not hold the shutdown up.
    let mut idle = TcpStream::connect(("127.0.0.1", d.http_port))
        .await
        .unwrap();
    let body = common::stuff(&message());
    idle.write_all(
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nX-MAIL-TO: {TO}\r\nX-MAIL-FROM: {FROM}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    idle.write_all(&body).await.unwrap();
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let status = tokio::task::spawn_blocking(move || {
        let s = d.terminate();
        (s, d)
    })
    .await
    .unwrap();
    assert!(status.0.expect("still running after SIGTERM").success());
    assert!(
        TcpStream::connect(("127.0.0.1", status.1.http_port))
            .await
            .is_err()
    );
}

/// Opens a `/mxdeliv` request and sends 1.5 MB of a body it never finishes, so that the
/// daemon holds that much of its memory budget for it.
async fn hold_budget(port: u16) -> TcpStream {
    let mut hold = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    hold.write_all(
        format!(
            "POST /mxdeliv HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-MAIL-FROM: {FROM}\r\nX-MAIL-TO: {TO}\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let line = [b'x'; 998];
    let mut chunk = Vec::new();
    chunk.extend_from_slice(b"3e8\r\n");
    chunk.extend_from_slice(&line);
    chunk.extend_from_slice(b"\r\n\r\n");
    for _ in 0..1500 {
        hold.write_all(&chunk).await.unwrap();
    }
    hold
}

/// Past the memory budget a request gets 503 with Retry-After while another holds it.
#[tokio::test]
async fn memory_budget_is_503_with_retry_after() {
    let sink = sink::start("250 2.0.0 Ok").await;
    // The budget is raised to one message of max_message_size: 2 MB.
    let d = daemon(
        &sink,
        "filtermail_memory_budget = 1M\nmax_message_size = 2000000\n",
    );
    // A second message of 1 MB cannot be covered next to the holder's 1.5 MB.
    let mut big = common::stuff(&message());
    big.splice(
        0..0,
        format!("X-Pad: {}\r\n", "p".repeat(1_000_000)).into_bytes(),
    );
    let mut deferred = None;
    let mut hold = hold_budget(d.http_port).await;
    for _ in 0..100 {
        let r = post(
            d.http_port,
            &[("X-MAIL-FROM", FROM), ("X-MAIL-TO", TO)],
            &big,
        )
        .await;
        if r.status == 503 {
            deferred = Some(r);
            break;
        }
        // The message came in before the holder's body was read, so the holder was the one
        // deferred (its connection answered and closed): hold again.
        let mut probe = [0u8; 1];
        if !matches!(hold.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        {
            hold = hold_budget(d.http_port).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = deferred.expect("never deferred");
    assert_eq!(
        r.body,
        b"451 4.3.1 Error: too much mail in flight, try again later"
    );
    assert!(
        r.head.to_ascii_lowercase().contains("retry-after: 60"),
        "{r:?}"
    );
    // Once the holder goes away, the budget is free again.
    drop(hold);
    let mut ok = None;
    for _ in 0..100 {
        let r = post(
            d.http_port,
            &[("X-MAIL-FROM", FROM), ("X-MAIL-TO", TO)],
            &big,
        )
        .await;
        if r.status == 200 {
            ok = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok.is_some(), "budget not given back");
}
