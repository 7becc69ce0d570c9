//! The command line: parsing (pure, [`parse`]) and running one command ([`run`]).

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::Error;
use crate::dovecot::{Auth, Dovecot};
use crate::ini::{parse_setting, write_ini};
use crate::layout::{Layout, MAX_INSTANCE};
use crate::relay::Relay;

/// The usage text (the commands and options are in [`crate::manual::PAGE`]).
pub const USAGE: &str =
    "usage: chatmail-render --state DIR --run DIR --socket-root DIR [OPTIONS] COMMAND";

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Print the layout's places.
    Paths,
    /// Print the daemons and their metrics sockets.
    Daemons,
    /// Write a new `chatmail.ini` with these settings.
    Ini(Vec<(String, String)>),
    /// Print every value.
    Vars,
    /// Write every rendered file.
    Render,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The local relay's places.
    pub layout: Layout,
    /// `--templates`.
    pub templates: Option<PathBuf>,
    /// `--dovecot`.
    pub dovecot: Option<Dovecot>,
    /// `--auth`.
    pub auth: Auth,
    /// `--auth-cache-ttl`.
    pub auth_cache_ttl: String,
    /// The command.
    pub command: Command,
}

/// Parses argv (without the program name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Args, Error> {
    use lexopt::prelude::*;
    let usage = |e: lexopt::Error| Error::Usage(e.to_string());
    let mut parser = lexopt::Parser::from_args(args);
    let (mut state, mut run, mut socket_root, mut templates) = (None, None, None, None);
    let (mut dovecot, mut auth, mut ttl) = (None, Auth::Lua, "0".to_owned());
    let mut instance = 1u8;
    let (mut words, mut settings) = (Vec::new(), Vec::new());
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Long("state") => state = Some(PathBuf::from(parser.value().map_err(usage)?)),
            Long("run") => run = Some(PathBuf::from(parser.value().map_err(usage)?)),
            Long("socket-root") => {
                socket_root = Some(PathBuf::from(parser.value().map_err(usage)?))
            }
            Long("templates") => templates = Some(PathBuf::from(parser.value().map_err(usage)?)),
            Long("dovecot") => {
                let v = parser.value().map_err(usage)?.string().map_err(usage)?;
                dovecot = Some(Dovecot::from_version(&v)?);
            }
            Long("auth") => {
                auth = Auth::parse(&parser.value().map_err(usage)?.string().map_err(usage)?)?
            }
            Long("instance") => {
                let v = parser.value().map_err(usage)?.string().map_err(usage)?;
                instance = v.parse().map_err(|_| bad_instance(&v))?;
            }
            Long("auth-cache-ttl") => {
                ttl = parser.value().map_err(usage)?.string().map_err(usage)?
            }
            Long("set") => {
                let v = parser.value().map_err(usage)?.string().map_err(usage)?;
                settings.push(parse_setting(&v)?);
            }
            Long("help") | Short('h') => return Err(Error::Usage(String::new())),
            Value(v) => words.push(v.string().map_err(usage)?),
            other => return Err(usage(other.unexpected())),
        }
    }
    let command = match (words.as_slice(), settings.is_empty()) {
        ([w], true) if w == "paths" => Command::Paths,
        ([w], true) if w == "daemons" => Command::Daemons,
        ([w], _) if w == "ini" => Command::Ini(settings),
        ([w], true) if w == "vars" => Command::Vars,
        ([w], true) if w == "render" => Command::Render,
        ([w], false) if w != "ini" => return Err(Error::Usage("--set is for ini only".into())),
        _ => {
            return Err(Error::Usage(format!(
                "unknown command: {}",
                words.join(" ")
            )));
        }
    };
    let need = |v: Option<PathBuf>, name: &str| {
        v.ok_or_else(|| Error::Usage(format!("--{name} is required")))
    };
    let layout = Layout::new(
        need(state, "state")?,
        need(run, "run")?,
        need(socket_root, "socket-root")?,
    )
    .instance(instance)
    .ok_or_else(|| bad_instance(&instance.to_string()))?;
    if matches!(command, Command::Ini(_) | Command::Render) && templates.is_none() {
        return Err(Error::Usage(
            "--templates is required for ini and render".into(),
        ));
    }
    Ok(Args {
        layout,
        templates,
        dovecot,
        auth,
        auth_cache_ttl: ttl,
        command,
    })
}

/// `--instance` outside 1..=[`MAX_INSTANCE`].
fn bad_instance(value: &str) -> Error {
    Error::Usage(format!(
        "--instance {value:?}: expected a number from 1 to {MAX_INSTANCE}"
    ))
}

