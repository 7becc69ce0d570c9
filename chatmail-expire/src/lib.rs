//! Mailbox housekeeping for a chatmail relay: `chatmail-expire` (daily expiry of old
//! messages, inactive accounts and over-quota mailboxes, SPEC §7) and
//! `chatmail-quota-expire` (called by Dovecot's `quota_warning`).
//!
//! The mailbox scan and the worker pool are `chatmaild::maildir`'s, shared with
//! `chatmail-fsreport` and `chatmail-admin`; the Dovecot file-name parser (`dovecot`) and
//! the quota pass (`quota`) are this tool's own.
//!
//! Everything is synchronous: a run is one pass over the tree, mailboxes spread over
//! all cores by `chatmaild::maildir::parallel`, with no async runtime.
#![forbid(unsafe_code)]

mod cli;
mod dovecot;
mod expire;
mod manual;
mod quota;
mod removal;
mod summary;

/// What stops a run as a whole; the error type of every report tool's command line.
pub use chatmaild::cli::RunError as Error;
pub use expire::{Outcome, Policy, apply, process_mailbox};

/// The manuals of this package's binaries (`chatmail-expire`, `chatmail-quota-expire`).
pub const MANUALS: &[&chatmaild::manual::Page] = &[&manual::EXPIRE, &manual::QUOTA_EXPIRE];

/// The `chatmail-expire` binary (every service library's binary calls its `main_entry`).
pub fn main_entry() -> std::process::ExitCode {
    cli::expire_main(std::env::args_os().skip(1))
}

/// The `chatmail-quota-expire` binary, which Dovecot's `quota_warning` runs.
pub fn quota_expire_entry() -> std::process::ExitCode {
    cli::quota_main(std::env::args_os().skip(1))
}

/// What the fuzz targets drive beneath the public list (feature `internals`, never on in
/// a tool build).
#[cfg(feature = "internals")]
pub mod internals {
    pub use crate::dovecot::parse_name;
}

/// Start of the line printed when the quota pass removed messages; mtail counts
/// `quota-expire: removed <n> message(s)` (SPEC §10.4).
const QUOTA_LOG_PREFIX: &str = "quota-expire: removed";
