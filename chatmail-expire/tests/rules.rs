//! The per-mailbox rules of SPEC §7.3 at their exact boundaries, driven in process with a
//! fixed "now" (a black-box run cannot hit "exactly N days" with a moving clock).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    reason = "test helpers: failing loudly is the point"
)]

mod common;

use std::fs;
use std::path::Path;

use chatmail_expire::{Outcome, Policy, apply, process_mailbox};
use chatmaild::Config;
use chatmaild::dir::Dir;
use chatmaild::maildir::scan::{Scan, ScanOptions, scan_mailbox};
use common::*;

const NOW: f64 = 1_800_000_000.0;

fn policy(relay: &Relay, dry_run: bool) -> Policy {
    let config = Config::load(&relay.ini).unwrap();
    Policy::new(&config, NOW, NOW, dry_run, true)
}

/// The handle of the directory holding the mailbox `dir`, as a run opens `mailboxes_dir`.
fn root_of(dir: &Path) -> Dir {
    Dir::open(dir.parent().unwrap()).unwrap()
}

fn scan(dir: &Path) -> chatmaild::maildir::scan::MailboxStat {
    match scan_mailbox(
        &root_of(dir),
        dir.file_name().unwrap(),
        ScanOptions::default(),
    ) {
        Scan::Done(s) => s,
        other => panic!("{other:?}"),
    }
}

fn process(policy: &Policy, dir: &Path) -> Outcome {
    process_mailbox(policy, &root_of(dir), dir.file_name().unwrap())
}

fn account(relay: &Relay) -> std::path::PathBuf {
    relay.account_at("user@example.org", NOW - DAY)
}

#[test]
fn exactly_delete_mails_after_days_is_kept() {
    let relay = Relay::new();
    let mbox = account(&relay);
    let exact = write_file(&mbox.join("cur/exact"), 10, NOW - 20.0 * DAY);
    let older = write_file(&mbox.join("cur/older"), 10, NOW - 20.0 * DAY - 1.0);
    let out = process(&policy(&relay, false), &mbox);
    assert!(exact.exists());
    assert!(!older.exists());
    assert_eq!(
        (out.files, out.removed_files),
        (2, 2),
        "older + maildirsize"
    );
    assert!(
        out.log
            .contains(&format!("removing {}", mbox.join("maildirsize").display()))
    );
}

#[test]
fn large_messages_boundaries() {
    let relay = Relay::new();
    let mbox = account(&relay);
    let old = NOW - 7.0 * DAY - 1.0;
    let at_limit = write_file(&mbox.join("cur/at_limit"), 200_000, old);
    let over = write_file(&mbox.join("cur/over"), 200_001, old);
    let over_new = write_file(&mbox.join("new/over_new"), 200_001, old);
    let over_exact_age = write_file(&mbox.join("cur/over_exact"), 200_001, NOW - 7.0 * DAY);
    let nested = write_file(&mbox.join(".DeltaChat/cur/nested"), 200_001, old);
    let out = process(&policy(&relay, false), &mbox);
    assert!(at_limit.exists(), "200,000 bytes is not large");
    assert!(!over.exists(), "200,001 bytes in cur/ goes");
    assert!(over_new.exists(), "unseen large mail in new/ stays");
    assert!(
        over_exact_age.exists(),
        "exactly delete_large_after days is kept"
    );
    assert!(!nested.exists(), "subfolder cur/ counts");
    assert_eq!(out.files, 5);
    assert_eq!(out.removed_files, 3);
}

#[test]
fn tmp_messages_expire_by_age() {
    let relay = Relay::new();
    let mbox = account(&relay);
    let old_tmp = write_file(&mbox.join("tmp/old"), 10, NOW - 30.0 * DAY);
    let big_tmp = write_file(&mbox.join("tmp/big"), 300_000, NOW - 10.0 * DAY);
    process(&policy(&relay, false), &mbox);
    assert!(!old_tmp.exists());
    assert!(big_tmp.exists(), "large rule only for cur/");
}

