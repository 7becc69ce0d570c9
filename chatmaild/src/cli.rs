//! Command-line helpers for the tools that mimic the reference's `argparse` parsers
//! (`chatmail-expire`, `chatmail-fsreport`): unique long-option prefixes and Python `int()`
//! values, with argparse's wording in the errors.

use std::ffi::OsString;

/// A wrong command line; the text says how, in argparse's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl From<lexopt::Error> for UsageError {
    fn from(e: lexopt::Error) -> Self {
        UsageError(e.to_string())
    }
}

/// What a command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<T> {
    /// Run with these arguments.
    Run(T),
    /// Print the help text and exit 0.
    Help,
}

/// Resolves a long option given on the command line to one of `known`, accepting a
/// unique prefix as argparse does.
pub fn resolve_long<'a>(given: &str, known: &[&'a str]) -> Result<&'a str, UsageError> {
    if let Some(exact) = known.iter().find(|k| **k == given) {
        return Ok(exact);
    }
    let matches: Vec<&&str> = known.iter().filter(|k| k.starts_with(given)).collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(UsageError(format!("unrecognized arguments: --{given}"))),
        _ => Err(UsageError(format!("ambiguous option: --{given}"))),
    }
}

/// Parses an integer option value like Python's `int()` (surrounding whitespace allowed);
/// an empty value means "not given", as the reference tests `if args.days:`.
pub fn parse_int(option: &str, value: &OsString) -> Result<Option<i64>, UsageError> {
    let text = value.to_string_lossy();
    let trimmed = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    trimmed
        .replace('_', "")
        .parse::<i64>()
        .map(Some)
        .map_err(|_| UsageError(format!("argument {option}: invalid int value: '{text}'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_prefixes() {
        let known = ["days", "maxnum", "min-login-age", "mdir"];
        assert_eq!(resolve_long("da", &known).unwrap(), "days");
        assert_eq!(resolve_long("mdir", &known).unwrap(), "mdir");
        assert!(resolve_long("m", &known).is_err());
        assert!(resolve_long("zzz", &known).is_err());
    }
}
