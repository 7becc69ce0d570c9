//! The envelope of a `/mxdeliv` request: `X-MAIL-FROM` and one `X-MAIL-TO` per recipient
//! (SPEC §6.11), read as SMTP would read `MAIL` and `RCPT`; what the relay knows about the
//! addresses ([`crate::local`]) is checked after this.

use hyper::header::{HeaderMap, HeaderValue};

use super::{HEADER_MAIL_FROM, HEADER_RCPT_TO, NO_RECIPIENTS};
use crate::policy::Envelope;
use crate::smtp::MAX_RECIPIENTS;

/// The envelope from the request headers, or the text of a 400 reply.
pub fn envelope(headers: &HeaderMap) -> Result<Envelope, &'static str> {
    let mut senders = headers.get_all(HEADER_MAIL_FROM).iter();
    let mail_from = match (senders.next(), senders.next()) {
        (None, _) => String::new(),
        (Some(v), None) => address(v).ok_or("501 Invalid address in X-MAIL-FROM header")?,
        (Some(_), Some(_)) => return Err("501 More than one X-MAIL-FROM header"),
    };
    let mut rcpt_to = Vec::new();
    for v in headers.get_all(HEADER_RCPT_TO) {
        match address(v) {
            Some(a) if chatmaild::address::canonical_mailbox(&a).is_ok() => rcpt_to.push(a),
            Some(a) if !a.is_empty() => {
                return Err("553 5.1.3 Recipient address not in plain form");
            }
            _ => return Err("501 Invalid address in X-MAIL-TO header"),
        }
    }
    if rcpt_to.is_empty() {
        return Err(NO_RECIPIENTS);
    }
    if rcpt_to.len() > MAX_RECIPIENTS {
        return Err("452 4.5.3 Error: too many recipients");
    }
    Ok(Envelope { mail_from, rcpt_to })
}

/// An address header value: UTF-8, optionally in `<...>`, no spaces, angle brackets or
/// control characters (they would corrupt the reinjection commands). `<>` and the empty
/// value are the null address.
fn address(value: &HeaderValue) -> Option<String> {
    let s = std::str::from_utf8(value.as_bytes()).ok()?.trim();
    let s = match s.strip_prefix('<') {
        Some(inner) => inner.strip_suffix('>')?,
        None => s,
    };
    if s.chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>')
    {
        return None;
    }
    Some(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn envelope_table() {
        let env = envelope(&headers(&[
            ("X-Mail-From", b"a@b.org"),
            ("X-MAIL-TO", b"c@d.org"),
            ("x-mail-to", b"<E@f.org>"),
        ]))
        .unwrap();
        assert_eq!(env.mail_from, "a@b.org");
        assert_eq!(env.rcpt_to, vec!["c@d.org", "E@f.org"]);
        let env = envelope(&headers(&[("X-MAIL-TO", b"c@d.org")])).unwrap();
        assert_eq!(env.mail_from, "", "absent sender is the null sender");
        let env = envelope(&headers(&[("X-MAIL-FROM", b"<>"), ("X-MAIL-TO", b"c@d")])).unwrap();
        assert_eq!(env.mail_from, "");
        let env = envelope(&headers(&[
            ("X-MAIL-FROM", "ü@b.org".as_bytes()),
            ("X-MAIL-TO", b"c@d"),
        ]))
        .unwrap();
        assert_eq!(env.mail_from, "ü@b.org");
        let bad: &[&[(&str, &[u8])]] = &[
            &[],
            &[("X-MAIL-FROM", b"a@b")],
            &[("X-MAIL-TO", b"")],
            &[("X-MAIL-TO", b"<>")],
            &[("X-MAIL-TO", b"a b@c")],
            &[("X-MAIL-TO", b"a@c>")],
            &[("X-MAIL-TO", b"<a@c")],
            &[("X-MAIL-TO", b"\xff@c")],
            &[("X-MAIL-TO", b"a\t@c")],
            &[
                ("X-MAIL-TO", b"a@c"),
                ("X-MAIL-FROM", b"x@y"),
                ("X-MAIL-FROM", b"x@y"),
            ],
            &[("X-MAIL-TO", b"a@c"), ("X-MAIL-FROM", b"x>@y")],
        ];
        for case in bad {
            let got = envelope(&headers(case));
            assert!(got.is_err(), "{case:?}: {got:?}");
        }
        let many: Vec<(&str, &[u8])> = (0..=MAX_RECIPIENTS)
            .map(|_| ("X-MAIL-TO", &b"a@b"[..]))
            .collect();
        assert!(envelope(&headers(&many)).is_err());
    }
}
