//! doveauth: Dovecot's passdb and userdb over the dict protocol, creating an account on
//! its first login (SPEC §3).
//!
//! doveauth never compares passwords: it answers with the stored hash and Dovecot
//! verifies the cleartext against it. Lookups of existing users are a file read on the
//! event loop; creation (hashing, locking, fsync) runs on the blocking pool, so one slow
//! first login never delays the others.
#![forbid(unsafe_code)]

pub mod cache;
pub mod error;
pub mod hash;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod migrate;
pub mod newemail;
pub mod policy;
pub mod syslimits;
pub mod userdb;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatmaild::dict::{DictHandler, Lookup};
use chatmaild::registry::Registry;
use chatmaild::{Config, User};
use tracing::{debug, error, warn};

pub use error::Error;
use keys::{AuthKey, parse_key};
use metrics::{LookupKind, LookupResult, Metrics, Refusal};

/// How long a first login waits for a concurrent creator of the same account (as the
/// reference's `filelock` timeout).
pub const CREATE_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// The text mtail counts (`: Created address: <addr>`): written to stderr as is.
pub const CREATED_ADDRESS: &str = "Created address: ";

/// What a first login came to.
#[derive(Debug)]
enum Creation {
    /// This request created the account with this hash.
    Created(String),
    /// The account exists (perhaps created concurrently) with this hash.
    Exists(String),
    /// The creation rules or the system limits refused it (already logged).
    Refused(Refused),
}

/// Why a creation was refused, as far as the one asking may learn it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// For good: the rules, the registration mode, the invitation, the address.
    Rules,
    /// For now: the creation rate cap or the system limits; a retry may succeed.
    Busy,
}

/// The answer of [`AuthHandler::create_or_verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The request created the account, or it exists and the password matches.
    Accepted,
    /// No account, or a wrong password.
    Refused(Refused),
}

/// The passdb/userdb handler, and the one creation policy behind both front ends (the
/// dict service and HTTP `/create`).
#[derive(Debug, Clone)]
pub struct AuthHandler {
    config: Arc<Config>,
    /// `@<mail_domain>`: the suffix of every address we serve.
    suffix: String,
    nocreate: PathBuf,
    hashes: Arc<cache::HashCache>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
}

impl AuthHandler {
    /// A handler for `config`, refusing creation while `nocreate_file` (default
    /// `/etc/chatmail-nocreate`) exists.
    pub fn new(config: Arc<Config>) -> Self {
        let nocreate = config.nocreate_file.clone();
        AuthHandler::with_nocreate_file(config, nocreate)
    }

    /// Like [`AuthHandler::new`] with another nocreate flag file (for tests).
    pub fn with_nocreate_file(config: Arc<Config>, nocreate: PathBuf) -> Self {
        let suffix = format!("@{}", config.mail_domain);
        let registry = Arc::new(Registry::with_nocreate(&config, nocreate.clone()));
        AuthHandler {
            config,
            suffix,
            nocreate,
            hashes: Arc::default(),
            registry,
            metrics: Arc::default(),
        }
    }

    /// What this handler (and its clones) counted.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The registration mode now (`chatmail-admin registration`, or a hand-made
    /// `nocreate_file`).
    pub fn registration_mode(&self) -> chatmaild::registry::RegistrationMode {
        self.registry.mode()
    }

    /// The user if `addr` is ours and a valid mailbox name; `None` means "no such user".
    fn our_user(&self, addr: &str) -> Option<User> {
        if !addr.ends_with(&self.suffix) {
            return None;
        }
        User::new(&self.config, addr).ok()
    }

    fn existing(&self, user: &User) -> Lookup {
        match self.hashes.userdb_json(user) {
            Ok(Some(json)) => Lookup::Found(json.to_string()),
            Ok(None) => Lookup::NotFound,
            Err(e) => {
                error!("{e}");
                Lookup::Failed
            }
        }
    }

    async fn passdb(&self, addr: &str, password: String) -> Lookup {
        let Some(user) = self.our_user(addr) else {
            return Lookup::NotFound;
        };
        match self.existing(&user) {
            Lookup::NotFound => {}
            Lookup::Found(_) if self.hashes.is_blocked(&user) => {
                debug!(addr, "account is blocked");
                return Lookup::NotFound;
            }
            found_or_failed => return found_or_failed,
        }
        match self.create_checked(user.clone(), password).await {
            Ok(Creation::Created(hash) | Creation::Exists(hash)) => {
                Lookup::Found(userdb::userdb_json(&user, &hash))
            }
            Ok(Creation::Refused(_)) => Lookup::NotFound,
            Err(e) => {
                error!("account creation failed: {e}");
                Lookup::Failed
            }
        }
    }

    /// The HTTP `/create` decision (SPEC §3.9): accepted if this request created the
    /// account, or it exists and `password` matches its hash. Refusals are logged with their
    /// reason.
    pub async fn create_or_verify(&self, addr: &str, password: String) -> Result<Verdict, Error> {
        const NO: Verdict = Verdict::Refused(Refused::Rules);
        let Some(user) = self.our_user(addr) else {
            warn!("address not in mail domain or invalid: {addr:?}");
            return Ok(NO);
        };
        let existing = user.password()?;
        let creation = match existing {
            // A blocked account is refused whatever the password (its data stays).
            Some(_) if self.hashes.is_blocked(&user) => {
                warn!("login refused for blocked address {addr}");
                return Ok(NO);
            }
            Some(hash) => Creation::Exists(hash),
            None => self.create_checked(user, password.clone()).await?,
        };
        match creation {
            Creation::Created(_) => Ok(Verdict::Accepted),
            Creation::Refused(why) => Ok(Verdict::Refused(why)),
            Creation::Exists(hash) => {
                let metrics = Arc::clone(&self.metrics);
                let ok = tokio::task::spawn_blocking(move || {
                    let started = Instant::now();
                    let ok = hash::verify_password(&hash, &password);
                    metrics.hash_seconds.observe_duration(started.elapsed());
                    ok
                })
                .await
                .map_err(Error::Task)?;
                if !ok {
                    warn!("password mismatch for existing address {addr}");
                    return Ok(NO);
                }
                Ok(Verdict::Accepted)
            }
        }
    }

