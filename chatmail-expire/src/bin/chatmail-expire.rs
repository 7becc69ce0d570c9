//! `chatmail-expire [CHATMAIL_INI] [--days N] [--maxnum N] [-v] [--remove]` (SPEC §7).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    chatmail_expire::main_entry()
}
