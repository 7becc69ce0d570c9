//! `chatmail-newemail`: CGI printing a fresh random address and password as JSON; with an
//! invitation it has doveauth create the account first.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use chatmaild::Config;
use chatmaild::config::DEFAULT_INI;

fn main() -> ExitCode {
    // `--help` only outside a request: a CGI's arguments could come from a query string.
    if std::env::var_os("GATEWAY_INTERFACE").is_none()
        && let Some(flag) = std::env::args_os().nth(1)
        && (flag == "--help" || flag == "-h")
    {
        return doveauth::manual::NEWEMAIL.print_help();
    }
    // The CGI takes no arguments; the path may be overridden for tests and local relays.
    let ini = std::env::var_os("CHATMAIL_INI").unwrap_or_else(|| DEFAULT_INI.into());
    let config = match Config::load(&ini) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(e.exit_code());
        }
    };
    // An invitation link's token arrives in the query string (`/new?invite=<token>`).
    let query = std::env::var("QUERY_STRING").unwrap_or_default();
    // The web client's address (CGI `REMOTE_ADDR`), for doveauth's per-client rate cap.
    let client = std::env::var("REMOTE_ADDR")
        .ok()
        .and_then(|a| a.parse().ok());
    let out = doveauth::newemail::respond(&config, &query, client);
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
