//! filtermail: the Postfix before-queue SMTP filter of a chatmail relay (SPEC §6).
//!
//! Outgoing mode checks what our users submit, incoming mode what other servers deliver:
//! cleartext is refused unless it is one of the few allowed exceptions, senders are rate
//! limited, incoming mail must carry an aligned DKIM signature, and accepted mail is
//! reinjected into Postfix unchanged.
//!
//! The layers are separate so other front ends can reuse them: [`policy`] and [`mime`] /
//! [`openpgp`] are pure; [`dkim`] and [`reinject`] do the network work; [`Filter`] chains
//! them for one message; [`server`] is the SMTP listener (with the protocol state machines
//! in [`smtp`]) and [`http`] the `/mxdeliv` listener of incoming mode. Transport mode runs
//! the `mxdeliver` crate ([`serve_transport`]).
#![forbid(unsafe_code)]

pub mod budget;
pub mod dkim;
pub mod error;
pub mod http;
pub mod metrics;
pub mod mime;
pub mod openpgp;
pub mod policy;
pub mod ratelimit;
pub mod reinject;
pub mod reply;
pub mod server;
pub mod smtp;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chatmaild::Config;

pub use error::Error;
pub use policy::{Envelope, MailParams, Verdict, check_incoming, check_outgoing};
pub use reply::{FilterReply, Reply};
pub use smtp::Mode;

use tracing::{info, warn};

use crate::budget::MemoryBudget;
use crate::dkim::DkimVerifier;
use crate::ratelimit::RateLimiter;
use crate::reinject::Reinjector;

/// Messages up to this size are checked on the I/O thread: parsing them takes
/// microseconds, less than handing them to the blocking pool and back.
const INLINE_CHECK_MAX: usize = 256 * 1024;
/// Time allowed for connecting to the reinjection port and for each of its replies.
const REINJECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything needed to decide about and pass on one message; shared by all connections.
#[derive(Debug)]
pub struct Filter {
    /// Outgoing or incoming policy.
    pub mode: Mode,
    /// Where `enforceE2EEincoming` markers live.
    pub mailboxes_dir: PathBuf,
    /// `max_message_size` in bytes.
    pub max_message_size: u64,
    /// The outgoing send rate limit (outgoing mode only).
    pub limiter: Option<RateLimiter>,
    /// DKIM verification (incoming mode, unless skipped).
    pub dkim: Option<DkimVerifier>,
    /// Where accepted mail goes.
    pub reinjector: Reinjector,
    /// Message bytes in flight, SMTP and HTTP together (`filtermail_memory_budget`).
    pub budget: Arc<MemoryBudget>,
    /// What this filter counts (published on its metrics socket).
    pub metrics: metrics::Metrics,
}

/// The memory budget for `config`: `filtermail_memory_budget`, but never less than one
/// message of `max_message_size` (a smaller budget would defer such messages forever).
pub fn memory_budget_bytes(config: &Config) -> u64 {
    config
        .filtermail_memory_budget_mb
        .saturating_mul(1024 * 1024)
        .max(config.max_message_size)
}

impl Filter {
    /// The filter for `mode` as `config` describes it. `dkim` is the verifier for incoming
    /// mode (`None` skips the check).
    pub fn new(config: &Config, mode: Mode, dkim: Option<DkimVerifier>) -> Filter {
        let port = match mode {
            Mode::Outgoing => config.postfix_reinject_port,
            Mode::Incoming => config.postfix_reinject_port_incoming,
        };
        Filter {
            mode,
            mailboxes_dir: config.mailboxes_dir.clone(),
            max_message_size: config.max_message_size,
            limiter: (mode == Mode::Outgoing).then(|| {
                RateLimiter::new(
                    config.max_user_send_per_minute,
                    config.max_user_send_burst_size,
                )
            }),
            dkim: if mode == Mode::Incoming { dkim } else { None },
            reinjector: Reinjector::new(host_port(&config.postfix_host, port), REINJECT_TIMEOUT),
            budget: MemoryBudget::new(memory_budget_bytes(config)),
            metrics: metrics::Metrics::new(mode),
        }
    }

    /// The policy of this filter's mode.
    pub fn check(&self, env: &Envelope, message: &[u8]) -> Verdict {
        match self.mode {
            Mode::Outgoing => check_outgoing(env, message),
            Mode::Incoming => check_incoming(env, message, &self.mailboxes_dir),
        }
    }

    /// Policy, DKIM and reinjection for one received message; the reply for the client.
    pub async fn process(
        self: &Arc<Self>,
        env: Envelope,
        params: MailParams,
        message: Vec<u8>,
    ) -> Reply {
        let _timer = self.metrics.timer();
        let (verdict, env, message) = if message.len() <= INLINE_CHECK_MAX {
            let verdict = self.check(&env, &message);
            (verdict, env, message)
        } else {
            // MIME parsing of a large message is CPU work: keep it off the I/O threads.
            let this = Arc::clone(self);
            let checked = tokio::task::spawn_blocking(move || {
                let verdict = this.check(&env, &message);
                (verdict, env, message)
            })
            .await;
            match checked {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!("policy check failed: {e}");
                    return Reply::LOCAL_ERROR;
                }
            }
        };
        let accepted = match verdict {
            Verdict::Accept(a) => a,
            Verdict::Reject(reply) => return reply,
        };
        let message = if self.dkim.is_some() {
            let checked = self.verify_dkim(message, accepted.from_addr).await;
            self.metrics.dkim(&checked);
            match checked {
                Ok(m) => m,
                Err(reply) => return reply,
            }
        } else {
            message
        };
        let sender = if accepted.null_sender {
            ""
        } else {
            env.mail_from.as_str()
        };
        let reply = self
            .reinjector
            .send(sender, &env.rcpt_to, params.smtputf8, &message)
            .await;
        self.metrics.reinjected(&reply, message.len());
        reply
    }
}

