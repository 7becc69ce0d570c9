//! Step 5 of the grammar: the four messages the filter lets through, each exactly in one
//! shape (SPEC §6.4, §6.5). A message read by [`super::read`] that is none of them is
//! cleartext.

use super::params::TransferEncoding;
use super::{Entity, Message};
use crate::openpgp::check_armored_payload;

/// Largest securejoin request accepted in cleartext: a request carries its Autocrypt key
/// header (a few KiB for RSA-4096) and a one-line body, nothing that needs more.
pub const MAX_SECUREJOIN_SIZE: usize = 32 * 1024;
/// Largest delivery report accepted in cleartext: Postfix returns at most
/// `bounce_size_limit` (50,000) bytes of the original message, Exim 100 KiB.
pub const MAX_REPORT_SIZE: usize = 128 * 1024;
/// Largest Autocrypt Setup Message accepted: an encrypted secret key (RSA-4096 included)
/// wrapped in the HTML attachment Delta Chat writes.
pub const MAX_SETUP_MESSAGE_SIZE: usize = 64 * 1024;

/// A leaf whose body is exactly its bytes: 7-bit, and written as such (no transfer
/// encoding a reader would undo).
fn plain_7bit(part: &Entity<'_>) -> bool {
    part.encoding == TransferEncoding::SevenBit && part.body.is_ascii()
}

/// The parts of a top-level multipart of `subtype`, written in 7 or 8 bit as RFC 2045
/// §6.4 requires of a multipart, in a message that declares `MIME-Version: 1.0` (without
/// it, RFC 2045 §4 lets a reader take the whole body for text, preamble included).
fn multipart_of<'m, 'a>(msg: &'m Message<'a>, subtype: &str) -> Option<&'m [Entity<'a>]> {
    (msg.top.field("MIME-Version").is_some()
        && msg.top.content_type.is("multipart", subtype)
        && matches!(
            msg.top.encoding,
            TransferEncoding::SevenBit | TransferEncoding::EightBit
        ))
    .then_some(msg.parts.as_slice())
}

/// RFC 3156 encrypted (SPEC §6.4): `multipart/encrypted` (with `protocol`, if given,
/// `application/pgp-encrypted`) of exactly two 7-bit parts: `application/pgp-encrypted`
/// saying `Version: 1`, then `application/octet-stream` holding an armored
/// `(PKESK|SKESK)* SEIPD` sequence and nothing else.
pub fn is_encrypted(msg: &Message<'_>, outgoing: bool) -> bool {
    let Some([version, payload]) = multipart_of(msg, "encrypted") else {
        return false;
    };
    if msg
        .top
        .content_type
        .param("protocol")
        .is_some_and(|p| !p.eq_ignore_ascii_case("application/pgp-encrypted"))
    {
        return false;
    }
    version.content_type.is("application", "pgp-encrypted")
        && plain_7bit(version)
        && version.body.trim_ascii() == b"Version: 1"
        && payload.content_type.is("application", "octet-stream")
        && plain_7bit(payload)
        && check_armored_payload(payload.body, outgoing)
}

/// A securejoin `vc-request`/`vg-request` (SPEC §6.5): the one `Secure-Join` header says
/// so, the message is at most [`MAX_SECUREJOIN_SIZE`] bytes and a `multipart/mixed` of
/// exactly one 7-bit `text/plain` part saying the same and nothing else.
pub fn is_securejoin(msg: &Message<'_>) -> bool {
    let Some(step) = msg.top.field_text("Secure-Join") else {
        return false;
    };
    if step != "vc-request" && step != "vg-request" || msg.raw.len() > MAX_SECUREJOIN_SIZE {
        return false;
    }
    let Some([text]) = multipart_of(msg, "mixed") else {
        return false;
    };
    text.content_type.is("text", "plain")
        && plain_7bit(text)
        && text
            .body
            .trim_ascii()
            .eq_ignore_ascii_case(format!("secure-join: {step}").as_bytes())
}

/// A self-sent Autocrypt Setup Message (outgoing only, SPEC §6.5; the caller checks that
/// the one recipient is the sender): `Subject: Autocrypt Setup Message`, a
/// `multipart/mixed` of a 7-bit `text/plain` description and a 7-bit
/// `application/autocrypt-setup` attachment holding an armored OpenPGP message with a
/// `Passphrase-Format` header (Autocrypt Level 1 §4.4), at most
/// [`MAX_SETUP_MESSAGE_SIZE`] bytes.
pub fn is_setup_message(msg: &Message<'_>) -> bool {
    if msg.raw.len() > MAX_SETUP_MESSAGE_SIZE
        || msg.top.field_text("Subject").as_deref() != Some("Autocrypt Setup Message")
    {
        return false;
    }
    // Self-sent, so read only by its sender's own devices: Delta Chat writes no
    // MIME-Version here.
    if !msg.top.content_type.is("multipart", "mixed") {
        return false;
    }
    let [text, setup] = msg.parts.as_slice() else {
        return false;
    };
    let body = setup.body;
    text.content_type.is("text", "plain")
        && plain_7bit(text)
        && setup.content_type.is("application", "autocrypt-setup")
        && plain_7bit(setup)
        && find(body, b"-----BEGIN PGP MESSAGE-----").is_some()
        && find(body, b"Passphrase-Format:").is_some()
        && find(body, b"-----END PGP MESSAGE-----").is_some()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Types a delivery report may return the original message as (RFC 3462, RFC 6533).
const RETURNED: &[(&str, &str)] = &[
    ("message", "rfc822"),
    ("text", "rfc822-headers"),
    ("message", "rfc822-headers"),
    ("message", "global"),
    ("message", "global-headers"),
];

/// A delivery report of a mailer daemon (incoming only, SPEC §6.5; the caller checks the
/// null envelope sender and the `mailer-daemon@` From): `Auto-Submitted` with a value other
/// than `no` (RFC 3834), at most [`MAX_REPORT_SIZE`] bytes, and the shape of RFC 3464:
/// `multipart/report; report-type=delivery-status` of a `text/plain` explanation, a
/// `message/delivery-status` part and optionally the returned message or its headers, none
/// of them base64 (what a reader shows is what was checked).
pub fn is_delivery_report(msg: &Message<'_>) -> bool {
    let submitted = msg.top.field_text("Auto-Submitted").unwrap_or_default();
    let keyword = submitted
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if keyword.is_empty()
        || keyword == "no"
        || !keyword
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        || msg.raw.len() > MAX_REPORT_SIZE
    {
        return false;
    }
    if !msg
        .top
        .content_type
        .param("report-type")
        .is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"))
    {
        return false;
    }
    let (text, status, returned) = match multipart_of(msg, "report") {
        Some([text, status]) => (text, status, None),
        Some([text, status, returned]) => (text, status, Some(returned)),
        _ => return false,
    };
    let readable = |e: &Entity<'_>| e.encoding != TransferEncoding::Base64;
    text.content_type.is("text", "plain")
        && readable(text)
        && (status.content_type.is("message", "delivery-status")
            || status.content_type.is("message", "global-delivery-status"))
        && readable(status)
        && returned.is_none_or(|r| {
            RETURNED.iter().any(|(t, s)| r.content_type.is(t, s))
                && matches!(
                    r.encoding,
                    TransferEncoding::SevenBit | TransferEncoding::EightBit
                )
        })
}
