//! The encryption policy (SPEC §6.6, §6.7): pure functions of envelope and message bytes.
//!
//! Nothing here does network I/O, so table tests, fuzzers and every front end (the SMTP
//! proxy now, other front ends later) call the same code. The only side effect is the
//! lookup of `enforceE2EEincoming` markers below `mailboxes_dir`, through
//! [`chatmaild::User`], which validates each address before it becomes a path.

use std::path::Path;

use chatmaild::address::{canonical_mailbox, same_mailbox};
use mail_parser::Message;
use tracing::{info, warn};

use crate::canonical::{self, forms};
use crate::filter_reply::{FilterReply, Reply};
use crate::mime;

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
pub enum PolicyVerdict {
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

/// The top-level headers of `message` with its one sender, or the reply refusing it: `500`
/// when there is no header block, `523` when readers could find another sender (SPEC §6.7
/// Note "one interpretation").
fn sender_headers<'a>(env: &Envelope, message: &'a [u8]) -> Result<Message<'a>, Reply> {
    let msg =
        mime::parse_headers(message).ok_or_else(|| Reply::unparsable("no message headers"))?;
    if let Some(why) = mime::from_ambiguity(&msg) {
        warn!(
            "{LOG_REJECTED} from {} to {:?}: {why}",
            env.mail_from, env.rcpt_to
        );
        return Err(Reply::ENCRYPTION_NEEDED);
    }
    Ok(msg)
}

/// Which of the messages the filter lets through `message` is, read against the canonical
/// grammar ([`canonical`]); `Err` with the reason when it is none of them.
fn canonical_form(message: &[u8], outgoing: bool) -> Result<Form, canonical::Refusal> {
    let msg = canonical::read(message)?;
    if forms::is_encrypted(&msg, outgoing) {
        Ok(Form::Encrypted)
    } else if forms::is_securejoin(&msg) {
        Ok(Form::SecureJoin)
    } else if outgoing && forms::is_setup_message(&msg) {
        Ok(Form::SetupMessage)
    } else if !outgoing && forms::is_delivery_report(&msg) {
        Ok(Form::DeliveryReport)
    } else {
        Err("none of the forms that pass")
    }
}

/// The messages that pass the filter, besides cleartext to a recipient who accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// RFC 3156 encrypted.
    Encrypted,
    /// A securejoin request.
    SecureJoin,
    /// A self-sent Autocrypt Setup Message (outgoing).
    SetupMessage,
    /// A mailer daemon's delivery report (incoming).
    DeliveryReport,
}

/// The policy for mail our users send (SPEC §6.6 rules 2–4).
///
/// The From address must name the same mailbox as MAIL FROM (both in plain spelling, see
/// [`chatmaild::address`]); Postfix's `reject_sender_login_mismatch` has already tied
/// MAIL FROM to the login.
pub fn check_outgoing(env: &Envelope, message: &[u8]) -> PolicyVerdict {
    let msg = match sender_headers(env, message) {
        Ok(m) => m,
        Err(r) => return PolicyVerdict::Reject(r),
    };
    let Some(from) = mime::from_address(&msg) else {
        return PolicyVerdict::Reject(Reply::invalid_from_header(mime::raw_from_value(&msg)));
    };
    if !same_mailbox(from, &env.mail_from) {
        return PolicyVerdict::Reject(Reply::from_mismatch(from, &env.mail_from));
    }
    let accepted = PolicyVerdict::Accept(Accepted {
        from_addr: from.to_owned(),
        null_sender: false,
    });
    let form = canonical_form(message, true);
    if matches!(form, Ok(Form::Encrypted | Form::SecureJoin)) {
        info!("{LOG_OUTGOING_ENCRYPTED}");
        return accepted;
    }
    info!("{LOG_OUTGOING_UNENCRYPTED}");
    let self_sent = matches!(env.rcpt_to.as_slice(), [rcpt] if same_mailbox(rcpt, from));
    if form == Ok(Form::SetupMessage) && self_sent {
        return accepted;
    }
    let why = match form {
        Err(why) => why,
        Ok(_) => "Autocrypt Setup Message not to the sender alone",
    };
    warn!(
        "{LOG_REJECTED} from {} to {:?}: {why}",
        env.mail_from, env.rcpt_to
    );
    PolicyVerdict::Reject(Reply::ENCRYPTION_NEEDED)
}

/// The policy for mail from other servers (SPEC §6.7), before DKIM (§6.10).
///
/// Each recipient's `enforceE2EEincoming` marker is looked up for the mailbox Postfix and
/// Dovecot deliver to ([`canonical_mailbox`]: case, `+detail`, trailing dot); a recipient
/// in any other spelling counts as enforcing (the front ends already refuse it at `RCPT`)
/// and never becomes a path.
pub fn check_incoming(env: &Envelope, message: &[u8], mailboxes_dir: &Path) -> PolicyVerdict {
    let msg = match sender_headers(env, message) {
        Ok(m) => m,
        Err(r) => return PolicyVerdict::Reject(r),
    };
    let Some(from) = mime::from_address(&msg) else {
        return PolicyVerdict::Reject(Reply::invalid_from_header(mime::raw_from_value(&msg)));
    };
    let accepted = PolicyVerdict::Accept(Accepted {
        from_addr: from.to_owned(),
        null_sender: !(same_mailbox(from, &env.mail_from)
            || from.eq_ignore_ascii_case(&env.mail_from)),
    });
    let form = canonical_form(message, false);
    if matches!(form, Ok(Form::Encrypted | Form::SecureJoin)) {
        info!("{LOG_INCOMING_ENCRYPTED}");
        return accepted;
    }
    info!("{LOG_INCOMING_UNENCRYPTED}");
    // RFC 3464 §2: a delivery report has the null envelope sender; a mailer daemon's From.
    let from_daemon = from
        .get(..14)
        .is_some_and(|p| p.eq_ignore_ascii_case("mailer-daemon@"));
    if form == Ok(Form::DeliveryReport) && env.mail_from.is_empty() && from_daemon {
        info!("{LOG_MAILER_DAEMON} {from}");
        return accepted;
    }
    let why = form
        .err()
        .unwrap_or("delivery report without the null sender");
    for rcpt in &env.rcpt_to {
        let enforced = match canonical_mailbox(rcpt)
            .ok()
            .and_then(|m| chatmaild::User::in_dir(mailboxes_dir, m.as_str()).ok())
        {
            Some(user) => !user.incoming_cleartext_ok(),
            None => true,
        };
        if enforced {
            warn!("{LOG_REJECTED} from {} to {rcpt}: {why}", env.mail_from);
            return PolicyVerdict::Reject(Reply::ENCRYPTION_NEEDED);
        }
    }
    accepted
}