impl Filter {
    /// DKIM (SPEC §6.10) on a blocking thread: header parsing and body hashing of a large
    /// message are CPU work that must not stall the I/O threads; the DNS lookups run on the
    /// runtime from there. The whole check is bounded by [`dkim::VERIFY_DEADLINE`].
    async fn verify_dkim(
        self: &Arc<Self>,
        message: Vec<u8>,
        from_addr: String,
    ) -> Result<Vec<u8>, Reply> {
        let this = Arc::clone(self);
        let handle = tokio::runtime::Handle::current();
        let task = tokio::task::spawn_blocking(move || {
            let result = match &this.dkim {
                Some(dkim) => handle.block_on(dkim.verify(&message, &from_addr)),
                None => Ok(()),
            };
            (result, message)
        });
        match tokio::time::timeout(dkim::VERIFY_DEADLINE + Duration::from_secs(5), task).await {
            Ok(Ok((Ok(()), message))) => Ok(message),
            Ok(Ok((Err(reply), _))) => Err(reply),
            Ok(Err(e)) => {
                tracing::error!("DKIM check failed: {e}");
                Err(Reply::LOCAL_ERROR)
            }
            Err(_) => {
                warn!("DKIM check timed out");
                Err(Reply::DKIM_TEMPFAIL)
            }
        }
    }
}

/// `host:port`, with brackets around an IPv6 literal.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The whole daemon after argument parsing (SPEC §6.1): config, DKIM set-up, bind, the
/// serving-loop log line, readiness, serve until SIGTERM/SIGINT.
pub async fn serve(ini: &std::path::Path, mode: Mode) -> Result<(), Error> {
    let config = chatmaild::Config::load(ini)?;
    let verifier = if mode == Mode::Incoming {
        if dkim::skip_requested(std::env::var(dkim::ENV_SKIP).ok().as_deref()) {
            warn!("{}", dkim::LOG_SKIPPED);
            None
        } else {
            let nameserver = match std::env::var(dkim::ENV_RESOLVER) {
                Ok(v) => Some(v.parse().map_err(|e| Error::Env {
                    name: dkim::ENV_RESOLVER,
                    reason: format!("{v:?}: {e}"),
                })?),
                Err(_) => None,
            };
            Some(
                DkimVerifier::new(nameserver)?
                    .with_max_signatures(config.filtermail_max_dkim_signatures),
            )
        }
    } else {
        None
    };
    let port = match mode {
        Mode::Outgoing => config.filtermail_smtp_port,
        Mode::Incoming => config.filtermail_smtp_port_incoming,
    };
    let addr = host_port(&config.filtermail_host, port);
    let listener = bind(&addr).await?;
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
    let stop = chatmaild::service::shutdown_token().map_err(Error::Accept)?;
    chatmaild::service::raise_nofile_limit();
    match &http {
        Some((_, http_addr)) => info!(%addr, %http_addr, ?mode, "{}", server::LOG_SERVING),
        None => info!(%addr, ?mode, "{}", server::LOG_SERVING),
    }
    if let Some(why) = fallback {
        warn!("{why}");
    }
    // After the serving line, which stays the first line of a start.
    publish_metrics(mode, &filter, &stop);
    chatmaild::service::notify_ready();
    let result = match http {
        Some((http_listener, _)) => {
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
        }
        None => server::run(listener, filter, stop).await,
    };
    chatmaild::service::notify_stopping();
    result
}

/// Transport mode (SPEC §6.12): the LMTP server behind Postfix's `default_transport` that
/// delivers to other relays, implemented by the `mxdeliver` crate. Start-up, readiness and
/// stop on SIGTERM/SIGINT work as in the filter modes.
pub async fn serve_transport(ini: &std::path::Path) -> Result<(), Error> {
    let config = Arc::new(chatmaild::Config::load(ini)?);
    let addr = host_port(
        &config.filtermail_host,
        config.filtermail_lmtp_port_transport,
    );
    let listener = bind(&addr).await?;
    let stop = chatmaild::service::shutdown_token().map_err(Error::Accept)?;
    chatmaild::service::raise_nofile_limit();
    info!(%addr, mode = "Transport", "{}", server::LOG_SERVING);
    let options = mxdeliver::TransportOptions::default();
    let counters = Arc::clone(&options.metrics);
    chatmaild::metrics::spawn_publisher(
        &chatmaild::metrics::socket_from_env(metrics::default_socket(None)),
        Arc::new(move |enc: &mut chatmaild::metrics::Encoder| counters.render(enc)),
        stop.clone(),
    );
    chatmaild::service::notify_ready();
    let result = mxdeliver::run(config, listener, stop, options)
        .await
        .map_err(Error::from);
    chatmaild::service::notify_stopping();
    info!("stopped");
    result
}

/// Publishes `filter`'s counters on the metrics socket of `mode` until `stop`.
fn publish_metrics(mode: Mode, filter: &Arc<Filter>, stop: &tokio_util::sync::CancellationToken) {
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
    listener: impl std::future::Future<Output = Result<(), Error>>,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<(), Error> {
    let result = listener.await;
    if result.is_err() {
        stop.cancel();
    }
    result
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
