//! The root-started tools switch to the owner of `mailboxes_dir` before they touch anything
//! in it, observed as system calls: each tool runs as root under `strace -f -y` against a
//! tree owned by `nobody`, and the trace must show `setgroups(0, [])`, then `setresgid` and
//! `setresuid` to nobody's ids (in that order, on one thread), and no system call on a path
//! below `mailboxes_dir`, nor on a descriptor of one, before them. A command with nothing to
//! write outside the tree afterwards switches its only thread, so the whole process; one
//! that writes a file an operator named (`export FILE`, `--textfile`) switches a worker
//! thread and writes that file from the main one afterwards.
//!
//! Needs root and `strace` (installed by `scripts/install-deps`).
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: failing loudly is the point"
)]

use std::os::unix::fs::{MetadataExt, chown};
use std::path::PathBuf;
use std::process::Command;

use chatmail_tests::service::binary;

const DOMAIN: &str = "priv.example.org";

struct Tree {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    mail: PathBuf,
    ini: PathBuf,
}

fn tree() -> Tree {
    assert_eq!(
        std::fs::metadata("/proc/self").unwrap().uid(),
        0,
        "run as root: the test watches root switch to the tree's owner"
    );
    let tmp = tempfile::Builder::new()
        .prefix("priv")
        .tempdir_in("/tmp")
        .unwrap();
    let root = tmp.path().to_path_buf();
    let mail = root.join("mail");
    let account = mail.join(format!("someone01@{DOMAIN}"));
    std::fs::create_dir_all(account.join("cur")).unwrap();
    std::fs::write(account.join("password"), "{PLAIN}x").unwrap();
    std::fs::write(account.join("cur/1.M1P1.host,S=1:2,S"), "x").unwrap();
    for p in [
        &mail,
        &account,
        &account.join("cur"),
        &account.join("password"),
    ] {
        chown(p, Some(65534), Some(65534)).unwrap();
    }
    chown(
        account.join("cur/1.M1P1.host,S=1:2,S"),
        Some(65534),
        Some(65534),
    )
    .unwrap();
    let ini = root.join("chatmail.ini");
    std::fs::write(
        &ini,
        format!(
            "[params]\nmail_domain = {DOMAIN}\nmailboxes_dir = {}\nnocreate_file = {}\n",
            mail.display(),
            root.join("nocreate").display()
        ),
    )
    .unwrap();
    Tree {
        _tmp: tmp,
        root,
        mail,
        ini,
    }
}

/// One traced system call: thread id and text.
struct Call {
    tid: u32,
    text: String,
}

/// Runs `bin ARGS` under `strace -f -y` and returns its system calls.
fn trace(t: &Tree, bin: &str, package: &str, args: &[&str]) -> (u32, Vec<Call>) {
    let out = t.root.join("trace.txt");
    let status = Command::new("strace")
        .args(["-f", "-y", "-qq", "-s", "200", "-o"])
        .arg(&out)
        .arg(binary(package, bin))
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run strace (scripts/install-deps installs it): {e}"));
    assert!(status.success(), "{bin} {args:?} failed");
    let text = std::fs::read_to_string(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    let calls: Vec<Call> = text
        .lines()
        .filter_map(|l| {
            let (tid, rest) = l.split_once(' ')?;
            Some(Call {
                tid: tid.parse().ok()?,
                text: rest.trim_start().to_owned(),
            })
        })
        .collect();
    (calls[0].tid, calls)
}

/// Where the switch happened: the index of `setresuid` and its thread. Asserts the order
/// and that nothing below `mail` was touched before.
fn switched(t: &Tree, calls: &[Call], what: &str) -> (usize, u32) {
    let find = |from: usize, prefix: &str| {
        calls
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, c)| c.text.starts_with(prefix))
            .map(|(i, c)| (i, c.tid))
            .unwrap_or_else(|| panic!("{what}: no {prefix} after call {from}"))
    };
    let (groups, tid) = find(0, "setgroups(0, [])");
    let (gid, gid_tid) = find(groups, "setresgid(65534, 65534, 65534)");
    let (uid, uid_tid) = find(gid, "setresuid(65534, 65534, 65534)");
    assert_eq!(
        (gid_tid, uid_tid),
        (tid, tid),
        "{what}: one thread switches"
    );
    assert!(
        calls[uid + 1..].iter().any(|c| c.tid == tid
            && c.text.starts_with("setresuid(0, 0, 0)")
            && c.text.contains("= -1 EPERM")),
        "{what}: the way back is tried and fails"
    );
    let below = format!("{}/", t.mail.display());
    let on_tree = format!("<{}>", t.mail.display());
    for c in &calls[..uid] {
        // The arguments (not the result: opening `mail` itself returns its descriptor); the
        // `fstat` that learns the owner, a `close` and the command line are no look inside.
        let arguments = c.text.split(" = ").next().unwrap_or_default();
        let inside = arguments.contains(&below) || arguments.contains(&on_tree);
        let allowed = ["fstat(", "close(", "execve("]
            .iter()
            .any(|call| c.text.starts_with(call));
        assert!(
            !inside || allowed,
            "{what}: touched the tree before the switch: {}",
            c.text
        );
    }
    (uid, tid)
}

