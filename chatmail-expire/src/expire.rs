//! `chatmail-expire`: the per-mailbox rules of SPEC §7.3 and the run over all mailboxes.
//!
//! Each mailbox is scanned once and decided on its own (so mailboxes run in parallel,
//! see [`chatmaild::maildir::parallel`]); what it prints is collected in its [`Outcome`] and written in
//! listing order. A dry run (no `--remove`) decides and reports exactly what a real run
//! would remove, including the quota pass, but removes nothing.
//!
//! Everything is reached beneath the handle of `mailboxes_dir` ([`chatmaild::dir`]): a
//! message is unlinked in the folder it was scanned in, a mailbox is renamed away from the
//! handle it was listed in, and no link is ever followed.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use chatmaild::Config;
use chatmaild::dir::Dir;
use chatmaild::maildir::parallel::run_ordered;
use chatmaild::maildir::scan::{
    Folders, MailboxStat, MaildirSub, Message, Scan, ScanOptions, list_mailboxes, scan_mailbox,
};
use chatmaild::wall_time::month_day;

use crate::Error;
use crate::quota::{QuotaEntry, expire_to_target};
use crate::removal::{finish_interrupted_removals, remove_if_empty, remove_inactive};
pub use crate::summary::{Stopwatch, Summary};

/// Messages larger than this (bytes, on disk) expire after `delete_large_after` days.
pub const LARGE_MESSAGE_BYTES: u64 = 200_000;

/// The quota pass shrinks a mailbox to this fraction of `max_mailbox_size`.
pub const QUOTA_CLEANUP_FACTOR: f64 = 0.7;

const DAY: f64 = 86_400.0;

/// The decisions' parameters, fixed for one run.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Messages with an mtime before this are removed.
    pub cutoff_mails: f64,
    /// Large messages in `cur/` with an mtime before this are removed.
    pub cutoff_large: f64,
    /// Mailboxes whose last login is before this are removed.
    pub cutoff_inactive: f64,
    /// The quota pass target in bytes.
    pub quota_target: f64,
    /// The real current time, for the quota pass's 24-hour protection (as the reference,
    /// which does not shift it by `--days`).
    pub real_now: f64,
    /// Remove nothing, only count.
    pub dry_run: bool,
    /// Print every removal.
    pub verbose: bool,
    /// Where removed inactive accounts are tombstoned (`None` in a dry run), so their
    /// address cannot be taken over by the next first login.
    pub tombstones: Option<chatmaild::registry::Registry>,
}

impl Policy {
    /// The policy of `config` at time `now` (already shifted by `--days`).
    #[expect(
        clippy::cast_precision_loss,
        reason = "day counts and sizes from the config are far below 2^53"
    )]
    pub fn new(config: &Config, now: f64, real_now: f64, dry_run: bool, verbose: bool) -> Policy {
        Policy {
            cutoff_mails: now - config.delete_mails_after as f64 * DAY,
            cutoff_large: now - config.delete_large_after as f64 * DAY,
            cutoff_inactive: now - config.delete_inactive_users_after as f64 * DAY,
            quota_target: (config.max_mailbox_size_mb.saturating_mul(1024 * 1024)) as f64
                * QUOTA_CLEANUP_FACTOR,
            real_now,
            dry_run,
            verbose,
            tombstones: (!dry_run).then(|| chatmaild::registry::Registry::new(config)),
        }
    }

    /// The same policy with its tombstones written beneath `root`, the handle of
    /// `mailboxes_dir` the run works in.
    pub fn in_tree(mut self, root: Arc<Dir>) -> Policy {
        self.tombstones = self.tombstones.map(|r| r.in_tree(root));
        self
    }
}

/// The real current time in whole seconds, when a tombstone starts.
#[expect(
    clippy::cast_possible_truncation,
    reason = "Unix seconds of today fit an i64"
)]
pub(crate) fn now_secs(policy: &Policy) -> i64 {
    policy.real_now as i64
}

/// What processing one mailbox did, and what it prints on stderr.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Mailboxes seen (0 or 1).
    pub mailboxes: u64,
    /// Mailboxes removed (0 or 1).
    pub removed_mailboxes: u64,
    /// Messages of kept mailboxes.
    pub files: u64,
    /// Files removed (messages and `maildirsize`).
    pub removed_files: u64,
    /// Bytes of the messages removed, those of removed mailboxes included.
    pub removed_bytes: u64,
    /// Entries that could not be read or removed.
    pub failures: u64,
    /// Lines for stderr (each ends in a newline).
    pub log: String,
}

impl Outcome {
    pub(crate) fn line(&mut self, args: std::fmt::Arguments<'_>) {
        let _ = self.log.write_fmt(args);
        self.log.push('\n');
    }

