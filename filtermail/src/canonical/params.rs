//! Step 3 of the grammar: the values of the structure headers.
//!
//! `mailparse` (Delta Chat) splits a parameter list at every `;`, also inside quotes,
//! trims, strips quotes only when both ends are quotes, does not undo quoted-pairs, lets a
//! later duplicate win, joins RFC 2231 continuations and decodes `name*` values, and
//! decodes RFC 2047 encoded words in the whole header value before it reads the
//! parameters. mail-parser undoes quoted-pairs, keeps the first of two parameters in some
//! cases and reads comments. Each difference lets a client read another boundary than the
//! filter did. The grammar here has none of those constructs, so the readings agree.

use super::Refusal;
use super::header::unfold;

/// Parameter names a structure header may carry (lower case). Each stands at most once;
/// an RFC 2231 form (`name*`, `name*0`) is not a name here.
const PARAMS: &[&str] = &[
    "boundary",
    "charset",
    "delsp",
    "filename",
    "format",
    "hp",
    "micalg",
    "name",
    "protected-headers",
    "protocol",
    "report-type",
    "size",
];

/// Longest boundary (RFC 2046 §5.1.1).
pub const MAX_BOUNDARY: usize = 70;

/// A parsed `Content-Type`: lower-case type and subtype, parameters in order (names lower
/// case, values as written without quotes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType {
    /// The type, lower case.
    pub ty: String,
    /// The subtype, lower case.
    pub subtype: String,
    /// `(name, value)` in order.
    pub params: Vec<(String, String)>,
}

impl ContentType {
    /// The type of an entity without `Content-Type`.
    pub fn text_plain() -> ContentType {
        ContentType {
            ty: "text".into(),
            subtype: "plain".into(),
            params: Vec::new(),
        }
    }

    /// Whether this is `ty/subtype` (both given in lower case).
    pub fn is(&self, ty: &str, subtype: &str) -> bool {
        self.ty == ty && self.subtype == subtype
    }

    /// Whether this is a multipart type.
    pub fn is_multipart(&self) -> bool {
        self.ty == "multipart"
    }

    /// The value of parameter `name` (lower case).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A `Content-Transfer-Encoding` (RFC 2045 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferEncoding {
    /// `7bit`, also when absent.
    SevenBit,
    /// `8bit`.
    EightBit,
    /// `binary`.
    Binary,
    /// `quoted-printable`.
    QuotedPrintable,
    /// `base64`.
    Base64,
}

/// The unfolded value of a structure header, if it is printable ASCII without encoded
/// words, comments or backslashes (anything one reader decodes and another does not).
pub fn structured_text(raw: &[u8]) -> Result<String, Refusal> {
    let v = unfold(raw);
    if !v.iter().all(|&b| b == b'\t' || (0x20..=0x7e).contains(&b)) {
        return Err("structure header not printable ASCII");
    }
    if v.windows(2).any(|w| w == b"=?") {
        return Err("encoded word in a structure header");
    }
    if v.iter().any(|&b| matches!(b, b'(' | b')' | b'\\')) {
        return Err("comment or backslash in a structure header");
    }
    String::from_utf8(v).map_err(|_| "structure header not printable ASCII")
}

/// An RFC 2045 token character: printable ASCII without space and tspecials.
fn token_char(b: u8) -> bool {
    b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b)
}

/// A character of a quoted value here: visible ASCII without `"`, `\`, `;`, `(`, `)`.
fn quoted_char(b: u8) -> bool {
    b.is_ascii_graphic() && !b"\"\\;()".contains(&b)
}

/// A boundary character: RFC 2046's `bchars` without space, `(`, `)` and `?`.
fn boundary_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"'+_,-./:=".contains(&b)
}

/// A cursor over an unfolded structure value.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn skip_ws(&mut self) {
        let n = self
            .0
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        self.0 = self.0.get(n..).unwrap_or_default();
    }

    fn token(&mut self) -> Option<&'a str> {
        let n = self.0.iter().take_while(|&&b| token_char(b)).count();
        let (t, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        (n > 0).then(|| std::str::from_utf8(t).ok()).flatten()
    }

    fn eat(&mut self, b: u8) -> bool {
        match self.0.split_first() {
            Some((&first, rest)) if first == b => {
                self.0 = rest;
                true
            }
            _ => false,
        }
    }

    fn value(&mut self) -> Result<&'a str, Refusal> {
        if self.eat(b'"') {
            let n = self.0.iter().take_while(|&&b| quoted_char(b)).count();
            let (v, rest) = self.0.split_at_checked(n).ok_or("quoted value")?;
            self.0 = rest;
            if !self.eat(b'"') {
                return Err("quoted parameter value not plain");
            }
            if n == 0 {
                return Err("empty parameter value");
            }
            std::str::from_utf8(v).map_err(|_| "quoted value")
        } else {
            self.token()
                .ok_or("parameter value neither token nor quoted")
        }
    }
}

/// `value *(; name=value) [;]` after the main value: the parameter list, with every rule
/// of the module documentation.
fn parameter_list(mut c: Cursor<'_>) -> Result<Vec<(String, String)>, Refusal> {
    let mut params: Vec<(String, String)> = Vec::new();
    loop {
        c.skip_ws();
        if c.0.is_empty() {
            return Ok(params);
        }
        if !c.eat(b';') {
            return Err("text after a parameter");
        }
        c.skip_ws();
        if c.0.is_empty() {
            // One trailing `;` (Delta Chat writes one after Content-Disposition).
            return Ok(params);
        }
        let name = c
            .token()
            .ok_or("parameter without a name")?
            .to_ascii_lowercase();
        if !PARAMS.contains(&name.as_str()) {
            return Err("parameter name not allowed");
        }
        if params.iter().any(|(n, _)| *n == name) {
            return Err("repeated parameter");
        }
        if !c.eat(b'=') {
            return Err("parameter without `=` right after its name");
        }
        let value = c.value()?;
        params.push((name, value.to_owned()));
    }
}

