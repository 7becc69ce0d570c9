//! SMTP transcripts of the real `filtermail` binary between a raw client and a local sink
//! standing in for Postfix's reinjection port.

mod common;

use common::sink;
use common::{Daemon, Eol, REMOTE, eml, free_port};

const FROM: &str = "alice@chat.example.org";
const TO: &str = "bob@chat.example.org";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_encrypted_accepted_and_reinjected_unchanged() {
    let sink = sink::start("250 2.0.0 Ok: queued").await;
    let d = Daemon::start("outgoing", sink.port, "", &[]);
    assert!(
        d.startup[0].contains("entering serving loop"),
        "{:?}",
        d.startup
    );
    let mut c = d.connect().await;
    let ehlo = c.cmd("EHLO postfix.example").await;
    assert!(ehlo.contains("8BITMIME"), "{ehlo}");
    for forbidden in ["PIPELINING", "CHUNKING", "STARTTLS", "AUTH", "XCLIENT"] {
        assert!(!ehlo.contains(forbidden), "{ehlo}");
    }
    let msg = eml("encrypted.eml", FROM, TO, "hi", Eol::Crlf);
    assert_eq!(c.transaction(FROM, &[TO], &msg).await, "250 OK");
    let got = sink.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, msg, "reinjected byte-for-byte");
    assert_eq!(got[0].mail_line, format!("MAIL FROM:<{FROM}>"));
    assert_eq!(got[0].rcpts, vec![TO.to_string()]);
    assert!(d.wait_log("Outgoing: Filtering encrypted mail.").await);
    // The connection serves further transactions.
    assert_eq!(c.transaction(FROM, &[TO], &msg).await, "250 OK");
    assert_eq!(c.cmd("QUIT").await, "221 OK");
    assert!(c.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_cleartext_523() {
    let sink = sink::start("250 Ok").await;
    let d = Daemon::start("outgoing", sink.port, "", &[]);
    let mut c = d.connect().await;
    c.cmd("EHLO x").await;
    let msg = eml("plain.eml", FROM, TO, "hi", Eol::Crlf);
    assert_eq!(
        c.transaction(FROM, &[TO], &msg).await,
        "523 Encryption Needed: Invalid Unencrypted Mail"
    );
    assert!(sink.messages().is_empty());
    assert!(d.wait_log("Rejected unencrypted mail").await);
    assert!(
        d.log_lines()
            .iter()
            .any(|l| l.ends_with("Outgoing: Filtering unencrypted mail."))
    );
    // Forged From and a bad MAIL FROM.
    let forged = eml("encrypted.eml", "mallory@evil.example", TO, "hi", Eol::Crlf);
    assert_eq!(
        c.transaction(FROM, &[TO], &forged).await,
        format!("500 Invalid FROM <mallory@evil.example> for <{FROM}>")
    );
    assert_eq!(
        c.cmd("MAIL FROM:<noat>").await,
        "500 Invalid from address <noat>"
    );
    assert_eq!(c.cmd("MAIL FROM:<>").await, "500 Invalid from address <>");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_8bit_and_dot_lines_byte_for_byte_null_sender() {
    let sink = sink::start("250 2.0.0 Ok").await;
    let d = Daemon::start("incoming", sink.port, "", &[("FILTERMAIL_SKIP_DKIM", "1")]);
    assert!(
        d.startup[0].contains("DKIM verification DISABLED!"),
        "{:?}",
        d.startup
    );
    assert!(d.startup[1].contains("loop"), "{:?}", d.startup);
    let mut c = d.connect().await;
    c.cmd("EHLO x").await;
    let msg = b"From: <carol@other.example>\r\nTo: <bob@chat.example.org>\r\nSubject: 8bit\r\n\r\n\xe4\xf6\xfc not UTF-8 \xff\r\n.leading dot\r\n..two dots\r\n.\r\n\r\nend\r\n";
    assert_eq!(
        c.transaction("srs=xyz@forwarder.example", &[TO], msg).await,
        "250 OK"
    );
    let got = sink.messages();
    assert_eq!(got[0].data, msg.to_vec());
    // From differs from MAIL FROM: reinjected with the null sender.
    assert!(
        got[0].mail_line.starts_with("MAIL FROM:<>"),
        "{}",
        got[0].mail_line
    );
    assert!(
        got[0].mail_line.contains("BODY=8BITMIME"),
        "{}",
        got[0].mail_line
    );
    // Null sender accepted incoming; address case kept on reinjection.
    let msg2 = eml(
        "plain.eml",
        "carol@other.example",
        "Bob@Chat.Example.org",
        "x",
        Eol::Crlf,
    );
    assert_eq!(
        c.transaction("", &["Bob@Chat.Example.org"], &msg2).await,
        "250 OK"
    );
    assert_eq!(
        sink.messages()[1].rcpts,
        vec!["Bob@Chat.Example.org".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_enforced_recipient_523() {
    let sink = sink::start("250 Ok").await;
    let d = Daemon::start(
        "incoming",
        sink.port,
        "",
        &[("FILTERMAIL_SKIP_DKIM", "true")],
    );
    let mbox = d.mailboxes().join(TO);
    std::fs::write(mbox.join("enforceE2EEincoming"), b"").unwrap();
    let mut c = d.connect().await;
    c.cmd("EHLO x").await;
    let msg = eml("plain.eml", "carol@other.example", TO, "x", Eol::Crlf);
    assert_eq!(
        c.transaction("carol@other.example", &["BOB@chat.example.org"], &msg)
            .await,
        "523 Encryption Needed: Invalid Unencrypted Mail"
    );
    assert!(d.wait_log("Incoming: Filtering unencrypted mail.").await);
    assert!(d.wait_log("Rejected unencrypted mail").await);
    let md = eml("mailer-daemon.eml", "x", TO, "x", Eol::Crlf);
    assert_eq!(c.transaction("", &[TO], &md).await, "250 OK");
    assert!(
        d.wait_log("Incoming: Filtering mailer-daemon message from MAILER-DAEMON@example.org")
            .await
    );
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_450() {
    let sink = sink::start("250 Ok").await;
    let d = Daemon::start(
        "outgoing",
        sink.port,
        "max_user_send_per_minute = 60\nmax_user_send_burst_size = 3\n",
        &[],
    );
    let mut c = d.connect().await;
    c.cmd("EHLO x").await;
    for _ in 0..3 {
        assert_eq!(c.cmd(&format!("MAIL FROM:<{FROM}>")).await, "250 OK");
        assert_eq!(c.cmd("RSET").await, "250 OK");
    }
    let r = c.cmd(&format!("MAIL FROM:<{FROM}>")).await;
    assert!(
        r.starts_with(&format!("450 4.7.1: Too much mail from <{FROM}>, ")),
        "{r}"
    );
    // Another sender is not affected.
    assert_eq!(c.cmd("MAIL FROM:<other@chat.example.org>").await, "250 OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_552_after_end_marker_and_no_command_injection() {
    let sink = sink::start("250 Ok").await;
    let d = Daemon::start(
        "incoming",
        sink.port,
        "max_message_size = 1000\n",
        &[("FILTERMAIL_SKIP_DKIM", "1")],
    );
    let mut c = d.connect().await;
    c.cmd("EHLO x").await;
    assert_eq!(c.cmd(&format!("MAIL FROM:<{REMOTE}>")).await, "250 OK");
    assert_eq!(c.cmd(&format!("RCPT TO:<{TO}>")).await, "250 OK");
    assert!(c.cmd("DATA").await.starts_with("354"));
    let mut body = b"From: a@b.example\r\n\r\n".to_vec();
    for _ in 0..200 {
        body.extend_from_slice(b"0123456789012345678901234567890123456789\r\n");
    }
    // Commands hidden in the oversized body must not be executed.
    body.extend_from_slice(b"QUIT\r\nRSET\r\n");
    c.send(&body).await;
    c.send(b".\r\n").await;
    assert_eq!(c.reply().await, "552 Message exceeds maximum size");
    assert_eq!(c.cmd("NOOP").await, "250 OK");
    assert!(sink.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_commands_in_one_write() {
    let sink = sink::start("250 Ok").await;
    let d = Daemon::start("outgoing", sink.port, "", &[]);
    let mut c = d.connect().await;
    let msg = eml("encrypted.eml", FROM, TO, "x", Eol::Crlf);
    let mut all =
        format!("EHLO x\r\nMAIL FROM:<{FROM}>\r\nRCPT TO:<{TO}>\r\nDATA\r\n").into_bytes();
    all.extend_from_slice(&common::stuff(&msg));
    all.extend_from_slice(b".\r\nNOOP\r\nQUIT\r\n");
    c.send(&all).await;
    assert!(c.reply().await.ends_with("250 OK"));
    assert_eq!(c.reply().await, "250 OK");
    assert_eq!(c.reply().await, "250 OK");
    assert!(c.reply().await.starts_with("354"));
    assert_eq!(c.reply().await, "250 OK");
    assert_eq!(c.reply().await, "250 OK");
    assert_eq!(c.reply().await, "221 OK");
    assert_eq!(sink.messages()[0].data, msg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors() {
    let sink = sink::start("250 Ok").await;
    let d = Daemon::start("incoming", sink.port, "", &[("FILTERMAIL_SKIP_DKIM", "1")]);
    let mut c = d.connect().await;
    assert_eq!(c.cmd("HELO x").await, "250 filtermail");
    assert!(c.cmd("DATA").await.starts_with("503"));
    assert_eq!(c.cmd("MAIL FROM:<>").await, "250 OK");
    assert!(c.cmd("DATA").await.starts_with("503"));
    assert!(c.cmd("RCPT TO:<unterminated").await.starts_with("501"));
    assert!(c.cmd("RCPT TO:<>").await.starts_with("501"));
    assert_eq!(
        c.cmd(&format!(
            "RCPT TO:<{TO}> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;{TO}"
        ))
        .await,
        "250 OK"
    );
    assert_eq!(
        c.cmd("MAIL FROM garbage").await,
        "500 Invalid address in MAIL FROM"
    );
    assert_eq!(c.cmd("BDAT 10 LAST").await, "500 Command not recognized");
    c.send(b"NOOP \xff\xfe\r\n").await;
    assert_eq!(c.reply().await, "250 OK");
    // A line without CR ends the session.
    c.send(b"NOOP\n").await;
    assert!(c.reply().await.starts_with("500"));
    assert!(c.closed().await);
    // An overlong line too.
    let mut c = d.connect().await;
    c.send(&vec![b'A'; 100_000]).await;
    assert!(c.reply().await.starts_with("500"));
    assert!(c.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reinjection_failures_keep_their_class() {
    // Nobody listens on the reinjection port: 451, the sender retries.
    let d = Daemon::start("outgoing", free_port(), "", &[]);
    let mut c = d.connect().await;
    c.cmd("EHLO x").await;
    let msg = eml("encrypted.eml", FROM, TO, "x", Eol::Crlf);
    let r = c.transaction(FROM, &[TO], &msg).await;
    assert!(r.starts_with("451 "), "{r}");
    drop(c);
    drop(d);
    // A temporary rejection stays temporary, a permanent one permanent.
    for (remote, class) in [
        ("452 4.3.1 Insufficient system storage", "452"),
        ("554 5.7.1 no", "554"),
    ] {
        let sink = sink::start(remote).await;
        let d = Daemon::start("outgoing", sink.port, "", &[]);
        let mut c = d.connect().await;
        c.cmd("EHLO x").await;
        let r = c.transaction(FROM, &[TO], &msg).await;
        assert!(r.starts_with(class), "{r}");
        assert!(r.contains(&remote[4..]), "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_sessions_at_once() {
    let sink = sink::start("250 Ok").await;
    let d = Daemon::start(
        "outgoing",
        sink.port,
        "max_user_send_per_minute = 10000\nmax_user_send_burst_size = 1000\n",
        &[],
    );
    let mut clients = Vec::new();
    for _ in 0..100 {
        clients.push(d.connect().await);
    }
    let mut tasks = Vec::new();
    for (i, mut c) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let from = format!("user{i}@chat.example.org");
            c.cmd("EHLO x").await;
            let msg = eml("encrypted.eml", &from, TO, &format!("n{i}"), Eol::Crlf);
            c.transaction(&from, &[TO], &msg).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), "250 OK");
    }
    assert_eq!(sink.messages().len(), 100);
}

#[test]
fn usage_errors_exit_1() {
    for args in [
        &[][..],
        &["x.ini"][..],
        &["x.ini", "sideways"][..],
        &["a", "b", "c"][..],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_filtermail"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_filtermail"))
        .args(["/nonexistent/chatmail.ini", "outgoing"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reinjection_recovers_from_closed_kept_connections() {
    let sink = sink::start_with("250 Ok", true).await;
    let d = Daemon::start("outgoing", sink.port, "", &[]);
    let mut c = d.connect().await;
    c.cmd("EHLO x").await;
    let msg = eml("encrypted.eml", FROM, TO, "x", Eol::Crlf);
    for _ in 0..3 {
        assert_eq!(c.transaction(FROM, &[TO], &msg).await, "250 OK");
    }
    assert_eq!(sink.messages().len(), 3);
    assert_eq!(
        sink.connections.load(std::sync::atomic::Ordering::SeqCst),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reinjection_reuses_connections() {
    let sink = sink::start("250 Ok").await;
    let d = Daemon::start("outgoing", sink.port, "", &[]);
    let msg = eml("encrypted.eml", FROM, TO, "x", Eol::Crlf);
    for _ in 0..3 {
        let mut c = d.connect().await;
        c.cmd("EHLO x").await;
        assert_eq!(c.transaction(FROM, &[TO], &msg).await, "250 OK");
    }
    let got = sink.messages();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|m| m.data == msg));
    assert_eq!(
        sink.connections.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

/// Incoming recipients in a spelling Postfix may route differently are refused at RCPT;
/// plain variants reach DATA and are judged by their mailbox's marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_recipient_spellings() {
    let sink = sink::start("250 Ok").await;
    let d = Daemon::start("incoming", sink.port, "", &[("FILTERMAIL_SKIP_DKIM", "1")]);
    let mbox = d.mailboxes().join(TO);
    std::fs::write(mbox.join("enforceE2EEincoming"), b"").unwrap();
    let mut c = d.connect().await;
    c.cmd("EHLO x").await;
    assert_eq!(c.cmd("MAIL FROM:<a@[127.0.0.2]>").await, "250 OK");
    for rcpt in [
        "\"bob\"@chat.example.org",
        "@relay.example:bob@chat.example.org",
        "@a,@b:bob@chat.example.org",
        "bob%chat.example.org@chat.example.org",
        "chat.example.org!bob@chat.example.org",
    ] {
        assert_eq!(
            c.cmd(&format!("RCPT TO:<{rcpt}>")).await,
            "553 5.1.3 Recipient address not in plain form",
            "{rcpt}"
        );
    }
    c.cmd("RSET").await;
    let plain = eml("plain.eml", "a@[127.0.0.2]", TO, "hi", Eol::Crlf);
    for rcpt in [
        "bob+x@chat.example.org",
        "Bob+@chat.example.org",
        "BOB@CHAT.EXAMPLE.ORG.",
    ] {
        assert_eq!(
            c.transaction("a@[127.0.0.2]", &[rcpt], &plain).await,
            "523 Encryption Needed: Invalid Unencrypted Mail",
            "{rcpt}"
        );
    }
    let enc = eml("encrypted.eml", "a@[127.0.0.2]", TO, "hi", Eol::Crlf);
    assert_eq!(
        c.transaction("a@[127.0.0.2]", &["bob+x@chat.example.org"], &enc)
            .await,
        "250 OK"
    );
    assert_eq!(sink.messages().len(), 1);
}

/// Ambiguous structure is 523 in both modes (incoming: for a recipient who enforces
/// encryption); a bare LF in DATA is 500 after the end marker and the connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_messages_and_bare_line_ends() {
    let sink = sink::start("250 Ok").await;
    for mode in ["outgoing", "incoming"] {
        let d = Daemon::start(mode, sink.port, "", &[("FILTERMAIL_SKIP_DKIM", "1")]);
        let mbox = d.mailboxes().join(TO);
        std::fs::create_dir_all(&mbox).unwrap();
        std::fs::write(mbox.join("enforceE2EEincoming"), b"").unwrap();
        let mut c = d.connect().await;
        c.cmd("EHLO x").await;
        // Incoming mail comes from elsewhere: our own domain is refused as a sender there.
        let from = if mode == "incoming" { REMOTE } else { FROM };
        let enc = eml("encrypted.eml", from, TO, "hi", Eol::Crlf);
        let text = String::from_utf8(enc.clone()).unwrap();
        let two_ct = text.replacen(
            "Content-Type: multipart/encrypted",
            "Content-Type: text/plain\r\nContent-Type: multipart/encrypted",
            1,
        );
        assert_ne!(two_ct, text);
        assert_eq!(
            c.transaction(from, &[TO], two_ct.as_bytes()).await,
            "523 Encryption Needed: Invalid Unencrypted Mail",
            "{mode}"
        );
        let bare = text.replacen("\r\n", "\n", 1);
        assert_eq!(
            c.transaction(from, &[TO], bare.as_bytes()).await,
            "500 Invalid DATA",
            "{mode}"
        );
        assert_eq!(c.transaction(from, &[TO], &enc).await, "250 OK", "{mode}");
    }
    assert_eq!(sink.messages().len(), 2, "only the two clean messages");
}

/// Past the memory budget a message is deferred with 451 (after its data), never stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_budget_defers_with_451() {
    let sink = sink::start("250 Ok").await;
    // A 1 MiB budget is raised to one whole message of max_message_size (3 MB).
    let d = Daemon::start(
        "outgoing",
        sink.port,
        "filtermail_memory_budget = 1M\nmax_message_size = 3000000\n",
        &[],
    );
    // Two clients each send half of a 2.5 MB message; the second cannot be covered.
    let mut a = d.connect().await;
    let mut b = d.connect().await;
    a.cmd("EHLO a").await;
    b.cmd("EHLO b").await;
    let mut body = eml("encrypted.eml", FROM, TO, "hi", Eol::Crlf);
    let pad = format!("X-Pad: {}\r\n", "p".repeat(2_500_000));
    body.splice(0..0, pad.into_bytes());
    for c in [&mut a, &mut b] {
        assert_eq!(c.cmd(&format!("MAIL FROM:<{FROM}>")).await, "250 OK");
        assert_eq!(c.cmd(&format!("RCPT TO:<{TO}>")).await, "250 OK");
        assert!(c.cmd("DATA").await.starts_with("354"));
    }
    a.send(&body[..2_000_000]).await;
    b.send(&body[..2_000_000]).await;
    a.send(&body[2_000_000..]).await;
    b.send(&body[2_000_000..]).await;
    a.send(b".\r\n").await;
    b.send(b".\r\n").await;
    let replies = [a.reply().await, b.reply().await];
    assert!(
        replies
            .iter()
            .any(|r| r == "451 4.3.1 Error: too much mail in flight, try again later"),
        "{replies:?}"
    );
    // Once the first is done, the budget is free again.
    let small = eml("encrypted.eml", FROM, TO, "hi", Eol::Crlf);
    assert_eq!(a.transaction(FROM, &[TO], &small).await, "250 OK");
}

/// Incoming mode: a recipient without a mailbox (none, or a blocked account) is refused at
/// RCPT with 550 5.1.1, a sender of our own domain at MAIL with 550 5.7.1; nothing of such
/// a transaction is reinjected. Outgoing mode sends to anyone, as our users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_unknown_recipients_and_local_senders_are_refused() {
    let sink = sink::start("250 Ok").await;
    let d = Daemon::start("incoming", sink.port, "", &[("FILTERMAIL_SKIP_DKIM", "1")]);
    let blocked = common::create_account(&d.mailboxes(), "dave@chat.example.org");
    std::fs::write(blocked.join("blocked"), b"").unwrap();
    let mut c = d.connect().await;
    c.cmd("EHLO x").await;
    for sender in [
        FROM,
        "Alice+x@CHAT.example.org.",
        "\"alice\"@chat.example.org",
        "nobody@chat.example.org",
    ] {
        assert_eq!(
            c.cmd(&format!("MAIL FROM:<{sender}>")).await,
            "550 5.7.1 Sender address rejected: users of this domain send only through submission",
            "{sender}"
        );
        assert!(c.cmd(&format!("RCPT TO:<{TO}>")).await.starts_with("503"));
    }
    assert_eq!(c.cmd(&format!("MAIL FROM:<{REMOTE}>")).await, "250 OK");
    for rcpt in [
        "nobody@chat.example.org",
        "dave@chat.example.org",
        "nobody@other.example",
    ] {
        assert_eq!(
            c.cmd(&format!("RCPT TO:<{rcpt}>")).await,
            format!("550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown")
        );
    }
    assert_eq!(c.cmd("DATA").await, "503 Error: need RCPT command");
    assert_eq!(c.cmd(&format!("RCPT TO:<{TO}>")).await, "250 OK");
    assert_eq!(c.cmd("RSET").await, "250 OK");
    let enc = eml("encrypted.eml", REMOTE, TO, "x", Eol::Crlf);
    assert_eq!(c.transaction("", &[TO], &enc).await, "250 OK");
    let got = sink.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpts, vec![TO.to_string()]);

    let out = Daemon::start("outgoing", sink.port, "", &[]);
    let mut c = out.connect().await;
    c.cmd("EHLO x").await;
    assert_eq!(c.cmd(&format!("MAIL FROM:<{FROM}>")).await, "250 OK");
    assert_eq!(c.cmd("RCPT TO:<nobody@chat.example.org>").await, "250 OK");
}
