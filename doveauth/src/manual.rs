//! The manuals of `doveauth` and `chatmail-newemail`: their `--help` text and man pages
//! (see [`chatmaild::manual`]).

use chatmaild::manual::{DAEMON_EXIT_STATUS, INI_FILE, METRICS_SOCKET, Page, RUST_LOG};

/// `doveauth`.
pub const DOVEAUTH: Page = Page {
    name: "doveauth",
    section: 8,
    summary: "Dovecot's passdb and userdb for a chatmail relay, creating each account on its first login",
    usage: "usage: doveauth INI_PATH\n       doveauth SOCKET_PATH INI_PATH",
    options: "\
arguments:
  INI_PATH     chatmail.ini; given alone: HTTP /create and /registration on
               doveauth_http_host:doveauth_http_port (default 127.0.0.1:10084),
               for Dovecot's Lua passdb
  SOCKET_PATH  the dict passdb/userdb socket to serve (Dovecot 2.3)
options:
  -h, --help   print this text and exit",
    description: "\
The first login of an address of mail_domain with an acceptable name (username_min_length \
to username_max_length characters of a-z0-9._-) and a password of at least \
password_min_length characters creates the account: its mailbox directory, the password \
file (a {SHA512-CRYPT} hash unless password_scheme says argon2id) and enforceE2EEincoming. \
Each creation is logged as \"Created address: ADDR\" and each refusal as one line \
starting with \"registration rejected: \"; mtail counts both.

Creation is refused while nocreate_file exists, while the 1-minute load, the available \
memory or the free disk space is past max_load_1m, min_available_memory or \
min_free_disk_space, for a tombstoned or blocked address, in invite-only mode without a \
valid invitation, and past max_creations_per_minute (off unless set). A refusal for now \
(load, memory, disk, the rate cap) is a temporary failure, so clients try again later.

In HTTP mode POST /create takes ADDR, a tab and the password, and answers 200 when the account was \
created now or exists with this password, 403 otherwise (with Retry-After: 60 for a \
refusal for now); GET /registration answers open, invite-only or close. In dict mode \
Dovecot connects with uri = proxy:SOCKET_PATH:auth and the keys passdb/%Ew\"%Eu and \
userdb/%Eu. Either way a socket passed by systemd socket activation is served instead of \
binding one, readiness and stopping are reported to systemd, and the metrics socket is \
published for chatmail-exporter.",
    exit_status: DAEMON_EXIT_STATUS,
    environment: &[RUST_LOG, METRICS_SOCKET],
    files: &[
        INI_FILE,
        (
            "/run/doveauth/doveauth.socket",
            "the dict socket of the deployed unit (dict mode)",
        ),
        (
            "/run/doveauth/metrics.socket",
            "the metrics socket, read by chatmail-exporter",
        ),
        (
            "/etc/chatmail-nocreate",
            "while it exists (nocreate_file) no account is created",
        ),
        (
            "MAILBOXES_DIR/ADDR/password",
            "an account's password hash; its mtime is the day of the last login",
        ),
    ],
    see_also: &["chatmail-admin(8)", "lastlogin(8)", "chatmail-exporter(8)"],
};

/// `chatmail-newemail`.
pub const NEWEMAIL: Page = Page {
    name: "chatmail-newemail",
    section: 1,
    summary: "CGI program proposing a new address and password for Delta Chat's dcaccount: URLs",
    usage: "usage: chatmail-newemail",
    options: "\
options:
  -h, --help  print this text and exit (only outside a CGI request)",
    description: "\
A CGI program without arguments: nginx runs it through fcgiwrap for POST /new. It answers JSON {\"email\": ..., \
\"password\": ...} with a random name of username_max_length characters at mail_domain \
and a random password; for a self-signed relay the answer also carries a dclogin_url. \
With an invitation (/new?invite=TOKEN) the password is TOKEN:RANDOM and doveauth creates \
the account over HTTP /create before the answer, so a spent, revoked or expired \
invitation is refused right here with 403 and a reason Delta Chat shows. Without one it \
asks doveauth's GET /registration and answers 403 while registration is closed or \
invite-only. A refusal for now, or doveauth unreachable, is 503.",
    exit_status: &[
        ("0", "an answer was written (whatever its HTTP status)"),
        ("1", "the answer could not be written"),
        ("78", "chatmail.ini is missing or has a bad value"),
    ],
    environment: &[
        (
            "CHATMAIL_INI",
            "the configuration file instead of the default",
        ),
        ("QUERY_STRING", "the request's query (invite=TOKEN)"),
        (
            "REMOTE_ADDR",
            "the web client's address, passed to doveauth for its per-client rate cap",
        ),
        (
            "GATEWAY_INTERFACE",
            "set by the web server; while it is set, arguments are ignored",
        ),
    ],
    files: &[INI_FILE],
    see_also: &["doveauth(8)", "chatmail-admin(8)"],
};