#[test]
fn inactive_boundary_and_mtime_zero() {
    let relay = Relay::new();
    let exact = relay.account_at("exact@example.org", NOW - 90.0 * DAY);
    let older = relay.account_at("older@example.org", NOW - 90.0 * DAY - 1.0);
    let zero = relay.account_at("zero@example.org", 0.0);
    write_file(&older.join("cur/m"), 10, NOW);
    let p = policy(&relay, false);
    let out_exact = process(&p, &exact);
    let out_older = process(&p, &older);
    let out_zero = process(&p, &zero);
    assert!(exact.exists());
    assert!(!older.exists());
    assert!(!zero.exists(), "mtime 0 is a valid, very old login");
    assert_eq!(out_exact.removed_mailboxes, 0);
    assert_eq!(
        (out_older.removed_mailboxes, out_zero.removed_mailboxes),
        (1, 1)
    );
    assert_eq!(out_older.log, format!("removing {}\n", older.display()));
}

#[test]
fn password_in_subfolder_is_not_a_login() {
    let relay = Relay::new();
    let mbox = relay.mailbox("user@example.org");
    write_file(&mbox.join(".Folder/password"), 5, NOW - DAY);
    let stat = scan(&mbox);
    assert_eq!(stat.last_login, None);
    let out = apply(&policy(&relay, false), &root_of(&mbox), &stat);
    assert!(out.log.contains("doesn't have last_login but isn't empty"));
    assert!(mbox.exists());
}

#[test]
fn quota_pass_to_seventy_percent() {
    // 10 MB quota: target 7 MiB * 0.7... 10 * 1048576 * 0.7 = 7340032 bytes.
    let relay = Relay::with_params("max_mailbox_size = 10M\n");
    let mbox = account(&relay);
    let mb = 1_048_576;
    let mut paths = Vec::new();
    for i in 0..10u32 {
        let t = (NOW as u64) - 10 * 86_400 + u64::from(i) * 3600;
        let sub = if i % 2 == 0 { "cur" } else { "new" };
        paths.push(write_file(
            &mbox.join(sub).join(dovecot_name(t, mb, i)),
            100,
            NOW - DAY,
        ));
    }
    // Not in the quota set: no Dovecot name, and a subfolder message.
    write_file(&mbox.join("cur/plain"), 100, NOW - DAY);
    write_file(
        &mbox.join(".Sub/cur").join(dovecot_name(1, 5 * mb, 99)),
        100,
        NOW - DAY,
    );
    fs::write(mbox.join("maildirsize"), "x").unwrap();
    let out = process(&policy(&relay, false), &mbox);
    // 10 MiB > 7 MiB target: remove the 3 oldest (10 -> 7 MiB, 7 MiB <= 7340032).
    let gone: Vec<_> = paths.iter().filter(|p| !p.exists()).collect();
    assert_eq!(gone, paths.iter().take(3).collect::<Vec<_>>());
    assert_eq!(out.removed_files, 4, "3 messages + maildirsize");
    assert!(!mbox.join("maildirsize").exists());
    assert!(
        out.log
            .contains("quota-expire: removed 3 message(s) from user@example.org\n"),
        "{}",
        out.log
    );
}

#[test]
fn quota_pass_spares_last_24_hours() {
    let relay = Relay::with_params("max_mailbox_size = 1M\n");
    let mbox = account(&relay);
    let recent = (NOW as u64) - 3600;
    let p1 = write_file(
        &mbox.join("new").join(dovecot_name(recent, 5_000_000, 1)),
        10,
        NOW,
    );
    let old = (NOW as u64) - 2 * 86_400;
    let p2 = write_file(&mbox.join("cur").join(dovecot_name(old, 1, 2)), 10, NOW);
    let out = process(&policy(&relay, false), &mbox);
    assert!(!p2.exists(), "the old one goes first");
    assert!(
        p1.exists(),
        "the recent one stays although still over target"
    );
    assert!(out.log.contains("removed 1 message(s)"));
}

