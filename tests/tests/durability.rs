//! What reaches the disk before doveauth says so, observed as system calls: the real
//! binary runs under `strace`, and the order of `mkdir`, `fsync`, `rename` and the reply
//! on the socket is checked.
//!
//! - A new account: the password file is synced, renamed into place, its mailbox directory
//!   synced (the names `password` and `enforceE2EEincoming`) and then `mailboxes_dir` (the
//!   mailbox's own name), all before the reply that hands out the account.
//! - The legacy sqlite migration: every password file and mailbox directory, then
//!   `mailboxes_dir`, are synced before the database is renamed to `.old`.
//!
//! Needs `strace` (installed by `scripts/install-deps`).
#![expect(clippy::unwrap_used, reason = "test code: failing loudly is the point")]

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chatmail_tests::service::binary;

const DOMAIN: &str = "dur.example.org";

struct Traced {
    strace: Child,
    trace: PathBuf,
}

impl Traced {
    /// Starts `doveauth SOCKET INI` under `strace -f` and waits for its socket.
    fn doveauth(dir: &Path, socket: &Path, ini: &Path) -> Traced {
        let trace = dir.join("trace.txt");
        let strace = Command::new("strace")
            .args(["-f", "-y", "-qq", "-s", "64", "-o"])
            .arg(&trace)
            .args([
                "-e",
                "trace=mkdir,mkdirat,rename,renameat,renameat2,fsync,fdatasync,sendto,sendmsg,write,writev",
            ])
            .arg(binary("doveauth", "doveauth"))
            .arg(socket)
            .arg(ini)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run strace (scripts/install-deps installs it): {e}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while UnixStream::connect(socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "doveauth did not start under strace"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Traced { strace, trace }
    }

    /// Stops doveauth (the tracee) and returns the trace, one system call a line.
    fn finish(mut self) -> Vec<String> {
        let pid = self.strace.id();
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        for child in children.split_whitespace() {
            let _ = Command::new("kill").args(["-9", child]).status();
        }
        let _ = self.strace.wait();
        std::fs::read_to_string(&self.trace)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// The index of the first line after `from` containing every needle.
fn find(trace: &[String], from: usize, needles: &[&str]) -> Option<usize> {
    trace
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, l)| needles.iter().all(|n| l.contains(n)))
        .map(|(i, _)| i)
}

fn at(trace: &[String], from: usize, needles: &[&str]) -> usize {
    find(trace, from, needles).unwrap_or_else(|| {
        panic!(
            "no system call with {needles:?} after line {from}:\n{}",
            trace.join("\n")
        )
    })
}

fn ini(dir: &Path, mail: &Path) -> PathBuf {
    let ini = dir.join("chatmail.ini");
    std::fs::write(
        &ini,
        format!(
            "[params]\nmail_domain = {DOMAIN}\nmailboxes_dir = {}\npassdb_path = {}\nmax_load_1m = 100000\nmin_free_disk_space = 1M\nmin_available_memory = 1M\n",
            mail.display(),
            dir.join("passdb.sqlite").display()
        ),
    )
    .unwrap();
    ini
}

#[test]
fn a_new_account_is_on_disk_before_doveauth_answers() {
    let root = tempfile::tempdir().unwrap();
    let mail = root.path().join("mail");
    std::fs::create_dir(&mail).unwrap();
    let socket = root.path().join("auth.socket");
    let traced = Traced::doveauth(root.path(), &socket, &ini(root.path(), &mail));
    let addr = format!("abcdefghi@{DOMAIN}");
    let mut s = UnixStream::connect(&socket).unwrap();
    use std::io::{BufRead, Write};
    s.write_all(format!("Lshared/passdb/correct-horse-battery\"{addr}\t{addr}\n").as_bytes())
        .unwrap();
    let mut reply = String::new();
    std::io::BufReader::new(&s).read_line(&mut reply).unwrap();
    assert!(reply.starts_with("O{\"addr\""), "{reply}");
    let trace = traced.finish();

    let maildir = format!("{}/{addr}", mail.display());
    let mkdir = at(&trace, 0, &["mkdir(", &format!("\"{maildir}\""), "= 0"]);
    let sync_tmp = at(
        &trace,
        mkdir,
        &["fsync(", &format!("<{maildir}/password."), ".tmp>"],
    );
    let rename = at(
        &trace,
        sync_tmp,
        &["rename", &format!("\"{maildir}/password\")"), "= 0"],
    );
    let sync_maildir = at(&trace, rename, &["fsync(", &format!("<{maildir}>)")]);
    let sync_mail = at(
        &trace,
        sync_maildir,
        &["fsync(", &format!("<{}>)", mail.display())],
    );
    let answer = at(&trace, 0, &["O{\\\"addr\\\""]);
    assert!(
        mkdir < sync_tmp && sync_tmp < rename && rename < sync_maildir && sync_maildir < sync_mail,
        "order"
    );
    assert!(
        sync_mail < answer,
        "the reply (line {answer}) left before mailboxes_dir was synced (line {sync_mail}):\n{}",
        trace.join("\n")
    );
}

#[test]
fn the_migration_syncs_every_account_before_it_retires_the_database() {
    let root = tempfile::tempdir().unwrap();
    let mail = root.path().join("mail");
    let db = root.path().join("passdb.sqlite");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let users: Vec<String> = (0..5).map(|i| format!("user{i:04}x@{DOMAIN}")).collect();
    conn.execute_batch(
        "CREATE TABLE users (addr TEXT PRIMARY KEY, password TEXT, last_login INTEGER);",
    )
    .unwrap();
    for u in &users {
        conn.execute(
            "INSERT INTO users VALUES (?1, '{SHA512-CRYPT}$6$salt$hash', 1700000000)",
            [u],
        )
        .unwrap();
    }
    drop(conn);
    let socket = root.path().join("auth.socket");
    let traced = Traced::doveauth(root.path(), &socket, &ini(root.path(), &mail));
    let trace = traced.finish();
    assert!(!db.exists() && root.path().join("passdb.sqlite.old").exists());

    let retire = at(
        &trace,
        0,
        &["rename", &format!("\"{}\"", db.display()), ".old\") = 0"],
    );
    let mut last_account_sync = 0;
    for u in &users {
        let maildir = format!("{}/{u}", mail.display());
        let file = at(&trace, 0, &["fsync(", &format!("<{maildir}/password>)")]);
        let dir = at(&trace, file, &["fsync(", &format!("<{maildir}>)")]);
        assert!(dir < retire, "{u}: synced after the database was retired");
        last_account_sync = last_account_sync.max(dir);
    }
    let sync_mail = at(
        &trace,
        last_account_sync,
        &["fsync(", &format!("<{}>)", mail.display())],
    );
    assert!(
        sync_mail < retire,
        "mailboxes_dir synced after the database was retired"
    );
    at(
        &trace,
        retire,
        &["fsync(", &format!("<{}>)", root.path().display())],
    );
}
