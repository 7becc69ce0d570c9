//! Step 4 of the grammar: the body of a multipart, split into its parts.
//!
//! `mailparse` takes any line that *starts* with `--boundary` for a delimiter and a close
//! delimiter when `--` follows; Python's email package and Dovecot allow white space after
//! the delimiter and ignore a longer line; an unterminated last part is a part for some and
//! nothing for others. Here every line that starts with `--boundary` must be exactly the
//! delimiter or exactly the close delimiter, the close delimiter must come, and nothing but
//! empty lines may follow it, so every reader finds the same parts with the same bytes.

use super::Refusal;
use super::lines;

/// Largest preamble in octets. Mailers write one line there ("This is an OpenPGP/MIME
/// encrypted message (RFC 4880 and 3156)"); no reader is meant to show it, and a large one
/// would be a place for cleartext that some client might.
pub const MAX_PREAMBLE: usize = 1024;

/// Where the split is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter.
    Preamble,
    /// Inside a part that started at this offset.
    Part(usize),
    /// After the close delimiter.
    Epilogue,
}

/// The parts of a multipart body delimited by `boundary`: each part's bytes from the line
/// after its delimiter to the CRLF before the next delimiter line (which belongs to that
/// delimiter, RFC 2046 §5.1.1).
pub fn split<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<&'a [u8]>, Refusal> {
    let mut delimiter = Vec::with_capacity(boundary.len() + 2);
    delimiter.extend_from_slice(b"--");
    delimiter.extend_from_slice(boundary.as_bytes());
    let mut parts = Vec::new();
    let mut state = State::Preamble;
    for (start, line) in lines::iter(body) {
        let Some(rest) = line.strip_prefix(delimiter.as_slice()) else {
            match state {
                State::Preamble if start + line.len() > MAX_PREAMBLE || !line.is_ascii() => {
                    return Err("preamble too long or not 7-bit");
                }
                State::Epilogue if !line.is_empty() => {
                    return Err("text after the close delimiter");
                }
                _ => {}
            }
            continue;
        };
        let close = match rest {
            b"" => false,
            b"--" => true,
            _ => return Err("line starting with the delimiter"),
        };
        match state {
            State::Epilogue => return Err("delimiter after the close delimiter"),
            State::Part(from) => {
                // The part ends before the CRLF that precedes this delimiter line.
                let part = start
                    .checked_sub(2)
                    .filter(|&end| end >= from)
                    .and_then(|end| body.get(from..end))
                    .ok_or("empty part")?;
                parts.push(part);
            }
            State::Preamble if close => return Err("close delimiter without parts"),
            State::Preamble => {}
        }
        state = if close {
            State::Epilogue
        } else {
            State::Part(start + line.len() + 2)
        };
    }
    match state {
        State::Epilogue => Ok(parts),
        _ => Err("no close delimiter"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_plain_multiparts() {
        let body = b"pre\r\n--b\r\nA: 1\r\n\r\nx\r\n--b\r\n\r\ny\r\n\r\n--b--\r\n\r\n";
        assert_eq!(
            split(body, "b"),
            Ok(vec![&b"A: 1\r\n\r\nx"[..], &b"\r\ny\r\n"[..]])
        );
    }

    #[test]
    fn refuses_every_other_delimiting() {
        for (body, why) in [
            (&b"--b\r\nA: 1\r\n\r\nx\r\n"[..], "no close delimiter"),
            (
                b"--b\r\nA: 1\r\n\r\nx\r\n--b \r\n--b--\r\n",
                "line starting with the delimiter",
            ),
            (
                b"--b\r\nA: 1\r\n\r\nx\r\n--bc\r\n--b--\r\n",
                "line starting with the delimiter",
            ),
            (
                b"--b\r\nA: 1\r\n\r\nx\r\n--b--x\r\n",
                "line starting with the delimiter",
            ),
            (
                b"--b\r\nA: 1\r\n\r\nx\r\n--b--\r\nspam\r\n",
                "text after the close delimiter",
            ),
            (
                b"--b\r\nA: 1\r\n\r\nx\r\n--b--\r\n--b\r\n",
                "delimiter after the close delimiter",
            ),
            (b"--b--\r\n", "close delimiter without parts"),
            (b"--b\r\n--b--\r\n", "empty part"),
            (
                b"caf\xc3\xa9\r\n--b\r\nA: 1\r\n\r\nx\r\n--b--\r\n",
                "preamble too long or not 7-bit",
            ),
        ] {
            assert_eq!(
                split(body, "b"),
                Err(why),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let mut long = vec![b'x'; 900];
        long.extend_from_slice(b"\r\n");
        long.extend_from_slice(&long.clone());
        long.extend_from_slice(b"--b\r\nA: 1\r\n\r\nx\r\n--b--\r\n");
        assert_eq!(split(&long, "b"), Err("preamble too long or not 7-bit"));
    }
}
