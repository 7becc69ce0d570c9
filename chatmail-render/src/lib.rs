//! chatmail-render: the configuration of a local relay (Postfix, Dovecot 2.3 or 2.4, nginx)
//! rendered from the templates in `relay/` and its `chatmail.ini`, read with the services'
//! own parser ([`chatmaild::Config`]), so a default changed there reaches every server.
//!
//! Each fact has one place: the ini keys, their defaults and derived forms are
//! `chatmaild::config`'s; the daemons' sockets are `chatmaild::daemons`'; where a local relay
//! keeps its files is [`layout`]; what differs between Dovecot series is [`dovecot`]; which
//! template becomes which file, and with which values, is [`relay`]. `scripts/relay` asks
//! the binary (`paths`, `daemons`, `ini`, `vars`, `render`) and the test harness calls the
//! library, so what the tests run is what the local relay runs.
#![forbid(unsafe_code)]

pub mod cli;
pub mod dovecot;
pub mod error;
pub mod ini;
pub mod layout;
pub mod manual;
pub mod relay;
pub mod template;

pub use dovecot::{Auth, Dovecot};
pub use error::Error;
pub use layout::Layout;
pub use relay::{Part, Relay, Rendered};
