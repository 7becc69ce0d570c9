//! Step 2 of the grammar: a header block, field by field, up to the empty line.
//!
//! Readers disagree on everything else: mail-parser skips a line without a colon and
//! reads on, `mailparse` takes it for a field with an empty value, Postfix's `is_header()`
//! ends the header block there (the rest becomes body), and Python's email package takes a
//! line of white space for the end of the headers. A field name with a space or control
//! character before its colon is `Content-Type` to one parser and an unknown field to
//! another. So only the plain form is accepted.

use super::Refusal;
use super::lines;

/// Largest field (name, value and continuation lines, CRLFs included) in octets. Postfix's
/// cleanup keeps at most `header_size_limit` (102400) octets of one field and drops the
/// rest; a sixth of that leaves room for any reading of the limit. The largest field a
/// chatmail client writes, an `Autocrypt` header with an RSA-4096 key, is under 5 KiB.
pub const MAX_FIELD: usize = 16 * 1024;
/// Largest header block in octets: several large fields (Autocrypt, DKIM and ARC
/// signatures, `Received` lines) fit, and a block is never near a size where a reader
/// starts cutting.
pub const MAX_BLOCK: usize = 64 * 1024;
/// Most fields in one header block (Postfix bounces mail with more than
/// `hopcount_limit`, 50, `Received` fields; nothing legitimate needs hundreds).
pub const MAX_FIELDS: usize = 256;

/// One header field as written: its name and its raw value (after the colon, up to the
/// CRLF that ends its last line, continuation lines included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The field name, printable ASCII without colon.
    pub name: &'a str,
    /// The raw value, folds included.
    pub value: &'a [u8],
}

impl Field<'_> {
    /// Whether this field is called `name` (ASCII case-insensitive, as every reader does).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// A header block and what follows it.
#[derive(Debug)]
pub struct Fields<'a> {
    /// The fields in order.
    pub fields: Vec<Field<'a>>,
    /// The body: everything after the empty line that ends the header block.
    pub body: &'a [u8],
}

/// Reads the header block at the start of `raw` (whose lines passed [`lines::check`]).
pub fn fields(raw: &[u8]) -> Result<Fields<'_>, Refusal> {
    let mut fields: Vec<Field<'_>> = Vec::new();
    // Start of the current field and end of its last line (before CRLF).
    let mut current: Option<(usize, usize, usize)> = None; // (field start, value start, end)
    for (start, line) in lines::iter(raw) {
        if start > MAX_BLOCK {
            return Err("header block too large");
        }
        if line.is_empty() {
            push(raw, &mut fields, current.take())?;
            let body = raw.get(start + 2..).unwrap_or_default();
            return Ok(Fields { fields, body });
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            let Some((field_start, value_start, _)) = current else {
                return Err("header block starts with a continuation line");
            };
            if line.trim_ascii().is_empty() {
                return Err("continuation line of white space only");
            }
            current = Some((field_start, value_start, start + line.len()));
            continue;
        }
        push(raw, &mut fields, current.take())?;
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or("header line without a colon")?;
        let name = line.get(..colon).unwrap_or_default();
        if name.is_empty() || !name.iter().all(|&b| (0x21..=0x7e).contains(&b)) {
            return Err("header field name not plain");
        }
        current = Some((start, start + colon + 1, start + line.len()));
    }
    Err("header block without an end")
}

/// Adds the field that ran from `field_start` to `end` (CRLF excluded), after checking its
/// size, its value's encoding and the field count.
fn push<'a>(
    raw: &'a [u8],
    fields: &mut Vec<Field<'a>>,
    current: Option<(usize, usize, usize)>,
) -> Result<(), Refusal> {
    let Some((field_start, value_start, end)) = current else {
        return Ok(());
    };
    if end + 2 - field_start > MAX_FIELD {
        return Err("header field too large");
    }
    if fields.len() == MAX_FIELDS {
        return Err("too many header fields");
    }
    let name = raw
        .get(field_start..value_start - 1)
        .and_then(|n| std::str::from_utf8(n).ok())
        .ok_or("header field name not plain")?;
    let value = raw.get(value_start..end).unwrap_or_default();
    // Invalid UTF-8 is U+FFFD to mail-parser and Latin-1 to mailparse.
    if std::str::from_utf8(value).is_err() {
        return Err("header value not UTF-8");
    }
    fields.push(Field { name, value });
    Ok(())
}

/// `value` without the CRLFs of its folds (the white space after each stays), as every
/// reader unfolds (RFC 5322 §2.2.3).
pub fn unfold(value: &[u8]) -> Vec<u8> {
    value
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(raw: &[u8]) -> Result<Vec<(String, String)>, Refusal> {
        let f = fields(raw)?;
        Ok(f.fields
            .iter()
            .map(|f| {
                (
                    f.name.to_owned(),
                    String::from_utf8(f.value.to_vec()).unwrap_or_default(),
                )
            })
            .collect())
    }

    #[test]
    fn plain_fields_and_folds() {
        let raw = b"A: 1\r\nB:2\r\n\tcont\r\n\r\nbody\r\n";
        let f = fields(raw).ok();
        assert_eq!(f.as_ref().map(|f| f.body), Some(&b"body\r\n"[..]));
        assert_eq!(
            names(raw),
            Ok(vec![
                ("A".into(), " 1".into()),
                ("B".into(), "2\r\n\tcont".into())
            ])
        );
        assert_eq!(unfold(b"2\r\n\tcont"), b"2\tcont".to_vec());
    }

    #[test]
    fn refusals() {
        for (raw, why) in [
            (&b"A: 1\r\n"[..], "header block without an end"),
            (
                b" A: 1\r\n\r\n",
                "header block starts with a continuation line",
            ),
            (
                b"A: 1\r\n \r\n\r\n",
                "continuation line of white space only",
            ),
            (b"A 1\r\n\r\n", "header line without a colon"),
            (b"A : 1\r\n\r\n", "header field name not plain"),
            (b":1\r\n\r\n", "header field name not plain"),
            (b"A\x0c: 1\r\n\r\n", "header field name not plain"),
            (b"A: \xff\r\n\r\n", "header value not UTF-8"),
        ] {
            assert_eq!(fields(raw).map(|_| ()), Err(why), "{raw:?}");
        }
        let mut big = b"A: ".to_vec();
        big.extend(std::iter::repeat_n(b'x', 900));
        for _ in 0..20 {
            big.extend_from_slice(b"\r\n ");
            big.extend(std::iter::repeat_n(b'x', 900));
        }
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(fields(&big).map(|_| ()), Err("header field too large"));
        let many: Vec<u8> = (0..=MAX_FIELDS)
            .flat_map(|i| format!("X-{i}: y\r\n").into_bytes())
            .chain(*b"\r\n")
            .collect();
        assert_eq!(fields(&many).map(|_| ()), Err("too many header fields"));
    }
}
