//! `Content-Type` fields: a media type and a parameter list, written the canonical way or
//! with one of the tricks on which parsers read parameters differently (quoting and
//! quoted-pairs, `;` and `=` inside quotes, encoded words with odd charsets or split across
//! folds, RFC 2231 `name*` and continuations not starting at `*0`, empty values, duplicates
//! differing in case, comments, whitespace around `=`, trailing `;`, folds anywhere).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::Gen;
use super::text::{fold, percent, q_encode, quote};

/// A `Content-Type` field as written (without its CRLF), and the strings some reader may
/// take for its boundary: the decoy blocks and delimiters of the body are drawn from them.
pub struct ContentType {
    pub field: Vec<u8>,
    pub readings: Vec<Vec<u8>>,
}

const CHARSETS: &[&str] = &[
    "utf-8",
    "UTF-8",
    "us-ascii",
    "iso-8859-1",
    "unknown",
    "utf-8*en",
    "x-unknown",
];
const FILLER_NAMES: &[&str] = &["x-a", "protocol", "charset", "name", "report-type"];

/// The field for `media` with `params` (canonical value quoted when `.2`), and for a
/// multipart the boundary `b` its delimiters use plus decoy parameters naming `d`.
pub fn content_type(
    g: &mut Gen<'_, '_>,
    media: &str,
    params: &[(&str, &str, bool)],
    boundary: Option<(&[u8], &[u8])>,
) -> ContentType {
    // The boundary first: the body's delimiters use it.
    let mut readings: Vec<Vec<u8>> = boundary.iter().map(|(b, _)| b.to_vec()).collect();
    let mut items: Vec<Vec<u8>> = Vec::new();
    for &(name, value, quoted) in params {
        items.extend(param(g, name, value.as_bytes(), quoted, &mut Vec::new()));
    }
    if let Some((b, d)) = boundary {
        items.extend(param(g, "boundary", b, true, &mut readings));
        let mut round = 0;
        while g.again(&mut round, 4) {
            let at = g.pick(items.len() + 1);
            let extra = decoy(g, d, &mut readings);
            items.splice(at..at, extra);
        }
    }
    let name = match g.pick(8) {
        1 => "content-type",
        2 => "CONTENT-TYPE",
        3 => {
            g.tag("hdr:space-before-colon");
            "Content-Type "
        }
        _ => "Content-Type",
    };
    let mut field = format!("{name}: ").into_bytes();
    let value_start = field.len();
    field.extend(media_text(g, media));
    for item in items {
        field.extend_from_slice(separator(g));
        field.extend(item);
    }
    if g.pick(6) == 1 {
        g.tag("ct:trailing-semicolon");
        field.push(b';');
    }
    fold(g, &mut field, value_start);
    ContentType { field, readings }
}

/// The media type, canonical or with case, spaces, a comment, quotes or an encoded word.
fn media_text(g: &mut Gen<'_, '_>, media: &str) -> Vec<u8> {
    let text = match g.pick(12) {
        1 => {
            g.tag("media:upper-case");
            media.to_ascii_uppercase()
        }
        2 => {
            g.tag("media:comment");
            format!("{media} (x)")
        }
        3 => {
            g.tag("media:space-around-slash");
            media.replacen('/', " / ", 1)
        }
        4 => {
            g.tag("media:quoted");
            format!("\"{media}\"")
        }
        5 => {
            g.tag("media:encoded-word");
            format!(
                "=?utf-8?q?{}?=",
                String::from_utf8_lossy(&q_encode(media.as_bytes()))
            )
        }
        _ => media.to_owned(),
    };
    text.into_bytes()
}

fn separator(g: &mut Gen<'_, '_>) -> &'static [u8] {
    match g.pick(10) {
        1 => b";",
        2 => b" ; ",
        3 => b";\r\n\t",
        4 => {
            g.tag("ct:empty-parameter");
            b";; "
        }
        5 => {
            g.tag("ct:comment-between-parameters");
            b"; (c) "
        }
        _ => b"; ",
    }
}

