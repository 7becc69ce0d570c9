//! `doveauth SOCKET_PATH INI_PATH`: Dovecot passdb/userdb dict service.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use doveauth::{AuthHandler, migrate};

fn main() -> ExitCode {
    chatmaild::service::run_dict_daemon("doveauth", |config| {
        migrate::migrate_if_present(&config).map_err(|e| match e {
            doveauth::Error::Chatmaild(inner) => inner,
            other => chatmaild::Error::io(
                &config.passdb_path,
                std::io::Error::other(other.to_string()),
            ),
        })?;
        Ok(AuthHandler::new(config))
    })
}
