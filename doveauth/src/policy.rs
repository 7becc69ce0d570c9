//! Who may get an account on first login (SPEC §3.4 step 2).
//!
//! Checked in the reference's order; each refusal is logged with its reason. The system
//! limits (§3.8) come last, in [`crate::syslimits`].

use std::path::Path;

use chatmaild::Config;

/// While this file exists (any file type) no account is created.
pub const NOCREATE_FILE: &str = "/etc/chatmail-nocreate";

/// The first reason `user` with `password` may not be created, if any.
pub fn creation_refusal(
    config: &Config,
    nocreate: &Path,
    user: &str,
    password: &str,
) -> Option<String> {
    if std::fs::symlink_metadata(nocreate).is_ok() {
        return Some(format!(
            "blocked account creation because {} exists",
            nocreate.display()
        ));
    }
    if password.chars().count() < config.password_min_length {
        return Some(format!(
            "Password needs to be at least {} characters long",
            config.password_min_length
        ));
    }
    let parts: Vec<&str> = user.split('@').collect();
    let [localpart, _domain] = parts.as_slice() else {
        return Some(format!("user {user:?} is not a proper e-mail address"));
    };
    let len = localpart.chars().count();
    if len < config.username_min_length || len > config.username_max_length {
        return Some(format!(
            "localpart {localpart:?} has to be between {} and {} chars long",
            config.username_min_length, config.username_max_length
        ));
    }
    if !localpart
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Some(format!(
            "localpart {localpart:?} contains invalid characters"
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
