//! The command line of `chatmail-quota-expire` (SPEC §7.5) and its `main` flow.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use chatmaild::cli::{Command, UsageError, parse_int};
use chatmaild::dir::{Dir, is_absent};
use chatmaild::maildir::scan::Folders;
use chatmaild::privileges::{Afterwards, Owner, as_owner};
use chatmaild::wall_time;

use crate::Error;
use crate::quota::{expire_to_target, list_entries};

/// Usage text of `chatmail-quota-expire`.
pub const QUOTA_USAGE: &str = "usage: chatmail-quota-expire TARGET_MB MAILBOX_PATH";

/// Exit status of `chatmail-quota-expire` on a bad command line (argparse's).
pub const QUOTA_EXIT_USAGE: u8 = 2;

/// Parsed `chatmail-quota-expire` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaArgs {
    /// Target size in MB (MiB).
    pub target_mb: i64,
    /// The mailbox directory.
    pub mailbox: PathBuf,
}

/// Parses the arguments of `chatmail-quota-expire` (without the program name). Written
/// by hand because a negative `TARGET_MB` is a positional value, not an option.
pub fn parse_quota_args(
    args: impl IntoIterator<Item = OsString>,
) -> Result<Command<QuotaArgs>, Error> {
    let mut positional = Vec::new();
    let mut options_done = false;
    for arg in args {
        let text = arg.to_string_lossy();
        if !options_done && text == "--" {
            options_done = true;
        } else if !options_done && (text == "-h" || text == "--help") {
            return Ok(Command::Help);
        } else if !options_done
            && text.starts_with('-')
            && text.len() > 1
            && text.trim().parse::<i64>().is_err()
        {
            return Err(Error::Usage(UsageError(format!(
                "unrecognized arguments: {text}"
            ))));
        } else {
            positional.push(arg);
        }
    }
    match positional.as_slice() {
        [target, mailbox] => {
            let target_mb = parse_int("target_mb", target)?
                .ok_or_else(|| UsageError("argument target_mb: invalid int value: ''".into()))?;
            Ok(Command::Run(QuotaArgs {
                target_mb,
                mailbox: PathBuf::from(mailbox),
            }))
        }
        [] | [_] => Err(Error::Usage(UsageError(
            "the following arguments are required: target_mb, mailbox_path".into(),
        ))),
        [_, _, extra @ ..] => Err(Error::Usage(UsageError(format!(
            "unrecognized arguments: {}",
            extra
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        )))),
    }
}

/// The whole `chatmail-quota-expire` program after argv.
pub fn quota_main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = match parse_quota_args(args) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => return crate::manual::QUOTA_EXPIRE.print_help(),
        Err(e) => {
            eprintln!("{QUOTA_USAGE}\nchatmail-quota-expire: error: {e}");
            return ExitCode::from(QUOTA_EXIT_USAGE);
        }
    };
    // `mailboxes_dir` (the mailbox's directory) is opened first, and everything below it is
    // done as its owner (Dovecot runs this as vmail already; run by hand as root, it
    // switches). The mailbox itself is never a link.
    let (parent, name) = match (args.mailbox.parent(), args.mailbox.file_name()) {
        (Some(parent), Some(name)) => (parent, name),
        _ => return ExitCode::SUCCESS,
    };
    let parent = if parent.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        parent
    };
    let root = match Dir::open_trusted(parent) {
        Ok(dir) => dir,
        Err(e) if is_absent(&e) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "chatmail-quota-expire: cannot read {}: {e}",
                parent.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let work = || match root.open_dir(name) {
        Ok(mailbox) => quota_pass(&args, &std::sync::Arc::new(mailbox)),
        Err(e) if is_absent(&e) => true,
        Err(e) => {
            let path = args.mailbox.display();
            eprintln!("chatmail-quota-expire: cannot read {path}: {e}");
            false
        }
    };
    match as_owner(Owner::of(&root), Afterwards::Nothing, work) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chatmail-quota-expire: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The quota pass of `chatmail-quota-expire` on its open mailbox; `false` if anything failed.
fn quota_pass(args: &QuotaArgs, mailbox: &std::sync::Arc<Dir>) -> bool {
    let (entries, problems) = list_entries(mailbox);
    let mut folders = Folders::default();
    let mut failed = !problems.is_empty();
    for problem in problems {
        eprintln!("chatmail-quota-expire: cannot read {problem}");
    }
    #[expect(
        clippy::cast_precision_loss,
        reason = "a size in bytes, far below 2^53"
    )]
    let target = args.target_mb.saturating_mul(1024 * 1024) as f64;
    let removed = expire_to_target(entries, target, wall_time::now(), |e| {
        match e.remove(&mut folders) {
            Ok(()) => true,
            Err(err) => {
                eprintln!(
                    "chatmail-quota-expire: failed to remove {}: {err}",
                    e.path.display()
                );
                failed = true;
                false
            }
        }
    });
    if removed > 0 {
        if let Err(e) = mailbox.remove_file("maildirsize") {
            eprintln!(
                "chatmail-quota-expire: failed to remove {}: {e}",
                mailbox.join("maildirsize").display()
            );
            failed = true;
        }
        let name = args
            .mailbox
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        eprintln!(
            "{} {removed} message(s) from {name}",
            crate::QUOTA_LOG_PREFIX
        );
    }
    !failed
}
