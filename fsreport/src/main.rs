//! `chatmail-fsreport [CHATMAIL_INI] [options]` (SPEC §8.1).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    chatmail_fsreport::main_entry()
}
