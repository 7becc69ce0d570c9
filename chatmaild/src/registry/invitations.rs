//! Invitations: tokens with a use count and an expiry, one JSON file each in
//! `<state>/invites/`, used up under `invites.lock` (see [`super`] for the layout).

use std::path::PathBuf;

use rand::Rng;

use super::Registry;
use super::state::remove_entry;
use crate::dir::is_absent;
use crate::error::Error;
use crate::fs::Durability;

/// Largest invitation file read (a comment of a few lines).
const MAX_INVITATION_FILE: u64 = 64 * 1024;

/// Length of generated invitation tokens: 20 of 36 characters, 103 bits.
pub const TOKEN_LEN: usize = 20;

/// Longest token accepted from a password or a command line.
pub const MAX_TOKEN_LEN: usize = 64;

/// Separates the invitation token from the password proper: `<token>:<password>`.
pub const INVITATION_SEPARATOR: char = ':';

/// One invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// The secret that a password carries (`[a-z0-9]`).
    pub token: String,
    /// Accounts it may still create.
    pub uses_left: u32,
    /// Unix time after which it is no longer valid.
    pub expires: Option<i64>,
    /// When it was made.
    pub created: i64,
    /// The operator's note.
    pub comment: String,
}

impl Invitation {
    /// Whether it can create an account at `now`.
    pub fn is_valid(&self, now: i64) -> bool {
        self.uses_left > 0 && self.expires.is_none_or(|t| now < t)
    }

    /// The invitation file's content.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "uses_left": self.uses_left,
            "expires": self.expires,
            "created": self.created,
            "comment": self.comment,
        })
    }

    fn from_json(token: &str, v: &serde_json::Value) -> Option<Invitation> {
        Some(Invitation {
            token: token.to_owned(),
            uses_left: u32::try_from(v.get("uses_left")?.as_u64()?).ok()?,
            expires: match v.get("expires")? {
                serde_json::Value::Null => None,
                t => Some(t.as_i64()?),
            },
            created: v.get("created")?.as_i64()?,
            comment: v.get("comment")?.as_str()?.to_owned(),
        })
    }
}

/// Splits a first-login password into invitation token and the rest, if it has the form
/// `<token>:<rest>`.
pub fn split_invitation(password: &str) -> Option<(&str, &str)> {
    let (token, rest) = password.split_once(INVITATION_SEPARATOR)?;
    is_token(token).then_some((token, rest))
}

/// Whether `s` can be a token (and so a file name): 1 to 64 of `[a-z0-9]`.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_TOKEN_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A fresh random token.
pub fn new_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..TOKEN_LEN)
        .map(|_| {
            let i = rng.random_range(0..ALPHABET.len());
            char::from(ALPHABET.get(i).copied().unwrap_or(b'a'))
        })
        .collect()
}

impl Registry {
    fn invite_path(&self, token: &str) -> Option<PathBuf> {
        is_token(token).then(|| self.state.join("invites").join(token))
    }

    /// Makes a new invitation.
    pub fn create_invitation(
        &self,
        uses: u32,
        expires: Option<i64>,
        comment: &str,
        now: i64,
    ) -> Result<Invitation, Error> {
        let dir = self.made_subdir("invites")?;
        let invitation = Invitation {
            token: new_token(),
            uses_left: uses,
            expires,
            created: now,
            comment: comment.to_owned(),
        };
        dir.write_atomic(
            &invitation.token,
            invitation.to_json().to_string().as_bytes(),
            Durability::Fsync,
            Some(0o600),
        )
        .map_err(|e| Error::io(dir.join(&invitation.token), e))?;
        Ok(invitation)
    }

