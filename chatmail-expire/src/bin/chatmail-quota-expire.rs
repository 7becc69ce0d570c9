//! `chatmail-quota-expire TARGET_MB MAILBOX_PATH`, run by Dovecot's `quota_warning` (SPEC §7.5).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    chatmail_expire::quota_expire_entry()
}
