//! Processes as the tests run and watch them: a command started with its input given,
//! memory from `/proc/<pid>/status`, and this process's own open-file limit.

use std::io::Write;
use std::process::{Child, Command, Stdio};

/// Starts `command` with stdout and stderr piped and `stdin` written to it and closed (a
/// command that reads no input may exit before it is written: that is no error).
pub fn spawn_with_input(command: &mut Command, stdin: &str) -> Child {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`, ...).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Raises this process's soft open-file limit so the test itself can hold the sockets.
pub fn ensure_nofile(need: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let soft: u64 = line
        .split_whitespace()
        .nth(3)
        .unwrap()
        .parse()
        .unwrap_or(u64::MAX);
    if soft < need {
        let pid = std::process::id().to_string();
        let status = Command::new("prlimit")
            .args([&format!("--nofile={need}:"), "--pid", &pid])
            .status()
            .unwrap();
        assert!(
            status.success(),
            "cannot raise the open-file limit to {need}"
        );
    }
}
