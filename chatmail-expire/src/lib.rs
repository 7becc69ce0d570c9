//! Mailbox housekeeping for a chatmail relay: `chatmail-expire` (daily expiry of old
//! messages, inactive accounts and over-quota mailboxes, SPEC §7) and
//! `chatmail-quota-expire` (called by Dovecot's `quota_warning`).
//!
//! The mailbox scan ([`scan`]), the Dovecot file-name parser ([`dovecot`]) and the quota
//! pass ([`quota`]) are public so that `chatmail-fsreport` reads mailboxes exactly the same
//! way; it depends on this library rather than duplicating the walk.
//!
//! Everything is synchronous: a run is one pass over the tree, mailboxes spread over
//! all cores by [`parallel`], with no async runtime.
#![forbid(unsafe_code)]

pub mod cli;
pub mod clock;
pub mod dovecot;
pub mod error;
pub mod expire;
pub mod parallel;
pub mod quota;
pub mod scan;

pub use error::Error;

/// Start of the line printed when the quota pass removed messages; mtail counts
/// `quota-expire: removed <n> message(s)` (SPEC §10.4).
pub const QUOTA_LOG_PREFIX: &str = "quota-expire: removed";
