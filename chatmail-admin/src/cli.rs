//! The command line: parsing (pure, [`parse`]); [`main`] runs one command with
//! [`run`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use chatmaild::Config;
use chatmaild::config::DEFAULT_INI;

use std::io::BufRead;

use chatmaild::privileges::as_owner;

use crate::Error;
use crate::commands::{afterwards, creates_tree, finish, print, run};
use crate::relay::Relay;

/// The usage text (the commands are in [`crate::manual::PAGE`]).
pub const USAGE: &str = "usage: chatmail-admin [--config INI] COMMAND";

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// `--config`.
    pub config: PathBuf,
    /// The command words and operands, in order.
    pub words: Vec<String>,
    /// `--json`.
    pub json: bool,
    /// `--force`.
    pub force: bool,
    /// `--uses`.
    pub uses: Option<u32>,
    /// `--expires`, days.
    pub expires: Option<u32>,
    /// `--comment`.
    pub comment: Option<String>,
    /// `--help`.
    pub help: bool,
}

/// Parses argv (without the program name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Args, Error> {
    use lexopt::prelude::*;
    let usage = |e: lexopt::Error| Error::Usage(e.to_string());
    let mut parser = lexopt::Parser::from_args(args);
    let mut out = Args {
        config: DEFAULT_INI.into(),
        words: Vec::new(),
        json: false,
        force: false,
        uses: None,
        expires: None,
        comment: None,
        help: false,
    };
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Long("config") | Short('c') => out.config = parser.value().map_err(usage)?.into(),
            Long("json") => out.json = true,
            Long("force") => out.force = true,
            Long("uses") => out.uses = Some(parser.value().map_err(usage)?.parse().map_err(usage)?),
            Long("expires") => {
                out.expires = Some(parser.value().map_err(usage)?.parse().map_err(usage)?);
            }
            Long("comment") => {
                out.comment = Some(parser.value().map_err(usage)?.string().map_err(usage)?);
            }
            Long("help") | Short('h') => out.help = true,
            Value(v) => out.words.push(v.string().map_err(usage)?),
            other => return Err(usage(other.unexpected())),
        }
    }
    check_options(&out)?;
    Ok(out)
}

/// Refuses options a command does not take and wrong operand counts.
fn check_options(a: &Args) -> Result<(), Error> {
    if a.help {
        return Ok(());
    }
    let words: Vec<&str> = a.words.iter().map(String::as_str).collect();
    let (operands, json, force, invite_opts) = match words.as_slice() {
        ["list"] => (true, true, false, false),
        ["info", _] => (true, true, false, false),
        ["create", _] => (true, false, true, false),
        ["passwd" | "delete" | "block" | "unblock", _] => (true, false, false, false),
        ["registration", "open" | "close" | "invite-only" | "status"] => {
            (true, false, false, false)
        }
        ["invite", "create"] => (true, false, false, true),
        ["invite", "list"] => (true, true, false, false),
        ["invite", "revoke", _] => (true, false, false, false),
        ["export" | "import"] | ["export" | "import", _] => (true, false, false, false),
        [] => (false, false, false, false),
        _ => {
            return Err(Error::Usage(format!(
                "unknown command or wrong operands: {}",
                words.join(" ")
            )));
        }
    };
    if !operands {
        return Err(Error::Usage("no command given".into()));
    }
    if (a.json && !json)
        || (a.force && !force)
        || (!invite_opts && (a.uses.is_some() || a.expires.is_some() || a.comment.is_some()))
    {
        return Err(Error::Usage(format!(
            "option not valid for {}",
            words.join(" ")
        )));
    }
    if a.uses == Some(0) {
        return Err(Error::Usage("--uses must be at least 1".into()));
    }
    Ok(())
}

/// The file `import FILE` reads, opened by the user who started the command.
fn open_input(a: &Args) -> Result<Option<std::io::BufReader<std::fs::File>>, Error> {
    match a.words.as_slice() {
        [cmd, file] if cmd == "import" && file != "-" => std::fs::File::open(file)
            .map(|f| Some(std::io::BufReader::new(f)))
            .map_err(|e| Error::io(file, e)),
        _ => Ok(None),
    }
}

/// The whole program after argv.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    // As the services' units (UMask=0077): nothing this writes is for other users.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let result = parse(args).and_then(|a| {
        if a.help {
            print(&mut std::io::stdout(), &crate::manual::PAGE.help())?;
            return Ok(());
        }
        let config = Config::load(&a.config).map_err(Error::Config)?;
        // As the user who started the command (root, usually): open mailboxes_dir and the
        // import file. Then the work inside the tree runs as the tree's owner, and what is
        // left outside it (nocreate_file, an export file) is done here again.
        let relay = Relay::open(config, creates_tree(&a))?;
        let mut input = open_input(&a)?;
        let mut work = || {
            let input = input.as_mut().map(|i| i as &mut (dyn BufRead + Send));
            run(&relay, &a, input)
        };
        let outside = match relay.owner() {
            Some(owner) => as_owner(owner, afterwards(&a), work)??,
            None => work()?,
        };
        finish(&relay, outside)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatmail-admin: {e}");
            if let Error::Usage(_) = e {
                eprintln!("{}", crate::manual::PAGE.help());
            }
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Args, Error> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn command_lines() {
        let a = p(&["--config", "/x.ini", "list", "--json"]).unwrap();
        assert_eq!(a.config, PathBuf::from("/x.ini"));
        assert_eq!(a.words, ["list"]);
        assert!(a.json);
        let a = p(&[
            "invite",
            "create",
            "--uses",
            "3",
            "--expires",
            "7",
            "--comment",
            "hi",
        ])
        .unwrap();
        assert_eq!(
            (a.uses, a.expires, a.comment.as_deref()),
            (Some(3), Some(7), Some("hi"))
        );
        for ok in [
            &["info", "a@b", "--json"][..],
            &["create", "a@b", "--force"],
            &["registration", "invite-only"],
            &["export"],
            &["import", "-"],
            &["invite", "revoke", "tok"],
        ] {
            assert!(p(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            &[][..],
            &["frobnicate"],
            &["list", "extra"],
            &["info"],
            &["delete", "a@b", "--json"],
            &["registration", "maybe"],
            &["invite", "create", "--uses", "0"],
            &["invite", "create", "--uses", "many"],
            &["list", "--uses", "3"],
            &["list", "--bogus"],
            &["block"],
        ] {
            assert_eq!(p(bad).map_err(|e| e.exit_code()).err(), Some(64), "{bad:?}");
        }
    }
}
