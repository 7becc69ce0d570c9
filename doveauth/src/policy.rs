//! Who may get an account on first login (SPEC §3.4 step 2).
//!
//! Checked in the reference's order; each refusal is logged with its reason. The system
//! limits (§3.8) come next, in [`crate::syslimits`]; then the relay's account state in
//! [`chatmaild::registry`]: tombstoned and blocked addresses, invite-only registration and
//! the creation rate cap, each logged as one `registration rejected: <reason>` line.
//!
//! An invitation travels in the first login's password as `<token>:<password>`. The whole
//! string is hashed and stored: Dovecot verifies every later login against the stored hash
//! with the very password the client keeps, so storing a hash of the part after the token
//! would make the second login fail. The token is only a proof at creation; revoking it
//! later does not touch accounts it created.

use std::path::Path;

use chatmaild::Config;

use crate::metrics::Refusal;

/// The prefix of every refusal line of the account state and the system limits; mtail
/// counts it (SPEC §10.4).
pub const REGISTRATION_REJECTED: &str = "registration rejected: ";

/// The first reason `user` with `password` may not be created, if any.
#[cfg(test)]
pub fn creation_refusal(
    config: &Config,
    nocreate: &Path,
    user: &str,
    password: &str,
) -> Option<String> {
    classified_refusal(config, nocreate, user, password).map(|(_, text)| text)
}

/// The first reason `user` with `password` may not be created, if any, with the reason's
/// class for the metrics.
pub fn classified_refusal(
    config: &Config,
    nocreate: &Path,
    user: &str,
    password: &str,
) -> Option<(Refusal, String)> {
    if std::fs::symlink_metadata(nocreate).is_ok() {
        return Some((
            Refusal::Nocreate,
            format!(
                "blocked account creation because {} exists",
                nocreate.display()
            ),
        ));
    }
    if password.chars().count() < config.password_min_length {
        return Some((
            Refusal::InvalidPassword,
            format!(
                "Password needs to be at least {} characters long",
                config.password_min_length
            ),
        ));
    }
    let parts: Vec<&str> = user.split('@').collect();
    let [localpart, _domain] = parts.as_slice() else {
        return Some((
            Refusal::InvalidName,
            format!("user {user:?} is not a proper e-mail address"),
        ));
    };
    let len = localpart.chars().count();
    if len < config.username_min_length || len > config.username_max_length {
        return Some((
            Refusal::InvalidName,
            format!(
                "localpart {localpart:?} has to be between {} and {} chars long",
                config.username_min_length, config.username_max_length
            ),
        ));
    }
    if !localpart
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Some((
            Refusal::InvalidName,
            format!("localpart {localpart:?} contains invalid characters"),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let c = Config::parse("[params]\nmail_domain = c.org\n").unwrap();
        let none = Path::new("/nonexistent/nocreate");
        let ok = |u: &str, p: &str| creation_refusal(&c, none, u, p).is_none();
        assert!(ok("abcdefghi@c.org", "123456789"));
        assert!(ok("a.b-c_d9z@c.org", "ääääääääää"));
        assert!(!ok("abcdefghi@c.org", "12345678"), "short password");
        assert!(
            ok("abcdefghi@c.org", "ääääääääá"),
            "length counts characters"
        );
        assert!(!ok("abcdefgh@c.org", "123456789"), "short local part");
        assert!(!ok("abcdefghij@c.org", "123456789"), "long local part");
        for bad in [
            "Abcdefghi@c.org",
            "abcd+fghi@c.org",
            "abcd!fghi@c.org",
            "abcd fghi@c.org",
            "abcd\\fghi@c.org",
        ] {
            assert!(!ok(bad, "123456789"), "{bad}");
        }
        assert!(!ok("a@b@c.org", "123456789"));
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("nocreate");
        std::fs::create_dir(&flag).unwrap();
        assert!(
            creation_refusal(&c, &flag, "abcdefghi@c.org", "123456789")
                .unwrap()
                .contains("blocked")
        );
    }
}
