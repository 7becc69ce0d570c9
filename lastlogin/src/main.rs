//! `lastlogin SOCKET_PATH INI_PATH`: Dovecot last_login dict service.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    lastlogin::main_entry()
}
