//! Replies: the [`Reply`] a server sends, with the named values both relay services send
//! alike, and the capped reader of a server's multi-line reply ([`parse_reply`]).
//!
//! A service's own reply texts are named values in the service; texts that clients or
//! Postfix match are never formatted at call sites.

use std::borrow::Cow;
use std::fmt;

use crate::Error;

/// Longest reply line read from a server, CRLF included (RFC 5321 §4.5.3.1.5 says 512).
pub const MAX_REPLY_LINE: usize = 4096;
/// Most lines of one multi-line reply (an EHLO reply has a dozen).
pub const MAX_REPLY_LINES: usize = 200;
/// Text of a [`Reply::bounded`] beyond this many characters is cut, so a reply line stays
/// within RFC 5321's 512 octets even when it carries a remote server's text.
pub const MAX_TEXT_CHARS: usize = 480;

/// One reply line: a three-digit code and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    text: Cow<'static, str>,
}

impl Reply {
    /// Accepted (MAIL, RCPT, RSET, NOOP, a delivered message).
    pub const OK: Reply = Reply::fixed(250, "OK");
    /// Reply to `QUIT`.
    pub const BYE: Reply = Reply::fixed(221, "OK");
    /// Reply to `DATA`.
    pub const START_DATA: Reply = Reply::fixed(354, "End data with <CR><LF>.<CR><LF>");
    /// An unknown command.
    pub const UNKNOWN_COMMAND: Reply = Reply::fixed(500, "Command not recognized");
    /// `MAIL FROM` without a parsable `<address>`.
    pub const INVALID_MAIL_FROM: Reply = Reply::fixed(500, "Invalid address in MAIL FROM");
    /// `RCPT TO` without a parsable `<address>`.
    pub const INVALID_RCPT_TO: Reply = Reply::fixed(501, "Invalid address in RCPT TO");
    /// Malformed DATA: a bare CR or LF, an unstuffed dot line, data after the end line.
    pub const INVALID_DATA: Reply = Reply::fixed(500, "Invalid DATA");
    /// DATA exceeded `max_message_size` (sent after the end-of-data line).
    pub const TOO_BIG: Reply = Reply::fixed(552, "Message exceeds maximum size");
    /// The greeting of an SMTP server (SPEC §6.2: any `220` line will do).
    pub const SMTP_GREETING: Reply = Reply::fixed(220, "filtermail SMTP");
    /// The greeting of an LMTP server.
    pub const LMTP_GREETING: Reply = Reply::fixed(220, "filtermail LMTP");
    /// Reply to `HELO` (`EHLO` and `LHLO` get the multi-line capability list).
    pub const HELO: Reply = Reply::fixed(250, "filtermail");
    /// `RCPT` or `DATA` before a `MAIL` was accepted (Postfix's text).
    pub const NEED_MAIL: Reply = Reply::fixed(503, "Error: need MAIL command");
    /// `DATA` before a `RCPT` was accepted.
    pub const NEED_RCPT: Reply = Reply::fixed(503, "Error: need RCPT command");
    /// `MAIL` inside a transaction (RFC 5321 §4.1.4: the client must `RSET` first).
    pub const NESTED_MAIL: Reply = Reply::fixed(503, "Error: nested MAIL command");
    /// More recipients than one transaction may have ([`crate::MAX_RECIPIENTS`]).
    pub const TOO_MANY_RECIPIENTS: Reply = Reply::fixed(452, "4.5.3 Error: too many recipients");
    /// A command line longer than [`crate::MAX_LINE`]; the connection is closed after it.
    pub const LINE_TOO_LONG: Reply = Reply::fixed(500, "5.5.2 Error: line too long");
    /// A command line ended by a bare LF; the connection is closed after it.
    pub const BARE_LF: Reply = Reply::fixed(500, "5.5.2 Error: command line must end with CRLF");
    /// The client was silent for the idle timeout; sent before closing (RFC 5321 §4.5.3.2:
    /// a server closing on a timeout should say so with a 421).
    pub const TIMEOUT: Reply = Reply::fixed(421, "4.4.2 Error: timeout exceeded");
    /// Sent to a client between commands when the server stops (RFC 5321 §3.8: the
    /// client treats it as a temporary failure and retries later); the server then closes.
    pub const SHUTTING_DOWN: Reply = Reply::fixed(421, "4.3.2 Service shutting down");

    /// A named reply with a fixed text (which must hold no control characters).
    pub const fn fixed(code: u16, text: &'static str) -> Reply {
        Reply {
            code,
            text: Cow::Borrowed(text),
        }
    }

    /// A reply with a computed text; control characters (CR, LF, ...) become spaces, so a
    /// reply can never smuggle a second line into the dialogue.
    pub fn new(code: u16, text: impl Into<Cow<'static, str>>) -> Reply {
        let text = text.into();
        let text = if text.chars().any(char::is_control) {
            Cow::Owned(text.chars().map(no_control).collect())
        } else {
            text
        };
        Reply { code, text }
    }

