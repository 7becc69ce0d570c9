//! What differs between the Dovecot series the relay runs on: 2.3 (Debian 12) and 2.4
//! (Debian 13). Each difference the templates, the local relay and the test harness must
//! know is a method here; the rest of the difference is the template text itself
//! (`relay/dovecot/` and `relay/dovecot-2.4/`, see `relay/README.md`).

use std::process::Command;

use crate::Error;

/// A Dovecot configuration language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dovecot {
    /// 2.3.19 and later 2.3 releases.
    V23,
    /// 2.4 (and 2.5, which reads 2.4's configuration).
    V24,
}

impl Dovecot {
    /// The series of a `dovecot --version` line (`2.3.19.1 (9b53102964)`).
    pub fn from_version(version: &str) -> Result<Dovecot, Error> {
        let version = version.trim();
        if version.starts_with("2.3.") {
            Ok(Dovecot::V23)
        } else if version.starts_with("2.4.") || version.starts_with("2.5.") {
            Ok(Dovecot::V24)
        } else {
            Err(Error::DovecotVersion(version.to_owned()))
        }
    }

    /// The series of the `dovecot` on `PATH`.
    pub fn installed() -> Result<Dovecot, Error> {
        let out = Command::new("dovecot")
            .arg("--version")
            .output()
            .map_err(Error::NoDovecot)?;
        Dovecot::from_version(&String::from_utf8_lossy(&out.stdout))
    }

    /// The template directory in `relay/` of the configuration files written per series.
    pub fn template_dir(self) -> &'static str {
        match self {
            Dovecot::V23 => "dovecot",
            Dovecot::V24 => "dovecot-2.4",
        }
    }

    /// The cleartext password in a Lua auth request (`@PASSWORD_VARIABLE@`).
    pub fn password_variable(self) -> &'static str {
        match self {
            Dovecot::V23 => "%w",
            Dovecot::V24 => "%{password}",
        }
    }

    /// The client's IP address in a Lua auth request (`@CLIENT_IP_VARIABLE@`).
    pub fn client_ip_variable(self) -> &'static str {
        match self {
            Dovecot::V23 => "%{rip}",
            Dovecot::V24 => "%{remote_ip}",
        }
    }

    /// `dovecot.http.client{}` settings for 5 s and no retry (`@HTTP_CLIENT_SETTINGS@`):
    /// 2.4 renamed them.
    pub fn http_client_settings(self) -> &'static str {
        match self {
            Dovecot::V23 => "request_timeout_msecs = 5000, max_attempts = 1",
            Dovecot::V24 => "request_timeout = \"5s\", request_max_attempts = 1",
        }
    }

    /// Whether IMAP COMPRESS exists (`imap_zlib`); 2.4 dropped it, so `imap_compress` has
    /// no effect there.
    pub fn has_imap_compress(self) -> bool {
        self == Dovecot::V23
    }

    /// Whether passdb/userdb can be a dict (doveauth's dict mode): 2.4 accepts the setting
    /// but its auth process stops with "Unknown passdb driver 'dict'".
    pub fn has_dict_passdb(self) -> bool {
        self == Dovecot::V23
    }

    /// The setting of an `inet_listener`'s address (`address` became `listen`).
    pub fn listener_address_key(self) -> &'static str {
        match self {
            Dovecot::V23 => "address",
            Dovecot::V24 => "listen",
        }
    }

    /// Settings that allow plaintext logins where they are trusted (tests on loopback):
    /// 2.4's `auth_allow_cleartext` replaced `disable_plaintext_auth` and may not be set
    /// together with `ssl = required`.
    pub fn plaintext_login_settings(self) -> &'static str {
        match self {
            Dovecot::V23 => "disable_plaintext_auth = no\n",
            Dovecot::V24 => "ssl = yes\nauth_allow_cleartext = yes\n",
        }
    }
}

/// Dovecot's passdb/userdb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `auth.lua`: password files read directly, unknown accounts offered to doveauth's
    /// HTTP `/create`.
    Lua,
    /// doveauth over the dict protocol (Dovecot 2.3 only).
    Dict,
}

impl Auth {
    /// `lua` or `dict`.
    pub fn parse(name: &str) -> Result<Auth, Error> {
        match name {
            "lua" => Ok(Auth::Lua),
            "dict" => Ok(Auth::Dict),
            _ => Err(Error::Usage(format!(
                "auth must be lua or dict, not {name:?}"
            ))),
        }
    }

    /// `lua` or `dict`: the name of the template `auth-<name>.conf.in`.
    pub fn name(self) -> &'static str {
        match self {
            Auth::Lua => "lua",
            Auth::Dict => "dict",
        }
    }

    /// Refuses dict auth on a Dovecot without dict passdb/userdb.
    pub fn check(self, dovecot: Dovecot) -> Result<(), Error> {
        if self == Auth::Dict && !dovecot.has_dict_passdb() {
            return Err(Error::DictAuthOn24);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for (v, want) in [
            ("2.3.19.1 (9b53102964)\n", Some(Dovecot::V23)),
            ("2.4.1-4 (7d8c0e5759)", Some(Dovecot::V24)),
            ("2.5.0", Some(Dovecot::V24)),
            ("2.2.36", None),
            ("", None),
            ("3.0", None),
        ] {
            assert_eq!(Dovecot::from_version(v).ok(), want, "{v:?}");
        }
        assert_eq!(
            Dovecot::from_version("2.2.36").unwrap_err().to_string(),
            "unsupported Dovecot version \"2.2.36\" (2.3.19+ or 2.4 needed)"
        );
    }

    #[test]
    fn auth_modes() {
        assert_eq!(Auth::parse("lua").unwrap(), Auth::Lua);
        assert_eq!(Auth::parse("dict").unwrap().name(), "dict");
        assert_eq!(Auth::parse("ldap").unwrap_err().exit_code(), 64);
        assert!(Auth::Dict.check(Dovecot::V23).is_ok());
        assert!(Auth::Dict.check(Dovecot::V24).is_err());
        assert!(Auth::Lua.check(Dovecot::V24).is_ok());
    }
}
