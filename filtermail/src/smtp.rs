//! The server side of the SMTP dialogue with Postfix's before-queue proxy (SPEC §6.2, §6.3),
//! as byte-level state machines without I/O.
//!
//! - [`next_line`] frames command lines: CRLF required, length capped.
//! - [`Session`] turns one command line into the next [`Step`].
//! - [`DataReader`] consumes DATA bytes: undoes dot-stuffing (RFC 5321 §4.5.2), finds the
//!   end marker across reads, and stops storing past `max_message_size` while still reading
//!   to the end marker, so the rest of an oversized message is never taken for commands.

use std::time::Instant;

use std::sync::Arc;

use crate::budget::{MemoryBudget, Reservation};
use crate::policy::{Envelope, MailParams, check_outgoing_mail_from};
use crate::ratelimit::RateLimiter;
use crate::reply::Reply;

/// Longest command line accepted, CRLF included. RFC 5321 asks for 512; Postfix's proxy
/// passes client parameters through, so leave generous room.
pub const MAX_LINE: usize = 4096;
/// Most recipients in one transaction (Postfix's `smtpd_recipient_limit` default is 1000).
pub const MAX_RECIPIENTS: usize = 1000;

/// The multi-line EHLO reply: 8BITMIME is required (SPEC §6.2); no PIPELINING, CHUNKING,
/// STARTTLS, AUTH or XCLIENT, which Postfix would then try to use.
pub fn ehlo_reply(max_message_size: u64) -> Vec<u8> {
    format!("250-filtermail\r\n250-8BITMIME\r\n250-SIZE {max_message_size}\r\n250-SMTPUTF8\r\n250 OK\r\n")
        .into_bytes()
}

/// A framed command line, or why framing failed.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A complete line without its CRLF, and the bytes it used from the buffer.
    Complete(&'a [u8], usize),
    /// No complete line yet: read more.
    Incomplete,
    /// The line ends in a bare LF.
    BareLf,
    /// The line is longer than [`MAX_LINE`].
    TooLong,
}

/// The next command line in `buf`.
pub fn next_line(buf: &[u8]) -> Line<'_> {
    let window = buf.get(..MAX_LINE).unwrap_or(buf);
    match window.iter().position(|&b| b == b'\n') {
        Some(lf) => match lf.checked_sub(1).and_then(|cr| buf.get(cr)) {
            Some(b'\r') => Line::Complete(buf.get(..lf - 1).unwrap_or_default(), lf + 1),
            _ => Line::BareLf,
        },
        None if buf.len() >= MAX_LINE => Line::TooLong,
        None => Line::Incomplete,
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
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
    smtputf8: bool,
}

impl Session {
    /// A fresh connection.
    pub fn new(mode: Mode, max_message_size: u64) -> Session {
        Session {
            mode,
            max_message_size,
            mail_from: None,
            rcpt_to: Vec::new(),
            smtputf8: false,
        }
    }

    /// Handles one command line (without CRLF). `limiter` is the outgoing rate limit.
    pub fn on_line(&mut self, line: &[u8], limiter: Option<&RateLimiter>, now: Instant) -> Step {
        let (verb, rest) = split_verb(line);
        match verb.to_ascii_uppercase().as_slice() {
            b"EHLO" | b"LHLO" => {
                self.reset();
                Step::Raw(ehlo_reply(self.max_message_size))
            }
            b"HELO" => {
                self.reset();
                Step::Reply(Reply::HELO)
            }
            b"MAIL" => self.mail(rest, limiter, now),
            b"RCPT" => self.rcpt(rest),
            b"DATA" => {
                if self.mail_from.is_none() {
                    Step::Reply(Reply::NEED_MAIL)
                } else if self.rcpt_to.is_empty() {
                    Step::Reply(Reply::NEED_RCPT)
                } else {
                    Step::Data
                }
            }
            b"RSET" => {
                self.reset();
                Step::Reply(Reply::OK)
            }
            b"NOOP" => Step::Reply(Reply::OK),
            b"QUIT" => Step::Close(Reply::BYE),
            _ => Step::Reply(Reply::UNKNOWN_COMMAND),
        }
    }

