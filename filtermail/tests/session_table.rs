//! The same fault gets the same reply from the SMTP filter and from transport mode: both
//! servers run in process on loopback TCP, each row's bytes go to both, and their whole
//! transcripts must match each other and end in the row's reply.
// Test scaffolding: a failed setup step should abort the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test scaffolding")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chatmail_smtp::MAX_LINE;
use filtermail::{Filter, Mode};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// `max_message_size` of both servers: small, so the oversize row stays small.
const MAX_MESSAGE: usize = 1000;
/// How long the test waits for any one reply line.
const REPLY_WAIT: Duration = Duration::from_secs(20);

/// The SMTP filter (outgoing mode, which takes any recipient) and transport mode.
async fn start_both(idle_timeout: Duration) -> ([SocketAddr; 2], CancellationToken) {
    let ini = format!("[params]\nmail_domain = x.org\nmax_message_size = {MAX_MESSAGE}\n");
    let config = chatmaild::Config::parse(&ini).unwrap();
    let stop = CancellationToken::new();
    let smtp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lmtp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addrs = [smtp.local_addr().unwrap(), lmtp.local_addr().unwrap()];
    let filter = Arc::new(Filter::new(&config, Mode::Outgoing, None));
    tokio::spawn(filtermail::run_smtp_with(
        smtp,
        filter,
        stop.clone(),
        idle_timeout,
    ));
    let opts = mxdeliver::TransportOptions {
        // Never asked: no row delivers.
        dns_server: Some("127.0.0.1:9".parse().unwrap()),
        system_roots: false,
        extra_roots: vec![
            rcgen::generate_simple_self_signed(["anchor.example".to_owned()])
                .unwrap()
                .cert
                .der()
                .clone(),
        ],
        idle_timeout,
        ..Default::default()
    };
    tokio::spawn(mxdeliver::run(Arc::new(config), lmtp, stop.clone(), opts));
    (addrs, stop)
}

/// What a server answered to a row: its reply lines after the greeting, and whether it
/// closed the connection after them.
#[derive(Debug, PartialEq, Eq)]
struct Transcript {
    lines: Vec<String>,
    closed: bool,
}

/// Sends `input` after the greeting, reads `replies` reply lines, then checks for a close.
async fn run(addr: SocketAddr, input: &[u8], replies: usize) -> Transcript {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut greeting = String::new();
    r.read_line(&mut greeting).await.unwrap();
    assert!(greeting.starts_with("220 filtermail "), "{greeting}");
    // The server may close (and reset) before it has read everything: that is the answer.
    let _ = w.write_all(input).await;
    let mut lines = Vec::new();
    for _ in 0..replies {
        let mut line = String::new();
        let n = tokio::time::timeout(REPLY_WAIT, r.read_line(&mut line))
            .await
            .expect("a reply in time")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        lines.push(line.trim_end().to_owned());
    }
    // Closed: EOF (or a reset) before a short wait ends; open: nothing within it.
    let mut rest = [0u8; 1];
    let closed = match tokio::time::timeout(Duration::from_millis(300), r.read(&mut rest)).await {
        Ok(Ok(0) | Err(_)) => true,
        Ok(Ok(_)) => panic!("unexpected bytes after the replies: {lines:?}"),
        Err(_) => false,
    };
    Transcript { lines, closed }
}

/// One fault: the bytes that cause it, how many reply lines they get, the last of them,
/// and whether the server closes the connection after it.
struct Row {
    fault: &'static str,
    input: Vec<u8>,
    replies: usize,
    last: &'static str,
    closed: bool,
}

fn row(fault: &'static str, input: &[u8], replies: usize, last: &'static str) -> Row {
    Row {
        fault,
        input: input.to_vec(),
        replies,
        last,
        closed: false,
    }
}

fn closing(fault: &'static str, input: &[u8], last: &'static str) -> Row {
    Row {
        fault,
        input: input.to_vec(),
        replies: 1,
        last,
        closed: true,
    }
}

/// `MAIL` of a fresh sender, one recipient, `DATA` and `body` (the 354 is a reply line).
fn message(body: &[u8]) -> Vec<u8> {
    let mut input = b"MAIL FROM:<s@x.org>\r\nRCPT TO:<r@b.example>\r\nDATA\r\n".to_vec();
    input.extend_from_slice(body);
    input
}

