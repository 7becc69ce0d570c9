//! The error type of chatmail-render.

use std::path::PathBuf;

/// Why rendering failed; [`Error::exit_code`] maps it to 64, 78 or 1.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is wrong (exit 64).
    #[error("{0}")]
    Usage(String),
    /// `chatmail.ini` could not be read or has a bad value (exit 78), or a template could
    /// not be read or a file written (exit 1).
    #[error(transparent)]
    Chatmaild(#[from] chatmaild::Error),
    /// A template names a value that does not exist: a typo must not reach a daemon.
    #[error("{template}: no value for placeholder @{name}@")]
    Placeholder {
        /// The template.
        template: PathBuf,
        /// The unknown name.
        name: String,
    },
    /// A value with a line break would add lines to a configuration file.
    #[error("{name}: the value {value:?} has a line break")]
    LineBreak {
        /// The value's name.
        name: String,
        /// The value.
        value: String,
    },
    /// The installed Dovecot is of a series the templates do not serve.
    #[error("unsupported Dovecot version {0:?} (2.3.19+ or 2.4 needed)")]
    DovecotVersion(String),
    /// `dovecot --version` could not be run.
    #[error("dovecot --version: {0} (is dovecot-core installed?)")]
    NoDovecot(std::io::Error),
    /// doveauth's dict mode on a Dovecot without dict passdb/userdb.
    #[error("dict auth needs Dovecot 2.3 (2.4 has no dict passdb/userdb)")]
    DictAuthOn24,
}

impl Error {
    /// The exit status: 64 misuse, 78 bad config, 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 64,
            Error::Chatmaild(e) => e.exit_code(),
            _ => 1,
        }
    }
}
