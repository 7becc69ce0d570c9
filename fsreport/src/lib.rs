//! `chatmail-fsreport`: storage and account report of a chatmail relay (SPEC §8), as text
//! for an operator or as a Prometheus textfile for node-exporter.
//!
//! The mailbox scan is `chatmaild::maildir`'s, the one `chatmail-expire` uses, so both tools
//! read mailboxes identically (one walk, symlinks never followed, only the top-level password
//! counts).
#![forbid(unsafe_code)]

mod cli;
mod manual;
mod report;

/// What stops a run as a whole; the error type of every report tool's command line.
pub use chatmaild::cli::RunError as Error;

/// The manual of this package's binary.
pub const MANUALS: &[&chatmaild::manual::Page] = &[&manual::PAGE];

/// The `chatmail-fsreport` binary (every service library's binary calls its `main_entry`).
pub fn main_entry() -> std::process::ExitCode {
    cli::main(std::env::args_os().skip(1))
}
