//! `chatmail-metadata SOCKET_PATH INI_PATH`: the IMAP METADATA dict service.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    chatmail_metadata::main_entry()
}
