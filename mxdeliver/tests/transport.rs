//! End-to-end tests of the transport on loopback: Postfix's side is an LMTP client, the remote
//! side a DNS server, an HTTPS `/mxdeliv` server and an SMTP server with STARTTLS, with a test CA
//! passed as an extra trust anchor.

mod common;

use common::*;
use mxdeliver::{DeliveryPath as Path, FailureClass};
use tokio::net::TcpListener;

/// DNS for the usual test domains: everything points at 127.0.0.1.
fn zone() -> Zone {
    Zone::default()
        .mx("a.test", &[(10, "mx.a.test")])
        .mx("b.test", &[(10, "mx.b.test")])
        .addr("mx.a.test", "127.0.0.1")
        .addr("mx.b.test", "127.0.0.1")
        .mx("nullmx.test", &[(0, ".")])
        .silent("slow.test")
        .servfail("broken.test")
}

#[tokio::test]
async fn https_success() {
    let ca = Ca::new();
    let dns = dns_server(zone()).await;
    let (https_port, posted) = https_mx(ca.server_config(&["mx.a.test"]), 200).await;
    let smtp_port = free_port();
    let opts = options(dns, &ca, smtp_port, https_port);
    let metrics = opts.metrics.clone();
    let (lmtp, _stop) = start_transport(opts).await;

    let mut c = Lmtp::connect(lmtp).await;
    let replies = c
        .send("a@relay.test", &["b@a.test", "c@a.test"], MESSAGE)
        .await;
    assert_eq!(replies, ["250 OK (HTTPS)", "250 OK (HTTPS)"]);
    let posted = posted.lock().unwrap().clone();
    assert_eq!(posted.len(), 1, "one request per domain");
    assert_eq!(posted[0].path, "/mxdeliv");
    assert_eq!(posted[0].from.as_deref(), Some("a@relay.test"));
    assert_eq!(posted[0].to, ["b@a.test", "c@a.test"]);
    assert_eq!(
        posted[0].body, MESSAGE,
        "DATA form, still dot-stuffed, without the final dot"
    );
    assert_eq!(
        metrics.delivered_count(Path::Https),
        1,
        "one batch per domain"
    );
    assert_eq!(metrics.delivered_count(Path::Smtp), 0);
    assert_eq!(metrics.https_fallbacks.get(), 0);
    let mut enc = chatmaild::metrics::Encoder::new();
    metrics.render(&mut enc);
    let text = enc.finish();
    assert!(text.contains("chatmail_transport_delivered_total{path=\"https\"} 1\n"));
    assert!(text.contains("chatmail_transport_delivery_duration_seconds_count 1\n"));
    assert!(text.contains("chatmail_transport_deliveries_in_flight 0\n"));
}

/// One delivery of `MESSAGE` to `b@a.test` with the peer's `/mxdeliv` giving `answer` and a
/// working SMTP server beside it; returns the LMTP reply, the requests the HTTPS server
/// got and the messages the SMTP server got.
#[expect(
    clippy::unwrap_used,
    reason = "test helper: any failure fails the test"
)]
async fn deliver_against(answer: Answer) -> (Vec<String>, Vec<Posted>, Vec<Received>) {
    let ca = Ca::new();
    let dns = dns_server(zone()).await;
    let (smtp_port, mailbox) = smtp_mx(Some(ca.server_config(&["mx.a.test"]))).await;
    let (https_port, posted) = https_mx_answering(ca.server_config(&["mx.a.test"]), answer).await;
    let (lmtp, _stop) = start_transport(options(dns, &ca, smtp_port, https_port)).await;
    let mut c = Lmtp::connect(lmtp).await;
    let replies = c.send("a@relay.test", &["b@a.test"], MESSAGE).await;
    let posted = posted.lock().unwrap().clone();
    let got = mailbox.lock().unwrap().clone();
    (replies, posted, got)
}

