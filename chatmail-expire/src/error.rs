//! The error type of the expire tools.

/// What stopped a run of `chatmail-expire` or `chatmail-quota-expire` as a whole.
///
/// Problems with single entries (an unreadable folder, a file that could not be removed)
/// are not errors of this type: they are reported where they happen, the run goes on, and
/// only the exit status says that something failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is wrong; the text says how.
    #[error("{0}")]
    Usage(String),
    /// `chatmail.ini` could not be read or has a bad value.
    #[error("{0}")]
    Config(#[source] chatmaild::Error),
    /// The report file could not be written.
    #[error("{0}")]
    Write(#[source] chatmaild::Error),
    /// The mailboxes directory could not be listed.
    #[error("{0}")]
    Scan(#[source] chatmaild::Error),
}

impl From<chatmaild::cli::UsageError> for Error {
    fn from(e: chatmaild::cli::UsageError) -> Self {
        Error::Usage(e.0)
    }
}

impl Error {
    /// The exit status `main` uses: 64 for usage, 78 for config, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => chatmaild::service::EXIT_USAGE,
            Error::Config(_) => chatmaild::service::EXIT_CONFIG,
            Error::Write(_) | Error::Scan(_) => 1,
        }
    }
}