    /// Like [`Reply::new`], with the text cut at [`MAX_TEXT_CHARS`] (for texts that carry
    /// what a peer sent).
    pub fn bounded(code: u16, text: &str) -> Reply {
        let text: String = text.chars().take(MAX_TEXT_CHARS).map(no_control).collect();
        Reply {
            code,
            text: Cow::Owned(text),
        }
    }

    /// The three-digit reply code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The text after the code.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the code means success (2xx).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// The wire form, `<code> <text>\r\n`.
    pub fn to_wire(&self) -> Vec<u8> {
        format!("{self}\r\n").into_bytes()
    }
}

fn no_control(c: char) -> char {
    if c.is_control() { ' ' } else { c }
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

/// A reply as read from a server: the code and the text of every line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyLines {
    /// The code of the last line.
    pub code: u16,
    /// The text of each line, without code and separator.
    pub lines: Vec<String>,
}

impl ReplyLines {
    /// The first digit of the code: 2 success, 3 go on, 4 temporary, 5 permanent failure.
    pub fn class(&self) -> u16 {
        self.code / 100
    }

    /// The lines' texts joined by spaces.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }

    /// As one bounded reply line.
    pub fn to_reply(&self) -> Reply {
        Reply::bounded(self.code, &self.text())
    }
}

/// Parses one reply line (without CRLF): code, whether more lines follow, and the text.
pub fn parse_reply_line(line: &[u8]) -> Option<(u16, bool, String)> {
    let code = line.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code: u16 = std::str::from_utf8(code).ok()?.parse().ok()?;
    if !(200..600).contains(&code) {
        return None;
    }
    let (more, text) = match line.get(3) {
        None => (false, &[][..]),
        Some(b'-') => (true, line.get(4..)?),
        Some(b' ') => (false, line.get(4..)?),
        Some(_) => return None,
    };
    Some((code, more, String::from_utf8_lossy(text).into_owned()))
}

/// The first complete reply in `buf` and the bytes it used; `Ok(None)` when more bytes are
/// needed. Lines end in LF, with or without CR.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(ReplyLines, usize)>, Error> {
    let mut lines = Vec::new();
    let mut pos = 0;
    while let Some(rest) = buf.get(pos..) {
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            if rest.len() >= MAX_REPLY_LINE {
                return Err(Error::TooLong);
            }
            return Ok(None);
        };
        if lf >= MAX_REPLY_LINE {
            return Err(Error::TooLong);
        }
        let line = rest.get(..lf).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (code, more, text) = parse_reply_line(line).ok_or_else(|| {
            Error::Malformed(line.get(..line.len().min(100)).unwrap_or_default().to_vec())
        })?;
        lines.push(text);
        if lines.len() > MAX_REPLY_LINES {
            return Err(Error::TooManyLines);
        }
        pos += lf + 1;
        if !more {
            return Ok(Some((ReplyLines { code, lines }, pos)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines() {
        assert_eq!(
            parse_reply_line(b"250-mx.example"),
            Some((250, true, "mx.example".into()))
        );
        assert_eq!(parse_reply_line(b"250 OK"), Some((250, false, "OK".into())));
        assert_eq!(parse_reply_line(b"354"), Some((354, false, String::new())));
        for bad in [&b"25"[..], b"abc OK", b"250xOK", b"199 x", b"600 x", b""] {
            assert_eq!(parse_reply_line(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn multi_line_replies_and_caps() {
        let input = b"250-mx.example hi\r\n250-8BITMIME\n250 SIZE 100\r\nNEXT";
        let (r, used) = parse_reply(input).unwrap().unwrap();
        assert_eq!((r.code, r.lines.len()), (250, 3));
        assert_eq!(&input[used..], b"NEXT");
        assert_eq!(r.text(), "mx.example hi 8BITMIME SIZE 100");
        for cut in 0..used {
            assert!(matches!(parse_reply(&input[..cut]), Ok(None)), "cut {cut}");
        }
        let err = |input: &[u8]| parse_reply(input).map(|_| ()).unwrap_err().to_string();
        assert_eq!(err(b"hello\r\n"), "malformed reply line: hello");
        assert_eq!(err(&vec![b'2'; MAX_REPLY_LINE]), "reply too long");
        let many = b"250-x\r\n".repeat(MAX_REPLY_LINES + 1);
        assert_eq!(err(&many), "reply has too many lines");
    }

    #[test]
    fn control_characters_cannot_split_a_reply() {
        assert_eq!(
            Reply::new(550, "no\r\n250 OK").to_wire(),
            b"550 no  250 OK\r\n"
        );
        assert_eq!(
            Reply::bounded(550, &"x".repeat(600)).text().len(),
            MAX_TEXT_CHARS
        );
        assert_eq!(Reply::new(354, "").to_string(), "354");
        assert_eq!(Reply::OK.to_wire(), b"250 OK\r\n");
    }
}