#[tokio::test]
async fn madmail_empty_200_is_a_delivery_and_nothing_goes_over_smtp() {
    // What Madmail's `w.WriteHeader(http.StatusOK)` puts on the wire.
    let (replies, posted, smtp) = deliver_against(Answer {
        status: 200,
        headers: "Date: Tue, 01 Dec 2026 18:00:00 GMT\r\n",
        body: "",
    })
    .await;
    assert_eq!(replies, ["250 OK (HTTPS)"]);
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].body, MESSAGE);
    assert!(smtp.is_empty(), "delivered once, over HTTPS only");
}

#[tokio::test]
async fn filtermail_250_with_any_type_is_a_delivery() {
    let (replies, posted, smtp) = deliver_against(Answer {
        status: 200,
        headers: "Content-Type: text/plain\r\n",
        body: "250 OK",
    })
    .await;
    assert_eq!(replies, ["250 OK (HTTPS)"]);
    assert_eq!(posted.len(), 1);
    assert!(smtp.is_empty());
}

#[tokio::test]
async fn a_web_server_answering_200_to_every_post_is_not_a_delivery() {
    for answer in [
        Answer {
            status: 200,
            headers: "Content-Type: text/html; charset=utf-8\r\n",
            body: "<!DOCTYPE html><html><body>Welcome</body></html>",
        },
        Answer {
            status: 200,
            headers: "Content-Type: text/plain\r\n",
            body: "",
        },
        Answer {
            status: 200,
            headers: "",
            body: "OK",
        },
        Answer {
            status: 204,
            headers: "",
            body: "",
        },
        Answer {
            status: 200,
            headers: "",
            body: "523 Encryption Needed",
        },
    ] {
        let what = format!("{answer:?}");
        let (replies, posted, smtp) = deliver_against(answer).await;
        assert_eq!(replies, ["250 OK (SMTP)"], "{what}");
        assert_eq!(posted.len(), 1, "{what}");
        assert_eq!(smtp.len(), 1, "delivered exactly once, over SMTP: {what}");
        assert_eq!(smtp[0].rcpts, ["b@a.test"], "{what}");
        assert_eq!(smtp[0].wire, MESSAGE, "{what}");
    }
}

#[tokio::test]
async fn https_down_falls_back_to_smtp_with_starttls() {
    let ca = Ca::new();
    let dns = dns_server(zone()).await;
    let (smtp_port, mailbox) = smtp_mx(Some(ca.server_config(&["mx.a.test"]))).await;
    let https_port = free_port(); // nothing listens there
    let opts = options(dns, &ca, smtp_port, https_port);
    let metrics = opts.metrics.clone();
    let (lmtp, _stop) = start_transport(opts).await;

    let mut c = Lmtp::connect(lmtp).await;
    let replies = c.send("", &["b@a.test"], MESSAGE).await;
    assert_eq!(replies, ["250 OK (SMTP)"]);
    // A second transaction on the same LMTP connection reuses the idle SMTP connection.
    let replies = c.send("a@relay.test", &["c@a.test"], MESSAGE).await;
    assert_eq!(replies, ["250 OK (SMTP)"]);
    let got = mailbox.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    assert!(got[0].tls, "delivered after STARTTLS");
    assert_eq!(got[0].helo, ["EHLO relay.test", "EHLO relay.test"]);
    assert_eq!(got[0].from, "");
    assert_eq!(got[0].rcpts, ["b@a.test"]);
    assert_eq!(got[0].wire, MESSAGE, "dot-stuffing kept on the wire");
    assert_eq!(got[1].from, "a@relay.test");
    assert_eq!(got[1].mail_params, format!("SIZE={}", MESSAGE.len() + 3));
    assert_eq!(got[1].helo.len(), 2, "second message on the reused session");
    assert_eq!(metrics.delivered_count(Path::Smtp), 2);
    assert_eq!(metrics.delivered_count(Path::Https), 0);
    assert_eq!(
        metrics.https_fallbacks.get(),
        1,
        "the host is remembered as SMTP-only after the first fallback"
    );
}

