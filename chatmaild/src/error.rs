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
        reason: ConfigProblem,
    },
    /// An address that must never become a path (SPEC §1.5).
    #[error("invalid address {0:?}")]
    InvalidAddress(String),
    /// Hashing a password failed.
    #[error("password hashing failed: {0}")]
    Hash(#[from] HashError),
    /// A state file of the relay (tombstone, invitation, counter) has unexpected content.
    #[error("{path}: {reason}")]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A tool could not switch to the mailbox tree's owner.
    #[error("cannot switch to uid {uid} gid {gid} (the owner of the mailbox tree): {source}")]
    Privileges {
        /// The owner's user id.
        uid: u32,
        /// The owner's group id.
        gid: u32,
        /// The underlying error.
        source: std::io::Error,
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

/// What is wrong in `chatmail.ini`; the text is what the error message says after the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigProblem {
    /// The file is not UTF-8.
    #[error("not UTF-8: {0}")]
    NotUtf8(std::str::Utf8Error),
    /// No `[params]` section.
    #[error("section missing")]
    MissingSection,
    /// A required key (`mail_domain`) is absent.
    #[error("required key missing")]
    MissingKey,
    /// A required value is empty.
    #[error("must not be empty")]
    Empty,
    /// `tls_external_cert_and_key` is not two paths (the reference's message).
    #[error("tls_external_cert_and_key must have two space-separated paths: CERT_PATH KEY_PATH")]
    TlsPaths,
    /// A value outside a fixed list.
    #[error("{value:?} is not one of {allowed}")]
    NotOneOf {
        /// The value given.
        value: String,
        /// The values allowed, comma-separated.
        allowed: &'static str,
    },
    /// Not a Python integer, or out of the key's range.
    #[error("{0:?} is not a valid integer in range")]
    NotInteger(String),
    /// Not a finite number.
    #[error("{0:?} is not a number")]
    NotNumber(String),
    /// Not a `parse_size` value.
    #[error("{0:?} is not a size such as 500M, 2G or 256")]
    NotSize(String),
    /// Not an IPv4 or IPv6 address.
    #[error("{0:?} is not an IP address")]
    NotIpAddress(String),
    /// An indented line with no value before it.
    #[error("unexpected value continuation")]
    Continuation,
    /// A `[` line without its `]`.
    #[error("invalid section header {0:?}")]
    SectionHeader(String),
    /// A section given twice.
    #[error("duplicate section")]
    DuplicateSection,
    /// A line that is neither a section, a comment nor `key = value`.
    #[error("expected `key = value`")]
    NoSeparator,
    /// A key before the first section.
    #[error("key outside of any section")]
    OutsideSection,
    /// A key given twice in a section.
    #[error("duplicate key")]
    DuplicateKey,
}

/// Why a password could not be hashed (SPEC §3.5).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The SHA-512-crypt implementation refused.
    #[error("SHA-512-crypt: {0}")]
    ShaCrypt(sha_crypt::password_hash::Error),
    /// The SHA-512-crypt string was not in the `$6$salt$hash` form Dovecot and the
    /// reference expect.
    #[error("unexpected SHA-512-crypt output form")]
    ShaCryptForm,
    /// The Argon2 implementation refused.
    #[error("Argon2id: {0}")]
    Argon2(argon2::password_hash::Error),
}
