//! Account state beyond the reference's: tombstones, the registration mode, invitations and
//! the relay-wide creation rate. `chatmail-admin` writes it, doveauth and `chatmail-expire`
//! read and update it.
//!
//! Everything lives in one hidden directory inside `mailboxes_dir`, [`STATE_DIR`], plus the
//! per-account marker `<maildir>/blocked` ([`crate::User::blocked_path`]) and the
//! reference's `/etc/chatmail-nocreate` (`nocreate_file`). The directory name has no `@`,
//! so every service of both implementations that lists mailboxes (doveauth's iterate,
//! `chatmail-expire`, `chatmail-fsreport`) passes over it, and a relay switched back to the
//! reference ignores it. Layout, chosen so that a Dovecot Lua auth script can check it with
//! `io.open` alone:
//!
//! | path below `<mailboxes_dir>/.chatmail-admin/` | content |
//! |---|---|
//! | `tombstones/<addr>` | `<until>\n`, Unix seconds; an empty or unreadable number means forever |
//! | `invite-only` | empty; present: creation needs an invitation |
//! | `invites/<token>` | JSON `{"uses_left": N, "expires": T or null, "created": T, "comment": "…"}` |
//! | `invites.lock` | `flock` file serialising the use of invitations |
//! | `trash/`, `tmp/` | accounts being deleted or imported (renamed in or out atomically) |
//!
//! A Dovecot Lua passdb/userdb that reads password files itself must, for an existing
//! user, answer "unknown user" while `<mailboxes_dir>/<addr>/blocked` exists (passdb and
//! userdb alike, so LMTP refuses mail too). Everything about creation (tombstones,
//! invitations, the rate cap) is decided by doveauth when the script asks it to create the
//! account; a script may skip that request while `tombstones/<addr>` holds no number or
//! one above `os.time()`.
//!
//! Every file is written atomically; files created by root get the owner of
//! `mailboxes_dir`, so the services can still lock and replace them. Nothing is written
//! until an operator uses a feature (or `chatmail-expire` removes an account), so a relay
//! that uses none of this has no state directory.
//!
//! The creation rate cap ([`rate`]) counts in memory: one doveauth process serves all first
//! logins of a relay, and keeping the count off the disk keeps creation from writing a shared
//! file. A restart forgets at most one minute of creations.

use std::fmt;
use std::fs;
use std::io::ErrorKind;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::Error;
use crate::fs::{Durability, FileLock, match_owner, write_atomic, write_atomic_mode};
use crate::user::{DAY, User};

mod invitations;
pub mod rate;
mod tombstones;

pub use invitations::{
    INVITATION_SEPARATOR, Invitation, MAX_TOKEN_LEN, TOKEN_LEN, is_token, new_token,
    split_invitation,
};
pub use rate::{ClientKey, CreationRate, RateLimit, Reservation};

/// The state directory's name inside `mailboxes_dir`.
pub const STATE_DIR: &str = ".chatmail-admin";

/// How new accounts may come into existence by first login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationMode {
    /// Any acceptable first login creates its account.
    Open,
    /// Only a first login whose password carries a valid invitation token.
    InviteOnly,
    /// None: `nocreate_file` exists.
    Closed,
}

impl RegistrationMode {
    /// The name used on the command line and in output.
    pub fn name(self) -> &'static str {
        match self {
            RegistrationMode::Open => "open",
            RegistrationMode::InviteOnly => "invite-only",
            RegistrationMode::Closed => "close",
        }
    }
}

/// Why an account is not created; `Display` is the text after `registration rejected: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The address was deleted or expired and is not free yet.
    Tombstoned(String),
    /// The address belongs to a blocked account.
    Blocked(String),
    /// Invite-only and the password carries no token.
    InvitationRequired,
    /// Invite-only and the token is unknown, used up or expired.
    InvalidInvitation,
    /// Invite-only and the password after the token is shorter than `password_min_length`.
    ShortPassword(usize),
    /// The client or the relay created as many accounts in the last minute as it may.
    RateCap(RateLimit),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Tombstoned(addr) => write!(f, "address is tombstoned: {addr}"),
            Refusal::Blocked(addr) => write!(f, "account is blocked: {addr}"),
            Refusal::InvitationRequired => f.write_str("invitation required"),
            Refusal::InvalidInvitation => f.write_str("invalid invitation"),
            Refusal::ShortPassword(n) => {
                write!(
                    f,
                    "password after the invitation needs at least {n} characters"
                )
            }
            Refusal::RateCap(limit) => limit.fmt(f),
        }
    }
}

