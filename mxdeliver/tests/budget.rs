//! The transport's memory budget (`filtermail_memory_budget`, as in the filters): a message
//! is held from its DATA until its last delivery ends, also after Postfix hung up, and past
//! the budget the next message gets `451` so Postfix retries later.

mod common;

use std::time::Duration;

use common::*;

const OVER_BUDGET: &str = "451 4.3.1 Error: too much mail in flight, try again later";
/// A budget of 1 MiB is raised to one message of `max_message_size` (3 MB).
const INI: &str = "filtermail_memory_budget = 1M\nmax_message_size = 3000000\n";

/// A 2.5 MB message.
fn big() -> Vec<u8> {
    let mut m = b"From: a@relay.test\r\nTo: b@a.test\r\nSubject: big\r\n\r\n".to_vec();
    for _ in 0..2500 {
        m.extend_from_slice(&[b'x'; 998]);
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// A connection that has sent `big()` to `rcpt` and not read the reply yet.
#[expect(
    clippy::unwrap_used,
    reason = "test helper: any failure fails the test"
)]
async fn sending(addr: std::net::SocketAddr, rcpt: &str) -> Lmtp {
    let mut c = Lmtp::connect(addr).await;
    assert!(c.cmd("LHLO relay.test").await.starts_with("250"));
    assert_eq!(c.cmd("MAIL FROM:<a@relay.test>").await, "250 OK");
    assert_eq!(c.cmd(&format!("RCPT TO:<{rcpt}>")).await, "250 OK");
    assert!(c.cmd("DATA").await.starts_with("354"));
    let mut data = big();
    data.extend_from_slice(b".\r\n");
    tokio::io::AsyncWriteExt::write_all(c.stream(), &data)
        .await
        .unwrap();
    // The transport reads it and starts the delivery (DNS to slow.test takes 2 s).
    tokio::time::sleep(Duration::from_millis(500)).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_in_delivery_count_against_the_memory_budget() {
    let ca = Ca::new();
    let zone = Zone::default()
        .mx("a.test", &[(10, "mx.a.test")])
        .addr("mx.a.test", "127.0.0.1")
        .silent("slow.test");
    let dns = dns_server(zone).await;
    let (https_port, posted) = https_mx(ca.server_config(&["mx.a.test"]), 200).await;
    let (lmtp, _stop) = start_transport_with(INI, options(dns, &ca, free_port(), https_port)).await;

    // One message waits for its delivery: the next one does not fit beside it.
    let mut first = sending(lmtp, "x@slow.test").await;
    let mut c = Lmtp::connect(lmtp).await;
    assert_eq!(
        c.send("a@relay.test", &["b@a.test"], &big()).await,
        [OVER_BUDGET]
    );
    assert_eq!(
        first.reply().await,
        "421 DNS resolution failed for slow.test"
    );
    // Its delivery over, the budget is free again.
    assert_eq!(
        c.send("a@relay.test", &["b@a.test"], &big()).await,
        ["250 OK (HTTPS)"]
    );
    assert_eq!(posted.lock().unwrap().len(), 1);

    // Postfix hanging up does not end the delivery, nor what it holds.
    drop(sending(lmtp, "y@slow.test").await);
    let mut c = Lmtp::connect(lmtp).await;
    assert_eq!(
        c.send("a@relay.test", &["b@a.test"], &big()).await,
        [OVER_BUDGET]
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        c.send("a@relay.test", &["b@a.test"], &big()).await,
        ["250 OK (HTTPS)"]
    );

    // A message of the size limit alone is delivered even when stuffing it again for
    // delivery takes it past the budget's floor.
    let mut dotted = b"From: a@relay.test\r\n\r\n".to_vec();
    while dotted.len() + 100 <= 3_000_000 {
        dotted.push(b'.');
        dotted.extend_from_slice(&[b'y'; 97]);
        dotted.extend_from_slice(b"\r\n");
    }
    let wire = chatmail_smtp::stuff(&dotted);
    assert!(wire.len() > 3_000_000);
    assert_eq!(
        c.send("a@relay.test", &["b@a.test"], &wire).await,
        ["250 OK (HTTPS)"]
    );
}
