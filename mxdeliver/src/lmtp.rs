//! LMTP (RFC 2033) wire format: command parsing, recipient validation and the DATA receiver.
//!
//! Pure code without I/O; the connection loop in [`crate::server`] feeds it. Follows SPEC §6.2
//! (commands, parameters ignored, null sender) and §6.3 (DATA framing, size limit), with the
//! robustness of their Notes: an unparsable RCPT gets a reply, and the DATA receiver never lets
//! the rest of an oversized message be read as commands.

use std::net::IpAddr;

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
/// the path are accepted and ignored (SPEC §6.2).
pub fn parse_command(line: &[u8]) -> Command {
    let Ok(line) = std::str::from_utf8(line) else {
        return Command::Unknown;
    };
    let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
    match verb.to_ascii_uppercase().as_str() {
        "LHLO" | "EHLO" | "HELO" => Command::Hello,
        "MAIL" => Command::Mail(strip_prefix_ci(rest, "FROM:").and_then(parse_path)),
        "RCPT" => Command::Rcpt(strip_prefix_ci(rest, "TO:").and_then(parse_path)),
        "DATA" if rest.trim().is_empty() => Command::Data,
        "RSET" => Command::Rset,
        "NOOP" => Command::Noop,
        "QUIT" => Command::Quit,
        _ => Command::Unknown,
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// The address between `<` and `>`, without an RFC 5321 source route (`<@a,@b:user@d>`).
fn parse_path(s: &str) -> Option<String> {
    let s = s.trim_start().strip_prefix('<')?;
    let end = s.find('>')?;
    let addr = s.get(..end)?;
    let addr = match addr.strip_prefix('@') {
        Some(route) => route.split_once(':')?.1,
        None => addr,
    };
    Some(addr.to_owned())
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
    /// The message in wire form: dot-stuffed lines as received followed by the `.` line, ready
    /// to be written after an SMTP `DATA` (and, without the last three bytes, posted to
    /// `/mxdeliv`).
    Message(Vec<u8>),
    /// More than `max_message_size` bytes; the rest was discarded up to the end marker.
    TooBig,
    /// A bare CR or LF, or a line starting with an unstuffed `.`: forwarding it would change the
    /// message, so it is refused.
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    LineStart,
    Dot,
    DotCr,
    Mid,
    Cr,
}

/// Byte-fed DATA receiver: finds `CRLF.CRLF`, checks line endings and enforces the size limit
/// while reading, so memory stays bounded whatever the peer sends.
#[derive(Debug)]
pub struct DataReceiver {
    buf: Vec<u8>,
    state: State,
    limit: usize,
    too_big: bool,
    invalid: bool,
}

impl DataReceiver {
    /// A receiver accepting messages of at most `limit` bytes (dot-stuffed size).
    pub fn new(limit: usize) -> Self {
        DataReceiver {
            buf: Vec::new(),
            state: State::LineStart,
            limit,
            too_big: false,
            invalid: false,
        }
    }

    /// Feeds bytes; returns how many were consumed and, once the end marker was seen, the
    /// outcome. Bytes after the end marker are not consumed (they are the next command).
    pub fn feed(&mut self, data: &[u8]) -> (usize, Option<DataOutcome>) {
        let mut i = 0;
        while let Some(&b) = data.get(i) {
            if self.state == State::Mid {
                // Fast path: copy the rest of the line up to its CR or LF at once.
                let rest = data.get(i..).unwrap_or_default();
                let n = rest
                    .iter()
                    .position(|&c| c == b'\r' || c == b'\n')
                    .unwrap_or(rest.len());
                if n > 0 {
                    self.keep(rest.get(..n).unwrap_or_default());
                    i += n;
                    continue;
                }
            }
            self.state = match (self.state, b) {
                (State::LineStart, b'.') => State::Dot,
                (State::Dot, b'.') => State::Mid,
                (State::Dot, b'\r') => State::DotCr,
                (State::DotCr, b'\n') => return (i + 1, Some(self.finish())),
                (State::LineStart | State::Mid, b'\r') => State::Cr,
                (State::Cr, b'\n') => State::LineStart,
                (State::LineStart | State::Mid, b) if b != b'\n' => State::Mid,
                (State::Dot, b) if b != b'\n' => {
                    self.invalid = true;
                    State::Mid
                }
                (_, b'\n') => {
                    self.invalid = true;
                    State::LineStart
                }
                (_, b'\r') => {
                    self.invalid = true;
                    State::Cr
                }
                _ => {
                    self.invalid = true;
                    State::Mid
                }
            };
            self.keep(&[b]);
            i += 1;
        }
        (data.len(), None)
    }

    fn keep(&mut self, bytes: &[u8]) {
        if self.too_big {
            return;
        }
        self.buf.extend_from_slice(bytes);
        // The buffer holds up to two bytes of a possible end marker (".\r").
        if self.buf.len() > self.limit.saturating_add(2) {
            self.too_big = true;
            self.buf = Vec::new();
        }
    }

    fn finish(&mut self) -> DataOutcome {
        if self.too_big {
            return DataOutcome::TooBig;
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.push(b'\n');
        if buf.len() > self.limit.saturating_add(3) {
            DataOutcome::TooBig
        } else if self.invalid {
            DataOutcome::Invalid
        } else {
            DataOutcome::Message(buf)
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

    fn receive(limit: usize, chunks: &[&[u8]]) -> (Option<DataOutcome>, usize) {
        let mut r = DataReceiver::new(limit);
        let mut rest = 0;
        for chunk in chunks {
            let (used, out) = r.feed(chunk);
            if out.is_some() {
                rest = chunk.len() - used;
                return (out, rest);
            }
        }
        (None, rest)
    }

    #[test]
    fn data_keeps_wire_form() {
        let (out, rest) = receive(
            100,
            &[
                b"Subject: x\r\n\r\n..dot\r\nbo",
                b"dy\r\n.\r",
                b"\nQUIT\r\n",
            ],
        );
        assert_eq!(
            out,
            Some(DataOutcome::Message(
                b"Subject: x\r\n\r\n..dot\r\nbody\r\n.\r\n".to_vec()
            ))
        );
        assert_eq!(rest, 6);
        assert_eq!(
            receive(0, &[b".\r\n"]).0,
            Some(DataOutcome::Message(b".\r\n".to_vec()))
        );
    }

    #[test]
    fn data_limits() {
        assert!(matches!(
            receive(5, &[b"12345\r\n.\r\n"]).0,
            Some(DataOutcome::TooBig)
        ));
        assert!(matches!(
            receive(7, &[b"12345\r\n.\r\n"]).0,
            Some(DataOutcome::Message(_))
        ));
        let big = vec![b'x'; 10_000];
        let (out, rest) = receive(100, &[&big, &big, b"\r\n.\r\nNOOP\r\n"]);
        assert_eq!(out, Some(DataOutcome::TooBig));
        assert_eq!(rest, 6);
    }

    #[test]
    fn data_rejects_bad_framing() {
        for bad in [
            &b"a\nb\r\n.\r\n"[..],
            b"a\rb\r\n.\r\n",
            b".x\r\n.\r\n",
            b"x\r\n.\n.\r\n",
        ] {
            assert_eq!(
                receive(100, &[bad]).0,
                Some(DataOutcome::Invalid),
                "{bad:?}"
            );
        }
        // A lone "." not followed by CRLF never ends the data.
        assert_eq!(receive(100, &[b"x\r\n.\rx\r\n"]).0, None);
    }

    /// Tiny deterministic generator: the tests stay reproducible without a fuzzing dependency.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[expect(
        clippy::cast_possible_truncation,
        reason = "the result is below n, a usize"
    )]
    fn below(state: &mut u64, n: usize) -> usize {
        (xorshift(state) % n as u64) as usize
    }

    #[test]
    fn chunking_never_changes_the_outcome() {
        const ALPHABET: &[u8] = b".\r\nab\xff ";
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..2000 {
            let len = below(&mut seed, 40);
            let mut input: Vec<u8> = (0..len)
                .map(|_| ALPHABET[below(&mut seed, ALPHABET.len())])
                .collect();
            input.extend_from_slice(b"\r\n.\r\n");
            let limit = below(&mut seed, 50);
            let mut whole = DataReceiver::new(limit);
            let (used_whole, want) = whole.feed(&input);
            assert!(want.is_some(), "{input:?}");
            let mut parts = DataReceiver::new(limit);
            let mut pos = 0;
            let got = loop {
                let step = 1 + below(&mut seed, 7);
                let end = (pos + step).min(input.len());
                let (used, out) = parts.feed(&input[pos..end]);
                pos += used;
                if out.is_some() {
                    break out;
                }
                assert!(pos < input.len());
            };
            assert_eq!(got, want, "{input:?}");
            assert_eq!(pos, used_whole);
            if let Some(DataOutcome::Message(wire)) = &want {
                assert_eq!(wire.as_slice(), &input[..used_whole]);
            }
            let _ = parse_command(&input);
        }
    }
}
