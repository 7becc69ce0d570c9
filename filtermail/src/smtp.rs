//! The server side of the SMTP dialogue with Postfix's before-queue proxy (SPEC §6.2, §6.3):
//! the transaction state machine, on the wire protocol of [`chatmail_smtp`] (framing,
//! commands, the DATA receiver), without I/O.
//!
//! - [`Session`] turns one command line into the next [`Step`].
//! - [`DataReader`] is the DATA receiver, its message held under the [`MemoryBudget`].

use std::sync::Arc;
use std::time::Instant;

use chatmail_smtp::{Command, DataReceiver, Verb};

use crate::budget::{MemoryBudget, Reservation};
use crate::local::Local;
use crate::policy::{Envelope, MailParams, check_outgoing_mail_from};
use crate::ratelimit::RateLimiter;
use crate::reply::{FilterReply, Reply};

pub use chatmail_smtp::{DataEnd, MAX_RECIPIENTS};

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

/// The multi-line EHLO reply: 8BITMIME is required (SPEC §6.2); no PIPELINING, CHUNKING,
/// STARTTLS, AUTH or XCLIENT, which Postfix would then try to use.
pub fn ehlo_reply(max_message_size: u64) -> Vec<u8> {
    format!("250-filtermail\r\n250-8BITMIME\r\n250-SIZE {max_message_size}\r\n250-SMTPUTF8\r\n250 OK\r\n")
        .into_bytes()
}

/// Whether the server is the outgoing (submission) or incoming (MX) filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Mail our users send.
    Outgoing,
    /// Mail from other servers.
    Incoming,
}

/// What the I/O loop does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this reply, keep reading commands.
    Reply(Reply),
    /// Send these raw reply lines (multi-line EHLO).
    Raw(Vec<u8>),
    /// Send 354 and read the message with a [`DataReader`].
    Data,
    /// Send this reply and close the connection.
    Close(Reply),
}

/// One SMTP connection's transaction state.
#[derive(Debug)]
pub struct Session {
    mode: Mode,
    max_message_size: u64,
    /// Incoming mode: senders of our domain and recipients without a mailbox are refused.
    local: Option<Arc<Local>>,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
    smtputf8: bool,
}

impl Session {
    /// A fresh connection. In incoming mode, recipients are only checked for their spelling
    /// until [`Session::with_local`] names the relay's domain and mailboxes.
    pub fn new(mode: Mode, max_message_size: u64) -> Session {
        Session {
            mode,
            max_message_size,
            local: None,
            mail_from: None,
            rcpt_to: Vec::new(),
            smtputf8: false,
        }
    }

    /// This session checking incoming senders and recipients against `local` (the
    /// listener always sets it; outgoing mode ignores it).
    pub fn with_local(self, local: Arc<Local>) -> Session {
        Session {
            local: Some(local),
            ..self
        }
    }

    /// Handles one command line (without CRLF). `limiter` is the outgoing rate limit.
    pub fn on_line(&mut self, line: &[u8], limiter: Option<&RateLimiter>, now: Instant) -> Step {
        let command = Command::parse(line);
        match command.verb {
            Verb::Ehlo | Verb::Lhlo => {
                self.reset();
                Step::Raw(ehlo_reply(self.max_message_size))
            }
            Verb::Helo => {
                self.reset();
                Step::Reply(Reply::HELO)
            }
            Verb::Mail => self.mail(&command, limiter, now),
            Verb::Rcpt => self.rcpt(&command),
            Verb::Data => {
                if self.mail_from.is_none() {
                    Step::Reply(Reply::NEED_MAIL)
                } else if self.rcpt_to.is_empty() {
                    Step::Reply(Reply::NEED_RCPT)
                } else {
                    Step::Data
                }
            }
            Verb::Rset => {
                self.reset();
                Step::Reply(Reply::OK)
            }
            Verb::Noop => Step::Reply(Reply::OK),
            Verb::Quit => Step::Close(Reply::BYE),
            Verb::Unknown => Step::Reply(Reply::UNKNOWN_COMMAND),
        }
    }

    fn mail(&mut self, command: &Command, limiter: Option<&RateLimiter>, now: Instant) -> Step {
        // A new MAIL starts a new transaction (Postfix never nests them); a refused one
        // leaves none, so no recipient can join the sender of an earlier MAIL.
        self.reset();
        let Some(addr) = plain_path(command) else {
            return Step::Reply(Reply::INVALID_MAIL_FROM);
        };
        if let Err(reply) = self.check_sender(&addr, limiter, now) {
            return Step::Reply(reply);
        }
        self.mail_from = Some(addr);
        self.smtputf8 = command.has_param("SMTPUTF8");
        Step::Reply(Reply::OK)
    }