#[tokio::test]
async fn smtp_without_starttls_is_temporary_failure() {
    let ca = Ca::new();
    let dns = dns_server(zone()).await;
    let (smtp_port, mailbox) = smtp_mx(None).await;
    let https_port = free_port();
    let (lmtp, _stop) = start_transport(options(dns, &ca, smtp_port, https_port)).await;

    let replies = Lmtp::deliver(lmtp, &["b@a.test"]).await;
    assert_eq!(replies.len(), 1);
    assert!(
        replies[0]
            .starts_with("421 Failed to connect to any mail server; last attempt to mx.a.test:"),
        "{replies:?}"
    );
    assert!(replies[0].contains("STARTTLS"), "{replies:?}");
    assert!(
        mailbox.lock().unwrap().is_empty(),
        "nothing sent in cleartext"
    );
}

#[tokio::test]
async fn certificate_mismatch_is_temporary_failure() {
    let ca = Ca::new();
    let dns = dns_server(zone()).await;
    // Both servers present a certificate of the test CA, but for another name.
    let wrong = ca.server_config(&["other.test"]);
    let (https_port, posted) = https_mx(wrong.clone(), 200).await;
    let (smtp_port, mailbox) = smtp_mx(Some(wrong)).await;
    let (lmtp, _stop) = start_transport(options(dns, &ca, smtp_port, https_port)).await;

    let replies = Lmtp::deliver(lmtp, &["b@a.test"]).await;
    assert_eq!(replies.len(), 1);
    assert!(replies[0].starts_with("421 "), "{replies:?}");
    assert!(replies[0].contains("TLS"), "{replies:?}");
    assert!(posted.lock().unwrap().is_empty());
    assert!(mailbox.lock().unwrap().is_empty());
}

#[tokio::test]
async fn remote_rejection_on_one_domain_while_another_succeeds() {
    let ca = Ca::new();
    let dns = dns_server(zone()).await;
    let (smtp_port, mailbox) = smtp_mx(Some(ca.server_config(&["mx.a.test", "mx.b.test"]))).await;
    let https_port = free_port();
    let opts = options(dns, &ca, smtp_port, https_port);
    let metrics = opts.metrics.clone();
    let (lmtp, _stop) = start_transport(opts).await;

    let rcpts = [
        "x@a.test",
        "reject@b.test",
        "y@a.test",
        "bad-address",
        "nope@nonexistent.test",
        "n@nullmx.test",
    ];
    let mut c = Lmtp::connect(lmtp).await;
    assert!(c.cmd("LHLO relay.test").await.starts_with("250"));
    assert_eq!(c.cmd("MAIL FROM:<a@relay.test>").await, "250 OK");
    let mut accepted = 0;
    for r in rcpts {
        let reply = c.cmd(&format!("RCPT TO:<{r}>")).await;
        if r == "bad-address" {
            assert_eq!(reply, "553 Invalid email address: bad-address");
        } else {
            assert_eq!(reply, "250 OK");
            accepted += 1;
        }
    }
    assert!(c.cmd("DATA").await.starts_with("354"));
    tokio::io::AsyncWriteExt::write_all(c_stream(&mut c), b"Subject: x\r\n\r\nhi\r\n.\r\n")
        .await
        .unwrap();
    let mut replies = Vec::new();
    for _ in 0..accepted {
        replies.push(c.reply().await);
    }
    assert_eq!(
        replies,
        [
            "250 OK (SMTP)",
            "550 5.1.1 No such user (forwarded from mx.b.test)",
            "250 OK (SMTP)",
            "550 5.1.2 Domain nonexistent.test does not exist",
            "556 5.1.10 Permanent failure: Recipient address has null MX",
        ]
    );
    let got = mailbox.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpts, ["x@a.test", "y@a.test"]);
    assert_eq!(
        metrics.delivered_count(Path::Smtp),
        1,
        "a.test as one batch"
    );
    for (class, n) in [
        (FailureClass::RejectedPermanent, 1),
        (FailureClass::NoSuchDomain, 1),
        (FailureClass::NullMx, 1),
        (FailureClass::RejectedTemporary, 0),
        (FailureClass::Unreachable, 0),
    ] {
        assert_eq!(metrics.failure_count(class), n, "{class:?}");
    }
}

