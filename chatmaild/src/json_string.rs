//! JSON string literals exactly as Python's `json` module writes them.
//!
//! Two services write bytes that the Python implementation also writes and that peers or
//! operators compare: doveauth's userdb replies and the newemail CGI's answer, and
//! chatmail-metadata's `metadata.json`. Both need the same escaping, so it lives here; each
//! service keeps its own document format.

/// A JSON string literal as Python's `json.dumps` writes it (`ensure_ascii=True`).
pub fn python_json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_like_python() {
        assert_eq!(
            python_json_str("ä\"\\\u{1}😀"),
            r#""\u00e4\"\\\u0001\ud83d\ude00""#
        );
    }
}
