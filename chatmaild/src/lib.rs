//! Shared library of the chatmail relay helper services.
//!
//! Every service of the workspace (doveauth, lastlogin, chatmail-metadata, filtermail,
//! the expire and report tools) reads the same `chatmail.ini`, addresses mailboxes the
//! same way and, for the three dict services, speaks the same Dovecot dict protocol.
//! Those shared parts live here, mirroring the modules of the Python `chatmaild` package.
#![forbid(unsafe_code)]

pub mod accept;
pub mod address;
pub mod cli;
pub mod config;
pub mod daemons;
pub mod dict;
pub mod dir;
pub mod error;
pub mod fs;
pub mod hash;
pub mod json_string;
pub mod mailbox;
pub mod maildir;
pub mod manual;
pub mod metrics;
pub mod privileges;
pub mod registry;
pub mod service;
pub mod user;
pub mod wall_time;

pub use config::Config;
pub use error::Error;
pub use user::User;
