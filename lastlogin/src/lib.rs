//! lastlogin: records the day of each user's last login for Dovecot's `last_login`
//! plugin (SPEC §4).
//!
//! The day is stored as the mtime of the user's password file, so expiry and reports
//! read it with one `stat` and no extra file exists. Logins on the same day cause no
//! write; lastlogin never creates a user, a file or a directory.
#![forbid(unsafe_code)]

use std::sync::Arc;

use chatmaild::dict::{DictHandler, Lookup};
use chatmaild::{Config, User};
use tracing::{debug, error, warn};

/// The lastlogin handler.
#[derive(Debug, Clone)]
pub struct LastLoginHandler {
    config: Arc<Config>,
}

impl LastLoginHandler {
    /// A handler for `config`.
    pub fn new(config: Arc<Config>) -> Self {
        LastLoginHandler { config }
    }
}

/// The address of a `shared/last-login/<addr>` key; `None` for any other key.
pub fn last_login_addr(key: &str) -> Option<&str> {
    let mut segments = key.split('/');
    match (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) {
        (Some("shared"), Some("last-login"), Some(addr), None) => Some(addr),
        _ => None,
    }
}

impl DictHandler for LastLoginHandler {
    async fn lookup(&self, key: &str, _user: Option<&str>) -> Lookup {
        debug!(key, "lookup ignored");
        Lookup::NotFound
    }

    async fn set(&self, _user: Option<&str>, key: &str, value: &str) -> bool {
        let Some(addr) = last_login_addr(key) else {
            warn!(key, "unexpected key for lastlogin");
            return false;
        };
        let Ok(timestamp) = value.trim().parse::<i64>() else {
            warn!("last-login value is not a unix time");
            return false;
        };
        let user = match User::new(&self.config, addr) {
            Ok(u) => u,
            Err(e) => {
                warn!("{e}");
                return false;
            }
        };
        match user.set_last_login(timestamp) {
            Ok(_) => true,
            Err(e) => {
                error!("{e}");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(
            last_login_addr("shared/last-login/u@c.org"),
            Some("u@c.org")
        );
        assert_eq!(last_login_addr("shared/last-login"), None);
        assert_eq!(last_login_addr("priv/last-login/u@c.org"), None);
        assert_eq!(last_login_addr("shared/last-login/u@c.org/x"), None);
    }
}
