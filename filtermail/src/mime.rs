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

/// The first address of the first `From` header, if there is one.
pub fn from_address<'a>(msg: &'a Message<'_>) -> Option<&'a str> {
    let header = msg
        .root_part()
        .headers()
        .iter()
        .find(|h| h.name == HeaderName::From)?;
    let addr = header.value().as_address()?.first()?.address()?;
    (!addr.is_empty()).then_some(addr)
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

/// A securejoin `vc-request`/`vg-request` (SPEC §6.5): the header says so, and the message
/// is a multipart with exactly one non-multipart `text/plain` part saying the same.
pub fn is_securejoin(msg: &Message<'_>) -> bool {
    let Some(header) = first_header(msg, "Secure-Join") else {
        return false;
    };
    let value = raw_header_value(msg, header);
    if value != "vc-request" && value != "vg-request" {
        return false;
    }
    let root = msg.root_part();
    if !is_multipart(root) {
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

/// A self-sent Autocrypt Setup Message (outgoing only, SPEC §6.5).
pub fn is_autocrypt_setup_message(msg: &Message<'_>, from: &str, rcpts: &[String]) -> bool {
    let [rcpt] = rcpts else {
        return false;
    };
    rcpt.eq_ignore_ascii_case(from)
        && msg.subject() == Some("Autocrypt Setup Message")
        && is_type(msg.root_part(), "multipart", "mixed")
}

/// A delivery report from a mailer daemon (incoming only, SPEC §6.5).
pub fn is_mailer_daemon_report(msg: &Message<'_>, from: &str) -> bool {
    let auto_submitted = first_header(msg, "Auto-Submitted")
        .map(|h| raw_header_value(msg, h))
        .unwrap_or("");
    !auto_submitted.is_empty()
        && from
            .get(..14)
            .is_some_and(|p| p.eq_ignore_ascii_case("mailer-daemon@"))
        && is_type(msg.root_part(), "multipart", "report")
}
