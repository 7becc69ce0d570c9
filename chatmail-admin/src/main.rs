//! `chatmail-admin [--config INI] COMMAND ...`: the operator CLI of a chatmail relay.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    chatmail_admin::cli::main(std::env::args_os().skip(1))
}
