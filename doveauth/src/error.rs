//! The error type of doveauth.

use std::path::PathBuf;

/// What failed inside doveauth (never a refusal: those are `N` replies).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The shared library failed (file system, config).
    #[error(transparent)]
    Chatmaild(#[from] chatmaild::Error),
    /// The creation lock was held by someone else for too long.
    #[error("timed out waiting for {0}")]
    LockTimeout(PathBuf),
    /// The legacy password database could not be read.
    #[error("{path}: {source}")]
    Sqlite {
        /// The database.
        path: PathBuf,
        /// What sqlite said.
        source: rusqlite::Error,
    },
    /// A blocking task was cancelled or panicked.
    #[error("worker task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl Error {
    /// The exit code of a start-up failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Chatmaild(e) => e.exit_code(),
            _ => 1,
        }
    }
}

impl chatmaild::service::StartError for Error {
    fn exit_code(&self) -> u8 {
        Error::exit_code(self)
    }
}
