//! Running one parsed command against the relay.
//!
//! Every command says what it did in one line on stdout (export to stdout says it on
//! stderr) and never prints a password hash or a token it did not just create.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;

use chatmaild::Config;
use chatmaild::registry::RegistrationMode;
use chatmaild::user::DAY;

use crate::Error;
use crate::account::{Relay, day, now, random_password};
use crate::cli::Args;
use crate::progress::Progress;
use crate::transfer;

pub(crate) fn print(out: &mut dyn Write, text: &str) -> Result<(), Error> {
    writeln!(out, "{text}").map_err(|e| Error::io("-", e))
}

/// Runs one parsed command against `relay`.
pub fn run(relay: &Relay, a: &Args) -> Result<(), Error> {
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
        ["registration", "status"] => registration(relay, None, out)?,
        ["registration", mode] => registration(relay, Some(mode), out)?,
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
            let n = transfer::export(relay, out, &mut progress)?;
            drop(progress);
            eprintln!("exported {n} accounts");
        }
        ["export", file] => export_to(relay, file, out)?,
        ["import"] | ["import", "-"] => import(relay, &mut std::io::stdin().lock(), out)?,
        ["import", file] => {
            let f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
            import(relay, &mut std::io::BufReader::new(f), out)?;
        }
        _ => return Err(Error::Usage("unknown command".into())),
    }
    Ok(())
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

/// `registration MODE` sets the mode first; both forms print the mode now in force.
fn registration(relay: &Relay, mode: Option<&str>, out: &mut dyn Write) -> Result<(), Error> {
    if let Some(mode) = mode {
        relay.registry.set_mode(match mode {
            "open" => RegistrationMode::Open,
            "close" => RegistrationMode::Closed,
            _ => RegistrationMode::InviteOnly,
        })?;
    }
    print(
        out,
        &format!("registration {}", relay.registry.mode().name()),
    )
}

/// Export to a file: written whole or not at all, readable only by its owner (it holds
/// password hashes).
fn export_to(relay: &Relay, file: &str, out: &mut dyn Write) -> Result<(), Error> {
    let mut buf = Vec::new();
    let n = transfer::export(relay, &mut buf, &mut Progress::on_terminal("export"))?;
    chatmaild::fs::write_atomic_mode(
        &PathBuf::from(file),
        &buf,
        chatmaild::fs::Durability::Fsync,
        Some(0o600),
    )?;
    print(out, &format!("exported {n} accounts to {file}"))
}

fn list(relay: &Relay, a: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let addresses = relay.addresses()?;
    let mut progress = Progress::on_terminal("list");
    progress.set_total(addresses.len());
    let infos: Vec<_> = addresses
        .iter()
        .map(|addr| {
            progress.tick();
            relay.user(addr).map(|u| relay.info(&u))
        })
        .collect::<Result<_, _>>()?;
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
