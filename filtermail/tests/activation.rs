//! filtermail outgoing behind `filtermail.socket`: it serves the TCP socket systemd passes
//! (`LISTEN_FDS`) instead of binding its configured port, so Postfix's submissions wait in
//! the socket's backlog while the filter restarts.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chatmail_tests::support::free_port;

#[test]
fn outgoing_serves_the_socket_passed_by_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let (passed, configured) = (free_port(), free_port());
    let mailboxes = dir.path().join("mailboxes");
    std::fs::create_dir(&mailboxes).unwrap();
    let ini = dir.path().join("chatmail.ini");
    std::fs::write(
        &ini,
        format!(
            "[params]\nmail_domain = chat.example.org\nfiltermail_smtp_port = {configured}\nmailboxes_dir = {}\n",
            mailboxes.display()
        ),
    )
    .unwrap();
    // systemd-socket-activate listens on the port and starts filtermail on the first
    // connection with the socket as fd 3 (LISTEN_FDS=1), as filtermail.socket does.
    let mut child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(format!("127.0.0.1:{passed}"))
        .arg(env!("CARGO_BIN_EXE_filtermail"))
        .arg(&ini)
        .arg("outgoing")
        .env("CHATMAIL_METRICS_SOCKET", dir.path().join("metrics.socket"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("systemd-socket-activate (package systemd)");
    let deadline = Instant::now() + Duration::from_secs(20);
    let conn = loop {
        if let Ok(c) = TcpStream::connect(("127.0.0.1", passed)) {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on the passed port"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut greeting = String::new();
    BufReader::new(&conn).read_line(&mut greeting).unwrap();
    let configured_open = TcpStream::connect(("127.0.0.1", configured)).is_ok();
    let _ = child.kill();
    let _ = child.wait();
    assert!(greeting.starts_with("220"), "{greeting:?}");
    assert!(!configured_open, "the passed socket is used, no new bind");
}