    /// The rules of this mode for a MAIL FROM address.
    fn check_sender(
        &self,
        addr: &str,
        limiter: Option<&RateLimiter>,
        now: Instant,
    ) -> Result<(), Reply> {
        match (self.mode, &self.local) {
            (Mode::Incoming, Some(local)) => local.check_sender(addr),
            (Mode::Incoming, None) => Ok(()),
            (Mode::Outgoing, _) => {
                check_outgoing_mail_from(addr)?;
                // One budget per mailbox, however the address is spelled.
                let key = chatmaild::address::canonical_mailbox(addr)
                    .map_or_else(|_| addr.to_ascii_lowercase(), |m| m.as_str().to_owned());
                if let Some(limiter) = limiter
                    && let Err(wait) = limiter.check(&key, now)
                {
                    tracing::warn!(sender = %addr, "rate limit exceeded");
                    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                    return Err(Reply::rate_limited(addr, secs));
                }
                Ok(())
            }
        }
    }

    fn rcpt(&mut self, command: &Command) -> Step {
        if self.mail_from.is_none() {
            return Step::Reply(Reply::NEED_MAIL);
        }
        match plain_path(command) {
            Some(addr) if !addr.is_empty() => {
                if self.rcpt_to.len() >= MAX_RECIPIENTS {
                    return Step::Reply(Reply::TOO_MANY_RECIPIENTS);
                }
                // Incoming recipients are ours: only spellings whose mailbox is certain,
                // and only mailboxes that take mail.
                if self.mode == Mode::Incoming {
                    let checked = match &self.local {
                        Some(local) => local.check_recipient(&addr),
                        None => chatmaild::address::canonical_mailbox(&addr)
                            .map(drop)
                            .map_err(|_| Reply::RECIPIENT_NOT_PLAIN),
                    };
                    if let Err(reply) = checked {
                        return Step::Reply(reply);
                    }
                }
                self.rcpt_to.push(addr);
                Step::Reply(Reply::OK)
            }
            _ => Step::Reply(Reply::INVALID_RCPT_TO),
        }
    }

    /// The envelope of the transaction that reached DATA; the transaction is reset, so
    /// further transactions on the connection start clean (SPEC §6.2).
    pub fn take_envelope(&mut self) -> Envelope {
        self.take_transaction().0
    }

    /// Like [`Session::take_envelope`], with the MAIL parameters to pass on.
    pub fn take_transaction(&mut self) -> (Envelope, MailParams) {
        let env = Envelope {
            mail_from: self.mail_from.take().unwrap_or_default(),
            rcpt_to: std::mem::take(&mut self.rcpt_to),
        };
        let params = MailParams {
            smtputf8: std::mem::take(&mut self.smtputf8),
        };
        (env, params)
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.rcpt_to.clear();
        self.smtputf8 = false;
    }
}