#[test]
fn quota_pass_skips_messages_already_expired() {
    // A message removed by the age rule must not be counted again by the quota pass,
    // in a dry run as in a real one.
    let relay = Relay::with_params("max_mailbox_size = 1M\n");
    let mbox = account(&relay);
    let t = (NOW as u64) - 30 * 86_400;
    write_file(
        &mbox.join("cur").join(dovecot_name(t, 900_000, 1)),
        10,
        NOW - 30.0 * DAY,
    );
    for dry in [true, false] {
        let out = process(&policy(&relay, dry), &mbox);
        assert_eq!(out.removed_files, 2, "dry={dry}: message + maildirsize");
        assert!(!out.log.contains("quota-expire"), "dry={dry}: {}", out.log);
    }
}

#[test]
fn dry_run_counts_without_touching() {
    let relay = Relay::with_params("max_mailbox_size = 1M\n");
    let mbox = account(&relay);
    write_file(&mbox.join("cur/old"), 10, NOW - 30.0 * DAY);
    let t = (NOW as u64) - 5 * 86_400;
    write_file(
        &mbox.join("cur").join(dovecot_name(t, 2_000_000, 1)),
        10,
        NOW,
    );
    let inactive = relay.account_at("gone@example.org", NOW - 100.0 * DAY);
    let empty = relay.mailbox("empty@example.org");
    let before = snapshot(&relay.mailboxes);
    let p = policy(&relay, true);
    let a = process(&p, &mbox);
    let b = process(&p, &inactive);
    let c = process(&p, &empty);
    assert_eq!(snapshot(&relay.mailboxes), before);
    assert_eq!(a.removed_files, 3, "old + quota + maildirsize");
    assert_eq!(b.removed_mailboxes, 1);
    assert_eq!(c.removed_mailboxes, 0, "empty dir not counted in a dry run");
    assert!(c.log.is_empty());
}

#[test]
fn vanished_file_is_reported_not_failed() {
    let relay = Relay::new();
    let mbox = account(&relay);
    let old = write_file(&mbox.join("cur/old"), 10, NOW - 30.0 * DAY);
    let stat = scan(&mbox);
    fs::remove_file(&old).unwrap();
    let out: Outcome = apply(&policy(&relay, false), &root_of(&stat.dir), &stat);
    assert!(
        out.log
            .contains(&format!("file not found/vanished {}", old.display())),
        "{}",
        out.log
    );
    assert_eq!(out.failures, 0);
    assert_eq!(out.removed_files, 2);
}

#[test]
fn vanished_mailbox_is_skipped() {
    let relay = Relay::new();
    let out = process(&policy(&relay, false), &relay.mailboxes.join("x@y"));
    assert_eq!(
        (out.mailboxes, out.failures, out.removed_mailboxes),
        (1, 0, 0)
    );
    assert!(out.log.is_empty());
}

#[test]
fn symlinks_are_never_followed() {
    let relay = Relay::new();
    let outside = relay.dir.path().join("outside");
    let victim = write_file(&outside.join("victim"), 10, NOW - 300.0 * DAY);
    write_file(&outside.join("password"), 10, NOW - 300.0 * DAY);
    let mbox = account(&relay);
    std::os::unix::fs::symlink(&outside, mbox.join("cur")).unwrap();
    std::os::unix::fs::symlink(&outside, mbox.join(".Folder")).unwrap();
    std::os::unix::fs::symlink(&victim, mbox.join("extra")).unwrap();
    fs::create_dir(mbox.join("new")).unwrap();
    std::os::unix::fs::symlink(&victim, mbox.join("new/link")).unwrap();
    let stat = scan(&mbox);
    assert!(stat.messages.is_empty(), "{:?}", stat.messages);
    assert_eq!(stat.extra_files, 1, "only the password");
    // A password that is a symlink is no login.
    let other = relay.mailbox("linked@example.org");
    std::os::unix::fs::symlink(outside.join("password"), other.join("password")).unwrap();
    assert_eq!(scan(&other).last_login, None);
    process(&policy(&relay, false), &mbox);
    process(&policy(&relay, false), &other);
    assert!(victim.exists());
    assert!(outside.join("password").exists());
}

