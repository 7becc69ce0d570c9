//! `chatmail-exporter [INI] [options]`: the relay's Prometheus endpoint.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    chatmail_exporter::main_entry()
}