/// Prints `name=value` lines.
fn print_values<'a>(
    out: &mut impl Write,
    values: impl IntoIterator<Item = (&'a str, String)>,
) -> Result<(), Error> {
    for (name, value) in values {
        writeln!(out, "{name}={value}").map_err(|e| chatmaild::Error::io("stdout", e))?;
    }
    Ok(())
}

/// Runs the command of `args`, printing to `out`.
pub fn run(args: Args, out: &mut impl Write) -> Result<(), Error> {
    let templates = args.templates.unwrap_or_default();
    let relay = |args_layout: Layout| -> Result<Relay, Error> {
        let dovecot = match args.dovecot {
            Some(d) => d,
            None => Dovecot::installed()?,
        };
        Relay::load(args_layout, dovecot, args.auth, &args.auth_cache_ttl)
    };
    match args.command {
        Command::Paths => print_values(
            out,
            args.layout
                .paths()
                .into_iter()
                .map(|(n, p)| (n, p.display().to_string())),
        ),
        Command::Daemons => {
            for (name, socket) in args.layout.daemons() {
                let socket = socket.map_or_else(|| "-".to_owned(), |s| s.display().to_string());
                writeln!(out, "{name}\t{socket}").map_err(|e| chatmaild::Error::io("stdout", e))?;
            }
            Ok(())
        }
        Command::Ini(settings) => write_ini(&templates, &args.layout, &settings),
        Command::Vars => print_values(out, relay(args.layout)?.values()?),
        Command::Render => relay(args.layout)?.write(&templates),
    }
}

/// The whole program after argv.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let result = parse(args).and_then(|a| run(a, &mut std::io::stdout().lock()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `--help` (see `parse`).
        Err(Error::Usage(m)) if m.is_empty() => crate::manual::PAGE.print_help(),
        Err(e) => {
            eprintln!("chatmail-render: {e}");
            if let Error::Usage(_) = e {
                eprintln!("{}", crate::manual::PAGE.help());
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// The template directory of the repository this crate is built in (tests and tools that
/// run from a checkout).
pub fn repo_templates() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../relay")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Args, Error> {
        parse(args.iter().map(OsString::from))
    }

    const DIRS: [&str; 6] = ["--state", "/s", "--run", "/r", "--socket-root", "/x"];

    #[test]
    fn command_lines() {
        let a = p(&[&DIRS[..], &["paths"]].concat()).unwrap();
        assert_eq!(a.command, Command::Paths);
        assert_eq!(a.layout, Layout::new("/s", "/r", "/x"));
        let a = p(&[
            &DIRS[..],
            &["--templates", "/t", "ini", "--set", "a=1", "--set=b=2"],
        ]
        .concat())
        .unwrap();
        assert_eq!(
            a.command,
            Command::Ini(vec![("a".into(), "1".into()), ("b".into(), "2".into())])
        );
        let a = p(&[
            &DIRS[..],
            &[
                "--dovecot",
                "2.4.1",
                "--auth",
                "lua",
                "--auth-cache-ttl",
                "60s",
                "vars",
            ],
        ]
        .concat())
        .unwrap();
        assert_eq!(
            (a.dovecot, a.auth_cache_ttl.as_str()),
            (Some(Dovecot::V24), "60s")
        );
        let a = p(&[&DIRS[..], &["--instance", "2", "paths"]].concat()).unwrap();
        assert_eq!(a.layout, Layout::new("/s", "/r", "/x").instance(2).unwrap());
        for bad in [
            &[&DIRS[..], &[]].concat()[..],
            &[&DIRS[..], &["frobnicate"]].concat(),
            &[&DIRS[..], &["paths", "vars"]].concat(),
            &[&DIRS[..], &["vars", "--set", "a=1"]].concat(),
            &[&DIRS[..], &["render"]].concat(),
            &[&DIRS[..], &["--auth", "ldap", "vars"]].concat(),
            &[&DIRS[..], &["--bogus", "vars"]].concat(),
            &[&DIRS[..], &["--instance", "0", "vars"]].concat(),
            &[&DIRS[..], &["--instance", "255", "vars"]].concat(),
            &[&DIRS[..], &["--instance", "two", "vars"]].concat(),
            &["--state", "/s", "paths"],
        ] {
            assert_eq!(p(bad).map_err(|e| e.exit_code()).err(), Some(64), "{bad:?}");
        }
        // A Dovecot the templates do not serve is no usage error.
        assert_eq!(
            p(&[&DIRS[..], &["--dovecot", "2.2.36", "vars"]].concat())
                .unwrap_err()
                .exit_code(),
            1
        );
    }
}
