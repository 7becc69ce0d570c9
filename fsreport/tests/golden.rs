//! Black-box tests of `chatmail-fsreport` against golden files.
//!
//! The tree built by [`build_tree`] is fixed except for times, which are relative to
//! "now" with half-day margins so every bucket is stable. The golden files hold the exact
//! output; only the reference date in the summary (the current time) is masked. A failed
//! comparison writes the actual output next to the golden file as `<name>.actual`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test helpers: failing loudly is the point"
)]

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_chatmail-fsreport");
const DAY: f64 = 86_400.0;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn file(path: &Path, size: usize, mtime: f64) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, vec![b'x'; size]).unwrap();
    let when = UNIX_EPOCH + Duration::from_secs_f64(mtime);
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_modified(when).unwrap();
}

/// The fixed test relay under `root/mail`, with `root/chatmail.ini`.
fn build_tree(root: &Path) -> PathBuf {
    let mail = root.join("mail");
    fs::create_dir_all(&mail).unwrap();
    let t = now();
    let login = |name: &str, days: f64| file(&mail.join(name).join("password"), 20, t - days * DAY);
    let msg = |rel: &str, size: usize| file(&mail.join(rel), size, t - 3.0 * DAY);

    login("alice@example.org", 0.5);
    msg("alice@example.org/cur/1.a,S=500", 500);
    msg("alice@example.org/cur/2.a,S=150000", 150_000);
    msg("alice@example.org/cur/3.a,S=600000", 600_000);
    msg("alice@example.org/new/4.a,S=2500000", 2_500_000);
    msg("alice@example.org/tmp/5.a", 1000);
    msg(
        "alice@example.org/.DeltaChat/cur/6.a,S=11000000",
        11_000_000,
    );
    msg("alice@example.org/maildirsize", 30);
    msg("alice@example.org/dovecot.index", 4000);

    login("bob@example.org", 35.5);
    msg("bob@example.org/cur/7.b", 1_100_000);
    msg("bob@example.org/new/8.b", 100);

    login("ci-abc@example.org", 2.5);
    msg("ci-abc@example.org/cur/9.c", 5_300_000);

    login("carol@example.org", 120.5);
    msg("carol@example.org/cur/10.d", 102_400);
    msg("carol@example.org/cur/11.d", 524_288);
    msg("carol@example.org/.Archive/new/12.d", 2_097_152);

    msg("dave@example.org/cur/13.e", 777);
    msg("dave@example.org/foo", 10);

    login("eve@example.org", 200.5);
    msg("pending_notifications/abc", 55);

    let ini = root.join("chatmail.ini");
    fs::write(
        &ini,
        format!(
            "[params]\nmail_domain = example.org\nmailboxes_dir = {}\n",
            mail.display()
        ),
    )
    .unwrap();
    ini
}

fn fsreport(args: &[&OsStr]) -> Output {
    std::process::Command::new(BIN).args(args).output().unwrap()
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let expected = fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        fs::write(path.with_extension("actual"), actual).unwrap();
        panic!("{name} differs from golden file; actual output written next to it:\n{actual}");
    }
}

fn mask_date(summary: &str) -> String {
    summary
        .lines()
        .map(|l| match l.split_once("from date reference ") {
            Some((head, _)) => format!("{head}from date reference <DATE>\n"),
            None => format!("{l}\n"),
        })
        .collect()
}

