//! `chatmail-admin import` and `create --force` lift a tombstone only once the account it
//! protects exists, under that account's lock: a refused or killed command never leaves the
//! address open to a stranger's first login through doveauth.
//!
//! - A directory a refused first login left under the address (`password.lock` only) is
//!   replaced by the import, never reported as an existing account; one that holds more is
//!   refused, and the tombstone stays.
//! - `create --force` with a password doveauth would refuse keeps the tombstone.
//! - Both commands killed with SIGKILL at pseudo-random moments while strangers keep
//!   logging in to the address: whatever is on disk afterwards is the operator's account
//!   or nothing (and then the tombstone), and no stranger was ever handed an account.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: failing loudly is the point"
)]

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatmail_tests::Service;
use chatmail_tests::dict_client::passdb_lookup;
use chatmail_tests::process::spawn_with_input;
use chatmail_tests::service::binary;
use chatmail_tests::support::xorshift;
use chatmail_tests::support::{Scratch, crash_iterations};

const DOMAIN: &str = "tomb.example.org";

struct Relay {
    scratch: Scratch,
    socket: PathBuf,
    _doveauth: Service,
}

impl Relay {
    fn start() -> Relay {
        let scratch = Scratch::new("tomb", DOMAIN, |root| {
            format!(
                "passdb_path = {}\nnocreate_file = {}\nmax_load_1m = 100000\nmin_free_disk_space = 1M\nmin_available_memory = 1M\nmax_creations_per_minute = 0\n",
                root.join("passdb.sqlite").display(),
                root.join("nocreate").display()
            )
        });
        let socket = scratch.path("auth.socket");
        let doveauth =
            Service::start_dict(&binary("doveauth", "doveauth"), &socket, &scratch.ini, None);
        Relay {
            scratch,
            socket,
            _doveauth: doveauth,
        }
    }

    fn admin(&self, args: &[&str], stdin: &str) -> std::process::Child {
        let mut command = Command::new(binary("chatmail-admin", "chatmail-admin"));
        command.arg("--config").arg(&self.scratch.ini).args(args);
        spawn_with_input(&mut command, stdin)
    }

    fn run(&self, args: &[&str], stdin: &str) -> (i32, String) {
        let out = self.admin(args, stdin).wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), text)
    }

    /// A stranger's first login through doveauth's passdb: the reply line.
    fn stranger(&self, addr: &str, password: &str) -> String {
        passdb_lookup(&self.socket, addr, password)
    }

    fn password_file(&self, addr: &str) -> PathBuf {
        self.scratch.mailboxes.join(addr).join("password")
    }

    fn tombstone(&self, addr: &str) -> PathBuf {
        self.scratch
            .mailboxes
            .join(".chatmail-admin/tombstones")
            .join(addr)
    }

    /// An account made, exported (its export line returned) and deleted.
    fn exported_and_deleted(&self, addr: &str) -> (String, String) {
        assert_eq!(self.run(&["create", addr], "the-operators-password").0, 0);
        let hash = std::fs::read_to_string(self.password_file(addr)).unwrap();
        let (code, export) = self.run(&["export", "-"], "");
        assert_eq!(code, 0, "{export}");
        let header = export.lines().next().unwrap().to_owned();
        let line = export
            .lines()
            .find(|l| l.contains(&format!("\"{addr}\"")))
            .unwrap()
            .to_owned();
        assert_eq!(self.run(&["delete", addr], "").0, 0);
        assert!(self.tombstone(addr).exists());
        (format!("{header}\n{line}\n"), hash)
    }
}

/// Whether `hash` (`{SHA512-CRYPT}$6$…`) is one of `password`.
fn verifies(hash: &str, password: &str) -> bool {
    let out = Command::new("doveadm")
        .args(["pw", "-t", hash.trim(), "-p", password])
        .output()
        .unwrap();
    out.status.success()
}

