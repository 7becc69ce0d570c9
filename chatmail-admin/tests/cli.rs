//! Black-box tests of the chatmail-admin binary on a temporary relay tree.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: failing loudly is the point"
)]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use chatmail_tests::process::spawn_with_input;
use chatmail_tests::support::write_ini;
use chatmaild::registry::Registry;
use chatmaild::{Config, User};

const BIN: &str = env!("CARGO_BIN_EXE_chatmail-admin");
const DOMAIN: &str = "example.org";

struct Relay {
    dir: tempfile::TempDir,
    ini: PathBuf,
    mail: PathBuf,
}

struct Run {
    code: i32,
    out: String,
    err: String,
}

impl Relay {
    fn new() -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let mail = dir.path().join("mail");
        fs::create_dir(&mail).unwrap();
        let ini = write_ini(
            dir.path(),
            DOMAIN,
            &format!(
                "mailboxes_dir = {}\nnocreate_file = {}\n",
                mail.display(),
                dir.path().join("nocreate").display()
            ),
        );
        Relay { dir, ini, mail }
    }

    fn config(&self) -> Config {
        Config::load(&self.ini).unwrap()
    }

    fn user(&self, addr: &str) -> User {
        User::new(&self.config(), addr).unwrap()
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut command = Command::new(BIN);
        command.arg("--config").arg(&self.ini).args(args);
        let out = spawn_with_input(&mut command, stdin.unwrap_or(""))
            .wait_with_output()
            .unwrap();
        Run {
            code: out.status.code().unwrap(),
            out: String::from_utf8(out.stdout).unwrap(),
            err: String::from_utf8(out.stderr).unwrap(),
        }
    }

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let r = self.run(args, stdin);
        assert_eq!(r.code, 0, "{args:?}: {}{}", r.out, r.err);
        r.out
    }

    /// Every path below the temporary directory.
    fn tree(&self) -> Vec<PathBuf> {
        fn walk(p: &Path, out: &mut Vec<PathBuf>) {
            for e in fs::read_dir(p).unwrap() {
                let e = e.unwrap();
                out.push(e.path());
                if e.file_type().unwrap().is_dir() {
                    walk(&e.path(), out);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), &mut out);
        out.sort();
        out
    }
}

fn addr(local: &str) -> String {
    format!("{local}@{DOMAIN}")
}

