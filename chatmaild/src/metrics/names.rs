//! The name of every metric family the relay serves, so the dashboard test and the
//! services share one list. A service that counts names its families from here; the values
//! of a fixed label list live with the enum that indexes its counters (see
//! [`labels!`](super::labels)).

/// Services read by `chatmail-exporter` (`chatmail_service_up{service}`).
pub const SERVICE_UP: &str = "chatmail_service_up";
/// Modification time of a report textfile (`{file}`).
pub const TEXTFILE_MTIME: &str = "chatmail_textfile_mtime_seconds";

/// lastlogin.
pub mod lastlogin {
    /// Last-login reports by `result`: written, skipped, invalid, error.
    pub const UPDATES: &str = "chatmail_lastlogin_updates_total";
}

/// chatmail-metadata.
pub mod metadata {
    /// Device tokens stored.
    pub const TOKENS_SET: &str = "chatmail_metadata_tokens_set_total";
    /// Device tokens removed after a 410 Gone.
    pub const TOKENS_REMOVED: &str = "chatmail_metadata_tokens_removed_total";
    /// Notification events by `event`: queued, sent, retried, given_up, gone.
    pub const NOTIFICATIONS: &str = "chatmail_metadata_notifications_total";
    /// Histogram: time of one request to the notification service.
    pub const REQUEST_SECONDS: &str = "chatmail_metadata_notification_request_duration_seconds";
    /// Gauge: notifications waiting or in flight.
    pub const QUEUE_ITEMS: &str = "chatmail_metadata_queue_items";
    /// Gauge: age of the oldest waiting notification.
    pub const QUEUE_OLDEST: &str = "chatmail_metadata_queue_oldest_age_seconds";
    /// Failed shared-key lookups by `key`: turn, appversions.
    pub const LOOKUP_ERRORS: &str = "chatmail_metadata_lookup_errors_total";
}

/// filtermail's `transport` mode (the mxdeliver library).
pub mod transport {
    /// Batches (one message to one domain) delivered, by `path`: https, smtp.
    pub const DELIVERED: &str = "chatmail_transport_delivered_total";
    /// Batches not delivered, by `class`.
    pub const FAILURES: &str = "chatmail_transport_failures_total";
    /// HTTPS `/mxdeliv` attempts followed by SMTP.
    pub const HTTPS_FALLBACKS: &str = "chatmail_transport_https_fallbacks_total";
    /// Histogram: time per batch.
    pub const DURATION: &str = "chatmail_transport_delivery_duration_seconds";
    /// Gauge: batches in flight.
    pub const IN_FLIGHT: &str = "chatmail_transport_deliveries_in_flight";
}

/// doveauth (dict service and HTTP `/create`).
pub mod doveauth {
    /// Lookups by `kind` (the dict requests, and HTTP `/create`) and `result`.
    pub const LOOKUPS: &str = "chatmail_doveauth_lookups_total";
    /// Accounts created.
    pub const ACCOUNTS_CREATED: &str = "chatmail_doveauth_accounts_created_total";
    /// Creations refused by `reason`: `/etc/chatmail-nocreate`; load, memory or disk
    /// limits; a name outside the rules; a password too short; the creation rate cap; a
    /// tombstoned address; a blocked address; invite-only without a valid invitation.
    pub const CREATIONS_REFUSED: &str = "chatmail_doveauth_creations_refused_total";
    /// Histogram (`LATENCY_BUCKETS`): time to hash or verify one password.
    pub const HASH_SECONDS: &str = "chatmail_doveauth_password_hash_duration_seconds";
}

/// filtermail's `outgoing` and `incoming` modes (one process each, each serving only its
/// own `direction`).
pub mod filtermail {
    /// Messages by `direction`, `verdict` (accepted, i.e. reinjected; rejected, 5xx;
    /// deferred, 4xx) and `reason` (one per refusal of the filter; `none` for accepted mail).
    pub const MESSAGES: &str = "chatmail_filtermail_messages_total";
    /// DKIM verifications of incoming mail by `result`.
    pub const DKIM: &str = "chatmail_filtermail_dkim_results_total";
    /// Outgoing messages refused because their sender was over its rate.
    pub const RATE_LIMITED: &str = "chatmail_filtermail_rate_limited_total";
    /// Bytes of messages accepted, by `direction`.
    pub const BYTES: &str = "chatmail_filtermail_message_bytes_total";
    /// Gauge: SMTP sessions and HTTP connections open now, by `direction`.
    pub const SESSIONS: &str = "chatmail_filtermail_sessions_in_flight";
    /// Histogram (`LATENCY_BUCKETS`) by `direction`: time to decide about and pass on one
    /// received message.
    pub const MESSAGE_SECONDS: &str = "chatmail_filtermail_message_duration_seconds";
}

