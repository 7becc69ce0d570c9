//! Command lines of `chatmail-expire` and `chatmail-quota-expire` (SPEC §7.1, §7.5) and
//! their `main` flows.
//!
//! The flags are those of the reference's `argparse` parsers, including unambiguous
//! prefixes of long options (`--rem` for `--remove`), `--opt=value` and negative numbers as
//! option values. Usage errors exit 64 for `chatmail-expire` and 2 for
//! `chatmail-quota-expire` (Dovecot's `quota_warning` script service only logs it).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chatmaild::Config;

use chatmaild::cli::{
    Command, failures_status, in_tree, parse_int, print_stdout, resolve_long, textfile_path,
    tool_main, usage, write_report,
};
use chatmaild::dir::Dir;
use chatmaild::maildir::parallel::{default_threads, progress_wanted};
use chatmaild::privileges::open_tree;
use chatmaild::wall_time;

use crate::Error;
use crate::expire::{Policy, Stopwatch, Summary};

mod quota;

pub use quota::{QUOTA_USAGE, quota_main};
#[cfg(test)]
use quota::{QuotaArgs, parse_quota_args};

/// Usage text of `chatmail-expire`.
pub const EXPIRE_USAGE: &str = "usage: chatmail-expire [CHATMAIL_INI] [--days DAYS] [--maxnum MAXNUM] [-v] [--remove] [--textfile PATH]";

/// The file name used when `--textfile` names a directory.
pub const TEXTFILE_NAME: &str = "expire.prom";

/// Parsed `chatmail-expire` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpireArgs {
    /// The config file.
    pub ini: PathBuf,
    /// Pretend "now" is this many days earlier.
    pub days: i64,
    /// Only the first N entries of the mailboxes directory (Python slice semantics).
    pub maxnum: Option<i64>,
    /// Print every removal on stderr.
    pub verbose: bool,
    /// Really remove (otherwise a dry run).
    pub remove: bool,
    /// Write the run's figures as a Prometheus textfile here (a directory gets
    /// [`TEXTFILE_NAME`]).
    pub textfile: Option<PathBuf>,
}

/// Parses the arguments of `chatmail-expire` (without the program name).
pub fn parse_expire_args(
    args: impl IntoIterator<Item = OsString>,
) -> Result<Command<ExpireArgs>, Error> {
    use lexopt::Arg;
    let mut parser = lexopt::Parser::from_args(args);
    let mut out = ExpireArgs {
        ini: PathBuf::from(chatmaild::config::DEFAULT_INI),
        days: 0,
        maxnum: None,
        verbose: false,
        remove: false,
        textfile: None,
    };
    let mut ini = None;
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Arg::Short('v') => out.verbose = true,
            Arg::Short('h') => return Ok(Command::Help),
            Arg::Long(name) => {
                let name = resolve_long(name, &["days", "maxnum", "remove", "textfile", "help"])?;
                match name {
                    "days" => {
                        let v = parser.value().map_err(usage)?;
                        out.days = parse_int("--days", &v)?.unwrap_or(0);
                    }
                    "maxnum" => {
                        let v = parser.value().map_err(usage)?;
                        out.maxnum = parse_int("--maxnum", &v)?;
                    }
                    "remove" => out.remove = true,
                    "textfile" => {
                        let v = parser.value().map_err(usage)?;
                        out.textfile = Some(PathBuf::from(v)).filter(|p| !p.as_os_str().is_empty());
                    }
                    _ => return Ok(Command::Help),
                }
            }
            Arg::Value(v) if ini.is_none() => ini = Some(PathBuf::from(v)),
            other => return Err(usage(other.unexpected())),
        }
    }
    if let Some(ini) = ini {
        out.ini = ini;
    }
    Ok(Command::Run(out))
}

/// Loads the config, mapping every failure (missing file included) to a config error.
pub fn load_config(ini: &Path) -> Result<Config, Error> {
    Config::load(ini).map_err(Error::Config)
}

/// The whole `chatmail-expire` program after argv.
pub fn expire_main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    tool_main(&crate::manual::EXPIRE, parse_expire_args(args), expire)
}

