//! filtermail's side of the SMTP dialogue with Postfix's before-queue proxy (SPEC §6.2,
//! §6.3): its envelope [`Rules`], pure, beside the transport's. The command sequence, the
//! framing and the DATA receiver are the shared ones of [`chatmail_smtp`]; the connection
//! driver is [`chatmail_smtp::serve`], run by [`crate::server`].
//!
//! - [`Envelopes`] checks a sender and each recipient for the filter's mode.
//! - [`DataReader`] is the DATA receiver of the `/mxdeliv` body, its message held under the
//!   [`MemoryBudget`].

use std::sync::Arc;
use std::time::Instant;

use chatmail_smtp::{DataReceiver, Rules};

use crate::budget::{MemoryBudget, Reservation};
use crate::filter_reply::{FilterReply, Reply};
use crate::local::Local;
use crate::policy::{Envelope, MailParams, check_outgoing_mail_from};
use crate::ratelimit::RateLimiter;

pub use chatmail_smtp::{DataEnd, MAX_RECIPIENTS, Transaction};

/// Receives one message after `354`: dot-stuffing undone, `max_message_size` counted on the
/// unstuffed message, a bare CR or LF refused; the message is held under a reservation.
pub type DataReader = DataReceiver<Reservation>;

/// A reader keeping at most `max` message bytes, reserved from `budget`.
pub fn data_reader(max: u64, budget: Option<Arc<MemoryBudget>>) -> DataReader {
    DataReceiver::with_allowance(max, Reservation::new(budget))
}

/// The reply for an end that is not a message.
pub fn refusal(end: &DataEnd) -> Option<Reply> {
    match end {
        DataEnd::Message(_) => None,
        DataEnd::TooBig => Some(Reply::TOO_BIG),
        DataEnd::OverBudget => Some(Reply::OVER_BUDGET),
        DataEnd::BareLineEnd | DataEnd::UnstuffedDot => Some(Reply::INVALID_DATA),
    }
}

/// Whether the server is the outgoing (submission) or incoming (MX) filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Mail our users send.
    Outgoing,
    /// Mail from other servers.
    Incoming,
}

/// The envelope rules of one mode at one moment: pure, so one command's checks read one
/// clock reading and tests need no listener.
#[derive(Debug, Clone, Copy)]
pub struct Envelopes<'a> {
    /// Outgoing or incoming rules.
    pub mode: Mode,
    /// Incoming mode: senders of our domain and recipients without a mailbox are refused
    /// (without it, recipients are only checked for their spelling).
    pub local: Option<&'a Local>,
    /// The outgoing rate limit.
    pub limiter: Option<&'a RateLimiter>,
    /// The time the command arrived (for the rate limit).
    pub now: Instant,
}

impl<'a> Envelopes<'a> {
    /// The rules of `mode`, with neither mailboxes nor rate limit.
    #[cfg(any(test, feature = "internals"))]
    pub fn new(mode: Mode) -> Envelopes<'a> {
        Envelopes {
            mode,
            local: None,
            limiter: None,
            now: Instant::now(),
        }
    }
}

impl Rules for Envelopes<'_> {
    type Recipient = String;

    fn sender(&self, addr: &str) -> Result<String, Reply> {
        match (self.mode, self.local) {
            (Mode::Incoming, Some(local)) => local.check_sender(addr)?,
            (Mode::Incoming, None) => {}
            (Mode::Outgoing, _) => {
                check_outgoing_mail_from(addr)?;
                // One budget per mailbox, however the address is spelled.
                let key = chatmaild::address::canonical_mailbox(addr)
                    .map_or_else(|_| addr.to_ascii_lowercase(), |m| m.as_str().to_owned());
                if let Some(limiter) = self.limiter
                    && let Err(wait) = limiter.check(&key, self.now)
                {
                    tracing::warn!(sender = %addr, "rate limit exceeded");
                    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                    return Err(Reply::rate_limited(addr, secs));
                }
            }
        }
        Ok(addr.to_owned())
    }

    fn recipient(&self, addr: &str, _accepted: &[String]) -> Result<String, Reply> {
        // Incoming recipients are ours: only spellings whose mailbox is certain, and only
        // mailboxes that take mail.
        if self.mode == Mode::Incoming {
            match self.local {
                Some(local) => local.check_recipient(addr)?,
                None => {
                    chatmaild::address::canonical_mailbox(addr)
                        .map_err(|_| Reply::RECIPIENT_NOT_PLAIN)?;
                }
            }
        }
        Ok(addr.to_owned())
    }
}

