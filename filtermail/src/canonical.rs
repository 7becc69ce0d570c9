//! The canonical grammar of every message the filter lets through as encrypted, securejoin
//! request, Autocrypt Setup Message or delivery report (SPEC §6.4, §6.5; RELIABILITY.md
//! "What the filter enforces").
//!
//! The principle is "accept only what every reader reads the same way", not "refuse what
//! is known to be ambiguous". After the filter, the message is read by Postfix's cleanup,
//! its SMTP and LMTP clients, Dovecot's MIME parser, Delta Chat's `mailparse` and other
//! mail user agents, each with its own recovery rules for malformed input. So this module
//! does not ask a general MIME parser what the message means; it reads the bytes against a
//! small grammar in which every construct has exactly one reading, and anything outside it
//! is not one of the four forms (and so is cleartext, which enforcing recipients refuse).
//!
//! The grammar, in the order it is checked:
//!
//! 1. **Bytes** ([`lines`]): lines end in CRLF (no bare CR or LF), no NUL byte anywhere
//!    (cleanup(8) cuts a header at a NUL), no line longer than [`lines::MAX_LINE`] octets
//!    (Postfix's SMTP/LMTP clients break longer lines), the message ends with CRLF.
//! 2. **Header blocks** ([`header`]): every line up to the empty line is a field `name:value`
//!    whose name is printable ASCII without colon and directly followed by the colon, or a
//!    continuation line (white space, then at least one visible character) of the field
//!    before it. A field is at most [`header::MAX_FIELD`] octets, a block at most
//!    [`header::MAX_BLOCK`] octets and [`header::MAX_FIELDS`] fields, well below Postfix's
//!    `header_size_limit` (102400 octets per field). Values are valid UTF-8. The structure
//!    headers (`Content-Type`, `Content-Transfer-Encoding`, `MIME-Version`,
//!    `Content-Disposition`) stand at most once per entity, and the top level's
//!    `From`, `Sender`, `Subject`, `Secure-Join`, `Auto-Submitted` and
//!    `Autocrypt-Setup-Message` at most once.
//! 3. **Structure headers** ([`params`]): printable ASCII, no encoded word (`=?`), no
//!    comment, no backslash; `type/subtype` tokens; parameters from a fixed list of names,
//!    each once, without RFC 2231 `*` forms, written `name=value` with a token or a
//!    quoted string of visible characters other than `"`, `\`, `;`, `(`, `)`; no empty
//!    value; the boundary from RFC 2046's characters (without space, `(`, `)`, `?`),
//!    1 to 70 of them. `MIME-Version` is `1.0`; the transfer encoding one known token.
//! 4. **Multipart bodies** ([`multipart`]): one level only. Every line that starts with
//!    `--boundary` is exactly a delimiter or the close delimiter (no transport padding, no
//!    longer line that a prefix-matching parser would take for a delimiter); a close
//!    delimiter ends the body; the preamble is short 7-bit text and the epilogue empty
//!    lines only; no part is empty.
//! 5. **Forms** ([`forms`]): the exact shape of each of the four messages, each (but the
//!    self-sent setup message) with `MIME-Version: 1.0`.
//!
//! Everything here is pure: the functions read bytes and return a verdict, so table tests
//! and the fuzz targets call the code the filter runs.

pub mod forms;
pub mod header;
pub mod lines;
pub mod multipart;
pub mod params;

use header::{Field, Fields};
use params::{ContentType, TransferEncoding};

/// Why a message is not in canonical form: a short phrase for the log line of the refusal.
pub type Refusal = &'static str;

/// One entity (the message or one part): its header fields, its parsed structure headers
/// and its body (without the CRLF that belongs to the next delimiter).
#[derive(Debug)]
pub struct Entity<'a> {
    /// The header fields in order.
    pub fields: Vec<Field<'a>>,
    /// `Content-Type`, or `text/plain` when absent (RFC 2045 §5.2).
    pub content_type: ContentType,
    /// `Content-Transfer-Encoding`, or `7bit` when absent (RFC 2045 §6.1).
    pub encoding: TransferEncoding,
    /// `Content-Disposition` type (`inline`, `attachment`), when present.
    pub disposition: Option<String>,
    /// The body bytes.
    pub body: &'a [u8],
}

