//! `filtermail INI_PATH outgoing|incoming|transport`: the Postfix before-queue filters and
//! the transport to other relays (SPEC §6.1).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    filtermail::main_entry()
}
