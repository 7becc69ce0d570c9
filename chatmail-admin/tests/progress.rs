//! `list`, `export` and `import` show their progress on stderr when it is a terminal (run
//! under a pseudo-terminal with util-linux's `script`), and nothing changes when it is not.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: failing loudly is the point"
)]

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chatmail_tests::support::write_ini;

const BIN: &str = env!("CARGO_BIN_EXE_chatmail-admin");
const ACCOUNTS: usize = 300;

/// A relay tree and an export of `ACCOUNTS` accounts to import into it.
fn relay() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("mail");
    fs::create_dir(&mail).unwrap();
    let ini = write_ini(
        dir.path(),
        "example.org",
        &format!(
            "mailboxes_dir = {}\nnocreate_file = {}\n",
            mail.display(),
            dir.path().join("nocreate").display()
        ),
    );
    let mut export =
        String::from("{\"chatmail_admin_export\": 1, \"mail_domain\": \"example.org\"}\n");
    for i in 0..ACCOUNTS {
        let _ = writeln!(
            export,
            "{{\"addr\": \"u{i:08}@example.org\", \"password\": \"{{SHA512-CRYPT}}$6$salt$hash\", \"enforce_e2ee\": true, \"last_login\": null, \"blocked\": false, \"metadata\": null}}"
        );
    }
    let file = dir.path().join("accounts.jsonl");
    fs::write(&file, export).unwrap();
    (dir, ini, file)
}

/// Runs chatmail-admin with stdin, stdout and stderr on a pseudo-terminal; returns all it
/// wrote there.
fn on_terminal(ini: &Path, args: &str) -> String {
    let cmd = format!("'{BIN}' --config '{}' {args}", ini.display());
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("script (util-linux) runs");
    assert!(out.status.success(), "{cmd}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn piped(ini: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(ini)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    out
}

#[test]
fn progress_on_a_terminal() {
    let (dir, ini, file) = relay();
    let text = on_terminal(&ini, &format!("import '{}'", file.display()));
    assert!(text.contains("\rimport: 1 accounts"), "{text:?}");
    assert!(
        text.contains(&format!("\rimport: {ACCOUNTS} accounts\r\x1b[K")),
        "{text:?}"
    );
    assert!(
        text.contains(&format!("imported {ACCOUNTS} accounts")),
        "{text:?}"
    );

    let text = on_terminal(&ini, "list");
    let done = format!("\rlist: {ACCOUNTS}/{ACCOUNTS} accounts\r\x1b[K");
    let at = text.find(&done).unwrap_or_else(|| panic!("{text:?}"));
    // The progress line is cleared before the listing starts.
    assert!(
        text[at + done.len()..].starts_with("u00000000@example.org\t"),
        "{text:?}"
    );

    let out = dir.path().join("again.jsonl");
    let text = on_terminal(&ini, &format!("export '{}'", out.display()));
    assert!(
        text.contains(&format!("\rexport: {ACCOUNTS}/{ACCOUNTS} accounts\r\x1b[K")),
        "{text:?}"
    );
    assert!(
        text.contains(&format!("exported {ACCOUNTS} accounts to")),
        "{text:?}"
    );

    // Exported to the terminal itself: no progress lines between the accounts.
    let text = on_terminal(&ini, "export");
    assert!(!text.contains("export: "), "{text:?}");
    assert!(text.contains("u00000299@example.org"), "{text:?}");
}

#[test]
fn nothing_but_the_output_when_not_a_terminal() {
    let (dir, ini, file) = relay();
    let out = piped(&ini, &["import", file.to_str().unwrap()]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("imported {ACCOUNTS} accounts, 0 existed, 0 refused\n")
    );
    assert!(out.stderr.is_empty(), "{out:?}");
    let out = piped(&ini, &["list"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        ACCOUNTS
    );
    assert!(out.stderr.is_empty(), "{out:?}");
    let again = dir.path().join("again.jsonl");
    let out = piped(&ini, &["export", again.to_str().unwrap()]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("exported {ACCOUNTS} accounts to {}\n", again.display())
    );
    assert!(out.stderr.is_empty(), "{out:?}");
    let out = piped(&ini, &["export"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        ACCOUNTS + 1
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("exported {ACCOUNTS} accounts\n")
    );
}
