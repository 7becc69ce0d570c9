//! systemd integration of the real binary: readiness notification and socket activation.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: failing loudly is the point"
)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_doveauth");

fn write_ini(dir: &std::path::Path) -> std::path::PathBuf {
    let ini = dir.join("chatmail.ini");
    std::fs::create_dir(dir.join("mail")).unwrap();
    std::fs::write(
        &ini,
        format!(
            "[params]\nmail_domain = c.org\nmailboxes_dir = {}\npassdb_path = {}\n",
            dir.join("mail").display(),
            dir.join("passdb.sqlite").display()
        ),
    )
    .unwrap();
    ini
}

#[test]
fn notifies_ready_after_binding() {
    let dir = tempfile::tempdir().unwrap();
    let ini = write_ini(dir.path());
    let notify = dir.path().join("notify");
    let listener = UnixDatagram::bind(&notify).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let socket = dir.path().join("auth.socket");
    let mut child = Command::new(BIN)
        .arg(&socket)
        .arg(&ini)
        .env("NOTIFY_SOCKET", &notify)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = listener.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.contains("READY=1"), "{msg}");
    // Ready means connectable, right now.
    let mut c = UnixStream::connect(&socket).unwrap();
    c.write_all(b"Lshared/userdb/x@c.org\tx\n").unwrap();
    let mut line = String::new();
    BufReader::new(&c).read_line(&mut line).unwrap();
    assert_eq!(line, "N\n");
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let n = listener.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
}

#[test]
fn serves_a_socket_passed_by_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let ini = write_ini(dir.path());
    let socket = dir.path().join("activated.socket");
    // systemd-socket-activate binds the socket and passes it as fd 3 (LISTEN_FDS=1).
    let mut child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&socket)
        .arg(BIN)
        .arg(dir.path().join("unused-path.socket"))
        .arg(&ini)
        .stderr(Stdio::null())
        .spawn()
        .expect("systemd-socket-activate (package systemd)");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let c = loop {
        if let Ok(c) = UnixStream::connect(&socket) {
            break c;
        }
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    };
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    (&c).write_all(b"Lshared/userdb/x@c.org\tx\n").unwrap();
    let mut line = String::new();
    BufReader::new(&c).read_line(&mut line).unwrap();
    assert_eq!(line, "N\n");
    assert!(
        !dir.path().join("unused-path.socket").exists(),
        "the passed socket is used, no new bind"
    );
    let _ = child.kill();
    let _ = child.wait();
}
