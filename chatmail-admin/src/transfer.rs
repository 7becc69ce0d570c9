//! `export` and `import`: accounts as JSON lines, to move a relay or restore one.
//!
//! The format (version 1) is one JSON object per line. The first line is the header
//! `{"chatmail_admin_export": 1, "mail_domain": "<domain>"}`; every further line is one
//! account:
//!
//! ```text
//! {"addr": "…", "password": "{SHA512-CRYPT}$6$…", "enforce_e2ee": true,
//!  "last_login": 1700000000, "blocked": false, "metadata": {"devicetoken": {…}}}
//! ```
//!
//! `password` is the password file verbatim (a Dovecot `{SCHEME}` hash), `last_login` the
//! file's mtime in Unix seconds (or null), `metadata` the content of `metadata.json` (or
//! null). Messages are not part of it. Import builds each account in the state directory's
//! `tmp/` and renames it into place, so an account appears whole or not at all; it never
//! replaces an existing account, lifts the address's tombstone (the operator restores it),
//! and refuses every line whose address doveauth could not have created.

use std::fs;
use std::io::{BufRead, Write};
use std::path::Path;

use chatmaild::User;
use chatmaild::fs::{Durability, write_atomic};
use serde_json::{Value, json};

use crate::Error;
use crate::account::{Relay, read_metadata};
use crate::progress::Progress;

/// The header key and format version.
pub const FORMAT_KEY: &str = "chatmail_admin_export";

/// The format version written and read.
pub const FORMAT_VERSION: u64 = 1;

/// Longest password hash accepted by `import`.
pub const MAX_HASH_LEN: usize = 1024;

/// Writes every account to `out`; returns how many.
pub fn export(relay: &Relay, out: &mut dyn Write, progress: &mut Progress) -> Result<usize, Error> {
    let header = json!({FORMAT_KEY: FORMAT_VERSION, "mail_domain": relay.config.mail_domain});
    let mut count = 0;
    let write_err = |e| Error::io("-", e);
    writeln!(out, "{header}").map_err(write_err)?;
    let addresses = relay.addresses()?;
    progress.set_total(addresses.len());
    for addr in addresses {
        progress.tick();
        let user = relay.user(&addr)?;
        let Some(password) = user.password()? else {
            continue;
        };
        let line = json!({
            "addr": addr,
            "password": password,
            "enforce_e2ee": !user.incoming_cleartext_ok(),
            "last_login": user.last_login(),
            "blocked": user.is_blocked(),
            "metadata": read_metadata(&user),
        });
        writeln!(out, "{line}").map_err(write_err)?;
        count += 1;
    }
    out.flush().map_err(write_err)?;
    Ok(count)
}

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// Accounts created.
    pub created: usize,
    /// Accounts that existed and were left alone.
    pub existing: usize,
    /// Lines refused, with their line number and reason (for stderr).
    pub refused: Vec<(usize, String)>,
}

/// Reads an export from `input` and creates its accounts.
pub fn import(
    relay: &Relay,
    input: &mut dyn BufRead,
    progress: &mut Progress,
) -> Result<Imported, Error> {
    let mut result = Imported::default();
    let mut lines = input.lines().enumerate();
    let header = match lines.next() {
        Some((_, line)) => line.map_err(|e| Error::io("-", e))?,
        None => return Err(Error::Refused("empty import: no header line".into())),
    };
    let header: Value = serde_json::from_str(&header)
        .map_err(|_| Error::Refused("line 1: not an export header".into()))?;
    if header.get(FORMAT_KEY).and_then(Value::as_u64) != Some(FORMAT_VERSION) {
        return Err(Error::Refused(format!(
            "line 1: not a version {FORMAT_VERSION} export header"
        )));
    }
    relay.registry.clean_leftovers();
    for (idx, line) in lines {
        let lineno = idx + 1;
        let line = line.map_err(|e| Error::io("-", e))?;
        if line.trim().is_empty() {
            continue;
        }
        progress.tick();
        match import_line(relay, &line) {
            Ok(true) => result.created += 1,
            Ok(false) => result.existing += 1,
            Err(Error::Refused(why)) => result.refused.push((lineno, why)),
            Err(e) => return Err(e),
        }
    }
    Ok(result)
}

/// One account of an export, checked.
struct Account {
    addr: String,
    password: String,
    enforce_e2ee: bool,
    blocked: bool,
    last_login: Option<i64>,
    metadata: Option<String>,
}