    /// One invitation, if it exists.
    pub fn invitation(&self, token: &str) -> Result<Option<Invitation>, Error> {
        let Some(path) = self.invite_path(token) else {
            return Ok(None);
        };
        let Some(dir) = self.state_subdir("invites", false)? else {
            return Ok(None);
        };
        let bytes = match dir.read_file(token, MAX_INVITATION_FILE) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| Invitation::from_json(token, &v))
            .map(Some)
            .ok_or(Error::State {
                path,
                reason: "not an invitation",
            })
    }

    /// Every invitation, oldest first.
    pub fn invitations(&self) -> Result<Vec<Invitation>, Error> {
        let Some(dir) = self.state_subdir("invites", false)? else {
            return Ok(Vec::new());
        };
        let entries = dir.entries().map_err(|e| Error::io(dir.path(), e))?;
        let mut all = Vec::new();
        for (name, _) in entries {
            // Temporary files of a write in progress, damaged files and links are not
            // invitations.
            if let Some(name) = name.to_str()
                && let Ok(Some(inv)) = self.invitation(name)
            {
                all.push(inv);
            }
        }
        all.sort_by(|a, b| (a.created, &a.token).cmp(&(b.created, &b.token)));
        Ok(all)
    }

    /// Revokes an invitation at once; returns whether it existed.
    pub fn revoke_invitation(&self, token: &str) -> Result<bool, Error> {
        let Some(path) = self.invite_path(token) else {
            return Ok(false);
        };
        let _lock = self.lock("invites.lock")?;
        let Some(dir) = self.state_subdir("invites", false)? else {
            return Ok(false);
        };
        let there = dir.exists(token).map_err(|e| Error::io(&path, e))?;
        remove_entry(&dir, token).map_err(|e| Error::io(&path, e))?;
        Ok(there)
    }

    /// Uses up one creation of the invitation `token`; `false` if it cannot create.
    pub fn consume_invitation(&self, token: &str, now: i64) -> Result<bool, Error> {
        if self.invite_path(token).is_none() {
            return Ok(false);
        }
        let _lock = self.lock("invites.lock")?;
        let mut inv = match self.invitation(token) {
            Ok(Some(inv)) => inv,
            // A damaged invitation creates nothing.
            Ok(None) | Err(Error::State { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        if !inv.is_valid(now) {
            return Ok(false);
        }
        inv.uses_left -= 1;
        let dir = self.made_subdir("invites")?;
        dir.write_atomic(
            token,
            inv.to_json().to_string().as_bytes(),
            Durability::Fsync,
            Some(0o600),
        )
        .map_err(|e| Error::io(dir.join(token), e))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{NOW, setup};
    use super::*;
    use crate::user::DAY;

    #[test]
    fn invitations() {
        let (_dir, _, r) = setup("");
        let inv = r
            .create_invitation(2, Some(NOW + DAY), "for Bob", NOW)
            .unwrap();
        assert_eq!(inv.token.len(), TOKEN_LEN);
        assert!(is_token(&inv.token));
        assert_eq!(r.invitations().unwrap(), std::slice::from_ref(&inv));
        assert!(
            !r.consume_invitation(&inv.token, NOW + DAY).unwrap(),
            "expired"
        );
        assert!(r.consume_invitation(&inv.token, NOW).unwrap());
        assert!(r.consume_invitation(&inv.token, NOW).unwrap());
        assert!(!r.consume_invitation(&inv.token, NOW).unwrap(), "used up");
        assert_eq!(r.invitation(&inv.token).unwrap().unwrap().uses_left, 0);
        let other = r.create_invitation(5, None, "", NOW).unwrap();
        assert!(r.revoke_invitation(&other.token).unwrap());
        assert!(!r.consume_invitation(&other.token, NOW).unwrap(), "revoked");
        assert!(!r.consume_invitation("../../x", NOW).unwrap());
        assert_eq!(r.invitation("UPPER").unwrap(), None);
        let damaged = r.create_invitation(5, None, "", NOW).unwrap();
        std::fs::write(r.state_dir().join("invites").join(&damaged.token), b"{").unwrap();
        assert!(!r.consume_invitation(&damaged.token, NOW).unwrap());
        assert!(r.invitation(&damaged.token).is_err());
        assert_eq!(
            r.invitations().unwrap().len(),
            1,
            "listed without the damaged one"
        );
        for (pw, split) in [
            ("abc123:secretpass", Some(("abc123", "secretpass"))),
            ("abc:de:f", Some(("abc", "de:f"))),
            ("ABC:secret", None),
            (":secret", None),
            ("nocolon", None),
        ] {
            assert_eq!(split_invitation(pw), split, "{pw}");
        }
    }
}
