//! Reading the mailbox tree: the one walk that `chatmail-expire`, `chatmail-fsreport` and
//! `chatmail-admin` share (SPEC §7.2), and the worker pool that spreads it over the cores.
//!
//! It lives here rather than in one of those tools so that each reads a mailbox the same
//! way without depending on another's internals.

pub mod parallel;
pub mod scan;