/// The account state of one relay.
#[derive(Debug, Clone)]
pub struct Registry {
    mailboxes_dir: PathBuf,
    state: PathBuf,
    nocreate: PathBuf,
    tombstone_secs: i64,
    password_min_length: usize,
    /// The creation rate cap (shared by clones: one count per process).
    rate: CreationRate,
}

impl Registry {
    /// The state of the relay configured by `config`.
    pub fn new(config: &Config) -> Registry {
        Registry::with_nocreate(config, config.nocreate_file.clone())
    }

    /// Like [`Registry::new`] with another nocreate flag file.
    pub fn with_nocreate(config: &Config, nocreate: PathBuf) -> Registry {
        Registry {
            mailboxes_dir: config.mailboxes_dir.clone(),
            state: config.mailboxes_dir.join(STATE_DIR),
            nocreate,
            tombstone_secs: i64::try_from(config.tombstone_days)
                .unwrap_or(i64::MAX)
                .saturating_mul(DAY),
            password_min_length: config.password_min_length,
            rate: CreationRate::new(
                config.max_creations_per_minute,
                config.max_creations_per_minute_total,
            ),
        }
    }

    /// `<mailboxes_dir>/.chatmail-admin`.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// `mailboxes_dir`.
    pub fn mailboxes_dir(&self) -> &Path {
        &self.mailboxes_dir
    }

    /// The nocreate flag file.
    pub fn nocreate_file(&self) -> &Path {
        &self.nocreate
    }

    /// A subdirectory of the state directory, created (owned like `mailboxes_dir`) if needed.
    pub fn state_subdir(&self, name: &str) -> Result<PathBuf, Error> {
        let dir = self.state.join(name);
        if !dir.is_dir() {
            fs::create_dir_all(&self.mailboxes_dir)
                .map_err(|e| Error::io(&self.mailboxes_dir, e))?;
            for d in [&self.state, &dir] {
                match fs::create_dir(d) {
                    Ok(()) => match_owner(d, &self.mailboxes_dir)?,
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(Error::io(d, e)),
                }
            }
        }
        Ok(dir)
    }

    fn lock(&self, name: &str) -> Result<FileLock, Error> {
        let path = self.state_subdir("")?.join(name);
        let lock = FileLock::acquire(&path)?;
        match_owner(&path, &self.mailboxes_dir)?;
        Ok(lock)
    }

    fn write_file(&self, path: &Path, bytes: &[u8], durability: Durability) -> Result<(), Error> {
        write_atomic_mode(path, bytes, durability, Some(0o600))?;
        match_owner(path, &self.mailboxes_dir)
    }

    // ---- registration mode ----

    /// The current mode: closed while `nocreate_file` exists (also one made by hand).
    pub fn mode(&self) -> RegistrationMode {
        if fs::symlink_metadata(&self.nocreate).is_ok() {
            RegistrationMode::Closed
        } else if self.state.join("invite-only").exists() {
            RegistrationMode::InviteOnly
        } else {
            RegistrationMode::Open
        }
    }

    /// Sets the mode. `Closed` only creates `nocreate_file` (and so is undone by removing it
    /// by hand); `Open` and `InviteOnly` remove it.
    pub fn set_mode(&self, mode: RegistrationMode) -> Result<(), Error> {
        let marker = self.state.join("invite-only");
        match mode {
            RegistrationMode::Closed => {
                if fs::symlink_metadata(&self.nocreate).is_err() {
                    write_atomic(&self.nocreate, b"", Durability::Fsync)?;
                }
            }
            RegistrationMode::InviteOnly => {
                self.state_subdir("")?;
                self.write_file(&marker, b"", Durability::Fsync)?;
                remove_if_present(&self.nocreate)?;
            }
            RegistrationMode::Open => {
                remove_if_present(&marker)?;
                remove_if_present(&self.nocreate)?;
            }
        }
        Ok(())
    }

    // ---- creation rate ----

    /// Reserves one creation for `client` at `now` under the rate cap, before anything is
    /// created; commit the reservation once the account exists (see [`rate`]).
    pub fn reserve_creation(
        &self,
        client: Option<IpAddr>,
        now: i64,
    ) -> Result<Reservation, Refusal> {
        self.rate.reserve(client, now).map_err(Refusal::RateCap)
    }

    // ---- the checks of a first login ----

