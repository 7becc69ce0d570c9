//! Test harness of the workspace: the workspace's binaries started on temporary sockets and
//! ports ([`support`]: free ports, configs, waiting, kill on drop), a fake DNS server
//! (`dns`, feature `dns`), Dovecot's dict requests ([`dict_client`]), and a real Dovecot on
//! loopback wired to them as a relay wires it.
//! Every package's tests use it.
#![forbid(unsafe_code)]
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test harness: failing loudly is the point"
)]

pub mod dict_client;
#[cfg(feature = "dns")]
pub mod dns;
pub mod dovecot;
pub mod dovecot_conf;
pub mod imap;
pub mod process;
pub mod relay_dovecot;
pub mod service;
pub mod support;

pub use dovecot::Dovecot;
pub use service::Service;
