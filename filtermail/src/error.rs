//! The error type of filtermail: what failed on our side (never a rejection, which is a
//! [`crate::filter_reply::Reply`]).

/// Start-up and serving failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `chatmail.ini` could not be read or has a bad value.
    #[error(transparent)]
    Config(#[from] chatmaild::Error),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from the config.
        addr: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The DNS resolver for DKIM could not be set up.
    #[error("DKIM resolver: {0}")]
    Resolver(hickory_resolver::proto::ProtoError),
    /// An invalid environment setting.
    #[error("environment variable {name}: {reason}")]
    Env {
        /// The variable.
        name: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// Accepting connections failed for good.
    #[error("accept: {0}")]
    Accept(std::io::Error),
    /// Transport mode (delivery to other relays) could not start or failed for good.
    #[error("transport: {0}")]
    Transport(#[from] mxdeliver::Error),
}
