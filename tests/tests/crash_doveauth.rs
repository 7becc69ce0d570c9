//! doveauth killed with SIGKILL at arbitrary points of heavy account creation, restarted,
//! in a loop: no account is lost half-written and none ever has two passwords.
//!
//! `CRASH_ITERATIONS` (default 4) sets the number of kill/restart rounds; a longer manual
//! run is `CRASH_ITERATIONS=200 cargo test --release -p chatmail-tests --test crash_doveauth`.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: failing loudly is the point"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatmail_tests::service::binary;
use chatmail_tests::support::{
    KillOnDrop, Scratch, crash_iterations, read_lossy, spawn_with_socket,
};
use chatmail_tests::support::{kill_mid_round, xorshift};

const DOMAIN: &str = "crash.example.org";
const PASSWORD: &str = "correct-horse-battery";
const CLIENTS: usize = 8;

struct Env {
    _scratch: Scratch,
    bin: PathBuf,
    socket: PathBuf,
    ini: PathBuf,
    mailboxes: PathBuf,
    log: PathBuf,
}

impl Env {
    fn new() -> Env {
        let scratch = Scratch::new("crash", DOMAIN, |root| {
            format!(
                "passdb_path = {}\nmax_load_1m = 100000\nmin_free_disk_space = 1M\nmin_available_memory = 1M\n",
                root.join("passdb.sqlite").display()
            )
        });
        Env {
            bin: binary("doveauth", "doveauth"),
            socket: scratch.path("auth.socket"),
            log: scratch.path("doveauth.log"),
            ini: scratch.ini.clone(),
            mailboxes: scratch.mailboxes.clone(),
            _scratch: scratch,
        }
    }

    /// Starts doveauth (appending to one log across restarts) and waits for its socket.
    fn spawn(&self) -> Child {
        let mut command = Command::new(&self.bin);
        command.arg(&self.socket).arg(&self.ini);
        spawn_with_socket(&mut command, &self.socket, &self.log)
    }

    /// How many `Created address` lines all runs logged so far.
    fn created(&self) -> usize {
        self.log_text().matches("Created address: ").count()
    }

    fn log_text(&self) -> String {
        read_lossy(&self.log)
    }
}

/// One lookup on a fresh connection; `None` if the daemon died before answering.
fn ask(socket: &Path, request: &str) -> Option<String> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(format!("{request}\n").as_bytes()).ok()?;
    let mut line = String::new();
    match BufReader::new(s).read_line(&mut line) {
        Ok(n) if n > 0 && line.ends_with('\n') => Some(line.trim_end_matches('\n').to_owned()),
        _ => None,
    }
}

/// The `password` field of a userdb/passdb reply.
fn served_password(reply: &str) -> Option<String> {
    let json = reply.strip_prefix('O')?;
    let start = json.find("\"password\": \"")? + "\"password\": \"".len();
    let rest = json.get(start..)?;
    Some(rest.get(..rest.find('"')?)?.to_owned())
}

/// `{SHA512-CRYPT}$6$` + 16 salt characters + `$` + 86 hash characters, crypt alphabet.
fn is_complete_hash(hash: &str) -> bool {
    let crypt = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
    };
    let Some(rest) = hash.strip_prefix("{SHA512-CRYPT}$6$") else {
        return false;
    };
    matches!(rest.split_once('$'), Some((salt, h)) if salt.len() == 16 && h.len() == 86 && crypt(salt) && crypt(h))
}

fn iterations() -> u64 {
    crash_iterations(4)
}

#[test]
fn kill_9_during_account_creation_loses_nothing() {
    let missing_marker = kill_loop(iterations());
    if let Some(first) = missing_marker.first() {
        eprintln!("e.g. {first} has a password but no enforceE2EEincoming");
    }
}

/// A kill between the password's rename and the marker's creation would leave an account
/// that accepts cleartext mail for good: `User::set_password` creates the marker first.
#[test]
fn kill_9_never_leaves_an_account_without_its_e2ee_marker() {
    let missing_marker = kill_loop(iterations().max(8));
    assert!(
        missing_marker.is_empty(),
        "accounts without enforceE2EEincoming: {missing_marker:?}"
    );
}

