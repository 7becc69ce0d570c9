//! SMTP (RFC 5321) and LMTP (RFC 2033) command lines: the verb, the path of `MAIL`/`RCPT`,
//! and the ESMTP parameters after it. What a service accepts in a path is its own rule; this
//! module only finds the pieces.

/// A command verb, matched case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `HELO`.
    Helo,
    /// `EHLO`.
    Ehlo,
    /// `LHLO` (LMTP).
    Lhlo,
    /// `MAIL FROM:<path>`.
    Mail,
    /// `RCPT TO:<path>`.
    Rcpt,
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

/// One command line (without its CRLF): the verb and everything after the first space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command<'a> {
    /// The verb.
    pub verb: Verb,
    /// The bytes after the verb and its space (empty without arguments).
    pub args: &'a [u8],
}

impl<'a> Command<'a> {
    /// Splits `line` at its first space and recognises the verb.
    pub fn parse(line: &'a [u8]) -> Command<'a> {
        let (verb, args) = match line.iter().position(|&b| b == b' ') {
            Some(sp) => (
                line.get(..sp).unwrap_or_default(),
                line.get(sp + 1..).unwrap_or_default(),
            ),
            None => (line, &[][..]),
        };
        let verb = match verb.to_ascii_uppercase().as_slice() {
            b"HELO" => Verb::Helo,
            b"EHLO" => Verb::Ehlo,
            b"LHLO" => Verb::Lhlo,
            b"MAIL" => Verb::Mail,
            b"RCPT" => Verb::Rcpt,
            b"DATA" => Verb::Data,
            b"RSET" => Verb::Rset,
            b"NOOP" => Verb::Noop,
            b"QUIT" => Verb::Quit,
            _ => Verb::Unknown,
        };
        Command { verb, args }
    }

    /// The keyword before the path: `FROM:` for MAIL, `TO:` for RCPT.
    fn keyword(&self) -> Option<&'static [u8]> {
        match self.verb {
            Verb::Mail => Some(b"FROM:"),
            Verb::Rcpt => Some(b"TO:"),
            _ => None,
        }
    }

    /// The path of `MAIL FROM:<path>` / `RCPT TO:<path>` and the bytes after its `>`; the
    /// keyword is case-insensitive and may be followed by spaces.
    fn split_path(&self) -> Option<(&'a [u8], &'a [u8])> {
        let keyword = self.keyword()?;
        let head = self.args.get(..keyword.len())?;
        if !head.eq_ignore_ascii_case(keyword) {
            return None;
        }
        let rest = self.args.get(keyword.len()..)?.trim_ascii_start();
        let rest = rest.strip_prefix(b"<")?;
        let close = rest.iter().position(|&b| b == b'>')?;
        Some((rest.get(..close)?, rest.get(close + 1..)?))
    }

    /// The bytes between `<` and the next `>` of a MAIL or RCPT path (`<>` is empty).
    pub fn path(&self) -> Option<&'a [u8]> {
        self.split_path().map(|(path, _)| path)
    }

    /// Whether the ESMTP parameters after the path include `name` (case-insensitive), a
    /// keyword such as `SMTPUTF8`.
    pub fn has_param(&self, name: &str) -> bool {
        self.split_path().is_some_and(|(_, params)| {
            params
                .split(u8::is_ascii_whitespace)
                .any(|p| p.eq_ignore_ascii_case(name.as_bytes()))
        })
    }
}

/// `addr` without an RFC 5321 source route (`@a,@b:user@d` is `user@d`); `None` when a
/// route has no `:`.
pub fn strip_source_route(addr: &str) -> Option<&str> {
    match addr.strip_prefix('@') {
        Some(route) => route.split_once(':').map(|(_, a)| a),
        None => Some(addr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(line: &str) -> Option<&[u8]> {
        Command::parse(line.as_bytes()).path()
    }

    #[test]
    fn verbs() {
        let cases: &[(&str, Verb, &str)] = &[
            ("LHLO relay", Verb::Lhlo, "relay"),
            ("ehlo x", Verb::Ehlo, "x"),
            ("HELO", Verb::Helo, ""),
            ("Data", Verb::Data, ""),
            ("DATA x", Verb::Data, "x"),
            ("rset", Verb::Rset, ""),
            ("NOOP", Verb::Noop, ""),
            ("quit", Verb::Quit, ""),
            ("VRFY x", Verb::Unknown, "x"),
            ("XFORWARD ADDR=1.2.3.4", Verb::Unknown, "ADDR=1.2.3.4"),
            ("", Verb::Unknown, ""),
        ];
        for (line, verb, args) in cases {
            let c = Command::parse(line.as_bytes());
            assert_eq!((c.verb, c.args), (*verb, args.as_bytes()), "{line}");
        }
    }

    #[test]
    fn paths_and_params() {
        assert_eq!(path("MAIL FROM:<a@b.example>"), Some(&b"a@b.example"[..]));
        assert_eq!(path("mail from:<> BODY=8BITMIME"), Some(&b""[..]));
        assert_eq!(
            path("MAIL FROM: <A@B.example> SIZE=10"),
            Some(&b"A@B.example"[..])
        );
        assert_eq!(path("MAIL FROM:a@b"), None);
        assert_eq!(path("MAIL"), None);
        assert_eq!(path("RCPT TO:<x@y"), None);
        assert_eq!(path("RCPT FROM:<x@y>"), None);
        assert_eq!(path("DATA TO:<x@y>"), None);
        assert_eq!(
            path("RCPT TO:<@r.example:x@y>"),
            Some(&b"@r.example:x@y"[..])
        );
        let c = Command::parse(b"MAIL FROM:<a@b> SIZE=10 BODY=8BITMIME smtputf8");
        assert!(c.has_param("SMTPUTF8"));
        assert!(!c.has_param("SIZE"));
        assert!(!Command::parse(b"MAIL FROM:<SMTPUTF8>").has_param("SMTPUTF8"));
    }

    #[test]
    fn source_routes() {
        assert_eq!(strip_source_route("@a,@b:u@d"), Some("u@d"));
        assert_eq!(strip_source_route("u@d"), Some("u@d"));
        assert_eq!(strip_source_route("@a"), None);
    }
}