    pub(crate) fn failure(&mut self, path: &Path, e: &std::io::Error) {
        self.failures += 1;
        self.line(format_args!("failed to remove {}: {e}", path.display()));
    }

    /// Removes one file as the reference's `remove_file` does: `-v` line, vanished files
    /// reported, and counted in either case. `unlink` removes it beneath its directory's
    /// handle and says whether it was there.
    fn remove_file(
        &mut self,
        policy: &Policy,
        path: &Path,
        unlink: impl FnOnce() -> std::io::Result<bool>,
        mtime_secs: Option<i64>,
        size: u64,
    ) {
        if policy.verbose {
            match mtime_secs {
                Some(t) => self.line(format_args!("removing {} {}", month_day(t), path.display())),
                None => self.line(format_args!("removing {}", path.display())),
            }
        }
        if !policy.dry_run {
            match unlink() {
                Ok(true) => {}
                Ok(false) => {
                    self.line(format_args!("file not found/vanished {}", path.display()));
                }
                Err(e) if chatmaild::maildir::scan::vanished(&e) => {
                    self.line(format_args!("file not found/vanished {}", path.display()));
                }
                Err(e) => return self.failure(path, &e),
            }
        }
        self.removed_files += 1;
        self.removed_bytes += size;
    }
}

/// Applies SPEC §7.3 to the mailbox `name` of `root` (the handle of `mailboxes_dir`).
pub fn process_mailbox(policy: &Policy, root: &Dir, name: &OsStr) -> Outcome {
    let mut out = Outcome {
        mailboxes: 1,
        ..Outcome::default()
    };
    match scan_mailbox(root, name, ScanOptions::default()) {
        Scan::Done(stat) => apply(policy, root, &stat),
        Scan::Vanished => out,
        Scan::Unreadable(e) => {
            out.failures += 1;
            out.line(format_args!(
                "skipping unreadable mailbox {}: {e}",
                root.join(name).display()
            ));
            out
        }
    }
}

/// Applies SPEC §7.3 steps 1–7 to a scanned mailbox of `root`.
pub fn apply(policy: &Policy, root: &Dir, stat: &MailboxStat) -> Outcome {
    let mut out = Outcome {
        mailboxes: 1,
        ..Outcome::default()
    };
    for problem in &stat.problems {
        out.failures += 1;
        out.line(format_args!("skipping unreadable entry {problem}"));
    }
    for warning in &stat.warnings {
        out.line(format_args!("skipping {warning}"));
    }
    match stat.last_login_f64() {
        None => remove_if_empty(policy, root, stat, &mut out),
        Some(last_login) if last_login < policy.cutoff_inactive => {
            remove_inactive(policy, root, stat, &mut out);
        }
        Some(_) => expire_messages(policy, stat, &mut out),
    }
    out
}

/// An active account: old and large messages go, then the quota pass.
fn expire_messages(policy: &Policy, stat: &MailboxStat, out: &mut Outcome) {
    let name = stat.name().to_string_lossy();
    if policy.verbose {
        let secs = stat.last_login.map_or(0, |(s, _)| s);
        out.line(format_args!("checking mailbox {} {name}", month_day(secs)));
    }
    out.files += stat.messages.len() as u64;
    let (doomed, quota_candidates, changed) = sort_messages(policy, &stat.messages);

    // `maildirsize` goes before the first message does: a crash in between leaves Dovecot
    // a quota file to recompute, never a stale one that no later run would remove (the
    // rerun finds nothing left to expire).
    let maildirsize = Maildirsize(stat);
    if changed {
        maildirsize.remove(policy, out);
    }
    let mut folders = Folders::default();
    for message in doomed {
        out.remove_file(
            policy,
            &message.path,
            || folders.unlink(&message.at, message.file_name()),
            Some(message.mtime_secs),
            message.size,
        );
    }
    let pass = QuotaRun {
        maildirsize: &maildirsize,
        maildirsize_gone: changed,
        folders: &mut folders,
    };
    quota_pass(policy, quota_candidates, pass, &name, out);
}

/// A mailbox's `maildirsize`, removed beneath the mailbox's handle.
struct Maildirsize<'a>(&'a MailboxStat);

impl Maildirsize<'_> {
    fn remove(&self, policy: &Policy, out: &mut Outcome) {
        let path = self.0.dir.join("maildirsize");
        let unlink = || match &self.0.handle {
            Some(dir) => dir.remove_file("maildirsize"),
            None => Ok(false),
        };
        out.remove_file(policy, &path, unlink, None, 0);
    }
}

