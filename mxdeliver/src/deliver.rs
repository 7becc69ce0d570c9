//! Delivery of one message to the recipients of one destination domain (SPEC §6.12).
//!
//! Resolve the domain, then per MX host in preference order: HTTPS `/mxdeliv` (unless the host
//! recently took mail only over SMTP), then SMTP with mandatory `STARTTLS`. Remote rejections are
//! passed back with their class; connection-level failures move on to the next host. The result
//! is always a [`Reply`], and only an actual delivery is a 2xx.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::dns::{Dns, HttpResolver, MxAnswer};
use crate::error::Error;
use crate::lmtp::Destination;
use crate::metrics::{FailureClass, Path as DeliveryPath, TransportMetrics};
use crate::smtp_client::{Envelope, Failure, SmtpConn, Target, TlsMode};
use crate::tls::{CertPolicy, TlsConfigs};
use crate::transport_reply::{Reply, TransportReply};
use chatmail_smtp::Pool;

mod https;

/// How long a host that took mail over SMTP is not asked over HTTPS again.
const SMTP_ONLY_FOR: Duration = Duration::from_secs(30 * 60);
/// Idle SMTP connections are reused for this long.
const IDLE_REUSE: Duration = Duration::from_secs(100);
/// Idle connections kept per host.
const IDLE_PER_HOST: usize = 16;
/// Entries of the SMTP-only memory before expired ones are pruned.
const SMTP_ONLY_MAX: usize = 10_000;
/// Timeout of the HTTPS `/mxdeliv` request.
const HTTPS_TIMEOUT: Duration = Duration::from_secs(60);
/// A whole domain delivery must end well before Postfix's 600 s `lmtp_data_done_timeout`.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(540);

/// Ports and TLS settings of the delivery side.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// The name sent in `EHLO` (`mail_domain`).
    pub ehlo_name: String,
    /// Remote SMTP port (25).
    pub smtp_port: u16,
    /// Remote HTTPS port (443).
    pub https_port: u16,
}

/// One domain's share of a message.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Where the recipients' domain points.
    pub destination: Destination,
    /// Reverse path, empty for the null sender.
    pub sender: String,
    /// Recipients of that domain, in RCPT order.
    pub recipients: Vec<String>,
    /// The message in wire form (dot-stuffed, ending with the `.` line).
    pub wire: Bytes,
    /// The client's `MAIL FROM` carried `SMTPUTF8`.
    pub smtputf8: bool,
}

/// Shared delivery state: resolver, TLS, HTTPS clients, SMTP-only memory, idle connections.
#[derive(Debug)]
pub struct Deliverer {
    dns: Dns,
    tls: TlsConfigs,
    https_verified: reqwest::Client,
    https_any: reqwest::Client,
    settings: DeliverySettings,
    smtp_only: Mutex<HashMap<String, Instant>>,
    idle: Pool<SmtpConn>,
    metrics: Arc<TransportMetrics>,
}

/// How a batch ended, for the counters.
type Outcome = Result<DeliveryPath, FailureClass>;

/// What one host attempt gave.
enum HostResult {
    Done(Reply),
    Failed(String),
}

/// The counter class of a host's final reply: one of our two success replies, or the
/// peer's refusal passed on.
fn outcome_of(reply: &Reply) -> Outcome {
    if *reply == Reply::OK_HTTPS {
        Ok(DeliveryPath::Https)
    } else if reply.is_success() {
        Ok(DeliveryPath::Smtp)
    } else if reply.code() < 500 {
        Err(FailureClass::RejectedTemporary)
    } else {
        Err(FailureClass::RejectedPermanent)
    }
}

