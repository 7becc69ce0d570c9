//! lastlogin: records the day of each user's last login for Dovecot's `last_login`
//! plugin (SPEC §4).
//!
//! The day is stored as the mtime of the user's password file, so expiry and reports
//! read it with one `stat` and no extra file exists. Logins on the same day cause no
//! write; lastlogin never creates a user, a file or a directory.
#![forbid(unsafe_code)]

mod manual;

use std::sync::Arc;

use chatmaild::dict::{DictHandler, Lookup};
use chatmaild::metrics::{CounterVec, Encoder, labels};
use chatmaild::{Config, User};
use tracing::{debug, error, warn};

/// The manual of this package's binary.
pub const MANUALS: &[&chatmaild::manual::Page] = &[&manual::PAGE];

/// Name of the counter of login updates, by [`Update`].
const UPDATES_METRIC: &str = chatmaild::metrics::names::lastlogin::UPDATES;

labels! {
    /// What became of one login report (the `result` label of [`UPDATES_METRIC`]).
    pub enum Update {
        /// The mtime was set to a new day.
        Written => "written",
        /// Nothing to write: already that day, or no such account.
        Skipped => "skipped",
        /// Not a last-login key, not a unix time, or not an address of this relay.
        Invalid => "invalid",
        /// The password file could not be updated.
        Error => "error",
    }
}

/// The lastlogin handler.
#[derive(Debug, Clone)]
pub struct LastLoginHandler {
    config: Arc<Config>,
    updates: Arc<CounterVec>,
}

impl LastLoginHandler {
    /// A handler for `config`.
    pub fn new(config: Arc<Config>) -> Self {
        LastLoginHandler {
            config,
            updates: Arc::new(CounterVec::new("result", Update::VALUES)),
        }
    }

    fn count(&self, u: Update) {
        self.updates.inc(u.index());
    }

    /// How many reports ended as `u`.
    pub fn updates(&self, u: Update) -> u64 {
        self.updates.get(u.index())
    }
}

/// The address of a `shared/last-login/<addr>` key; `None` for any other key.
fn last_login_addr(key: &str) -> Option<&str> {
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
        let result = self.record(key, value);
        self.count(result);
        matches!(result, Update::Written | Update::Skipped)
    }

    fn render_metrics(&self, enc: &mut Encoder) {
        enc.counter_vec(
            UPDATES_METRIC,
            "Last-login reports by result: written, skipped (same day or no account), invalid, error.",
            &self.updates,
        );
    }
}

impl LastLoginHandler {
    fn record(&self, key: &str, value: &str) -> Update {
        let Some(addr) = last_login_addr(key) else {
            warn!(key, "unexpected key for lastlogin");
            return Update::Invalid;
        };
        let Ok(timestamp) = value.trim().parse::<i64>() else {
            warn!("last-login value is not a unix time");
            return Update::Invalid;
        };
        let user = match User::new(&self.config, addr) {
            Ok(u) => u,
            Err(e) => {
                warn!("{e}");
                return Update::Invalid;
            }
        };
        match user.set_last_login(timestamp) {
            Ok(true) => Update::Written,
            Ok(false) => Update::Skipped,
            Err(e) => {
                error!("{e}");
                Update::Error
            }
        }
    }
}

/// The `lastlogin SOCKET_PATH INI_PATH` binary: the dict service. Every service library's
/// binary calls its `main_entry`.
pub fn main_entry() -> std::process::ExitCode {
    chatmaild::service::run_dict_daemon(&manual::PAGE, |config, _| {
        Ok::<_, chatmaild::Error>(LastLoginHandler::new(config))
    })
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
