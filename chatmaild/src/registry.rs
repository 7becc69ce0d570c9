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
//! Blocking needs nothing from a Dovecot Lua passdb/userdb that reads password files
//! itself: `chatmail-admin block` renames `<addr>/password` to `<addr>/blocked`, so such a
//! script finds no password and asks doveauth, which refuses a blocked address. A script
//! that also answers "unknown user" while `blocked` exists (as the relay's does) skips that
//! request and honours a marker made by hand. Everything about creation (tombstones,
//! invitations, the rate cap) is decided by doveauth when the script asks it to create the
//! account; a script may skip that request while `tombstones/<addr>` holds no number or
//! one above `os.time()`.
//!
//! Every file is written atomically, beneath a handle of the state directory, never through
//! a link ([`crate::dir`]). The services open `mailboxes_dir` by its path for each use; the
//! tools give the registry the handle they opened before switching to the tree's owner
//! ([`Registry::in_tree`]), so what they write belongs to that owner. Nothing is written
//! until an operator uses a feature (or `chatmail-expire` removes an account), so a relay
//! that uses none of this has no state directory.
//!
//! The creation rate cap ([`rate`]) counts in memory: one doveauth process serves all first
//! logins of a relay, and keeping the count off the disk keeps creation from writing a shared
//! file. A restart forgets at most one minute of creations.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::Config;
use crate::dir::Dir;
use crate::error::Error;
use crate::user::{DAY, User};

mod invitations;
pub mod rate;
mod state;
mod tombstones;

#[cfg(test)]
mod tests;

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
    /// The tools' handle on `mailboxes_dir`; `None`: opened by path on each use.
    tree: Option<Arc<Dir>>,
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
            tree: None,
            rate: CreationRate::new(
                config.max_creations_per_minute,
                config.max_creations_per_minute_total,
            ),
        }
    }

    /// The same registry working beneath `tree`, the handle on `mailboxes_dir` a tool
    /// opened (and that its work after switching to the tree's owner goes through).
    pub fn in_tree(mut self, tree: Arc<Dir>) -> Registry {
        self.tree = Some(tree);
        self
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
}
