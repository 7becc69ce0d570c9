//! The manual of `chatmail-fsreport`: its `--help` text and man page (see
//! [`chatmaild::manual`]).

use chatmaild::manual::{INI_FILE, Page};

/// `chatmail-fsreport`.
pub const PAGE: Page = Page {
    name: "chatmail-fsreport",
    section: 1,
    summary: "storage and account report of a chatmail relay, as text or as Prometheus textfile metrics",
    usage: crate::cli::USAGE,
    options: "\
arguments:
  CHATMAIL_INI          the configuration (default /usr/local/lib/chatmaild/chatmail.ini)
options:
  --days DAYS           pretend that now is DAYS days earlier
  --min-login-age DAYS  count message sizes only of accounts whose last login is at least
                        DAYS days old
  --mdir {cur,new,tmp}  count only messages in this maildir folder
  --maxnum MAXNUM       look only at the first MAXNUM entries of the mailboxes directory
  --textfile PATH       write Prometheus metrics to PATH (PATH/fsreport.prom if PATH is a
                        directory) instead of the text report
  --legacy-metrics [FILENAME]
                        write the former cron job's metrics file (default
                        /var/www/html/metrics) instead of the text report
  -h, --help            print this text and exit",
    description: "\
One parallel pass over mailboxes_dir, read exactly as chatmail-expire reads it (symbolic \
links are never followed). It sums the storage of messages and other files, counts \
accounts (test accounts, whose names start with ci-, apart) and the accounts active \
within 1 to 150 days, and the bytes and number of messages above size thresholds. \
Without a file option it prints the report on stdout.

The deployed timer runs it daily with --textfile /var/lib/chatmail-metrics, which \
chatmail-exporter serves with the services' metrics.",
    exit_status: &[
        ("0", "done"),
        (
            "1",
            "some entries could not be read, or a file could not be written",
        ),
        ("64", "wrong command line"),
        ("78", "chatmail.ini is missing or has a bad value"),
    ],
    environment: &[],
    files: &[
        INI_FILE,
        (
            "/var/lib/chatmail-metrics/fsreport.prom",
            "the textfile of the deployed timer",
        ),
    ],
    see_also: &["chatmail-expire(1)", "chatmail-exporter(8)"],
};
