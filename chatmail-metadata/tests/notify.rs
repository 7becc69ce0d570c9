//! Push notifications end to end: the real binary, a local HTTP server playing the
//! notification service, the persistent queue across restarts.

mod common;

use common::*;
use std::fs;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_on_200_and_gone_token_removed_on_410() {
    let (url, mut rx) = start_server(Arc::new(|t: &str| if t == "gone" { 410 } else { 200 })).await;
    let mut s = Service::new(&url, "");
    s.start();
    s.set_token(USER, "ok1").await;
    s.set_token(USER, "gone").await;
    s.message_new(USER).await;
    let mut got = [next(&mut rx).await, next(&mut rx).await];
    got.sort_by(|a, b| a.token.cmp(&b.token));
    assert_eq!(got[0].token, "gone");
    assert_eq!(got[1].token, "ok1");
    assert_eq!(got[1].path, "/notify");
    wait_until(
        || s.queue_files().is_empty(),
        "empty queue",
        || format!("{:?}", s.queue_files()),
    );
    wait_until(
        || !s.metadata_json(USER).contains("gone"),
        "token removal",
        || s.metadata_json(USER),
    );
    assert_eq!(s.tokens(USER).await, b"Ook1\n");
    // A message to a user without tokens queues nothing.
    s.message_new("nobody@example.org").await;
    assert!(s.queue_files().is_empty());
    // A queue directory removed at run time is recreated.
    fs::remove_dir(s.queue_dir()).unwrap();
    s.message_new(USER).await;
    assert_eq!(next(&mut rx).await.token, "ok1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_server_is_retried_on_schedule_then_given_up() {
    let (url, mut rx) = start_server(Arc::new(|_: &str| 500)).await;
    let mut s = Service::new(&url, "");
    // 8 s → 0.8 ms ... 4096 s → 0.41 s.
    let scale = 10_000.0;
    s.time_scale = Some(scale);
    s.start();
    s.set_token(USER, "tok500").await;
    s.message_new(USER).await;
    let mut times = Vec::new();
    for _ in 0..5 {
        let r = next(&mut rx).await;
        assert_eq!(r.token, "tok500");
        times.push(r.at);
    }
    s.wait_log("notification exceeded deadline: tok500");
    assert!(
        s.log()
            .contains("Notification request failed: HTTP status 500")
    );
    // Sleeps never end early: every gap is at least the scaled back-off delay.
    for (i, delay) in [8u64, 64, 512, 4096].iter().enumerate() {
        let gap = times[i + 1] - times[i];
        let min = Duration::from_secs(*delay).div_f64(scale);
        assert!(gap >= min, "attempt {}: gap {gap:?} < {min:?}", i + 2);
    }
    assert!(s.queue_files().is_empty());
    // At most 5 attempts.
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), rx.recv())
            .await
            .is_err()
    );
    // The token itself stays (only a 410 removes it).
    assert_eq!(s.tokens(USER).await, b"Otok500\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_written_while_server_down_is_delivered_after_restart() {
    let (mut s, port) = started_with_server_down(USER).await;
    s.message_new(USER).await;
    // Durable when the commit is answered.
    assert_eq!(s.queue_files().len(), 2);
    s.wait_log("Notification request failed");
    assert!(
        s.log().contains("Connection refused") || s.log().contains("connect"),
        "{}",
        s.log()
    );
    // The retry waits 8 s; the process dies before that.
    s.kill();
    assert_eq!(s.queue_files().len(), 2);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let mut rx = notification_server(listener, Arc::new(|_: &str| 200));
    s.start();
    let mut got = [next(&mut rx).await.token, next(&mut rx).await.token];
    got.sort();
    assert_eq!(got, ["tokA", "tokB"]);
    wait_until(
        || s.queue_files().is_empty(),
        "empty queue",
        || format!("{:?}", s.queue_files()),
    );
    assert!(
        s.log().contains("re-queued 2 pending notification(s)"),
        "{}",
        s.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_loads_reference_queue_and_removes_junk() {
    let (url, mut rx) = start_server(Arc::new(|_: &str| 200)).await;
    let mut s = Service::new(&url, "");
    let q = s.queue_dir();
    fs::create_dir(&q).unwrap();
    write_reference_item(
        &q,
        "0123456789abcdef0123456789abcdef",
        USER,
        now(),
        "reftoken",
    );
    fs::write(q.join("1203981203.tmp"), format!("{USER}\n1\nx")).unwrap();
    fs::write(q.join("1203981203"), "").unwrap();
    fs::write(q.join("badts"), format!("{USER}\nnot-a-number\nx")).unwrap();
    fs::write(q.join("binary"), b"\xff\xfe\n1\nx").unwrap();
    fs::create_dir(q.join("subdir")).unwrap();
    // Past the 5 h deadline: given up at once.
    write_reference_item(
        &q,
        "fedcba9876543210fedcba9876543210",
        USER,
        now() - 18_001,
        "stale",
    );
    s.start();
    assert_eq!(next(&mut rx).await.token, "reftoken");
    wait_until(
        || s.queue_files() == ["subdir"],
        "only subdir left",
        || format!("{:?}", s.queue_files()),
    );
    let log = s.log();
    assert_eq!(
        log.matches("removing spurious queue item").count(),
        4,
        "{log}"
    );
    assert!(
        log.contains("notification exceeded deadline: stale"),
        "{log}"
    );
    // Still serving.
    assert_eq!(s.tokens(USER).await, b"O\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_does_not_hold_up_other_notifications() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", l.local_addr().unwrap());
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = Gate {
        token: "slow".into(),
        release: release.clone(),
    };
    let mut rx = gated_notification_server(l, Arc::new(|_: &str| 200), Some(gate));
    let mut s = Service::new(&url, "");
    s.start();
    s.set_token(USER, "slow").await;
    s.message_new(USER).await;
    assert_eq!(next(&mut rx).await.token, "slow");
    // The answer to "slow" is pending; a new message's notifications still go out.
    s.set_token("b@example.org", "fast").await;
    s.message_new("b@example.org").await;
    assert_eq!(next(&mut rx).await.token, "fast");
    wait_until(
        || s.queue_files().len() == 1,
        "fast one delivered while the slow one is in flight",
        || format!("{:?}", s.queue_files()),
    );
    release.notify_one();
    wait_until(|| s.queue_files().is_empty(), "empty queue", || s.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_fans_out_to_at_most_twenty_devices() {
    let (url, mut rx) = start_server(Arc::new(|_: &str| 200)).await;
    let mut s = Service::new(&url, "");
    s.start();
    for i in 0..25 {
        s.set_token(USER, &format!("dev{i:02}")).await;
    }
    let want: Vec<String> = (5..25).map(|i| format!("dev{i:02}")).collect();
    assert_eq!(
        s.tokens(USER).await,
        format!("O{}\n", want.join(" ")).into_bytes(),
        "the five set longest ago were replaced"
    );
    s.message_new(USER).await;
    let mut got = Vec::new();
    for _ in 0..20 {
        got.push(next(&mut rx).await.token);
    }
    got.sort();
    assert_eq!(got, want);
    wait_until(
        || s.queue_files().is_empty(),
        "empty queue",
        || format!("{:?}", s.queue_files()),
    );
    // Nothing beyond the twenty: no further request arrives.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err()
    );
}
