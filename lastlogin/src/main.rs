//! `lastlogin SOCKET_PATH INI_PATH`: Dovecot last_login dict service.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    chatmaild::service::run_dict_daemon(&lastlogin::manual::PAGE, |config, _| {
        Ok::<_, chatmaild::Error>(lastlogin::LastLoginHandler::new(config))
    })
}
