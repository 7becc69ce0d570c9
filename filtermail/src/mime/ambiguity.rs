//! The "one interpretation" check (SPEC §6.7 Note): a message that two careful MIME parsers
//! could read differently is refused before any other check reads it.

use mail_parser::{Header, Message, MessagePart, MimeHeaders, PartType};

use super::{
    from_address, is_bare_literal_address, is_multipart, raw_header_bytes, raw_header_value,
};

/// Headers whose duplication makes the structure (or the sender) depend on the parser:
/// Python's email package and Delta Chat take the first, mail-parser the last.
const STRUCTURE_HEADERS: &[&str] = &[
    "Content-Type",
    "Content-Transfer-Encoding",
    "MIME-Version",
    "Content-Disposition",
];

/// Top-level headers an exception or the sender check reads: at most one each.
const TOP_HEADERS: &[&str] = &[
    "From",
    "Secure-Join",
    "Subject",
    "Auto-Submitted",
    "Autocrypt-Setup-Message",
];

/// Why two careful MIME parsers could read `msg` differently, if they could: a duplicated
/// structure header at any MIME level, a duplicated `Content-Type` parameter, a second
/// `From` or a `From` that is not exactly one mailbox. The policy refuses such messages
/// (SPEC §6.7 Note "one interpretation").
pub fn ambiguity(msg: &Message<'_>) -> Option<&'static str> {
    msg.parts
        .iter()
        .find_map(|part| part_ambiguity(msg, part))
        .or_else(|| top_ambiguity(msg))
}

/// What is ambiguous in one part's own header block and delimiters.
fn part_ambiguity(msg: &Message<'_>, part: &MessagePart<'_>) -> Option<&'static str> {
    if !plain_header_block(msg, part) {
        return Some("header block with a line that is no field");
    }
    let headers = part.headers();
    for name in STRUCTURE_HEADERS {
        if count(headers, name) > 1 {
            return Some("duplicated MIME header");
        }
    }
    for h in headers {
        if !plain_field_name(msg, h) {
            return Some("header field name not plain");
        }
        let name = h.name.as_str();
        let raw = raw_header_bytes(msg, h);
        if name.eq_ignore_ascii_case("Content-Type") && !well_formed_content_type(raw) {
            return Some("Content-Type not well-formed");
        }
        if name.eq_ignore_ascii_case("Content-Transfer-Encoding")
            && !is_token(unfold(raw).trim_ascii())
        {
            return Some("Content-Transfer-Encoding not a single token");
        }
    }
    // Invalid UTF-8 is U+FFFD for mail-parser and Latin-1 for mailparse.
    if headers.iter().any(|h| {
        let name = h.name.as_str();
        (STRUCTURE_HEADERS.iter().chain(TOP_HEADERS)).any(|n| n.eq_ignore_ascii_case(name))
            && std::str::from_utf8(raw_header_bytes(msg, h)).is_err()
    }) {
        return Some("structure header is not UTF-8");
    }
    if is_multipart(part) && !delimited(msg, part) {
        return Some("multipart parts not delimited plainly");
    }
    if let Some(ct) = part.content_type()
        && let Some(attrs) = ct.attributes()
    {
        for (i, a) in attrs.iter().enumerate() {
            if attrs
                .get(..i)
                .unwrap_or_default()
                .iter()
                .any(|b| b.name.eq_ignore_ascii_case(&a.name))
            {
                return Some("duplicated Content-Type parameter");
            }
        }
    }
    None
}

/// What is ambiguous in the top-level headers: a repeated one, or a From that is not one
/// plainly written mailbox.
fn top_ambiguity(msg: &Message<'_>) -> Option<&'static str> {
    let top = msg.root_part().headers();
    for name in TOP_HEADERS {
        if count(top, name) > 1 {
            return Some("duplicated top-level header");
        }
    }
    let from = top
        .iter()
        .find(|h| h.name.as_str().eq_ignore_ascii_case("From"))?;
    match from.value().as_address() {
        Some(mail_parser::Address::List(list)) if list.len() > 1 => {
            return Some("From names more than one address");
        }
        Some(mail_parser::Address::Group(_)) if from_address(msg).is_none() => {
            return Some("From is a group");
        }
        _ => {}
    }
    match from_address(msg) {
        Some(addr) if !plainly_written(raw_header_value(msg, from), addr) => {
            Some("From address not plainly written")
        }
        _ => None,
    }
}

/// Whether the From value spells `addr` so that every parser finds the same address:
/// `addr` is a simple addr-spec and stands as `<addr>`, alone, or alone before a comment.
fn plainly_written(raw: &str, addr: &str) -> bool {
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    let atext = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
    let domain_ok = if domain.starts_with('[') {
        is_bare_literal_address(addr)
    } else {
        !domain.is_empty()
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
    };
    if local.is_empty() || !local.chars().all(atext) || !domain_ok {
        return false;
    }
    let t = raw.trim();
    if t == addr || t.contains(&format!("<{addr}>")) {
        return true;
    }
    t.strip_prefix(addr).is_some_and(|rest| {
        let rest = rest.trim_start_matches([' ', '\t']);
        rest.len() < t.len() - addr.len() && rest.starts_with('(') && rest.ends_with(')')
    })
}

/// Whether every line of a part's header block is a field (`ftext` name and colon) or the
/// continuation of one, up to the empty line. mail-parser skips other lines and reads on;
/// mailparse ends the header there or takes them for something else.
fn plain_header_block(msg: &Message<'_>, part: &MessagePart<'_>) -> bool {
    let raw = msg.raw_message();
    let start = usize::try_from(part.offset_header)
        .unwrap_or(usize::MAX)
        .min(raw.len());
    let end = usize::try_from(part.offset_body)
        .unwrap_or(usize::MAX)
        .min(raw.len());
    let Some(block) = raw.get(start..end) else {
        return false;
    };
    let mut first = true;
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            // The separator (or the end of the block after it).
            return true;
        }
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        let field = line.iter().position(|&b| b == b':').is_some_and(|colon| {
            colon > 0
                && line
                    .get(..colon)
                    .is_some_and(|name| name.iter().all(|&b| (33..=126).contains(&b)))
        });
        if !(field || (continuation && !first)) {
            return false;
        }
        first = false;
    }
    true
}

