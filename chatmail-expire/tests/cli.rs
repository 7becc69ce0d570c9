//! Black-box tests of the `chatmail-expire` and `chatmail-quota-expire` binaries.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    reason = "test helpers: failing loudly is the point"
)]

mod common;

use std::ffi::OsStr;
use std::fs;

use common::*;

const EXPIRE: &str = env!("CARGO_BIN_EXE_chatmail-expire");
const QUOTA: &str = env!("CARGO_BIN_EXE_chatmail-quota-expire");

fn expire(args: &[&OsStr]) -> std::process::Output {
    run(EXPIRE, args)
}

fn summary_re(out: &str, mailboxes: (u64, u64), files: (u64, u64)) {
    let line = out.lines().last().unwrap_or_default();
    let want = format!(
        "Removed {} out of {} mailboxes and {} out of {} files in existing mailboxes in ",
        mailboxes.0, mailboxes.1, files.0, files.1
    );
    assert!(line.starts_with(&want), "{line:?} vs {want:?}");
    let secs = line
        .strip_prefix(&want)
        .unwrap()
        .strip_suffix(" seconds")
        .unwrap();
    let (whole, frac) = secs.split_once('.').unwrap();
    assert!(whole.parse::<u64>().is_ok() && frac.len() == 2, "{secs}");
}

/// A relay with one of everything the daily run decides on.
fn populated() -> (Relay, Vec<std::path::PathBuf>, Vec<std::path::PathBuf>) {
    let relay = Relay::new();
    let t = now();
    let active = relay.account("active@example.org", 1.0);
    fs::write(active.join("maildirsize"), "x").unwrap();
    let gone = vec![
        write_file(&active.join("cur/old1"), 1000, t - 21.0 * DAY),
        write_file(&active.join(".DeltaChat/new/old2"), 1000, t - 25.0 * DAY),
        write_file(&active.join("cur/large"), 300_000, t - 8.0 * DAY),
        active.join("maildirsize"),
        relay.account("inactive@example.org", 91.0),
        relay.mailbox("empty@example.org"),
    ];
    let kept = vec![
        write_file(&active.join("cur/recent"), 1000, t - 19.0 * DAY),
        write_file(&active.join("new/large_unseen"), 300_000, t - 8.0 * DAY),
        write_file(&active.join("cur/large_recent"), 300_000, t - 6.0 * DAY),
        write_file(&relay.mailbox("nopass@example.org").join("cur/x"), 5, t),
        write_file(
            &relay.mailboxes.join("pending_notifications/q"),
            5,
            t - 300.0 * DAY,
        ),
    ];
    (relay, gone, kept)
}

