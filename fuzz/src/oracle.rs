//! The promise of the encryption filter, checked with the reader of Delta Chat core
//! (`mailparse`): a message the filter accepted in a mode that forbids cleartext must read,
//! for the client too, as one of the accepted shapes, and never show a text part with the
//! generator's cleartext marker.
//!
//! Accepted shapes, as `mailparse` reads them:
//! - encrypted: `multipart/encrypted` of exactly `application/pgp-encrypted` saying
//!   `Version: 1` and `application/octet-stream` whose decoded body is byte for byte the
//!   payload the filter read (`filtermail::internals::canonical`) and passes `filtermail::internals::openpgp`'s armor check;
//!   no other part anywhere;
//! - securejoin: a `Secure-Join: vc-request`/`vg-request` header and `multipart/mixed` of one
//!   `text/plain` part saying the same;
//! - delivery report (incoming): `multipart/report; report-type=delivery-status` of
//!   `text/plain`, `message/(global-)delivery-status` and optionally the returned message or
//!   its headers, nothing nested, with the null envelope sender and an `Auto-Submitted`
//!   other than `no` (RFC 3464, RFC 3834);
//! - Autocrypt Setup Message (outgoing): to the sender's own mailbox only, `multipart/mixed`
//!   of `text/plain` and `application/autocrypt-setup`.
//!
//! In every shape the single From header names the address the filter accepted.

use filtermail::internals::openpgp::check_armored_payload;
use mailparse::{MailHeaderMap, ParsedMail};

use crate::grammar::MARKER;

/// A broken promise: a short class and what mailparse read.
#[derive(Debug)]
pub struct Violation {
    /// What broke, e.g. "cleartext part shown" (the target adds where the readers part).
    pub class: String,
    /// What mailparse read.
    pub detail: String,
}

fn violation(class: &'static str, detail: impl Into<String>) -> Violation {
    Violation {
        class: class.to_owned(),
        detail: detail.into(),
    }
}

/// What the filter accepted, to compare the client's reading with.
pub struct Accepted<'a> {
    /// Outgoing (submission) or incoming mode.
    pub outgoing: bool,
    /// `MAIL FROM` (empty for the null sender).
    pub mail_from: &'a str,
    /// `RCPT TO` addresses.
    pub rcpt_to: &'a [String],
    /// The From address of `PolicyVerdict::Accept`.
    pub from_addr: &'a str,
    /// The encrypted payload as the filter read it, if it read one.
    pub payload: Option<&'a [u8]>,
}

/// Whether mailparse reads `message` as one of the shapes `acc` allows.
pub fn check(message: &[u8], acc: &Accepted<'_>) -> Result<(), Violation> {
    let Ok(parsed) = mailparse::parse_mail(message) else {
        // Delta Chat cannot read it: nothing is shown.
        return Ok(());
    };
    from_check(&parsed, acc)?;
    if encrypted(&parsed, acc)? || securejoin(&parsed) {
        return Ok(());
    }
    if !acc.outgoing && report(&parsed, acc)? {
        return Ok(());
    }
    if acc.outgoing && setup(&parsed, acc) {
        return Ok(());
    }
    let class = if shows_marker(&parsed) {
        "cleartext part shown"
    } else {
        "no accepted shape"
    };
    Err(violation(class, describe(&parsed)))
}

fn from_check(parsed: &ParsedMail<'_>, acc: &Accepted<'_>) -> Result<(), Violation> {
    let froms = parsed.headers.get_all_headers("From");
    let [from] = froms.as_slice() else {
        return Err(violation(
            "From count",
            format!("{} From headers", froms.len()),
        ));
    };
    if let Ok(list) = mailparse::addrparse_header(from) {
        match list.iter().collect::<Vec<_>>().as_slice() {
            [mailparse::MailAddr::Single(info)]
                if info.addr.eq_ignore_ascii_case(acc.from_addr) => {}
            [] => {}
            other => {
                return Err(violation(
                    "From differs",
                    format!("{other:?} vs {}", acc.from_addr),
                ));
            }
        }
    }
    Ok(())
}

fn types(parsed: &ParsedMail<'_>) -> Vec<String> {
    parsed
        .subparts
        .iter()
        .map(|p| p.ctype.mimetype.clone())
        .collect()
}

fn leaves_only(parsed: &ParsedMail<'_>) -> bool {
    parsed.parts().count() == 1 + parsed.subparts.len()
}