/// The tree work of `chatmail-expire`, all beneath `root` (as the tree's owner).
fn expire_tree(
    args: &ExpireArgs,
    config: &Config,
    root: Option<&std::sync::Arc<Dir>>,
    (now, real_now): (f64, f64),
) -> Result<Summary, Error> {
    let mut policy = Policy::new(config, now, real_now, !args.remove, args.verbose);
    if let Some(root) = root {
        policy = policy.in_tree(std::sync::Arc::clone(root));
    }
    let mut stderr = std::io::stderr();
    let summary = crate::expire::run(
        &config.mailboxes_dir,
        root.map(|r| &**r),
        args.maxnum,
        &policy,
        default_threads(),
        progress_wanted(),
        &mut stderr,
    )?;
    if args.remove
        && let Some(root) = root
    {
        let registry =
            chatmaild::registry::Registry::new(config).in_tree(std::sync::Arc::clone(root));
        #[expect(
            clippy::cast_possible_truncation,
            reason = "Unix seconds of today fit an i64"
        )]
        let _ = registry.prune_tombstones(real_now as i64);
        // What a crash of an earlier run (or of chatmail-admin) left in the trash.
        registry.clean_leftovers();
    }
    Ok(summary)
}

fn expire(args: &ExpireArgs) -> Result<ExitCode, Error> {
    let stopwatch = Stopwatch::start();
    let config = load_config(&args.ini)?;
    let real_now = wall_time::now();
    #[expect(clippy::cast_precision_loss, reason = "day counts are far below 2^53")]
    let now = real_now - 86_400.0 * args.days as f64;
    // The tree is opened first, then every step in it runs as its owner; the textfile
    // (outside the tree) is written afterwards by whoever started the run.
    let root = open_tree(&config.mailboxes_dir).map_err(Error::Scan)?;
    let work = || expire_tree(args, &config, root.as_ref(), (now, real_now));
    let summary = in_tree(root.as_deref(), args.textfile.is_some(), work)?;
    if let Some(path) = &args.textfile {
        let text = summary.textfile(wall_time::now(), stopwatch.secs(), !args.remove);
        write_report(&textfile_path(path, TEXTFILE_NAME), &text)?;
    }
    if !print_stdout(&summary.line(stopwatch.secs())) {
        return Ok(ExitCode::FAILURE);
    }
    Ok(failures_status(
        "chatmail-expire",
        summary.failures,
        "read or removed",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expire_args(args: &[&str]) -> Result<Command<ExpireArgs>, Error> {
        parse_expire_args(args.iter().map(OsString::from))
    }

    fn run(args: &[&str]) -> ExpireArgs {
        match expire_args(args) {
            Ok(Command::Run(a)) => a,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn expire_defaults() {
        let a = run(&[]);
        assert_eq!(
            a.ini,
            PathBuf::from("/usr/local/lib/chatmaild/chatmail.ini")
        );
        assert_eq!(
            (a.days, a.maxnum, a.verbose, a.remove),
            (0, None, false, false)
        );
    }

    #[test]
    fn expire_forms() {
        let a = run(&["x.ini", "-v", "--remove", "--days", "3", "--maxnum=10"]);
        assert_eq!(a.ini, PathBuf::from("x.ini"));
        assert_eq!(
            (a.days, a.maxnum, a.verbose, a.remove),
            (3, Some(10), true, true)
        );
        let a = run(&["--rem", "--da", "-2", "--max", " 5 ", "c.ini"]);
        assert_eq!((a.days, a.maxnum, a.remove), (-2, Some(5), true));
        assert_eq!(a.ini, PathBuf::from("c.ini"));
        let a = run(&["--days", "", "--maxnum", ""]);
        assert_eq!((a.days, a.maxnum), (0, None));
    }

    #[test]
    fn expire_errors() {
        for bad in [
            &["a", "b"][..],
            &["--days"],
            &["--days", "x"],
            &["--maxnum", "1.5"],
            &["--bogus"],
            &["-x"],
            &["--remove=yes"],
        ] {
            let err = expire_args(bad).expect_err(&format!("{bad:?}"));
            assert_eq!(err.exit_code(), 64, "{bad:?}");
        }
        assert!(matches!(expire_args(&["-h"]), Ok(Command::Help)));
        assert!(matches!(expire_args(&["--help"]), Ok(Command::Help)));
    }

    #[test]
    fn quota_args() {
        let parse = |a: &[&str]| parse_quota_args(a.iter().map(OsString::from));
        assert_eq!(
            parse(&["350", "/m/a@b"]).unwrap(),
            Command::Run(QuotaArgs {
                target_mb: 350,
                mailbox: "/m/a@b".into()
            })
        );
        assert!(matches!(
            parse(&["-1", "/m"]).unwrap(),
            Command::Run(QuotaArgs { target_mb: -1, .. })
        ));
        assert!(matches!(parse(&["--help"]), Ok(Command::Help)));
        for bad in [
            &[][..],
            &["1"],
            &["x", "/m"],
            &["1", "/m", "extra"],
            &["--x", "1", "/m"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
