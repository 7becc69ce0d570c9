//! `chatmail-admin [--config INI] COMMAND ...`: the operator CLI of a chatmail relay.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    chatmail_admin::main_entry()
}
