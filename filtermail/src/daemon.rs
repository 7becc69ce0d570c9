//! The two daemon life cycles of filtermail (SPEC §6.1): the before-queue filter (SMTP, and
//! HTTP `/mxdeliv` in incoming mode) and transport mode (LMTP, the `mxdeliver` crate). The
//! start-up and stop around them are `chatmaild::service::run_daemon`'s.

use std::path::Path;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use chatmaild::service;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::dkim::{self, DkimVerifier};
use crate::error::Error;
use crate::filter::Filter;
use crate::smtp::Mode;
use crate::{host_port, http, metrics, server};

/// What serves until the daemon stops: both life cycles end in one of these.
type Serving = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

/// The whole daemon after argument parsing: `mode` is the filter's, `None` is transport
/// mode. Every failure is logged and exits 1, as the reference's filtermail does.
pub fn main(ini: &Path, mode: Option<Mode>) -> ExitCode {
    let logged = |e: Error| {
        error!("{e}");
        ExitCode::FAILURE
    };
    service::run_daemon(|stop| async move {
        let serving = match mode {
            Some(mode) => start_filter(ini, mode, stop).await,
            None => start_transport(ini, stop).await,
        }
        .map_err(logged)?;
        Ok(async move { serving.await.map_or_else(logged, |()| ExitCode::SUCCESS) })
    })
}

/// The DKIM verifier of incoming mode, unless the environment asks to skip the check.
fn dkim_verifier(config: &chatmaild::Config, mode: Mode) -> Result<Option<DkimVerifier>, Error> {
    if mode != Mode::Incoming {
        return Ok(None);
    }
    if dkim::skip_requested(std::env::var(dkim::ENV_SKIP).ok().as_deref()) {
        warn!("{}", dkim::LOG_SKIPPED);
        return Ok(None);
    }
    let nameserver = match std::env::var(dkim::ENV_RESOLVER) {
        Ok(v) => Some(v.parse().map_err(|e| Error::Env {
            name: dkim::ENV_RESOLVER,
            reason: format!("{v:?}: {e}"),
        })?),
        Err(_) => None,
    };
    Ok(Some(DkimVerifier::new(nameserver)?.with_max_signatures(
        config.filtermail_max_dkim_signatures,
    )))
}

/// The before-queue filter's start (SPEC §6.1): config, DKIM set-up, bind, the
/// serving-loop log line; the returned future serves until `stop`.
async fn start_filter(ini: &Path, mode: Mode, stop: CancellationToken) -> Result<Serving, Error> {
    let config = chatmaild::Config::load(ini)?;
    let verifier = dkim_verifier(&config, mode)?;
    let port = match mode {
        Mode::Outgoing => config.filtermail_smtp_port,
        Mode::Incoming => config.filtermail_smtp_port_incoming,
    };
    let addr = host_port(&config.filtermail_host, port);
    let listener = match mode {
        Mode::Outgoing => bind_outgoing(&addr).await?,
        Mode::Incoming => bind(&addr).await?,
    };
    // Incoming mode also takes mail over HTTP (SPEC §6.11).
    let http = if mode == Mode::Incoming {
        let http_addr = host_port(
            &config.filtermail_host,
            config.filtermail_http_port_incoming,
        );
        let l = bind(&http_addr).await?;
        Some((l, http_addr))
    } else {
        None
    };
    let fallback = verifier
        .as_ref()
        .and_then(|v| v.resolver_fallback().map(str::to_owned));
    let filter = Arc::new(Filter::new(&config, mode, verifier));
    service::raise_nofile_limit();
    match &http {
        Some((_, http_addr)) => info!(%addr, %http_addr, ?mode, "{}", server::LOG_SERVING),
        None => info!(%addr, ?mode, "{}", server::LOG_SERVING),
    }
    if let Some(why) = fallback {
        warn!("{why}");
    }
    // After the serving line, which stays the first line of a start.
    publish_metrics(mode, &filter, &stop);
    Ok(match http {
        Some((http_listener, _)) => Box::pin(async move {
            let (smtp, http) = tokio::join!(
                stop_all_on_error(
                    server::run(listener, Arc::clone(&filter), stop.clone()),
                    &stop
                ),
                stop_all_on_error(
                    http::run(http_listener, Arc::clone(&filter), stop.clone()),
                    &stop
                ),
            );
            smtp.and(http)
        }),
        None => Box::pin(server::run(listener, filter, stop)),
    })
}

/// Transport mode (SPEC §6.12): the LMTP server behind Postfix's `default_transport` that
/// delivers to other relays, implemented by the `mxdeliver` crate. Start-up, readiness and
/// stop on SIGTERM/SIGINT work as in the filter modes.
async fn start_transport(ini: &Path, stop: CancellationToken) -> Result<Serving, Error> {
    let config = Arc::new(chatmaild::Config::load(ini)?);
    let addr = host_port(
        &config.filtermail_host,
        config.filtermail_lmtp_port_transport,
    );
    let listener = bind(&addr).await?;
    service::raise_nofile_limit();
    info!(%addr, mode = "Transport", "{}", server::LOG_SERVING);
    let options = mxdeliver::TransportOptions::default();
    let counters = Arc::clone(&options.metrics);
    chatmaild::metrics::spawn_publisher(
        &chatmaild::metrics::socket_from_env(metrics::default_socket(None)),
        Arc::new(move |enc: &mut chatmaild::metrics::Encoder| counters.render(enc)),
        stop.clone(),
    );
    Ok(Box::pin(async move {
        let result = mxdeliver::run(config, listener, stop, options)
            .await
            .map_err(Error::from);
        info!("stopped");
        result
    }))
}

/// Publishes `filter`'s counters on the metrics socket of `mode` until `stop`.
fn publish_metrics(mode: Mode, filter: &Arc<Filter>, stop: &CancellationToken) {
    let f = Arc::clone(filter);
    chatmaild::metrics::spawn_publisher(
        &chatmaild::metrics::socket_from_env(metrics::default_socket(Some(mode))),
        Arc::new(move |enc: &mut chatmaild::metrics::Encoder| f.metrics.render(enc)),
        stop.clone(),
    );
}

/// Runs `listener`; if it fails, the other listeners of the process are stopped too, so
/// the service exits (and is restarted) instead of running half-deaf.
async fn stop_all_on_error(
    listener: impl Future<Output = Result<(), Error>>,
    stop: &CancellationToken,
) -> Result<(), Error> {
    let result = listener.await;
    if result.is_err() {
        stop.cancel();
    }
    result
}

/// The outgoing filter's listening socket: the one systemd passed (`filtermail.socket`), or
/// a fresh bind to `addr`. With the socket unit, Postfix's submissions wait in the socket's
/// backlog while the filter restarts (an upgrade) instead of failing with a 451 "queue file
/// write error" for the client.
async fn bind_outgoing(addr: &str) -> Result<tokio::net::TcpListener, Error> {
    if std::env::var_os("LISTEN_FDS").is_some()
        && let Ok(socket_addr) = addr.parse()
    {
        return Ok(service::bind_tcp(socket_addr)?);
    }
    bind(addr).await
}

/// A listening TCP socket on `addr`.
async fn bind(addr: &str) -> Result<tokio::net::TcpListener, Error> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind {
            addr: addr.to_owned(),
            source,
        })
}
