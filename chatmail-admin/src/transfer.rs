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
//! null). Messages are not part of it; a blocked account's hash is its moved-aside
//! password file. Import builds each account in the state directory's `tmp/` and renames
//! it into place, so an account appears whole or not at all; it never replaces an existing
//! account (a directory that holds only what a refused login left is replaced), lifts the
//! address's tombstone once the account exists (the operator restores it), and refuses
//! every line whose address doveauth could not have created.
//!
//! Export reads only regular files with a single link ([`chatmaild::dir::Dir::read_file`]):
//! an account whose password or `metadata.json` is a link to a file elsewhere is skipped
//! with a warning, never copied.

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::path::Path;

use chatmaild::dir::Dir;
use chatmaild::fs::{Durability, FileLock};
use chatmaild::mailbox::{Locked, Mailbox};
use chatmaild::user::{BLOCKED, ENFORCE_E2EE, METADATA, PASSWORD, PASSWORD_LOCK};
use serde_json::{Value, json};

use crate::Error;
use crate::progress::Progress;
use crate::relay::{LOCK_TIMEOUT, Relay};

/// The header key and format version.
pub const FORMAT_KEY: &str = "chatmail_admin_export";

/// The format version written and read.
pub const FORMAT_VERSION: u64 = 1;

/// Longest password hash accepted by `import`.
pub const MAX_HASH_LEN: usize = 1024;

/// What an export did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Exported {
    /// Accounts written.
    pub count: usize,
    /// Accounts left out, with the reason (for stderr).
    pub skipped: Vec<(String, String)>,
}

/// Writes every account to `out`.
pub fn export(
    relay: &Relay,
    out: &mut dyn Write,
    progress: &mut Progress,
) -> Result<Exported, Error> {
    let header = json!({FORMAT_KEY: FORMAT_VERSION, "mail_domain": relay.config.mail_domain});
    let mut done = Exported::default();
    let write_err = |e| Error::io("-", e);
    writeln!(out, "{header}").map_err(write_err)?;
    let addresses = relay.addresses()?;
    progress.set_total(addresses.len());
    for addr in addresses {
        progress.tick();
        match export_line(relay, &addr) {
            Ok(Some(line)) => {
                writeln!(out, "{line}").map_err(write_err)?;
                done.count += 1;
            }
            Ok(None) => {}
            Err(e) => done.skipped.push((addr, e.to_string())),
        }
    }
    out.flush().map_err(write_err)?;
    Ok(done)
}

