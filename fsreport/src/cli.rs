//! The `chatmail-fsreport` command line (SPEC §8.1) and its `main` flow.
//!
//! Flags follow the reference's `argparse` parser: unambiguous long-option prefixes,
//! `--opt=value`, and `--legacy-metrics` with an optional value that takes the next
//! argument when it does not start with `-` (so `--legacy-metrics chatmail.ini` names the
//! metrics file, as with argparse).

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chatmaild::Config;
use chatmaild::cli::{
    Command, failures_status, in_tree, parse_int, resolve_long, textfile_path, tool_main, usage,
    write_report, write_stdout,
};
use chatmaild::dir::Dir;
use chatmaild::maildir::parallel::{default_threads, progress_wanted, run_ordered};
use chatmaild::maildir::scan::{Scan, ScanOptions, list_mailboxes, scan_mailbox};
use chatmaild::privileges::open_tree;
use chatmaild::wall_time;

use crate::Error;
use crate::report::{Params, Report};

/// Usage text.
pub const USAGE: &str = "usage: chatmail-fsreport [CHATMAIL_INI] [--days DAYS] [--min-login-age DAYS] \
[--mdir {cur,new,tmp}] [--maxnum MAXNUM] [--textfile PATH] [--legacy-metrics [FILENAME]]";

/// Where `--legacy-metrics` without a value writes (the former cron job's file).
pub const LEGACY_METRICS_PATH: &str = "/var/www/html/metrics";

/// The file name used when `--textfile` names a directory.
pub const TEXTFILE_NAME: &str = "fsreport.prom";

/// Parsed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportArgs {
    /// The config file.
    pub ini: PathBuf,
    /// Pretend "now" is this many days earlier.
    pub days: i64,
    /// Size buckets only for logins at least this many days old.
    pub min_login_age: i64,
    /// Only messages in this maildir folder.
    pub mdir: Option<String>,
    /// Only the first N entries of the mailboxes directory.
    pub maxnum: Option<i64>,
    /// Write the Prometheus textfile here (a directory gets `fsreport.prom`).
    pub textfile: Option<PathBuf>,
    /// Write the legacy metrics file here.
    pub legacy_metrics: Option<PathBuf>,
}

const LONGS: &[&str] = &[
    "days",
    "min-login-age",
    "mdir",
    "maxnum",
    "textfile",
    "legacy-metrics",
    "help",
];

/// Parses the arguments (without the program name).
pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command<ReportArgs>, Error> {
    use lexopt::Arg;
    let mut parser = lexopt::Parser::from_args(args);
    let mut out = ReportArgs {
        ini: PathBuf::from(chatmaild::config::DEFAULT_INI),
        days: 0,
        min_login_age: 0,
        mdir: None,
        maxnum: None,
        textfile: None,
        legacy_metrics: None,
    };
    let mut ini = None;
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Arg::Short('h') => return Ok(Command::Help),
            Arg::Long(name) => match resolve_long(name, LONGS)? {
                "days" => {
                    out.days = parse_int("--days", &parser.value().map_err(usage)?)?.unwrap_or(0);
                }
                "min-login-age" => {
                    out.min_login_age =
                        parse_int("--min-login-age", &parser.value().map_err(usage)?)?.unwrap_or(0);
                }
                "mdir" => {
                    let v = parser.value().map_err(usage)?;
                    out.mdir = Some(v.to_string_lossy().into_owned());
                }
                "maxnum" => {
                    out.maxnum = parse_int("--maxnum", &parser.value().map_err(usage)?)?;
                }
                "textfile" => {
                    let v = parser.value().map_err(usage)?;
                    out.textfile = Some(PathBuf::from(v)).filter(|p| !p.as_os_str().is_empty());
                }
                "legacy-metrics" => {
                    let value = match parser.optional_value() {
                        Some(v) => Some(v),
                        None => parser
                            .raw_args()
                            .map_err(usage)?
                            .next_if(|next| !next.as_encoded_bytes().starts_with(b"-")),
                    };
                    let path =
                        value.map_or_else(|| PathBuf::from(LEGACY_METRICS_PATH), PathBuf::from);
                    out.legacy_metrics = Some(path).filter(|p| !p.as_os_str().is_empty());
                }
                _ => return Ok(Command::Help),
            },
            Arg::Value(v) if ini.is_none() => ini = Some(PathBuf::from(v)),
            other => return Err(usage(other.unexpected())),
        }
    }
    if let Some(ini) = ini {
        out.ini = ini;
    }
    Ok(Command::Run(out))
}

/// The whole program after argv.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    tool_main(&crate::manual::PAGE, parse_args(args), run)
}

/// What a scan of all mailboxes found.
#[derive(Debug, Default)]
pub struct Collected {
    /// The sums.
    pub report: Report,
    /// Entries that could not be read.
    pub failures: u64,
}

