//! The encryption policy (SPEC §6.6, §6.7): pure functions of envelope and message bytes.
//!
//! Nothing here does network I/O, so table tests, fuzzers and every front end (the SMTP
//! proxy now, other front ends later) call the same code. The only side effect is the
//! lookup of `enforceE2EEincoming` markers below `mailboxes_dir`, through
//! [`chatmaild::User`], which validates each address before it becomes a path.

use std::path::Path;

use chatmaild::address::{canonical_mailbox, same_mailbox};
use mail_parser::{Message, MessageParser};
use tracing::{info, warn};

use crate::mime;
use crate::reply::{FilterReply, Reply};

/// Log line mtail counts (SPEC §10.4): outgoing encrypted mail.
pub const LOG_OUTGOING_ENCRYPTED: &str = "Outgoing: Filtering encrypted mail.";
/// Log line mtail counts (SPEC §10.4): outgoing cleartext mail.
pub const LOG_OUTGOING_UNENCRYPTED: &str = "Outgoing: Filtering unencrypted mail.";
/// Log line mtail counts (SPEC §10.4): incoming encrypted mail.
pub const LOG_INCOMING_ENCRYPTED: &str = "Incoming: Filtering encrypted mail.";
/// Log line mtail counts (SPEC §10.4): incoming cleartext mail.
pub const LOG_INCOMING_UNENCRYPTED: &str = "Incoming: Filtering unencrypted mail.";
/// Log line mtail counts (SPEC §10.4), followed by the sender address.
pub const LOG_MAILER_DAEMON: &str = "Incoming: Filtering mailer-daemon message from";
/// Log line mtail counts (SPEC §10.4): every 523.
pub const LOG_REJECTED: &str = "Rejected unencrypted mail";

/// The SMTP envelope of one message, addresses exactly as received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// `MAIL FROM` address; empty for the null sender `<>`.
    pub mail_from: String,
    /// `RCPT TO` addresses in order.
    pub rcpt_to: Vec<String>,
}

/// ESMTP parameters of the client's `MAIL` that are passed on when reinjecting (the
/// policy does not depend on them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailParams {
    /// The client declared an internationalized message (`SMTPUTF8`, RFC 6531).
    pub smtputf8: bool,
}

/// What the policy decided about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Pass the message on (after DKIM, for incoming mail).
    Accept(Accepted),
    /// Refuse the message with this reply.
    Reject(Reply),
}

/// Details of an accepted message the later steps need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The first address of the From header (its domain is the DKIM alignment target).
    pub from_addr: String,
    /// Reinject with the null sender `MAIL FROM:<>` (incoming mail whose From differs from
    /// MAIL FROM, e.g. SRS forwarding; a bounce must not go to a forged sender).
    pub null_sender: bool,
}

/// Checks the outgoing MAIL FROM address (SPEC §6.6 rule 1, before the rate limit): it
/// must contain exactly one `@` and be a plain spelling of a mailbox
/// ([`canonical_mailbox`]; Postfix has already tied it to the login).
pub fn check_outgoing_mail_from(addr: &str) -> Result<(), Reply> {
    if addr.bytes().filter(|&b| b == b'@').count() == 1 && canonical_mailbox(addr).is_ok() {
        Ok(())
    } else {
        Err(Reply::invalid_from_address(addr))
    }
}

fn parse(message: &[u8]) -> Result<Message<'_>, Reply> {
    MessageParser::default()
        .parse(message)
        .ok_or_else(|| Reply::unparsable("no message headers"))
}

/// The parsed message, refused with 523 when two careful parsers could read its structure
/// or sender differently (SPEC §6.7 Note "one interpretation").
fn parse_unambiguous<'a>(env: &Envelope, message: &'a [u8]) -> Result<Message<'a>, Reply> {
    let msg = parse(message)?;
    if let Some(why) = mime::ambiguity(&msg) {
        warn!(
            "{LOG_REJECTED} from {} to {:?}: {why}",
            env.mail_from, env.rcpt_to
        );
        return Err(Reply::ENCRYPTION_NEEDED);
    }
    Ok(msg)
}

/// The policy for mail our users send (SPEC §6.6 rules 2–4).
///
/// The From address must name the same mailbox as MAIL FROM (both in plain spelling, see
/// [`chatmaild::address`]); Postfix's `reject_sender_login_mismatch` has already tied
/// MAIL FROM to the login.
pub fn check_outgoing(env: &Envelope, message: &[u8]) -> Verdict {
    let msg = match parse_unambiguous(env, message) {
        Ok(m) => m,
        Err(r) => return Verdict::Reject(r),
    };
    let Some(from) = mime::from_address(&msg) else {
        return Verdict::Reject(Reply::invalid_from_header(mime::raw_from_value(&msg)));
    };
    if !same_mailbox(from, &env.mail_from) {
        return Verdict::Reject(Reply::from_mismatch(from, &env.mail_from));
    }
    let accepted = Verdict::Accept(Accepted {
        from_addr: from.to_owned(),
        null_sender: false,
    });
    if mime::is_encrypted(&msg, true) || mime::is_securejoin(&msg) {
        info!("{LOG_OUTGOING_ENCRYPTED}");
        return accepted;
    }
    info!("{LOG_OUTGOING_UNENCRYPTED}");
    if mime::is_autocrypt_setup_message(&msg, from, &env.rcpt_to) {
        return accepted;
    }
    warn!("{LOG_REJECTED} from {} to {:?}", env.mail_from, env.rcpt_to);
    Verdict::Reject(Reply::ENCRYPTION_NEEDED)
}

/// The policy for mail from other servers (SPEC §6.7), before DKIM (§6.10).
///
/// Each recipient's `enforceE2EEincoming` marker is looked up for the mailbox Postfix and
/// Dovecot deliver to ([`canonical_mailbox`]: case, `+detail`, trailing dot); a recipient
/// in any other spelling counts as enforcing (the front ends already refuse it at `RCPT`)
/// and never becomes a path.
pub fn check_incoming(env: &Envelope, message: &[u8], mailboxes_dir: &Path) -> Verdict {
    let msg = match parse_unambiguous(env, message) {
        Ok(m) => m,
        Err(r) => return Verdict::Reject(r),
    };
    let Some(from) = mime::from_address(&msg) else {
        return Verdict::Reject(Reply::invalid_from_header(mime::raw_from_value(&msg)));
    };
    let accepted = Verdict::Accept(Accepted {
        from_addr: from.to_owned(),
        null_sender: !(same_mailbox(from, &env.mail_from)
            || from.eq_ignore_ascii_case(&env.mail_from)),
    });
    if mime::is_encrypted(&msg, false) || mime::is_securejoin(&msg) {
        info!("{LOG_INCOMING_ENCRYPTED}");
        return accepted;
    }
    info!("{LOG_INCOMING_UNENCRYPTED}");
    if mime::is_mailer_daemon_report(&msg, from) {
        info!("{LOG_MAILER_DAEMON} {from}");
        return accepted;
    }
    for rcpt in &env.rcpt_to {
        let enforced = match canonical_mailbox(rcpt)
            .ok()
            .and_then(|m| chatmaild::User::in_dir(mailboxes_dir, m.as_str()).ok())
        {
            Some(user) => !user.incoming_cleartext_ok(),
            None => true,
        };
        if enforced {
            warn!("{LOG_REJECTED} from {} to {rcpt}", env.mail_from);
            return Verdict::Reject(Reply::ENCRYPTION_NEEDED);
        }
    }
    accepted
}
