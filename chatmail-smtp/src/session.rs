//! The server side of one SMTP or LMTP dialogue, without I/O: the command sequence both
//! relay servers share (SPEC §6.2), with each service's envelope rules plugged in.
//!
//! [`Dialogue`] turns one command line into the next [`Step`]. What is the same for every
//! service is decided here once: `HELO`/`EHLO`/`LHLO`, `RSET`, `NOOP`, `QUIT`, unknown
//! commands, the order of `MAIL`, `RCPT` and `DATA`, the syntax of a path and the recipient
//! limit. What a service accepts as a sender or recipient is its [`Rules`]. The connection
//! driver ([`crate::server`]) feeds it lines and reads the message after [`Step::Data`].

use crate::command::{Command, Verb};
use crate::{MAX_RECIPIENTS, Reply};

/// The protocol a server speaks: the greeting and how many replies follow the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// SMTP (RFC 5321): one reply after the data.
    Smtp,
    /// LMTP (RFC 2033): one reply per accepted recipient after the data.
    Lmtp,
}

impl Protocol {
    /// The greeting sent when a client connects.
    pub fn greeting(self) -> Reply {
        match self {
            Protocol::Smtp => Reply::SMTP_GREETING,
            Protocol::Lmtp => Reply::LMTP_GREETING,
        }
    }
}

/// A service's rules for the envelope. Pure: they may look at shared state (a rate limiter,
/// queue slots) but do no I/O.
pub trait Rules {
    /// What the service keeps of an accepted recipient.
    type Recipient;

    /// The sender to keep for the path `addr` of a `MAIL` (`""` for `<>`), or its refusal.
    fn sender(&self, addr: &str) -> Result<String, Reply>;

    /// The recipient to keep for the non-empty path `addr` of a `RCPT`, given the
    /// recipients accepted so far in this transaction, or its refusal.
    fn recipient(&self, addr: &str, accepted: &[Self::Recipient])
    -> Result<Self::Recipient, Reply>;
}

/// One mail transaction: the sender, its `SMTPUTF8` parameter and the recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction<R> {
    /// The accepted sender (`""`: the null sender).
    pub sender: String,
    /// Whether `MAIL` carried the `SMTPUTF8` parameter.
    pub smtputf8: bool,
    /// The accepted recipients, in `RCPT` order.
    pub recipients: Vec<R>,
}

/// What the connection driver does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this reply, keep reading commands.
    Reply(Reply),
    /// Send these raw reply lines (the multi-line `EHLO`/`LHLO` reply).
    Raw(Vec<u8>),
    /// The transaction has a sender and recipients: go on with `DATA`.
    Data,
    /// Send this reply and close the connection.
    Close(Reply),
}

/// The multi-line `EHLO`/`LHLO` reply. `8BITMIME` is required (SPEC §6.2); `SIZE` is
/// advertised when `size` is given; no `PIPELINING`, `CHUNKING`, `STARTTLS`, `AUTH` or
/// `XCLIENT`, which a client would then try to use.
pub fn hello_reply(size: Option<u64>) -> Vec<u8> {
    let size = size
        .map(|n| format!("250-SIZE {n}\r\n"))
        .unwrap_or_default();
    format!("250-filtermail\r\n250-8BITMIME\r\n{size}250-SMTPUTF8\r\n250 OK\r\n").into_bytes()
}

/// One connection's dialogue state: the open transaction, if any.
#[derive(Debug)]
pub struct Dialogue<R> {
    size: Option<u64>,
    tx: Option<Transaction<R>>,
}

impl<R> Dialogue<R> {
    /// A fresh connection; `size` is the `SIZE` to advertise, if any.
    pub fn new(size: Option<u64>) -> Self {
        Dialogue { size, tx: None }
    }

    /// Handles one command line (without CRLF) under `rules`.
    pub fn on_line(&mut self, line: &[u8], rules: &impl Rules<Recipient = R>) -> Step {
        let command = Command::parse(line);
        match command.verb {
            Verb::Ehlo | Verb::Lhlo => {
                self.tx = None;
                Step::Raw(hello_reply(self.size))
            }
            Verb::Helo => {
                self.tx = None;
                Step::Reply(Reply::HELO)
            }
            Verb::Mail => Step::Reply(self.mail(&command, rules)),
            Verb::Rcpt => Step::Reply(self.rcpt(&command, rules)),
            Verb::Data => match &self.tx {
                None => Step::Reply(Reply::NEED_MAIL),
                Some(tx) if tx.recipients.is_empty() => Step::Reply(Reply::NEED_RCPT),
                Some(_) => Step::Data,
            },
            Verb::Rset => {
                self.tx = None;
                Step::Reply(Reply::OK)
            }
            Verb::Noop => Step::Reply(Reply::OK),
            Verb::Quit => Step::Close(Reply::BYE),
            Verb::Unknown => Step::Reply(Reply::UNKNOWN_COMMAND),
        }
    }

    /// The open transaction, if any.
    pub fn transaction(&self) -> Option<&Transaction<R>> {
        self.tx.as_ref()
    }

    /// Ends the open transaction and returns it (after `DATA`, whatever its outcome), so
    /// further transactions on the connection start clean (SPEC §6.2).
    pub fn take_transaction(&mut self) -> Option<Transaction<R>> {
        self.tx.take()
    }

    fn mail(&mut self, command: &Command, rules: &impl Rules<Recipient = R>) -> Reply {
        // The path first: SPEC §6.2 fixes the reply to an unparsable one.
        let Some(addr) = plain_path(command) else {
            return Reply::INVALID_MAIL_FROM;
        };
        if self.tx.is_some() {
            return Reply::NESTED_MAIL;
        }
        match rules.sender(addr) {
            Ok(sender) => {
                self.tx = Some(Transaction {
                    sender,
                    smtputf8: command.has_param("SMTPUTF8"),
                    recipients: Vec::new(),
                });
                Reply::OK
            }
            Err(reply) => reply,
        }
    }

    fn rcpt(&mut self, command: &Command, rules: &impl Rules<Recipient = R>) -> Reply {
        let Some(tx) = self.tx.as_mut() else {
            return Reply::NEED_MAIL;
        };
        let addr = match plain_path(command) {
            Some(addr) if !addr.is_empty() => addr,
            _ => return Reply::INVALID_RCPT_TO,
        };
        if tx.recipients.len() >= MAX_RECIPIENTS {
            return Reply::TOO_MANY_RECIPIENTS;
        }
        match rules.recipient(addr, &tx.recipients) {
            Ok(recipient) => {
                tx.recipients.push(recipient);
                Reply::OK
            }
            Err(reply) => reply,
        }
    }
}

/// The address of `FROM:<addr> params` / `TO:<addr> params`, which must be UTF-8 and free
/// of control characters and `<`. ESMTP parameters after it are accepted and ignored
/// (SPEC §6.2).
fn plain_path<'a>(command: &Command<'a>) -> Option<&'a str> {
    let addr = std::str::from_utf8(command.path()?).ok()?;
    (!addr.chars().any(|c| c.is_control() || c == '<')).then_some(addr)
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
