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
pub mod migrate;
pub mod newemail;
pub mod policy;
pub mod syslimits;
pub mod userdb;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chatmaild::dict::{DictHandler, Lookup};
use chatmaild::registry::Registry;
use chatmaild::{Config, User};
use tracing::{debug, error, warn};

pub use error::Error;
use keys::{AuthKey, parse_key};

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
    Refused,
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
        }
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
            Ok(Creation::Refused) => Lookup::NotFound,
            Err(e) => {
                error!("account creation failed: {e}");
                Lookup::Failed
            }
        }
    }

    /// The HTTP `/create` decision (SPEC §3.9): `true` if this request created the account,
    /// or it exists and `password` matches its hash. Refusals are logged with their reason.
    pub async fn create_or_verify(&self, addr: &str, password: String) -> Result<bool, Error> {
        let Some(user) = self.our_user(addr) else {
            warn!("address not in mail domain or invalid: {addr:?}");
            return Ok(false);
        };
        let existing = user.password()?;
        let creation = match existing {
            // A blocked account is refused whatever the password (its data stays).
            Some(_) if self.hashes.is_blocked(&user) => {
                warn!("login refused for blocked address {addr}");
                return Ok(false);
            }
            Some(hash) => Creation::Exists(hash),
            None => self.create_checked(user, password.clone()).await?,
        };
        match creation {
            Creation::Created(_) => Ok(true),
            Creation::Refused => Ok(false),
            Creation::Exists(hash) => {
                let ok =
                    tokio::task::spawn_blocking(move || hash::verify_password(&hash, &password))
                        .await
                        .map_err(|e| Error::Task(e.to_string()))?;
                if !ok {
                    warn!("password mismatch for existing address {addr}");
                }
                Ok(ok)
            }
        }
    }

    /// The creation rules, then [`AuthHandler::create`] off the event loop.
    async fn create_checked(&self, user: User, password: String) -> Result<Creation, Error> {
        if let Some(reason) =
            policy::creation_refusal(&self.config, &self.nocreate, user.addr(), &password)
        {
            warn!("{reason}");
            return Ok(Creation::Refused);
        }
        if let Some(refusal) = self.registry.precheck(&user, &password, policy::now()) {
            warn!("{}{refusal}", policy::REGISTRATION_REJECTED);
            return Ok(Creation::Refused);
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.create(&user, &password))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
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
            return Ok(Creation::Refused);
        }
        if let Some(refusal) = self.registry.admit(user, password, policy::now())? {
            warn!("{}{refusal}", policy::REGISTRATION_REJECTED);
            return Ok(Creation::Refused);
        }
        let hash = hash::hash_password(self.config.password_scheme, password)?;
        user.set_password(&hash)?;
        eprintln!("{CREATED_ADDRESS}{}", user.addr());
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
        match parse_key(key) {
            Err(e) => {
                warn!(reason = e.0, "malformed auth lookup key");
                Lookup::Failed
            }
            // A blocked account is "no such user": it can neither log in nor receive mail.
            Ok(AuthKey::Userdb { user }) => match self.our_user(&user) {
                Some(u) => match self.existing(&u) {
                    Lookup::Found(_) if self.hashes.is_blocked(&u) => Lookup::NotFound,
                    other => other,
                },
                None => Lookup::NotFound,
            },
            Ok(AuthKey::Passdb { password, user }) => self.passdb(&user, password).await,
        }
    }

    async fn iterate(&self, path: &str, _user: Option<&str>) -> Vec<(String, String)> {
        if path != "shared/userdb/" {
            debug!(path, "iteration of unknown path");
            return Vec::new();
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.list_users())
            .await
            .unwrap_or_default()
    }

    async fn set(&self, _user: Option<&str>, key: &str, _value: &str) -> bool {
        debug!(key, "doveauth does not store values");
        false
    }
}
