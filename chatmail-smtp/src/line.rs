//! Command-line framing: a line ends in CRLF and is at most [`MAX_LINE`] bytes long.

use crate::MAX_LINE;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