fn c_stream(c: &mut Lmtp) -> &mut tokio::net::TcpStream {
    c.stream()
}

#[tokio::test]
async fn dns_timeout_is_temporary() {
    let ca = Ca::new();
    let dns = dns_server(zone()).await;
    let (lmtp, _stop) = start_transport(options(dns, &ca, free_port(), free_port())).await;
    let replies = Lmtp::deliver(lmtp, &["x@slow.test"]).await;
    assert_eq!(replies, ["421 DNS resolution failed for slow.test"]);
    let replies = Lmtp::deliver(lmtp, &["x@broken.test"]).await;
    assert_eq!(replies, ["421 DNS resolution failed for broken.test"]);
}

#[tokio::test]
async fn busy_destination_gets_421() {
    let ca = Ca::new();
    let dns = dns_server(zone()).await;
    let (https_port, _posted) = https_mx(ca.server_config(&["mx.a.test", "mx.b.test"]), 200).await;
    let mut opts = options(dns, &ca, free_port(), https_port);
    opts.per_destination = 1;
    let (lmtp, _stop) = start_transport(opts).await;

    // The first connection holds a.test's only slot.
    let mut holder = Lmtp::connect(lmtp).await;
    assert!(holder.cmd("LHLO x").await.starts_with("250"));
    assert_eq!(holder.cmd("MAIL FROM:<a@relay.test>").await, "250 OK");
    assert_eq!(holder.cmd("RCPT TO:<x@a.test>").await, "250 OK");

    let mut c = Lmtp::connect(lmtp).await;
    assert!(c.cmd("LHLO x").await.starts_with("250"));
    assert_eq!(c.cmd("MAIL FROM:<a@relay.test>").await, "250 OK");
    assert_eq!(
        c.cmd("RCPT TO:<y@a.test>").await,
        "250 OK",
        "accepted but busy"
    );
    assert_eq!(c.cmd("DATA").await, "421 Transport busy");
    // With one deliverable destination, busy recipients get their own 421 after the data.
    let replies = c
        .send("a@relay.test", &["y@a.test", "z@b.test"], MESSAGE)
        .await;
    assert_eq!(replies, ["421 Transport busy", "250 OK (HTTPS)"]);
    // Once the holder's transaction ends, a.test has room again.
    assert_eq!(holder.cmd("RSET").await, "250 OK");
    let replies = c.send("a@relay.test", &["y@a.test"], MESSAGE).await;
    assert_eq!(replies, ["250 OK (HTTPS)"]);
}

#[tokio::test]
async fn lmtp_dialogue_errors() {
    let ca = Ca::new();
    let dns = dns_server(zone()).await;
    let (lmtp, stop) = start_transport(options(dns, &ca, free_port(), free_port())).await;
    let mut c = Lmtp::connect(lmtp).await;
    assert_eq!(c.cmd("DATA").await, "503 Error: need MAIL command");
    assert_eq!(
        c.cmd("RCPT TO:<x@a.test>").await,
        "503 Error: need MAIL command"
    );
    assert_eq!(
        c.cmd("MAIL FROM:broken").await,
        "500 Invalid address in MAIL FROM"
    );
    assert_eq!(c.cmd("MAIL FROM:<> BODY=8BITMIME").await, "250 OK");
    assert_eq!(
        c.cmd("RCPT TO:<x@a.test").await,
        "501 Invalid address in RCPT TO"
    );
    assert_eq!(c.cmd("DATA").await, "503 Error: need RCPT command");
    assert_eq!(
        c.cmd("MAIL FROM:<a@relay.test>").await,
        "503 Error: nested MAIL command"
    );
    assert_eq!(c.cmd("HELP").await, "500 Command not recognized");
    assert_eq!(c.cmd("NOOP").await, "250 OK");
    assert_eq!(c.cmd("QUIT").await, "221 OK");
    stop.cancel();
}

