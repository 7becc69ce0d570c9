//! Mailbox housekeeping for a chatmail relay: `chatmail-expire` (daily expiry of old
//! messages, inactive accounts and over-quota mailboxes, SPEC §7) and
//! `chatmail-quota-expire` (called by Dovecot's `quota_warning`).
//!
//! The mailbox scan and the worker pool are `chatmaild::maildir`'s, shared with
//! `chatmail-fsreport` and `chatmail-admin`; the Dovecot file-name parser ([`dovecot`]) and
//! the quota pass ([`quota`]) are this tool's own.
//!
//! Everything is synchronous: a run is one pass over the tree, mailboxes spread over
//! all cores by `chatmaild::maildir::parallel`, with no async runtime.
#![forbid(unsafe_code)]

pub mod cli;
pub mod dovecot;
pub mod expire;
pub mod manual;
pub mod quota;
pub mod removal;
pub mod summary;

/// What stops a run as a whole; the error type of every report tool's command line.
pub use chatmaild::cli::RunError as Error;

/// Start of the line printed when the quota pass removed messages; mtail counts
/// `quota-expire: removed <n> message(s)` (SPEC §10.4).
pub const QUOTA_LOG_PREFIX: &str = "quota-expire: removed";
