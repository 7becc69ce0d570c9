//! `chatmail-admin delete` killed with SIGKILL at pseudo-random points: the account is
//! always whole or gone (and then tombstoned), never half removed, and what the kill left in
//! the state directory's trash goes with the next delete.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: failing loudly is the point"
)]

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chatmail_tests::support::xorshift;
use chatmaild::registry::Registry;
use chatmaild::{Config, User};

const BIN: &str = env!("CARGO_BIN_EXE_chatmail-admin");
const FILES: usize = 2000;

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            n += count_files(&e.path());
        } else {
            n += 1;
        }
    }
    n
}

fn admin(ini: &Path, args: &[&str], stdin: &str) -> std::process::Child {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(ini)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    // A command that reads no stdin may exit before this is written.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child
}

#[test]
fn killed_delete_leaves_the_account_whole_or_gone() {
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("mail");
    fs::create_dir(&mail).unwrap();
    let ini = chatmail_tests::support::write_ini(
        dir.path(),
        "example.org",
        &format!(
            "mailboxes_dir = {}\nnocreate_file = {}\n",
            mail.display(),
            dir.path().join("nocreate").display()
        ),
    );
    let config = Config::load(&ini).unwrap();
    let registry = Registry::new(&config);
    let (mut whole, mut gone) = (0, 0);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..12 {
        let addr = format!("crash{round:04}@example.org");
        assert!(
            admin(&ini, &["create", &addr], "crash-secret")
                .wait()
                .unwrap()
                .success()
        );
        let user = User::new(&config, &addr).unwrap();
        let cur = user.maildir().join("cur");
        fs::create_dir(&cur).unwrap();
        for i in 0..FILES {
            fs::write(cur.join(format!("{i}.M1P1.host,S=1:2,S")), b"x").unwrap();
        }
        let total = count_files(user.maildir());
        let hash = user.password().unwrap();

        let mut child = admin(&ini, &["delete", &addr], "");
        xorshift(&mut seed);
        std::thread::sleep(Duration::from_micros(seed % 30_000));
        let _ = child.kill();
        child.wait().unwrap();

        if user.maildir().exists() {
            whole += 1;
            assert_eq!(
                count_files(user.maildir()),
                total,
                "round {round}: half removed"
            );
            assert_eq!(user.password().unwrap(), hash);
        } else {
            gone += 1;
            assert!(
                registry.tombstone_until(&addr).unwrap().is_some(),
                "round {round}: gone without a tombstone"
            );
        }
        // The account is in exactly one of the two states for doveauth too.
        let listed = mail.join(&addr).join("password").exists();
        assert_eq!(listed, user.maildir().exists());
    }
    assert_eq!(whole + gone, 12);
    eprintln!("killed deletes: {whole} left the account whole, {gone} left it gone");
    // One more delete finishes interrupted ones' leftovers.
    let last = "crashlast@example.org";
    assert!(
        admin(&ini, &["create", last], "crash-secret")
            .wait()
            .unwrap()
            .success()
    );
    assert!(admin(&ini, &["delete", last], "").wait().unwrap().success());
    let trash = registry.state_dir().join("trash");
    assert_eq!(
        fs::read_dir(&trash).unwrap().count(),
        0,
        "trash not emptied"
    );
    let left: Vec<_> = fs::read_dir(&mail)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains('@'))
        .collect();
    for name in &left {
        assert!(
            mail.join(name).join("password").exists(),
            "{name}: a mailbox without password"
        );
    }
}
