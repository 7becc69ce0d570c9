//! Running one parsed command against the relay.
//!
//! A command runs in two parts: [`run`] does everything inside `mailboxes_dir`, as the
//! tree's owner (see [`crate::cli::main`]); what it leaves to be done outside the tree
//! ([`Outside`]: `nocreate_file`, an export file) is done afterwards by [`finish`], as the
//! user who started the command. Every command says what it did in one line on stdout
//! (export to stdout says it on stderr) and never prints a password hash or a token it did
//! not just create.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use chatmaild::Config;
use chatmaild::dir::Dir;
use chatmaild::fs::Durability;
use chatmaild::privileges::Afterwards;
use chatmaild::registry::RegistrationMode;
use chatmaild::user::DAY;
use chatmaild::wall_time::unix_seconds as now;

use crate::Error;
use crate::account::random_password;
use crate::cli::Args;
use crate::progress::Progress;
use crate::relay::{Relay, day};
use crate::transfer;

pub(crate) fn print(out: &mut dyn Write, text: &str) -> Result<(), Error> {
    writeln!(out, "{text}").map_err(|e| Error::io("-", e))
}

/// What a command leaves to be done outside the tree, after the work inside it.
#[derive(Debug)]
pub enum Outside {
    /// Nothing.
    Nothing,
    /// `registration MODE`: `nocreate_file` made (`true`) or removed; the mode to report.
    Nocreate(bool, RegistrationMode),
    /// `export FILE`: the export to write there, and how many accounts it holds.
    Export {
        /// The file named on the command line.
        file: PathBuf,
        /// Its content.
        bytes: Vec<u8>,
        /// Accounts in it.
        count: usize,
    },
}

/// Whether the command may make `mailboxes_dir` when it does not exist yet.
pub fn creates_tree(a: &Args) -> bool {
    let words: Vec<&str> = a.words.iter().map(String::as_str).collect();
    matches!(
        words.as_slice(),
        ["create", _] | ["import", ..] | ["invite", "create"] | ["registration", "invite-only"]
    )
}

/// Whether the command writes outside the tree after its work inside it (so the user who
/// started it must keep its identity for that).
pub fn afterwards(a: &Args) -> Afterwards {
    let words: Vec<&str> = a.words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["export", file] if *file != "-" => Afterwards::WritesOutside,
        ["registration", mode] if *mode != "status" => Afterwards::WritesOutside,
        _ => Afterwards::Nothing,
    }
}

/// Runs the part of one parsed command inside the tree. `input` is the import file,
/// opened before (stdin otherwise).
pub fn run(
    relay: &Relay,
    a: &Args,
    input: Option<&mut (dyn BufRead + Send)>,
) -> Result<Outside, Error> {
    let out = &mut std::io::stdout().lock();
    let words: Vec<&str> = a.words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["list"] => list(relay, a, out)?,
        ["info", addr] => info(relay, a, addr, out)?,
        ["create", addr] => create(relay, a, addr, out)?,
        ["passwd", addr] => passwd(relay, addr, out)?,
        ["delete", addr] => delete(relay, addr, out)?,
        ["block", addr] => block(relay, addr, true, out)?,
        ["unblock", addr] => block(relay, addr, false, out)?,
        ["registration", "status"] => {
            print(
                out,
                &format!("registration {}", relay.registry.mode().name()),
            )?;
        }
        ["registration", mode] => return registration(relay, mode),
        ["invite", "create"] => invite_create(relay, a, out)?,
        ["invite", "list"] => invite_list(relay, a, out)?,
        ["invite", "revoke", token] => {
            if !relay.registry.revoke_invitation(token)? {
                return Err(Error::Refused("no such invitation".into()));
            }
            print(out, "revoked the invitation")?;
        }
        ["export"] | ["export", "-"] => {
            // Progress lines would break into the export on a terminal.
            let mut progress = if std::io::stdout().is_terminal() {
                Progress::hidden()
            } else {
                Progress::on_terminal("export")
            };
            let done = transfer::export(relay, out, &mut progress)?;
            drop(progress);
            eprintln!("exported {} accounts", done.count);
            skipped(&done)?;
        }
        ["export", file] => {
            let mut bytes = Vec::new();
            let done = transfer::export(relay, &mut bytes, &mut Progress::on_terminal("export"))?;
            skipped(&done)?;
            return Ok(Outside::Export {
                file: PathBuf::from(file),
                bytes,
                count: done.count,
            });
        }
        ["import", ..] => match input {
            Some(input) => import(relay, input, out)?,
            None => import(relay, &mut std::io::stdin().lock(), out)?,
        },
        _ => return Err(Error::Usage("unknown command".into())),
    }
    Ok(Outside::Nothing)
}