fn verifies(hash: &str, password: &str) -> bool {
    use sha_crypt::{PasswordVerifier, ShaCrypt};
    let mcf = hash.strip_prefix("{SHA512-CRYPT}").unwrap();
    ShaCrypt::SHA512
        .verify_password(password.as_bytes(), mcf)
        .is_ok()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

#[test]
fn exit_codes() {
    let r = Relay::new();
    assert_eq!(r.run(&[], None).code, 64);
    assert_eq!(r.run(&["frobnicate"], None).code, 64);
    assert_eq!(r.run(&["list", "--uses", "2"], None).code, 64);
    assert_eq!(
        r.run(&["passwd", &addr("nobody123")], None).code,
        1,
        "no such account"
    );
    let missing = Command::new(BIN)
        .args(["--config", "/nonexistent/chatmail.ini", "list"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(78));
    fs::write(&r.ini, "[params]\nmail_domain = x\ntombstone_days = soon\n").unwrap();
    let bad = r.run(&["list"], None);
    assert_eq!(bad.code, 78);
    assert!(bad.err.contains("tombstone_days"), "{}", bad.err);
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("invite create"));
}

#[test]
fn create_hashes_like_doveauth_and_refuses_hostile_addresses() {
    let r = Relay::new();
    let a = addr("alice0001");
    assert_eq!(
        r.ok(&["create", &a], Some("alice-secret\n")),
        format!("created {a}\n")
    );
    let user = r.user(&a);
    let hash = user.password().unwrap().unwrap();
    assert!(verifies(&hash, "alice-secret"), "{hash}");
    assert!(
        !user.incoming_cleartext_ok(),
        "E2EE marker as doveauth writes it"
    );
    assert_eq!(
        fs::metadata(user.password_path()).unwrap().mode() & 0o077,
        0
    );
    assert_eq!(
        r.run(&["create", &a], Some("another-secret")).code,
        1,
        "exists"
    );
    assert!(verifies(&user.password().unwrap().unwrap(), "alice-secret"));

    let b = addr("bob000001");
    let out = r.ok(&["create", &b], None);
    let password = out
        .trim_end()
        .strip_prefix(&format!("created {b} password "))
        .unwrap();
    assert_eq!(password.chars().count(), 12);
    assert!(verifies(&r.user(&b).password().unwrap().unwrap(), password));
    assert_eq!(
        r.run(&["create", &addr("shortpw01")], Some("short")).code,
        1
    );

    let before = r.tree();
    for hostile in [
        "../../etc@example.org",
        "a/b@example.org",
        "Upper0001@example.org",
        "x@other.org",
        "noat",
        "tab\tx@example.org",
        "@example.org",
    ] {
        let run = r.run(&["create", hostile], Some("some-secret"));
        assert_eq!(run.code, 1, "{hostile:?}");
        assert!(
            run.err.contains("not an address of this relay"),
            "{}",
            run.err
        );
    }
    assert_eq!(r.tree(), before, "nothing written");
}

#[test]
fn files_get_the_owner_of_mailboxes_dir() {
    let r = Relay::new();
    // Tests run as root: hand the mailboxes to another user, as vmail owns them on a relay.
    if rustix_uid() != 0 {
        return;
    }
    std::os::unix::fs::chown(&r.mail, Some(65534), Some(65534)).unwrap();
    let a = addr("owned0001");
    r.ok(&["create", &a], Some("owned-secret"));
    r.ok(&["block", &a], None);
    r.ok(&["registration", "invite-only"], None);
    r.ok(&["invite", "create"], None);
    for p in r.tree().iter().filter(|p| p.starts_with(&r.mail)) {
        let m = fs::symlink_metadata(p).unwrap();
        assert_eq!((m.uid(), m.gid()), (65534, 65534), "{}", p.display());
    }
}

fn rustix_uid() -> u32 {
    fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1)
}

#[test]
fn list_and_info_json() {
    let r = Relay::new();
    let a = addr("listed001");
    r.ok(&["create", &a], Some("listed-secret"));
    let user = r.user(&a);
    fs::write(
        user.metadata_path(),
        r#"{"devicetoken": {"tok1": 1700000000, "tok2": 1700000001}}"#,
    )
    .unwrap();
    fs::create_dir_all(user.maildir().join("cur")).unwrap();
    fs::write(user.maildir().join("cur/1.M1P1.host,S=5:2,S"), b"hello").unwrap();
    let queue = r.mail.join("pending_notifications");
    fs::create_dir(&queue).unwrap();
    fs::write(queue.join("0123"), format!("{a}\n1700000000\ntok1")).unwrap();
    fs::write(
        queue.join("4567"),
        format!("{}\n1700000000\ntok9", addr("other0001")),
    )
    .unwrap();

    let list: serde_json::Value = serde_json::from_str(&r.ok(&["list", "--json"], None)).unwrap();
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let entry = &list.as_array().unwrap()[0];
    let keys: Vec<&str> = entry
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "addr",
            "last_login",
            "bytes",
            "messages",
            "tokens",
            "enforce_e2ee",
            "blocked"
        ]
    );
    assert_eq!(entry["addr"], a.as_str());
    assert_eq!(entry["last_login"], today.as_str());
    assert_eq!(entry["messages"], 1);
    assert_eq!(entry["tokens"], 2);
    assert_eq!(entry["enforce_e2ee"], true);
    assert_eq!(entry["blocked"], false);
    assert!(entry["bytes"].as_u64().unwrap() >= 5 + 106);
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "state dirs are not accounts"
    );

    let info: serde_json::Value =
        serde_json::from_str(&r.ok(&["info", &a, "--json"], None)).unwrap();
    assert_eq!(info["notifications"], 1);
    assert_eq!(info["tokens"], 2);
    let text = r.ok(&["list"], None);
    assert!(
        text.starts_with(&format!("{a}\tlast_login={today}\t")),
        "{text}"
    );
    assert_eq!(r.run(&["info", &addr("missing01")], None).code, 1);
}