fn encrypted(parsed: &ParsedMail<'_>, acc: &Accepted<'_>) -> Result<bool, Violation> {
    let [version, payload] = parsed.subparts.as_slice() else {
        return Ok(false);
    };
    if parsed.ctype.mimetype != "multipart/encrypted"
        || !leaves_only(parsed)
        || version.ctype.mimetype != "application/pgp-encrypted"
        || payload.ctype.mimetype != "application/octet-stream"
        || version.get_body_raw().unwrap_or_default().trim_ascii() != b"Version: 1"
    {
        return Ok(false);
    }
    let Ok(body) = payload.get_body_raw() else {
        // Not decodable: Delta Chat shows nothing.
        return Ok(true);
    };
    if !check_armored_payload(&body, acc.outgoing) {
        return Err(violation(
            "payload not encrypted for mailparse",
            show(&body),
        ));
    }
    match acc.payload {
        Some(p) if p != body.as_slice() => Err(violation(
            "payload differs",
            format!("filter {} vs mailparse {}", show(p), show(&body)),
        )),
        _ => Ok(true),
    }
}

fn securejoin(parsed: &ParsedMail<'_>) -> bool {
    let header = parsed
        .headers
        .get_first_value("Secure-Join")
        .unwrap_or_default();
    let [text] = parsed.subparts.as_slice() else {
        return false;
    };
    let body = text.get_body().unwrap_or_default().trim().to_lowercase();
    matches!(header.trim(), "vc-request" | "vg-request")
        && parsed.ctype.mimetype == "multipart/mixed"
        && leaves_only(parsed)
        && text.ctype.mimetype == "text/plain"
        && (body == "secure-join: vc-request" || body == "secure-join: vg-request")
}

fn report(parsed: &ParsedMail<'_>, acc: &Accepted<'_>) -> Result<bool, Violation> {
    let t = types(parsed);
    let returned_ok = |s: &str| {
        matches!(
            s,
            "message/rfc822"
                | "text/rfc822-headers"
                | "message/rfc822-headers"
                | "message/global"
                | "message/global-headers"
        )
    };
    let status_ok =
        |s: &str| s == "message/delivery-status" || s == "message/global-delivery-status";
    let shape = match t.as_slice() {
        [a, b] => a == "text/plain" && status_ok(b),
        [a, b, c] => a == "text/plain" && status_ok(b) && returned_ok(c),
        _ => false,
    };
    let report_type = parsed.ctype.params.get("report-type").map(String::as_str);
    if !shape
        || parsed.ctype.mimetype != "multipart/report"
        || !report_type.is_some_and(|r| r.eq_ignore_ascii_case("delivery-status"))
        || !leaves_only(parsed)
    {
        return Ok(false);
    }
    if !acc.mail_from.is_empty() {
        return Err(violation("report without null sender", acc.mail_from));
    }
    let auto = parsed
        .headers
        .get_first_value("Auto-Submitted")
        .unwrap_or_default();
    let keyword = auto
        .split([';', '('])
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if keyword.is_empty() || keyword == "no" {
        return Err(violation("report with Auto-Submitted no", auto));
    }
    Ok(true)
}

fn setup(parsed: &ParsedMail<'_>, acc: &Accepted<'_>) -> bool {
    matches!(acc.rcpt_to, [r] if r.eq_ignore_ascii_case(acc.from_addr))
        && parsed.ctype.mimetype == "multipart/mixed"
        && leaves_only(parsed)
        && types(parsed) == ["text/plain", "application/autocrypt-setup"]
}

/// Whether some `text/*` part holds the marker, decoded or raw.
pub fn shows_marker(parsed: &ParsedMail<'_>) -> bool {
    parsed.parts().any(|p| {
        p.ctype.mimetype.starts_with("text/")
            && (contains(&p.get_body_raw().unwrap_or_default(), MARKER)
                || p.get_body().unwrap_or_default().contains("CLEARTEXT-SPAM"))
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// mailparse's tree: `type[boundary]{children}`.
pub fn describe(p: &ParsedMail<'_>) -> String {
    let mut s = p.ctype.mimetype.clone();
    if let Some(b) = p.ctype.params.get("boundary") {
        s.push_str(&format!("[boundary={b:?}]"));
    }
    if !p.subparts.is_empty() {
        let inner: Vec<String> = p.subparts.iter().map(describe).collect();
        s.push_str(&format!("{{{}}}", inner.join(", ")));
    }
    s
}

fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let s: String = s.chars().take(80).collect();
    format!("{s:?}…({} bytes)", b.len())
}
