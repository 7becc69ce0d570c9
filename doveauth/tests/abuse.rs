//! What a hostile client can do to doveauth, black-box over its real sockets: refused first
//! logins leave no inodes, HTTP `/create` is no password oracle, parallel hashes are capped,
//! and idle or slow connections neither hold the port nor stay open.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: failing loudly is the point"
)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use support::http::{BIN, Conn, DOMAIN, Http, scrape};
use support::{Daemon, passdb};

/// Files and directories below `dir`, counted recursively (what a flood would cost); the
/// relay's state directory (invitations and their lock) is not counted.
fn inodes(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() != chatmaild::registry::STATE_DIR)
        .map(|e| {
            let e = e.unwrap();
            1 + if e.file_type().unwrap().is_dir() {
                inodes(&e.path())
            } else {
                0
            }
        })
        .sum()
}

/// The value of a metric line (`name value`) in a scrape.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in\n{text}"))
}

const HASHES: &str = "chatmail_doveauth_password_hash_duration_seconds_count";

#[test]
fn ten_thousand_refused_first_logins_over_http_leave_no_inode() {
    // The free disk limit refuses every creation: a cheap refusal, decided per request.
    let d = Http::start("min_free_disk_space = 1000000G\n");
    let before = inodes(&d.mailboxes);
    let port = d.port;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..2500 {
                    let addr = format!("f{t}{i:07}@{DOMAIN}");
                    assert_eq!(Conn::new(port).create(&addr, "secret-password"), 403);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(inodes(&d.mailboxes), before, "a refused login left files");
    let text = scrape(&d);
    assert_eq!(
        metric(
            &text,
            "chatmail_doveauth_creations_refused_total{reason=\"limits\"}"
        ),
        10_000
    );
}

#[test]
fn ten_thousand_refused_first_logins_over_dict_leave_no_inode() {
    let d = Daemon::start(BIN, DOMAIN, "max_creations_per_minute_total = 1\n");
    let mut c = d.client();
    assert!(
        c.ask(&passdb("secret-password", &format!("firstone1@{DOMAIN}")))
            .starts_with('O')
    );
    let before = inodes(&d.mailboxes);
    for i in 0..10_000 {
        let reply = c.ask(&passdb("secret-password", &format!("f{i:08}@{DOMAIN}")));
        assert_eq!(reply, "F\n", "refused for now, {i}");
    }
    assert_eq!(inodes(&d.mailboxes), before, "a refused login left files");
    let (_, log) = d.stop();
    assert_eq!(
        log.matches("registration rejected: more than 1 creations per minute")
            .count(),
        10_000
    );
}

#[test]
fn logins_refused_under_the_lock_leave_no_inode() {
    // Invite-only with a one-use invitation: every login passes the check before the lock,
    // all but one are refused under it when the invitation is already used.
    use chatmaild::registry::{RegistrationMode, Registry};
    let d = Http::start("");
    let config = chatmaild::Config::load(d.dir.path().join("chatmail.ini")).unwrap();
    let registry = Registry::new(&config);
    registry.set_mode(RegistrationMode::InviteOnly).unwrap();
    let inv = registry
        .create_invitation(1, None, "", chatmaild::wall_time::unix_seconds())
        .unwrap();
    let before = inodes(&d.mailboxes);
    let n = 32;
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (barrier, port) = (Arc::clone(&barrier), d.port);
            let password = format!("{}:secret-password", inv.token);
            std::thread::spawn(move || {
                let mut c = Conn::new(port);
                barrier.wait();
                c.create(&format!("race{i:05}@{DOMAIN}"), &password)
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    // The one account: its directory, password, lock and marker, nothing else.
    let accounts: Vec<_> = std::fs::read_dir(&d.mailboxes)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains('@'))
        .collect();
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    let account = d.mailboxes.join(&accounts[0]);
    assert_eq!(
        inodes(&d.mailboxes) - before,
        1 + inodes(&account),
        "leftovers"
    );
}

#[test]
fn failed_password_checks_back_off_without_hashing() {
    let d = Http::start("");
    let addr = format!("oracle123@{DOMAIN}");
    assert_eq!(d.conn().create(&addr, "right-password"), 200);
    assert_eq!(metric(&scrape(&d), HASHES), 1);
    // Sequential guesses: one is checked, the rest are refused without a hash.
    for i in 0..20 {
        assert_eq!(d.conn().create(&addr, &format!("guess-{i:04}")), 403);
    }
    assert_eq!(metric(&scrape(&d), HASHES), 2, "one guess checked");
    // Parallel guesses cannot all slip through before the first failure counts.
    let barrier = Arc::new(Barrier::new(64));
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let (barrier, port, addr) = (Arc::clone(&barrier), d.port, addr.clone());
            std::thread::spawn(move || {
                let mut c = Conn::new(port);
                barrier.wait();
                c.create(&addr, &format!("parallel-{i:04}"))
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 403);
    }
    assert_eq!(
        metric(&scrape(&d), HASHES),
        2,
        "none checked while backed off"
    );
    // Other addresses from the same (loopback) peer are backed off too.
    let other = format!("oracle456@{DOMAIN}");
    assert_eq!(
        d.conn().create(&other, "new-password"),
        200,
        "creation is never throttled"
    );
    assert_eq!(
        d.conn().create(&other, "new-password"),
        403,
        "a check is, for now"
    );
    // After the back-off (at most 15 s), the right password is accepted again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while d.conn().create(&addr, "right-password") != 200 {
        assert!(Instant::now() < deadline, "still backed off");
        std::thread::sleep(Duration::from_millis(500));
    }
    let (_, log) = d.stop();
    assert!(log.contains("failed checks back off"), "{log}");
}

/// The peak resident memory of process `pid` in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn parallel_argon2id_hashes_are_capped() {
    let d = Http::start("password_scheme = argon2id\n");
    // Warm up: one creation, so the baseline includes one hash's memory.
    assert_eq!(
        d.conn()
            .create(&format!("warmup123@{DOMAIN}"), "secret-password"),
        200
    );
    let base = peak_rss_kib(d.child.id());
    let n: u64 = 64;
    let barrier = Arc::new(Barrier::new(64));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (barrier, port) = (Arc::clone(&barrier), d.port);
            std::thread::spawn(move || {
                let mut c = Conn::new(port);
                barrier.wait();
                c.create(&format!("argon{i:04}@{DOMAIN}"), "secret-password")
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
    // argon2id's default takes 19 MiB per hash: 64 at once took 1.2 GiB. Capped at two per
    // core, the hashes in flight take a few times 19 MiB; the allocator keeps some freed
    // blocks per thread on top (RELIABILITY.md), still far below half of 64 at once.
    let permits = u64::try_from(doveauth::hash_permits()).unwrap();
    let grown = peak_rss_kib(d.child.id()).saturating_sub(base);
    assert!(
        grown < n * 19 * 1024 / 2,
        "peak memory grew by {grown} KiB for {n} parallel hashes ({permits} permits)"
    );
}

#[test]
fn idle_connections_neither_block_creation_nor_stay_open() {
    let d = Http::start("");
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(("127.0.0.1", d.port)).unwrap())
        .collect();
    let opened = Instant::now();
    let started = Instant::now();
    let mut c = Conn::new(d.port);
    c.writer
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert_eq!(
        c.create(&format!("notblock1@{DOMAIN}"), "secret-password"),
        200
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a creation took {:?} beside 1,000 idle connections",
        started.elapsed()
    );
    // Every idle connection is closed by the head deadline (5 s), none later.
    let deadline = opened + Duration::from_secs(9);
    for (i, mut s) in idle.into_iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("idle connection {i} still open after 9 s: {e}"),
        }
    }
}

#[test]
fn a_body_that_does_not_come_is_given_up() {
    let d = Http::start("");
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"POST /create HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\nslowpoke1@")
        .unwrap();
    let started = Instant::now();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(inodes(&d.mailboxes), 0);
}
