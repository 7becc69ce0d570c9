//! Text helpers of the grammar: RFC 2045 quoting, RFC 2047 Q encoding, RFC 2231 percent
//! encoding, and folds at places the stream picks.

use super::Gen;

/// Folds (CRLF and a space or tab, or a white-space-only line) at places the stream picks
/// after `start`, inside tokens and quoted strings too.
pub fn fold(g: &mut Gen<'_, '_>, field: &mut Vec<u8>, start: usize) {
    let mut round = 0;
    while g.again(&mut round, 3) {
        let at = start + g.pick(field.len() - start + 1);
        // Never inside or right after the CRLF of an existing fold (a blank line would end
        // the header block).
        // Nor at the very start of a line (that is a blank line too).
        if at == 0 || matches!(field.get(at - 1), Some(b'\r' | b'\n')) {
            continue;
        }
        let before = field.get(..at).unwrap_or_default();
        let quotes = before.iter().filter(|&&c| c == b'"').count();
        g.tag(if quotes % 2 == 1 {
            "fold:inside-quotes"
        } else {
            "fold:anywhere"
        });
        let ins: &[u8] = match g.pick(4) {
            1 => b"\r\n\t",
            2 => {
                g.tag("fold:blank-continuation-line");
                b"\r\n \r\n "
            }
            _ => b"\r\n ",
        };
        field.splice(at..at, ins.iter().copied());
    }
}

/// RFC 2045 quoted string.
pub fn quote(v: &[u8]) -> Vec<u8> {
    let mut out = vec![b'"'];
    for &c in v {
        if c == b'"' || c == b'\\' {
            out.push(b'\\');
        }
        out.push(c);
    }
    out.push(b'"');
    out
}

/// RFC 2047 Q encoding.
pub fn q_encode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &c in v {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else {
            out.extend_from_slice(format!("={c:02X}").as_bytes());
        }
    }
    out
}

/// RFC 2231 percent encoding.
pub fn percent(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &c in v {
        if c.is_ascii_alphanumeric() || c == b'-' || c == b'.' {
            out.push(c);
        } else {
            out.extend_from_slice(format!("%{c:02X}").as_bytes());
        }
    }
    out
}
