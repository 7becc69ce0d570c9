//! `chatmail-expire --remove` killed with SIGKILL at arbitrary points of a large run, rerun,
//! in a loop: after every kill each mailbox is either whole under its name or out of every
//! service's view, no file is torn, nothing outside `mailboxes_dir` is touched (also not
//! through symbolic links inside mailboxes), and the run that finally completes leaves
//! exactly what one uninterrupted run leaves.
//!
//! `CRASH_ITERATIONS` (default 2) sets the number of trees built and expired under kills.
#![expect(clippy::unwrap_used, reason = "test code: failing loudly is the point")]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chatmail_tests::service::binary;
use chatmail_tests::support::xorshift;

const DAY: u64 = 86_400;

/// Relative path → content (or `dir`, `link -> target`).
type Snapshot = BTreeMap<PathBuf, String>;
const INACTIVE: usize = 30;
const INACTIVE_FILES: usize = 300;
const ACTIVE: usize = 10;
const OLD_PER_ACTIVE: usize = 200;
const NEW_PER_ACTIVE: usize = 20;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn write_at(path: &Path, content: &str, mtime: u64) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    let when = UNIX_EPOCH + Duration::from_secs(mtime);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_times(fs::FileTimes::new().set_accessed(when).set_modified(when))
        .unwrap();
}

/// A message file name as Dovecot writes it.
fn message_name(time: u64, seq: usize, size: usize) -> String {
    format!("{time}.M{seq}P77.relay,S={size},W={size}:2,S")
}