/// The messages that expire now, those the quota pass may take, and whether anything
/// changed (which makes `maildirsize` stale).
fn sort_messages<'a>(
    policy: &Policy,
    messages: &'a [Message],
) -> (Vec<&'a Message>, Vec<QuotaEntry>, bool) {
    let mut changed = false;
    let mut doomed = Vec::new();
    let mut quota_candidates = Vec::new();
    for message in messages {
        let mtime = message.mtime();
        if mtime < policy.cutoff_mails {
            doomed.push(message);
            changed = true;
        } else if message.size > LARGE_MESSAGE_BYTES && mtime < policy.cutoff_large {
            // Only large mail the user has seen goes; unseen mail in new/ stays. As in the
            // reference, a match in new/ still counts as a change (maildirsize goes), so
            // the counts stay comparable; Dovecot just recomputes the file.
            if message.sub == MaildirSub::Cur {
                doomed.push(message);
            } else {
                quota_candidates.extend(quota_entry(message));
            }
            changed = true;
        } else {
            quota_candidates.extend(quota_entry(message));
        }
    }
    (doomed, quota_candidates, changed)
}

/// What the quota pass of one mailbox works with.
struct QuotaRun<'a, 'b> {
    maildirsize: &'a Maildirsize<'b>,
    /// Whether `maildirsize` went already.
    maildirsize_gone: bool,
    folders: &'a mut Folders,
}

/// Shrinks the mailbox to the quota target, oldest first; `maildirsize` goes before the
/// first removal unless it is gone already.
fn quota_pass(
    policy: &Policy,
    candidates: Vec<QuotaEntry>,
    mut run: QuotaRun<'_, '_>,
    name: &str,
    out: &mut Outcome,
) {
    let mut quota_bytes = 0;
    let removed = expire_to_target(candidates, policy.quota_target, policy.real_now, |e| {
        if !run.maildirsize_gone {
            run.maildirsize.remove(policy, out);
            run.maildirsize_gone = true;
        }
        if policy.dry_run {
            quota_bytes += e.parsed.size;
            return true;
        }
        match e.remove(run.folders) {
            Ok(()) => {
                quota_bytes += e.parsed.size;
                true
            }
            Err(err) => {
                out.failure(&e.path, &err);
                false
            }
        }
    });
    if removed > 0 {
        out.removed_files += removed;
        out.removed_bytes += quota_bytes;
        if policy.verbose {
            out.line(format_args!(
                "{} {removed} message(s) from {name}",
                crate::QUOTA_LOG_PREFIX
            ));
        }
    }
}

/// The message as a quota pass candidate, if it is directly in `<mailbox>/cur` or
/// `<mailbox>/new` and has a Dovecot name.
fn quota_entry(message: &Message) -> Option<QuotaEntry> {
    if message.top_level && message.sub != MaildirSub::Tmp {
        QuotaEntry::new(message.path.clone(), message.at.clone(), message.sub)
    } else {
        None
    }
}

/// Runs the expiry over `mailboxes_dir` (`root`, its handle; `None` if it does not exist),
/// printing `-v` lines and problems on `log`.
pub fn run(
    mailboxes_dir: &Path,
    root: Option<&Dir>,
    maxnum: Option<i64>,
    policy: &Policy,
    threads: usize,
    progress: bool,
    log: &mut (dyn std::io::Write + Send),
) -> Result<Summary, crate::Error> {
    let mut summary = Summary::default();
    let Some(root) = root else {
        let _ = writeln!(log, "no mailboxes found at: {}", mailboxes_dir.display());
        return Ok(summary);
    };
    let (mailboxes, skipped) = list_mailboxes(root, maxnum).map_err(Error::Scan)?;
    for path in skipped {
        let _ = writeln!(log, "skipping {}: not a directory", path.display());
    }
    if !policy.dry_run {
        for (path, error) in finish_interrupted_removals(root) {
            match error {
                None => {
                    let _ = writeln!(log, "removed {} left by an interrupted run", path.display());
                }
                Some(e) => {
                    summary.failures += 1;
                    let _ = writeln!(log, "failed to remove {}: {e}", path.display());
                }
            }
        }
    }
    let progress = progress && !policy.verbose;
    run_ordered(
        &mailboxes,
        threads,
        progress,
        |name| process_mailbox(policy, root, name),
        |out: Outcome| {
            if !out.log.is_empty() {
                let _ = log.write_all(out.log.as_bytes());
            }
            summary.mailboxes += out.mailboxes;
            summary.removed_mailboxes += out.removed_mailboxes;
            summary.files += out.files;
            summary.removed_files += out.removed_files;
            summary.removed_bytes += out.removed_bytes;
            summary.failures += out.failures;
        },
    );
    Ok(summary)
}
