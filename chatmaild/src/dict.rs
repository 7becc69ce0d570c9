//! The Dovecot dict protocol (SPEC §2), as spoken by Dovecot's `proxy:` dict client.
//!
//! Three layers: [`proto`] parses and encodes without I/O, [`codec`] frames lines with a
//! length limit, [`server`] serves a unix socket with per-connection transactions and
//! hands each request to a service's [`server::DictHandler`].

pub mod codec;
pub mod proto;
pub mod server;

pub use proto::{Lookup, ProtoError, Request};
pub use server::{DictHandler, serve};
