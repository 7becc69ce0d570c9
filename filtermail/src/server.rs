//! The SMTP listener: the accept loop, and per connection the shared driver
//! ([`chatmail_smtp::serve`]) with filtermail's envelope rules and filter chain. Many
//! sessions run at once (one task each, bounded by a semaphore); idle clients get `421` and
//! are closed. On shutdown accepting stops, a session waiting for a command gets `421` and
//! is closed at once (RFC 5321 §3.8), and a session receiving or processing a message gets
//! a grace period to finish it, then its `421`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatmail_smtp::server::{IDLE_TIMEOUT, Replied, Service, Settings};
use chatmail_smtp::{Protocol, Reply, Reservation, Rules, Transaction};
use chatmaild::accept::accept_loop;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::Filter;
use crate::error::Error;
use crate::smtp::{Envelopes, envelope};

/// Log line tests wait for before connecting (SPEC §6.1).
pub const LOG_SERVING: &str = "entering serving loop";
/// Most sessions served at once; further clients wait in the listen queue.
const MAX_SESSIONS: usize = 2048;
/// Time sessions in flight get to finish after a stop request.
const GRACE: Duration = Duration::from_secs(30);

/// Serves SMTP on `listener` until `stop` is cancelled.
pub async fn run(
    listener: TcpListener,
    filter: Arc<Filter>,
    stop: CancellationToken,
) -> Result<(), Error> {
    run_with(listener, filter, stop, IDLE_TIMEOUT).await
}

/// [`run`] with another idle timeout (tests shorten it).
pub async fn run_with(
    listener: TcpListener,
    filter: Arc<Filter>,
    stop: CancellationToken,
    idle_timeout: Duration,
) -> Result<(), Error> {
    let service = Arc::new(Smtp {
        settings: Settings {
            protocol: Protocol::Smtp,
            max_message_size: filter.max_message_size,
            advertise_size: true,
            budget: Arc::clone(&filter.budget),
            idle_timeout,
        },
        filter,
    });
    let result = accept_loop(&listener, MAX_SESSIONS, &stop, GRACE, |(stream, peer)| {
        let service = Arc::clone(&service);
        let stop = stop.clone();
        async move {
            let _in_flight = service.filter.metrics.session();
            if let Err(e) = chatmail_smtp::serve_tcp(stream, &*service, &stop).await {
                debug!(%peer, "session ended: {e}");
            }
        }
    })
    .await
    .map_err(Error::Accept);
    info!("stopped");
    result
}

/// The filter as a service of the connection driver.
struct Smtp {
    settings: Settings,
    filter: Arc<Filter>,
}

impl Service for Smtp {
    type Recipient = String;

    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn rules(&self) -> impl Rules<Recipient = String> + '_ {
        Envelopes {
            mode: self.filter.mode,
            local: Some(&self.filter.local),
            limiter: self.filter.limiter.as_ref(),
            now: Instant::now(),
        }
    }

    async fn message(
        &self,
        tx: Transaction<String>,
        message: Vec<u8>,
        held: Reservation,
    ) -> Vec<Reply> {
        let (env, params) = envelope(tx);
        let reply = self.filter.process(env, params, message).await;
        drop(held);
        vec![reply]
    }

    fn replied(&self, what: Replied, reply: &Reply) {
        match what {
            Replied::Command => self.filter.metrics.command(reply),
            Replied::Message => self.filter.metrics.message(reply),
        }
    }
}
