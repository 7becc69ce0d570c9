//! The error type of the shared library.

use std::path::PathBuf;

/// What failed in the shared library; every variant carries what an operator needs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system operation failed on `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory the operation was about.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `chatmail.ini` has a syntax error or a bad value.
    #[error("{path}: line {line}: {key}: {reason}")]
    Config {
        /// The config file (empty when parsed from a string).
        path: PathBuf,
        /// 1-based line number, 0 when the problem is not tied to a line.
        line: usize,
        /// The offending key (or a description of the line).
        key: String,
        /// What is wrong with it, including the value.
        reason: String,
    },
    /// An address that must never become a path (SPEC §1.5).
    #[error("invalid address {0:?}")]
    InvalidAddress(String),
    /// Hashing a password failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// A state file of the relay (tombstone, invitation, counter) has unexpected content.
    #[error("{path}: {reason}")]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A socket could not be set up.
    #[error("socket {path}: {source}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The process exit code `main` should use for this error (sysexits: 78 = config).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config { .. } => 78,
            _ => 1,
        }
    }
}