#[tokio::test]
async fn literal_and_underscore_domains_accept_untrusted_certificates() {
    let ca = Ca::new();
    let untrusted = Ca::new();
    let zone = zone()
        .addr("_dev.test", "127.0.0.1")
        .mx("_shared.test", &[(10, "mx.a.test")]);
    let dns = dns_server(zone).await;
    let (smtp_port, mailbox) =
        smtp_mx(Some(untrusted.server_config(&["mx.a.test", "_dev.test"]))).await;
    let (lmtp, _stop) = start_transport(options(dns, &ca, smtp_port, free_port())).await;

    let replies = Lmtp::connect(lmtp)
        .await
        .send(
            "a@relay.test",
            &["x@[127.0.0.1]", "y@_dev.test", "z@a.test"],
            MESSAGE,
        )
        .await;
    assert_eq!(replies[0], "250 OK (SMTP)");
    assert_eq!(replies[1], "250 OK (SMTP)", "implicit MX of a _-domain");
    assert!(
        replies[2].starts_with("421 Failed to connect"),
        "a normal domain still verifies: {replies:?}"
    );
    let mut got: Vec<_> = mailbox
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.rcpts.clone())
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            vec!["x@[127.0.0.1]".to_string()],
            vec!["y@_dev.test".to_string()]
        ]
    );

    // An unverified session to mx.a.test, left idle for reuse, must not carry a.test's mail.
    let mut c = Lmtp::connect(lmtp).await;
    let replies = c.send("a@relay.test", &["s@_shared.test"], MESSAGE).await;
    assert_eq!(replies, ["250 OK (SMTP)"]);
    let replies = c.send("a@relay.test", &["z@a.test"], MESSAGE).await;
    assert!(
        replies[0].starts_with("421 Failed to connect"),
        "{replies:?}"
    );
    assert_eq!(mailbox.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn https_rejection_falls_back_to_smtp_and_host_is_remembered() {
    let ca = Ca::new();
    let dns = dns_server(zone()).await;
    let (smtp_port, mailbox) = smtp_mx(Some(ca.server_config(&["mx.a.test"]))).await;
    let (https_port, posted) = https_mx(ca.server_config(&["mx.a.test"]), 400).await;
    let (lmtp, _stop) = start_transport(options(dns, &ca, smtp_port, https_port)).await;

    let mut c = Lmtp::connect(lmtp).await;
    assert_eq!(
        c.send("a@relay.test", &["b@a.test"], MESSAGE).await,
        ["250 OK (SMTP)"]
    );
    assert_eq!(
        c.send("a@relay.test", &["b@a.test"], MESSAGE).await,
        ["250 OK (SMTP)"]
    );
    assert_eq!(
        posted.lock().unwrap().len(),
        1,
        "SMTP-only host is not asked over HTTPS again"
    );
    assert_eq!(mailbox.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn next_mx_and_parallel_ipv4_ipv6_connects() {
    let ca = Ca::new();
    // mx1 does not answer at all; mx2 has an IPv4 address where nothing listens and an IPv6
    // address where the server is.
    let zone = zone()
        .mx(
            "multi.test",
            &[(10, "mx1.multi.test"), (20, "mx2.multi.test")],
        )
        .addr("mx1.multi.test", "127.0.0.3")
        .addr("mx2.multi.test", "127.0.0.2")
        .addr("mx2.multi.test", "::1");
    let dns = dns_server(zone).await;
    let smtp = TcpListener::bind("[::1]:0").await.unwrap();
    let smtp_port = smtp.local_addr().unwrap().port();
    let mailbox = smtp_server(smtp, Some(ca.server_config(&["mx2.multi.test"]))).await;
    let (lmtp, _stop) = start_transport(options(dns, &ca, smtp_port, free_port())).await;

    let replies = Lmtp::deliver(lmtp, &["x@multi.test"]).await;
    assert_eq!(replies, ["250 OK (SMTP)"]);
    assert_eq!(mailbox.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn all_hosts_down_is_421_with_last_host() {
    let ca = Ca::new();
    let dns = dns_server(zone()).await;
    let (lmtp, _stop) = start_transport(options(dns, &ca, free_port(), free_port())).await;
    let replies = Lmtp::deliver(lmtp, &["x@b.test"]).await;
    assert_eq!(replies.len(), 1);
    assert!(
        replies[0].starts_with(
            "421 Failed to connect to any mail server; last attempt to mx.b.test: connect:"
        ),
        "{replies:?}"
    );
}

#[tokio::test]
async fn oversized_and_malformed_data_are_refused_per_recipient() {
    let ca = Ca::new();
    let dns = dns_server(zone()).await;
    let opts = options(dns, &ca, free_port(), free_port());
    let (lmtp, _stop) = start_transport_with("max_message_size = 1000\n", opts).await;
    let mut c = Lmtp::connect(lmtp).await;
    let big = format!("Subject: x\r\n\r\n{}\r\n", "y".repeat(2000));
    let replies = c
        .send("a@relay.test", &["x@a.test", "y@b.test"], big.as_bytes())
        .await;
    assert_eq!(
        replies,
        [
            "552 Message exceeds maximum size",
            "552 Message exceeds maximum size"
        ]
    );
    // The rest of the big message was not read as commands: the session goes on.
    assert_eq!(c.cmd("NOOP").await, "250 OK");
    let replies = c.send("a@relay.test", &["x@a.test"], b"bare\nLF\r\n").await;
    assert_eq!(replies, ["500 Invalid DATA"]);
    assert_eq!(c.cmd("QUIT").await, "221 OK");
}

#[tokio::test]
async fn hostile_lmtp_input_gets_replies_or_a_clean_close() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = Ca::new();
    let dns = dns_server(zone()).await;
    let opts = options(dns, &ca, free_port(), free_port());
    let (lmtp, _stop) = start_transport(opts).await;

    let mut c = Lmtp::connect(lmtp).await;
    assert_eq!(c.cmd("MAIL FROM:<\u{fffd}>").await, "250 OK");
    assert_eq!(c.cmd("RSET").await, "250 OK");
    c.stream().write_all(b"MAIL FROM:<\xff>\r\n").await.unwrap();
    assert_eq!(c.reply().await, "500 Invalid address in MAIL FROM");
    assert_eq!(c.cmd("MAIL FROM:<a@relay.test>").await, "250 OK");
    let long = format!("RCPT TO:<{}@a.test>", "x".repeat(600));
    let reply = c.cmd(&long).await;
    assert!(
        reply.starts_with("553 Invalid email address: xxxx"),
        "{reply}"
    );
    assert!(
        reply.len() <= 512,
        "reply lines stay within RFC 5321 limits"
    );
    // A command line without end: refused and closed, never buffered without bound.
    c.stream().write_all(&vec![b'A'; 10_000]).await.unwrap();
    assert_eq!(c.reply().await, "500 5.5.2 Error: line too long");
    // Closed with our unread bytes pending, so the kernel may answer with a reset.
    let mut rest = Vec::new();
    match c.stream().read_to_end(&mut rest).await {
        Ok(_) => assert!(rest.is_empty()),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }

    // A bare LF ends the session (SPEC 6.2), after a 500 that says why.
    let mut c = Lmtp::connect(lmtp).await;
    c.stream().write_all(b"NOOP\n").await.unwrap();
    assert_eq!(
        c.reply().await,
        "500 5.5.2 Error: command line must end with CRLF"
    );
    let mut rest = Vec::new();
    c.stream().read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());

    // The server still serves new connections.
    let mut c = Lmtp::connect(lmtp).await;
    assert_eq!(c.cmd("NOOP").await, "250 OK");
}

#[tokio::test]
async fn shutdown_closes_idle_sessions_and_returns() {
    let ca = Ca::new();
    let dns = dns_server(zone()).await;
    let opts = options(dns, &ca, free_port(), free_port());
    let config = chatmaild::Config::parse("[params]\nmail_domain = relay.test\n").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(mxdeliver::run(
        std::sync::Arc::new(config),
        listener,
        stop.clone(),
        opts,
    ));
    let mut c = Lmtp::connect(addr).await;
    assert_eq!(c.cmd("NOOP").await, "250 OK");
    stop.cancel();
    assert_eq!(c.reply().await, "421 4.3.2 Service shutting down");
    server.await.unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}
