//! `chatmail-quota-expire TARGET_MB MAILBOX_PATH`, run by Dovecot's `quota_warning` (SPEC §7.5).
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    chatmail_expire::cli::quota_main(std::env::args_os().skip(1))
}