/// One account's export line; `None` if it went away meanwhile.
fn export_line(relay: &Relay, addr: &str) -> Result<Option<Value>, Error> {
    let Some(mailbox) = relay.mailbox(addr)? else {
        return Ok(None);
    };
    let Some(account) = mailbox.account()? else {
        return Ok(None);
    };
    let metadata = match mailbox.metadata()? {
        Some(bytes) => serde_json::from_slice::<Value>(&bytes).ok(),
        None => None,
    };
    Ok(Some(json!({
        "addr": addr,
        "password": account.hash,
        "enforce_e2ee": mailbox.enforces_e2ee(),
        "last_login": mailbox.last_login(),
        "blocked": account.blocked,
        "metadata": metadata,
    })))
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
            // One account's trouble (a link where its mailbox should be, a busy lock) is
            // that line's refusal; the other lines go on.
            Err(e) => result.refused.push((lineno, e.to_string())),
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
fn parse_account(relay: &Relay, line: &str) -> Result<Account, Error> {
    let refuse = |why: &str| Error::Refused(why.to_owned());
    let v: Value = serde_json::from_str(line).map_err(|_| refuse("not JSON"))?;
    let addr = v
        .get("addr")
        .and_then(Value::as_str)
        .ok_or_else(|| refuse("no addr"))?;
    relay.user(addr)?;
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
    Ok(account)
}

/// How often an import looks at the address again when a first login or another command
/// changed it meanwhile.
const PLACE_ATTEMPTS: usize = 5;

/// Imports one account line; `Ok(false)` if the account exists.
fn import_line(relay: &Relay, line: &str) -> Result<bool, Error> {
    let account = parse_account(relay, line)?;
    let tmp = relay
        .registry
        .state_subdir("tmp", true)?
        .ok_or_else(|| Error::Refused("no state directory".into()))?;
    let stage = chatmaild::fs::temp_path(Path::new("import")).into_os_string();
    let result = tmp
        .open_or_create_dir(&stage)
        .map_err(|e| Error::io(tmp.join(&stage), e))
        .and_then(|dir| stage_account(&dir, &account))
        .and_then(|lock| place(relay, &tmp, &stage, &account.addr, &lock));
    let _ = tmp.remove_tree(&stage);
    result
}

/// Moves the staged account into place, holding its `password.lock` (`lock`, which becomes
/// the account's with the rename), and only then lifts the tombstone: the address is never
/// without both. An existing account stays (`false`); a directory that holds only what a
/// refused first login left is replaced; one that holds anything else is refused.
fn place(
    relay: &Relay,
    tmp: &Dir,
    stage: &OsString,
    addr: &str,
    _lock: &FileLock,
) -> Result<bool, Error> {
    let root = relay.root()?;
    for _ in 0..PLACE_ATTEMPTS {
        let moved_leftover = match Mailbox::open(root, addr)? {
            None => None,
            Some(existing) => match replace_leftover(relay, &existing)? {
                Replace::Existing => return Ok(false),
                Replace::Again => continue,
                Replace::Moved(trash) => Some(trash),
            },
        };
        match tmp.rename(stage, root, addr, false) {
            Ok(()) => {
                root.sync().map_err(|e| Error::io(root.path(), e))?;
                relay.registry.remove_tombstone(addr)?;
                if let Some((trash, name)) = moved_leftover {
                    let _ = trash.remove_tree(&name);
                }
                return Ok(true);
            }
            // A first login made the directory meanwhile: look again.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(root.join(addr), e)),
        }
    }
    Err(Error::Refused(format!(
        "{addr} keeps changing while it is imported; try again"
    )))
}

/// What to do with a directory already under the address.
enum Replace {
    /// It is an account: leave it.
    Existing,
    /// It changed while it was looked at.
    Again,
    /// It was a leftover and is now in the trash (directory and name).
    Moved((Dir, OsString)),
}

/// Moves a leftover of a refused first login out of the way, under its lock.
fn replace_leftover(relay: &Relay, existing: &Mailbox) -> Result<Replace, Error> {
    let root = relay.root()?;
    let addr = existing.addr();
    let _held = match existing.lock(root, LOCK_TIMEOUT)? {
        Locked::Held(lock) => lock,
        Locked::Moved => return Ok(Replace::Again),
        Locked::Busy => {
            return Err(Error::Refused(format!(
                "{addr} is busy (password.lock held)"
            )));
        }
    };
    if existing.has_account() {
        return Ok(Replace::Existing);
    }
    if !existing.is_leftover()? {
        return Err(Error::Refused(format!(
            "{addr}: a directory without a password that holds other files; not replaced"
        )));
    }
    let (trash, name) = relay.registry.trash()?;
    root.rename(addr, &trash, &name, false)
        .map_err(|e| Error::io(root.join(addr), e))?;
    Ok(Replace::Moved((trash, name)))
}

/// Writes the account's files into the directory `stage`, synced, so that one rename makes
/// the whole account appear; returns its `password.lock`, locked. A blocked account's hash
/// goes to `blocked`, as `chatmail-admin block` leaves it.
fn stage_account(stage: &Dir, account: &Account) -> Result<FileLock, Error> {
    let io = |name: &'static str| move |e| Error::io(stage.join(name), e);
    let lock = stage.open_lock(PASSWORD_LOCK).map_err(io(PASSWORD_LOCK))?;
    let lock = FileLock::wait(lock).map_err(io(PASSWORD_LOCK))?;
    let hash_file = if account.blocked { BLOCKED } else { PASSWORD };
    let mut files = vec![];
    if account.enforce_e2ee {
        files.push((ENFORCE_E2EE, ""));
    }
    if let Some(m) = &account.metadata {
        files.push((METADATA, m.as_str()));
    }
    files.push((hash_file, account.password.as_str()));
    for (name, content) in files {
        // The hash file last and synced, with the directory: what the rename makes appear
        // is on disk.
        let durability = if name == hash_file {
            Durability::Fsync
        } else {
            Durability::Rename
        };
        stage
            .write_atomic(name, content.as_bytes(), durability, None)
            .map_err(io(name))?;
    }
    if let Some(t) = account.last_login {
        stage.set_mtime(hash_file, t).map_err(io(hash_file))?;
    }
    Ok(lock)
}

/// A password hash as Dovecot stores it: `{SCHEME}` then printable ASCII, one line.
fn valid_hash(p: &str) -> bool {
    p.len() <= MAX_HASH_LEN
        && p.starts_with('{')
        && p.find('}').is_some_and(|i| i > 1 && i + 1 < p.len())
        && p.bytes().all(|b| b.is_ascii_graphic())
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