/// `name=value` in one of its spellings (RFC 2231 continuations give several items).
fn param(
    g: &mut Gen<'_, '_>,
    name: &str,
    value: &[u8],
    quoted: bool,
    readings: &mut Vec<Vec<u8>>,
) -> Vec<Vec<u8>> {
    let name = name_spelling(g, name);
    let eq = equals(g);
    let written = match g.pick(16) {
        0 | 1 if quoted => {
            // A naive reader keeps the backslashes of the escaped quote or backslash.
            let q = quote(value);
            readings.push(q.get(1..q.len() - 1).unwrap_or_default().to_vec());
            q
        }
        0 | 1 => value.to_vec(),
        2 => {
            g.tag("param:quoted-vs-token-swapped");
            if quoted { value.to_vec() } else { quote(value) }
        }
        3 => quoted_pairs(g, value, readings),
        4..=6 => encoded_words(g, value, readings),
        7 | 8 => return rfc2231(g, &name, value, readings),
        9 => {
            g.tag("param:empty-value");
            if g.flag() {
                Vec::new()
            } else {
                b"\"\"".to_vec()
            }
        }
        10 => fold_in_quotes(g, value, readings),
        11 => {
            g.tag("param:comment-after-value");
            readings.push([value, b" (c)"].concat());
            [quote(value).as_slice(), b" (c)"].concat()
        }
        12 => {
            g.tag("param:text-after-quoted-value");
            readings.push([b"\"", value, b"\"x"].concat());
            [quote(value).as_slice(), b"x"].concat()
        }
        13 => {
            g.tag("param:unterminated-quote");
            readings.push([b"\"", value].concat());
            [b"\"", value].concat()
        }
        _ => quote(value),
    };
    vec![[name.as_bytes(), eq, &written].concat()]
}

/// The parameter name as written: as given, upper case or capitalised.
fn name_spelling(g: &mut Gen<'_, '_>, name: &str) -> String {
    match g.pick(10) {
        1 => {
            g.tag("param:name-upper-case");
            name.to_ascii_uppercase()
        }
        2 => {
            g.tag("param:name-capitalised");
            let mut n = name.to_owned();
            if let Some(first) = n.get_mut(..1) {
                first.make_ascii_uppercase();
            }
            n
        }
        _ => name.to_owned(),
    }
}

/// `=`, or with white space around it.
fn equals(g: &mut Gen<'_, '_>) -> &'static [u8] {
    match g.pick(10) {
        1 => {
            g.tag("param:space-around-equals");
            b" = "
        }
        2 => {
            g.tag("param:space-after-equals");
            b"= "
        }
        _ => b"=",
    }
}

/// A quoted string with some characters written as quoted-pairs (`\b`): the RFC reading
/// drops the backslashes, a naive one keeps them.
fn quoted_pairs(g: &mut Gen<'_, '_>, value: &[u8], readings: &mut Vec<Vec<u8>>) -> Vec<u8> {
    g.tag("param:quoted-pair");
    let mut inner = Vec::new();
    for (i, &c) in value.iter().enumerate() {
        // At least the first character is escaped, so the trick is always there.
        if i == 0 || g.flag() || c == b'"' || c == b'\\' {
            inner.push(b'\\');
        }
        inner.push(c);
    }
    readings.push(inner.clone());
    [b"\"", inner.as_slice(), b"\""].concat()
}

/// The value as one or two RFC 2047 encoded words, quoted or bare, split across a space or
/// a fold, in a charset some readers do not know.
fn encoded_words(g: &mut Gen<'_, '_>, value: &[u8], readings: &mut Vec<Vec<u8>>) -> Vec<u8> {
    let cs = g.one_of(CHARSETS);
    if cs != "utf-8" {
        g.tag("param:encoded-word-odd-charset");
    }
    let word = |g: &mut Gen<'_, '_>, part: &[u8]| -> Vec<u8> {
        if g.flag() {
            format!("=?{cs}?b?{}?=", STANDARD.encode(part)).into_bytes()
        } else {
            [format!("=?{cs}?q?").as_bytes(), &q_encode(part), b"?="].concat()
        }
    };
    let written = if g.flag() {
        g.tag("param:encoded-word-split");
        let at = g.pick(value.len() + 1);
        let (a, b) = value.split_at(at);
        let between: &[u8] = match g.pick(3) {
            0 => b" ",
            1 => b"\r\n ",
            _ => b"",
        };
        [word(g, a).as_slice(), between, &word(g, b)].concat()
    } else {
        word(g, value)
    };
    readings.push(
        written
            .iter()
            .copied()
            .filter(|&c| c != b'\r' && c != b'\n')
            .collect(),
    );
    if g.flag() {
        g.tag("param:encoded-word-bare");
        written
    } else {
        g.tag("param:encoded-word-quoted");
        [b"\"", written.as_slice(), b"\""].concat()
    }
}

