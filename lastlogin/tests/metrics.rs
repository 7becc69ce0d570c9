//! The real `lastlogin` binary publishes its counters on `metrics.socket` beside its socket.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn read_all(path: &std::path::Path) -> String {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn logins_are_counted_on_the_metrics_socket() {
    let dir = tempfile::tempdir().unwrap();
    let vmail = dir.path().join("vmail");
    std::fs::create_dir_all(vmail.join("user@example.org")).unwrap();
    std::fs::write(vmail.join("user@example.org/password"), "x").unwrap();
    let ini = chatmail_tests::support::write_ini(
        dir.path(),
        "example.org",
        &format!("mailboxes_dir = {}\n", vmail.display()),
    );
    let socket = dir.path().join("lastlogin.socket");
    let _child = chatmail_tests::support::KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_lastlogin"))
            .arg(&socket)
            .arg(&ini)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let metrics = dir.path().join("metrics.socket");
    let started = Instant::now();
    while UnixStream::connect(&socket).is_err() || !metrics.exists() {
        assert!(started.elapsed() < Duration::from_secs(20), "did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = read_all(&metrics);
    assert!(before.contains("# TYPE chatmail_lastlogin_updates_total counter\n"));
    assert!(before.contains("chatmail_lastlogin_updates_total{result=\"written\"} 0\n"));

    let mut c = UnixStream::connect(&socket).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(
        b"H3\t2\t0\t\tlastlogin\nB1\tuser@example.org\nS1\tshared/last-login/user@example.org\t1700000000\nC1\n\
          B2\tuser@example.org\nS2\tshared/last-login/user@example.org\tsoon\nC2\n",
    )
    .unwrap();
    let mut reply = [0u8; 4];
    c.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"O\nF\n", "{:?}", String::from_utf8_lossy(&reply));

    let after = read_all(&metrics);
    for line in [
        "chatmail_lastlogin_updates_total{result=\"written\"} 1",
        "chatmail_lastlogin_updates_total{result=\"invalid\"} 1",
        "chatmail_lastlogin_updates_total{result=\"error\"} 0",
    ] {
        assert!(after.lines().any(|l| l == line), "{line} in {after}");
    }
}
