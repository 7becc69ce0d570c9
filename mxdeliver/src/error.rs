//! The crate's error type: failures of our own side (setup, local I/O), never a reply to a peer.
//!
//! What the transport answers Postfix (delivered, deferred, bounced) is a [`crate::transport_reply::Reply`],
//! not an `Err`: a remote rejection is an ordinary outcome of a delivery.

/// Errors that stop the transport from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The system resolver configuration (`/etc/resolv.conf`) could not be read.
    #[error("DNS resolver configuration: {0}")]
    ResolverConfig(#[source] hickory_resolver::proto::ProtoError),
    /// No TLS trust anchor is available, so no remote certificate could ever be verified.
    #[error("no TLS trust anchors: the system certificate store is empty and none were configured")]
    NoTrustAnchors,
    /// The TLS client configuration could not be built.
    #[error("TLS configuration: {0}")]
    Tls(#[source] tokio_rustls::rustls::Error),
    /// The HTTPS client could not be built.
    #[error("HTTPS client: {0}")]
    Http(#[source] reqwest::Error),
    /// Accepting connections failed for a reason other than a transient resource shortage.
    #[error("accepting LMTP connections: {0}")]
    Accept(#[source] std::io::Error),
}