#[test]
fn passwd_replaces_the_hash_and_keeps_the_last_login() {
    let r = Relay::new();
    let a = addr("changeme1");
    r.ok(&["create", &a], Some("old-password"));
    let user = r.user(&a);
    user.set_last_login(1_700_000_000).unwrap();
    assert_eq!(
        r.ok(&["passwd", &a], Some("new-password\n")),
        format!("changed the password of {a}\n")
    );
    let hash = user.password().unwrap().unwrap();
    assert!(verifies(&hash, "new-password"));
    assert!(!verifies(&hash, "old-password"));
    assert_eq!(user.last_login(), Some(1_699_920_000));
    assert_eq!(
        r.run(&["passwd", &a], Some("")).code,
        64,
        "no password given"
    );
    assert_eq!(r.run(&["passwd", &a], Some("short")).code, 1);
}

#[test]
fn delete_removes_everything_and_tombstones() {
    let r = Relay::new();
    let (a, b) = (addr("deleteme1"), addr("keepme001"));
    r.ok(&["create", &a], Some("delete-secret"));
    r.ok(&["create", &b], Some("keep-secret1"));
    let user = r.user(&a);
    fs::write(user.metadata_path(), r#"{"devicetoken": {"tok": 1}}"#).unwrap();
    let queue = r.mail.join("pending_notifications");
    fs::create_dir(&queue).unwrap();
    fs::write(queue.join("aaaa"), format!("{a}\n1700000000\ntok")).unwrap();
    fs::write(queue.join("bbbb"), format!("{b}\n1700000000\ntok")).unwrap();

    let out = r.ok(&["delete", &a], None);
    let until = now() + 365 * 86_400;
    let day = chrono::DateTime::from_timestamp(until, 0)
        .unwrap()
        .format("%Y-%m-%d");
    assert_eq!(out, format!("deleted {a}, tombstoned until {day}\n"));
    assert!(!user.maildir().exists());
    assert!(!queue.join("aaaa").exists());
    assert!(
        queue.join("bbbb").exists(),
        "other users' notifications stay"
    );
    assert!(r.user(&b).password().unwrap().is_some());
    let registry = Registry::new(&r.config());
    let t = registry.tombstone_until(&a).unwrap().unwrap();
    assert!((until - 5..=until).contains(&t), "{t} vs {until}");
    let trash = registry.state_dir().join("trash");
    assert_eq!(
        fs::read_dir(&trash).unwrap().count(),
        0,
        "nothing left in trash"
    );

    assert_eq!(r.run(&["delete", &a], None).code, 1, "already gone");
    let again = r.run(&["create", &a], Some("new-secret1"));
    assert_eq!(again.code, 1);
    assert!(again.err.contains("tombstoned"), "{}", again.err);
    r.ok(&["create", &a, "--force"], Some("new-secret1"));
    assert_eq!(
        registry.tombstone_until(&a).unwrap(),
        None,
        "--force lifts it"
    );
}

#[test]
fn block_and_unblock() {
    let r = Relay::new();
    let a = addr("blockme01");
    r.ok(&["create", &a], Some("block-secret"));
    let user = r.user(&a);
    assert_eq!(r.ok(&["block", &a], None), format!("blocked {a}\n"));
    assert!(user.is_blocked());
    assert_eq!(
        r.ok(&["block", &a], None),
        format!("already blocked: {a}\n")
    );
    let list: serde_json::Value = serde_json::from_str(&r.ok(&["list", "--json"], None)).unwrap();
    assert_eq!(list[0]["blocked"], true);
    // The password file moved aside: no reader of `password` sees the account, the hash
    // and its last-login mtime stay.
    let hash = fs::read_to_string(user.blocked_path()).unwrap();
    assert!(verifies(&hash, "block-secret"), "data stays");
    assert_eq!(user.password().unwrap(), None);
    assert_eq!(r.ok(&["unblock", &a], None), format!("unblocked {a}\n"));
    assert!(!user.is_blocked());
    assert_eq!(user.password().unwrap(), Some(hash));
    assert_eq!(r.run(&["block", &addr("nosuchone")], None).code, 1);
}

#[test]
fn registration_modes_and_the_nocreate_file() {
    let r = Relay::new();
    let flag = r.dir.path().join("nocreate");
    assert_eq!(
        r.ok(&["registration", "status"], None),
        "registration open\n"
    );
    assert_eq!(
        r.ok(&["registration", "invite-only"], None),
        "registration invite-only\n"
    );
    assert_eq!(
        r.ok(&["registration", "close"], None),
        "registration close\n"
    );
    assert!(flag.exists());
    assert_eq!(r.ok(&["registration", "open"], None), "registration open\n");
    assert!(!flag.exists());
    fs::write(&flag, b"made by hand").unwrap();
    assert_eq!(
        r.ok(&["registration", "status"], None),
        "registration close\n"
    );
    r.ok(&["registration", "open"], None);
    assert!(!flag.exists());
}

#[test]
fn invitations() {
    let r = Relay::new();
    let out = r.ok(
        &[
            "invite",
            "create",
            "--uses",
            "3",
            "--expires",
            "7",
            "--comment",
            "for the choir",
        ],
        None,
    );
    let words: Vec<&str> = out.split_whitespace().collect();
    let token = words[1];
    assert_eq!(words[..4], ["invitation", token, "uses", "3"]);
    assert_eq!(
        words.last().unwrap(),
        &format!("dcaccount:https://{DOMAIN}/new?invite={token}")
    );
    let list: serde_json::Value =
        serde_json::from_str(&r.ok(&["invite", "list", "--json"], None)).unwrap();
    let inv = &list[0];
    assert_eq!(inv["token"], token);
    assert_eq!(inv["uses_left"], 3);
    assert_eq!(inv["comment"], "for the choir");
    assert_eq!(inv["valid"], true);
    let expires = inv["expires"].as_i64().unwrap();
    assert!((now() + 7 * 86_400 - 5..=now() + 7 * 86_400).contains(&expires));
    assert_eq!(
        r.ok(&["invite", "revoke", token], None),
        "revoked the invitation\n"
    );
    assert_eq!(r.ok(&["invite", "list", "--json"], None), "[]\n");
    assert_eq!(r.run(&["invite", "revoke", token], None).code, 1);
    assert_eq!(r.run(&["invite", "revoke", "../../x"], None).code, 1);
}

#[test]
fn export_purge_import_gives_back_the_accounts() {
    let r = Relay::new();
    let (a, b) = (addr("export001"), addr("export002"));
    r.ok(&["create", &a], Some("export-secret-a"));
    r.ok(&["create", &b], Some("export-secret-b"));
    r.ok(&["block", &b], None);
    let ua = r.user(&a);
    let ub = r.user(&b);
    let metadata = r#"{"devicetoken": {"tokA": 1700000000}, "other": [1, 2]}"#;
    fs::write(ua.metadata_path(), metadata).unwrap();
    fs::remove_file(ub.enforce_e2ee_path()).unwrap();
    ua.set_last_login(1_700_000_000).unwrap();
    let hashes = (ua.password().unwrap(), ub.password().unwrap());

    let file = r.dir.path().join("export.jsonl");
    let out = r.ok(&["export", file.to_str().unwrap()], None);
    assert_eq!(out, format!("exported 2 accounts to {}\n", file.display()));
    let stdout = r.ok(&["export", "-"], None);
    assert_eq!(stdout, fs::read_to_string(&file).unwrap());
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["chatmail_admin_export"], 1);
    assert_eq!(lines[1]["addr"], a.as_str());
    assert_eq!(lines[1]["last_login"], 1_699_920_000);
    assert_eq!(lines[1]["metadata"]["devicetoken"]["tokA"], 1_700_000_000);

    // Purge: the whole mailboxes tree goes, then the import brings the accounts back.
    fs::remove_dir_all(&r.mail).unwrap();
    fs::create_dir(&r.mail).unwrap();
    assert_eq!(
        r.ok(&["import", file.to_str().unwrap()], None),
        "imported 2 accounts, 0 existed, 0 refused\n"
    );
    assert_eq!((ua.password().unwrap(), ub.password().unwrap()), hashes);
    assert!(verifies(
        &ua.password().unwrap().unwrap(),
        "export-secret-a"
    ));
    assert_eq!(ua.last_login(), Some(1_699_920_000));
    assert_eq!(
        fs::read_to_string(ua.metadata_path()).unwrap(),
        metadata.replace(": ", ":").replace(", ", ",")
    );
    assert!(!ua.incoming_cleartext_ok());
    assert!(
        ub.incoming_cleartext_ok(),
        "the E2EE flag is restored as it was"
    );
    assert!(ub.is_blocked());
    let state = Registry::new(&r.config()).state_dir().join("tmp");
    assert_eq!(
        fs::read_dir(&state).unwrap().count(),
        0,
        "no staging leftovers"
    );

    assert_eq!(
        r.ok(&["import", "-"], Some(&stdout)),
        "imported 0 accounts, 2 existed, 0 refused\n",
        "existing accounts are never replaced"
    );

    // A deleted (tombstoned) account is restored by the operator's import.
    r.ok(&["delete", &a], None);
    r.ok(&["import", "-"], Some(&stdout));
    assert_eq!(ua.password().unwrap(), hashes.0);
    assert!(!Registry::new(&r.config()).is_tombstoned(&a, now()));

    let header = stdout.lines().next().unwrap();
    let hostile = [
        r#"{"addr": "../../evil@example.org", "password": "{PLAIN}x"}"#,
        r#"{"addr": "evil0001@other.org", "password": "{PLAIN}x"}"#,
        r#"{"addr": "evil0002@example.org", "password": "no scheme"}"#,
        r#"{"addr": "evil0003@example.org", "password": "{PLAIN}x", "metadata": [1]}"#,
        r#"not json"#,
    ];
    let before = r.tree();
    let run = r.run(
        &["import"],
        Some(&format!("{header}\n{}\n", hostile.join("\n"))),
    );
    assert_eq!(run.code, 1);
    assert_eq!(run.out, "imported 0 accounts, 0 existed, 5 refused\n");
    assert_eq!(run.err.matches("import line").count(), 5, "{}", run.err);
    assert_eq!(r.tree(), before, "nothing written");
    assert_eq!(r.run(&["import"], Some("{}\n")).code, 1, "no header");
}

#[test]
fn interrupted_delete_leftovers_go_and_symlinks_are_refused() {
    let r = Relay::new();
    let a = addr("crashed01");
    r.ok(&["create", &a], Some("crashed-secret"));
    // A delete that crashed after its rename left the mailbox in trash/: the account is gone
    // (not listed, not exported) and the next delete removes the leftover.
    let registry = Registry::new(&r.config());
    let trash = registry.state_dir().join("trash");
    fs::create_dir_all(&trash).unwrap();
    let trash = trash.join("account.0123456789abcdef.tmp");
    fs::rename(r.user(&a).maildir(), &trash).unwrap();
    assert_eq!(r.ok(&["list", "--json"], None), "[]\n");
    let b = addr("deleted02");
    r.ok(&["create", &b], Some("deleted-secret"));
    r.ok(&["delete", &b], None);
    assert!(!trash.exists());

    // A symlink where a mailbox should be is not followed.
    let outside = r.dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let c = addr("symlinked");
    std::os::unix::fs::symlink(&outside, r.user(&c).maildir()).unwrap();
    for args in [&["create", &c][..], &["delete", &c]] {
        let run = r.run(args, Some("symlink-secret"));
        assert_eq!(run.code, 1, "{args:?}");
    }
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside"
    );
}
