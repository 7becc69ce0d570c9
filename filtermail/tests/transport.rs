//! `filtermail INI transport` as a black box: it starts like the other modes, speaks LMTP on
//! `filtermail_lmtp_port_transport` and stops on SIGTERM. Delivery itself is tested with the
//! transport's own crate.

mod common;

use common::Daemon;

#[tokio::test]
async fn transport_mode_answers_lhlo_and_stops_on_sigterm() {
    let mut d = Daemon::start("transport", common::free_port(), "", &[]);
    assert!(
        d.startup.last().is_some_and(|l| l.contains("loop")),
        "{:?}",
        d.startup
    );
    let mut c = common::connect_port(d.port).await;
    let r = c.cmd("LHLO client.example").await;
    assert!(r.starts_with("250"), "{r}");
    // A transaction for nobody is refused, never silently accepted.
    let r = c.cmd("DATA").await;
    assert!(r.starts_with('5') || r.starts_with('4'), "{r}");
    let r = c.cmd("QUIT").await;
    assert!(r.starts_with("221"), "{r}");
    let port = d.port;
    let (status, _d) = tokio::task::spawn_blocking(move || (d.terminate(), d))
        .await
        .unwrap();
    assert!(status.expect("still running after SIGTERM").success());
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    );
}

#[test]
fn transport_mode_config_error_exits_1() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_filtermail"))
        .args(["/nonexistent/chatmail.ini", "transport"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