#[test]
fn inactive_mailbox_removal_does_not_follow_symlinks() {
    let relay = Relay::new();
    let outside = relay.dir.path().join("outside");
    let victim = write_file(&outside.join("victim"), 10, NOW);
    let mbox = relay.account_at("old@example.org", NOW - 200.0 * DAY);
    std::os::unix::fs::symlink(&outside, mbox.join("cur")).unwrap();
    let out = process(&policy(&relay, false), &mbox);
    assert_eq!(out.removed_mailboxes, 1);
    assert!(!mbox.exists());
    assert!(victim.exists());
}

#[test]
fn unchanged_mailbox_keeps_maildirsize() {
    let relay = Relay::new();
    let mbox = account(&relay);
    write_file(&mbox.join("cur/fresh"), 10, NOW - DAY);
    fs::write(mbox.join("maildirsize"), "x").unwrap();
    let out = process(&policy(&relay, false), &mbox);
    assert!(mbox.join("maildirsize").exists());
    assert_eq!(out.removed_files, 0);
    assert_eq!(out.files, 1);
    assert!(out.log.starts_with("checking mailbox "), "{}", out.log);
    assert!(out.log.trim_end().ends_with(" user@example.org"));
}

#[test]
fn old_large_unseen_message_stays_but_counts_as_change() {
    // As in the reference: the large rule matching in new/ keeps the message but still
    // removes maildirsize (Dovecot recomputes it).
    let relay = Relay::new();
    let mbox = account(&relay);
    let unseen = write_file(&mbox.join("new/big"), 300_000, NOW - 8.0 * DAY);
    fs::write(mbox.join("maildirsize"), "x").unwrap();
    let out = process(&policy(&relay, false), &mbox);
    assert!(unseen.exists());
    assert!(!mbox.join("maildirsize").exists());
    assert_eq!(out.removed_files, 1);
}

#[test]
fn removed_inactive_account_is_tombstoned_and_a_dry_run_writes_none() {
    let relay = Relay::with_params("tombstone_days = 30\n");
    let gone = relay.account_at("gone@example.org", NOW - 100.0 * DAY);
    let kept = relay.account_at("kept@example.org", NOW - DAY);
    let config = Config::load(&relay.ini).unwrap();
    let registry = chatmaild::registry::Registry::new(&config);

    process(&policy(&relay, true), &gone);
    assert!(gone.exists());
    assert_eq!(registry.tombstone_until("gone@example.org").unwrap(), None);
    assert!(!registry.state_dir().exists(), "a dry run writes nothing");

    process(&policy(&relay, false), &gone);
    process(&policy(&relay, false), &kept);
    assert!(!gone.exists());
    assert_eq!(
        registry.tombstone_until("gone@example.org").unwrap(),
        Some(NOW as i64 + 30 * 86_400)
    );
    assert_eq!(registry.tombstone_until("kept@example.org").unwrap(), None);
    assert!(registry.is_tombstoned("gone@example.org", NOW as i64 + 29 * 86_400));
}

#[test]
fn removed_inactive_account_goes_through_the_trash() {
    let relay = Relay::new();
    let gone = relay.account_at("gone@example.org", NOW - 100.0 * DAY);
    write_file(&gone.join("cur/m"), 10, NOW);
    let out = process(&policy(&relay, false), &gone);
    assert_eq!(out.removed_mailboxes, 1);
    assert!(!gone.exists());
    let config = Config::load(&relay.ini).unwrap();
    let trash = chatmaild::registry::Registry::new(&config)
        .state_dir()
        .join("trash");
    assert_eq!(
        fs::read_dir(&trash).unwrap().count(),
        0,
        "removed from the trash too"
    );
}
