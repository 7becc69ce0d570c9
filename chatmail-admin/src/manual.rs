//! The manual of `chatmail-admin`: its `--help` text and man page (see
//! [`chatmaild::manual`]).

use chatmaild::manual::{INI_FILE, Page};

/// `chatmail-admin`.
pub const PAGE: Page = Page {
    name: "chatmail-admin",
    section: 8,
    summary: "manage the accounts, registration and invitations of a chatmail relay",
    usage: crate::cli::USAGE,
    options: "\
commands:
  list [--json]                     every account
  info ADDR [--json]                one account, with its queued notifications
  create ADDR [--force]             new account; password from stdin, or a random one is printed
  passwd ADDR                       new password from stdin
  delete ADDR                       remove the account for good and tombstone the address
  block ADDR | unblock ADDR         refuse or allow logins and mail of an account
  registration open|close|invite-only|status
  invite create [--uses N] [--expires DAYS] [--comment TEXT]
  invite list [--json]
  invite revoke TOKEN
  export [FILE|-]                   accounts as JSON lines (default: stdout)
  import [FILE|-]                   accounts from an export (default: stdin)
options:
  -c, --config INI                  the configuration (default /usr/local/lib/chatmaild/chatmail.ini)
  -h, --help                        print this text and exit",
    description: "\
The operator's tool for a running relay: it works on the same files the services use, \
locks as they do, gives new files the owner of mailboxes_dir, refuses any address \
doveauth could not have created, and writes only inside mailboxes_dir and nocreate_file. \
Each command says what it did in one line and exits 0, 64 (wrong command line), 78 (bad \
configuration) or 1.

delete tombstones the address first, then moves the mailbox away in one rename and \
removes it with its queued notifications: a crash leaves the account whole or gone. A \
tombstoned address cannot be registered again for tombstone_days; create --force and \
import lift the tombstone. block takes effect at once (the account cannot log in and \
receives no mail); sessions already open end with doveadm kick.

In invite-only mode a first login creates its account only with a password \
TOKEN:PASSWORD of a valid invitation; invite create prints the token and a dcaccount: \
URL. export writes a header line and one JSON object per account (address, password \
hash, settings, last login, device tokens; no messages); import never replaces an \
existing account and refuses lines it cannot trust, one stderr line each.

When stderr is a terminal, list, export and import show their progress there.",
    exit_status: &[
        ("0", "done"),
        ("1", "refused or failed (one line on stderr says why)"),
        ("64", "wrong command line"),
        ("78", "chatmail.ini is missing or has a bad value"),
    ],
    environment: &[],
    files: &[
        INI_FILE,
        (
            "MAILBOXES_DIR/.chatmail-admin/",
            "tombstones, invitations, the invite-only marker and work directories",
        ),
        (
            "/etc/chatmail-nocreate",
            "registration close creates it (nocreate_file)",
        ),
    ],
    see_also: &["doveauth(8)", "chatmail-expire(1)", "doveadm(1)"],
};
