//! `chatmail-fsreport [CHATMAIL_INI] [options]` (SPEC §8.1).
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    chatmail_fsreport::cli::main(std::env::args_os().skip(1))
}