/// Scans `mailboxes_dir` (`root`, its handle; `None` if it does not exist) and sums the
/// report, printing problems and skipped links on `log`.
pub fn collect(
    mailboxes_dir: &Path,
    root: Option<&Dir>,
    maxnum: Option<i64>,
    params: &Params,
    threads: usize,
    progress: bool,
    log: &mut (dyn Write + Send),
) -> Result<Collected, Error> {
    let mut collected = Collected::default();
    let Some(root) = root else {
        let _ = writeln!(log, "no mailboxes found at: {}", mailboxes_dir.display());
        return Ok(collected);
    };
    let (mailboxes, _skipped) = list_mailboxes(root, maxnum).map_err(Error::Scan)?;
    let options = ScanOptions { extra_sizes: true };
    run_ordered(
        &mailboxes,
        threads,
        progress,
        |name| match scan_mailbox(root, name, options) {
            Scan::Done(stat) => {
                let mut report = Report::default();
                report.add(params, &stat);
                (report, stat.problems, stat.warnings)
            }
            Scan::Vanished => (Report::default(), Vec::new(), Vec::new()),
            Scan::Unreadable(e) => (
                Report::default(),
                vec![format!("{}: {e}", root.join(name).display())],
                Vec::new(),
            ),
        },
        |(report, problems, warnings): (Report, Vec<String>, Vec<String>)| {
            collected.report.merge(&report);
            for problem in problems {
                collected.failures += 1;
                let _ = writeln!(log, "skipping unreadable entry {problem}");
            }
            for warning in warnings {
                let _ = writeln!(log, "skipping {warning}");
            }
        },
    );
    Ok(collected)
}

fn run(args: &ReportArgs) -> Result<ExitCode, Error> {
    let config = Config::load(&args.ini).map_err(Error::Config)?;
    #[expect(clippy::cast_precision_loss, reason = "day counts are far below 2^53")]
    let now = wall_time::now() - 86_400.0 * args.days as f64;
    let params = Params {
        now,
        min_login_age: args.min_login_age,
        mdir: args.mdir.clone(),
    };
    // The tree is opened first and scanned as its owner; the report files (outside the
    // tree) are written afterwards by whoever started the run.
    let root = open_tree(&config.mailboxes_dir).map_err(Error::Scan)?;
    let work = || {
        collect(
            &config.mailboxes_dir,
            root.as_deref(),
            args.maxnum,
            &params,
            default_threads(),
            progress_wanted(),
            &mut std::io::stderr(),
        )
    };
    let writes_outside = args.textfile.is_some() || args.legacy_metrics.is_some();
    let collected = in_tree(root.as_deref(), writes_outside, work)?;
    let report = &collected.report;
    if let Some(path) = &args.textfile {
        write_report(&textfile_path(path, TEXTFILE_NAME), &report.textfile())?;
    }
    if let Some(path) = &args.legacy_metrics {
        write_report(path, &report.legacy())?;
    }
    if args.textfile.is_none() && args.legacy_metrics.is_none() {
        let text = report.summary(&params, &wall_time::local_datetime(now));
        if !write_stdout(&text) {
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(failures_status(
        "chatmail-fsreport",
        collected.failures,
        "read",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command<ReportArgs>, Error> {
        parse_args(args.iter().map(OsString::from))
    }

    fn run_args(args: &[&str]) -> ReportArgs {
        match parse(args) {
            Ok(Command::Run(a)) => a,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let a = run_args(&[]);
        assert_eq!(
            a.ini,
            PathBuf::from("/usr/local/lib/chatmaild/chatmail.ini")
        );
        assert_eq!((a.days, a.min_login_age, a.maxnum), (0, 0, None));
        assert_eq!((a.mdir, a.textfile, a.legacy_metrics), (None, None, None));
    }

    #[test]
    fn all_options() {
        let a = run_args(&[
            "c.ini",
            "--days",
            "2",
            "--min-login-age=3",
            "--mdir",
            "cur",
            "--maxnum",
            "7",
            "--textfile",
            "/t",
            "--legacy-metrics",
            "/l",
        ]);
        assert_eq!(a.ini, PathBuf::from("c.ini"));
        assert_eq!((a.days, a.min_login_age, a.maxnum), (2, 3, Some(7)));
        assert_eq!(a.mdir.as_deref(), Some("cur"));
        assert_eq!(a.textfile, Some(PathBuf::from("/t")));
        assert_eq!(a.legacy_metrics, Some(PathBuf::from("/l")));
    }

    #[test]
    fn legacy_metrics_optional_value() {
        let a = run_args(&["--legacy-metrics"]);
        assert_eq!(a.legacy_metrics, Some(PathBuf::from(LEGACY_METRICS_PATH)));
        let a = run_args(&["--legacy-metrics", "--days", "1"]);
        assert_eq!(a.legacy_metrics, Some(PathBuf::from(LEGACY_METRICS_PATH)));
        assert_eq!(a.days, 1);
        let a = run_args(&["--legacy-metrics=/x", "c.ini"]);
        assert_eq!(a.legacy_metrics, Some(PathBuf::from("/x")));
        assert_eq!(a.ini, PathBuf::from("c.ini"));
        let a = run_args(&["--leg", "/y"]);
        assert_eq!(a.legacy_metrics, Some(PathBuf::from("/y")));
    }

    #[test]
    fn errors() {
        for bad in [
            &["a", "b"][..],
            &["--m", "x"],
            &["--days"],
            &["--days", "x"],
            &["--nope"],
            &["-v"],
        ] {
            let e = parse(bad).expect_err(&format!("{bad:?}"));
            assert_eq!(e.exit_code(), 64);
        }
        assert!(matches!(parse(&["--help"]), Ok(Command::Help)));
    }
}
