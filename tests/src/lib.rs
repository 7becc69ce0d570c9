//! Test harness for cross-service scenarios: the workspace's binaries started on
//! temporary sockets, and a real Dovecot on loopback wired to them as a relay wires it.
#![forbid(unsafe_code)]
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test harness: failing loudly is the point"
)]

pub mod dovecot;
pub mod imap;
pub mod process;
pub mod relay_dovecot;
pub mod service;

pub use dovecot::Dovecot;
pub use service::Service;