/// A `Content-Type` value in canonical form.
pub fn content_type(v: &str) -> Result<ContentType, Refusal> {
    let mut c = Cursor(v.as_bytes());
    c.skip_ws();
    let ty = c.token().ok_or("content type not a token")?;
    if !c.eat(b'/') {
        return Err("content type without subtype");
    }
    let subtype = c.token().ok_or("content subtype not a token")?;
    let params = parameter_list(c)?;
    let ct = ContentType {
        ty: ty.to_ascii_lowercase(),
        subtype: subtype.to_ascii_lowercase(),
        params,
    };
    if let Some(b) = ct.param("boundary") {
        if !ct.is_multipart() {
            return Err("boundary on a type that is no multipart");
        }
        if b.is_empty() || b.len() > MAX_BOUNDARY || !b.bytes().all(boundary_char) {
            return Err("boundary not from RFC 2046 characters");
        }
    }
    Ok(ct)
}

/// A `Content-Transfer-Encoding` value in canonical form: one known token.
pub fn transfer_encoding(v: &str) -> Result<TransferEncoding, Refusal> {
    match v.trim_matches([' ', '\t']).to_ascii_lowercase().as_str() {
        "7bit" => Ok(TransferEncoding::SevenBit),
        "8bit" => Ok(TransferEncoding::EightBit),
        "binary" => Ok(TransferEncoding::Binary),
        "quoted-printable" => Ok(TransferEncoding::QuotedPrintable),
        "base64" => Ok(TransferEncoding::Base64),
        _ => Err("unknown transfer encoding"),
    }
}

/// A `Content-Disposition` value in canonical form: `inline` or `attachment` and
/// parameters; the type in lower case.
pub fn disposition(v: &str) -> Result<String, Refusal> {
    let mut c = Cursor(v.as_bytes());
    c.skip_ws();
    let ty = c
        .token()
        .ok_or("disposition not a token")?
        .to_ascii_lowercase();
    if ty != "inline" && ty != "attachment" {
        return Err("disposition neither inline nor attachment");
    }
    let params = parameter_list(c)?;
    if params.iter().any(|(n, _)| n != "filename" && n != "size") {
        return Err("parameter name not allowed");
    }
    Ok(ty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(raw: &str) -> Result<ContentType, Refusal> {
        content_type(&structured_text(raw.as_bytes())?)
    }

    #[test]
    fn canonical_content_types() {
        let c = ct("multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n\tboundary=\"YFrteb74\"")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(c.is("multipart", "encrypted"));
        assert_eq!(c.param("boundary"), Some("YFrteb74"));
        assert_eq!(c.param("protocol"), Some("application/pgp-encrypted"));
        let c = ct(" Multipart/Report; report-type=delivery-status;\r\n      boundary=\"JAA13167.773673707/CS.UTK.EDU\"")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(c.is("multipart", "report"));
        assert_eq!(c.param("boundary"), Some("JAA13167.773673707/CS.UTK.EDU"));
        assert!(ct("text/plain; charset=utf-8").is_ok());
        assert!(ct("text/plain;").is_ok());
        assert!(ct("application/octet-stream; name=\"encrypted.asc\"").is_ok());
    }

    #[test]
    fn everything_else_is_refused() {
        for raw in [
            "multipart/mixed; boundary=\"a;b\"",
            "multipart/mixed; boundary=\"a\\\"b\"",
            "multipart/mixed; boundary=\"a b\"",
            "multipart/mixed; boundary=\"a\r\n b\"",
            "multipart/mixed; boundary=\"=?utf-8?q?x?=\"",
            "multipart/mixed; boundary==?utf-8?q?x?=",
            "multipart/mixed; boundary*0=a; boundary*1=b",
            "multipart/mixed; boundary*1=a",
            "multipart/mixed; boundary*=utf-8''a",
            "multipart/mixed; boundary=",
            "multipart/mixed; boundary=\"\"",
            "multipart/mixed; boundary=a; Boundary=b",
            "multipart/mixed (comment); boundary=a",
            "multipart/mixed; boundary = a",
            "multipart/mixed; boundary=\"a\"x",
            "multipart/mixed;; boundary=a",
            "multipart/mixed; boundary=a;;",
            "multipart/mixed; x-unknown=a; boundary=b",
            "multipart/mixed; boundary=\"a?b\"",
            "multipart/mixed",
            "multipart mixed; boundary=a",
            "text/plain; boundary=a",
            "text/plain; charset=\u{e9}",
            "multipart/mixed; boundary=\"01234567890123456789012345678901234567890123456789012345678901234567890\"",
        ] {
            let parsed = ct(raw);
            let refused = match &parsed {
                Err(_) => true,
                Ok(c) => c.is_multipart() && c.param("boundary").is_none(),
            };
            assert!(refused, "{raw:?} read as {parsed:?}");
        }
    }

    #[test]
    fn encodings_and_dispositions() {
        assert_eq!(transfer_encoding(" 7BIT "), Ok(TransferEncoding::SevenBit));
        assert!(transfer_encoding("base64 7bit").is_err());
        assert!(transfer_encoding("x-uuencode").is_err());
        assert_eq!(
            disposition("inline; filename=\"encrypted.asc\";"),
            Ok("inline".to_owned())
        );
        assert!(disposition("inline; filename=\"a\"; filename=\"b\"").is_err());
        assert!(disposition("form-data").is_err());
        assert!(disposition("attachment; name=x").is_err());
    }
}
