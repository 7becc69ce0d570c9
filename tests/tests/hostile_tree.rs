//! The tools that run as root against a mailbox tree that someone else controls.
//!
//! Anything running as vmail could put a symbolic link, a hard link, a FIFO, a socket or a
//! device node at any path in `mailboxes_dir`. This test plays that: the real
//! `chatmail-admin`, `chatmail-expire`, `chatmail-quota-expire` and `chatmail-fsreport`
//! run as root against trees full of such entries, at every path they touch, linked to
//! sentinel files and directories outside the tree (one like `/etc/shadow`, root's and
//! mode 0600; one the tree's owner may write; directories of both). Every command must
//! finish (a 30 s deadline: a FIFO opened for reading would block forever), exit 0 or 1,
//! not panic, and afterwards every sentinel is unchanged (content, mode, owner, mtime,
//! existence), nothing new exists outside the tree except the files the commands were
//! asked to write, and the working directory is still empty.
//!
//! Two owners: `nobody` (the tools switch to it, as they switch to vmail on a relay) and
//! root (no switch: the links alone must be refused). A third scene makes `mailboxes_dir`
//! itself a link planted by its parent directory's owner.
//!
//! Needs root (CI runs the suite as root).
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: failing loudly is the point"
)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown, lchown, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chatmail_tests::process::spawn_with_input;
use chatmail_tests::service::binary;

const DOMAIN: &str = "tree.example.org";
const NOBODY: (u32, u32) = (65534, 65534);
const DEADLINE: Duration = Duration::from_secs(30);

/// Commands run so far (for the figures the tests print).
static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn runs() -> usize {
    RUNS.load(std::sync::atomic::Ordering::Relaxed)
}

/// A hostile entry.
#[derive(Debug, Clone, Copy)]
enum Odd {
    /// Symbolic link to root's 0600 file.
    LinkShadow,
    /// Symbolic link to a file the tree's owner may write.
    LinkPublic,
    /// Symbolic link to a directory the tree's owner may write.
    LinkDir,
    /// Symbolic link to root's 0700 directory.
    LinkRootDir,
    /// Hard link to root's 0600 file.
    HardShadow,
    /// Hard link to the file the tree's owner may write.
    HardPublic,
    Fifo,
    Socket,
    /// A character device like /dev/zero (reading it never ends).
    Device,
}

const ALL: [Odd; 9] = [
    Odd::LinkShadow,
    Odd::LinkPublic,
    Odd::LinkDir,
    Odd::LinkRootDir,
    Odd::HardShadow,
    Odd::HardPublic,
    Odd::Fifo,
    Odd::Socket,
    Odd::Device,
];

/// Paths below a mailbox the tools touch ("" is the mailbox itself).
const ACCOUNT_PATHS: [&str; 9] = [
    "",
    "password",
    "password.lock",
    "enforceE2EEincoming",
    "metadata.json",
    "blocked",
    "cur",
    "new",
    "tmp",
];

/// Paths below `mailboxes_dir` outside any mailbox (`{addr}`: the second account).
const STATE_PATHS: [&str; 11] = [
    ".chatmail-admin",
    ".chatmail-admin/trash",
    ".chatmail-admin/tmp",
    ".chatmail-admin/tombstones",
    ".chatmail-admin/tombstones/{addr}",
    ".chatmail-admin/invites",
    ".chatmail-admin/invites/abcdefghij0123456789",
    ".chatmail-admin/invites.lock",
    ".chatmail-admin/invite-only",
    "pending_notifications",
    "pending_notifications/0123456789abcdef",
];

struct Scene {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    mail: PathBuf,
    ini: PathBuf,
    owner: (u32, u32),
}