/// The address of `FROM:<addr> params` / `TO:<addr> params`, which must be UTF-8 and free of
/// control characters. ESMTP parameters after it are accepted and ignored (SPEC §6.2).
fn plain_path(command: &Command) -> Option<String> {
    let addr = std::str::from_utf8(command.path()?).ok()?;
    if addr.chars().any(|c| c.is_control() || c == '<') {
        return None;
    }
    Some(addr.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn step(s: &mut Session, line: &str) -> Step {
        s.on_line(line.as_bytes(), None, Instant::now())
    }

    #[test]
    fn command_table() {
        let mut s = Session::new(Mode::Incoming, 100);
        assert!(matches!(step(&mut s, "ehlo x"), Step::Raw(r) if r.ends_with(b"250 OK\r\n")));
        assert_eq!(step(&mut s, "DATA"), Step::Reply(Reply::NEED_MAIL));
        assert_eq!(step(&mut s, "RCPT TO:<a@b>"), Step::Reply(Reply::NEED_MAIL));
        assert_eq!(step(&mut s, "mail from:<>"), Step::Reply(Reply::OK));
        assert_eq!(step(&mut s, "DATA"), Step::Reply(Reply::NEED_RCPT));
        assert_eq!(
            step(&mut s, "RCPT TO:garbage"),
            Step::Reply(Reply::INVALID_RCPT_TO)
        );
        assert_eq!(
            step(&mut s, "RCPT TO:<>"),
            Step::Reply(Reply::INVALID_RCPT_TO)
        );
        assert_eq!(
            step(&mut s, "RCPT TO:<User@B.org> NOTIFY=NEVER ORCPT=rfc822;x@y"),
            Step::Reply(Reply::OK)
        );
        assert_eq!(step(&mut s, "Data"), Step::Data);
        assert_eq!(
            s.take_envelope(),
            Envelope {
                mail_from: String::new(),
                rcpt_to: vec!["User@B.org".into()],
            }
        );
        assert_eq!(step(&mut s, "DATA"), Step::Reply(Reply::NEED_MAIL));
        assert_eq!(
            step(&mut s, "MAIL FROM:bad"),
            Step::Reply(Reply::INVALID_MAIL_FROM)
        );
        assert_eq!(
            step(&mut s, "MAIL FROM:<a@b> SIZE=10 BODY=8BITMIME SMTPUTF8"),
            Step::Reply(Reply::OK)
        );
        assert_eq!(step(&mut s, "RCPT TO:<x@y>"), Step::Reply(Reply::OK));
        assert!(s.take_transaction().1.smtputf8);
        assert_eq!(
            step(&mut s, "MAIL FROM:<a@b> BODY=8BITMIME"),
            Step::Reply(Reply::OK)
        );
        assert!(!s.take_transaction().1.smtputf8);
        assert_eq!(step(&mut s, "RSET"), Step::Reply(Reply::OK));
        assert_eq!(step(&mut s, "NOOP"), Step::Reply(Reply::OK));
        assert_eq!(
            step(&mut s, "XFORWARD ADDR=1.2.3.4"),
            Step::Reply(Reply::UNKNOWN_COMMAND)
        );
        assert_eq!(step(&mut s, ""), Step::Reply(Reply::UNKNOWN_COMMAND));
        assert_eq!(step(&mut s, "quit"), Step::Close(Reply::BYE));
        assert_eq!(
            s.on_line(b"MAIL FROM:<\xff@x>", None, Instant::now()),
            Step::Reply(Reply::INVALID_MAIL_FROM)
        );
    }

    #[test]
    fn incoming_envelope_against_local() {
        let dir = tempfile::tempdir().unwrap();
        chatmaild::User::in_dir(dir.path(), "bob@chat.example.org")
            .unwrap()
            .set_password("{SHA512-CRYPT}$6$x")
            .unwrap();
        let local = Arc::new(Local::with_domains(
            &["chat.example.org"],
            dir.path().into(),
        ));
        let mut s = Session::new(Mode::Incoming, 100).with_local(Arc::clone(&local));
        assert_eq!(
            step(&mut s, "MAIL FROM:<alice@Chat.Example.org>"),
            Step::Reply(Reply::SENDER_IS_LOCAL)
        );
        assert_eq!(
            step(&mut s, "RCPT TO:<bob@chat.example.org>"),
            Step::Reply(Reply::NEED_MAIL)
        );
        assert_eq!(
            step(&mut s, "MAIL FROM:<a@remote.example>"),
            Step::Reply(Reply::OK)
        );
        assert_eq!(
            step(&mut s, "RCPT TO:<nobody@chat.example.org>"),
            Step::Reply(Reply::unknown_recipient("nobody@chat.example.org"))
        );
        assert_eq!(
            step(&mut s, "RCPT TO:<\"bob\"@chat.example.org>"),
            Step::Reply(Reply::RECIPIENT_NOT_PLAIN)
        );
        assert_eq!(
            step(&mut s, "RCPT TO:<Bob+x@chat.example.org>"),
            Step::Reply(Reply::OK)
        );
        assert_eq!(step(&mut s, "DATA"), Step::Data);
        assert_eq!(s.take_envelope().rcpt_to, vec!["Bob+x@chat.example.org"]);
        assert_eq!(
            step(&mut s, "MAIL FROM:<>"),
            Step::Reply(Reply::OK),
            "null sender"
        );
        // Outgoing mode: our users send to anyone, as themselves.
        let mut s = Session::new(Mode::Outgoing, 100).with_local(local);
        assert_eq!(
            step(&mut s, "MAIL FROM:<alice@chat.example.org>"),
            Step::Reply(Reply::OK)
        );
        assert_eq!(
            step(&mut s, "RCPT TO:<nobody@chat.example.org>"),
            Step::Reply(Reply::OK)
        );
    }

    #[test]
    fn outgoing_mail_from_rules() {
        let mut s = Session::new(Mode::Outgoing, 100);
        assert_eq!(
            step(&mut s, "MAIL FROM:<>"),
            Step::Reply(Reply::invalid_from_address(""))
        );
        assert_eq!(
            step(&mut s, "MAIL FROM:<a@b@c>"),
            Step::Reply(Reply::invalid_from_address("a@b@c"))
        );
        let limiter = RateLimiter::new(60, 2);
        let now = Instant::now();
        for _ in 0..2 {
            assert_eq!(
                s.on_line(b"MAIL FROM:<a@b>", Some(&limiter), now),
                Step::Reply(Reply::OK)
            );
        }
        match s.on_line(b"MAIL FROM:<a@b>", Some(&limiter), now) {
            Step::Reply(r) => {
                assert_eq!(r.code(), 450);
                assert!(
                    r.to_string()
                        .starts_with("450 4.7.1: Too much mail from <a@b>, ")
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
