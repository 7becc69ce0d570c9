//! Delivery of outgoing mail to other relays: filtermail's `transport` mode (SPEC §6.12).
//!
//! Postfix hands every outgoing message to this LMTP server (`default_transport =
//! lmtp-filtermail:inet:[127.0.0.1]:<filtermail_lmtp_port_transport>`). Recipients are grouped
//! by domain and delivered concurrently, first over the remote relay's HTTPS `/mxdeliv`
//! endpoint, else over SMTP with mandatory `STARTTLS`, and Postfix gets one reply per recipient.
//! Every failure is a 4xx or 5xx reply, so Postfix keeps, retries or bounces the message:
//! nothing is acknowledged that was not delivered. A 2xx from `/mxdeliv` counts only in the
//! forms real peers confirm a delivery with (`https_delivered` in `deliver`); the crate's
//! README explains that choice and where a retry can still store a second copy.
//!
//! The crate is a library; filtermail's `transport` mode binds the listener and calls [`run`]:
//!
//! ```no_run
//! # async fn transport(config: std::sync::Arc<chatmaild::Config>) -> Result<(), Box<dyn std::error::Error>> {
//! let port = config.filtermail_lmtp_port_transport;
//! let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
//! let stop = tokio_util::sync::CancellationToken::new();
//! mxdeliver::run(config, listener, stop, mxdeliver::TransportOptions::default()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Module map (all private; this file says what is public): `lmtp` holds the envelope rules
//! of the LMTP dialogue (the command sequence and the connection driver are
//! `chatmail_smtp`'s), `server` serves connections and queue slots (`queue`), `deliver`
//! resolves (`dns`) and delivers over HTTPS or SMTP (`smtp_client`, `tls`);
//! `transport_reply` holds every reply text.
#![forbid(unsafe_code)]

mod deliver;
mod dns;
mod error;
mod lmtp;
mod metrics;
mod queue;
mod server;
mod smtp_client;
mod tls;
mod transport_reply;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chatmaild::accept::accept_loop;
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;

pub use error::Error;
pub use metrics::{FailureClass, Path as DeliveryPath, TransportMetrics};

/// What the fuzz targets drive beneath the public list (feature `internals`, never on in
/// a service build).
#[cfg(feature = "internals")]
pub mod internals {
    pub use crate::lmtp::Destinations;
    pub use crate::queue::Queues;
}

/// Concurrent LMTP connections (Postfix opens at most its process limit, 100 by default).
const MAX_CONNECTIONS: usize = 1000;
/// How long shutdown waits for connections with deliveries in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How often idle SMTP connections past their reuse time are closed.
const PRUNE_INTERVAL: Duration = Duration::from_secs(30);

/// Settings that differ between production and tests. `Default` is production.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// Ask only this DNS server (over UDP) instead of the `/etc/resolv.conf` resolvers.
    pub dns_server: Option<SocketAddr>,
    /// Upper bound for every DNS lookup; a lookup running longer gives a temporary failure.
    pub dns_timeout: Duration,
    /// Trust the system certificate store.
    pub system_roots: bool,
    /// Additional trust anchors (DER certificates), e.g. a test CA.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Port of the remote SMTP servers (25).
    pub smtp_port: u16,
    /// Port of the remote HTTPS `/mxdeliv` endpoints (443).
    pub https_port: u16,
    /// Messages in flight per destination domain (SPEC: 30).
    pub per_destination: usize,
    /// Destinations with messages in flight (SPEC: 500).
    pub max_destinations: usize,
    /// The delivery counters, for the caller to publish.
    pub metrics: Arc<metrics::TransportMetrics>,
    /// How long Postfix may stay silent on a connection.
    pub idle_timeout: Duration,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            dns_server: None,
            dns_timeout: Duration::from_secs(30),
            system_roots: true,
            extra_roots: Vec::new(),
            smtp_port: 25,
            https_port: 443,
            per_destination: queue::PER_DESTINATION,
            max_destinations: queue::MAX_DESTINATIONS,
            metrics: Arc::default(),
            idle_timeout: chatmail_smtp::server::IDLE_TIMEOUT,
        }
    }
}

/// Serves LMTP on `listener` until `stop` is cancelled, then lets connections finish their
/// deliveries for a short grace period.
pub async fn run(
    config: Arc<chatmaild::Config>,
    listener: TcpListener,
    stop: CancellationToken,
    opts: TransportOptions,
) -> Result<(), Error> {
    let dns = match opts.dns_server {
        Some(addr) => dns::Dns::with_server(addr, opts.dns_timeout),
        None => dns::Dns::system(opts.dns_timeout)?,
    };
    let tls = tls::TlsConfigs::new(opts.system_roots, &opts.extra_roots)?;
    let settings = deliver::DeliverySettings {
        ehlo_name: config.mail_domain.clone(),
        smtp_port: opts.smtp_port,
        https_port: opts.https_port,
    };
    let deliverer =
        Arc::new(deliver::Deliverer::new(dns, tls, settings)?.with_metrics(opts.metrics));
    let shared = Arc::new(server::Shared {
        queues: queue::Queues::with_limits(opts.per_destination, opts.max_destinations),
        deliverer: deliverer.clone(),
        settings: chatmail_smtp::Settings {
            protocol: chatmail_smtp::Protocol::Lmtp,
            max_message_size: config.max_message_size,
            // Postfix's LMTP client would bounce a message over an advertised SIZE; the
            // limit is enforced after the data, with the same reply as the filters.
            advertise_size: false,
            budget: chatmail_smtp::MemoryBudget::new(config.filtermail_memory_budget_bytes()),
            idle_timeout: opts.idle_timeout,
        },
    });
    let pruner = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PRUNE_INTERVAL);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => deliverer.prune_idle().await,
                }
            }
        })
    };
    tracing::info!("transport: entering serving loop");
    let result = accept_loop(
        &listener,
        MAX_CONNECTIONS,
        &stop,
        SHUTDOWN_GRACE,
        |(stream, _peer)| server::serve(stream, shared.clone(), stop.child_token()),
    )
    .await
    .map_err(Error::Accept);
    pruner.abort();
    result
}