/// Whether the raw field name of `header` is RFC 5322 `ftext` followed directly by the
/// colon. mail-parser also recognises `Content-Type :` and names with control characters
/// in them, other parsers do not.
fn plain_field_name(msg: &Message<'_>, header: &Header<'_>) -> bool {
    let start = usize::try_from(header.offset_field()).unwrap_or(usize::MAX);
    let end = usize::try_from(header.offset_start()).unwrap_or(usize::MAX);
    let Some(field) = msg.raw_message().get(start..end) else {
        return false;
    };
    match field.split_last() {
        Some((b':', name)) => {
            !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b) && b != b':')
        }
        _ => false,
    }
}

/// `raw` without folding line breaks (CRLF or LF followed by white space).
fn unfold(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for &b in raw {
        if b != b'\r' && b != b'\n' {
            out.push(b);
        }
    }
    out
}

/// An RFC 2045 token: printable ASCII without space and tspecials.
fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

/// Whether a Content-Type value is `type/subtype` followed by `; name=value` parameters
/// (token or quoted-string values) and nothing else: no comments, no text after a quoted
/// value, where parsers recover differently.
fn well_formed_content_type(raw: &[u8]) -> bool {
    let v = unfold(raw);
    let mut rest: &[u8] = v.trim_ascii();
    let take_token = |s: &mut &[u8]| -> bool {
        let n = s.iter().position(|&b| !is_token(&[b])).unwrap_or(s.len());
        let ok = n > 0;
        *s = s.get(n..).unwrap_or_default();
        ok
    };
    if !take_token(&mut rest) || rest.first() != Some(&b'/') {
        return false;
    }
    rest = rest.get(1..).unwrap_or_default();
    if !take_token(&mut rest) {
        return false;
    }
    loop {
        rest = rest.trim_ascii_start();
        match rest.first() {
            None => return true,
            Some(b';') => rest = rest.get(1..).unwrap_or_default().trim_ascii_start(),
            Some(_) => return false,
        }
        if rest.is_empty() {
            return true;
        }
        if !take_token(&mut rest) {
            return false;
        }
        rest = rest.trim_ascii_start();
        if rest.first() != Some(&b'=') {
            return false;
        }
        rest = rest.get(1..).unwrap_or_default().trim_ascii_start();
        if rest.first() == Some(&b'"') {
            let mut i = 1;
            loop {
                match rest.get(i) {
                    None => return false,
                    Some(b'\\') => i += 2,
                    Some(b'"') => break,
                    Some(_) => i += 1,
                }
            }
            rest = rest.get(i + 1..).unwrap_or_default();
        } else if !take_token(&mut rest) {
            return false;
        }
    }
}

/// Whether a multipart part's body is delimited plainly: one delimiter line `--boundary`
/// per child mail-parser found, then the closing line `--boundary--`. Without the closing
/// line, with a part mail-parser dropped (an unparsable `message/rfc822`, say), or with a
/// line that merely starts with the delimiter, parsers disagree on which parts exist.
fn delimited(msg: &Message<'_>, part: &MessagePart<'_>) -> bool {
    let Some(boundary) = part.content_type().and_then(|ct| ct.attribute("boundary")) else {
        return false;
    };
    let PartType::Multipart(children) = &part.body else {
        return false;
    };
    let start = usize::try_from(part.offset_body).unwrap_or(usize::MAX);
    let end = usize::try_from(part.offset_end).unwrap_or(usize::MAX);
    let raw = msg.raw_message();
    let Some(body) = raw.get(start.min(raw.len())..end.min(raw.len())) else {
        return false;
    };
    let mut delimiter = Vec::with_capacity(boundary.len() + 2);
    delimiter.extend_from_slice(b"--");
    delimiter.extend_from_slice(boundary.as_bytes());
    let mut parts = 0usize;
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(rest) = line.strip_prefix(delimiter.as_slice()) else {
            continue;
        };
        if rest.iter().all(|b| b.is_ascii_whitespace()) {
            parts += 1;
        } else if let Some(tail) = rest.strip_prefix(b"--")
            && tail.iter().all(|b| b.is_ascii_whitespace())
        {
            return parts == children.len();
        } else {
            // `--boundary` followed by more text: a delimiter to some parsers (prefix
            // match), content to others; RFC 2046 forbids it in content anyway.
            return false;
        }
    }
    false
}

fn count(headers: &[Header<'_>], name: &str) -> usize {
    headers
        .iter()
        .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .count()
}
