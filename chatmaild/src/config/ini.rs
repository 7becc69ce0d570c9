//! The file syntax of Python's `iniconfig` (SPEC §1.1).

use std::collections::BTreeMap;

use super::value::cfg_err;
use crate::error::{ConfigProblem as Problem, Error};

/// One section's `key = value` pairs with their line numbers.
pub type Params = BTreeMap<String, (usize, String)>;

/// Parses the `iniconfig` syntax into section → key → (line, value).
pub fn parse_ini(text: &str) -> Result<BTreeMap<String, Params>, Error> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut sections: BTreeMap<String, Params> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut last_key: Option<String> = None;
    for (idx, line) in split_lines(text).enumerate() {
        let lineno = idx + 1;
        let stripped = line.trim();
        if stripped.is_empty() || stripped.starts_with('#') || stripped.starts_with(';') {
            continue;
        }
        let continuation = line.starts_with(|c: char| c.is_whitespace());
        if continuation {
            let (Some(section), Some(key)) = (&current, &last_key) else {
                return Err(cfg_err(lineno, "line", Problem::Continuation));
            };
            if let Some((_, value)) = sections.get_mut(section).and_then(|s| s.get_mut(key)) {
                value.push('\n');
                value.push_str(stripped);
            }
            continue;
        }
        if let Some(rest) = stripped.strip_prefix('[') {
            let rest = rest.split(['#', ';']).next().unwrap_or("").trim_end();
            let Some(name) = rest.strip_suffix(']') else {
                return Err(cfg_err(
                    lineno,
                    "section",
                    Problem::SectionHeader(stripped.to_owned()),
                ));
            };
            if sections.contains_key(name) {
                return Err(cfg_err(lineno, name, Problem::DuplicateSection));
            }
            sections.insert(name.to_owned(), Params::new());
            current = Some(name.to_owned());
            last_key = None;
            continue;
        }
        let (key, value) = split_key_value(stripped)
            .ok_or_else(|| cfg_err(lineno, stripped, Problem::NoSeparator))?;
        let Some(section) = &current else {
            return Err(cfg_err(lineno, key, Problem::OutsideSection));
        };
        let params = sections.entry(section.clone()).or_default();
        if params.contains_key(key) {
            return Err(cfg_err(lineno, key, Problem::DuplicateKey));
        }
        params.insert(key.to_owned(), (lineno, value.to_owned()));
        last_key = Some(key.to_owned());
    }
    Ok(sections)
}

/// `key = value` or `key: value`: the first `=` wins unless the part before it has a `:`.
fn split_key_value(line: &str) -> Option<(&str, &str)> {
    let sep = match (line.find('='), line.find(':')) {
        (Some(eq), Some(colon)) if colon < eq => colon,
        (Some(eq), _) => eq,
        (None, Some(colon)) => colon,
        (None, None) => return None,
    };
    let (key, value) = (line.get(..sep)?.trim(), line.get(sep + 1..)?.trim());
    (!key.is_empty()).then_some((key, value))
}

/// Python's `str.splitlines` for the line endings a text file can have.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.find(['\n', '\r']) {
            None => Some(std::mem::take(&mut rest)),
            Some(i) => {
                let line = rest.get(..i).unwrap_or("");
                let skip = if rest.get(i..i + 2) == Some("\r\n") {
                    2
                } else {
                    1
                };
                rest = rest.get(i + skip..).unwrap_or("");
                Some(line)
            }
        }
    })
}