/// Reports the accounts an export left out; an error if there were any.
fn skipped(done: &transfer::Exported) -> Result<(), Error> {
    for (addr, why) in &done.skipped {
        eprintln!("chatmail-admin: export: skipped {addr}: {why}");
    }
    if done.skipped.is_empty() {
        Ok(())
    } else {
        Err(Error::Refused(format!(
            "{} accounts not exported",
            done.skipped.len()
        )))
    }
}

/// Does what [`run`] left to be done outside the tree.
pub fn finish(relay: &Relay, outside: Outside) -> Result<(), Error> {
    let out = &mut std::io::stdout().lock();
    match outside {
        Outside::Nothing => Ok(()),
        Outside::Nocreate(on, mode) => {
            relay.registry.set_nocreate(on)?;
            print(out, &format!("registration {}", mode.name()))
        }
        Outside::Export { file, bytes, count } => {
            write_export(&file, &bytes)?;
            print(
                out,
                &format!("exported {count} accounts to {}", file.display()),
            )
        }
    }
}

fn create(relay: &Relay, a: &Args, addr: &str, out: &mut dyn Write) -> Result<(), Error> {
    let given = read_password(false)?;
    let password = given
        .clone()
        .unwrap_or_else(|| random_password(&relay.config));
    relay.create(addr, &password, a.force)?;
    match given {
        Some(_) => print(out, &format!("created {addr}")),
        None => print(out, &format!("created {addr} password {password}")),
    }
}

fn passwd(relay: &Relay, addr: &str, out: &mut dyn Write) -> Result<(), Error> {
    relay.existing(addr)?;
    let password = read_password(true)?
        .ok_or_else(|| Error::Usage("passwd reads the new password from stdin".into()))?;
    relay.passwd(addr, &password)?;
    print(out, &format!("changed the password of {addr}"))
}

fn delete(relay: &Relay, addr: &str, out: &mut dyn Write) -> Result<(), Error> {
    let until = relay.delete(addr)?;
    let tomb = until.map_or_else(
        || "not tombstoned (tombstone_days = 0)".to_owned(),
        |t| format!("tombstoned until {}", day(t)),
    );
    print(out, &format!("deleted {addr}, {tomb}"))
}

fn block(relay: &Relay, addr: &str, blocked: bool, out: &mut dyn Write) -> Result<(), Error> {
    let changed = relay.set_blocked(addr, blocked)?;
    let what = match (blocked, changed) {
        (true, true) => "blocked",
        (true, false) => "already blocked:",
        (false, true) => "unblocked",
        (false, false) => "not blocked:",
    };
    print(out, &format!("{what} {addr}"))
}

/// `registration MODE`: the invite-only marker in the tree now, `nocreate_file` outside
/// it afterwards ([`finish`]), so invite-only never passes through open.
fn registration(relay: &Relay, mode: &str) -> Result<Outside, Error> {
    let mode = match mode {
        "open" => RegistrationMode::Open,
        "close" => RegistrationMode::Closed,
        _ => RegistrationMode::InviteOnly,
    };
    if mode != RegistrationMode::Closed {
        relay
            .registry
            .set_invite_only(mode == RegistrationMode::InviteOnly)?;
    }
    Ok(Outside::Nocreate(mode == RegistrationMode::Closed, mode))
}

/// Export to a file: written whole or not at all, readable only by its owner (it holds
/// password hashes), beneath its directory (opened with [`Dir::open_trusted`]) so a link
/// at its name is replaced, never written through.
fn write_export(file: &Path, bytes: &[u8]) -> Result<(), Error> {
    let name = file
        .file_name()
        .ok_or_else(|| Error::Usage(format!("not a file name: {}", file.display())))?;
    let parent = file.parent().filter(|p| !p.as_os_str().is_empty());
    let dir =
        Dir::open_trusted(parent.unwrap_or(Path::new("."))).map_err(|e| Error::io(file, e))?;
    dir.write_atomic(name, bytes, Durability::Fsync, Some(0o600))
        .map_err(|e| Error::io(file, e))
}

fn list(relay: &Relay, a: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let mut infos = Vec::new();
    let addresses = relay.addresses()?;
    let mut progress = Progress::on_terminal("list");
    progress.set_total(addresses.len());
    for addr in addresses {
        progress.tick();
        if let Some(mailbox) = relay.mailbox(&addr)? {
            infos.push(relay.info(&mailbox));
        }
    }
    drop(progress);
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
    let mailbox = relay.existing(addr)?;
    let info = relay.info(&mailbox);
    let queued = relay
        .notifications(addr)
        .map_or(0, |(_, items)| items.len());
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
    let r = transfer::import(relay, input, &mut Progress::on_terminal("import"))?;
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
