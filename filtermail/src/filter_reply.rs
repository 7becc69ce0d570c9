//! SMTP replies filtermail sends (SPEC §6.9), as named values on the shared [`Reply`].
//!
//! Clients and Postfix match some of these texts (`523 Encryption Needed`, `4.7.1: Too much
//! mail from`), so the fixed ones are constants here and never formatted at call sites.

pub use chatmail_smtp::Reply;

/// filtermail's replies beside the shared ones ([`Reply::OK`], [`Reply::TOO_BIG`], the
/// dialogue's faults such as [`Reply::NEED_MAIL`], ...); in
/// scope, they read as `Reply::NAME`.
pub trait FilterReply {
    /// The cleartext policy refused the message; clients recognise this exact text.
    const ENCRYPTION_NEEDED: Reply =
        Reply::fixed(523, "Encryption Needed: Invalid Unencrypted Mail");
    /// No DKIM-Signature header in incoming mail.
    const NO_DKIM_SIGNATURE: Reply = Reply::fixed(554, "5.7.1 No DKIM signature found");
    /// No signature that verifies and aligns with the From domain.
    const NO_VALID_DKIM_SIGNATURE: Reply = Reply::fixed(554, "5.7.1 No valid DKIM signature found");
    /// DKIM needs UTF-8 data.
    const NON_UTF8: Reply = Reply::fixed(554, "Non-UTF-8 message");
    /// No header/body separator.
    const MALFORMED_DATA: Reply = Reply::fixed(554, "Malformed data");
    /// The header could not be parsed for DKIM.
    const MALFORMED_HEADER: Reply = Reply::fixed(554, "Malformed header");
    /// The DKIM key could not be fetched in time; the sender retries (SPEC §6.10 Note).
    const DKIM_TEMPFAIL: Reply = Reply::fixed(451, "4.7.1 DKIM key lookup failed, try again later");
    /// The reinjection port could not be reached or spoke nonsense; the sender retries.
    const REINJECT_FAILED: Reply = Reply::fixed(451, "4.3.0 Error: queue file write error");
    /// The messages in flight already fill the memory budget; the sender retries.
    const OVER_BUDGET: Reply = chatmail_smtp::budget::OVER_BUDGET;
    /// A recipient spelling Postfix could route differently (quoted, source route, `%`,
    /// `!`, characters no mailbox name has): refused rather than guessed.
    const RECIPIENT_NOT_PLAIN: Reply =
        Reply::fixed(553, "5.1.3 Recipient address not in plain form");
    /// An internal failure while handling the message; the sender retries.
    const LOCAL_ERROR: Reply = Reply::fixed(451, "4.3.0 Local error");
    /// Incoming mail whose envelope sender is of the relay's own domain: our users send
    /// through submission only, so a remote server never sends as them, and a bounce to such
    /// a sender would land in a local mailbox without passing the filter.
    const SENDER_IS_LOCAL: Reply = Reply::fixed(
        550,
        "5.7.1 Sender address rejected: users of this domain send only through submission",
    );

    /// `550 5.1.1 <addr>: Recipient address rejected: User unknown`: an incoming recipient
    /// without a mailbox (no account, or a blocked one), refused before anything is queued
    /// that Dovecot would refuse and Postfix would bounce. Postfix's own wording, so senders'
    /// MTAs and their users read it as the usual "no such user".
    fn unknown_recipient(addr: &str) -> Reply {
        Reply::new(
            550,
            format!(
                "5.1.1 <{}>: Recipient address rejected: User unknown",
                printable(addr)
            ),
        )
    }

    /// `450 4.7.1: Too much mail from <addr>, <detail>` (SPEC §6.8).
    fn rate_limited(addr: &str, retry_secs: u64) -> Reply {
        Reply::new(
            450,
            format!(
                "4.7.1: Too much mail from <{}>, try again in {retry_secs} seconds",
                printable(addr)
            ),
        )
    }

    /// `500 Invalid from address <addr>`: MAIL FROM without exactly one `@` (outgoing).
    fn invalid_from_address(addr: &str) -> Reply {
        Reply::new(500, format!("Invalid from address <{}>", printable(addr)))
    }

    /// `500 Invalid FROM <from> for <mailfrom>`: From header and MAIL FROM differ.
    fn from_mismatch(from: &str, mail_from: &str) -> Reply {
        Reply::new(
            500,
            format!(
                "Invalid FROM <{}> for <{}>",
                printable(from),
                printable(mail_from)
            ),
        )
    }

    /// `500 Invalid FROM header: <value>`: no address in the From header.
    fn invalid_from_header(value: &str) -> Reply {
        Reply::new(500, format!("Invalid FROM header: {}", printable(value)))
    }

    /// `500 Failed to parse message: <reason>`.
    fn unparsable(reason: &str) -> Reply {
        Reply::new(500, format!("Failed to parse message: {reason}"))
    }
}

impl FilterReply for Reply {}

/// `s` with control characters (CR, LF, ...) replaced, so untrusted text echoed in a reply
/// can never end the reply line early or inject another one; capped in length.
pub fn printable(s: &str) -> String {
    s.chars()
        .take(256)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_texts() {
        let cases = [
            (Reply::OK, "250 OK"),
            (
                Reply::ENCRYPTION_NEEDED,
                "523 Encryption Needed: Invalid Unencrypted Mail",
            ),
            (Reply::TOO_BIG, "552 Message exceeds maximum size"),
            (Reply::INVALID_MAIL_FROM, "500 Invalid address in MAIL FROM"),
            (Reply::UNKNOWN_COMMAND, "500 Command not recognized"),
            (
                Reply::NO_DKIM_SIGNATURE,
                "554 5.7.1 No DKIM signature found",
            ),
            (
                Reply::NO_VALID_DKIM_SIGNATURE,
                "554 5.7.1 No valid DKIM signature found",
            ),
            (
                Reply::rate_limited("a@b", 3),
                "450 4.7.1: Too much mail from <a@b>, try again in 3 seconds",
            ),
            (
                Reply::invalid_from_address("ab"),
                "500 Invalid from address <ab>",
            ),
            (
                Reply::from_mismatch("x@y", "a@b"),
                "500 Invalid FROM <x@y> for <a@b>",
            ),
            (Reply::invalid_from_header(""), "500 Invalid FROM header: "),
            (
                Reply::unknown_recipient("nobody@x.org"),
                "550 5.1.1 <nobody@x.org>: Recipient address rejected: User unknown",
            ),
            (
                Reply::SENDER_IS_LOCAL,
                "550 5.7.1 Sender address rejected: users of this domain send only through submission",
            ),
        ];
        for (reply, want) in cases {
            assert_eq!(reply.to_string(), want);
        }
    }

    #[test]
    fn no_line_injection() {
        let r = Reply::invalid_from_header("x\r\n250 OK");
        assert_eq!(r.to_wire().iter().filter(|&&b| b == b'\n').count(), 1);
    }
}