    fn mail(&mut self, args: &[u8], limiter: Option<&RateLimiter>, now: Instant) -> Step {
        let Some(addr) = path_argument(args, b"FROM:") else {
            return Step::Reply(Reply::INVALID_MAIL_FROM);
        };
        if self.mode == Mode::Outgoing {
            if let Err(reply) = check_outgoing_mail_from(&addr) {
                return Step::Reply(reply);
            }
            // One budget per mailbox, however the address is spelled.
            let key = chatmaild::address::canonical_mailbox(&addr)
                .map_or_else(|_| addr.to_ascii_lowercase(), |m| m.as_str().to_owned());
            if let Some(limiter) = limiter
                && let Err(wait) = limiter.check(&key, now)
            {
                tracing::warn!(sender = %addr, "rate limit exceeded");
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                return Step::Reply(Reply::rate_limited(&addr, secs));
            }
        }
        // A new MAIL starts a new transaction (Postfix never nests them).
        self.rcpt_to.clear();
        self.mail_from = Some(addr);
        self.smtputf8 = has_smtputf8_param(args);
        Step::Reply(Reply::OK)
    }

    fn rcpt(&mut self, args: &[u8]) -> Step {
        if self.mail_from.is_none() {
            return Step::Reply(Reply::NEED_MAIL);
        }
        match path_argument(args, b"TO:") {
            Some(addr) if !addr.is_empty() => {
                if self.rcpt_to.len() >= MAX_RECIPIENTS {
                    return Step::Reply(Reply::TOO_MANY_RECIPIENTS);
                }
                // Incoming recipients are ours: only spellings whose mailbox is certain.
                if self.mode == Mode::Incoming
                    && chatmaild::address::canonical_mailbox(&addr).is_err()
                {
                    return Step::Reply(Reply::RECIPIENT_NOT_PLAIN);
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

/// Whether the ESMTP parameters after `FROM:<...>` include `SMTPUTF8` (RFC 6531).
fn has_smtputf8_param(args: &[u8]) -> bool {
    let params = args
        .iter()
        .position(|&b| b == b'>')
        .and_then(|p| args.get(p + 1..))
        .unwrap_or_default();
    params
        .split(|&b| b == b' ')
        .any(|p| p.eq_ignore_ascii_case(b"SMTPUTF8"))
}

/// The command verb (up to the first space) and the rest.
fn split_verb(line: &[u8]) -> (&[u8], &[u8]) {
    match line.iter().position(|&b| b == b' ') {
        Some(sp) => (
            line.get(..sp).unwrap_or_default(),
            line.get(sp + 1..).unwrap_or_default(),
        ),
        None => (line, &[]),
    }
}

/// The address of `FROM:<addr> params` / `TO:<addr> params`: the text between `<` and the
/// next `>`, which must be UTF-8 and free of control characters. ESMTP parameters after it
/// are accepted and ignored (SPEC §6.2).
fn path_argument(args: &[u8], keyword: &[u8]) -> Option<String> {
    let head = args.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = args.get(keyword.len()..)?.trim_ascii_start();
    let rest = rest.strip_prefix(b"<")?;
    let close = rest.iter().position(|&b| b == b'>')?;
    let addr = std::str::from_utf8(rest.get(..close)?).ok()?;
    if addr.chars().any(|c| c.is_control() || c == '<') {
        return None;
    }
    Some(addr.to_owned())
}

/// Where a [`DataReader`] is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataState {
    /// At the start of a line.
    LineStart,
    /// A `.` started the line.
    Dot,
    /// `.` CR started the line.
    DotCr,
    /// Inside a line.
    Mid,
    /// Just after a CR inside a line.
    Cr,
}

/// Receives one message after `354`: undoes dot-stuffing and stops at CRLF `.` CRLF.
///
/// The message is stored only up to `max` bytes and while the process-wide
/// [`MemoryBudget`] covers it; beyond either the reader keeps consuming (and discarding)
/// until the end marker, then reports why. A bare CR or LF anywhere makes the message
/// invalid (reported at the end marker too): Postfix, mail-parser and mail clients split
/// such lines differently.
#[derive(Debug)]
pub struct DataReader {
    state: DataState,
    max: usize,
    message: Vec<u8>,
    overflow: bool,
    over_budget: bool,
    bare_line_end: bool,
    reservation: Reservation,
}

/// A finished DATA phase.
#[derive(Debug, PartialEq, Eq)]
pub enum DataEnd {
    /// The unstuffed message, ending in CRLF unless empty.
    Message(Vec<u8>),
    /// The message was larger than the limit; its bytes were discarded.
    TooBig,
    /// The memory budget of messages in flight could not hold it; its bytes were discarded.
    OverBudget,
    /// A CR not followed by LF, or an LF not preceded by CR.
    BareLineEnd,
}

impl DataEnd {
    /// The reply for an end that is not a message.
    pub fn reply(&self) -> Option<Reply> {
        match self {
            DataEnd::Message(_) => None,
            DataEnd::TooBig => Some(Reply::TOO_BIG),
            DataEnd::OverBudget => Some(Reply::OVER_BUDGET),
            DataEnd::BareLineEnd => Some(Reply::INVALID_DATA),
        }
    }
}

impl DataReader {
    /// A reader keeping at most `max` message bytes, without a memory budget.
    pub fn new(max: u64) -> DataReader {
        DataReader::with_budget(max, None)
    }

    /// A reader keeping at most `max` message bytes, reserved from `budget`.
    pub fn with_budget(max: u64, budget: Option<Arc<MemoryBudget>>) -> DataReader {
        DataReader {
            state: DataState::LineStart,
            max: usize::try_from(max).unwrap_or(usize::MAX),
            message: Vec::new(),
            overflow: false,
            over_budget: false,
            bare_line_end: false,
            reservation: Reservation::new(budget),
        }
    }

    /// Whether the message has exceeded the limit (the reader then only looks for the end).
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// Whether the memory budget refused the message (the reader then only looks for the end).
    pub fn over_budget(&self) -> bool {
        self.over_budget
    }

    /// The budget reservation of the message read; keep it as long as the message is held.
    pub fn take_reservation(&mut self) -> Reservation {
        std::mem::take(&mut self.reservation)
    }

    fn emit(&mut self, bytes: &[u8]) {
        if self.overflow || self.over_budget {
            return;
        }
        let total = self.message.len().saturating_add(bytes.len());
        if total > self.max {
            self.overflow = true;
            self.message = Vec::new();
            self.reservation.release();
        } else if !self.reservation.cover(total, self.max) {
            self.over_budget = true;
            self.message = Vec::new();
            self.reservation.release();
        } else {
            self.message.extend_from_slice(bytes);
        }
    }

    fn finish(&mut self) -> DataEnd {
        if self.overflow {
            DataEnd::TooBig
        } else if self.over_budget {
            DataEnd::OverBudget
        } else if self.bare_line_end {
            self.message = Vec::new();
            self.reservation.release();
            DataEnd::BareLineEnd
        } else {
            DataEnd::Message(std::mem::take(&mut self.message))
        }
    }

    /// Consumes bytes from `input`; returns how many were used and, once the end marker has
    /// been read, the result. Bytes after the end marker are left for the command reader.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<DataEnd>) {
        let mut i = 0;
        while let Some(&b) = input.get(i) {
            match self.state {
                DataState::Mid => {
                    // Copy up to the next CR in one go.
                    let rest = input.get(i..).unwrap_or_default();
                    let n = rest.iter().position(|&c| c == b'\r').unwrap_or(rest.len());
                    let chunk = rest.get(..n).unwrap_or_default();
                    if chunk.contains(&b'\n') {
                        self.bare_line_end = true;
                    }
                    self.emit(chunk);
                    i += n;
                    if n < rest.len() {
                        self.emit(b"\r");
                        self.state = DataState::Cr;
                        i += 1;
                    }
                    continue;
                }
                DataState::LineStart => {
                    if b == b'.' {
                        self.state = DataState::Dot;
                    } else {
                        self.plain_byte(b);
                    }
                }
                DataState::Cr => self.plain_byte(b),
                DataState::Dot => {
                    if b == b'\r' {
                        self.state = DataState::DotCr;
                    } else {
                        // Dot-stuffing: the leading dot is dropped, the byte kept.
                        self.plain_byte(b);
                    }
                }
                DataState::DotCr => {
                    if b == b'\n' {
                        return (i + 1, Some(self.finish()));
                    }
                    // `.` CR x: the dot was stuffing; CR x is line content.
                    self.emit(b"\r");
                    self.state = DataState::Cr;
                    self.plain_byte(b);
                }
            }
            i += 1;
        }
        (i, None)
    }

    /// One byte of line content after which the state follows the CRLF structure.
    fn plain_byte(&mut self, b: u8) {
        if (b == b'\n') != (self.state == DataState::Cr) {
            self.bare_line_end = true;
        }
        self.emit(&[b]);
        self.state = match (self.state, b) {
            (_, b'\r') => DataState::Cr,
            (DataState::Cr, b'\n') => DataState::LineStart,
            _ => DataState::Mid,
        };
    }
}

/// `message` dot-stuffed for SMTP DATA, in slices: every `.` that starts a line (after LF,
/// bare or not, so lenient receivers cannot see an early end marker) is doubled. The
/// end-of-data line is not included.
pub fn stuffed_slices(message: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = message;
    let mut at_line_start = true;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        if at_line_start && rest.first() == Some(&b'.') {
            // Emit "." now; the original dot goes out with the following slice.
            at_line_start = false;
            return Some(&b"."[..]);
        }
        at_line_start = false;
        // Up to and including the next LF.
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |p| p + 1);
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        if chunk.last() == Some(&b'\n') {
            at_line_start = true;
        }
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8], max: u64) -> (usize, Option<DataEnd>) {
        DataReader::new(max).feed(input)
    }

