//! The userdb/passdb reply object doveauth gives Dovecot (SPEC §3.1, §3.2).

use chatmaild::User;
use chatmaild::json_string::python_json_str;

/// Dovecot's userdb/passdb reply object for `user` with `password`: keys in the
/// reference's order, serialised like Python's `json.dumps` defaults.
pub fn userdb_json(user: &User, password: &str) -> String {
    let home = user.maildir().to_string_lossy();
    format!(
        "{{\"addr\": {}, \"home\": {}, \"uid\": \"vmail\", \"gid\": \"vmail\", \"password\": {}}}",
        python_json_str(user.addr()),
        python_json_str(&home),
        python_json_str(password)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn json_like_python() {
        let u = User::in_dir(Path::new("/m"), "a@c.org").unwrap();
        assert_eq!(
            userdb_json(&u, "{SHA512-CRYPT}$6$x"),
            r#"{"addr": "a@c.org", "home": "/m/a@c.org", "uid": "vmail", "gid": "vmail", "password": "{SHA512-CRYPT}$6$x"}"#
        );
    }
}