/// Runs `iterations` kill/restart rounds, checks everything that must hold, and returns
/// the accounts left without an `enforceE2EEincoming` marker.
fn kill_loop(iterations: u64) -> Vec<String> {
    let env = Env::new();
    // Contested addresses are requested by every client in every round, so concurrent
    // and post-crash creators race for them; the others are fresh each round.
    let contested: Vec<String> = (0..24).map(|i| format!("shared{i:03}@{DOMAIN}")).collect();
    let served: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>> = Arc::default();
    let mut requested: BTreeSet<String> = contested.iter().cloned().collect();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut killed_mid_creation = 0;
    for round in 0..iterations {
        let created_before = env.created();
        let mut child = env.spawn();
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = Vec::new();
        for client in 0..CLIENTS {
            let mut addrs = contested.clone();
            addrs.rotate_left(client * 2);
            for n in 0..10 {
                addrs.push(format!("r{round:03}c{client:02}{n:02}@{DOMAIN}"));
            }
            requested.extend(addrs.iter().cloned());
            let (socket, stop, served) = (env.socket.clone(), stop.clone(), served.clone());
            clients.push(std::thread::spawn(move || {
                for addr in addrs {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let request = format!("Lshared/passdb/{PASSWORD}\"{addr}\t{addr}");
                    if let Some(reply) = ask(&socket, &request) {
                        let hash = served_password(&reply)
                            .unwrap_or_else(|| panic!("{addr}: unexpected reply {reply:?}"));
                        served.lock().unwrap().entry(addr).or_default().insert(hash);
                    }
                }
            }));
        }
        // Kill at a pseudo-random point once this round created 1..3 accounts, so the
        // kill lands while other creations are in flight, whatever the machine's speed.
        xorshift(&mut seed);
        let target = created_before + 1 + usize::try_from(seed % 3).unwrap();
        let reached = || env.created() >= target;
        let jitter = Duration::from_millis(seed % 40);
        if kill_mid_round(&mut child, clients, &stop, reached, jitter) {
            killed_mid_creation += 1;
        }
    }
    assert!(killed_mid_creation > 0, "no kill hit a running burst");

    // After the last restart: every account is complete and served as it was.
    let _child = KillOnDrop(env.spawn());
    let served = served.lock().unwrap();
    assert!(
        !served.is_empty(),
        "no account was created before the kills"
    );
    let mut accounts = 0;
    let mut missing_marker = Vec::new();
    let mut tmp_leftovers = 0;
    for addr in &requested {
        let maildir = env.mailboxes.join(addr);
        let reply = ask(&env.socket, &format!("Lshared/userdb/{addr}\t{addr}"))
            .expect("restarted doveauth answers");
        let file = std::fs::read_to_string(maildir.join("password")).ok();
        match (&file, served_password(&reply)) {
            (Some(file), Some(now)) => {
                accounts += 1;
                assert!(
                    is_complete_hash(file),
                    "{addr}: incomplete password file {file:?}"
                );
                assert_eq!(&now, file, "{addr}: served hash differs from the file");
                if !maildir.join("enforceE2EEincoming").exists() {
                    missing_marker.push(addr.clone());
                }
            }
            (None, None) => assert_eq!(reply, "N", "{addr}"),
            other => panic!("{addr}: file and reply disagree: {other:?}"),
        }
        // Every hash ever handed to a client is the one on disk: no second password.
        if let Some(hashes) = served.get(addr) {
            assert_eq!(
                hashes.len(),
                1,
                "{addr} was served {} different hashes",
                hashes.len()
            );
            assert_eq!(
                file.as_ref(),
                hashes.first(),
                "{addr}: a served hash was lost"
            );
        }
        // Nothing half-written under a final name: only known files and `.tmp` leftovers.
        if maildir.exists() {
            for entry in std::fs::read_dir(&maildir).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                assert!(
                    matches!(
                        name.as_str(),
                        "password" | "password.lock" | "enforceE2EEincoming"
                    ) || name.ends_with(".tmp"),
                    "{addr}: stray file {name}"
                );
                if name.ends_with(".tmp") {
                    tmp_leftovers += 1;
                }
            }
        }
    }
    for entry in std::fs::read_dir(&env.mailboxes).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            requested.contains(&name),
            "a mailbox nobody asked for: {name}"
        );
    }
    eprintln!(
        "{iterations} kill rounds, {killed_mid_creation} mid-burst; {accounts} complete accounts of {} requested; {} served; {tmp_leftovers} .tmp leftovers; {} without E2EE marker",
        requested.len(),
        served.len(),
        missing_marker.len()
    );
    let log = env.log_text();
    assert!(!log.contains("panicked"), "panic in log:\n{log}");
    missing_marker
}