/// The envelope and MAIL parameters of a transaction that reached DATA.
pub fn envelope(tx: Transaction<String>) -> (Envelope, MailParams) {
    let params = MailParams {
        smtputf8: tx.smtputf8,
    };
    let env = Envelope {
        mail_from: tx.sender,
        rcpt_to: tx.recipients,
    };
    (env, params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatmail_smtp::Dialogue;
    use chatmail_smtp::session::Step;

    #[test]
    fn memory_budget_defers_past_the_limit() {
        let budget = MemoryBudget::new(100 * 1024);
        let mut big = vec![b'x'; 150 * 1024];
        big.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
        let mut r = data_reader(1 << 20, Some(Arc::clone(&budget)));
        let (used, end) = r.feed(&big);
        assert_eq!(end, Some(DataEnd::OverBudget));
        assert_eq!(&big[used..], b"QUIT\r\n");
        assert_eq!(budget.in_use(), 0, "nothing held after refusing");
        // A message that fits holds its bytes until the reservation is dropped.
        let mut r = data_reader(1 << 20, Some(Arc::clone(&budget)));
        let (_, end) = r.feed(b"hello\r\n.\r\n");
        assert_eq!(end, Some(DataEnd::Message(b"hello\r\n".to_vec())));
        let reservation = r.take_allowance();
        assert!(budget.in_use() >= 7);
        drop(reservation);
        assert_eq!(budget.in_use(), 0);
        assert_eq!(refusal(&DataEnd::OverBudget), Some(Reply::OVER_BUDGET));
    }

    fn step(d: &mut Dialogue<String>, rules: &Envelopes, line: &str) -> Step {
        d.on_line(line.as_bytes(), rules)
    }

    #[test]
    fn incoming_spelling_without_local() {
        let rules = Envelopes::new(Mode::Incoming);
        let mut d = Dialogue::new(Some(100));
        assert_eq!(step(&mut d, &rules, "mail from:<>"), Step::Reply(Reply::OK));
        assert_eq!(
            step(&mut d, &rules, "RCPT TO:<\"q\"@b.org>"),
            Step::Reply(Reply::RECIPIENT_NOT_PLAIN)
        );
        assert_eq!(
            step(
                &mut d,
                &rules,
                "RCPT TO:<User@B.org> NOTIFY=NEVER ORCPT=rfc822;x@y"
            ),
            Step::Reply(Reply::OK)
        );
        assert_eq!(step(&mut d, &rules, "Data"), Step::Data);
        let (env, params) = envelope(d.take_transaction().unwrap());
        assert_eq!(
            env,
            Envelope {
                mail_from: String::new(),
                rcpt_to: vec!["User@B.org".into()],
            }
        );
        assert!(!params.smtputf8);
    }

    #[test]
    fn incoming_envelope_against_local() {
        let dir = tempfile::tempdir().unwrap();
        chatmaild::User::in_dir(dir.path(), "bob@chat.example.org")
            .unwrap()
            .set_password("{SHA512-CRYPT}$6$x")
            .unwrap();
        let local = Local::with_domains(&["chat.example.org"], dir.path().into());
        let rules = Envelopes {
            local: Some(&local),
            ..Envelopes::new(Mode::Incoming)
        };
        let mut d = Dialogue::new(None);
        assert_eq!(
            step(&mut d, &rules, "MAIL FROM:<alice@Chat.Example.org>"),
            Step::Reply(Reply::SENDER_IS_LOCAL)
        );
        assert_eq!(
            step(&mut d, &rules, "RCPT TO:<bob@chat.example.org>"),
            Step::Reply(Reply::NEED_MAIL)
        );
        assert_eq!(
            step(&mut d, &rules, "MAIL FROM:<a@remote.example>"),
            Step::Reply(Reply::OK)
        );
        assert_eq!(
            step(&mut d, &rules, "RCPT TO:<nobody@chat.example.org>"),
            Step::Reply(Reply::unknown_recipient("nobody@chat.example.org"))
        );
        assert_eq!(
            step(&mut d, &rules, "RCPT TO:<\"bob\"@chat.example.org>"),
            Step::Reply(Reply::RECIPIENT_NOT_PLAIN)
        );
        assert_eq!(
            step(&mut d, &rules, "RCPT TO:<Bob+x@chat.example.org>"),
            Step::Reply(Reply::OK)
        );
        assert_eq!(step(&mut d, &rules, "DATA"), Step::Data);
        let (env, _) = envelope(d.take_transaction().unwrap());
        assert_eq!(env.rcpt_to, vec!["Bob+x@chat.example.org"]);
        assert_eq!(
            step(&mut d, &rules, "MAIL FROM:<>"),
            Step::Reply(Reply::OK),
            "null sender"
        );
        // Outgoing mode: our users send to anyone, as themselves.
        let rules = Envelopes {
            local: Some(&local),
            ..Envelopes::new(Mode::Outgoing)
        };
        let mut d = Dialogue::new(None);
        assert_eq!(
            step(&mut d, &rules, "MAIL FROM:<alice@chat.example.org>"),
            Step::Reply(Reply::OK)
        );
        assert_eq!(
            step(&mut d, &rules, "RCPT TO:<nobody@chat.example.org>"),
            Step::Reply(Reply::OK)
        );
    }

    #[test]
    fn outgoing_mail_from_rules() {
        let rules = Envelopes::new(Mode::Outgoing);
        assert_eq!(rules.sender(""), Err(Reply::invalid_from_address("")));
        assert_eq!(
            rules.sender("a@b@c"),
            Err(Reply::invalid_from_address("a@b@c"))
        );
        let limiter = RateLimiter::new(60, 2);
        let rules = Envelopes {
            limiter: Some(&limiter),
            ..rules
        };
        for _ in 0..2 {
            assert_eq!(rules.sender("a@b"), Ok("a@b".into()));
        }
        // The same mailbox however spelled.
        let r = rules.sender("A@B").unwrap_err();
        assert_eq!(r.code(), 450);
        assert!(
            r.to_string()
                .starts_with("450 4.7.1: Too much mail from <A@B>, "),
            "{r}"
        );
    }
}
