//! LMTP replies of the transport (SPEC §6.9, §6.12), as named values on the shared
//! [`Reply`] type.
//!
//! Every reply that ends a delivery attempt is built here, so one place guarantees the rule of
//! §6.12's Note: only a real delivery produces a 2xx; every failure is 4xx or 5xx.

pub use chatmail_smtp::Reply;

/// The transport's replies; in scope, they read as `Reply::NAME`.
pub trait TransportReply {
    /// Delivered through the remote relay's HTTPS `/mxdeliv` endpoint.
    const OK_HTTPS: Reply = Reply::fixed(250, "OK (HTTPS)");
    /// Delivered over SMTP.
    const OK_SMTP: Reply = Reply::fixed(250, "OK (SMTP)");
    /// No queue slot for the destination: Postfix defers and retries later.
    const BUSY: Reply = Reply::fixed(421, "Transport busy");
    /// The messages held already fill the memory budget: Postfix retries later.
    const OVER_BUDGET: Reply = chatmail_smtp::budget::OVER_BUDGET;
    /// Our own failure (a delivery task died): temporary, Postfix retries.
    const LOCAL_ERROR: Reply = Reply::fixed(451, "Local error");
    /// RFC 7505 null MX: the domain accepts no mail.
    const NULL_MX: Reply = Reply::fixed(
        556,
        "5.1.10 Permanent failure: Recipient address has null MX",
    );
    /// The whole delivery took longer than the transport allows; Postfix retries.
    const DELIVERY_TIMEOUT: Reply = Reply::fixed(451, "4.4.7 Delivery timed out");

    /// A recipient address that is not one (`553`), echoed within the line limit.
    fn invalid_address(addr: &str) -> Reply {
        Reply::bounded(553, &format!("Invalid email address: {addr}"))
    }
    /// NXDOMAIN. The reference replied `512`, which is not a valid reply code (SPEC §6.12 Note).
    fn no_such_domain(domain: &str) -> Reply {
        Reply::bounded(550, &format!("5.1.2 Domain {domain} does not exist"))
    }
    /// Any DNS failure other than NXDOMAIN or an empty answer, including timeouts.
    fn dns_failed(domain: &str) -> Reply {
        Reply::bounded(421, &format!("DNS resolution failed for {domain}"))
    }
    /// Every MX host failed at connection level (I/O, TLS, protocol).
    fn all_hosts_failed(host: &str, error: &str) -> Reply {
        Reply::bounded(
            421,
            &format!("Failed to connect to any mail server; last attempt to {host}: {error}"),
        )
    }
    /// A remote 4xx/5xx reply passed back to Postfix with its class kept.
    fn forwarded(remote: &Reply, host: &str) -> Reply {
        debug_assert!(remote.code() >= 400);
        Reply::bounded(
            remote.code(),
            &format!("{} (forwarded from {host})", remote.text()),
        )
    }
}

impl TransportReply for Reply {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_keeps_the_remote_class() {
        let r = Reply::forwarded(&Reply::new(450, "4.2.0 greylisted"), "mx.example");
        assert_eq!(
            r.to_string(),
            "450 4.2.0 greylisted (forwarded from mx.example)"
        );
        assert!(!r.is_success());
    }

    #[test]
    fn nxdomain_is_a_valid_permanent_code() {
        assert_eq!(Reply::no_such_domain("x.example").code(), 550);
    }
}
