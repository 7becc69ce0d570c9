//! The manual of `lastlogin`: its `--help` text and man page (see [`chatmaild::manual`]).

use chatmaild::manual::{DAEMON_EXIT_STATUS, DICT_DAEMON_OPTIONS, INI_FILE, Page, RUST_LOG};

/// `lastlogin`.
pub const PAGE: Page = Page {
    name: "lastlogin",
    section: 8,
    summary: "Dovecot's last_login dict for a chatmail relay: the day of each account's last login",
    usage: "usage: lastlogin SOCKET_PATH INI_PATH",
    options: DICT_DAEMON_OPTIONS,
    description: "\
Dovecot's last_login plugin reports every login through this dict (last_login_dict = \
proxy:SOCKET_PATH:lastlogin, last_login_precision = s). lastlogin sets the modification \
time of the account's password file to the start of the login's day (UTC), which is what \
chatmail-expire and chatmail-fsreport read; a second login on the same day writes \
nothing. It never creates an account, a file or a directory.

A socket passed by systemd socket activation is served instead of binding one. The \
metrics socket is published beside the dict socket for chatmail-exporter.",
    exit_status: DAEMON_EXIT_STATUS,
    environment: &[RUST_LOG],
    files: &[
        INI_FILE,
        (
            "/run/chatmail-lastlogin/lastlogin.socket",
            "the dict socket of the deployed unit",
        ),
        (
            "/run/chatmail-lastlogin/metrics.socket",
            "the metrics socket, read by chatmail-exporter",
        ),
        (
            "MAILBOXES_DIR/ADDR/password",
            "its mtime is the day of the last login",
        ),
    ],
    see_also: &["doveauth(8)", "chatmail-expire(1)", "chatmail-exporter(8)"],
};
