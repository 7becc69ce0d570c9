//! `chatmail-render --state DIR --run DIR --socket-root DIR COMMAND`: a local relay's
//! configuration, for `scripts/relay`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    chatmail_render::cli::main(std::env::args_os().skip(1))
}
