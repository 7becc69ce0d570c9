//! `doveauth INI_PATH`: HTTP `/create` for Dovecot's Lua passdb (Dovecot 2.4, and 2.3.19+).
//! `doveauth SOCKET_PATH INI_PATH`: Dovecot passdb/userdb dict service (Dovecot 2.3).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    doveauth::main_entry()
}
