//! `chatmail-newemail`: CGI printing a fresh random address and password as JSON; with an
//! invitation it has doveauth create the account first.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    doveauth::newemail_entry()
}