#[test]
fn commands_with_nothing_to_write_outside_switch_the_whole_process() {
    let t = tree();
    let ini = t.ini.to_str().unwrap();
    for (bin, package, args) in [
        (
            "chatmail-admin",
            "chatmail-admin",
            vec!["--config", ini, "list"],
        ),
        (
            "chatmail-admin",
            "chatmail-admin",
            vec!["--config", ini, "export", "-"],
        ),
        (
            "chatmail-expire",
            "chatmail-expire",
            vec![ini, "-v", "--remove"],
        ),
        ("chatmail-fsreport", "chatmail-fsreport", vec![ini]),
    ] {
        let (pid, calls) = trace(&t, bin, package, &args);
        let (_, tid) = switched(&t, &calls, &format!("{bin} {args:?}"));
        assert_eq!(
            tid, pid,
            "{bin} {args:?}: the main thread (the process) switched"
        );
    }
    let mailbox = format!("{}/someone01@{DOMAIN}", t.mail.display());
    let (pid, calls) = trace(
        &t,
        "chatmail-quota-expire",
        "chatmail-expire",
        &["0", &mailbox],
    );
    let (_, tid) = switched(&t, &calls, "chatmail-quota-expire");
    assert_eq!(tid, pid);
}

#[test]
fn a_file_outside_is_written_by_the_caller_after_the_tree_work() {
    let t = tree();
    let ini = t.ini.to_str().unwrap();
    let export = t.root.join("export.jsonl");
    let textfile = t.root.join("expire.prom");
    for (bin, package, args, file) in [
        (
            "chatmail-admin",
            "chatmail-admin",
            vec!["--config", ini, "export", export.to_str().unwrap()],
            &export,
        ),
        (
            "chatmail-expire",
            "chatmail-expire",
            vec![ini, "--remove", "--textfile", textfile.to_str().unwrap()],
            &textfile,
        ),
    ] {
        let what = format!("{bin} {args:?}");
        let (pid, calls) = trace(&t, bin, package, &args);
        let (uid, tid) = switched(&t, &calls, &what);
        assert_ne!(tid, pid, "{what}: a worker thread switched");
        let name = file.file_name().unwrap().to_str().unwrap();
        let written = calls
            .iter()
            .position(|c| c.text.starts_with("renameat") && c.text.contains(&format!("\"{name}\"")))
            .unwrap_or_else(|| panic!("{what}: {name} not renamed into place"));
        assert!(written > uid, "{what}: written before the tree work");
        assert_eq!(calls[written].tid, pid, "{what}: written by the caller");
        assert_eq!(std::fs::metadata(file).unwrap().uid(), 0, "{what}");
    }
}