fn table() -> Vec<Row> {
    let mut recipients = b"MAIL FROM:<s@x.org>\r\n".to_vec();
    for i in 0..=chatmail_smtp::MAX_RECIPIENTS {
        recipients.extend_from_slice(format!("RCPT TO:<r{i}@b.example>\r\n").as_bytes());
    }
    let mut big = vec![b'x'; MAX_MESSAGE];
    big.extend_from_slice(b"\r\n.\r\n");
    vec![
        row(
            "unknown command",
            b"VRFY x\r\n",
            1,
            "500 Command not recognized",
        ),
        row(
            "RCPT before MAIL",
            b"RCPT TO:<r@b.example>\r\n",
            1,
            "503 Error: need MAIL command",
        ),
        row(
            "DATA before MAIL",
            b"DATA\r\n",
            1,
            "503 Error: need MAIL command",
        ),
        row(
            "DATA before RCPT",
            b"MAIL FROM:<s@x.org>\r\nDATA\r\n",
            2,
            "503 Error: need RCPT command",
        ),
        row(
            "nested MAIL",
            b"MAIL FROM:<s@x.org>\r\nMAIL FROM:<s@x.org>\r\n",
            2,
            "503 Error: nested MAIL command",
        ),
        row(
            "unparsable MAIL path",
            b"MAIL FROM:s@x.org\r\n",
            1,
            "500 Invalid address in MAIL FROM",
        ),
        row(
            "unparsable RCPT path",
            b"MAIL FROM:<s@x.org>\r\nRCPT TO:<r@b.example\r\n",
            2,
            "501 Invalid address in RCPT TO",
        ),
        row(
            "too many recipients",
            &recipients,
            chatmail_smtp::MAX_RECIPIENTS + 2,
            "452 4.5.3 Error: too many recipients",
        ),
        row(
            "oversize message",
            &message(&big),
            4,
            "552 Message exceeds maximum size",
        ),
        row(
            "bare LF in DATA",
            &message(b"a\nb\r\n.\r\n"),
            4,
            "500 Invalid DATA",
        ),
        row(
            "unstuffed dot in DATA",
            &message(b".a\r\n.\r\n"),
            4,
            "500 Invalid DATA",
        ),
        row(
            "data after a refused message is not read as commands",
            &[message(&big), b"VRFY x\r\n".to_vec()].concat(),
            5,
            "500 Command not recognized",
        ),
        closing(
            "bare LF",
            b"NOOP\n",
            "500 5.5.2 Error: command line must end with CRLF",
        ),
        closing(
            "over-long command line",
            &vec![b'A'; MAX_LINE + 10],
            "500 5.5.2 Error: line too long",
        ),
        closing("QUIT", b"QUIT\r\n", "221 OK"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_fault_gets_the_same_reply() {
    let ([smtp, lmtp], stop) = start_both(chatmail_smtp::server::IDLE_TIMEOUT).await;
    for r in table() {
        let from_smtp = run(smtp, &r.input, r.replies).await;
        let from_lmtp = run(lmtp, &r.input, r.replies).await;
        assert_eq!(from_smtp, from_lmtp, "{}: filter vs transport", r.fault);
        assert_eq!(
            from_smtp.lines.len(),
            r.replies,
            "{}: {from_smtp:?}",
            r.fault
        );
        assert_eq!(
            from_smtp.lines.last().map(String::as_str),
            Some(r.last),
            "{}",
            r.fault
        );
        assert_eq!(from_smtp.closed, r.closed, "{}: closed", r.fault);
    }
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_gets_the_same_421() {
    let ([smtp, lmtp], stop) = start_both(Duration::from_secs(1)).await;
    let cases: [(&str, Vec<u8>, usize); 2] = [
        ("between commands", b"NOOP\r\nNOO".to_vec(), 2),
        ("within DATA", message(b"a line\r\n"), 4),
    ];
    for (when, input, replies) in cases {
        let from_smtp = run(smtp, &input, replies).await;
        let from_lmtp = run(lmtp, &input, replies).await;
        assert_eq!(from_smtp, from_lmtp, "{when}: filter vs transport");
        assert_eq!(
            from_smtp.lines.last().map(String::as_str),
            Some("421 4.4.2 Error: timeout exceeded"),
            "{when}"
        );
        assert!(from_smtp.closed, "{when}");
    }
    stop.cancel();
}
