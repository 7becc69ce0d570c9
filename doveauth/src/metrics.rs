//! What doveauth counts, published on its metrics socket (see [`chatmaild::metrics`]):
//! lookups by kind and result, accounts created, creations refused by reason, and the
//! time spent hashing and verifying passwords. Both front ends (the dict service and HTTP
//! `/create`) count into the same figures, since both run the one creation policy.

use chatmaild::metrics::names::doveauth as names;
use chatmaild::metrics::{
    Counter, CounterGrid, CounterVec, Encoder, Histogram, LATENCY_BUCKETS, labels,
};

pub use names::{ACCOUNTS_CREATED, CREATIONS_REFUSED, HASH_SECONDS, LOOKUPS};

labels! {
    /// What was asked (the `kind` label of [`LOOKUPS`]).
    pub enum LookupKind {
        /// A dict passdb lookup (may create the account).
        Passdb => "passdb",
        /// A dict userdb lookup.
        Userdb => "userdb",
        /// A dict iteration of all users (`doveadm -A`).
        Iterate => "iterate",
        /// An HTTP `/create` request (Lua passdb).
        Create => "create",
    }
}

labels! {
    /// How a lookup ended (the `result` label of [`LOOKUPS`]). For `/create`: `found` is
    /// 200 (created, or existing with that password), `not_found` 403, `failed` an error.
    pub enum LookupResult {
        /// Answered with the user.
        Found => "found",
        /// No such user (or refused).
        NotFound => "not_found",
        /// Could not be answered.
        Failed => "failed",
    }
}

labels! {
    /// Why an account was not created (the `reason` label of [`CREATIONS_REFUSED`]).
    pub enum Refusal {
        /// `nocreate_file` exists.
        Nocreate => "nocreate",
        /// Load, memory or disk beyond the configured limits.
        Limits => "limits",
        /// The address is not a name the creation rules allow.
        InvalidName => "invalid_name",
        /// The password is too short.
        InvalidPassword => "invalid_password",
        /// `max_creations_per_minute` reached.
        RateCap => "rate_cap",
        /// The address was deleted or expired and is not free yet.
        Tombstoned => "tombstoned",
        /// The address belongs to a blocked account.
        Blocked => "blocked",
        /// Invite-only: no valid invitation in the password.
        Invitation => "invitation",
    }
}

impl Refusal {
    /// The reason of a refusal by the relay's account state.
    pub fn of_registry(r: &chatmaild::registry::Refusal) -> Refusal {
        use chatmaild::registry::Refusal as R;
        match r {
            R::Tombstoned(_) => Refusal::Tombstoned,
            R::Blocked(_) => Refusal::Blocked,
            R::InvitationRequired | R::InvalidInvitation => Refusal::Invitation,
            R::ShortPassword(_) => Refusal::InvalidPassword,
            R::RateCap(_) => Refusal::RateCap,
        }
    }
}

/// The counters of one doveauth.
#[derive(Debug)]
pub struct Metrics {
    /// See [`LOOKUPS`]: rows [`LookupKind`], columns [`LookupResult`].
    lookups: CounterGrid,
    /// See [`ACCOUNTS_CREATED`].
    pub created: Counter,
    refused: CounterVec,
    /// See [`HASH_SECONDS`].
    pub hash_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            lookups: CounterGrid::new("kind", LookupKind::VALUES, "result", LookupResult::VALUES),
            created: Counter::new(),
            refused: CounterVec::new("reason", Refusal::VALUES),
            hash_seconds: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

impl Metrics {
    /// Counts one lookup.
    pub fn lookup(&self, kind: LookupKind, result: LookupResult) {
        self.lookups.inc(kind.index(), result.index());
    }

    /// Counts a refused creation.
    pub fn refused(&self, r: Refusal) {
        self.refused.inc(r.index());
    }

    /// Writes every family.
    pub fn render(&self, enc: &mut Encoder) {
        enc.counter_grid(
            LOOKUPS,
            "Lookups by kind (dict passdb, userdb, iterate; HTTP create) and result.",
            &self.lookups,
        );
        enc.counter(
            ACCOUNTS_CREATED,
            "Accounts created by a first login.",
            &self.created,
        );
        enc.counter_vec(
            CREATIONS_REFUSED,
            "First logins that created no account, by reason.",
            &self.refused,
        );
        enc.histogram(
            HASH_SECONDS,
            "Time to hash a new account's password or verify an existing one's.",
            &self.hash_seconds,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_lists_match_the_enums() {
        assert_eq!(LookupKind::VALUES.len(), LookupKind::Create.index() + 1);
        assert_eq!(LookupResult::VALUES.len(), LookupResult::Failed.index() + 1);
        assert_eq!(Refusal::VALUES.len(), Refusal::Invitation.index() + 1);
        assert_eq!(LookupKind::Create.label(), "create");
        assert_eq!(Refusal::RateCap.label(), "rate_cap");
    }

    #[test]
    fn every_series_is_rendered_with_both_labels() {
        let m = Metrics::default();
        m.lookup(LookupKind::Userdb, LookupResult::NotFound);
        m.lookup(LookupKind::Userdb, LookupResult::NotFound);
        m.refused(Refusal::Blocked);
        let mut e = Encoder::new();
        m.render(&mut e);
        let text = e.finish();
        assert!(
            text.contains(
                "chatmail_doveauth_lookups_total{kind=\"userdb\",result=\"not_found\"} 2\n"
            )
        );
        assert!(
            text.contains("chatmail_doveauth_lookups_total{kind=\"passdb\",result=\"found\"} 0\n")
        );
        assert!(text.contains("chatmail_doveauth_creations_refused_total{reason=\"blocked\"} 1\n"));
        assert!(text.contains("chatmail_doveauth_accounts_created_total 0\n"));
        assert_eq!(
            text.matches("chatmail_doveauth_lookups_total{").count(),
            LookupKind::VALUES.len() * LookupResult::VALUES.len()
        );
    }
}
