//! doveauth's lookup keys: `parse_key` never panics on any key, and a passdb key built the
//! way Dovecot builds it (`passdb/%Ew"%Eu`, `%E` backslash-escaping `"`, `'` and `\`)
//! parses back to the same password and user, and with `"%{rip}` appended also to the same
//! client address.
#![no_main]

use arbitrary::Arbitrary;
use doveauth::internals::{AuthKey, parse_key};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    raw: &'a str,
    password: &'a str,
    user: &'a str,
    ip: [u8; 16],
}

/// Dovecot's `%E` modifier.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\'' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fuzz_target!(|input: Input<'_>| {
    let _ = parse_key(input.raw);
    let key = format!(
        "shared/passdb/{}\"{}",
        escape(input.password),
        escape(input.user)
    );
    assert_eq!(
        parse_key(&key),
        Ok(AuthKey::Passdb {
            password: input.password.to_owned(),
            user: input.user.to_owned(),
            client: None,
        }),
        "{key:?}"
    );
    let client = std::net::IpAddr::from(input.ip);
    assert_eq!(
        parse_key(&format!("{key}\"{client}")),
        Ok(AuthKey::Passdb {
            password: input.password.to_owned(),
            user: input.user.to_owned(),
            client: Some(client),
        }),
        "{key:?} {client}"
    );
    let key = format!("shared/userdb/{}", escape(input.user));
    assert_eq!(
        parse_key(&key),
        Ok(AuthKey::Userdb {
            user: input.user.to_owned()
        }),
        "{key:?}"
    );
});
