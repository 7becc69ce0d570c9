//! Step 1 of the grammar: the bytes themselves, checked once over the whole message.
//!
//! These are the bytes Postfix would change on the way to the mailbox or to the next
//! relay, so what is stored or sent would not be what was checked:
//! - cleanup(8) stores a header line only up to a NUL byte;
//! - the SMTP and LMTP clients (`smtp_line_length_limit`, `lmtp_line_length_limit`,
//!   default 999 including the CR) break a longer line with CRLF and a space;
//! - a bare CR or LF is turned into a line end by some readers and kept by others
//!   (Postfix 3.9 and later normalise a bare LF; Dovecot stores LF line ends).
//!
//! The SMTP DATA receiver and the `/mxdeliv` body reader already refuse bare CR and LF, so
//! for messages from the network the first rule repeats theirs; the policy functions are
//! also called on bytes from elsewhere (tests, fuzzers), so the grammar says it itself.

use super::Refusal;

/// Longest line in octets, without its CRLF (RFC 5322 §2.1.1: 998).
pub const MAX_LINE: usize = 998;

/// Checks the line structure of the whole message: CRLF line ends only, no NUL byte, no
/// line longer than [`MAX_LINE`], and a final CRLF.
///
/// Every byte of every message passes here, so the scan is vectorised (memchr): one pass
/// for NUL, one over the line ends, one counting CRs. Every LF follows a CR, and there are
/// as many CRs as LFs, so no CR stands anywhere else.
pub fn check(raw: &[u8]) -> Result<(), Refusal> {
    if memchr::memchr(0, raw).is_some() {
        return Err("NUL byte");
    }
    let mut line_start = 0usize;
    let mut lines = 0usize;
    for lf in memchr::memchr_iter(b'\n', raw) {
        if lf == 0 || raw.get(lf - 1) != Some(&b'\r') {
            return Err("bare LF");
        }
        if lf - 1 - line_start > MAX_LINE {
            return Err("line longer than 998 octets");
        }
        line_start = lf + 1;
        lines += 1;
    }
    if memchr::memchr_iter(b'\r', raw).count() != lines {
        return Err("bare CR");
    }
    if line_start != raw.len() {
        return Err("no CRLF at the end");
    }
    Ok(())
}

/// The lines of `raw` (which passed [`check`]), each as (start offset, line without CRLF).
pub fn iter(raw: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let rest = raw.get(pos..).filter(|r| !r.is_empty())?;
        // After `check`, every LF ends a CRLF.
        let (len, next) = match memchr::memchr(b'\n', rest) {
            Some(lf) => (lf.saturating_sub(1), lf + 1),
            None => (rest.len(), rest.len()),
        };
        let start = pos;
        pos += next;
        Some((start, rest.get(..len).unwrap_or_default()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_rules() {
        assert_eq!(check(b""), Ok(()));
        assert_eq!(check(b"a\r\nb\r\n"), Ok(()));
        assert_eq!(check(b"a\nb\r\n"), Err("bare LF"));
        assert_eq!(check(b"a\rb\r\n"), Err("bare CR"));
        assert_eq!(check(b"a\r\nb\r"), Err("bare CR"));
        assert_eq!(check(b"a\r\nb"), Err("no CRLF at the end"));
        assert_eq!(check(b"a\0\r\n"), Err("NUL byte"));
        let mut ok = vec![b'x'; MAX_LINE];
        ok.extend_from_slice(b"\r\n");
        assert_eq!(check(&ok), Ok(()));
        let mut long = vec![b'x'; MAX_LINE + 1];
        long.extend_from_slice(b"\r\n");
        assert_eq!(check(&long), Err("line longer than 998 octets"));
    }

    #[test]
    fn iterates_lines() {
        let lines: Vec<_> = iter(b"ab\r\n\r\nc\r\n").collect();
        assert_eq!(lines, vec![(0, &b"ab"[..]), (4, &b""[..]), (6, &b"c"[..])]);
    }
}
