//! The dict handler: which key means what (SPEC §5.2, §5.3).
//!
//! Key parsing is pure ([`parse_lookup_key`], [`parse_set_key`]); the handler does the
//! I/O, with file work on the blocking pool so a slow disk never stalls other
//! connections. An address is validated (SPEC §1.5) before it becomes a path; an invalid
//! or missing one is "no such user": `N` for lookups, failure for sets.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chatmaild::Config;
use chatmaild::dict::{DictHandler, Lookup};
use tracing::{debug, error};

use crate::appversions;
use crate::metrics::LookupError;
use crate::notifier::Notifier;
use crate::scaled_clock::Clock;
use crate::tokens::{DEVICETOKEN_KEY, TokenStore};
use crate::turn;

/// Prefix of the relay's shared server keys (`GETMETADATA "" /shared/vendor/deltachat/…`).
pub const SHARED_PREFIX: &str = "vendor/vendor.dovecot/pvt/server/vendor/deltachat/";

/// Postfix's default `smtpd_recipient_limit`, announced to clients.
pub const MAX_SMTP_RECIPIENTS: &str = "1000";

/// A lookup key, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKey {
    /// `priv/<guid>/devicetoken`.
    DeviceToken,
    /// `shared/<guid>/…/irohrelay`.
    IrohRelay,
    /// `shared/<guid>/…/turn`.
    Turn,
    /// `shared/<guid>/…/maxsmtprecipients`.
    MaxSmtpRecipients,
    /// `shared/<guid>/…/appversions`.
    AppVersions,
    /// Anything else: `N`.
    Unknown,
}

/// Classifies a lookup key: split at the first two `/` into namespace, mailbox guid
/// (ignored) and name.
pub fn parse_lookup_key(key: &str) -> LookupKey {
    let mut parts = key.splitn(3, '/');
    let (Some(ns), Some(_guid), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return LookupKey::Unknown;
    };
    match ns {
        "priv" if name == DEVICETOKEN_KEY => LookupKey::DeviceToken,
        "shared" => match name.strip_prefix(SHARED_PREFIX) {
            Some("irohrelay") => LookupKey::IrohRelay,
            Some("turn") => LookupKey::Turn,
            Some("maxsmtprecipients") => LookupKey::MaxSmtpRecipients,
            Some("appversions") => LookupKey::AppVersions,
            _ => LookupKey::Unknown,
        },
        _ => LookupKey::Unknown,
    }
}

/// A set key, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKey {
    /// `priv/<guid>/devicetoken`: store the value as a token.
    DeviceToken,
    /// `priv/<guid>/messagenew`: notify every device of the user.
    MessageNew,
    /// Anything else: the transaction fails.
    Unknown,
}

/// Classifies a set key: exactly three `/`-separated segments are required.
pub fn parse_set_key(key: &str) -> SetKey {
    let mut parts = key.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("priv"), Some(_), Some(DEVICETOKEN_KEY), None) => SetKey::DeviceToken,
        (Some("priv"), Some(_), Some("messagenew"), None) => SetKey::MessageNew,
        _ => SetKey::Unknown,
    }
}

/// The chatmail-metadata service.
#[derive(Debug)]
pub struct MetadataService {
    config: Arc<Config>,
    store: TokenStore,
    notifier: Arc<Notifier>,
    clock: Clock,
    default_appversions: Option<String>,
    turn_timeout: Duration,
}

impl MetadataService {
    /// The service for `config`, queueing notifications with `notifier`.
    pub fn new(config: Arc<Config>, notifier: Arc<Notifier>, clock: Clock) -> Self {
        let default_appversions =
            match appversions::compact(appversions::DEFAULT_APPVERSIONS.as_bytes()) {
                Ok(v) => Some(v),
                Err(e) => {
                    error!("built-in app versions file is invalid: {e}");
                    None
                }
            };
        MetadataService {
            store: TokenStore::new(config.mailboxes_dir.clone()),
            config,
            notifier,
            clock,
            default_appversions,
            turn_timeout: turn::TURN_TIMEOUT,
        }
    }

    /// The token store.
    pub fn store(&self) -> &TokenStore {
        &self.store
    }

    /// Runs blocking file work off the runtime threads.
    async fn blocking<R: Send + 'static>(
        &self,
        work: impl FnOnce(TokenStore, Arc<Notifier>, i64) -> R + Send + 'static,
    ) -> Option<R> {
        let (store, notifier, now) = (self.store.clone(), self.notifier.clone(), self.clock.now());
        match tokio::task::spawn_blocking(move || work(store, notifier, now)).await {
            Ok(r) => Some(r),
            Err(e) => {
                error!("background task failed: {e}");
                None
            }
        }
    }

    /// The validated address of a request, or `None` (logged at debug).
    fn valid_user(&self, user: Option<&str>) -> Option<String> {
        let addr = user?;
        match self.store.user(addr) {
            Ok(_) => Some(addr.to_owned()),
            Err(e) => {
                debug!("{e}");
                None
            }
        }
    }

    async fn device_tokens(&self, user: Option<&str>) -> Lookup {
        let Some(addr) = self.valid_user(user) else {
            return Lookup::NotFound;
        };
        match self
            .blocking(move |store, _, now| store.tokens(&addr, now))
            .await
        {
            Some(Ok(tokens)) => Lookup::Found(tokens.join(" ")),
            Some(Err(e)) => {
                error!("cannot read device tokens: {e}");
                Lookup::Failed
            }
            None => Lookup::Failed,
        }
    }

    async fn turn(&self) -> Lookup {
        let path: PathBuf = self.config.turn_socket_path.clone();
        match turn::credentials(&path, self.turn_timeout).await {
            Ok(creds) => Lookup::Found(format!("{}:3478:{creds}", self.config.mail_domain)),
            Err(e) => {
                self.notifier.metrics().lookup_error(LookupError::Turn);
                error!("failed to get TURN credentials: {e}");
                Lookup::NotFound
            }
        }
    }
}

