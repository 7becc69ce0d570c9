//! filtermail: the Postfix before-queue SMTP filter of a chatmail relay (SPEC §6).
//!
//! Outgoing mode checks what our users submit, incoming mode what other servers deliver:
//! cleartext is refused unless it is one of the few allowed exceptions, senders are rate
//! limited, incoming mail must carry an aligned DKIM signature, and accepted mail is
//! reinjected into Postfix unchanged.
//!
//! The layers are separate so other front ends can reuse them: [`policy`], [`canonical`], [`mime`] and
//! [`openpgp`] are pure; [`dkim`] and [`reinject`] do the network work; [`Filter`]
//! ([`filter`]) chains them for one message; [`server`] is the SMTP listener (the shared
//! connection driver with filtermail's envelope rules from [`smtp`]) and [`http`] the `/mxdeliv` listener of incoming
//! mode; both check an incoming envelope against [`local`] (our domain, our mailboxes). [`daemon`] holds the two life cycles: the filter and transport mode, which runs the
//! `mxdeliver` crate.
#![forbid(unsafe_code)]

pub mod budget;
pub mod canonical;
pub mod daemon;
pub mod dkim;
pub mod error;
pub mod filter;
pub mod filter_reply;
pub mod http;
pub mod local;
pub mod manual;
pub mod metrics;
pub mod mime;
pub mod openpgp;
pub mod policy;
pub mod ratelimit;
pub mod reinject;
pub mod server;
pub mod smtp;

pub use error::Error;
pub use filter::{Filter, memory_budget_bytes};
pub use filter_reply::{FilterReply, Reply};
pub use policy::{Envelope, MailParams, PolicyVerdict, check_incoming, check_outgoing};
pub use smtp::Mode;

/// `host:port`, with brackets around an IPv6 literal.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The `filtermail INI_PATH outgoing|incoming|transport` binary: the Postfix before-queue
/// filters and the transport to other relays (SPEC §6.1). Every service library's binary
/// calls its `main_entry`.
pub fn main_entry() -> std::process::ExitCode {
    use std::process::ExitCode;
    // `args_os`: a non-UTF-8 path is still a path (and must not panic).
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let (ini, mode) = match args.as_slice() {
        [ini, mode] if mode == "outgoing" => (ini, Some(Mode::Outgoing)),
        [ini, mode] if mode == "incoming" => (ini, Some(Mode::Incoming)),
        [ini, mode] if mode == "transport" => (ini, None),
        [flag] if flag == "--help" || flag == "-h" => return manual::PAGE.print_help(),
        _ => {
            eprintln!("{}", manual::PAGE.usage);
            return ExitCode::FAILURE;
        }
    };
    chatmaild::service::init_tracing();
    // Multi-threaded (`chatmaild::service::runtime`): a relay's filter serves many sessions
    // on many cores. Measured against a current-thread runtime on 2 busy cores: about 10 %
    // more CPU per message (thread wake-ups), within the noise in throughput
    // (bench/BENCHMARKS.md).
    daemon::main(std::path::Path::new(ini), mode)
}