    #[test]
    fn data_unstuffing_table() {
        type Case<'a> = (&'a str, &'a [u8], Option<&'a [u8]>);
        let cases: &[Case] = &[
            ("empty", b".\r\n", Some(b"")),
            ("one line", b"a\r\n.\r\n", Some(b"a\r\n")),
            ("stuffed dot", b"..x\r\n.\r\n", Some(b".x\r\n")),
            ("stuffed lone dot", b"..\r\n.\r\n", Some(b".\r\n")),
            ("dot mid line", b"a.b\r\n.\r\n", Some(b"a.b\r\n")),
            ("8bit", b"\xff\xfe\r\n.\r\n", Some(b"\xff\xfe\r\n")),
            ("no end", b"abc\r\n", None),
            ("no end dot", b"abc\r\n.", None),
        ];
        for (name, input, want) in cases {
            let (_, end) = run(input, 1000);
            assert_eq!(end, want.map(|w| DataEnd::Message(w.to_vec())), "{name}");
        }
    }

    #[test]
    fn bare_cr_or_lf_is_invalid_after_the_end_marker() {
        let cases: &[(&str, &[u8])] = &[
            ("bare lf dot", b"a\n.\r\nb\r\n.\r\n"),
            ("dot cr x", b".\rx\r\n.\r\n"),
            ("bare lf", b"Subject: x\nFrom: y\r\n\r\nz\r\n.\r\n"),
            ("bare cr", b"Subject: x\rFrom: y\r\n\r\nz\r\n.\r\n"),
            ("cr cr lf", b"a\r\r\n.\r\n"),
            ("leading lf", b"\na\r\n.\r\n"),
            ("dot lf", b".\nx\r\n.\r\n"),
            ("stuffed dot bare lf", b"..x\ny\r\n.\r\n"),
        ];
        for (name, input) in cases {
            let (used, end) = run(input, 1000);
            assert_eq!(end, Some(DataEnd::BareLineEnd), "{name}");
            assert_eq!(used, input.len(), "{name}: read to the end marker");
        }
        // Split at every byte: the same verdict, and the command after it stays.
        let input = b"a\rb\r\nc\nd\r\n.\r\nQUIT\r\n";
        for cut in 0..input.len() {
            let mut r = DataReader::new(1000);
            let (a, end) = r.feed(&input[..cut]);
            let (end, used) = match end {
                Some(e) => (e, a),
                None => {
                    let (b, e) = r.feed(&input[cut..]);
                    (e.expect("end"), cut + b)
                }
            };
            assert_eq!(end, DataEnd::BareLineEnd, "cut {cut}");
            assert_eq!(&input[used..], b"QUIT\r\n", "cut {cut}");
        }
    }

    #[test]
    fn memory_budget_defers_past_the_limit() {
        let budget = MemoryBudget::new(100 * 1024);
        let mut big = vec![b'x'; 150 * 1024];
        big.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
        let mut r = DataReader::with_budget(1 << 20, Some(Arc::clone(&budget)));
        let (used, end) = r.feed(&big);
        assert_eq!(end, Some(DataEnd::OverBudget));
        assert_eq!(&big[used..], b"QUIT\r\n");
        assert_eq!(budget.in_use(), 0, "nothing held after refusing");
        // A message that fits holds its bytes until the reservation is dropped.
        let mut r = DataReader::with_budget(1 << 20, Some(Arc::clone(&budget)));
        let (_, end) = r.feed(b"hello\r\n.\r\n");
        assert_eq!(end, Some(DataEnd::Message(b"hello\r\n".to_vec())));
        let reservation = r.take_reservation();
        assert!(budget.in_use() >= 7);
        drop(reservation);
        assert_eq!(budget.in_use(), 0);
        assert_eq!(DataEnd::OverBudget.reply(), Some(Reply::OVER_BUDGET));
    }

    #[test]
    fn data_split_at_every_byte() {
        let input = b"Subject: x\r\n\r\n..a\r\n..\r\nb.\r\n\r\n.\r\nQUIT\r\n";
        let want = b"Subject: x\r\n\r\n.a\r\n.\r\nb.\r\n\r\n".to_vec();
        for cut in 0..input.len() {
            let mut r = DataReader::new(1000);
            let (a, end) = r.feed(&input[..cut]);
            let result = match end {
                Some(e) => (e, a),
                None => {
                    assert_eq!(a, cut, "an unfinished feed uses all bytes");
                    let (b, e) = r.feed(&input[cut..]);
                    (e.expect("end"), cut + b)
                }
            };
            assert_eq!(result.0, DataEnd::Message(want.clone()), "cut {cut}");
            assert_eq!(&input[result.1..], b"QUIT\r\n", "cut {cut}");
        }
    }

    #[test]
    fn data_size_limit() {
        assert_eq!(
            run(b"12345\r\n.\r\n", 7).1,
            Some(DataEnd::Message(b"12345\r\n".to_vec()))
        );
        assert_eq!(run(b"123456\r\n.\r\n", 7).1, Some(DataEnd::TooBig));
        // The rest after an overflow is discarded, not parsed as commands.
        let input = b"123456789\r\nRCPT TO:<x@y>\r\n.\r\nQUIT\r\n";
        let (used, end) = run(input, 4);
        assert_eq!(end, Some(DataEnd::TooBig));
        assert_eq!(&input[used..], b"QUIT\r\n");
    }

    #[test]
    fn stuffing_round_trip() {
        for msg in [
            &b""[..],
            b"a\r\n",
            b".\r\n",
            b"..\r\n.x\r\n",
            b"x\r\n.\r\n.y\r\nz\r\n",
        ] {
            let stuffed: Vec<u8> = stuffed_slices(msg).flatten().copied().collect();
            let mut wire = stuffed.clone();
            wire.extend_from_slice(b".\r\n");
            let (used, end) = run(&wire, 1000);
            assert_eq!(used, wire.len());
            let back = match end {
                Some(DataEnd::Message(m)) => m,
                other => panic!("{other:?}"),
            };
            assert_eq!(back, msg, "{:?}", String::from_utf8_lossy(msg));
        }
        let s: Vec<u8> = stuffed_slices(b".a\r\nb\r\n.\r\n")
            .flatten()
            .copied()
            .collect();
        assert_eq!(s, b"..a\r\nb\r\n..\r\n");
    }

    #[test]
    fn framing() {
        assert_eq!(next_line(b"NOOP\r\nQUIT"), Line::Complete(b"NOOP", 6));
        assert_eq!(next_line(b"NOOP"), Line::Incomplete);
        assert_eq!(next_line(b"NOOP\n"), Line::BareLf);
        assert_eq!(next_line(b"\n"), Line::BareLf);
        assert_eq!(next_line(&vec![b'a'; MAX_LINE]), Line::TooLong);
        let mut ok = vec![b'a'; MAX_LINE - 2];
        ok.extend_from_slice(b"\r\n");
        assert!(matches!(next_line(&ok), Line::Complete(_, n) if n == MAX_LINE));
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