/// Every entry below `dir` (not following links): relative path → file content, or
/// `dir`/`link -> target`.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let t = entry.file_type().unwrap();
            if t.is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.insert(rel, format!("link -> {}", target.display()));
            } else if t.is_dir() {
                out.insert(rel, "dir".to_owned());
                walk(root, &path, out);
            } else {
                out.insert(rel, fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

struct Tree {
    _root: tempfile::TempDir,
    ini: PathBuf,
    mailboxes: PathBuf,
    outside: PathBuf,
    /// Every inactive mailbox's full content.
    inactive: BTreeMap<String, BTreeMap<PathBuf, String>>,
    /// Per active mailbox: files that must stay, files that may go (old messages).
    active: BTreeMap<String, (Snapshot, Snapshot)>,
}

fn build(tag: u64) -> Tree {
    let root = tempfile::Builder::new()
        .prefix("crashexpire")
        .tempdir_in("/tmp")
        .unwrap();
    let mailboxes = root.path().join("mail");
    let outside = root.path().join("outside");
    fs::create_dir_all(&mailboxes).unwrap();
    let now = now();
    write_at(&outside.join("victim"), "must survive", now - 400 * DAY);
    write_at(
        &outside.join("sub/deep"),
        "must survive too",
        now - 400 * DAY,
    );
    let ini = root.path().join("chatmail.ini");
    fs::write(
        &ini,
        format!(
            "[params]\nmail_domain = crash.example.org\nmailboxes_dir = {}\ndelete_mails_after = 20\ndelete_large_after = 7\ndelete_inactive_users_after = 90\n",
            mailboxes.display()
        ),
    )
    .unwrap();
    let old = now - 60 * DAY;
    let mut inactive = BTreeMap::new();
    for i in 0..INACTIVE {
        let name = format!("gone{tag}x{i:03}@crash.example.org");
        let dir = mailboxes.join(&name);
        write_at(
            &dir.join("password"),
            "{SHA512-CRYPT}$6$old",
            now - 200 * DAY,
        );
        write_at(&dir.join("enforceE2EEincoming"), "", now - 200 * DAY);
        for n in 0..INACTIVE_FILES {
            let sub = if n % 3 == 0 { "new" } else { "cur" };
            write_at(
                &dir.join(sub).join(message_name(old, n, 10)),
                &format!("message {n} of {name}"),
                old,
            );
        }
        // A link out of the tree: removing the mailbox must not follow it.
        std::os::unix::fs::symlink(&outside, dir.join("cur/evil")).unwrap();
        inactive.insert(name, snapshot(&dir));
    }
    let mut active = BTreeMap::new();
    for i in 0..ACTIVE {
        let name = format!("here{tag}x{i:03}@crash.example.org");
        let dir = mailboxes.join(&name);
        write_at(&dir.join("password"), "{SHA512-CRYPT}$6$new", now - DAY);
        write_at(&dir.join("enforceE2EEincoming"), "", now - DAY);
        for n in 0..OLD_PER_ACTIVE {
            write_at(
                &dir.join("cur").join(message_name(old, n, 10)),
                &format!("old {n} of {name}"),
                old,
            );
        }
        // An old "message" that is a link to a file outside: only the link may go.
        let link = dir.join("cur").join(message_name(old, 9999, 10));
        std::os::unix::fs::symlink(outside.join("victim"), &link).unwrap();
        write_at(&dir.join("maildirsize"), "1000 0\n", now);
        let may_go: BTreeMap<PathBuf, String> = snapshot(&dir)
            .into_iter()
            .filter(|(p, _)| {
                p.starts_with("cur") && p != Path::new("cur") || p == Path::new("maildirsize")
            })
            .collect();
        for n in 0..NEW_PER_ACTIVE {
            write_at(
                &dir.join("cur").join(message_name(now, n, 10)),
                &format!("new {n} of {name}"),
                now,
            );
        }
        let stays: BTreeMap<PathBuf, String> = snapshot(&dir)
            .into_iter()
            .filter(|(p, _)| !may_go.contains_key(p))
            .collect();
        active.insert(name, (stays, may_go));
    }
    Tree {
        _root: root,
        ini,
        mailboxes,
        outside,
        inactive,
        active,
    }
}

/// The account registry's state directory inside `mailboxes_dir` (tombstones, trash).
const REGISTRY_DIR: &str = ".chatmail-admin";

/// What must hold after every kill. Returns the number of renamed-away leftovers
/// (`.expiring.*` or in the registry's trash).
fn check_consistent(tree: &Tree, outside_before: &BTreeMap<PathBuf, String>, when: &str) -> usize {
    assert_eq!(
        &snapshot(&tree.outside),
        outside_before,
        "{when}: something outside mailboxes_dir changed"
    );
    let mut leftovers = 0;
    let names: BTreeSet<String> = fs::read_dir(&tree.mailboxes)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for name in &names {
        if name.starts_with(".expiring.") && name.ends_with(".tmp") {
            leftovers += 1;
            continue;
        }
        if name == REGISTRY_DIR {
            // Mailboxes renamed into the registry's trash, not yet deleted.
            leftovers += fs::read_dir(tree.mailboxes.join(REGISTRY_DIR).join("trash"))
                .map_or(0, |d| d.count());
            continue;
        }
        let dir = tree.mailboxes.join(name);
        let now = snapshot(&dir);
        if let Some(full) = tree.inactive.get(name) {
            assert!(
                now == *full,
                "{when}: {name} is half removed under its name ({} of {} entries left, password {})",
                now.len(),
                full.len(),
                if now.contains_key(Path::new("password")) {
                    "kept"
                } else {
                    "gone"
                }
            );
        } else if let Some((stays, may_go)) = tree.active.get(name) {
            for (p, content) in stays {
                assert_eq!(
                    now.get(p),
                    Some(content),
                    "{when}: {name}/{} lost or torn",
                    p.display()
                );
            }
            for (p, content) in &now {
                assert!(
                    stays.get(p) == Some(content) || may_go.get(p) == Some(content),
                    "{when}: {name}/{} unexpected or torn: {content:?}",
                    p.display()
                );
            }
        } else {
            panic!("{when}: unknown entry {name} in mailboxes_dir");
        }
    }
    for name in tree.active.keys() {
        assert!(
            names.contains(name),
            "{when}: active mailbox {name} removed"
        );
    }
    // The tombstone is written before the mailbox goes: a removed address is never free.
    for name in tree.inactive.keys().filter(|n| !names.contains(*n)) {
        assert!(
            tree.mailboxes
                .join(REGISTRY_DIR)
                .join("tombstones")
                .join(name)
                .is_file(),
            "{when}: {name} removed without a tombstone"
        );
    }
    leftovers
}

fn iterations() -> u64 {
    chatmail_tests::support::crash_iterations(2)
}

#[test]
fn kill_9_during_expire_remove_leaves_a_consistent_tree_and_a_rerun_finishes() {
    let bin = binary("chatmail-expire", "chatmail-expire");
    let mut seed: u64 = 0x853c_49e6_748f_ea9b;
    let (mut kills, mut runs, mut leftovers_seen) = (0, 0, 0);
    for tag in 0..iterations() {
        let tree = build(tag);
        let outside_before = snapshot(&tree.outside);
        let mut completed = None;
        for attempt in 0..60 {
            runs += 1;
            let mut child = Command::new(&bin)
                .arg(&tree.ini)
                .arg("--remove")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            xorshift(&mut seed);
            // Late attempts run to the end: the job must finish eventually.
            if attempt < 40 {
                std::thread::sleep(Duration::from_micros(2_000 + seed % 30_000));
                if child.try_wait().unwrap().is_none() {
                    child.kill().unwrap();
                    child.wait().unwrap();
                    kills += 1;
                    leftovers_seen += check_consistent(
                        &tree,
                        &outside_before,
                        &format!("tree {tag}, kill {kills}"),
                    );
                    continue;
                }
            }
            let out = child.wait_with_output().unwrap();
            let log = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "run failed: {log}");
            assert!(!log.contains("panicked"), "{log}");
            completed = Some(log);
            break;
        }
        let log = completed.expect("a run completed");
        // The completed run leaves what an uninterrupted run leaves.
        assert_eq!(
            check_consistent(&tree, &outside_before, "after the completed run"),
            0,
            "leftovers after a completed run: {log}"
        );
        let names: BTreeSet<String> = fs::read_dir(&tree.mailboxes)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != REGISTRY_DIR)
            .collect();
        let want: BTreeSet<String> = tree.active.keys().cloned().collect();
        assert_eq!(names, want, "only the active mailboxes are left");
        // Every expired message and `maildirsize` is gone; whether a link named like an
        // old message goes is the scanner's business (its target never is).
        let no_links = |m: &BTreeMap<PathBuf, String>| -> BTreeMap<PathBuf, String> {
            m.iter()
                .filter(|(_, v)| !v.starts_with("link -> "))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        for (name, (stays, _)) in &tree.active {
            assert_eq!(
                no_links(&snapshot(&tree.mailboxes.join(name))),
                no_links(stays),
                "{name}: exactly the recent messages are left"
            );
        }
    }
    assert!(kills >= 3, "only {kills} kills landed during a run");
    eprintln!(
        "{} trees, {runs} runs, {kills} killed mid-run, {leftovers_seen} renamed-away mailboxes seen after kills (finished by the next run)",
        iterations()
    );
}
