use super::*;

fn client(script: &'static [u8]) -> Client {
    Client::new(tokio_test_stream(script), Duration::from_secs(5))
}

/// A stream that reads `script`, then EOF, and swallows writes.
fn tokio_test_stream(script: &'static [u8]) -> impl Stream {
    tokio::io::join(script, tokio::io::sink())
}

#[tokio::test]
async fn ehlo_capabilities() {
    let mut c = client(b"250-mx.example hi\r\n250-8BITMIME\r\n250-starttls\r\n250 SIZE 100\r\n");
    let r = c.ehlo("me").await.unwrap();
    assert_eq!(r.lines.len(), 4);
    let caps = c.capabilities();
    assert!(caps.starttls && caps.eight_bit_mime && caps.size);
    assert!(!caps.smtputf8 && !caps.pipelining && !caps.dsn);
    assert_eq!(
        c.rcpt_command("x@y", true),
        "RCPT TO:<x@y>",
        "no NOTIFY= to a server without DSN"
    );
    assert_eq!(
        c.mail_command("a@b", true, true, Some(7)),
        "MAIL FROM:<a@b> BODY=8BITMIME SIZE=7"
    );
    let only_name = ReplyLines {
        code: 250,
        lines: vec!["PIPELINING".into()],
    };
    assert!(
        !Capabilities::of(&only_name).pipelining,
        "the first line names the server"
    );
}

#[tokio::test]
async fn notify_never_only_with_dsn() {
    let mut c = client(b"250-postfix\r\n250-PIPELINING\r\n250 DSN\r\n");
    c.ehlo("me").await.unwrap();
    assert!(c.capabilities().dsn);
    assert_eq!(c.rcpt_command("x@y", true), "RCPT TO:<x@y> NOTIFY=NEVER");
    assert_eq!(c.rcpt_command("x@y", false), "RCPT TO:<x@y>");
}

#[tokio::test]
async fn eof_and_garbage_are_errors() {
    let mut c = client(b"250-partial\r\n");
    assert!(matches!(c.read_reply().await, Err(Error::Closed)));
    let mut c = client(b"hello\r\n");
    assert!(matches!(c.read_reply().await, Err(Error::Malformed(_))));
}

#[tokio::test]
async fn envelope_refusals() {
    let mut c = client(b"250 OK\r\n550 no\r\n250 OK\r\n354 go\r\n");
    let rcpts = ["x@y".to_owned(), "z@y".to_owned()];
    let sent = c.envelope("MAIL FROM:<>", &rcpts, true).await.unwrap();
    assert!(matches!(sent, Sent::Refused(Step::Rcpt, r) if r.code == 550));
    // Refused, then closed: the refusal counts.
    let mut c = client(b"421 closing\r\n");
    let sent = c.envelope("MAIL FROM:<>", &rcpts, true).await.unwrap();
    assert!(matches!(sent, Sent::Refused(Step::Mail, r) if r.code == 421));
    let mut c = client(b"251 OK\r\n");
    let sent = c.envelope("MAIL FROM:<>", &rcpts, false).await.unwrap();
    assert!(matches!(sent, Sent::Refused(Step::Mail, r) if r.code == 251));
    let mut c = client(b"250 OK\r\n");
    let err = c.envelope("MAIL FROM:<>", &rcpts, false).await.unwrap_err();
    assert!(matches!(err, (Step::Rcpt, Error::Closed)));
}
