//! The error type of chatmail-metadata.

use std::path::PathBuf;

/// What failed on our side. Replies to Dovecot (`N`, `F`) are not errors; an `Err` is
/// logged and turned into a failure reply for that one request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A shared-library operation (files, locks, config, address validation) failed.
    #[error(transparent)]
    Chatmaild(#[from] chatmaild::Error),
    /// The mailboxes directory is missing (SPEC §5.1: the service refuses to start).
    #[error("vmail dir does not exist: {0}")]
    NoMailboxesDir(PathBuf),
    /// The HTTP client for notifications could not be built (e.g. no usable CA store).
    #[error("cannot set up the notification HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// The TURN credentials socket failed or timed out.
    #[error("TURN socket {path}: {reason}")]
    Turn {
        /// The socket path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// `CHATMAIL_METADATA_TIME_SCALE` is not a positive number.
    #[error("CHATMAIL_METADATA_TIME_SCALE must be a positive number, got {0:?}")]
    TimeScale(String),
    /// A device token longer than [`crate::tokens::MAX_TOKEN_LEN`] was set (its length).
    #[error("device token of {0} bytes refused (limit {limit})", limit = crate::tokens::MAX_TOKEN_LEN)]
    TokenTooLong(usize),
    /// A blocking task could not finish (the runtime is shutting down).
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl Error {
    /// Wraps an I/O error with the path it happened on (the shared library's `Io`).
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Chatmaild(chatmaild::Error::io(path, source))
    }

    /// The process exit code for a start-up failure (sysexits: 78 = config).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Chatmaild(e) => e.exit_code(),
            Error::TimeScale(_) => chatmaild::service::EXIT_CONFIG,
            _ => 1,
        }
    }
}

impl chatmaild::service::StartError for Error {
    fn exit_code(&self) -> u8 {
        Error::exit_code(self)
    }
}
