//! The manual of `chatmail-metadata`: its `--help` text and man page (see
//! [`chatmaild::manual`]).

use chatmaild::manual::{DAEMON_EXIT_STATUS, DICT_DAEMON_OPTIONS, INI_FILE, Page, RUST_LOG};

/// `chatmail-metadata`.
pub const PAGE: Page = Page {
    name: crate::NAME,
    section: 8,
    summary: "IMAP METADATA dict for a chatmail relay: device tokens and push notifications that are never lost",
    usage: "usage: chatmail-metadata SOCKET_PATH INI_PATH",
    options: DICT_DAEMON_OPTIONS,
    description: "\
Dovecot's IMAP METADATA (mail_attribute_dict = proxy:SOCKET_PATH:metadata, imap_metadata \
= yes) reads and writes through this dict. It keeps each account's device tokens in \
metadata.json (at most 20 per account, 4096 bytes each) and answers the relay's shared \
entries: the iroh relay, TURN credentials, the recipient limit and app versions.

When Dovecot's LMTP push hook sets /private/messagenew, one notification per device \
token is queued durably in MAILBOXES_DIR/pending_notifications/ before the write is \
acknowledged, then posted to notification_url with the reference's retry schedule. A \
restart or a crash loses nothing; a token the notification service answers 410 Gone \
for is removed.

It refuses to start without mailboxes_dir. A socket passed by systemd socket activation \
is served instead of binding one. The metrics socket is published beside the dict \
socket for chatmail-exporter.",
    exit_status: DAEMON_EXIT_STATUS,
    environment: &[
        RUST_LOG,
        (
            "SSL_CERT_FILE, SSL_CERT_DIR",
            "trusted certificates for notification_url instead of the system's",
        ),
    ],
    files: &[
        INI_FILE,
        (
            "/run/chatmail-metadata/metadata.socket",
            "the dict socket of the deployed unit",
        ),
        (
            "/run/chatmail-metadata/metrics.socket",
            "the metrics socket, read by chatmail-exporter",
        ),
        (
            "MAILBOXES_DIR/ADDR/metadata.json",
            "an account's device tokens",
        ),
        (
            "MAILBOXES_DIR/pending_notifications/",
            "the notification queue, one file per notification",
        ),
    ],
    see_also: &["doveauth(8)", "chatmail-exporter(8)"],
};
