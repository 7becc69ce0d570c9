//! The template syntax of `relay/`: `@NAME@` (an upper-case letter, then upper-case letters,
//! digits and `_`) is replaced by the value of `NAME`; every other `@` is text. One pass:
//! a value is never searched for placeholders itself, so an address such as
//! `user@[127.0.0.1]` in a value stays as it is.

use std::collections::BTreeMap;
use std::path::Path;

use crate::Error;

/// The values of a rendering, by placeholder name.
pub type Values = BTreeMap<&'static str, String>;

/// The placeholder starting at `text[at]` (an `@`): its name and the length of `@NAME@`.
fn placeholder_at(text: &str, at: usize) -> Option<(&str, usize)> {
    let after = text.get(at + 1..)?;
    let len = after
        .bytes()
        .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
        .count();
    let name = after.get(..len)?;
    let starts_with_letter = name.bytes().next().is_some_and(|b| b.is_ascii_uppercase());
    (starts_with_letter && after.as_bytes().get(len) == Some(&b'@')).then_some((name, len + 2))
}

/// Replaces every placeholder of `text` (the content of `template`) by its value; an
/// unknown name is an error naming the template.
pub fn render(template: &Path, text: &str, values: &Values) -> Result<String, Error> {
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    let mut search = 0;
    while let Some(offset) = text.get(search..).and_then(|rest| rest.find('@')) {
        let at = search + offset;
        let Some((name, len)) = placeholder_at(text, at) else {
            search = at + 1;
            continue;
        };
        let value = values.get(name).ok_or_else(|| Error::Placeholder {
            template: template.to_path_buf(),
            name: name.to_owned(),
        })?;
        out.push_str(text.get(done..at).unwrap_or_default());
        out.push_str(value);
        done = at + len;
        search = done;
    }
    out.push_str(text.get(done..).unwrap_or_default());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values {
        [
            ("NAME", "v".to_owned()),
            ("MAIL_DOMAIN", "[127.0.0.1]".into()),
        ]
        .into_iter()
        .collect()
    }

    fn r(text: &str) -> Result<String, Error> {
        render(Path::new("t.in"), text, &values())
    }

    #[test]
    fn replaces_every_placeholder_once() {
        for (text, want) in [
            ("", ""),
            ("plain", "plain"),
            ("@NAME@", "v"),
            ("a @NAME@ b @NAME@", "a v b v"),
            ("user@@MAIL_DOMAIN@", "user@[127.0.0.1]"),
            ("a@b.org @lower@ @ @@ @1X@", "a@b.org @lower@ @ @@ @1X@"),
            ("@NAME@@NAME@", "vv"),
            ("@NAME", "@NAME"),
            ("x@ @NAME@", "x@ v"),
            ("ünïcode @NAME@ ü", "ünïcode v ü"),
        ] {
            assert_eq!(r(text).unwrap(), want, "{text:?}");
        }
        // A value is not searched again.
        let v: Values = [("A", "@B@".to_owned())].into_iter().collect();
        assert_eq!(render(Path::new("t"), "@A@", &v).unwrap(), "@B@");
    }

    #[test]
    fn unknown_placeholder_is_an_error() {
        let err = r("ok @NAME@ then @TYPO@").unwrap_err().to_string();
        assert_eq!(err, "t.in: no value for placeholder @TYPO@");
    }
}
