//! LMTP (RFC 2033) as the transport reads it: commands, recipient validation, and what a DATA
//! section becomes, on the shared wire protocol of [`chatmail_smtp`].
//!
//! Pure code without I/O; the connection loop in [`crate::server`] feeds it. Follows SPEC §6.2
//! (commands, parameters ignored, null sender) and §6.3 (DATA framing, size limit), with the
//! robustness of their Notes: an unparsable RCPT gets a reply, and the DATA receiver never lets
//! the rest of an oversized message be read as commands.

use std::net::IpAddr;
use std::sync::Arc;

use chatmail_smtp as wire;
use chatmail_smtp::command::strip_source_route;
use chatmail_smtp::{
    DataEnd, DataReceiver, MemoryBudget, Reservation, Verb, stuff_in_place, stuffed_len,
};

/// One parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `LHLO`, or the `HELO`/`EHLO` a confused client may send instead.
    Hello,
    /// `MAIL FROM:<addr>`; `None` when the path cannot be parsed. `<>` is `Some("")`.
    Mail(Option<String>),
    /// `RCPT TO:<addr>`; `None` when the path cannot be parsed.
    Rcpt(Option<String>),
    /// `DATA`.
    Data,
    /// `RSET`.
    Rset,
    /// `NOOP`.
    Noop,
    /// `QUIT`.
    Quit,
    /// Anything else.
    Unknown,
}

/// Parses one command line without its CRLF. Verbs are case-insensitive; ESMTP parameters after
/// the path are accepted and ignored (SPEC §6.2); a line that is not UTF-8 is not understood.
pub fn parse_command(line: &[u8]) -> Command {
    if std::str::from_utf8(line).is_err() {
        return Command::Unknown;
    }
    let command = wire::Command::parse(line);
    match command.verb {
        Verb::Lhlo | Verb::Ehlo | Verb::Helo => Command::Hello,
        Verb::Mail => Command::Mail(path(&command)),
        Verb::Rcpt => Command::Rcpt(path(&command)),
        Verb::Data if command.args.trim_ascii().is_empty() => Command::Data,
        Verb::Rset => Command::Rset,
        Verb::Noop => Command::Noop,
        Verb::Quit => Command::Quit,
        Verb::Data | Verb::Unknown => Command::Unknown,
    }
}

/// The address of a MAIL or RCPT path, without an RFC 5321 source route (`<@a,@b:user@d>`).
fn path(command: &wire::Command<'_>) -> Option<String> {
    let path = std::str::from_utf8(command.path()?).ok()?;
    strip_source_route(path).map(str::to_owned)
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// Where a recipient's domain points: a name for MX lookup or an address literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    /// A domain name, lower-cased, without a trailing dot.
    Name(String),
    /// A domain literal, `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
    Literal(IpAddr),
}

impl Destination {
    /// The key under which recipients are grouped and queue slots are counted.
    pub fn key(&self) -> String {
        match self {
            Destination::Name(n) => n.clone(),
            Destination::Literal(ip) => format!("[{ip}]"),
        }
    }
}

/// Splits a recipient address and validates its domain; `None` means `553 Invalid email
/// address`. The local part is forwarded as received (SPEC §6.2 Note: keep the case).
pub fn parse_recipient(addr: &str) -> Option<Destination> {
    let (local, domain) = addr.rsplit_once('@')?;
    if local.is_empty()
        || addr.len() > 512
        || addr.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return None;
    }
    parse_domain(domain)
}

fn parse_domain(domain: &str) -> Option<Destination> {
    if let Some(literal) = domain.strip_prefix('[') {
        let inner = literal.strip_suffix(']')?;
        let ip = match strip_prefix_ci(inner, "IPv6:") {
            Some(v6) => IpAddr::V6(v6.parse().ok()?),
            None => IpAddr::V4(inner.parse().ok()?),
        };
        return Some(Destination::Literal(ip));
    }
    let domain = domain.to_lowercase();
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    };
    (domain.len() <= 253 && domain.split('.').all(valid_label)).then_some(Destination::Name(domain))
}

/// How a DATA section ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataOutcome {
    /// The message in wire form: dot-stuffed lines followed by the `.` line, ready to be
    /// written after an SMTP `DATA` (and, without the last three bytes, posted to `/mxdeliv`).
    Message(Vec<u8>),
    /// More than `max_message_size` bytes; the rest was discarded up to the end marker.
    TooBig,
    /// The messages held already fill the memory budget; the rest was discarded.
    OverBudget,
    /// A bare CR or LF, or a line starting with an unstuffed `.`: forwarding it would change the
    /// message, so it is refused.
    Invalid,
}

/// The DATA receiver of the transport: limited to `limit` message bytes, held under
/// `budget` (`None`: unlimited), refusing an unstuffed dot line.
pub fn data_receiver(limit: usize, budget: Option<Arc<MemoryBudget>>) -> DataReceiver<Reservation> {
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    DataReceiver::with_allowance(limit, Reservation::new(budget)).refuse_unstuffed_dot()
}

