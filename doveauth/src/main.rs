//! `doveauth INI_PATH`: HTTP `/create` for Dovecot's Lua passdb (Dovecot 2.4, and 2.3.19+).
//! `doveauth SOCKET_PATH INI_PATH`: Dovecot passdb/userdb dict service (Dovecot 2.3).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use doveauth::manual::DOVEAUTH;
use doveauth::{AuthHandler, migrate};

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if let [flag] = args.as_slice()
        && (flag == "--help" || flag == "-h")
    {
        return DOVEAUTH.print_help();
    }
    if args
        .iter()
        .any(|a| a.to_str().is_some_and(|s| s.starts_with('-')))
    {
        eprintln!("{}", DOVEAUTH.usage);
        return ExitCode::from(chatmaild::service::EXIT_USAGE);
    }
    match args.as_slice() {
        [ini] => doveauth::http::run(&PathBuf::from(ini)),
        [_, _] => chatmaild::service::run_dict_daemon(&DOVEAUTH, |config, _| {
            migrate::migrate_if_present(&config).map_err(|e| match e {
                doveauth::Error::Chatmaild(inner) => inner,
                other => chatmaild::Error::io(
                    &config.passdb_path,
                    std::io::Error::other(other.to_string()),
                ),
            })?;
            Ok::<_, chatmaild::Error>(AuthHandler::new(config))
        }),
        _ => {
            eprintln!("{}", DOVEAUTH.usage);
            ExitCode::from(chatmaild::service::EXIT_USAGE)
        }
    }
}
