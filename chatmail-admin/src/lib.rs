//! chatmail-admin: accounts, blocking, registration mode, invitations, export and import of a
//! chatmail relay, safe while the services run.
//!
//! Every change takes the locks the services take (`<maildir>/password.lock`, the registry's
//! locks), writes atomically, and stays inside `mailboxes_dir` (plus `nocreate_file` for
//! `registration` and the file `export` is given). The work inside `mailboxes_dir` runs as
//! its owner and reaches every file beneath a directory handle, never through a link
//! ([`chatmaild::privileges`], [`chatmaild::dir`]). The account state itself is
//! [`chatmaild::registry`], shared with doveauth and chatmail-expire.
#![forbid(unsafe_code)]

mod account;
mod cli;
mod commands;
mod error;
mod manual;
mod progress;
mod relay;
mod transfer;

pub use error::Error;

/// The manual of this package's binary.
pub const MANUALS: &[&chatmaild::manual::Page] = &[&manual::PAGE];

/// The `chatmail-admin` binary (every service library's binary calls its `main_entry`).
pub fn main_entry() -> std::process::ExitCode {
    cli::main(std::env::args_os().skip(1))
}
