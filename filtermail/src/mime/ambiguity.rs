//! The "one interpretation" check of the sender (SPEC §6.7 Note): a message whose From two
//! careful parsers could read differently is refused before any other check reads it.

use mail_parser::{Header, Message, MessagePart};

use super::{from_address, is_bare_literal_address, raw_header_bytes, raw_header_value};

/// Top-level headers the sender check or a client reads as one value: at most one each.
const TOP_HEADERS: &[&str] = &[
    "From",
    "Sender",
    "Secure-Join",
    "Subject",
    "Auto-Submitted",
    "Autocrypt-Setup-Message",
];

/// Why readers could find another sender in `msg` (the top-level headers, parsed by
/// mail-parser) than the filter does, if they could: a header block with a line that is no
/// field, a field name that is not plain, a repeated sender header, a From that is not
/// UTF-8 or not exactly one plainly written mailbox. The policy refuses such messages
/// with 523 whatever their content (SPEC §6.7 Note "one interpretation").
pub fn from_ambiguity(msg: &Message<'_>) -> Option<&'static str> {
    let root = msg.root_part();
    if !plain_header_block(msg, root) {
        return Some("header block with a line that is no field");
    }
    if root.headers().iter().any(|h| !plain_field_name(msg, h)) {
        return Some("header field name not plain");
    }
    // Invalid UTF-8 is U+FFFD for mail-parser and Latin-1 for mailparse.
    if root.headers().iter().any(|h| {
        TOP_HEADERS
            .iter()
            .any(|n| n.eq_ignore_ascii_case(h.name.as_str()))
            && std::str::from_utf8(raw_header_bytes(msg, h)).is_err()
    }) {
        return Some("sender header is not UTF-8");
    }
    top_ambiguity(msg)
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

fn count(headers: &[Header<'_>], name: &str) -> usize {
    headers
        .iter()
        .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .count()
}