    /// The creation rules, then [`AuthHandler::create`] off the event loop.
    async fn create_checked(&self, user: User, password: String) -> Result<Creation, Error> {
        if let Some((class, reason)) =
            policy::classified_refusal(&self.config, &self.nocreate, user.addr(), &password)
        {
            warn!("{reason}");
            self.metrics.refused(class);
            return Ok(Creation::Refused(Refused::Rules));
        }
        if let Some(refusal) = self.registry.precheck(&user, &password, policy::now()) {
            warn!("{}{refusal}", policy::REGISTRATION_REJECTED);
            self.metrics.refused(Refusal::of_registry(&refusal));
            return Ok(Creation::Refused(Refused::Rules));
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.create(&user, &password))
            .await
            .map_err(Error::Task)?
    }

    /// Creates the account under `password.lock` unless a concurrent login already did.
    fn create(&self, user: &User, password: &str) -> Result<Creation, Error> {
        let Some(_lock) = user.lock_password(CREATE_LOCK_TIMEOUT)? else {
            return Err(Error::LockTimeout(user.password_lock_path()));
        };
        if let Some(pw) = user.password()? {
            return Ok(Creation::Exists(pw));
        }
        let readings = syslimits::Readings::read(&self.config.mailboxes_dir);
        if let Some(reason) = readings.refusal(&self.config) {
            warn!("registration rejected: {reason}");
            self.metrics.refused(Refusal::Limits);
            return Ok(Creation::Refused(Refused::Busy));
        }
        if let Some(refusal) = self.registry.admit(user, password, policy::now())? {
            warn!("{}{refusal}", policy::REGISTRATION_REJECTED);
            self.metrics.refused(Refusal::of_registry(&refusal));
            let why = match refusal {
                chatmaild::registry::Refusal::RateCap(_) => Refused::Busy,
                _ => Refused::Rules,
            };
            return Ok(Creation::Refused(why));
        }
        let started = Instant::now();
        let hash = hash::hash_password(self.config.password_scheme, password)?;
        self.metrics
            .hash_seconds
            .observe_duration(started.elapsed());
        user.set_password(&hash)?;
        eprintln!("{CREATED_ADDRESS}{}", user.addr());
        self.metrics.created.inc();
        Ok(Creation::Created(hash))
    }

    /// Every mailbox that has a password file, as `shared/userdb/<addr>`.
    fn list_users(&self) -> Vec<(String, String)> {
        let dir = &self.config.mailboxes_dir;
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                error!("cannot list {}: {e}", dir.display());
                return Vec::new();
            }
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name.contains('@') && !name.contains(['\t', '\n', '\r', '\0']))
            .filter(|name| dir.join(name).join("password").is_file())
            .map(|name| (format!("shared/userdb/{name}"), String::new()))
            .collect()
    }
}

impl DictHandler for AuthHandler {
    async fn lookup(&self, key: &str, _user: Option<&str>) -> Lookup {
        let (kind, found) = self.lookup_key(key).await;
        self.metrics.lookup(kind, result_of(&found));
        found
    }

    async fn iterate(&self, path: &str, _user: Option<&str>) -> Vec<(String, String)> {
        if path != "shared/userdb/" {
            debug!(path, "iteration of unknown path");
            self.metrics
                .lookup(LookupKind::Iterate, LookupResult::NotFound);
            return Vec::new();
        }
        let this = self.clone();
        let users = tokio::task::spawn_blocking(move || this.list_users()).await;
        let result = if users.is_ok() {
            LookupResult::Found
        } else {
            LookupResult::Failed
        };
        self.metrics.lookup(LookupKind::Iterate, result);
        users.unwrap_or_default()
    }

    async fn set(&self, _user: Option<&str>, key: &str, _value: &str) -> bool {
        debug!(key, "doveauth does not store values");
        false
    }

    fn render_metrics(&self, enc: &mut chatmaild::metrics::Encoder) {
        self.metrics.render(enc);
    }
}

/// The `result` label of a lookup's answer.
fn result_of(l: &Lookup) -> LookupResult {
    match l {
        Lookup::Found(_) => LookupResult::Found,
        Lookup::NotFound => LookupResult::NotFound,
        Lookup::Failed => LookupResult::Failed,
    }
}

impl AuthHandler {
    /// The answer to one dict lookup, and what kind of lookup it was (a malformed key
    /// counts as a failed passdb lookup).
    async fn lookup_key(&self, key: &str) -> (LookupKind, Lookup) {
        match parse_key(key) {
            Err(e) => {
                warn!(reason = e.0, "malformed auth lookup key");
                (LookupKind::Passdb, Lookup::Failed)
            }
            // A blocked account is "no such user": it can neither log in nor receive mail.
            Ok(AuthKey::Userdb { user }) => (
                LookupKind::Userdb,
                match self.our_user(&user) {
                    Some(u) => match self.existing(&u) {
                        Lookup::Found(_) if self.hashes.is_blocked(&u) => Lookup::NotFound,
                        other => other,
                    },
                    None => Lookup::NotFound,
                },
            ),
            Ok(AuthKey::Passdb { password, user }) => {
                (LookupKind::Passdb, self.passdb(&user, password).await)
            }
        }
    }
}