impl DictHandler for MetadataService {
    async fn lookup(&self, key: &str, user: Option<&str>) -> Lookup {
        match parse_lookup_key(key) {
            LookupKey::DeviceToken => self.device_tokens(user).await,
            LookupKey::IrohRelay if !self.config.iroh_relay.is_empty() => {
                Lookup::Found(self.config.iroh_relay.clone())
            }
            LookupKey::Turn => self.turn().await,
            LookupKey::MaxSmtpRecipients => Lookup::Found(MAX_SMTP_RECIPIENTS.to_owned()),
            LookupKey::AppVersions => {
                let path = self.config.appversions_path.as_deref();
                match appversions::lookup_checked(path, self.default_appversions.as_deref()).await {
                    appversions::AppVersions::Found(v) => Lookup::Found(v),
                    appversions::AppVersions::Missing => Lookup::NotFound,
                    appversions::AppVersions::Failed => {
                        self.notifier
                            .metrics()
                            .lookup_error(LookupError::AppVersions);
                        Lookup::NotFound
                    }
                }
            }
            LookupKey::IrohRelay | LookupKey::Unknown => {
                debug!(key, "lookup ignored");
                Lookup::NotFound
            }
        }
    }

    async fn set(&self, user: Option<&str>, key: &str, value: &str) -> bool {
        let kind = parse_set_key(key);
        if kind == SetKey::Unknown {
            debug!(key, "set of an unknown key refused");
            return false;
        }
        let Some(addr) = self.valid_user(user) else {
            return false;
        };
        let value = value.to_owned();
        let done = self
            .blocking(move |store, notifier, now| match kind {
                SetKey::DeviceToken => {
                    store.add(&addr, &value, now)?;
                    notifier.metrics().tokens_set.inc();
                    Ok(())
                }
                SetKey::MessageNew | SetKey::Unknown => {
                    let tokens = store.tokens(&addr, now)?;
                    notifier.new_message(&addr, &tokens, now)
                }
            })
            .await;
        match done {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                error!("metadata set failed: {e}");
                false
            }
            None => false,
        }
    }

    fn render_metrics(&self, enc: &mut chatmaild::metrics::Encoder) {
        let waiting = self.notifier.pending().iter().sum();
        let oldest = self
            .notifier
            .oldest_waiting()
            .map(|ts| self.clock.now() - ts);
        self.notifier.metrics().render(enc, waiting, oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_keys() {
        let s = |suffix: &str| format!("shared/0123/{SHARED_PREFIX}{suffix}");
        for (key, want) in [
            ("priv/0123/devicetoken".to_owned(), LookupKey::DeviceToken),
            ("priv/0123/devicetoken/x".to_owned(), LookupKey::Unknown),
            ("priv/devicetoken".to_owned(), LookupKey::Unknown),
            ("priv/0123/chatmail".to_owned(), LookupKey::Unknown),
            ("shared/0123/devicetoken".to_owned(), LookupKey::Unknown),
            (s("irohrelay"), LookupKey::IrohRelay),
            (s("turn"), LookupKey::Turn),
            (s("maxsmtprecipients"), LookupKey::MaxSmtpRecipients),
            (s("appversions"), LookupKey::AppVersions),
            (s("unknown"), LookupKey::Unknown),
            (s("turn/x"), LookupKey::Unknown),
            (
                "shared/0123/vendor/vendor.dovecot/pvt/server/wrong/prefix/key".to_owned(),
                LookupKey::Unknown,
            ),
            (String::new(), LookupKey::Unknown),
        ] {
            assert_eq!(parse_lookup_key(&key), want, "{key}");
        }
    }

    #[test]
    fn set_keys() {
        for (key, want) in [
            ("priv/guid00/devicetoken", SetKey::DeviceToken),
            ("priv/guid00/messagenew", SetKey::MessageNew),
            ("priv//messagenew", SetKey::MessageNew),
            ("priv/guid00/devicetoken/x", SetKey::Unknown),
            ("priv/devicetoken", SetKey::Unknown),
            ("shared/guid00/devicetoken", SetKey::Unknown),
            ("priv/guid00/other", SetKey::Unknown),
            ("", SetKey::Unknown),
        ] {
            assert_eq!(parse_set_key(key), want, "{key}");
        }
    }
}