#[test]
fn summary_default() {
    let dir = tempfile::tempdir().unwrap();
    let ini = build_tree(dir.path());
    let out = fsreport(&[ini.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let date_line = stdout
        .lines()
        .find(|l| l.contains("date reference"))
        .unwrap();
    let date = date_line.rsplit_once("reference ").unwrap().1;
    assert!(date.len() == 19 || date.len() == 26, "{date}");
    golden("summary.txt", &mask_date(&stdout));
}

#[test]
fn summary_mdir_and_min_login_age() {
    let dir = tempfile::tempdir().unwrap();
    let ini = build_tree(dir.path());
    let out = fsreport(&[
        ini.as_os_str(),
        OsStr::new("--min-login-age"),
        OsStr::new("3"),
        OsStr::new("--mdir"),
        OsStr::new("cur"),
    ]);
    assert!(out.status.success());
    golden(
        "summary-cur-min-age-3.txt",
        &mask_date(&String::from_utf8(out.stdout).unwrap()),
    );
}

#[test]
fn textfile_into_directory_is_atomic_0644() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ini = build_tree(dir.path());
    let out_dir = dir.path().join("node-exporter");
    fs::create_dir(&out_dir).unwrap();
    let out = fsreport(&[
        ini.as_os_str(),
        OsStr::new("--textfile"),
        out_dir.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "no summary with --textfile");
    let prom = out_dir.join("fsreport.prom");
    golden("fsreport.prom", &fs::read_to_string(&prom).unwrap());
    assert_eq!(
        fs::metadata(&prom).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let names: Vec<_> = fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["fsreport.prom"], "no temporary file left behind");
}

#[test]
fn textfile_and_legacy_metrics_files() {
    let dir = tempfile::tempdir().unwrap();
    let ini = build_tree(dir.path());
    let prom = dir.path().join("custom.prom");
    let legacy = dir.path().join("metrics");
    fs::write(&prom, "old content").unwrap();
    let out = fsreport(&[
        ini.as_os_str(),
        OsStr::new("--days"),
        OsStr::new("30"),
        OsStr::new("--textfile"),
        prom.as_os_str(),
        OsStr::new("--legacy-metrics"),
        legacy.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    golden("fsreport-days-30.prom", &fs::read_to_string(&prom).unwrap());
    golden("legacy-metrics", &fs::read_to_string(&legacy).unwrap());
}

#[test]
fn empty_relay() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("chatmail.ini");
    let mail = dir.path().join("mail");
    fs::create_dir(&mail).unwrap();
    fs::write(
        &ini,
        format!(
            "[params]\nmail_domain = x.org\nmailboxes_dir = {}\n",
            mail.display()
        ),
    )
    .unwrap();
    let out = fsreport(&[ini.as_os_str()]);
    assert!(out.status.success());
    golden(
        "summary-empty.txt",
        &mask_date(&String::from_utf8(out.stdout).unwrap()),
    );
    fs::remove_dir(&mail).unwrap();
    let out = fsreport(&[ini.as_os_str()]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!("no mailboxes found at: {}\n", mail.display())
    );
}

#[test]
fn symlinks_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let ini = build_tree(dir.path());
    let outside = dir.path().join("outside");
    file(&outside.join("cur/big"), 3_000_000, now());
    file(&outside.join("password"), 20, now());
    let alice = dir.path().join("mail/alice@example.org");
    std::os::unix::fs::symlink(outside.join("cur"), alice.join(".Linked")).unwrap();
    std::os::unix::fs::symlink(outside.join("password"), alice.join("extra-link")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.path().join("mail/zed@example.org")).unwrap();
    let out = fsreport(&[ini.as_os_str()]);
    assert!(out.status.success());
    golden(
        "summary.txt",
        &mask_date(&String::from_utf8(out.stdout).unwrap()),
    );
}

#[test]
fn usage_and_config_errors() {
    for (args, code) in [
        (&["--days"][..], 64),
        (&["--bogus"], 64),
        (&["a", "b"], 64),
        (&["--days", "x"], 64),
        (&["/nonexistent/chatmail.ini"], 78),
    ] {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let out = fsreport(&args);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn unreadable_entries_fail_the_run_but_not_the_report() {
    use std::os::unix::fs::PermissionsExt;
    let uid = std::process::Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" || !Path::new("/usr/bin/setpriv").exists()
    {
        eprintln!("not root or no setpriv: skipped (root reads everything)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let ini = build_tree(dir.path());
    let secret = dir.path().join("mail/bob@example.org/.Secret");
    file(&secret.join("cur/x"), 10, now());
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o700)).unwrap();
    let out = std::process::Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .arg(&ini)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("skipping unreadable entry {}: ", secret.display())),
        "{err}"
    );
    golden(
        "summary.txt",
        &mask_date(&String::from_utf8(out.stdout).unwrap()),
    );
}
