//! Command-line helpers for the tools that mimic the reference's `argparse` parsers
//! (`chatmail-expire`, `chatmail-fsreport`): unique long-option prefixes and Python `int()`
//! values, with argparse's wording in the errors; their error type, `main` flow and
//! report files.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::dir::Dir;
use crate::fs::Durability;
use crate::privileges::{Afterwards, Owner, as_owner};

/// A wrong command line; the text says how, in argparse's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl From<lexopt::Error> for UsageError {
    fn from(e: lexopt::Error) -> Self {
        UsageError(e.to_string())
    }
}

/// What stopped a run of a report tool (`chatmail-expire`, `chatmail-quota-expire`,
/// `chatmail-fsreport`) as a whole.
///
/// Problems with single entries (an unreadable folder, a file that could not be removed)
/// are not errors of this type: they are reported where they happen, the run goes on, and
/// only the exit status says that something failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The command line is wrong; the text says how.
    #[error("{0}")]
    Usage(#[from] UsageError),
    /// `chatmail.ini` could not be read or has a bad value.
    #[error("{0}")]
    Config(#[source] crate::Error),
    /// The mailboxes directory could not be listed.
    #[error("{0}")]
    Scan(#[source] crate::Error),
    /// A report file could not be written.
    #[error("{0}")]
    Write(#[source] crate::Error),
}

impl RunError {
    /// The exit status `main` uses: 64 for usage, 78 for config, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Usage(_) => crate::service::EXIT_USAGE,
            RunError::Config(_) => crate::service::EXIT_CONFIG,
            RunError::Scan(_) | RunError::Write(_) => 1,
        }
    }
}

/// A usage error from `lexopt`.
pub fn usage(e: lexopt::Error) -> RunError {
    RunError::Usage(UsageError::from(e))
}

/// The `main` flow of a report tool with manual `page`: `-h`/`--help` prints its help on
/// stdout; a wrong command line prints its usage and the error on stderr; otherwise `run`
/// decides, and an error of its own is printed on stderr. Each error exits with its
/// [`RunError::exit_code`].
pub fn tool_main<T>(
    page: &crate::manual::Page,
    parsed: Result<Command<T>, RunError>,
    run: impl FnOnce(&T) -> Result<ExitCode, RunError>,
) -> ExitCode {
    let prog = page.name;
    let args = match parsed {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => return page.print_help(),
        Err(e) => {
            eprintln!("{}\n{prog}: error: {e}", page.usage);
            return ExitCode::from(e.exit_code());
        }
    };
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{prog}: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs a report tool's tree `work` as the owner of the tree `root` (see [`as_owner`]), or
/// as is when there is no tree (nothing to read, nothing to switch to). `writes_outside`:
/// the tool writes a file outside the tree afterwards, as whoever started it.
pub fn in_tree<T: Send>(
    root: Option<&Dir>,
    writes_outside: bool,
    work: impl FnOnce() -> Result<T, RunError> + Send,
) -> Result<T, RunError> {
    let Some(dir) = root else {
        return work();
    };
    let afterwards = if writes_outside {
        Afterwards::WritesOutside
    } else {
        Afterwards::Nothing
    };
    as_owner(Owner::of(dir), afterwards, work).map_err(RunError::Scan)?
}

/// A report tool's exit status after its run: failure, said on stderr as `tool: N entries
/// could not be <what>`, when some entries failed; success otherwise.
pub fn failures_status(tool: &str, failures: u64, what: &str) -> ExitCode {
    if failures == 0 {
        return ExitCode::SUCCESS;
    }
    eprintln!("{tool}: {failures} entries could not be {what}");
    ExitCode::FAILURE
}

/// Prints `text` and a newline on stdout; false if stdout is gone.
pub fn print_stdout(text: &str) -> bool {
    write_stdout(&format!("{text}\n"))
}

/// Writes `text` as it is (a report that ends its own lines) on stdout and flushes it;
/// false if stdout is gone, so a tool can exit non-zero instead of panicking.
pub fn write_stdout(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_ok()
}

/// Where `--textfile PATH` writes: `PATH`, or `PATH/name` when it is a directory (reached
/// as [`write_report`] reaches it).
pub fn textfile_path(path: &Path, name: &str) -> PathBuf {
    if Dir::open_trusted(path).is_ok() {
        path.join(name)
    } else {
        path.to_path_buf()
    }
}

/// Writes a report file atomically with mode 0644: node-exporter reads it as another user
/// and must never see half a file. This is done by whoever started the tool (root, for a
/// system directory), after the tree work: the directory is opened with
/// [`Dir::open_trusted`] and the file created new and renamed into place, so a link
/// there is replaced, never written through.
pub fn write_report(path: &Path, text: &str) -> Result<(), RunError> {
    let name = path.file_name().ok_or_else(|| {
        RunError::Write(crate::Error::io(
            path,
            std::io::ErrorKind::InvalidInput.into(),
        ))
    })?;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = Dir::open_trusted(parent.unwrap_or(Path::new(".")))
        .map_err(|e| RunError::Write(crate::Error::io(path, e)))?;
    dir.write_atomic(name, text.as_bytes(), Durability::Rename, Some(0o644))
        .map_err(|e| RunError::Write(crate::Error::io(path, e)))
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