impl Scene {
    fn new(owner: (u32, u32)) -> Scene {
        assert!(
            std::fs::metadata("/proc/self").unwrap().uid() == 0,
            "the hostile-tree test plays root and the tree's owner: run it as root"
        );
        let tmp = tempfile::Builder::new()
            .prefix("hostile")
            .tempdir_in("/tmp")
            .unwrap();
        let root = tmp.path().to_path_buf();
        set_mode(&root, 0o755);
        for d in [
            "outside/dir",
            "outside/rootdir",
            "out",
            "etc",
            "cwd",
            "home",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let outside = root.join("outside");
        write(
            &outside.join("shadow"),
            "SENTINEL-SHADOW root:$6$secret",
            0o600,
        );
        write(&outside.join("public"), "SENTINEL-PUBLIC", 0o666);
        write(&outside.join("dir/keep"), "SENTINEL-DIR", 0o666);
        write(&outside.join("rootdir/keep"), "SENTINEL-ROOTDIR", 0o600);
        set_mode(&outside.join("dir"), 0o777);
        set_mode(&outside.join("rootdir"), 0o700);
        for p in ["public", "dir", "dir/keep"] {
            chown(outside.join(p), Some(owner.0), Some(owner.1)).unwrap();
        }
        // The parent of mailboxes_dir belongs to the tree's owner, as /home/vmail does.
        chown(root.join("home"), Some(owner.0), Some(owner.1)).unwrap();
        let mail = root.join("home/mail");
        std::fs::create_dir(&mail).unwrap();
        set_mode(&mail, 0o700);
        chown(&mail, Some(owner.0), Some(owner.1)).unwrap();
        let ini = root.join("chatmail.ini");
        std::fs::write(
            &ini,
            format!(
                "[params]\nmail_domain = {DOMAIN}\nmailboxes_dir = {}\nnocreate_file = {}\ndelete_inactive_users_after = 1\n",
                mail.display(),
                root.join("etc/nocreate").display()
            ),
        )
        .unwrap();
        Scene {
            _tmp: tmp,
            root,
            mail,
            ini,
            owner,
        }
    }

    /// A complete account whose last login was long ago (so `chatmail-expire --remove`
    /// removes it and tombstones its address).
    fn inactive(&self, addr: &str) {
        self.account(addr);
        let password = self.mail.join(addr).join("password");
        let long_ago = std::time::SystemTime::now() - Duration::from_secs(30 * 86_400);
        std::fs::File::options()
            .write(true)
            .open(password)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
    }

    /// A complete account: password, marker, tokens, a message.
    fn account(&self, addr: &str) {
        let dir = self.mail.join(addr);
        for sub in ["", "cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::write(dir.join("password"), "{PLAIN}operator-secret").unwrap();
        std::fs::write(dir.join("enforceE2EEincoming"), "").unwrap();
        std::fs::write(dir.join("metadata.json"), r#"{"devicetoken": {"t": 1}}"#).unwrap();
        std::fs::write(dir.join("cur/1700000000.M1P1.host,S=5:2,S"), "hello").unwrap();
        self.own_all();
    }

    /// Makes `rel` (below `mailboxes_dir`) the odd entry `odd`, replacing what is there.
    fn plant(&self, rel: &str, odd: Odd) {
        let path = self.mail.join(rel);
        if let Ok(m) = std::fs::symlink_metadata(&path) {
            if m.is_dir() {
                std::fs::remove_dir_all(&path).unwrap();
            } else {
                std::fs::remove_file(&path).unwrap();
            }
        }
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let outside = self.root.join("outside");
        match odd {
            Odd::LinkShadow => symlink(outside.join("shadow"), &path).unwrap(),
            Odd::LinkPublic => symlink(outside.join("public"), &path).unwrap(),
            Odd::LinkDir => symlink(outside.join("dir"), &path).unwrap(),
            Odd::LinkRootDir => symlink(outside.join("rootdir"), &path).unwrap(),
            Odd::HardShadow => std::fs::hard_link(outside.join("shadow"), &path).unwrap(),
            Odd::HardPublic => std::fs::hard_link(outside.join("public"), &path).unwrap(),
            Odd::Fifo => run_ok(Command::new("mkfifo").arg(&path)),
            Odd::Socket => drop(std::os::unix::net::UnixListener::bind(&path).unwrap()),
            Odd::Device => run_ok(Command::new("mknod").arg(&path).args(["c", "1", "5"])),
        }
        self.own_all();
    }

    /// Gives everything in the tree (but hard links, whose owner is the outside file's) to
    /// the tree's owner, as if it had made them.
    fn own_all(&self) {
        let shadow_ino = std::fs::metadata(self.root.join("outside/shadow"))
            .unwrap()
            .ino();
        let mut stack = vec![self.mail.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let m = std::fs::symlink_metadata(&p).unwrap();
                if m.ino() != shadow_ino {
                    lchown(&p, Some(self.owner.0), Some(self.owner.1)).unwrap();
                }
                if m.is_dir() {
                    stack.push(p);
                }
            }
        }
    }

    /// Everything outside `mailboxes_dir`'s parent: kind, mode, owner, mtime, content.
    fn outside_state(&self) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p == self.root.join("home") {
                    continue;
                }
                let m = std::fs::symlink_metadata(&p).unwrap();
                let content = if m.is_file() {
                    String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned()
                } else {
                    String::new()
                };
                // The directories the commands write to change their mtime, nothing else.
                let outputs = p == self.root.join("out") || p == self.root.join("etc");
                let mtime = (!outputs).then(|| (m.mtime(), m.mtime_nsec()));
                let desc = format!("{:o} {}:{} {mtime:?} {content}", m.mode(), m.uid(), m.gid());
                out.insert(p.clone(), desc);
                if m.is_dir() {
                    stack.push(p);
                }
            }
        }
        out
    }

    /// Runs a tool (`chatmail-admin --config INI ARGS` or another binary with `args` as
    /// given) in the empty `cwd/`, as root, with a deadline; returns (exit code, output).
    fn tool(&self, bin: &str, args: &[&str], stdin: &str) -> (i32, String) {
        let mut command = Command::new(binary(package(bin), bin));
        if bin == "chatmail-admin" {
            command.arg("--config").arg(&self.ini);
        }
        command.args(args).current_dir(self.root.join("cwd"));
        let mut child = spawn_with_input(&mut command, stdin);
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > DEADLINE {
                let _ = child.kill();
                panic!("{bin} {args:?} hung ({:?} owner)", self.owner);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let code = out.status.code().unwrap_or(-1);
        assert!(
            matches!(code, 0 | 1) && !text.contains("panicked"),
            "{bin} {args:?}: exit {code}:\n{text}"
        );
        (code, text)
    }

    fn admin(&self, args: &[&str]) -> (i32, String) {
        self.tool("chatmail-admin", args, "hostile-password-1")
    }

    /// Every command of every tool on `addrs` (and on the relay as a whole).
    fn run_everything(&self, addrs: &[String]) {
        let ini = self.ini.to_str().unwrap().to_owned();
        let out = |f: &str| self.root.join("out").join(f).display().to_string();
        let mut import =
            format!("{{\"chatmail_admin_export\": 1, \"mail_domain\": \"{DOMAIN}\"}}\n");
        for a in addrs.iter().chain([&format!("imported1@{DOMAIN}")]) {
            import += &format!(
                "{{\"addr\": \"{a}\", \"password\": \"{{PLAIN}}imported\", \"metadata\": {{\"devicetoken\": {{}}}}}}\n"
            );
        }
        std::fs::write(out("import.jsonl"), import).unwrap();
        for args in [
            &["list"][..],
            &["list", "--json"],
            &["export", "-"],
            &["export", &out("export.jsonl")],
            &["import", &out("import.jsonl")],
            &["registration", "invite-only"],
            &["registration", "status"],
            &["invite", "create", "--uses", "2"],
            &["invite", "list", "--json"],
            &["invite", "revoke", "abcdefghij0123456789"],
            &["registration", "close"],
            &["registration", "open"],
        ] {
            self.admin(args);
        }
        self.tool("chatmail-expire", &[&ini, "-v"], "");
        self.tool("chatmail-fsreport", &[&ini], "");
        // The inactive account goes now: tombstone, trash, removal.
        self.tool("chatmail-expire", &[&ini, "-v", "--remove"], "");
        for a in addrs {
            let mailbox = self.mail.join(a).display().to_string();
            for args in [
                &["info", a][..],
                &["info", a, "--json"],
                &["create", a],
                &["create", a, "--force"],
                &["passwd", a],
                &["block", a],
                &["unblock", a],
            ] {
                self.admin(args);
            }
            self.tool("chatmail-quota-expire", &["0", &mailbox], "");
            self.admin(&["delete", a]);
        }
        let textfile = format!("--textfile={}", out("expire.prom"));
        self.tool("chatmail-expire", &[&ini, "-v", "--remove", &textfile], "");
        self.tool("chatmail-fsreport", &[&ini, "--textfile", &out("")], "");
        self.admin(&["list"]);
    }

    /// Asserts that nothing outside the tree changed but the files the commands wrote.
    fn assert_outside_unchanged(&self, before: &BTreeMap<PathBuf, String>, what: &str) {
        let mut after = self.outside_state();
        let written = [
            "export.jsonl",
            "import.jsonl",
            "expire.prom",
            "fsreport.prom",
        ];
        after.retain(|p, _| {
            !(written.iter().any(|w| *p == self.root.join("out").join(w))
                || *p == self.root.join("etc/nocreate"))
        });
        let mut before = before.clone();
        before.retain(|p, _| {
            *p != self.root.join("etc/nocreate") && *p != self.root.join("out/import.jsonl")
        });
        for (p, b) in &before {
            assert_eq!(after.get(p), Some(b), "{what}: {} changed", p.display());
        }
        for p in after.keys() {
            assert!(before.contains_key(p), "{what}: {} appeared", p.display());
        }
        assert_eq!(std::fs::read_dir(self.root.join("cwd")).unwrap().count(), 0);
    }
}

