//! The MIME structure checks of the policy (SPEC §6.4, §6.5): what makes a message count as
//! encrypted, a securejoin request, an Autocrypt Setup Message or a mailer-daemon report.
//!
//! Every check follows the parsed MIME tree (mail-parser) and the OpenPGP packet headers;
//! none looks for substrings in the raw message.

use mail_parser::{Header, HeaderName, Message, MessagePart, MimeHeaders, PartType};

use crate::openpgp::check_armored_payload;

mod ambiguity;

pub use ambiguity::ambiguity;

/// The first header named `name` (ASCII case-insensitive) of the message's top level, as
/// Python's `msg.get(name)` returns it.
pub fn first_header<'a>(msg: &'a Message<'_>, name: &str) -> Option<&'a Header<'a>> {
    msg.root_part()
        .headers()
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case(name))
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

pub(crate) fn is_multipart(part: &MessagePart<'_>) -> bool {
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
