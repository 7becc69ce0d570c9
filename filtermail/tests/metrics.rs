//! The real `filtermail` binary counts every outcome on its metrics socket
//! (`$CHATMAIL_METRICS_SOCKET`), each process for its own direction only.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

mod common;

use std::io::Read;

use common::sink;
use common::{Daemon, Eol, eml};

const FROM: &str = "alice@chat.example.org";
const TO: &str = "bob@chat.example.org";

/// One snapshot of the daemon's metrics socket.
fn scrape(d: &Daemon) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(d.dir.path().join("metrics.socket"))
        .expect("metrics socket");
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

/// The value of the sample line that starts with `series ` (name and labels exactly).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

fn messages(dir: &str, verdict: &str, reason: &str) -> String {
    format!(
        "chatmail_filtermail_messages_total{{direction=\"{dir}\",verdict=\"{verdict}\",reason=\"{reason}\"}}"
    )
}

/// Waits until the metrics socket accepts (its file appears at bind(), before listen()).
async fn wait_for_socket(d: &Daemon) {
    for _ in 0..100 {
        if std::os::unix::net::UnixStream::connect(d.dir.path().join("metrics.socket")).is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no metrics socket: {:?}", d.log_lines());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_outcomes_are_counted_by_reason() {
    let sink = sink::start("250 2.0.0 Ok: queued").await;
    let d = Daemon::start(
        "outgoing",
        sink.port,
        "max_user_send_per_minute = 60\nmax_user_send_burst_size = 3\n",
        &[],
    );
    wait_for_socket(&d).await;
    let before = scrape(&d);
    assert_eq!(
        value(&before, &messages("outgoing", "accepted", "none")),
        0.0
    );
    assert!(!before.contains("direction=\"incoming\""), "{before}");
    assert!(!before.contains("chatmail_filtermail_dkim_results_total"));
    let mut c = d.connect().await;
    c.cmd("EHLO x").await;
    assert_eq!(
        value(
            &scrape(&d),
            "chatmail_filtermail_sessions_in_flight{direction=\"outgoing\"}"
        ),
        1.0
    );
    let enc = eml("encrypted.eml", FROM, TO, "hi", Eol::Crlf);
    let plain = eml("plain.eml", FROM, TO, "hi", Eol::Crlf);
    assert_eq!(c.transaction(FROM, &[TO], &enc).await, "250 OK");
    assert!(c.transaction(FROM, &[TO], &plain).await.starts_with("523 "));
    assert!(c.transaction(FROM, &[TO], &enc).await.starts_with("250 "));
    // The burst of 3 is used up: the next MAIL FROM is refused.
    assert!(
        c.cmd(&format!("MAIL FROM:<{FROM}>"))
            .await
            .starts_with("450 ")
    );
    assert!(c.cmd("MAIL FROM:<noat>").await.starts_with("500 "));
    assert!(c.cmd("NOOP").await.starts_with("250"));
    let after = scrape(&d);
    assert_eq!(
        value(&after, &messages("outgoing", "accepted", "none")),
        2.0
    );
    assert_eq!(
        value(
            &after,
            &messages("outgoing", "rejected", "encryption_needed")
        ),
        1.0
    );
    assert_eq!(
        value(&after, &messages("outgoing", "deferred", "rate_limited")),
        1.0
    );
    assert_eq!(
        value(&after, &messages("outgoing", "rejected", "invalid_from")),
        1.0
    );
    assert_eq!(value(&after, "chatmail_filtermail_rate_limited_total"), 1.0);
    assert_eq!(
        value(
            &after,
            "chatmail_filtermail_message_bytes_total{direction=\"outgoing\"}"
        ),
        (2 * enc.len()) as f64
    );
    assert_eq!(
        value(
            &after,
            "chatmail_filtermail_message_duration_seconds_count{direction=\"outgoing\"}"
        ),
        3.0,
        "every message that reached the policy is timed"
    );
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_counts_dkim_results() {
    let sink = sink::start("250 Ok").await;
    let d = Daemon::start("incoming", sink.port, "", &[]);
    wait_for_socket(&d).await;
    let mut c = d.connect().await;
    c.cmd("EHLO x").await;
    let from = "carol@other.example";
    let unsigned = eml("encrypted.eml", from, TO, "hi", Eol::Crlf);
    assert!(
        c.transaction(from, &[TO], &unsigned)
            .await
            .contains("No DKIM signature")
    );
    let text = scrape(&d);
    assert_eq!(
        value(
            &text,
            &messages("incoming", "rejected", "no_dkim_signature")
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "chatmail_filtermail_dkim_results_total{result=\"none\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "chatmail_filtermail_dkim_results_total{result=\"pass\"}"
        ),
        0.0
    );
    assert!(!text.contains("chatmail_filtermail_rate_limited_total"));
}