/// `chatmail-exporter`: the file system of `mailboxes_dir`, read at every scrape (as
/// node-exporter's `node_filesystem_*`).
pub mod filesystem {
    /// Size in bytes.
    pub const SIZE_BYTES: &str = "chatmail_mailboxes_filesystem_size_bytes";
    /// Bytes available to unprivileged users.
    pub const AVAIL_BYTES: &str = "chatmail_mailboxes_filesystem_avail_bytes";
    /// Inodes.
    pub const FILES: &str = "chatmail_mailboxes_filesystem_files";
    /// Free inodes.
    pub const FILES_FREE: &str = "chatmail_mailboxes_filesystem_files_free";
}

/// `chatmail-fsreport --textfile`.
pub mod fsreport {
    /// Bytes on disk by `kind`.
    pub const STORAGE_BYTES: &str = "chatmail_storage_bytes";
    /// Message bytes by `min_size`.
    pub const MESSAGES_BYTES: &str = "chatmail_messages_bytes";
    /// Messages by `min_size`.
    pub const MESSAGES_COUNT: &str = "chatmail_messages_count";
    /// Accounts by `kind`.
    pub const ACCOUNTS: &str = "chatmail_accounts";
    /// Accounts active within `days`.
    pub const ACCOUNTS_ACTIVE: &str = "chatmail_accounts_active";
}

/// `chatmail-expire --textfile` (gauges: the figures of the last run).
pub mod expire {
    /// When the last run finished.
    pub const LAST_RUN: &str = "chatmail_expire_last_run_timestamp_seconds";
    /// How long it took.
    pub const DURATION: &str = "chatmail_expire_last_run_duration_seconds";
    /// 1 for a dry run.
    pub const DRY_RUN: &str = "chatmail_expire_last_run_dry_run";
    /// Accounts removed.
    pub const REMOVED_ACCOUNTS: &str = "chatmail_expire_last_run_removed_accounts";
    /// Files removed.
    pub const REMOVED_FILES: &str = "chatmail_expire_last_run_removed_files";
    /// Message bytes removed.
    pub const REMOVED_BYTES: &str = "chatmail_expire_last_run_removed_bytes";
    /// Entries that could not be read or removed.
    pub const FAILURES: &str = "chatmail_expire_last_run_failures";
}

/// Every family name above.
pub const ALL: &[&str] = &[
    SERVICE_UP,
    TEXTFILE_MTIME,
    filesystem::SIZE_BYTES,
    filesystem::AVAIL_BYTES,
    filesystem::FILES,
    filesystem::FILES_FREE,
    lastlogin::UPDATES,
    metadata::TOKENS_SET,
    metadata::TOKENS_REMOVED,
    metadata::NOTIFICATIONS,
    metadata::REQUEST_SECONDS,
    metadata::QUEUE_ITEMS,
    metadata::QUEUE_OLDEST,
    metadata::LOOKUP_ERRORS,
    transport::DELIVERED,
    transport::FAILURES,
    transport::HTTPS_FALLBACKS,
    transport::DURATION,
    transport::IN_FLIGHT,
    doveauth::LOOKUPS,
    doveauth::ACCOUNTS_CREATED,
    doveauth::CREATIONS_REFUSED,
    doveauth::HASH_SECONDS,
    filtermail::MESSAGES,
    filtermail::DKIM,
    filtermail::RATE_LIMITED,
    filtermail::BYTES,
    filtermail::SESSIONS,
    filtermail::MESSAGE_SECONDS,
    fsreport::STORAGE_BYTES,
    fsreport::MESSAGES_BYTES,
    fsreport::MESSAGES_COUNT,
    fsreport::ACCOUNTS,
    fsreport::ACCOUNTS_ACTIVE,
    expire::LAST_RUN,
    expire::DURATION,
    expire::DRY_RUN,
    expire::REMOVED_ACCOUNTS,
    expire::REMOVED_FILES,
    expire::REMOVED_BYTES,
    expire::FAILURES,
];

/// Whether `series` (a sample name, e.g. `x_bucket`) belongs to a family of [`ALL`].
pub fn is_known(series: &str) -> bool {
    ALL.iter().any(|f| {
        series == *f
            || series
                .strip_prefix(f)
                .is_some_and(|s| matches!(s, "_bucket" | "_sum" | "_count"))
    })
}
