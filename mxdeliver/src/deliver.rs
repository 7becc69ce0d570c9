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
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::dns::{Dns, HttpResolver, MxAnswer};
use crate::error::Error;
use crate::lmtp::Destination;
use crate::metrics::{FailureClass, Path as DeliveryPath, TransportMetrics};
use crate::reply::{Reply, TransportReply};
use crate::smtp_client::{Envelope, Failure, SmtpConn, Target, TlsMode};
use crate::tls::{CertPolicy, TlsConfigs};
use chatmail_smtp::Pool;

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

/// The most of a 2xx `/mxdeliv` body that is read: enough for any SMTP success line.
const VERDICT_HEAD: usize = 64;

/// Whether a 2xx answer of a peer's `/mxdeliv` says the message was delivered, the way the
/// peers that implement it say so:
/// - chatmail filtermail: status 200 with the SMTP reply of its DATA step as the body,
///   `250 OK`; so any body that starts with an SMTP 2xx reply (three digits, the first a
///   `2`, then a space, `-`, line end or nothing) counts;
/// - Madmail: status 200, no body and no `Content-Type` (Go's `net/http` after
///   `WriteHeader(200)` sends only `Content-Length: 0`).
///
/// Anything else is not a delivery: a web server that answers every POST with 200 sends a
/// page (HTML, JSON, `OK`) or an empty body with a type, and taking that for a delivery
/// would lose the message. The caller then tries SMTP (see the crate's README for why that
/// fallback, not a temporary failure, is the choice that neither loses nor multiplies).
/// `head` is at most the first 64 bytes of the body (all a success line needs).
pub fn https_delivered(status: u16, content_type: Option<&[u8]>, head: &[u8]) -> bool {
    if !(200..300).contains(&status) {
        return false;
    }
    let smtp_success = match head {
        [b'2', d1, d2, rest @ ..] if d1.is_ascii_digit() && d2.is_ascii_digit() => {
            matches!(rest.first(), None | Some(b' ' | b'-' | b'\r' | b'\n'))
        }
        _ => false,
    };
    let madmail = status == 200 && head.is_empty() && content_type.is_none();
    smtp_success || madmail
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

    /// The delivery counters.
    pub fn metrics(&self) -> &TransportMetrics {
        &self.metrics
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
        if let Some(mut conn) = self.take_idle(&pool_key).await {
            match conn.send(envelope).await {
                Ok(()) => return self.smtp_delivered(host, &pool_key, conn),
                Err(Failure::Rejected(r)) => {
                    self.put_idle(&pool_key, conn);
                    return HostResult::Done(Reply::forwarded(&r, host));
                }
                // A dropped idle connection; a fresh one decides.
                Err(Failure::Connection(e)) => {
                    tracing::debug!(host, error = %e, "reused connection failed")
                }
            }
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

    async fn post(&self, batch: &Batch, host: &str, policy: CertPolicy) -> Result<(), String> {
        let client = match policy {
            CertPolicy::Verify => &self.https_verified,
            CertPolicy::AcceptInvalid => &self.https_any,
        };
        let authority = match host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => host.to_owned(),
        };
        let url = format!("https://{authority}:{}/mxdeliv", self.settings.https_port);
        let mut headers = HeaderMap::new();
        let value =
            |a: &str| HeaderValue::from_bytes(a.as_bytes()).map_err(|e| format!("header: {e}"));
        if !batch.sender.is_empty() {
            headers.insert(
                HeaderName::from_static("x-mail-from"),
                value(&batch.sender)?,
            );
        }
        for rcpt in &batch.recipients {
            headers.append(HeaderName::from_static("x-mail-to"), value(rcpt)?);
        }
        // The body is the DATA form without the final "." line (SPEC §6.11).
        let body = batch.wire.slice(..batch.wire.len().saturating_sub(3));
        let resp = client
            .post(url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("{e}"))?;
        if !resp.status().is_success() {
            return Err(format!("HTTP status {}", resp.status()));
        }
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| v.as_bytes().to_vec());
        let mut resp = resp;
        let mut head = Vec::new();
        while head.len() < VERDICT_HEAD {
            match resp.chunk().await {
                Ok(Some(chunk)) => head.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => return Err(format!("reading response: {e}")),
            }
        }
        head.truncate(VERDICT_HEAD);
        if https_delivered(status, content_type.as_deref(), &head) {
            Ok(())
        } else {
            Err(format!(
                "HTTP status {status} without a delivery confirmation: {:?}",
                String::from_utf8_lossy(head.get(..head.len().min(40)).unwrap_or_default())
            ))
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_bodies() {
        let yes = |status, ct: Option<&str>, body: &str| {
            https_delivered(status, ct.map(str::as_bytes), body.as_bytes())
        };
        // chatmail filtermail, also with a type or a longer text.
        assert!(yes(200, None, "250 OK"));
        assert!(yes(200, Some("text/plain"), "250 OK"));
        assert!(yes(200, None, "250 2.0.0 Ok: queued as 1234"));
        assert!(yes(200, None, "250-first line\r\n250 last"));
        assert!(yes(200, None, "250\r\n"));
        assert!(yes(200, None, "250"));
        assert!(yes(202, None, "250 OK"));
        // Madmail: 200, empty, no type.
        assert!(yes(200, None, ""));
        // Web servers answering any POST.
        assert!(!yes(200, Some("text/html"), ""));
        assert!(!yes(200, Some("application/octet-stream"), ""));
        assert!(!yes(204, None, ""));
        assert!(!yes(201, None, ""));
        assert!(!yes(200, Some("text/html"), "<!DOCTYPE html><html>"));
        assert!(!yes(200, None, "OK"));
        assert!(!yes(200, Some("application/json"), r#"{"ok":true}"#));
        assert!(!yes(200, None, "\r\n250 OK"));
        assert!(!yes(200, None, " 250 OK"));
        assert!(!yes(200, None, "2500 OK"));
        assert!(!yes(200, None, "25 OK"));
        assert!(!yes(200, None, "2"));
        assert!(!yes(200, None, "2xx OK"));
        // Refusals in the body, whatever the status.
        assert!(!yes(200, None, "523 Encryption Needed"));
        assert!(!yes(200, None, "451 try later"));
        // Non-2xx statuses never confirm.
        assert!(!yes(400, None, "250 OK"));
        assert!(!yes(500, None, ""));
        assert!(!yes(302, None, ""));
    }
}
