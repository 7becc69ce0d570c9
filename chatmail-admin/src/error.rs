//! The error type of chatmail-admin.

use std::path::PathBuf;

/// Why a command failed; [`Error::exit_code`] maps it to 64, 78 or 1.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is wrong (exit 64).
    #[error("{0}")]
    Usage(String),
    /// `chatmail.ini` could not be read or has a bad value (exit 78).
    #[error("{0}")]
    Config(chatmaild::Error),
    /// The shared library failed (file system, state files).
    #[error(transparent)]
    Chatmaild(#[from] chatmaild::Error),
    /// A file operation of chatmail-admin itself failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The command cannot be done on this account or address (exit 1).
    #[error("{0}")]
    Refused(String),
}

impl Error {
    /// Wraps an I/O error with its path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The exit status: 64 misuse, 78 bad config, 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 64,
            Error::Config(_) => 78,
            _ => 1,
        }
    }
}
