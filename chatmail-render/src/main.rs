//! `chatmail-render --state DIR --run DIR --socket-root DIR COMMAND`: a local relay's
//! configuration, for `scripts/relay`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    chatmail_render::main_entry()
}
