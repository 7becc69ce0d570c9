//! Fair and bounded push notifications: one account cannot hold up another's pushes, a
//! burst for one device becomes one push, a notification past its deadline is not sent, and
//! the queue on disk has a bound that never fails a METADATA set. The real binary against a
//! local HTTP server playing the notification service.

mod common;

use common::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const NOISY: &str = "noisy@example.org";
const QUIET: &str = "quiet@example.org";

/// The notification service's answer time: `PUSH_LATENCY_MS`, default 100 ms.
fn latency() -> Duration {
    let ms = std::env::var("PUSH_LATENCY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    Duration::from_millis(ms)
}

/// An account with 20 devices receiving 25 messages (500 notifications as the reference
/// queues them) must not delay another user's push: that one goes out while the noisy
/// account's are still being sent. Run with `PUSH_LATENCY_MS=500` for the figure in
/// RELIABILITY.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noisy_account_does_not_delay_another_users_push() {
    let latency = latency();
    let (url, mut rx) = slow_server(latency).await;
    let mut s = Service::new(&url, "");
    s.start();
    let tokens: Vec<String> = (0..20).map(|i| format!("noisy{i:02}")).collect();
    for t in &tokens {
        s.set_token(NOISY, t).await;
    }
    s.set_token(QUIET, "quiet").await;
    let mut last_message = Instant::now();
    for _ in 0..25 {
        last_message = Instant::now();
        s.message_new(NOISY).await;
    }
    let sent = Instant::now();
    s.message_new(QUIET).await;
    let mut noisy = Vec::new();
    let delay = loop {
        let r = next(&mut rx).await;
        if r.token == "quiet" {
            break r.at - sent;
        }
        noisy.push(r);
    };
    eprintln!("quiet user's push after {delay:?} (service latency {latency:?})");
    assert!(
        delay < Duration::from_secs(1).max(latency * 3),
        "the quiet user's push waited {delay:?} behind {} of the noisy account's",
        noisy.len()
    );
    // The noisy account still reaches every device after its last message, with far fewer
    // requests than one per message and device.
    wait_until(
        || s.queue_files().is_empty(),
        "empty queue",
        || format!("{:?}", s.queue_files()),
    );
    noisy.extend(drain(&mut rx, Duration::from_millis(200)).await);
    let mut latest: HashMap<&str, Instant> = HashMap::new();
    for r in &noisy {
        let at = latest.entry(r.token.as_str()).or_insert(r.at);
        *at = (*at).max(r.at);
    }
    for t in &tokens {
        assert!(
            latest.get(t.as_str()).is_some_and(|at| *at >= last_message),
            "{t} got no push after the last message"
        );
    }
    eprintln!("noisy account: {} requests for 25 messages", noisy.len());
    assert!(
        noisy.len() <= 3 * tokens.len(),
        "{} requests for 25 messages to 20 devices",
        noisy.len()
    );
    assert!(s.notification_events("coalesced").await > 0);
}

/// One account has at most two notifications in flight, so a slow or hanging answer to it
/// leaves the other senders free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_has_at_most_two_pushes_in_flight() {
    let (url, mut rx) = slow_server(Duration::from_secs(3)).await;
    let mut s = Service::new(&url, "");
    s.start();
    for i in 0..10 {
        s.set_token(NOISY, &format!("dev{i}")).await;
    }
    s.message_new(NOISY).await;
    let early = drain(&mut rx, Duration::from_millis(1500)).await;
    assert_eq!(early.len(), 2, "{early:?}");
}

/// Messages to an account while the notification service is down leave one queue file per
/// device, not one per message and device; a restart sends each device one push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_for_one_device_is_one_queued_notification() {
    let (mut s, port) = started_with_server_down(USER).await;
    for _ in 0..25 {
        s.message_new(USER).await;
    }
    wait_until(
        || s.queue_files().len() == 2,
        "one queue file per device",
        || format!("{} files", s.queue_files().len()),
    );
    s.kill();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let mut rx = notification_server(listener, Arc::new(|_: &str| 200));
    s.start();
    let got = drain_tokens(&mut rx, Duration::from_secs(2)).await;
    assert_eq!(got, ["tokA", "tokB"]);
    assert!(s.queue_files().is_empty());
}

/// A queue left with many files for one device (by the reference, which writes one per
/// message) is sent as one push per device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_queue_files_are_coalesced_at_start() {
    let (url, mut rx) = start_server(Arc::new(|_: &str| 200)).await;
    let mut s = Service::new(&url, "");
    let q = s.queue_dir();
    std::fs::create_dir(&q).unwrap();
    for i in 0..10 {
        let name = format!("{:032x}", 0xa000 + i);
        write_reference_item(&q, &name, USER, now() - 100 + i, "dup");
    }
    write_reference_item(&q, &format!("{:032x}", 0xb000), QUIET, now(), "other");
    s.start();
    let got = drain_tokens(&mut rx, Duration::from_secs(2)).await;
    assert_eq!(got, ["dup", "other"]);
    assert!(s.queue_files().is_empty(), "{:?}", s.queue_files());
    assert_eq!(s.notification_events("coalesced").await, 9);
}

/// A notification whose message is older than the 5-hour deadline when a sender gets to it
/// is dropped and counted, not sent late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_past_its_deadline_is_dropped_before_sending() {
    // Four senders are busy for 2.5 s with the first four; by then the rest are past the
    // deadline (within 2 s of the files being written).
    let (url, mut rx) = slow_server(Duration::from_millis(2500)).await;
    let mut s = Service::new(&url, "");
    let q = s.queue_dir();
    std::fs::create_dir(&q).unwrap();
    let start_ts = now() - 18_000 + 1;
    for i in 0..8 {
        let name = format!("{:032x}", 0xc000 + i);
        write_reference_item(&q, &name, &format!("user{i}@example.org"), start_ts, "late");
    }
    s.start();
    wait_until(
        || s.queue_files().is_empty(),
        "empty queue",
        || format!("{:?}", s.queue_files()),
    );
    let sent = drain(&mut rx, Duration::from_millis(500)).await.len();
    let given_up = s.log().matches("notification exceeded deadline").count();
    assert!(sent <= 4, "{sent} sent after their deadline; {}", s.log());
    assert_eq!(sent + given_up, 8, "{}", s.log());
    assert_eq!(
        s.notification_events("given_up").await,
        u64::try_from(given_up).unwrap()
    );
}

/// Past `max_queued_notifications` new notifications are dropped and counted; the
/// METADATA set still succeeds at once, and what is queued is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_on_disk_is_bounded_and_never_fails_a_set() {
    let port = closed_port();
    let url = format!("http://127.0.0.1:{port}/notify");
    let mut s = Service::new(&url, "max_queued_notifications = 5");
    s.start();
    for i in 0..10 {
        s.set_token(&format!("user{i}@example.org"), &format!("tok{i}"))
            .await;
    }
    for i in 0..10 {
        let t = Instant::now();
        s.message_new(&format!("user{i}@example.org")).await;
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }
    assert_eq!(s.queue_files().len(), 5);
    assert_eq!(s.notification_events("dropped").await, 5);
    assert_eq!(s.notification_events("queued").await, 5);
    s.wait_log("notification queue full");
}
