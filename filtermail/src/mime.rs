//! The MIME structure checks of the policy (SPEC §6.4, §6.5): what makes a message count as
//! encrypted, a securejoin request, an Autocrypt Setup Message or a mailer-daemon report.
//!
//! Every check follows the parsed MIME tree (mail-parser) and the OpenPGP packet headers;
//! none looks for substrings in the raw message.

use mail_parser::{Header, HeaderName, Message, MessagePart, MimeHeaders, PartType};

use crate::openpgp::check_armored_payload;

/// The first header named `name` (ASCII case-insensitive) of the message's top level, as
/// Python's `msg.get(name)` returns it.
pub fn first_header<'a>(msg: &'a Message<'_>, name: &str) -> Option<&'a Header<'a>> {
    msg.root_part()
        .headers()
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case(name))
}

/// The raw bytes of a header's value.
fn raw_header_bytes<'a>(msg: &'a Message<'_>, header: &Header<'_>) -> &'a [u8] {
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
fn is_bare_literal_address(s: &str) -> bool {
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
    for part in &msg.parts {
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
    }
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

/// The raw value of the first `From` header ("" when absent), for the error reply.
pub fn raw_from_value<'a>(msg: &'a Message<'_>) -> &'a str {
    msg.root_part()
        .headers()
        .iter()
        .find(|h| h.name == HeaderName::From)
        .map(|h| raw_header_value(msg, h))
        .unwrap_or("")
}

/// The `type/subtype` of a part, `text/plain` when the part has no Content-Type (RFC 2045).
fn is_type(part: &MessagePart<'_>, ty: &str, subtype: &str) -> bool {
    match part.content_type() {
        Some(ct) => {
            ct.c_type.eq_ignore_ascii_case(ty)
                && ct
                    .c_subtype
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(subtype))
        }
        None => ty == "text" && subtype == "plain",
    }
}

/// The direct children of a multipart part (empty for any other part).
fn children<'a>(msg: &'a Message<'_>, part: &MessagePart<'_>) -> Vec<&'a MessagePart<'a>> {
    match &part.body {
        PartType::Multipart(ids) => ids
            .iter()
            .filter_map(|&id| msg.part(id))
            .collect::<Vec<_>>(),
        _ => Vec::new(),
    }
}

fn is_multipart(part: &MessagePart<'_>) -> bool {
    matches!(part.body, PartType::Multipart(_))
}

/// RFC 3156 encrypted (SPEC §6.4): `multipart/encrypted` with exactly two non-multipart
/// parts, `application/pgp-encrypted` saying `Version: 1`, then `application/octet-stream`
/// holding an armored `(PKESK|SKESK)* SEIPD` sequence. The references also accepted a lone
/// version part; the Note asks for exactly two.
pub fn is_encrypted(msg: &Message<'_>, outgoing: bool) -> bool {
    let root = msg.root_part();
    if !is_multipart(root) || !is_type(root, "multipart", "encrypted") {
        return false;
    }
    let parts = children(msg, root);
    let [version, payload] = parts.as_slice() else {
        return false;
    };
    if is_multipart(version) || is_multipart(payload) {
        return false;
    }
    if !is_type(version, "application", "pgp-encrypted")
        || version.contents().trim_ascii() != b"Version: 1"
    {
        return false;
    }
    is_type(payload, "application", "octet-stream")
        && check_armored_payload(payload.contents(), outgoing)
}

/// Largest securejoin request accepted in cleartext: a request carries its Autocrypt key
/// header (a few KiB for RSA-4096) and a one-line body, nothing that needs more.
pub const MAX_SECUREJOIN_SIZE: usize = 32 * 1024;
/// Largest delivery report accepted in cleartext: Postfix returns at most
/// `bounce_size_limit` (50,000) bytes of the original message, Exim 100 KiB.
pub const MAX_REPORT_SIZE: usize = 128 * 1024;
/// Largest Autocrypt Setup Message accepted: an encrypted secret key (RSA-4096 included)
/// wrapped in the HTML attachment Delta Chat writes.
pub const MAX_SETUP_MESSAGE_SIZE: usize = 64 * 1024;