impl DataOutcome {
    /// What the receiver's `end` becomes. A message is dot-stuffed again for delivery, in
    /// place (a second copy would double what a large message holds); `held`, the
    /// receiver's reservation, then covers the stuffed message, which the transport keeps
    /// until its deliveries end. If the budget cannot cover the few added bytes, the message
    /// is refused like one over the budget.
    pub fn new(end: DataEnd, held: &mut Reservation) -> DataOutcome {
        match end {
            DataEnd::Message(mut message) => {
                let wire_len = stuffed_len(&message).saturating_add(3);
                if !held.cover_alone(wire_len) {
                    held.release();
                    return DataOutcome::OverBudget;
                }
                held.shrink_to(wire_len);
                message.reserve_exact(wire_len - message.len());
                stuff_in_place(&mut message);
                message.extend_from_slice(b".\r\n");
                DataOutcome::Message(message)
            }
            DataEnd::TooBig => DataOutcome::TooBig,
            DataEnd::OverBudget => DataOutcome::OverBudget,
            DataEnd::BareLineEnd | DataEnd::UnstuffedDot => DataOutcome::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        let cases: &[(&str, Command)] = &[
            ("LHLO relay", Command::Hello),
            ("lhlo relay", Command::Hello),
            (
                "MAIL FROM:<a@b.example>",
                Command::Mail(Some("a@b.example".into())),
            ),
            (
                "mail from:<> BODY=8BITMIME",
                Command::Mail(Some(String::new())),
            ),
            (
                "MAIL FROM: <A@B.example> SIZE=10",
                Command::Mail(Some("A@B.example".into())),
            ),
            ("MAIL FROM:a@b", Command::Mail(None)),
            ("MAIL", Command::Mail(None)),
            (
                "RCPT TO:<x@y.example> NOTIFY=NEVER ORCPT=rfc822;x@y",
                Command::Rcpt(Some("x@y.example".into())),
            ),
            (
                "RCPT TO:<@relay.example:x@y.example>",
                Command::Rcpt(Some("x@y.example".into())),
            ),
            ("RCPT TO:<x@y", Command::Rcpt(None)),
            ("DATA", Command::Data),
            ("DATA x", Command::Unknown),
            ("rset", Command::Rset),
            ("NOOP", Command::Noop),
            ("QUIT", Command::Quit),
            ("VRFY x", Command::Unknown),
            ("", Command::Unknown),
        ];
        for (line, want) in cases {
            assert_eq!(&parse_command(line.as_bytes()), want, "{line}");
        }
        assert_eq!(parse_command(b"MAIL FROM:<\xff>"), Command::Unknown);
    }

    #[test]
    fn a_message_is_held_as_its_stuffed_copy() {
        let budget = MemoryBudget::new(1024 * 1024);
        let mut held = Reservation::new(Some(Arc::clone(&budget)));
        let message = b"a\r\n.b\r\n".to_vec();
        assert!(held.cover(message.len(), usize::MAX));
        let outcome = DataOutcome::new(DataEnd::Message(message), &mut held);
        assert_eq!(outcome, DataOutcome::Message(b"a\r\n..b\r\n.\r\n".to_vec()));
        assert_eq!((held.bytes(), budget.in_use()), (11, 11));
        // The added bytes do not fit beside another message: refused, nothing held.
        let small = MemoryBudget::new(10);
        let mut other = Reservation::new(Some(Arc::clone(&small)));
        assert!(other.cover(2, 2));
        let mut held = Reservation::new(Some(Arc::clone(&small)));
        assert!(held.cover(8, 8));
        let outcome = DataOutcome::new(DataEnd::Message(b"a\r\n.b\r\n".to_vec()), &mut held);
        assert_eq!(outcome, DataOutcome::OverBudget);
        assert_eq!(small.in_use(), 2);
    }

    #[test]
    fn recipients() {
        let name = |s: &str| Some(Destination::Name(s.into()));
        assert_eq!(parse_recipient("User@Example.ORG"), name("example.org"));
        assert_eq!(parse_recipient("a@_test.example"), name("_test.example"));
        assert_eq!(parse_recipient("a@bücher.example"), name("bücher.example"));
        assert_eq!(
            parse_recipient("a@[127.0.0.1]"),
            Some(Destination::Literal("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            parse_recipient("a@[IPv6:::1]"),
            Some(Destination::Literal("::1".parse().unwrap()))
        );
        for bad in [
            "",
            "nodomain",
            "@example.org",
            "a@",
            "a@.example",
            "a@example.",
            "a@ex ample.org",
            "a@-x.org",
            "a@[300.1.1.1]",
            "a@[::1]",
            "a@x/y.org",
            "a b@example.org",
        ] {
            assert_eq!(parse_recipient(bad), None, "{bad}");
        }
        assert_eq!(parse_recipient(&format!("a@{}.org", "x".repeat(64))), None);
    }
}