/// Reads one account line, its address first; every problem is a [`Error::Refused`]
/// naming the field.
fn parse_account(relay: &Relay, line: &str) -> Result<(User, Account), Error> {
    let refuse = |why: &str| Error::Refused(why.to_owned());
    let v: Value = serde_json::from_str(line).map_err(|_| refuse("not JSON"))?;
    let addr = v
        .get("addr")
        .and_then(Value::as_str)
        .ok_or_else(|| refuse("no addr"))?;
    let user = relay.user(addr)?;
    let password = v
        .get("password")
        .and_then(Value::as_str)
        .filter(|p| valid_hash(p))
        .ok_or_else(|| refuse("password is not a Dovecot {SCHEME} hash"))?;
    let flag = |key: &str| v.get(key).and_then(Value::as_bool).unwrap_or(false);
    let last_login = match v.get("last_login") {
        None | Some(Value::Null) => None,
        Some(t) => Some(
            t.as_i64()
                .ok_or_else(|| refuse("last_login is not an integer"))?,
        ),
    };
    let metadata = match v.get("metadata") {
        None | Some(Value::Null) => None,
        Some(m @ Value::Object(_)) => Some(m.to_string()),
        Some(_) => return Err(refuse("metadata is not an object")),
    };
    let account = Account {
        addr: addr.to_owned(),
        password: password.to_owned(),
        enforce_e2ee: flag("enforce_e2ee"),
        blocked: flag("blocked"),
        last_login,
        metadata,
    };
    Ok((user, account))
}

/// Imports one account line; `Ok(false)` if the account exists.
fn import_line(relay: &Relay, line: &str) -> Result<bool, Error> {
    let (user, account) = parse_account(relay, line)?;
    if user.password()?.is_some() {
        return Ok(false);
    }
    let stage = chatmaild::fs::temp_path(&relay.registry.state_subdir("tmp")?.join("import"));
    fs::create_dir(&stage).map_err(|e| Error::io(&stage, e))?;
    let result = stage_account(relay, &stage, &account).and_then(|()| {
        relay.registry.remove_tombstone(&account.addr)?;
        // An empty directory (a login that never got its password) is replaced; a non-empty
        // one means someone else is creating the account right now.
        match fs::rename(&stage, user.maildir()) {
            Ok(()) => Ok(true),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::DirectoryNotEmpty | std::io::ErrorKind::AlreadyExists
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(Error::io(user.maildir(), e)),
        }
    });
    let _ = fs::remove_dir_all(&stage);
    result
}

/// Writes the account's files into the directory `stage`, owned like the daemons' files
/// and synced, so that one rename makes the whole account appear.
fn stage_account(relay: &Relay, stage: &Path, account: &Account) -> Result<(), Error> {
    let mut files = vec![];
    if account.enforce_e2ee {
        files.push(("enforceE2EEincoming", ""));
    }
    if account.blocked {
        files.push(("blocked", ""));
    }
    if let Some(m) = &account.metadata {
        files.push(("metadata.json", m.as_str()));
    }
    files.push(("password", account.password.as_str()));
    for (name, content) in &files {
        let path = stage.join(name);
        write_atomic(&path, content.as_bytes(), Durability::Rename)?;
        relay.own(&path)?;
    }
    if let Some(t) = account.last_login {
        set_mtime(&stage.join("password"), t)?;
    }
    fs::File::open(stage)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(stage, e))?;
    relay.own(stage)
}

/// A password hash as Dovecot stores it: `{SCHEME}` then printable ASCII, one line.
fn valid_hash(p: &str) -> bool {
    p.len() <= MAX_HASH_LEN
        && p.starts_with('{')
        && p.find('}').is_some_and(|i| i > 1 && i + 1 < p.len())
        && p.bytes().all(|b| b.is_ascii_graphic())
}

fn set_mtime(path: &Path, secs: i64) -> Result<(), Error> {
    use std::time::{Duration, UNIX_EPOCH};
    let when = if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    };
    let file = fs::File::options()
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.set_times(fs::FileTimes::new().set_modified(when).set_accessed(when))
        .map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes() {
        for (h, ok) in [
            ("{SHA512-CRYPT}$6$abc$def", true),
            ("{ARGON2ID}$argon2id$v=19$m=1", true),
            ("{PLAIN}x", true),
            ("{}x", false),
            ("{SHA512-CRYPT}", false),
            ("$6$abc", false),
            ("{X}a b", false),
            ("{X}a\nb", false),
            ("", false),
        ] {
            assert_eq!(valid_hash(h), ok, "{h:?}");
        }
        assert!(!valid_hash(&format!("{{X}}{}", "a".repeat(MAX_HASH_LEN))));
    }
}