/// A securejoin `vc-request`/`vg-request` (SPEC §6.5): the header says so, the message is
/// at most [`MAX_SECUREJOIN_SIZE`] bytes and a `multipart/mixed` with exactly one
/// non-multipart `text/plain` part saying the same.
pub fn is_securejoin(msg: &Message<'_>) -> bool {
    let Some(header) = first_header(msg, "Secure-Join") else {
        return false;
    };
    let value = raw_header_value(msg, header);
    if value != "vc-request" && value != "vg-request" {
        return false;
    }
    if msg.raw_message().len() > MAX_SECUREJOIN_SIZE {
        return false;
    }
    let root = msg.root_part();
    if !is_multipart(root) || !is_type(root, "multipart", "mixed") {
        return false;
    }
    let parts = children(msg, root);
    let [part] = parts.as_slice() else {
        return false;
    };
    if is_multipart(part) || !is_type(part, "text", "plain") {
        return false;
    }
    let body = String::from_utf8_lossy(part.contents())
        .trim()
        .to_lowercase();
    body == "secure-join: vc-request" || body == "secure-join: vg-request"
}

/// A self-sent Autocrypt Setup Message (outgoing only, SPEC §6.5): one recipient, the
/// sender's own mailbox in plain spelling; `Subject: Autocrypt Setup Message`; a
/// `multipart/mixed` of a `text/plain` description and an `application/autocrypt-setup`
/// attachment holding an armored OpenPGP message with a `Passphrase-Format` header
/// (Autocrypt Level 1 §4.4); at most [`MAX_SETUP_MESSAGE_SIZE`] bytes.
pub fn is_autocrypt_setup_message(msg: &Message<'_>, from: &str, rcpts: &[String]) -> bool {
    let [rcpt] = rcpts else {
        return false;
    };
    if !chatmaild::address::same_mailbox(rcpt, from)
        || msg.raw_message().len() > MAX_SETUP_MESSAGE_SIZE
    {
        return false;
    }
    let root = msg.root_part();
    if msg.subject() != Some("Autocrypt Setup Message") || !is_type(root, "multipart", "mixed") {
        return false;
    }
    let parts = children(msg, root);
    let [text, setup] = parts.as_slice() else {
        return false;
    };
    if is_multipart(text) || is_multipart(setup) || !is_type(text, "text", "plain") {
        return false;
    }
    let body = setup.contents();
    is_type(setup, "application", "autocrypt-setup")
        && find(body, b"-----BEGIN PGP MESSAGE-----").is_some()
        && find(body, b"Passphrase-Format:").is_some()
        && find(body, b"-----END PGP MESSAGE-----").is_some()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A delivery report from a mailer daemon (incoming only, SPEC §6.5): `Auto-Submitted`
/// present, From `mailer-daemon@…`, and the shape of RFC 3464: `multipart/report;
/// report-type=delivery-status` of a `text/plain` explanation, a `message/delivery-status`
/// part, and optionally the returned message or its headers; nothing nested beyond that,
/// at most [`MAX_REPORT_SIZE`] bytes.
pub fn is_mailer_daemon_report(msg: &Message<'_>, from: &str) -> bool {
    let auto_submitted = first_header(msg, "Auto-Submitted")
        .map(|h| raw_header_value(msg, h))
        .unwrap_or("");
    if auto_submitted.is_empty()
        || !from
            .get(..14)
            .is_some_and(|p| p.eq_ignore_ascii_case("mailer-daemon@"))
        || msg.raw_message().len() > MAX_REPORT_SIZE
    {
        return false;
    }
    let root = msg.root_part();
    if !is_multipart(root)
        || !is_type(root, "multipart", "report")
        || !root
            .content_type()
            .and_then(|ct| ct.attribute("report-type"))
            .is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"))
    {
        return false;
    }
    let parts = children(msg, root);
    let (text, status, returned) = match parts.as_slice() {
        [text, status] => (text, status, None),
        [text, status, returned] => (text, status, Some(returned)),
        _ => return false,
    };
    if is_multipart(text) || !is_type(text, "text", "plain") {
        return false;
    }
    if is_multipart(status)
        || !(is_type(status, "message", "delivery-status")
            || is_type(status, "message", "global-delivery-status"))
    {
        return false;
    }
    returned.is_none_or(|r| {
        !is_multipart(r)
            && (is_type(r, "message", "rfc822")
                || is_type(r, "text", "rfc822-headers")
                || is_type(r, "message", "rfc822-headers")
                || is_type(r, "message", "global")
                || is_type(r, "message", "global-headers"))
    })
}
