//! The sender of a message: its one `From` header, read with mail-parser's address parser
//! from the top-level header block only, and refused when readers could find another
//! address there (SPEC §6.7 Note "one interpretation").
//!
//! The MIME structure is not read here: [`crate::canonical`] decides which messages pass.

use mail_parser::{Header, HeaderName, Message, MessageParser};

mod ambiguity;

pub use ambiguity::from_ambiguity;

/// The top-level header block of `message` (up to and including the empty line that ends
/// it, or all of it when there is none): all that the sender checks read, so the body is
/// never parsed for them.
pub fn header_block(message: &[u8]) -> &[u8] {
    let mut pos = 0usize;
    while let Some(rest) = message.get(pos..) {
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            break;
        };
        let line = rest.get(..lf).unwrap_or_default();
        pos += lf + 1;
        if line.is_empty() || line == b"\r" {
            return message.get(..pos).unwrap_or(message);
        }
    }
    message
}

/// The top-level headers of `message`, parsed by mail-parser (`None` when there is
/// nothing that reads as a header block).
pub fn parse_headers(message: &[u8]) -> Option<Message<'_>> {
    MessageParser::default().parse(header_block(message))
}

/// The raw bytes of a header's value.
pub(crate) fn raw_header_bytes<'a>(msg: &'a Message<'_>, header: &Header<'_>) -> &'a [u8] {
    let start = usize::try_from(header.offset_start()).unwrap_or(usize::MAX);
    let end = usize::try_from(header.offset_end()).unwrap_or(usize::MAX);
    msg.raw_message().get(start..end).unwrap_or_default()
}

/// The raw value of a top-level header, without the surrounding whitespace (CRLF included).
pub fn raw_header_value<'a>(msg: &'a Message<'_>, header: &Header<'_>) -> &'a str {
    let start = usize::try_from(header.offset_start()).unwrap_or(usize::MAX);
    let end = usize::try_from(header.offset_end()).unwrap_or(usize::MAX);
    msg.raw_message()
        .get(start..end)
        .and_then(|b| std::str::from_utf8(b).ok())
        .map(str::trim)
        .unwrap_or("")
}

/// The address of the one `From` header, if it names exactly one mailbox.
///
/// mail-parser reads `user@[IPv6:...]` without angle brackets as a group (the colons), so
/// a bare domain-literal address is taken from the raw value when it is nothing else.
pub fn from_address<'a>(msg: &'a Message<'_>) -> Option<&'a str> {
    let header = msg
        .root_part()
        .headers()
        .iter()
        .find(|h| h.name.as_str().eq_ignore_ascii_case("From"))?;
    if let Some([addr]) = header.value().as_address().and_then(single_list)
        && let Some(a) = addr.address()
        && !a.is_empty()
    {
        return Some(a);
    }
    let raw = raw_header_value(msg, header);
    is_bare_literal_address(raw).then_some(raw)
}

/// The addresses of a plain address list (a group yields nothing).
fn single_list<'a>(a: &'a mail_parser::Address<'a>) -> Option<&'a [mail_parser::Addr<'a>]> {
    match a {
        mail_parser::Address::List(list) => Some(list.as_slice()),
        mail_parser::Address::Group(_) => None,
    }
}

/// `local@[literal]` and nothing else: a dot-atom-ish local part without specials.
pub(crate) fn is_bare_literal_address(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
        && domain.starts_with('[')
        && domain.ends_with(']')
        && domain.get(1..domain.len() - 1).is_some_and(|inner| {
            !inner.is_empty()
                && inner
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == ':')
        })
}

/// The raw value of the first `From` header ("" when absent), for the error reply.
pub fn raw_from_value<'a>(msg: &'a Message<'_>) -> &'a str {
    msg.root_part()
        .headers()
        .iter()
        .find(|h| h.name == HeaderName::From)
        .map(|h| raw_header_value(msg, h))
        .unwrap_or("")
}
