//! The mailbox an envelope address is delivered to, as the relay's Postfix and Dovecot
//! read it (issue "one interpretation").
//!
//! Postfix (`recipient_delimiter = +` in the relay's `main.cf`, RFC 5321 unquoting, source
//! routes, `allow_percent_hack`, `swap_bangpath`, a trailing dot of the domain) and Dovecot
//! LMTP (`recipient_delimiter`, default `+`; user names lower-cased, `auth_username_chars`)
//! deliver many spellings to the same mailbox. Every decision about a recipient or sender
//! must be taken for that mailbox, never for the raw spelling, so this module is the one
//! place that maps a spelling to it.
//!
//! Only the *plain* spellings are mapped: a dot-atom local part of the characters Dovecot
//! accepts in user names, optionally followed by a `+detail`, `@`, and a domain name (a
//! trailing dot allowed) or domain literal, in any ASCII case. Everything else (quoted
//! local parts, backslashes, source routes, `%` and `!` routing, other characters, 8-bit)
//! is [`NotPlain`]: Postfix may rewrite it to a mailbox or to another host, and a chatmail
//! client never sends it, so callers refuse it instead of guessing.

use std::fmt;

/// The recipient delimiters of the relay: Postfix's `recipient_delimiter` in
/// `relay/postfix/main.cf.in` and Dovecot's LMTP default. Everything from the first of them
/// on in the local part is the "detail", which does not change the mailbox.
pub const RECIPIENT_DELIMITERS: &[char] = &['+'];

/// A spelling that [`canonical_mailbox`] does not map (it is refused, not guessed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotPlain;

impl fmt::Display for NotPlain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("address is not in plain form")
    }
}

impl std::error::Error for NotPlain {}

/// A mailbox as Dovecot names it: lower-case `local@domain`, without detail or trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mailbox(String);

impl Mailbox {
    /// `local@domain`, the name of the mailbox directory below `mailboxes_dir`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain part (after the last `@`).
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Characters Dovecot accepts in a user name's local part (`auth_username_chars` of the
/// relay's `dovecot.conf`, less `@[]`, which only occur in the domain).
fn is_user_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

/// A dot-atom of user-name characters: non-empty, no leading, trailing or double dot.
fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(is_user_char)
        && !s.starts_with('.')
        && !s.ends_with('.')
        && !s.contains("..")
}

/// A domain name of LDH labels (the trailing dot already removed).
fn is_domain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A domain literal `[1.2.3.4]` or `[IPv6:...]`: brackets around hex digits, dots and
/// colons, optionally tagged `IPv6:`.
fn is_domain_literal(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
        return false;
    };
    let inner = match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("ipv6:") => inner.get(5..).unwrap_or(""),
        _ => inner,
    };
    !inner.is_empty()
        && inner
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == '.' || c == ':')
}

/// The mailbox `addr` (an SMTP `RCPT`/`MAIL` path without the angle brackets, an LMTP
/// recipient or an `X-MAIL-TO` value) is delivered to, or [`NotPlain`].
///
/// `User+Detail@Example.ORG.` and `user@example.org` are both `user@example.org`;
/// `"user"@example.org`, `@relay:user@example.org`, `user%other@example.org` are refused.
pub fn canonical_mailbox(addr: &str) -> Result<Mailbox, NotPlain> {
    let (local, domain) = addr.rsplit_once('@').ok_or(NotPlain)?;
    let base = match local.find(RECIPIENT_DELIMITERS) {
        Some(i) => {
            let detail = local.get(i + 1..).unwrap_or("");
            if !detail
                .chars()
                .all(|c| is_user_char(c) || RECIPIENT_DELIMITERS.contains(&c))
            {
                return Err(NotPlain);
            }
            local.get(..i).unwrap_or("")
        }
        None => local,
    };
    if !is_dot_atom(base) {
        return Err(NotPlain);
    }
    let domain = plain_domain(domain)?;
    // A mailbox is a directory name: no longer than a file name may be.
    if base.len() + 1 + domain.len() > crate::user::MAX_ADDR_LEN {
        return Err(NotPlain);
    }
    let mut mailbox = String::with_capacity(base.len() + 1 + domain.len());
    mailbox.push_str(base);
    mailbox.push('@');
    mailbox.push_str(domain);
    mailbox.make_ascii_lowercase();
    Ok(Mailbox(mailbox))
}

/// `domain` without its trailing dot if it is a domain name or a domain literal.
fn plain_domain(domain: &str) -> Result<&str, NotPlain> {
    if domain.starts_with('[') {
        return if is_domain_literal(domain) {
            Ok(domain)
        } else {
            Err(NotPlain)
        };
    }
    let d = domain.strip_suffix('.').unwrap_or(domain);
    if is_domain_name(d) {
        Ok(d)
    } else {
        Err(NotPlain)
    }
}

