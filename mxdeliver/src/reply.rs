//! LMTP replies of the transport (SPEC §6.9, §6.12), as named values.
//!
//! Every reply that ends a delivery attempt is built here, so one place guarantees the rule of
//! §6.12's Note: only a real delivery produces a 2xx; every failure is 4xx or 5xx.

use std::fmt;

/// Reply text beyond this is cut (RFC 5321 §4.5.3.1.5 limits a reply line to 512 octets;
/// remote servers' texts are forwarded and must not grow without bound).
const MAX_TEXT_CHARS: usize = 480;

/// One LMTP/SMTP reply line: a three-digit code and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    text: String,
}

impl Reply {
    /// Builds a reply from a code and text; CR, LF and other control characters in the text are
    /// replaced by spaces so a reply can never smuggle a second line into the dialogue.
    pub fn new(code: u16, text: impl AsRef<str>) -> Self {
        let text = text
            .as_ref()
            .chars()
            .take(MAX_TEXT_CHARS)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Reply { code, text }
    }

    /// The three-digit reply code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The reply text after the code.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the code means success (2xx).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// The reply as sent on the wire, with CRLF.
    pub fn to_line(&self) -> String {
        format!("{self}\r\n")
    }

    /// Delivered through the remote relay's HTTPS `/mxdeliv` endpoint.
    pub fn ok_https() -> Self {
        Reply::new(250, "OK (HTTPS)")
    }
    /// Delivered over SMTP.
    pub fn ok_smtp() -> Self {
        Reply::new(250, "OK (SMTP)")
    }
    /// No queue slot for the destination: Postfix defers and retries later.
    pub fn busy() -> Self {
        Reply::new(421, "Transport busy")
    }
    /// Our own failure (a delivery task died): temporary, Postfix retries.
    pub fn local_error() -> Self {
        Reply::new(451, "Local error")
    }
    /// RFC 7505 null MX: the domain accepts no mail.
    pub fn null_mx() -> Self {
        Reply::new(
            556,
            "5.1.10 Permanent failure: Recipient address has null MX",
        )
    }
    /// NXDOMAIN. The reference replied `512`, which is not a valid reply code (SPEC §6.12 Note).
    pub fn no_such_domain(domain: &str) -> Self {
        Reply::new(550, format!("5.1.2 Domain {domain} does not exist"))
    }
    /// Any DNS failure other than NXDOMAIN or an empty answer, including timeouts.
    pub fn dns_failed(domain: &str) -> Self {
        Reply::new(421, format!("DNS resolution failed for {domain}"))
    }
    /// Every MX host failed at connection level (I/O, TLS, protocol).
    pub fn all_hosts_failed(host: &str, error: &str) -> Self {
        Reply::new(
            421,
            format!("Failed to connect to any mail server; last attempt to {host}: {error}"),
        )
    }
    /// A remote 4xx/5xx reply passed back to Postfix with its class kept.
    pub fn forwarded(remote: &Reply, host: &str) -> Self {
        debug_assert!(remote.code >= 400);
        Reply::new(
            remote.code,
            format!("{} (forwarded from {host})", remote.text),
        )
    }
    /// The whole delivery took longer than the transport allows; Postfix retries.
    pub fn delivery_timeout() -> Self {
        Reply::new(451, "4.4.7 Delivery timed out")
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.text.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{} {}", self.code, self.text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_split_a_reply() {
        assert_eq!(
            Reply::new(550, "no\r\n250 OK").to_line(),
            "550 no  250 OK\r\n"
        );
    }

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
