//! The manual of `filtermail`: its `--help` text and man page (see [`chatmaild::manual`]).

use chatmaild::manual::{INI_FILE, METRICS_SOCKET, Page, RUST_LOG};

/// `filtermail`.
pub const PAGE: Page = Page {
    name: "filtermail",
    section: 8,
    summary: "Postfix before-queue filter of a chatmail relay that lets only end-to-end encrypted mail through, and its transport to other relays",
    usage: "usage: filtermail INI_PATH outgoing|incoming|transport",
    options: "\
arguments:
  INI_PATH     chatmail.ini
  outgoing     filter mail submitted by the relay's users (Postfix smtpd_proxy_filter on
               submission): SMTP on 127.0.0.1:filtermail_smtp_port, reinjected to
               postfix_reinject_port
  incoming     filter mail from other servers (port 25): SMTP on
               127.0.0.1:filtermail_smtp_port_incoming and HTTP /mxdeliv on
               filtermail_http_port_incoming, reinjected to postfix_reinject_port_incoming
  transport    deliver to other relays (Postfix default_transport): LMTP on
               127.0.0.1:filtermail_lmtp_port_transport, then HTTPS /mxdeliv or SMTP
options:
  -h, --help   print this text and exit",
    description: "\
A message passes only if it is OpenPGP-encrypted as Delta Chat encrypts, or one of the \
few exceptions every reader reads alike (a securejoin request, a delivery report, an \
Autocrypt Setup Message to the sender's own mailbox). Anything else is refused with 523 \
and logged as \"Rejected unencrypted mail\". Outgoing mail must come from the \
authenticated sender's own address and within max_user_send_per_minute; incoming mail \
from a DNS domain must carry a valid DKIM signature of that domain. Messages larger than \
max_message_size are refused while they arrive, and at most filtermail_memory_budget of \
message bytes are held at once.

Each filtered message is logged as \"Outgoing: Filtering encrypted mail.\", \"Incoming: \
Filtering unencrypted mail.\" and the like, which mtail counts. One process runs per \
mode; each publishes its metrics socket for chatmail-exporter. The filtermail README of \
the source tree describes the replies in detail.",
    exit_status: &[
        (
            "0",
            "stopped by SIGTERM or SIGINT after finishing the messages in flight",
        ),
        (
            "1",
            "wrong command line, bad chatmail.ini, or could not start or serve",
        ),
    ],
    environment: &[
        RUST_LOG,
        METRICS_SOCKET,
        (
            crate::dkim::ENV_RESOLVER,
            "IP:PORT of the DNS server for DKIM key lookups instead of /etc/resolv.conf's",
        ),
        (
            crate::dkim::ENV_SKIP,
            "1 or true turns the DKIM check off, for tests only (logged as a warning at start)",
        ),
    ],
    files: &[
        INI_FILE,
        (
            "/run/filtermail/metrics.socket",
            "the metrics socket of outgoing mode (filtermail-incoming and filtermail-transport for the others)",
        ),
        (
            "MAILBOXES_DIR/ADDR/enforceE2EEincoming",
            "while it exists, incoming cleartext to ADDR is refused",
        ),
    ],
    see_also: &["doveauth(8)", "chatmail-exporter(8)", "postfix(1)"],
};
