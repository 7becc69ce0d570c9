//! doveauth: Dovecot's passdb and userdb over the dict protocol, creating an account on
//! its first login (SPEC §3).
//!
//! doveauth never compares passwords for Dovecot: it answers with the stored hash and
//! Dovecot verifies the cleartext against it (only HTTP `/create` verifies, for concurrent
//! first logins, see `throttle`). Lookups of existing users are a file read on the event
//! loop; creation (hashing, locking, fsync) runs on the blocking pool, so one slow first
//! login never delays the others, and at most [`hash_permits`] hashes run at once, so a
//! memory-hard scheme cannot take the machine's memory.
#![forbid(unsafe_code)]

mod cache;
mod conns;
mod create;
mod error;
mod hash;
mod http;
mod keys;
mod manual;
mod metrics;
mod migrate;
mod newemail;
mod policy;
mod syslimits;
mod throttle;
mod userdb;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chatmaild::dict::{DictHandler, Lookup};
use chatmaild::registry::Registry;
use chatmaild::{Config, User};
use tokio::sync::Semaphore;
use tracing::{debug, error, warn};

pub use error::Error;
pub use http::default_metrics_socket;
use keys::{AuthKey, parse_key};
use metrics::{LookupKind, LookupResult, Metrics};
pub use newemail::main_entry as newemail_entry;

/// The manuals of this package's binaries (`doveauth`, `chatmail-newemail`).
pub const MANUALS: &[&chatmaild::manual::Page] = &[&manual::DOVEAUTH, &manual::NEWEMAIL];

/// What the fuzz targets drive beneath the public list (feature `internals`, never on in
/// a service build).
#[cfg(feature = "internals")]
pub mod internals {
    pub use crate::keys::{AuthKey, parse_key};
}

/// How long a first login waits for a concurrent creator of the same account (as the
/// reference's `filelock` timeout).
const CREATE_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// The text mtail counts (`: Created address: <addr>`): written to stderr as is.
const CREATED_ADDRESS: &str = "Created address: ";

/// Password hashes computed or verified at once: twice the cores, so the CPUs stay busy
/// while the memory a memory-hard scheme takes stays bounded (argon2id takes about 19 MiB
/// per hash; 64 at once took gigabytes).
pub fn hash_permits() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().saturating_mul(2))
}

/// Who asks for a first login, as far as doveauth can tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Asker {
    /// The connection's peer (HTTP mode; the dict socket has none).
    pub peer: Option<IpAddr>,
    /// The client the login comes from, as the auth script or Dovecot's dict key passes it
    /// (`None` when they do not: the creation then counts against the relay-wide ceiling
    /// only).
    pub client: Option<IpAddr>,
}

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
enum Refused {
    /// For good: the rules, the registration mode, the invitation, the address.
    Rules,
    /// For now: the creation rate cap or the system limits; a retry may succeed.
    Busy,
}

/// The answer of [`AuthHandler::create_or_verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthVerdict {
    /// The request created the account, or it exists and the password matches.
    Accepted,
    /// No account, or a wrong password.
    Refused(Refused),
}

/// The passdb/userdb handler, and the one creation policy behind both front ends (the
/// dict service and HTTP `/create`).
#[derive(Debug, Clone)]
struct AuthHandler {
    config: Arc<Config>,
    /// `@<mail_domain>`: the suffix of every address we serve.
    suffix: String,
    nocreate: PathBuf,
    hashes: Arc<cache::HashCache>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    /// At most [`hash_permits`] hashes at once.
    hashing: Arc<Semaphore>,
    /// Password checks of `/create` run one at a time (see [`throttle`]).
    checking: Arc<tokio::sync::Mutex<()>>,
    throttle: Arc<throttle::Throttle>,
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
            hashing: Arc::new(Semaphore::new(hash_permits())),
            checking: Arc::default(),
            throttle: Arc::default(),
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

    async fn passdb(&self, addr: &str, password: String, client: Option<IpAddr>) -> Lookup {
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
        let asker = Asker { peer: None, client };
        match self.create_checked(user.clone(), password, asker).await {
            Ok(Creation::Created(hash) | Creation::Exists(hash)) => {
                Lookup::Found(userdb::userdb_json(&user, &hash))
            }
            Ok(Creation::Refused(Refused::Rules)) => Lookup::NotFound,
            // A failed lookup is Dovecot's temporary failure (`NO [UNAVAILABLE]`): the client
            // retries instead of being told its password is wrong.
            Ok(Creation::Refused(Refused::Busy)) => Lookup::Failed,
            Err(e) => {
                error!("account creation failed: {e}");
                Lookup::Failed
            }
        }
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
            Ok(AuthKey::Passdb {
                password,
                user,
                client,
            }) => (
                LookupKind::Passdb,
                self.passdb(&user, password, client).await,
            ),
        }
    }
}

/// The `doveauth` binary: `doveauth INI_PATH` serves HTTP `/create` for Dovecot's Lua passdb
/// (Dovecot 2.4, and 2.3.19+); `doveauth SOCKET_PATH INI_PATH` the passdb/userdb dict
/// (Dovecot 2.3). Every service library's binary calls its `main_entry`.
pub fn main_entry() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if let [flag] = args.as_slice()
        && (flag == "--help" || flag == "-h")
    {
        return manual::DOVEAUTH.print_help();
    }
    if args
        .iter()
        .any(|a| a.to_str().is_some_and(|s| s.starts_with('-')))
    {
        eprintln!("{}", manual::DOVEAUTH.usage);
        return ExitCode::from(chatmaild::service::EXIT_USAGE);
    }
    match args.as_slice() {
        [ini] => http::run(&PathBuf::from(ini)),
        [_, _] => chatmaild::service::run_dict_daemon(&manual::DOVEAUTH, |config, _| {
            migrate::migrate_if_present(&config).map_err(|e| match e {
                Error::Chatmaild(inner) => inner,
                other => chatmaild::Error::io(
                    &config.passdb_path,
                    std::io::Error::other(other.to_string()),
                ),
            })?;
            Ok::<_, chatmaild::Error>(AuthHandler::new(config))
        }),
        _ => {
            eprintln!("{}", manual::DOVEAUTH.usage);
            ExitCode::from(chatmaild::service::EXIT_USAGE)
        }
    }
}
