//! The filter chain for one message (SPEC §6): policy, DKIM, reinjection. Shared by the
//! SMTP listener ([`crate::server`]) and the `/mxdeliv` listener ([`crate::http`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chatmaild::Config;
use tracing::warn;

use crate::budget::MemoryBudget;
use crate::dkim::{self, DkimVerifier};
use crate::filter_reply::{FilterReply, Reply};
use crate::host_port;
use crate::local::Local;
use crate::policy::{Envelope, MailParams, PolicyVerdict, check_incoming, check_outgoing};
use crate::ratelimit::RateLimiter;
use crate::reinject::Reinjector;
use crate::smtp::Mode;

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
    /// Our domain and mailboxes: incoming envelopes are checked against them.
    pub local: Arc<Local>,
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
    pub metrics: crate::metrics::Metrics,
}

/// The memory budget for `config` ([`Config::filtermail_memory_budget_bytes`]).
pub fn memory_budget_bytes(config: &Config) -> u64 {
    config.filtermail_memory_budget_bytes()
}

impl Filter {
    /// The filter for `mode` as `config` describes it. `dkim` is the verifier for incoming
    /// mode (`None` skips the check).
    pub fn new(config: &Config, mode: Mode, dkim: Option<DkimVerifier>) -> Filter {
        let port = match mode {
            Mode::Outgoing => config.postfix_reinject_port,
            Mode::Incoming => config.postfix_reinject_port_incoming,
        };
        let reinject_addr = host_port(&config.postfix_host, port);
        Filter {
            mode,
            mailboxes_dir: config.mailboxes_dir.clone(),
            local: Arc::new(Local::new(config)),
            max_message_size: config.max_message_size,
            limiter: (mode == Mode::Outgoing).then(|| {
                RateLimiter::new(
                    config.max_user_send_per_minute,
                    config.max_user_send_burst_size,
                )
            }),
            dkim: if mode == Mode::Incoming { dkim } else { None },
            reinjector: match mode {
                Mode::Outgoing => Reinjector::new(reinject_addr, REINJECT_TIMEOUT),
                // Incoming mail must never come back as a bounce (see `reinject`).
                Mode::Incoming => {
                    Reinjector::new(reinject_addr, REINJECT_TIMEOUT).without_notifications()
                }
            },
            budget: MemoryBudget::new(memory_budget_bytes(config)),
            metrics: crate::metrics::Metrics::new(mode),
        }
    }

    /// The policy of this filter's mode.
    pub fn check(&self, env: &Envelope, message: &[u8]) -> PolicyVerdict {
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
            PolicyVerdict::Accept(a) => a,
            PolicyVerdict::Reject(reply) => return reply,
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
