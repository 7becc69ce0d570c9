//! chatmail-metadata: the IMAP METADATA dict service of a chatmail relay (SPEC §5).
//!
//! Dovecot's `mail_attribute_dict` talks to this service over the dict protocol. It stores
//! device tokens per user in `metadata.json`, answers the relay's shared keys (iroh relay,
//! TURN credentials, SMTP recipient limit, app versions) and, when Dovecot's LMTP push
//! hook sets `/private/messagenew`, queues one push notification per device token in a
//! persistent queue that survives restarts and crashes, then posts them to the
//! notification service with exponential back-off.
//!
//! Dovecot side: `mail_attribute_dict = proxy:<socket>:metadata` and `imap_metadata = yes`;
//! for notifications, the LMTP `push_notification_lua` driver with the hook in
//! `relay/dovecot/push_notification.lua` of the repository. Notifications go to
//! `notification_url` of `chatmail.ini`; HTTPS certificates are checked against the
//! system trust store, which `SSL_CERT_FILE`/`SSL_CERT_DIR` override as for OpenSSL.
//! The environment variable [`clock::TIME_SCALE_ENV`] shortens retry delays and exists
//! for tests only.
#![forbid(unsafe_code)]

pub mod appversions;
pub mod clock;
pub mod error;
pub mod handler;
pub mod metrics;
pub mod notifier;
pub mod pyjson;
pub mod queue;
pub mod tokens;
pub mod turn;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use chatmaild::Config;
use chatmaild::dict::server::{Limits, serve};
use chatmaild::service;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub use clock::Clock;
pub use error::Error;
pub use handler::MetadataService;
pub use notifier::Notifier;

/// The binary's name, used in usage and log lines.
pub const NAME: &str = "chatmail-metadata";

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
        notifier::http_client()?,
        store,
        clock,
    );
    let items = queue::load_dir(&queue_dir)?;
    info!(url = %config.notification_url, "sending notifications");
    if !items.is_empty() {
        info!("re-queued {} pending notification(s)", items.len());
    }
    for item in items {
        notifier.queue(item, 0);
    }
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
    let s = service.clone();
    chatmaild::metrics::spawn_publisher(
        metrics_socket,
        Arc::new(move |enc: &mut chatmaild::metrics::Encoder| {
            chatmaild::dict::DictHandler::render_metrics(s.as_ref(), enc)
        }),
        stop.clone(),
    );
    let result = serve(listener, service, stop.clone(), Limits::default()).await;
    stop.cancel();
    result
}

/// The whole program: `chatmail-metadata SOCKET_PATH INI_PATH`.
pub fn main_entry() -> ExitCode {
    let (socket, ini) = match service::parse_socket_and_ini(NAME, std::env::args_os().skip(1)) {
        Ok(v) => v,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(service::EXIT_USAGE);
        }
    };
    service::init_tracing();
    let config = match Config::load(&ini) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            error!("{e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let clock = match Clock::from_env() {
        Ok(c) => c,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(e.exit_code());
        }
    };
    service::raise_nofile_limit();
    let runtime = match chatmaild::service::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(daemon(&socket, config, clock))
}

async fn daemon(socket: &Path, config: Arc<Config>, clock: Clock) -> ExitCode {
    let stop = match service::shutdown_token() {
        Ok(t) => t,
        Err(e) => {
            error!("cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let service = match start(config, clock, &stop) {
        Ok(s) => s,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let listener = match service::bind_unix(socket) {
        Ok(l) => l,
        Err(e) => {
            error!("{e}");
            stop.cancel();
            return ExitCode::FAILURE;
        }
    };
    info!(socket = %socket.display(), "{NAME} entering serving loop");
    service::notify_ready();
    let metrics_socket = chatmaild::metrics::socket_path(socket);
    let result = run(listener, &metrics_socket, service, stop).await;
    service::notify_stopping();
    match result {
        Ok(()) => {
            info!("{NAME} stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            warn!("{NAME} stopped on accept error: {e}");
            ExitCode::FAILURE
        }
    }
}