    /// The checks of a first login that write nothing: tombstone, block, invitation. Call
    /// before the creation lock; [`Registry::admit`] repeats what may have changed.
    pub fn precheck(&self, user: &User, password: &str, now: i64) -> Option<Refusal> {
        if let Some(r) = self.state_refusal(user, now) {
            return Some(r);
        }
        if self.mode() == RegistrationMode::InviteOnly {
            let token = match self.invitation_token(password) {
                Ok(token) => token,
                Err(r) => return Some(r),
            };
            match self.invitation(token) {
                Ok(Some(inv)) if inv.is_valid(now) => {}
                _ => return Some(Refusal::InvalidInvitation),
            }
        }
        None
    }

    /// The token of an invite-only first login's password, if the password has the form.
    fn invitation_token<'a>(&self, password: &'a str) -> Result<&'a str, Refusal> {
        let (token, rest) = split_invitation(password).ok_or(Refusal::InvitationRequired)?;
        if rest.chars().count() < self.password_min_length {
            return Err(Refusal::ShortPassword(self.password_min_length));
        }
        Ok(token)
    }

    /// The final checks under the account's `password.lock`, just before the password is
    /// written: tombstone and block again (`chatmail-admin delete` may have run meanwhile),
    /// then the invitation is used up. `None`: create the account. The rate cap is not
    /// checked here: a creation reserves its slot with [`Registry::reserve_creation`]
    /// before it takes the lock, so a refusal by the cap creates nothing.
    pub fn admit(&self, user: &User, password: &str, now: i64) -> Result<Option<Refusal>, Error> {
        if let Some(r) = self.state_refusal(user, now) {
            return Ok(Some(r));
        }
        let invitation = match self.mode() {
            RegistrationMode::InviteOnly => match self.invitation_token(password) {
                Ok(token) => Some(token),
                Err(r) => return Ok(Some(r)),
            },
            _ => None,
        };
        if let Some(token) = invitation
            && !self.consume_invitation(token, now)?
        {
            return Ok(Some(Refusal::InvalidInvitation));
        }
        Ok(None)
    }

    fn state_refusal(&self, user: &User, now: i64) -> Option<Refusal> {
        if self.is_tombstoned(user.addr(), now) {
            return Some(Refusal::Tombstoned(user.addr().to_owned()));
        }
        if user.is_blocked() {
            return Some(Refusal::Blocked(user.addr().to_owned()));
        }
        None
    }

    // ---- trash ----

    /// A fresh path in `trash/` to rename a maildir to.
    pub fn trash_path(&self) -> Result<PathBuf, Error> {
        let dir = self.state_subdir("trash")?;
        Ok(crate::fs::temp_path(&dir.join("account")))
    }

    /// Removes what interrupted deletions left in `trash/` (mailboxes already renamed away:
    /// removable at any time) and imports left in `tmp/` more than an hour ago (younger ones
    /// may belong to an import running right now).
    pub fn clean_leftovers(&self) {
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for (sub, old_only) in [("trash", false), ("tmp", true)] {
            let Ok(entries) = fs::read_dir(self.state.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < hour_ago);
                if old || !old_only {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
    }
}

/// Removes a flag file (or an empty directory made by hand in its place).
fn remove_if_present(path: &Path) -> Result<bool, Error> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) if e.kind() == ErrorKind::IsADirectory => {
            fs::remove_dir(path).map_err(|e| Error::io(path, e))?;
            Ok(true)
        }
        Err(e) => Err(Error::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn setup(extra: &str) -> (tempfile::TempDir, Config, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::parse(&format!(
            "[params]\nmail_domain = c.org\nmailboxes_dir = {}\nnocreate_file = {}\n{extra}",
            dir.path().join("mail").display(),
            dir.path().join("nocreate").display(),
        ))
        .unwrap();
        let registry = Registry::new(&config);
        (dir, config, registry)
    }

    pub(super) const NOW: i64 = 1_700_000_000;

    #[test]
    fn tombstones() {
        let (_dir, config, r) = setup("tombstone_days = 10\n");
        let a = "abcdefghi@c.org";
        assert!(!r.is_tombstoned(a, NOW));
        assert_eq!(r.write_tombstone(a, NOW).unwrap(), Some(NOW + 10 * DAY));
        assert!(r.is_tombstoned(a, NOW + 10 * DAY - 1));
        assert!(!r.is_tombstoned(a, NOW + 10 * DAY));
        assert_eq!(
            fs::read_to_string(r.state_dir().join("tombstones").join(a)).unwrap(),
            format!("{}\n", NOW + 10 * DAY),
            "the format a Lua script reads"
        );
        r.write_tombstone(a, NOW - DAY).unwrap();
        assert_eq!(
            r.tombstone_until(a).unwrap(),
            Some(NOW + 10 * DAY),
            "never shortened"
        );
        fs::write(r.tombstone_path("reserved1@c.org").unwrap(), b"").unwrap();
        assert!(
            r.is_tombstoned("reserved1@c.org", i64::MAX - 1),
            "empty: forever"
        );
        assert_eq!(r.prune_tombstones(NOW + 11 * DAY).unwrap(), 1);
        assert_eq!(r.tombstone_until(a).unwrap(), None);
        assert!(r.tombstone_path("../x@c.org").is_err());
        assert!(r.remove_tombstone("reserved1@c.org").unwrap());
        assert!(!r.remove_tombstone("reserved1@c.org").unwrap());
        let names: Vec<_> = fs::read_dir(&config.mailboxes_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [STATE_DIR], "no name with an @ besides mailboxes");

        let (_dir, _, off) = setup("tombstone_days = 0\n");
        assert_eq!(off.write_tombstone(a, NOW).unwrap(), None);
        assert!(!off.is_tombstoned(a, NOW));
    }

    #[test]
    fn registration_modes() {
        let (dir, _, r) = setup("");
        assert_eq!(r.mode(), RegistrationMode::Open);
        r.set_mode(RegistrationMode::InviteOnly).unwrap();
        assert_eq!(r.mode(), RegistrationMode::InviteOnly);
        r.set_mode(RegistrationMode::Closed).unwrap();
        assert_eq!(r.mode(), RegistrationMode::Closed);
        assert!(dir.path().join("nocreate").exists());
        r.set_mode(RegistrationMode::Open).unwrap();
        assert_eq!(r.mode(), RegistrationMode::Open);
        fs::create_dir(dir.path().join("nocreate")).unwrap();
        assert_eq!(
            r.mode(),
            RegistrationMode::Closed,
            "a hand-made flag counts"
        );
    }

    #[test]
    fn admission() {
        let (_dir, config, r) = setup("max_creations_per_minute_total = 2\n");
        let user = |a: &str| User::new(&config, a).unwrap();
        let (a, b, c) = (
            user("aaaaaaaaa@c.org"),
            user("bbbbbbbbb@c.org"),
            user("ccccccccc@c.org"),
        );
        assert_eq!(r.precheck(&a, "whatever1", NOW), None);
        assert_eq!(r.admit(&a, "whatever1", NOW).unwrap(), None);
        r.reserve_creation(None, NOW).unwrap().commit();
        r.reserve_creation(None, NOW + 30).unwrap().commit();
        let refusal = r.reserve_creation(None, NOW + 59).unwrap_err();
        assert_eq!(refusal, Refusal::RateCap(RateLimit::Total(2)));
        assert_eq!(refusal.to_string(), "more than 2 creations per minute");
        r.reserve_creation(None, NOW + 60)
            .expect("window moved")
            .commit();
        assert_eq!(
            r.admit(&c, "whatever1", NOW + 59).unwrap(),
            None,
            "no cap here"
        );

        r.write_tombstone(a.addr(), NOW).unwrap();
        let refusal = r.precheck(&a, "whatever1", NOW).unwrap();
        assert_eq!(
            refusal.to_string(),
            "address is tombstoned: aaaaaaaaa@c.org"
        );
        b.create_maildir().unwrap();
        fs::write(b.blocked_path(), b"").unwrap();
        assert_eq!(
            r.precheck(&b, "x", NOW),
            Some(Refusal::Blocked(b.addr().into()))
        );

        r.set_mode(RegistrationMode::InviteOnly).unwrap();
        let d = user("ddddddddd@c.org");
        assert_eq!(
            r.precheck(&d, "password1", NOW),
            Some(Refusal::InvitationRequired)
        );
        assert_eq!(
            r.precheck(&d, "abc:password1", NOW),
            Some(Refusal::InvalidInvitation)
        );
        assert_eq!(
            r.precheck(&d, "abc:pass", NOW),
            Some(Refusal::ShortPassword(9))
        );
        let inv = r.create_invitation(1, None, "", NOW).unwrap();
        let pw = format!("{}:password1", inv.token);
        assert_eq!(r.precheck(&d, &pw, NOW + 120), None);
        assert_eq!(r.admit(&d, &pw, NOW + 120).unwrap(), None);
        let e = user("eeeeeeeee@c.org");
        assert_eq!(
            r.precheck(&e, &pw, NOW + 120),
            Some(Refusal::InvalidInvitation)
        );
        assert_eq!(
            r.admit(&e, &pw, NOW + 120).unwrap(),
            Some(Refusal::InvalidInvitation),
            "one use, one account"
        );
    }
}
