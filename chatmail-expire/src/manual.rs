//! The manuals of `chatmail-expire` and `chatmail-quota-expire`: their `--help` text and
//! man pages (see [`chatmaild::manual`]).

use chatmaild::manual::{INI_FILE, Page};

/// `chatmail-expire`.
pub const EXPIRE: Page = Page {
    name: "chatmail-expire",
    section: 1,
    summary: "remove old messages, inactive accounts and mail over quota from a chatmail relay's mailboxes",
    usage: crate::cli::EXPIRE_USAGE,
    options: "\
arguments:
  CHATMAIL_INI     the configuration (default /usr/local/lib/chatmaild/chatmail.ini)
options:
  --days DAYS      pretend that now is DAYS days earlier
  --maxnum MAXNUM  look only at the first MAXNUM entries of the mailboxes directory
  -v               print every removal and every mailbox looked at
  --remove         remove; without it nothing is removed (a dry run that still counts)
  --textfile PATH  write the run's figures as a Prometheus textfile (PATH/expire.prom if
                   PATH is a directory)
  -h, --help       print this text and exit",
    description: "\
One parallel pass over mailboxes_dir: an account whose last login is older than \
delete_inactive_users_after days is removed whole, and tombstoned for tombstone_days so \
the address cannot be registered again; messages older than delete_mails_after days, and \
seen messages over 200 kB older than delete_large_after days, are removed; a mailbox over \
its quota is cut down as chatmail-quota-expire does. The run prints one summary line on \
stdout. Symbolic links are never followed and nothing outside mailboxes_dir is touched; \
a mailbox is renamed away before its tree is removed, so a crash leaves no half account.

The deployed timer runs it daily as chatmail-expire CHATMAIL_INI -v --remove, with \
--textfile /var/lib/chatmail-metrics for chatmail-exporter.",
    exit_status: &[
        ("0", "done"),
        (
            "1",
            "some entries could not be read or removed, or a report could not be written",
        ),
        ("64", "wrong command line"),
        ("78", "chatmail.ini is missing or has a bad value"),
    ],
    environment: &[],
    files: &[
        INI_FILE,
        (
            "MAILBOXES_DIR/.chatmail-admin/tombstones/",
            "addresses that cannot be registered again",
        ),
        (
            "/var/lib/chatmail-metrics/expire.prom",
            "the textfile of the deployed timer",
        ),
    ],
    see_also: &[
        "chatmail-quota-expire(1)",
        "chatmail-fsreport(1)",
        "chatmail-admin(8)",
    ],
};

/// `chatmail-quota-expire`.
pub const QUOTA_EXPIRE: Page = Page {
    name: "chatmail-quota-expire",
    section: 1,
    summary: "remove a mailbox's oldest messages until it is below a target size",
    usage: crate::cli::QUOTA_USAGE,
    options: "\
arguments:
  TARGET_MB     the size to reach, in MiB
  MAILBOX_PATH  the mailbox directory
options:
  -h, --help    print this text and exit",
    description: "\
Dovecot runs it through its script service when a mailbox passes 75% of its quota \
(quota_warning = storage=75%% quota-warning TARGET_MB MAILBOXES_DIR/%u). It removes the \
oldest messages of cur/ and new/ until the mailbox holds at most TARGET_MB, keeping \
those of the last 24 hours, then removes maildirsize so Dovecot recounts, and prints \
\"quota-expire: removed N message(s) from ADDR\" on stderr, which mtail counts.",
    exit_status: &[
        ("0", "done"),
        ("1", "a message or maildirsize could not be removed"),
        ("2", "wrong command line"),
    ],
    environment: &[],
    files: &[(
        "MAILBOX_PATH/maildirsize",
        "Dovecot's quota count, removed after a removal",
    )],
    see_also: &["chatmail-expire(1)"],
};
