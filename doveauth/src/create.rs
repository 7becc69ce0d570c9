//! Account creation on first login (SPEC §3.4) and HTTP `/create`'s password check (§3.9).
//!
//! A refused first login leaves nothing behind. Every refusal that needs no lock is decided
//! before anything exists on disk: the creation rules, the account state, the system limits
//! and the rate cap, whose slot is reserved here and given back if no account comes of it.
//! What is decided under `password.lock` (the account state again, the invitation's last
//! use) may still refuse after the lock made `<addr>/` and `password.lock`; those are then
//! removed under the lock, so a flood of refused logins costs no inodes
//! ([`chatmaild::User::remove_if_unused`] says why that is safe against a concurrent
//! creation of the same address).

use std::time::Instant;

use chatmaild::User;
use chatmaild::registry::Reservation;
use chatmaild::wall_time::unix_seconds;
use tracing::warn;

use crate::metrics::Refusal;
use crate::{
    Asker, AuthHandler, AuthVerdict, CREATE_LOCK_TIMEOUT, CREATED_ADDRESS, Creation, Error,
    Refused, hash, policy, syslimits,
};

impl AuthHandler {
    /// The HTTP `/create` decision (SPEC §3.9): accepted if this request created the
    /// account, or it exists and `password` matches its hash. Refusals are logged with their
    /// reason.
    pub async fn create_or_verify(
        &self,
        addr: &str,
        password: String,
        asker: Asker,
    ) -> Result<AuthVerdict, Error> {
        const NO: AuthVerdict = AuthVerdict::Refused(Refused::Rules);
        let Some(user) = self.our_user(addr) else {
            warn!("address not in mail domain or invalid: {addr:?}");
            return Ok(NO);
        };
        let creation = match user.password()? {
            // A blocked account is refused whatever the password (its data stays).
            Some(_) if self.hashes.is_blocked(&user) => {
                warn!("login refused for blocked address {addr}");
                return Ok(NO);
            }
            Some(hash) => Creation::Exists(hash),
            None => {
                self.create_checked(user.clone(), password.clone(), asker)
                    .await?
            }
        };
        match creation {
            Creation::Created(_) => Ok(AuthVerdict::Accepted),
            Creation::Refused(why) => Ok(AuthVerdict::Refused(why)),
            Creation::Exists(hash) => self.check_password(&user, hash, password, asker).await,
        }
    }

    /// Checks `password` against an existing account's `hash`, one check at a time and
    /// only while neither the address nor the peer is backed off ([`crate::throttle`]).
    async fn check_password(
        &self,
        user: &User,
        hash: String,
        password: String,
        asker: Asker,
    ) -> Result<AuthVerdict, Error> {
        let peer = asker.peer.unwrap_or(std::net::Ipv6Addr::UNSPECIFIED.into());
        let _one_at_a_time = self.checking.lock().await;
        if !self.throttle.allows(user.addr(), peer, Instant::now()) {
            warn!(
                "password check refused for {}: failed checks back off",
                user.addr()
            );
            return Ok(AuthVerdict::Refused(Refused::Rules));
        }
        let metrics = std::sync::Arc::clone(&self.metrics);
        let ok = self
            .hashing(move || {
                let started = Instant::now();
                let ok = hash::verify_password(&hash, &password);
                metrics.hash_seconds.observe_duration(started.elapsed());
                Ok(ok)
            })
            .await?;
        if ok {
            self.throttle.succeeded(user.addr());
            Ok(AuthVerdict::Accepted)
        } else {
            warn!("password mismatch for existing address {}", user.addr());
            self.throttle.failed(user.addr(), peer, Instant::now());
            Ok(AuthVerdict::Refused(Refused::Rules))
        }
    }

    /// Runs `work` (hashing, perhaps under a lock) on the blocking pool once one of the
    /// [`crate::hash_permits`] is free.
    async fn hashing<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        // The semaphore is never closed, so acquiring only waits.
        let permit = self.hashing.clone().acquire_owned().await.ok();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(Error::Task)?
    }

    /// Every check that needs no lock, then [`AuthHandler::create`] off the event loop.
    pub(crate) async fn create_checked(
        &self,
        user: User,
        password: String,
        asker: Asker,
    ) -> Result<Creation, Error> {
        if let Some(refusal) = self.refusal_before_lock(&user, &password) {
            return Ok(Creation::Refused(refusal));
        }
        let reservation = match self.registry.reserve_creation(asker.client, unix_seconds()) {
            Ok(r) => r,
            Err(refusal) => {
                warn!("{}{refusal}", policy::REGISTRATION_REJECTED);
                self.metrics.refused(Refusal::of_registry(&refusal));
                return Ok(Creation::Refused(Refused::Busy));
            }
        };
        let this = self.clone();
        self.hashing(move || this.create(&user, &password, reservation))
            .await
    }

    /// The creation rules, the account state and the system limits, in that order: the
    /// refusal, if any (logged and counted).
    fn refusal_before_lock(&self, user: &User, password: &str) -> Option<Refused> {
        if let Some((class, reason)) =
            policy::classified_refusal(&self.config, &self.nocreate, user.addr(), password)
        {
            warn!("{reason}");
            self.metrics.refused(class);
            return Some(Refused::Rules);
        }
        if let Some(refusal) = self.registry.precheck(user, password, unix_seconds()) {
            warn!("{}{refusal}", policy::REGISTRATION_REJECTED);
            self.metrics.refused(Refusal::of_registry(&refusal));
            return Some(Refused::Rules);
        }
        let readings = syslimits::Readings::read(&self.config.mailboxes_dir);
        if let Some(reason) = readings.refusal(&self.config) {
            warn!("{}{reason}", policy::REGISTRATION_REJECTED);
            self.metrics.refused(Refusal::Limits);
            return Some(Refused::Busy);
        }
        None
    }

    /// Creates the account under `password.lock` unless a concurrent login already did;
    /// whatever else comes of it, removes the mailbox it made and gives the rate slot back.
    fn create(
        &self,
        user: &User,
        password: &str,
        reservation: Reservation,
    ) -> Result<Creation, Error> {
        let Some(lock) = user.lock_password(CREATE_LOCK_TIMEOUT)? else {
            return Err(Error::LockTimeout(user.password_lock_path()));
        };
        if let Some(pw) = user.password()? {
            return Ok(Creation::Exists(pw));
        }
        let outcome = self.create_locked(user, password);
        if matches!(outcome, Ok(Creation::Created(_))) {
            reservation.commit();
        } else if let Err(e) = user.remove_if_unused(lock) {
            warn!("cannot remove the unused mailbox of {}: {e}", user.addr());
        }
        outcome
    }

    /// The checks that need the lock, then the hash and the password file.
    fn create_locked(&self, user: &User, password: &str) -> Result<Creation, Error> {
        if let Some(refusal) = self.registry.admit(user, password, unix_seconds())? {
            warn!("{}{refusal}", policy::REGISTRATION_REJECTED);
            self.metrics.refused(Refusal::of_registry(&refusal));
            return Ok(Creation::Refused(Refused::Rules));
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
}
