//! filtermail: the Postfix before-queue SMTP filter of a chatmail relay (SPEC §6).
//!
//! Outgoing mode checks what our users submit, incoming mode what other servers deliver:
//! cleartext is refused unless it is one of the few allowed exceptions, senders are rate
//! limited, incoming mail must carry an aligned DKIM signature, and accepted mail is
//! reinjected into Postfix unchanged.
//!
//! The layers are separate, and only this file says what is public. `policy`, `canonical`,
//! `mime` and `openpgp` are pure; `dkim` and `reinject` do the network work; [`Filter`]
//! chains them for one message; `server` is the SMTP listener (the shared connection
//! driver with filtermail's envelope rules from `smtp`) and `http` the `/mxdeliv` listener
//! of incoming mode; both check an incoming envelope against `local` (our domain, our
//! mailboxes). `daemon` holds the two life cycles: the filter and transport mode, which
//! runs the `mxdeliver` crate.
#![forbid(unsafe_code)]

mod budget;
mod canonical;
mod daemon;
mod dkim;
mod error;
mod filter;
mod filter_reply;
mod http;
mod local;
mod manual;
mod metrics;
mod mime;
mod openpgp;
mod policy;
mod ratelimit;
mod reinject;
mod server;
mod smtp;

pub use dkim::DkimVerifier;
pub use error::Error;
pub use filter::{Filter, memory_budget_bytes};
pub use filter_reply::{FilterReply, Reply};
pub use http::{IO_TIMEOUT as MXDELIV_IO_TIMEOUT, run as run_mxdeliv};
pub use metrics::default_socket as default_metrics_socket;
pub use policy::{Accepted, Envelope, MailParams, PolicyVerdict, check_incoming, check_outgoing};
pub use reinject::Reinjector;
pub use server::{run as run_smtp, run_with as run_smtp_with};
pub use smtp::Mode;

/// The manual of this package's binary.
pub const MANUALS: &[&chatmaild::manual::Page] = &[&manual::PAGE];

/// What the fuzz targets and this package's tests drive beneath the public list (feature
/// `internals`, never on in a service build).
#[cfg(feature = "internals")]
pub mod internals {
    /// The canonical grammar a message must have to pass.
    pub mod canonical {
        pub use crate::canonical::*;
    }
    /// The header reading the sender checks rely on.
    pub mod mime {
        pub use crate::mime::{from_address, from_ambiguity, parse_headers};
    }
    /// The OpenPGP packet checks of an encrypted payload.
    pub mod openpgp {
        pub use crate::openpgp::{
            PacketWalker, check_armored_payload, is_encrypted_packet_sequence,
        };
    }
    /// The envelope rules of the SMTP session and the DATA receiver.
    pub mod smtp {
        pub use crate::smtp::{DataEnd, DataReader, Envelopes};
    }
}

/// `host:port`, with brackets around an IPv6 literal.
fn host_port(host: &str, port: u16) -> String {
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
