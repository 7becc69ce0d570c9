//! Facts about processes the hostile-input and load tests check: memory from
//! `/proc/<pid>/status`, and this process's own open-file limit.

use std::process::Command;

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