#[test]
fn dry_run_changes_nothing_and_counts_like_real_run() {
    let (relay, gone, kept) = populated();
    let before = snapshot(relay.dir.path());
    let dry = expire(&[relay.ini.as_os_str(), OsStr::new("-v")]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert_eq!(snapshot(relay.dir.path()), before);
    // 4 mailboxes, one inactive; the empty one is only removed in a real run.
    summary_re(&text(&dry.stdout), (1, 4), (4, 6));

    let real = expire(&[relay.ini.as_os_str(), OsStr::new("--remove")]);
    assert!(real.status.success(), "{}", text(&real.stderr));
    summary_re(&text(&real.stdout), (2, 4), (4, 6));
    for p in &gone {
        assert!(!p.exists(), "{} should be gone", p.display());
    }
    for p in &kept {
        assert!(p.exists(), "{} should stay", p.display());
    }
    let err = text(&real.stderr);
    assert!(err.contains(&format!(
        "Skipped deleting {}, doesn't have last_login but isn't empty",
        relay.mailboxes.join("nopass@example.org").display()
    )));
}

#[test]
fn textfile_has_the_figures_of_the_run() {
    let (relay, _gone, _kept) = populated();
    let dir = relay.dir.path().join("textfiles");
    fs::create_dir(&dir).unwrap();
    let dry = expire(&[
        relay.ini.as_os_str(),
        OsStr::new("--textfile"),
        dir.as_os_str(),
    ]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let prom = fs::read_to_string(dir.join("expire.prom")).unwrap();
    assert!(
        prom.contains("\nchatmail_expire_last_run_dry_run 1\n"),
        "{prom}"
    );
    let real = expire(&[
        relay.ini.as_os_str(),
        OsStr::new("--remove"),
        OsStr::new("--textfile"),
        dir.join("expire.prom").as_os_str(),
    ]);
    assert!(real.status.success(), "{}", text(&real.stderr));
    summary_re(&text(&real.stdout), (2, 4), (4, 6));
    let prom = fs::read_to_string(dir.join("expire.prom")).unwrap();
    for line in [
        "chatmail_expire_last_run_dry_run 0",
        "chatmail_expire_last_run_removed_accounts 2",
        "chatmail_expire_last_run_removed_files 4",
        // old1, old2 and large; maildirsize is not counted.
        "chatmail_expire_last_run_removed_bytes 302000",
        "chatmail_expire_last_run_failures 0",
    ] {
        assert!(prom.lines().any(|l| l == line), "{line} in {prom}");
    }
    assert!(prom.contains("# TYPE chatmail_expire_last_run_timestamp_seconds gauge\n"));
    let leftovers: Vec<_> = fs::read_dir(&dir).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "written atomically, no temp file left");
}

#[test]
fn verbose_lines() {
    let (relay, _, _) = populated();
    let out = expire(&[
        relay.ini.as_os_str(),
        OsStr::new("-v"),
        OsStr::new("--remove"),
    ]);
    let err = text(&out.stderr);
    let mbox = relay.mailboxes.join("active@example.org");
    let line_for = |suffix: &str| {
        err.lines()
            .find(|l| l.ends_with(suffix))
            .unwrap_or_else(|| panic!("no line for {suffix} in\n{err}"))
            .to_string()
    };
    let old1 = line_for(&format!("{}", mbox.join("cur/old1").display()));
    // "removing Mon DD /path"
    let date = old1.strip_prefix("removing ").unwrap();
    assert_eq!(date.as_bytes()[3], b' ');
    assert_eq!(&date[6..7], " ");
    let checking = line_for(" active@example.org");
    assert!(checking.starts_with("checking mailbox "), "{checking}");
    assert_eq!(
        checking.len(),
        "checking mailbox Jan 01 active@example.org".len()
    );
    assert_eq!(
        line_for("inactive@example.org"),
        format!(
            "removing {}",
            relay.mailboxes.join("inactive@example.org").display()
        )
    );
    assert_eq!(
        line_for("maildirsize"),
        format!("removing {}", mbox.join("maildirsize").display())
    );
    assert!(!err.contains("recent"));
    assert!(!err.contains("large_unseen"));
    // Summary only on stdout, -v lines only on stderr.
    assert_eq!(text(&out.stdout).lines().count(), 1);
}

#[test]
fn verbose_lines_follow_listing_order() {
    let relay = Relay::new();
    for i in 0..40 {
        let m = relay.account(&format!("u{i:02}@example.org"), 1.0);
        write_file(&m.join("cur/old"), 10, now() - 30.0 * DAY);
    }
    let listing: Vec<String> = fs::read_dir(&relay.mailboxes)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let out = expire(&[relay.ini.as_os_str(), OsStr::new("-v")]);
    let checked: Vec<String> = text(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("checking mailbox "))
        .map(|l| l[7..].to_string())
        .collect();
    assert_eq!(checked, listing);
}

#[test]
fn maxnum_takes_first_entries_of_listing() {
    let relay = Relay::new();
    for i in 0..5 {
        relay.account(&format!("u{i}@example.org"), 1.0);
    }
    relay.mailbox("not-a-mailbox");
    let listing: Vec<String> = fs::read_dir(&relay.mailboxes)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let want = listing.iter().take(3).filter(|n| n.contains('@')).count() as u64;
    let out = expire(&[
        relay.ini.as_os_str(),
        OsStr::new("--maxnum"),
        OsStr::new("3"),
    ]);
    summary_re(&text(&out.stdout), (0, want), (0, 0));
    let out = expire(&[relay.ini.as_os_str(), OsStr::new("--maxnum=0")]);
    summary_re(&text(&out.stdout), (0, 0), (0, 0));
}

#[test]
fn days_shifts_now_back() {
    let relay = Relay::new();
    let m = relay.account("u@example.org", 1.0);
    let f = write_file(&m.join("cur/m"), 10, now() - 15.0 * DAY);
    // With now 10 days earlier the message is 5 days old and the login in the future.
    let out = expire(&[
        relay.ini.as_os_str(),
        OsStr::new("--days"),
        OsStr::new("-10"),
        OsStr::new("--remove"),
    ]);
    assert!(out.status.success());
    assert!(!f.exists(), "--days -10 moves now forward: 25 days old");
    let g = write_file(&m.join("cur/n"), 10, now() - 25.0 * DAY);
    let out = expire(&[
        relay.ini.as_os_str(),
        OsStr::new("--days=10"),
        OsStr::new("--remove"),
    ]);
    assert!(out.status.success());
    assert!(g.exists(), "15 days old relative to the shifted now");
}

#[test]
fn missing_mailboxes_dir() {
    let relay = Relay::new();
    fs::remove_dir(&relay.mailboxes).unwrap();
    let out = expire(&[relay.ini.as_os_str()]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stderr),
        format!("no mailboxes found at: {}\n", relay.mailboxes.display())
    );
    summary_re(&text(&out.stdout), (0, 0), (0, 0));
}

