//! The command line: parsing (pure, [`parse`]) and running one command ([`run`]).
//!
//! Every command says what it did in one line on stdout (export to stdout says it on
//! stderr) and never prints a password hash or a token it did not just create.

use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use chatmaild::Config;
use chatmaild::config::DEFAULT_INI;
use chatmaild::registry::RegistrationMode;
use chatmaild::user::DAY;

use crate::Error;
use crate::account::{Relay, day, now, random_password};
use crate::transfer;

/// The usage text.
pub const USAGE: &str = "usage: chatmail-admin [--config INI] COMMAND
commands:
  list [--json]                     every account
  info ADDR [--json]                one account, with its queued notifications
  create ADDR [--force]             new account; password from stdin, or a random one is printed
  passwd ADDR                       new password from stdin
  delete ADDR                       remove the account for good and tombstone the address
  block ADDR | unblock ADDR         refuse or allow logins and mail of an account
  registration open|close|invite-only|status
  invite create [--uses N] [--expires DAYS] [--comment TEXT]
  invite list [--json]
  invite revoke TOKEN
  export [FILE|-]                   accounts as JSON lines (default: stdout)
  import [FILE|-]                   accounts from an export (default: stdin)
";

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

/// The whole program after argv.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    // As the services' units (UMask=0077): nothing this writes is for other users.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let result = parse(args).and_then(|a| {
        if a.help {
            print(&mut std::io::stdout(), USAGE.trim_end())?;
            return Ok(());
        }
        let config = Config::load(&a.config).map_err(Error::Config)?;
        run(&Relay::new(config), &a)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatmail-admin: {e}");
            if let Error::Usage(_) = e {
                eprint!("{USAGE}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

fn print(out: &mut dyn Write, text: &str) -> Result<(), Error> {
    writeln!(out, "{text}").map_err(|e| Error::io("-", e))
}

/// Runs one parsed command against `relay`.
pub fn run(relay: &Relay, a: &Args) -> Result<(), Error> {
    let out = &mut std::io::stdout().lock();
    let words: Vec<&str> = a.words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["list"] => list(relay, a, out)?,
        ["info", addr] => info(relay, a, addr, out)?,
        ["create", addr] => {
            let given = read_password(false)?;
            let password = given
                .clone()
                .unwrap_or_else(|| random_password(&relay.config));
            relay.create(addr, &password, a.force)?;
            match given {
                Some(_) => print(out, &format!("created {addr}"))?,
                None => print(out, &format!("created {addr} password {password}"))?,
            }
        }
        ["passwd", addr] => {
            relay.existing(addr)?;
            let password = read_password(true)?
                .ok_or_else(|| Error::Usage("passwd reads the new password from stdin".into()))?;
            relay.passwd(addr, &password)?;
            print(out, &format!("changed the password of {addr}"))?;
        }
        ["delete", addr] => {
            let until = relay.delete(addr)?;
            let tomb = until.map_or_else(
                || "not tombstoned (tombstone_days = 0)".to_owned(),
                |t| format!("tombstoned until {}", day(t)),
            );
            print(out, &format!("deleted {addr}, {tomb}"))?;
        }
        ["block", addr] => {
            let changed = relay.set_blocked(addr, true)?;
            let what = if changed {
                "blocked"
            } else {
                "already blocked:"
            };
            print(out, &format!("{what} {addr}"))?;
        }
        ["unblock", addr] => {
            let changed = relay.set_blocked(addr, false)?;
            let what = if changed { "unblocked" } else { "not blocked:" };
            print(out, &format!("{what} {addr}"))?;
        }
        ["registration", "status"] => {
            print(
                out,
                &format!("registration {}", relay.registry.mode().name()),
            )?;
        }
        ["registration", mode] => {
            let mode = match *mode {
                "open" => RegistrationMode::Open,
                "close" => RegistrationMode::Closed,
                _ => RegistrationMode::InviteOnly,
            };
            relay.registry.set_mode(mode)?;
            print(
                out,
                &format!("registration {}", relay.registry.mode().name()),
            )?;
        }
        ["invite", "create"] => invite_create(relay, a, out)?,
        ["invite", "list"] => invite_list(relay, a, out)?,
        ["invite", "revoke", token] => {
            if !relay.registry.revoke_invitation(token)? {
                return Err(Error::Refused("no such invitation".into()));
            }
            print(out, "revoked the invitation")?;
        }
        ["export"] | ["export", "-"] => {
            let n = transfer::export(relay, out)?;
            eprintln!("exported {n} accounts");
        }
        ["export", file] => {
            let mut buf = Vec::new();
            let n = transfer::export(relay, &mut buf)?;
            let path = PathBuf::from(file);
            chatmaild::fs::write_atomic_mode(
                &path,
                &buf,
                chatmaild::fs::Durability::Fsync,
                Some(0o600),
            )?;
            print(out, &format!("exported {n} accounts to {file}"))?;
        }
        ["import"] | ["import", "-"] => import(relay, &mut std::io::stdin().lock(), out)?,
        ["import", file] => {
            let f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
            import(relay, &mut std::io::BufReader::new(f), out)?;
        }
        _ => return Err(Error::Usage("unknown command".into())),
    }
    Ok(())
}

fn list(relay: &Relay, a: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let infos: Vec<_> = relay
        .addresses()?
        .iter()
        .map(|addr| relay.user(addr).map(|u| relay.info(&u)))
        .collect::<Result<_, _>>()?;
    if a.json {
        let list: Vec<_> = infos.iter().map(|i| i.to_json()).collect();
        print(out, &serde_json::Value::Array(list).to_string())?;
    } else {
        for i in &infos {
            let last = i.last_login.map_or_else(|| "-".into(), day);
            print(
                out,
                &format!(
                    "{}\tlast_login={last}\tbytes={}\tmessages={}\ttokens={}\te2ee={}\tblocked={}",
                    i.addr, i.bytes, i.messages, i.tokens, i.enforce_e2ee, i.blocked
                ),
            )?;
        }
    }
    Ok(())
}

fn info(relay: &Relay, a: &Args, addr: &str, out: &mut dyn Write) -> Result<(), Error> {
    let user = relay.existing(addr)?;
    let info = relay.info(&user);
    let queued = relay.notifications(addr).len();
    if a.json {
        let mut v = info.to_json();
        if let Some(o) = v.as_object_mut() {
            o.insert("notifications".into(), queued.into());
        }
        print(out, &v.to_string())?;
    } else {
        let v = info.to_json();
        let fields = [
            "addr",
            "last_login",
            "bytes",
            "messages",
            "tokens",
            "enforce_e2ee",
            "blocked",
        ];
        for key in fields {
            let value = match v.get(key) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            print(out, &format!("{key}: {value}"))?;
        }
        print(out, &format!("notifications: {queued}"))?;
    }
    Ok(())
}

fn invite_create(relay: &Relay, a: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let t = now();
    let expires = a.expires.map(|d| t + i64::from(d) * DAY);
    let inv = relay.registry.create_invitation(
        a.uses.unwrap_or(1),
        expires,
        a.comment.as_deref().unwrap_or(""),
        t,
    )?;
    let until = inv.expires.map_or_else(|| "never".into(), day);
    print(
        out,
        &format!(
            "invitation {} uses {} expires {until} {}",
            inv.token,
            inv.uses_left,
            invitation_url(&relay.config, &inv.token)
        ),
    )?;
    Ok(())
}

fn invite_list(relay: &Relay, a: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let all = relay.registry.invitations()?;
    let t = now();
    if a.json {
        let list: Vec<_> = all
            .iter()
            .map(|inv| {
                let mut v = inv.to_json();
                if let Some(o) = v.as_object_mut() {
                    o.insert("token".into(), inv.token.clone().into());
                    o.insert("valid".into(), inv.is_valid(t).into());
                }
                v
            })
            .collect();
        print(out, &serde_json::Value::Array(list).to_string())?;
    } else {
        for inv in &all {
            let until = inv.expires.map_or_else(|| "never".into(), day);
            print(
                out,
                &format!(
                    "{}\tuses_left={}\texpires={until}\tvalid={}\t{}",
                    inv.token,
                    inv.uses_left,
                    inv.is_valid(t),
                    inv.comment
                ),
            )?;
        }
    }
    Ok(())
}

fn import(relay: &Relay, input: &mut dyn BufRead, out: &mut dyn Write) -> Result<(), Error> {
    let r = transfer::import(relay, input)?;
    for (line, why) in &r.refused {
        eprintln!("chatmail-admin: import line {line}: {why}");
    }
    print(
        out,
        &format!(
            "imported {} accounts, {} existed, {} refused",
            r.created,
            r.existing,
            r.refused.len()
        ),
    )?;
    if r.refused.is_empty() {
        Ok(())
    } else {
        Err(Error::Refused(format!("{} lines refused", r.refused.len())))
    }
}

/// The password on stdin (without its line end); `None` when stdin is a terminal or
/// empty and `required` is false.
fn read_password(required: bool) -> Result<Option<String>, Error> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() && !required {
        return Ok(None);
    }
    let mut buf = String::new();
    stdin
        .read_to_string(&mut buf)
        .map_err(|e| Error::io("-", e))?;
    let pw = buf
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&buf);
    Ok((!pw.is_empty()).then(|| pw.to_owned()))
}

/// The `dcaccount:` URL of an invitation: the relay's newemail CGI (`/new`) with the token
/// as the `invite` query parameter.
pub fn invitation_url(config: &Config, token: &str) -> String {
    format!(
        "dcaccount:https://{}/new?invite={token}",
        config.mail_domain_bare
    )
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
