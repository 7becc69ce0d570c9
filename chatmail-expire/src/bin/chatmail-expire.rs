//! `chatmail-expire [CHATMAIL_INI] [--days N] [--maxnum N] [-v] [--remove]` (SPEC §7).
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    chatmail_expire::cli::expire_main(std::env::args_os().skip(1))
}
