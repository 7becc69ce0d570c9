//! DKIM origin verification of incoming mail (SPEC §6.10), with the `mail-auth` crate.
//!
//! A message passes iff at least one DKIM signature verifies and its `d=` equals the From
//! domain (strict alignment, DMARC `adkim=s`). Senders with a domain literal are not
//! checked. DNS trouble for an aligned signature is a temporary failure (451), never a
//! permanent rejection, and the whole check is bounded well within Postfix's 100 s proxy
//! timeout. Rejected messages are not stored anywhere (the reference kept them in `/tmp`).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::proto::op::ResponseCode;
use mail_auth::{AuthenticatedMessage, DkimOutput, DkimResult, MessageAuthenticator};
use tracing::{debug, warn};

use crate::error::Error;
use crate::filter_reply::{FilterReply, Reply};

/// Environment switch that disables the check (testing only; SPEC §6.13).
pub const ENV_SKIP: &str = "FILTERMAIL_SKIP_DKIM";
/// Environment setting `IP:PORT` of the DNS server for key lookups, instead of the servers
/// of `/etc/resolv.conf` (for tests with a local DNS server).
pub const ENV_RESOLVER: &str = "FILTERMAIL_DKIM_RESOLVER";
/// The warning logged when the check is off; operators and tests look for this text.
pub const LOG_SKIPPED: &str =
    "DKIM verification DISABLED! Incoming mail is accepted without origin verification.";

/// Upper bound of one message's verification (all lookups included).
pub const VERIFY_DEADLINE: Duration = Duration::from_secs(30);
/// Aligned signatures verified per message unless configured otherwise.
pub const DEFAULT_MAX_SIGNATURES: usize = 5;
/// Timeout of one DNS query.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `FILTERMAIL_SKIP_DKIM` asks to skip the check (`1` or `true`, any case).
pub fn skip_requested(value: Option<&str>) -> bool {
    value.is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// The DKIM verifier with its DNS resolver.
pub struct DkimVerifier {
    auth: MessageAuthenticator,
    /// Aligned signatures verified per message at most (`filtermail_max_dkim_signatures`).
    max_signatures: usize,
    /// Why the resolver fell back to the glibc default, to be logged once serving.
    fallback: Option<String>,
}

impl std::fmt::Debug for DkimVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DkimVerifier")
    }
}

