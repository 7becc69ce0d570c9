//! `filtermail INI_PATH outgoing|incoming|transport`: the Postfix before-queue filters and
//! the transport to other relays (SPEC §6.1).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use filtermail::Mode;
use filtermail::manual::PAGE;

fn main() -> ExitCode {
    // `args_os`: a non-UTF-8 path is still a path (and must not panic).
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let (ini, mode) = match args.as_slice() {
        [ini, mode] if mode == "outgoing" => (ini, Some(Mode::Outgoing)),
        [ini, mode] if mode == "incoming" => (ini, Some(Mode::Incoming)),
        [ini, mode] if mode == "transport" => (ini, None),
        [flag] if flag == "--help" || flag == "-h" => return PAGE.print_help(),
        _ => {
            eprintln!("{}", PAGE.usage);
            return ExitCode::FAILURE;
        }
    };
    chatmaild::service::init_tracing();
    // Multi-threaded (`chatmaild::service::runtime`): a relay's filter serves many sessions
    // on many cores. Measured against a current-thread runtime on 2 busy cores: about 10 %
    // more CPU per message (thread wake-ups), within the noise in throughput
    // (bench/BENCHMARKS.md).
    filtermail::daemon::main(std::path::Path::new(ini), mode)
}