/// The domain of `addr` (the text after its last `@`) as [`canonical_mailbox`] writes it:
/// ASCII lower-case, without a trailing dot. Unlike [`canonical_mailbox`] it takes any
/// local part (quoted, routed, 8-bit), because Postfix routes by the domain alone: a
/// bounce to `"x"@domain` goes wherever mail for `domain` goes.
pub fn canonical_domain(addr: &str) -> Result<String, NotPlain> {
    let (_, domain) = addr.rsplit_once('@').ok_or(NotPlain)?;
    Ok(plain_domain(domain)?.to_ascii_lowercase())
}

/// Whether `a` and `b` are plain spellings of the same mailbox.
pub fn same_mailbox(a: &str, b: &str) -> bool {
    match (canonical_mailbox(a), canonical_mailbox(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_spellings_map_to_the_mailbox() {
        for (spelling, mailbox) in [
            ("user@example.org", "user@example.org"),
            ("USER@Example.ORG", "user@example.org"),
            ("user+x@example.org", "user@example.org"),
            ("user+@example.org", "user@example.org"),
            ("User+a+b@example.org", "user@example.org"),
            ("user+x.y-z_1@example.org", "user@example.org"),
            ("user@example.org.", "user@example.org"),
            ("a.b-c_d@x.example", "a.b-c_d@x.example"),
            ("user@[127.0.0.1]", "user@[127.0.0.1]"),
            ("user+x@[127.0.0.1]", "user@[127.0.0.1]"),
            ("user@[IPv6:::1]", "user@[ipv6:::1]"),
            ("user@[IPv6:2001:DB8::1]", "user@[ipv6:2001:db8::1]"),
        ] {
            assert_eq!(
                canonical_mailbox(spelling).map(|m| m.to_string()),
                Ok(mailbox.to_owned()),
                "{spelling}"
            );
        }
    }

    #[test]
    fn other_spellings_are_refused() {
        for spelling in [
            "",
            "user",
            "@example.org",
            "\"user\"@example.org",
            "\"user@example.org\"@example.org",
            "us\\er@example.org",
            "@relay.example:user@example.org",
            "@a,@b:user@example.org",
            "user%example.org@example.org",
            "example.org!user@example.org",
            "user@other@example.org",
            "+x@example.org",
            ".user@example.org",
            "user.@example.org",
            "us..er@example.org",
            "user+a%b@example.org",
            "user+a\"b@example.org",
            "us er@example.org",
            "user@example.org..",
            "user@.example.org",
            "user@exa mple.org",
            "user@",
            "user@-example.org",
            "üser@example.org",
            "user@exämple.org",
            "user@[127.0.0.1",
            "user@[]",
            "user@[1.2.3.4]x",
            "user@[IPv6:]",
            "user\0@example.org",
            "user/..@example.org",
        ] {
            assert_eq!(canonical_mailbox(spelling), Err(NotPlain), "{spelling:?}");
        }
        let long = format!("{}@example.org", "u".repeat(250));
        assert_eq!(canonical_mailbox(&long), Err(NotPlain), "over 255 bytes");
    }

    #[test]
    fn canonical_domain_ignores_the_local_part() {
        for (addr, domain) in [
            ("user@Example.ORG.", "example.org"),
            ("\"us er\"@example.org", "example.org"),
            ("@relay:user@example.org", "example.org"),
            ("a%b@[127.0.0.1]", "[127.0.0.1]"),
            ("x@[IPv6:::1]", "[ipv6:::1]"),
            ("@example.org", "example.org"),
        ] {
            assert_eq!(canonical_domain(addr).as_deref(), Ok(domain), "{addr}");
            if let Ok(m) = canonical_mailbox(addr) {
                assert_eq!(m.domain(), domain, "the same reading as canonical_mailbox");
            }
        }
        for addr in [
            "",
            "user",
            "user@",
            "user@example..org",
            "u@[1.2.3.4",
            "u@ex ample.org",
        ] {
            assert_eq!(canonical_domain(addr), Err(NotPlain), "{addr:?}");
        }
    }

    #[test]
    fn same_mailbox_compares_the_result() {
        assert!(same_mailbox("User+x@Example.org", "user@example.org."));
        assert!(!same_mailbox("user@example.org", "other@example.org"));
        assert!(!same_mailbox("\"user\"@example.org", "user@example.org"));
    }

    #[test]
    fn mailbox_is_always_a_valid_directory_name() {
        let m = canonical_mailbox("User+x@Example.org.").unwrap();
        let longest = format!("{}@example.org", "u".repeat(crate::user::MAX_ADDR_LEN - 12));
        assert_eq!(longest.len(), crate::user::MAX_ADDR_LEN);
        assert!(canonical_mailbox(&format!("{longest}.")).is_ok());
        assert!(crate::user::validate_address(m.as_str()).is_ok());
        assert_eq!(m.domain(), "example.org");
    }
}
