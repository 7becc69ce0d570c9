//! chatmail-render: the configuration of a local relay (Postfix, Dovecot 2.3 or 2.4, nginx)
//! rendered from the templates in `relay/` and its `chatmail.ini`, read with the services'
//! own parser ([`chatmaild::Config`]), so a default changed there reaches every server.
//!
//! Each fact has one place: the ini keys, their defaults and derived forms are
//! `chatmaild::config`'s; the daemons' sockets are `chatmaild::daemons`'; where a local relay
//! keeps its files is [`Layout`]; what differs between Dovecot series is [`Dovecot`]; which
//! template becomes which file, and with which values, is [`Relay`]. `scripts/relay` asks
//! the binary (`paths`, `daemons`, `ini`, `vars`, `render`) and the test harness calls the
//! library, so what the tests run is what the local relay runs.
#![forbid(unsafe_code)]

mod cli;
mod dovecot;
mod error;
mod ini;
mod layout;
mod manual;
mod relay;
mod template;

pub use cli::repo_templates;
pub use dovecot::{Auth, Dovecot};
pub use error::Error;
pub use layout::Layout;
pub use layout::path_of;
pub use relay::{Part, Relay, Rendered};

/// The manual of this package's binary.
pub const MANUALS: &[&chatmaild::manual::Page] = &[&manual::PAGE];

/// The `chatmail-render` binary (every service library's binary calls its `main_entry`).
pub fn main_entry() -> std::process::ExitCode {
    cli::main(std::env::args_os().skip(1))
}
