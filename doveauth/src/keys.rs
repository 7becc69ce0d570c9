//! The passdb/userdb dict keys Dovecot sends (SPEC §3.1, §3.2).
//!
//! Dovecot is configured with `password_key = passdb/%Ew"%Eu` and `user_key = userdb/%Eu`
//! and prefixes `shared/`. `%E` backslash-escapes `"`, `'` and `\`, so `"` unescaped
//! separates the password from the user. A third part, `password_key =
//! passdb/%Ew"%Eu"%{rip}`, passes the client's IP address for the creation rate cap; the
//! reference reads only the first two parts, so the same key serves both.

use std::net::IpAddr;

/// A parsed lookup key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthKey {
    /// `shared/userdb/<user>`.
    Userdb {
        /// The user name.
        user: String,
    },
    /// `shared/passdb/<password>"<user>`, optionally followed by `"<client IP>`.
    Passdb {
        /// The cleartext password the client sent.
        password: String,
        /// The user name.
        user: String,
        /// The client's address, if the key carries one (empty or not an address: `None`).
        client: Option<IpAddr>,
    },
}

/// Why a key is not one of ours; the reply is `F`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedKey(pub &'static str);

/// Parses a lookup key: split at the first two `/`, then unescape the rest.
pub fn parse_key(key: &str) -> Result<AuthKey, MalformedKey> {
    let mut it = key.splitn(3, '/');
    let (Some(namespace), Some(kind), Some(rest)) = (it.next(), it.next(), it.next()) else {
        return Err(MalformedKey("fewer than two '/' in key"));
    };
    if namespace != "shared" {
        return Err(MalformedKey("namespace is not shared"));
    }
    let mut parts = split_and_unescape(rest)?.into_iter();
    match kind {
        "userdb" => Ok(AuthKey::Userdb {
            user: parts.next().unwrap_or_default(),
        }),
        "passdb" => match (parts.next(), parts.next()) {
            (Some(password), Some(user)) => Ok(AuthKey::Passdb {
                password,
                user,
                client: parts.next().and_then(|ip| ip.parse().ok()),
            }),
            _ => Err(MalformedKey("passdb key without '\"' separator")),
        },
        _ => Err(MalformedKey("unknown key type")),
    }
}

/// Splits on unescaped `"`; `\` makes the next character literal. The last part is
/// always emitted; a trailing lone `\` is malformed.
pub fn split_and_unescape(s: &str) -> Result<Vec<String>, MalformedKey> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.push(chars.next().ok_or(MalformedKey("trailing backslash"))?),
            '"' => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(
            parse_key("shared/userdb/foobar@chat.example.org"),
            Ok(AuthKey::Userdb {
                user: "foobar@chat.example.org".into()
            })
        );
        assert_eq!(
            parse_key(r#"shared/passdb/laksjd\\sjd\"12j\'3l1/k2"u@x.org"#),
            Ok(AuthKey::Passdb {
                password: r#"laksjd\sjd"12j'3l1/k2"#.into(),
                user: "u@x.org".into(),
                client: None,
            })
        );
        assert_eq!(
            parse_key(r#"shared/passdb/pw"user/with/slash@x"#),
            Ok(AuthKey::Passdb {
                password: "pw".into(),
                user: "user/with/slash@x".into(),
                client: None,
            })
        );
        for (key, client) in [
            (r#"shared/passdb/pw"u@x"192.0.2.1"#, Some("192.0.2.1")),
            (r#"shared/passdb/pw"u@x"2001:db8::1"#, Some("2001:db8::1")),
            (r#"shared/passdb/pw"u@x""#, None),
            (r#"shared/passdb/pw"u@x"not-an-ip"#, None),
        ] {
            assert_eq!(
                parse_key(key),
                Ok(AuthKey::Passdb {
                    password: "pw".into(),
                    user: "u@x".into(),
                    client: client.map(|c| c.parse().unwrap()),
                }),
                "{key}"
            );
        }
        for bad in [
            "shared",
            "shared/userdb",
            "priv/userdb/x",
            "shared/other/x",
            "shared/passdb/nouser",
            "shared/passdb/pw\\",
            "shared/userdb/x\\",
        ] {
            assert!(parse_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn split() {
        assert_eq!(split_and_unescape("a\"b\"").unwrap(), vec!["a", "b", ""]);
        assert_eq!(split_and_unescape("").unwrap(), vec![""]);
        assert_eq!(split_and_unescape("\\\\\\\"").unwrap(), vec!["\\\""]);
    }
}