impl DkimVerifier {
    /// A verifier resolving through `/etc/resolv.conf`, or through `nameserver` when given.
    pub fn new(nameserver: Option<SocketAddr>) -> Result<DkimVerifier, Error> {
        let single = |addr: SocketAddr| {
            ResolverConfig::from_parts(
                None,
                vec![],
                NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true),
            )
        };
        let mut fallback = None;
        let (config, mut opts) = match nameserver {
            Some(addr) => (single(addr), ResolverOpts::default()),
            None => match hickory_resolver::system_conf::read_system_conf() {
                Ok(conf) => conf,
                Err(e) => {
                    // As glibc does without a usable resolv.conf: ask the local resolver
                    // (chatmail relays run one), rather than refusing to start.
                    fallback = Some(format!(
                        "/etc/resolv.conf unusable ({e}); DKIM keys are looked up at 127.0.0.1:53"
                    ));
                    let local = SocketAddr::from(([127, 0, 0, 1], 53));
                    (single(local), ResolverOpts::default())
                }
            },
        };
        opts.timeout = QUERY_TIMEOUT;
        // Keys of the busiest sending domains stay cached (within their DNS TTL).
        opts.cache_size = 1000;
        opts.attempts = 2;
        // A key published moments ago must be found: no negative caching.
        opts.negative_max_ttl = Some(Duration::ZERO);
        let auth = MessageAuthenticator::new(config, opts).map_err(Error::Resolver)?;
        Ok(DkimVerifier {
            auth,
            max_signatures: DEFAULT_MAX_SIGNATURES,
            fallback,
        })
    }

    /// Verifies at most `n` (at least one) aligned signatures per message.
    pub fn with_max_signatures(mut self, n: usize) -> DkimVerifier {
        self.max_signatures = n.max(1);
        self
    }

    /// Set when `/etc/resolv.conf` could not be used; logged once the filter serves (the
    /// first log line must stay the serving-loop line).
    pub fn resolver_fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// Verifies `message` against the domain of `from_addr` (SPEC §6.10). The policy has
    /// made sure there is exactly one From header and `from_addr` is its one address.
    pub async fn verify(&self, message: &[u8], from_addr: &str) -> Result<(), Reply> {
        let domain = from_addr.rsplit_once('@').map_or("", |(_, d)| d);
        if domain.starts_with('[') {
            debug!("domain-literal sender, no DKIM check");
            return Ok(());
        }
        if std::str::from_utf8(message).is_err() {
            return Err(Reply::NON_UTF8);
        }
        if !message.windows(4).any(|w| w == b"\r\n\r\n") {
            return Err(Reply::MALFORMED_DATA);
        }
        let Some(mut parsed) = AuthenticatedMessage::parse(message) else {
            return Err(Reply::MALFORMED_HEADER);
        };
        if parsed.dkim_headers.is_empty() {
            return Err(Reply::NO_DKIM_SIGNATURE);
        }
        // Only aligned signatures that cover the From header can pass: without one, no key
        // needs fetching. A message stuffed with signatures gets only the first few of
        // them verified, so it cannot make us do many lookups or hash its header often.
        parsed
            .dkim_headers
            .retain(|h| h.header.as_ref().is_ok_and(|sig| usable(sig, domain)));
        parsed.dkim_headers.truncate(self.max_signatures);
        if parsed.dkim_headers.is_empty() {
            warn!(domain, "no DKIM signature aligned with the From domain");
            return Err(Reply::NO_VALID_DKIM_SIGNATURE);
        }
        let outputs =
            match tokio::time::timeout(VERIFY_DEADLINE, self.auth.verify_dkim(&parsed)).await {
                Ok(o) => o,
                Err(_) => {
                    warn!(domain, "DKIM verification timed out");
                    return Err(Reply::DKIM_TEMPFAIL);
                }
            };
        judge(&outputs, domain)
    }
}

/// The verdict on the verified signatures: one aligned pass is enough; otherwise a failed
/// key lookup of an aligned signature is temporary, anything else permanent.
fn judge(outputs: &[DkimOutput<'_>], domain: &str) -> Result<(), Reply> {
    let mut tempfail = false;
    for out in outputs {
        let Some(sig) = out.signature() else { continue };
        let aligned = sig.d.eq_ignore_ascii_case(domain);
        match out.result() {
            DkimResult::Pass if aligned => return Ok(()),
            DkimResult::TempError(e) if aligned => {
                warn!(domain, "DKIM key lookup failed: {e}");
                tempfail = true;
            }
            // Only "no such name" and "no such record" are answers; SERVFAIL, REFUSED
            // and the like say nothing about the key, so the sender should retry.
            DkimResult::PermError(mail_auth::Error::DnsRecordNotFound(code))
                if aligned && !matches!(code, ResponseCode::NXDomain | ResponseCode::NoError) =>
            {
                warn!(domain, "DKIM key lookup failed: {code}");
                tempfail = true;
            }
            other => debug!(d = %sig.d, aligned, "DKIM signature not accepted: {other:?}"),
        }
    }
    if tempfail {
        return Err(Reply::DKIM_TEMPFAIL);
    }
    warn!(
        domain,
        "no valid DKIM signature aligned with the From domain"
    );
    Err(Reply::NO_VALID_DKIM_SIGNATURE)
}

/// A signature that can make a message pass: `d=` is the From domain and `h=` covers
/// `From` (otherwise the From line could be replaced under a valid signature).
fn usable(sig: &mail_auth::dkim::Signature, domain: &str) -> bool {
    sig.d.eq_ignore_ascii_case(domain) && sig.h.iter().any(|h| h.eq_ignore_ascii_case("from"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_values() {
        for (v, want) in [
            (None, false),
            (Some("1"), true),
            (Some("true"), true),
            (Some("TRUE"), true),
            (Some("0"), false),
            (Some("yes"), false),
            (Some(""), false),
        ] {
            assert_eq!(skip_requested(v), want, "{v:?}");
        }
    }
}