/// RFC 2231: `name*=charset''%xx` or continuations `name*0`, `name*1` (possibly starting
/// at `*1`, in reverse order, or with `*0*` extended values).
fn rfc2231(
    g: &mut Gen<'_, '_>,
    name: &str,
    value: &[u8],
    readings: &mut Vec<Vec<u8>>,
) -> Vec<Vec<u8>> {
    let cs = g.one_of(CHARSETS);
    if !g.flag() {
        g.tag("param:rfc2231-extended");
        let ext = [format!("{cs}''").as_bytes(), &percent(value)].concat();
        readings.push(ext.clone());
        return vec![[format!("{name}*=").as_bytes(), &ext].concat()];
    }
    g.tag("param:rfc2231-continuation");
    let at = g.pick(value.len() + 1);
    let (a, b) = value.split_at(at);
    let first = if g.flag() {
        g.tag("param:rfc2231-not-from-zero");
        1
    } else {
        0
    };
    let extended = g.flag();
    let mut items = Vec::new();
    for (i, piece) in [a, b].into_iter().enumerate() {
        let n = first + i;
        readings.push(piece.to_vec());
        items.push(if extended {
            g.tag("param:rfc2231-extended-continuation");
            let v = if i == 0 {
                [format!("{cs}''").as_bytes(), &percent(piece)].concat()
            } else {
                percent(piece)
            };
            [format!("{name}*{n}*=").as_bytes(), &v].concat()
        } else {
            [format!("{name}*{n}=").as_bytes(), &quote(piece)].concat()
        });
    }
    if g.flag() {
        g.tag("param:rfc2231-reordered");
        items.reverse();
    }
    items
}

/// A quoted value with a fold (CRLF and white space) inside it.
fn fold_in_quotes(g: &mut Gen<'_, '_>, value: &[u8], readings: &mut Vec<Vec<u8>>) -> Vec<u8> {
    g.tag("param:fold-inside-quotes");
    let at = g.pick(value.len() + 1);
    let (a, b) = value.split_at(at);
    let ws: &[u8] = if g.flag() { b"\t" } else { b" " };
    readings.push([a, ws, b].concat());
    readings.push([a, b].concat());
    [b"\"", a, b"\r\n", ws, b, b"\""].concat()
}

/// A parameter that lets another reader find the decoy boundary `d`: a second `boundary`
/// in any spelling, or `;boundary=d;` hidden in a quoted value, an encoded word or after an
/// escaped quote; or padding that makes Postfix break or cut the line.
fn decoy(g: &mut Gen<'_, '_>, d: &[u8], readings: &mut Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    readings.push(d.to_vec());
    let name = g.one_of(FILLER_NAMES);
    let hidden = [b";boundary=", d, b";"].concat();
    let item = match g.pick(6) {
        0 | 1 => {
            g.tag("decoy:second-boundary");
            let bname = if g.flag() { "BOUNDARY" } else { "boundary" };
            return param(g, bname, d, g_quoted(d), readings);
        }
        2 => {
            g.tag("decoy:boundary-inside-quoted-value");
            [format!("{name}=\"a").as_bytes(), &hidden, b"b\""].concat()
        }
        3 => {
            g.tag("decoy:boundary-inside-encoded-word");
            let q = q_encode(&[b"a", hidden.as_slice(), b"b"].concat());
            [format!("{name}=\"=?utf-8?q?").as_bytes(), &q, b"?=\""].concat()
        }
        4 => {
            g.tag("decoy:boundary-after-escaped-quote");
            [format!("{name}=\"a\\\"").as_bytes(), &hidden, b"\\\"\""].concat()
        }
        _ => return vec![padding(g)],
    };
    vec![item]
}

fn g_quoted(v: &[u8]) -> bool {
    !v.iter().all(|c| c.is_ascii_alphanumeric())
}

/// `x-pad=aaa…`: long enough that Postfix's SMTP/LMTP client breaks the line (998) at a
/// place the stream picks, or, rarely, a folded value past `header_size_limit` (102400).
fn padding(g: &mut Gen<'_, '_>) -> Vec<u8> {
    if g.pick(8) == 7 {
        g.tag("postfix:huge-content-type");
        let lines = 1350 + g.pick(150);
        let mut v = b"x-pad=\"".to_vec();
        for _ in 0..lines {
            v.extend_from_slice(&[b'a'; 74]);
            v.extend_from_slice(b"\r\n ");
        }
        v.push(b'"');
        return v;
    }
    g.tag("postfix:long-content-type-line");
    let len = 900 + g.pick(200);
    [b"x-pad=".as_slice(), &vec![b'a'; len]].concat()
}