impl Deliverer {
    /// Builds the HTTPS clients; fails only on a broken TLS setup.
    pub fn new(dns: Dns, tls: TlsConfigs, settings: DeliverySettings) -> Result<Self, Error> {
        let client = |cfg: tokio_rustls::rustls::ClientConfig| {
            reqwest::Client::builder()
                .use_preconfigured_tls(cfg)
                .dns_resolver(Arc::new(HttpResolver(dns.clone())))
                .no_proxy()
                .http1_only()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(HTTPS_TIMEOUT)
                .pool_idle_timeout(IDLE_REUSE)
                .build()
                .map_err(Error::Http)
        };
        Ok(Deliverer {
            https_verified: client(tls.https_verified.clone())?,
            https_any: client(tls.https_any.clone())?,
            dns,
            tls,
            settings,
            smtp_only: Mutex::default(),
            idle: Pool::new(IDLE_PER_HOST, IDLE_REUSE),
            metrics: Arc::default(),
        })
    }

    /// Counts into `metrics` instead of counters of its own.
    pub fn with_metrics(mut self, metrics: Arc<TransportMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Delivers a batch and returns the reply for each of its recipients.
    pub async fn deliver(&self, batch: &Batch) -> Reply {
        self.metrics.in_flight.inc();
        let started = Instant::now();
        let (reply, outcome) = tokio::time::timeout(DELIVERY_DEADLINE, self.deliver_inner(batch))
            .await
            .unwrap_or((Reply::DELIVERY_TIMEOUT, Err(FailureClass::Timeout)));
        self.metrics.duration.observe_duration(started.elapsed());
        self.metrics.in_flight.dec();
        match outcome {
            Ok(path) => self.metrics.delivered(path),
            Err(class) => self.metrics.failed(class),
        }
        let destination = batch.destination.key();
        if reply.is_success() {
            tracing::debug!(%destination, %reply, "delivered");
        } else {
            tracing::info!(%destination, %reply, "delivery failed");
        }
        reply
    }

    async fn deliver_inner(&self, batch: &Batch) -> (Reply, Outcome) {
        let (hosts, policy, tls_mode) = match &batch.destination {
            Destination::Literal(ip) => (
                vec![(ip.to_string(), Some(vec![*ip]))],
                CertPolicy::AcceptInvalid,
                TlsMode::Required,
            ),
            Destination::Name(domain) => {
                let hosts = match self.dns.mx(domain).await {
                    MxAnswer::Hosts(h) => h.into_iter().map(|h| (h, None)).collect(),
                    MxAnswer::NullMx => return (Reply::NULL_MX, Err(FailureClass::NullMx)),
                    MxAnswer::NxDomain => {
                        return (
                            Reply::no_such_domain(domain),
                            Err(FailureClass::NoSuchDomain),
                        );
                    }
                    MxAnswer::TempFail => {
                        return (Reply::dns_failed(domain), Err(FailureClass::DnsTempfail));
                    }
                };
                // `_`-domains cannot have a publicly trusted certificate (SPEC §6.12).
                let policy = if domain.starts_with('_') {
                    CertPolicy::AcceptInvalid
                } else {
                    CertPolicy::Verify
                };
                // nauta.cu's MX offers no TLS at all (SPEC §6.12).
                let tls_mode = if domain == "nauta.cu" {
                    TlsMode::None
                } else {
                    TlsMode::Required
                };
                (hosts, policy, tls_mode)
            }
        };
        let mut last = (String::new(), String::from("no MX host"));
        for (host, addrs) in hosts {
            match self.try_host(batch, &host, addrs, policy, tls_mode).await {
                HostResult::Done(reply) => {
                    let outcome = outcome_of(&reply);
                    return (reply, outcome);
                }
                HostResult::Failed(e) => {
                    tracing::info!(host = %host, error = %e, "delivery attempt failed");
                    last = (host, e);
                }
            }
        }
        (
            Reply::all_hosts_failed(&last.0, &last.1),
            Err(FailureClass::Unreachable),
        )
    }

    async fn try_host(
        &self,
        batch: &Batch,
        host: &str,
        addrs: Option<Vec<IpAddr>>,
        policy: CertPolicy,
        tls_mode: TlsMode,
    ) -> HostResult {
        if !self.is_smtp_only(host) {
            match self.post(batch, host, policy).await {
                Ok(()) => return HostResult::Done(Reply::OK_HTTPS),
                Err(e) => {
                    self.metrics.https_fallbacks.inc();
                    tracing::debug!(host, error = %e, "HTTPS delivery failed, trying SMTP");
                }
            }
        }
        let envelope = Envelope {
            sender: &batch.sender,
            recipients: &batch.recipients,
            wire: &batch.wire,
            smtputf8: batch.smtputf8,
        };
        // A connection is only reused under the same verification and TLS requirements it was
        // opened with: an unverified session must never carry mail for a verified destination.
        let pool_key = format!("{host} {policy:?} {tls_mode:?}");
        if let Some(done) = self.try_idle(host, &pool_key, envelope).await {
            return done;
        }
        let addrs = match addrs {
            Some(a) => a,
            None => match self.dns.addresses(host).await {
                Ok(a) => a,
                Err(e) => return HostResult::Failed(e),
            },
        };
        let target = Target {
            host: host.to_owned(),
            addrs,
            port: self.settings.smtp_port,
            tls: tls_mode,
            tls_config: self.tls.smtp(policy),
        };
        let mut conn = match SmtpConn::open(&target, &self.settings.ehlo_name).await {
            Ok(c) => c,
            Err(Failure::Connection(e)) => return HostResult::Failed(e.to_string()),
            Err(Failure::Rejected(r)) => return HostResult::Failed(r.to_string()),
        };
        match conn.send(envelope).await {
            Ok(()) => self.smtp_delivered(host, &pool_key, conn),
            Err(Failure::Rejected(r)) => {
                self.put_idle(&pool_key, conn);
                HostResult::Done(Reply::forwarded(&r, host))
            }
            Err(Failure::Connection(e)) => HostResult::Failed(e.to_string()),
        }
    }

    /// Delivers over a kept connection, if there is one that is still good; `None` when a
    /// fresh connection must decide.
    async fn try_idle(
        &self,
        host: &str,
        pool_key: &str,
        envelope: Envelope<'_>,
    ) -> Option<HostResult> {
        let mut conn = self.take_idle(pool_key).await?;
        match conn.send(envelope).await {
            Ok(()) => Some(self.smtp_delivered(host, pool_key, conn)),
            Err(Failure::Rejected(r)) => {
                self.put_idle(pool_key, conn);
                Some(HostResult::Done(Reply::forwarded(&r, host)))
            }
            // A dropped idle connection; a fresh one decides.
            Err(Failure::Connection(e)) => {
                tracing::debug!(host, error = %e, "reused connection failed");
                None
            }
        }
    }

    fn smtp_delivered(&self, host: &str, pool_key: &str, conn: SmtpConn) -> HostResult {
        {
            let mut map = self
                .smtp_only
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if map.len() >= SMTP_ONLY_MAX {
                map.retain(|_, t| t.elapsed() < SMTP_ONLY_FOR);
            }
            map.insert(host.to_owned(), Instant::now());
        }
        self.put_idle(pool_key, conn);
        HostResult::Done(Reply::OK_SMTP)
    }

    fn is_smtp_only(&self, host: &str) -> bool {
        let map = self
            .smtp_only
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(host).is_some_and(|t| t.elapsed() < SMTP_ONLY_FOR)
    }

    async fn take_idle(&self, key: &str) -> Option<SmtpConn> {
        loop {
            let mut conn = self.idle.take(key)?;
            if conn.reset().await {
                return Some(conn);
            }
        }
    }

    fn put_idle(&self, key: &str, conn: SmtpConn) {
        self.idle.put(key, conn);
    }

    /// Closes idle connections past their reuse time (called periodically).
    pub async fn prune_idle(&self) {
        for conn in self.idle.expired() {
            conn.quit().await;
        }
    }
}