fn package(bin: &str) -> &'static str {
    match bin {
        "chatmail-admin" => "chatmail-admin",
        "chatmail-fsreport" => "chatmail-fsreport",
        _ => "chatmail-expire",
    }
}

fn write(path: &Path, content: &str, mode: u32) {
    std::fs::write(path, content).unwrap();
    set_mode(path, mode);
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn run_ok(command: &mut Command) {
    assert!(command.status().unwrap().success(), "{command:?}");
}

/// One account per (path, odd entry), plus a normal one; every command on each.
fn odd_accounts(owner: (u32, u32)) {
    let s = Scene::new(owner);
    let mut addrs = vec![format!("control01@{DOMAIN}")];
    s.account(&addrs[0]);
    s.inactive(&format!("inactive1@{DOMAIN}"));
    for (i, rel) in ACCOUNT_PATHS.iter().enumerate() {
        for (k, odd) in ALL.iter().enumerate() {
            let addr = format!("h{i:02}{k:02}odd@{DOMAIN}");
            s.account(&addr);
            s.plant(format!("{addr}/{rel}").trim_end_matches('/'), *odd);
            addrs.push(addr);
        }
    }
    let before = s.outside_state();
    // The normal account is an account: the tools work in this tree at all.
    let (code, list) = s.admin(&["list"]);
    assert!(code == 0 && list.contains(&addrs[0]), "{list}");
    s.run_everything(&addrs);
    s.assert_outside_unchanged(&before, &format!("odd accounts, owner {owner:?}"));
    assert!(
        !s.mail.join(&addrs[0]).exists(),
        "the normal account was deleted"
    );
    eprintln!(
        "{} odd accounts, owner {owner:?}: {} commands so far in this test binary",
        addrs.len() - 1,
        runs()
    );
}

/// Each odd entry at each state path, in a tree of two normal accounts (scenes on a few
/// threads: each is a tree of its own).
fn odd_state(owner: (u32, u32)) {
    let scenes: Vec<(&str, Odd)> = STATE_PATHS
        .iter()
        .flat_map(|rel| ALL.iter().map(move |odd| (*rel, *odd)))
        .collect();
    std::thread::scope(|scope| {
        for chunk in scenes.chunks(scenes.len().div_ceil(3)) {
            scope.spawn(move || {
                for (rel, odd) in chunk {
                    odd_state_scene(owner, rel, *odd);
                }
            });
        }
    });
    eprintln!(
        "{} state scenes, owner {owner:?}: {} commands so far in this test binary",
        scenes.len(),
        runs()
    );
}

fn odd_state_scene(owner: (u32, u32), rel: &str, odd: Odd) {
    let s = Scene::new(owner);
    let addrs = [format!("normal001@{DOMAIN}"), format!("normal002@{DOMAIN}")];
    for a in &addrs {
        s.account(a);
    }
    s.inactive(&format!("inactive1@{DOMAIN}"));
    s.plant(&rel.replace("{addr}", &addrs[1]), odd);
    let before = s.outside_state();
    s.run_everything(&addrs);
    s.assert_outside_unchanged(&before, &format!("{rel} as {odd:?}, owner {owner:?}"));
}

#[test]
fn odd_entries_in_accounts_switched_to_the_owner() {
    odd_accounts(NOBODY);
}

#[test]
fn odd_entries_in_accounts_of_a_tree_of_roots() {
    odd_accounts((0, 0));
}

#[test]
fn odd_entries_in_the_state_directory_switched_to_the_owner() {
    odd_state(NOBODY);
}

#[test]
fn odd_entries_in_the_state_directory_of_a_tree_of_roots() {
    odd_state((0, 0));
}

#[test]
fn a_mailboxes_dir_made_a_link_by_its_parents_owner_is_refused() {
    for target in ["outside/rootdir", "outside/dir"] {
        let s = Scene::new(NOBODY);
        std::fs::remove_dir(&s.mail).unwrap();
        symlink(s.root.join(target), &s.mail).unwrap();
        lchown(&s.mail, Some(NOBODY.0), Some(NOBODY.1)).unwrap();
        let before = s.outside_state();
        let (code, text) = s.admin(&["create", &format!("planted01@{DOMAIN}")]);
        assert_eq!(code, 1, "{text}");
        assert!(text.contains("others may change"), "{text}");
        s.run_everything(&[format!("planted02@{DOMAIN}")]);
        s.assert_outside_unchanged(&before, &format!("mailboxes_dir -> {target}"));
    }
}
