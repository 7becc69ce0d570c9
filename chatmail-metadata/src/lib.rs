//! chatmail-metadata: the IMAP METADATA dict service of a chatmail relay (SPEC §5).
//!
//! Dovecot's `mail_attribute_dict` talks to this service over the dict protocol. It stores
//! device tokens per user in `metadata.json`, answers the relay's shared keys (iroh relay,
//! TURN credentials, SMTP recipient limit, app versions) and, when Dovecot's LMTP push
//! hook sets `/private/messagenew`, queues one push notification per device token in a
//! persistent queue that survives restarts and crashes, then posts them to the
//! notification service with exponential back-off, fairly between accounts and within a
//! bound (`scheduler`).
//!
//! Dovecot side: `mail_attribute_dict = proxy:<socket>:metadata` and `imap_metadata = yes`;
//! for notifications, the LMTP `push_notification_lua` driver with the hook in
//! `relay/dovecot/push_notification.lua` of the repository. Notifications go to
//! `notification_url` of `chatmail.ini`; HTTPS certificates are checked against the
//! system trust store, which `SSL_CERT_FILE`/`SSL_CERT_DIR` override as for OpenSSL.
//! The environment variable [`TIME_SCALE_ENV`] shortens retry delays and exists
//! for tests only.
#![forbid(unsafe_code)]

mod appversions;
mod error;
mod handler;
mod json_dump;
mod manual;
mod metrics;
mod notifier;
mod push;
mod queue;
mod scaled_clock;
mod scheduler;
mod tokens;
mod turn;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use chatmaild::Config;
use chatmaild::service;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use error::Error;
pub use handler::MetadataService;
pub use notifier::Notifier;
pub use scaled_clock::{Clock, TIME_SCALE_ENV};
pub use tokens::MAX_TOKEN_LEN;

/// The manual of this package's binary.
pub const MANUALS: &[&chatmaild::manual::Page] = &[&manual::PAGE];

/// What the fuzz targets drive beneath the public list (feature `internals`, never on in
/// a service build).
#[cfg(feature = "internals")]
pub mod internals {
    pub use crate::queue::{decode, encode};
}

/// The binary's name, used in usage and log lines.
const NAME: &str = "chatmail-metadata";

/// Everything before serving (SPEC §5.1): refuse to start without the mailboxes
/// directory, create the queue directory, load the persisted queue, start the workers
/// (stopped by `stop`).
pub fn start(
    config: Arc<Config>,
    clock: Clock,
    stop: &CancellationToken,
) -> Result<MetadataService, Error> {
    let vmail = &config.mailboxes_dir;
    if !vmail.is_dir() {
        return Err(Error::NoMailboxesDir(vmail.clone()));
    }
    let queue_dir = vmail.join(queue::QUEUE_DIR);
    match std::fs::create_dir(&queue_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(&queue_dir, e)),
    }
    let store = tokens::TokenStore::new(vmail.clone());
    let notifier = Notifier::new(
        queue_dir.clone(),
        config.notification_url.clone(),
        push::http_client()?,
        store,
        clock,
        config.max_queued_notifications,
    );
    let items = queue::load_dir(&queue_dir)?;
    info!(url = %config.notification_url, "sending notifications");
    if !items.is_empty() {
        info!("re-queued {} pending notification(s)", items.len());
    }
    notifier.load(items);
    notifier.start(stop);
    Ok(MetadataService::new(config, notifier, clock))
}

/// Serves `listener` until `stop`, and the service's metrics on `metrics_socket`; the
/// notification workers stop with it.
pub async fn run(
    listener: tokio::net::UnixListener,
    metrics_socket: &Path,
    service: MetadataService,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let service = Arc::new(service);
    service::spawn_dict_metrics(metrics_socket, &service, &stop);
    service::serve_dict(listener, service, stop).await
}

/// The whole program: `chatmail-metadata SOCKET_PATH INI_PATH`.
pub fn main_entry() -> ExitCode {
    service::run_dict_daemon(&manual::PAGE, |config, stop| {
        let clock = Clock::from_env()?;
        start(config, clock, stop)
    })
}
