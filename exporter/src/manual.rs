//! The manual of `chatmail-exporter`: its `--help` text and man page (see
//! [`chatmaild::manual`]).

use chatmaild::manual::{DAEMON_EXIT_STATUS, INI_FILE, Page, RUST_LOG};

/// `chatmail-exporter`.
pub const PAGE: Page = Page {
    name: crate::NAME,
    section: 8,
    summary: "one Prometheus /metrics endpoint for all services of a chatmail relay",
    usage: crate::USAGE,
    options: "\
arguments:
  INI                     the configuration (default /usr/local/lib/chatmaild/chatmail.ini)
options:
  --service NAME=SOCKET   read service NAME's metrics from SOCKET (replaces the default
                          socket of NAME, or adds a service); repeatable
  --textfile PATH         read this Prometheus textfile; repeatable, replaces the default
                          list
  -h, --help              print this text and exit",
    description: "\
It serves GET /metrics on metrics_host:metrics_port (default 127.0.0.1:10089) only. Each scrape reads \
every service's metrics socket at once (2 s each) and adds chatmail_service_up{service} \
(0 when a socket did not answer), the filesystem of mailboxes_dir (size, available bytes, \
inodes and free inodes, read with statvfs), and the textfiles of chatmail-fsreport and \
chatmail-expire with chatmail_textfile_mtime_seconds{file}, so a stale report shows. \
Every name it serves is listed in the source's chatmaild::metrics::names; labels take \
values from fixed lists, never an address or a token.

The services read by default are doveauth, lastlogin, chatmail-metadata, filtermail, \
filtermail-incoming and filtermail-transport at their deployed paths. An operator's \
Prometheus scrapes it (through a tunnel or a local agent); the source tree's \
contrib/prometheus/alerts.yml holds alert rules for these metrics and \
contrib/grafana/chatmail.json a dashboard.",
    exit_status: DAEMON_EXIT_STATUS,
    environment: &[RUST_LOG],
    files: &[
        INI_FILE,
        (
            "/run/doveauth/metrics.socket",
            "doveauth's metrics; the other services' are in their runtime directories under /run",
        ),
        (
            "/var/lib/chatmail-metrics/fsreport.prom, /var/lib/chatmail-metrics/expire.prom",
            "the textfiles read by default",
        ),
    ],
    see_also: &[
        "chatmail-fsreport(1)",
        "chatmail-expire(1)",
        "prometheus(1)",
    ],
};
