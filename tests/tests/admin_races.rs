//! `chatmail-admin delete` while first logins of the same address hammer doveauth: at no
//! moment is the address both without a password file and without a tombstone (the
//! tombstone is written before the mailbox is renamed away, and doveauth checks it again
//! under `password.lock`), so no stranger's login recreates the account. Writing the
//! tombstone after the rename fails this test in its first round.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: failing loudly is the point"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chatmail_tests::Service;
use chatmail_tests::dict_client::passdb_lookup;
use chatmail_tests::service::binary;

const DOMAIN: &str = "race.example.org";

#[test]
fn delete_racing_first_logins_leaves_the_address_free() {
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("mail");
    std::fs::create_dir(&mail).unwrap();
    let ini = dir.path().join("chatmail.ini");
    std::fs::write(
        &ini,
        format!(
            "[params]\nmail_domain = {DOMAIN}\nmailboxes_dir = {}\npassdb_path = {}\nnocreate_file = {}\nmax_load_1m = 100000\nmin_free_disk_space = 1M\nmin_available_memory = 1M\nmax_creations_per_minute = 0\n",
            mail.display(),
            dir.path().join("passdb.sqlite").display(),
            dir.path().join("nocreate").display(),
        ),
    )
    .unwrap();
    let socket = dir.path().join("auth.socket");
    let _doveauth = Service::start_dict(&binary("doveauth", "doveauth"), &socket, &ini, None);
    let admin = binary("chatmail-admin", "chatmail-admin");

    for round in 0..10 {
        let addr = format!("racer{round:04}@{DOMAIN}");
        assert!(passdb_lookup(&socket, &addr, "first-password").starts_with('O'));
        let stop = Arc::new(AtomicBool::new(false));
        let hammers: Vec<_> = (0..8)
            .map(|i| {
                let (socket, addr, stop) = (socket.clone(), addr.clone(), stop.clone());
                std::thread::spawn(move || {
                    // Until the delete has returned, then 20 more: those must all fail.
                    let mut after = 0;
                    while after < 20 {
                        if stop.load(Ordering::Relaxed) {
                            after += 1;
                        }
                        passdb_lookup(&socket, &addr, &format!("stranger-password-{i}"));
                    }
                })
            })
            .collect();
        let out = std::process::Command::new(&admin)
            .arg("--config")
            .arg(&ini)
            .args(["delete", &addr])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stop.store(true, Ordering::Relaxed);
        for h in hammers {
            h.join().unwrap();
        }
        assert!(
            !mail.join(&addr).join("password").exists(),
            "round {round}: a stranger took over the deleted address"
        );
        assert_eq!(passdb_lookup(&socket, &addr, "stranger-password-9"), "N\n");
    }
}