#[test]
fn import_replaces_a_refused_logins_leftover_and_never_calls_it_an_account() {
    let r = Relay::start();
    let addr = format!("leftover1@{DOMAIN}");
    let (export, hash) = r.exported_and_deleted(&addr);
    // What a refused first login leaves: the directory and its lock file.
    let maildir = r.scratch.mailboxes.join(&addr);
    std::fs::create_dir(&maildir).unwrap();
    std::fs::write(maildir.join("password.lock"), b"").unwrap();
    let (code, out) = r.run(&["import", "-"], &export);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("imported 1 accounts, 0 existed, 0 refused"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(r.password_file(&addr)).unwrap(),
        hash
    );
    assert!(
        !r.tombstone(&addr).exists(),
        "lifted once the account exists"
    );
    let reply = r.stranger(&addr, "a-strangers-password");
    assert!(reply.contains(hash.trim()), "{reply}");

    // A directory without a password that holds more is not replaced, and the address
    // stays tombstoned.
    let other = format!("leftover2@{DOMAIN}");
    let (export, _) = r.exported_and_deleted(&other);
    let maildir = r.scratch.mailboxes.join(&other);
    std::fs::create_dir_all(maildir.join("cur")).unwrap();
    std::fs::write(maildir.join("cur/1.M1P1.host,S=1:2,S"), b"x").unwrap();
    let (code, out) = r.run(&["import", "-"], &export);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("0 existed, 1 refused"), "{out}");
    assert!(r.tombstone(&other).exists(), "tombstone lifted: {out}");
    assert_eq!(r.stranger(&other, "a-strangers-password"), "N\n");
    assert!(!r.password_file(&other).exists());
}

#[test]
fn create_force_keeps_the_tombstone_when_it_creates_nothing() {
    let r = Relay::start();
    let addr = format!("forceacc1@{DOMAIN}");
    r.exported_and_deleted(&addr);
    let (code, out) = r.run(&["create", &addr, "--force"], "short");
    assert_eq!(code, 1, "{out}");
    assert!(
        r.tombstone(&addr).exists(),
        "tombstone lifted by a refused create"
    );
    assert_eq!(r.stranger(&addr, "a-strangers-password"), "N\n");
    let (code, out) = r.run(&["create", &addr, "--force"], "the-new-password");
    assert_eq!(code, 0, "{out}");
    assert!(!r.tombstone(&addr).exists());
    let hash = std::fs::read_to_string(r.password_file(&addr)).unwrap();
    assert!(verifies(&hash, "the-new-password"));
}

/// Strangers logging in to `addr` until `stop`, then 10 more each; every `O` reply's hash.
fn hammer(r: &Relay, addr: &str, stop: &Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    let served: Arc<Mutex<HashSet<String>>> = Arc::default();
    (0..4)
        .map(|i| {
            let (socket, addr, stop, served) = (
                r.socket.clone(),
                addr.to_owned(),
                Arc::clone(stop),
                Arc::clone(&served),
            );
            std::thread::spawn(move || {
                let mut after = 0;
                while after < 10 {
                    if stop.load(Ordering::Relaxed) {
                        after += 1;
                    }
                    let reply = passdb_lookup(&socket, &addr, &format!("stranger-password-{i}"));
                    if reply.starts_with('O') {
                        served.lock().unwrap().insert(reply);
                    }
                }
                for reply in served.lock().unwrap().iter() {
                    let hash = reply.rsplit('"').nth(1).unwrap();
                    assert!(
                        !verifies(hash, &format!("stranger-password-{i}")),
                        "a stranger was handed {addr}"
                    );
                }
            })
        })
        .collect()
}

#[test]
fn killed_import_and_create_force_never_open_the_address() {
    let r = Relay::start();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let rounds = crash_iterations(6);
    let (mut made, mut tombstoned) = (0, 0);
    for round in 0..rounds {
        let addr = format!("killed{round:04}@{DOMAIN}");
        let (export, hash) = r.exported_and_deleted(&addr);
        let import = round % 2 == 0;
        let stop = Arc::new(AtomicBool::new(false));
        let strangers = hammer(&r, &addr, &stop);
        let mut child = if import {
            r.admin(&["import", "-"], &export)
        } else {
            r.admin(&["create", &addr, "--force"], "the-operators-password")
        };
        xorshift(&mut seed);
        std::thread::sleep(Duration::from_micros(seed % 40_000));
        let _ = child.kill();
        child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        stop.store(true, Ordering::Relaxed);
        for s in strangers {
            s.join().unwrap();
        }
        match std::fs::read_to_string(r.password_file(&addr)) {
            Ok(on_disk) if import => assert_eq!(on_disk, hash, "round {round}"),
            Ok(on_disk) => assert!(verifies(&on_disk, "the-operators-password")),
            Err(_) => assert!(
                r.tombstone(&addr).exists(),
                "round {round}: neither account nor tombstone"
            ),
        }
        if r.password_file(&addr).exists() {
            made += 1;
        } else {
            tombstoned += 1;
        }
    }
    eprintln!("{rounds} kills: {made} left the operator's account, {tombstoned} the tombstone");
}
