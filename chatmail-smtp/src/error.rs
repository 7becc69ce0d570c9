//! The crate's error: why a client connection failed. Texts name the step, so a transport
//! can pass them on in its own replies.

use std::io;

/// A connection-level failure of the client (a server's refusal is a reply, not an error).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No address to connect to.
    #[error("no address")]
    NoAddress,
    /// Connecting failed.
    #[error("connect: {0}")]
    Connect(io::Error),
    /// A connection attempt's task failed.
    #[error("connect task: {0}")]
    ConnectTask(#[from] tokio::task::JoinError),
    /// Connecting took too long.
    #[error("connect timed out")]
    ConnectTimeout,
    /// Setting a socket option failed.
    #[error("socket: {0}")]
    Socket(io::Error),
    /// Reading failed.
    #[error("read: {0}")]
    Read(io::Error),
    /// Writing failed.
    #[error("write: {0}")]
    Write(io::Error),
    /// Writing took too long.
    #[error("write timed out")]
    WriteTimeout,
    /// No (complete) reply in time.
    #[error("timeout waiting for reply")]
    ReplyTimeout,
    /// The server closed the connection before its reply was complete.
    #[error("connection closed by server")]
    Closed,
    /// A reply line that is not `<code>[ -]<text>`; its first 100 bytes.
    #[error("malformed reply line: {}", String::from_utf8_lossy(.0))]
    Malformed(Vec<u8>),
    /// More lines than [`crate::reply::MAX_REPLY_LINES`].
    #[error("reply has too many lines")]
    TooManyLines,
    /// A reply line longer than [`crate::reply::MAX_REPLY_LINE`].
    #[error("reply too long")]
    TooLong,
    /// Bytes after the `220` to STARTTLS: RFC 3207 §5, they could be injected by an attacker.
    #[error("data after STARTTLS reply")]
    DataAfterStartTls,
    /// The host name is no valid TLS server name.
    #[error("TLS server name: {0}")]
    TlsName(#[from] tokio_rustls::rustls::pki_types::InvalidDnsNameError),
    /// The TLS handshake took too long.
    #[error("TLS handshake timed out")]
    TlsTimeout,
    /// The TLS handshake failed.
    #[error("TLS: {0}")]
    Tls(io::Error),
}