impl<'a> Entity<'a> {
    /// The raw value of the one field called `name` (ASCII case-insensitive), if present.
    pub fn field(&self, name: &str) -> Option<&'a [u8]> {
        self.fields.iter().find(|f| f.is(name)).map(|f| f.value)
    }

    /// The value of field `name` unfolded and trimmed, if present and UTF-8.
    pub fn field_text(&self, name: &str) -> Option<String> {
        let value = self.field(name)?;
        let text = std::str::from_utf8(&header::unfold(value))
            .ok()?
            .trim()
            .to_owned();
        Some(text)
    }
}

/// A message in canonical form: the top-level entity and, when it is a multipart, its
/// parts (none of which is a multipart itself).
#[derive(Debug)]
pub struct Message<'a> {
    /// The whole message.
    pub raw: &'a [u8],
    /// The top-level entity.
    pub top: Entity<'a>,
    /// The parts of a top-level multipart, in order; empty otherwise.
    pub parts: Vec<Entity<'a>>,
}

/// Where an entity stands, which decides the headers that must not repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Top,
    Part,
}

/// Reads `raw` against the canonical grammar (steps 1 to 4 of the module documentation);
/// [`forms`] then decides which of the four messages it is, if any.
pub fn read(raw: &[u8]) -> Result<Message<'_>, Refusal> {
    lines::check(raw)?;
    let top = entity(raw, Level::Top)?;
    let parts = if top.content_type.is_multipart() {
        let boundary = top
            .content_type
            .param("boundary")
            .ok_or("multipart without boundary")?;
        multipart::split(top.body, boundary)?
            .into_iter()
            .map(|part| {
                let e = entity(part, Level::Part)?;
                if e.content_type.is_multipart() {
                    return Err("nested multipart");
                }
                Ok(e)
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    Ok(Message { raw, top, parts })
}

/// Headers that decide the MIME structure of an entity: at most one each, at every level.
const STRUCTURE: &[&str] = &[
    "Content-Type",
    "Content-Transfer-Encoding",
    "MIME-Version",
    "Content-Disposition",
];

/// Top-level headers that the policy or a client reads as one value: at most one each.
const SINGLE_TOP: &[&str] = &[
    "From",
    "Sender",
    "Subject",
    "Secure-Join",
    "Auto-Submitted",
    "Autocrypt-Setup-Message",
];

fn entity(raw: &[u8], level: Level) -> Result<Entity<'_>, Refusal> {
    let Fields { fields, body } = header::fields(raw)?;
    let singles = match level {
        Level::Top => SINGLE_TOP,
        Level::Part => &[],
    };
    for name in STRUCTURE.iter().chain(singles) {
        if fields.iter().filter(|f| f.is(name)).count() > 1 {
            return Err("repeated structure header");
        }
    }
    let structured = |name: &str| -> Result<Option<String>, Refusal> {
        match fields.iter().find(|f| f.is(name)) {
            Some(f) => params::structured_text(f.value).map(Some),
            None => Ok(None),
        }
    };
    let content_type = match structured("Content-Type")? {
        Some(v) => params::content_type(&v)?,
        None => ContentType::text_plain(),
    };
    let encoding = match structured("Content-Transfer-Encoding")? {
        Some(v) => params::transfer_encoding(&v)?,
        None => TransferEncoding::SevenBit,
    };
    if let Some(v) = structured("MIME-Version")?
        && v.trim() != "1.0"
    {
        return Err("MIME-Version other than 1.0");
    }
    let disposition = structured("Content-Disposition")?
        .map(|v| params::disposition(&v))
        .transpose()?;
    Ok(Entity {
        fields,
        content_type,
        encoding,
        disposition,
        body,
    })
}

#[cfg(test)]
mod tests;