#[test]
fn symlinked_mailbox_entry_is_not_a_mailbox() {
    let relay = Relay::new();
    let outside = relay.dir.path().join("elsewhere");
    write_file(&outside.join("password"), 5, now() - 400.0 * DAY);
    std::os::unix::fs::symlink(&outside, relay.mailboxes.join("evil@example.org")).unwrap();
    let out = expire(&[relay.ini.as_os_str(), OsStr::new("--remove")]);
    assert!(out.status.success());
    assert!(outside.join("password").exists());
    summary_re(&text(&out.stdout), (0, 0), (0, 0));
}

#[test]
fn usage_and_config_errors() {
    let relay = Relay::new();
    let cases: &[(&[&str], i32)] = &[
        (&["a.ini", "b.ini"], 64),
        (&["--days"], 64),
        (&["--days", "soon"], 64),
        (&["--frobnicate"], 64),
        (&["-x"], 64),
    ];
    for (args, code) in cases {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let out = expire(&args);
        assert_eq!(out.status.code(), Some(*code), "{args:?}");
        assert!(text(&out.stderr).contains("usage: chatmail-expire"));
        assert!(out.stdout.is_empty());
    }
    let missing = relay.dir.path().join("missing.ini");
    let out = expire(&[missing.as_os_str()]);
    assert_eq!(out.status.code(), Some(78));
    fs::write(
        &relay.ini,
        "[params]\nmail_domain = x\ndelete_mails_after = soon\n",
    )
    .unwrap();
    let out = expire(&[relay.ini.as_os_str()]);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out.stderr).contains("delete_mails_after"),
        "{}",
        text(&out.stderr)
    );
    let out = expire(&[OsStr::new("--help")]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn quota_expire_binary() {
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join("user@example.org");
    let t = now() as u64;
    let mb = 1_048_576;
    let old = write_file(
        &mbox
            .join("cur")
            .join(dovecot_name(t - 5 * 86_400, 2 * mb, 1)),
        10,
        0.0,
    );
    let older = write_file(
        &mbox.join("new").join(dovecot_name(t - 6 * 86_400, mb, 2)),
        10,
        0.0,
    );
    let fresh = write_file(
        &mbox.join("cur").join(dovecot_name(t - 600, 3 * mb, 3)),
        10,
        0.0,
    );
    fs::write(mbox.join("maildirsize"), "x").unwrap();
    let out = run(QUOTA, &[OsStr::new("4"), mbox.as_os_str()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stderr),
        "quota-expire: removed 2 message(s) from user@example.org\n"
    );
    assert!(!old.exists() && !older.exists() && fresh.exists());
    assert!(!mbox.join("maildirsize").exists());
    // Under target: nothing removed, nothing printed, maildirsize untouched.
    fs::write(mbox.join("maildirsize"), "x").unwrap();
    let out = run(QUOTA, &[OsStr::new("4"), mbox.as_os_str()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty());
    assert!(mbox.join("maildirsize").exists());
    // A mailbox that does not exist is fine.
    let out = run(
        QUOTA,
        &[OsStr::new("1"), dir.path().join("nope").as_os_str()],
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn quota_expire_usage_errors_exit_2() {
    for args in [
        &[][..],
        &["5"],
        &["five", "/x"],
        &["1", "/x", "/y"],
        &["--bogus", "1", "/x"],
    ] {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let out = run(QUOTA, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains("usage: chatmail-quota-expire"));
    }
}

/// Runs `bin` as user nobody when the tests run as root (root reads everything, so an
/// unreadable entry needs another user); `None` when that is not possible here.
fn run_as_nobody(bin: &str, args: &[&OsStr]) -> Option<std::process::Output> {
    let uid = std::process::Command::new("id").arg("-u").output().ok()?;
    if text(&uid.stdout).trim() != "0" || !std::path::Path::new("/usr/bin/setpriv").exists() {
        return None;
    }
    let out = std::process::Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", bin])
        .args(args)
        .output()
        .ok()?;
    Some(out)
}

#[test]
fn unreadable_entries_are_reported_and_skipped() {
    use std::os::unix::fs::PermissionsExt;
    let relay = Relay::new();
    fs::set_permissions(relay.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let ok = relay.account("ok@example.org", 1.0);
    write_file(&ok.join("cur/old"), 10, now() - 30.0 * DAY);
    let partly = relay.account("partly@example.org", 1.0);
    write_file(&partly.join("cur/old"), 10, now() - 30.0 * DAY);
    let secret = partly.join(".Secret");
    write_file(&secret.join("cur/old"), 10, now() - 30.0 * DAY);
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o700)).unwrap();
    let closed = relay.account("closed@example.org", 500.0);
    fs::set_permissions(&closed, fs::Permissions::from_mode(0o700)).unwrap();
    let Some(out) = run_as_nobody(EXPIRE, &[relay.ini.as_os_str(), OsStr::new("-v")]) else {
        eprintln!("not root or no setpriv: skipped");
        return;
    };
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("skipping unreadable entry {}: ", secret.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "skipping unreadable mailbox {}: ",
            closed.display()
        )),
        "{err}"
    );
    // The rest is still processed and summed: the unreadable mailbox is not judged.
    assert!(err.contains(&format!("removing {}", ok.join("maildirsize").display())));
    summary_re(&text(&out.stdout), (0, 3), (4, 2));
    assert!(closed.exists());
}

#[test]
fn directories_left_by_refused_first_logins_go_and_nothing_else() {
    let relay = Relay::new();
    let t = now();
    let lock_only = relay.mailbox("lockonly1@example.org");
    fs::write(lock_only.join("password.lock"), "").unwrap();
    // An interrupted creation: lock, temporary password, empty marker, empty folders.
    let interrupted = relay.mailbox("interrupt@example.org");
    for f in [
        "password.lock",
        "password.0123456789abcdef.tmp",
        "enforceE2EEincoming",
    ] {
        fs::write(interrupted.join(f), "").unwrap();
    }
    fs::create_dir_all(interrupted.join("tmp")).unwrap();
    let busy = relay.mailbox("busylogin@example.org");
    fs::write(busy.join("password.lock"), "").unwrap();
    let held = fs::File::open(busy.join("password.lock")).unwrap();
    held.lock().unwrap();
    let with_mail = relay.mailbox("withmail1@example.org");
    fs::write(with_mail.join("password.lock"), "").unwrap();
    write_file(&with_mail.join("cur/1.M1P1.host,S=1:2,S"), 1, t);
    let with_tokens = relay.mailbox("withtoken@example.org");
    fs::write(with_tokens.join("metadata.json"), "{}").unwrap();
    // A blocked account (its password moved aside) is an account, active or not.
    let blocked = relay.mailbox("blockedac@example.org");
    write_file(&blocked.join("blocked"), 20, t - DAY);
    let account = relay.account("account01@example.org", 1.0);
    fs::write(account.join("password.lock"), "").unwrap();

    let before = snapshot(&relay.mailboxes);
    let dry = expire(&[relay.ini.as_os_str(), OsStr::new("-v")]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert_eq!(
        snapshot(&relay.mailboxes),
        before,
        "a dry run removes nothing"
    );

    let out = expire(&[
        relay.ini.as_os_str(),
        OsStr::new("-v"),
        OsStr::new("--remove"),
    ]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!lock_only.exists(), "{err}");
    assert!(!interrupted.exists(), "{err}");
    assert!(
        err.contains(&format!(
            "removing {} (no password, only lock or temporary files)",
            lock_only.display()
        )),
        "{err}"
    );
    for kept in [&busy, &with_mail, &with_tokens, &blocked, &account] {
        assert!(kept.exists(), "{} removed: {err}", kept.display());
    }
    assert!(err.contains(&format!(
        "Skipped deleting {}, doesn't have last_login but isn't empty",
        with_mail.display()
    )));
    summary_re(&text(&out.stdout), (2, 7), (0, 0));
    drop(held);
}
