//! Failed password checks of HTTP `/create`, throttled so that the port is no password
//! oracle (SPEC §3.9 keeps upstream's contract: `200` for an existing account with the
//! right password, which Dovecot's concurrent first logins of one address need).
//!
//! Every failed check of an existing account's password sets a back-off on the address and
//! on the peer that asked, growing like Dovecot's auth penalty: 2 s after the first failure,
//! then 4, 8 and at most 15 s, forgotten an hour after the last failure (an address's also
//! after a right password). While either is backed off, a check is answered `403` at once,
//! without running the hash: the answer then says nothing about the password, so a client
//! learns at most one password per back-off period. The peer counts so that spraying many
//! addresses is bounded too; every loopback address is one peer, because any local process
//! can pick its own 127.x source address. Checks run one at a time ([`crate::AuthHandler`]),
//! so parallel requests cannot all pass the back-off before the first failure is recorded.
//!
//! Why this cannot lock the real user out: Dovecot never asks `/create` about an account
//! that exists. Its auth script verifies every login of an existing account against the
//! password file itself (SPEC §3.9), and the dict mode returns the hash for Dovecot to
//! verify, so a backed-off address or peer changes nothing for the owner's logins over IMAP
//! or SMTP. Creating a new account is never throttled here (the creation rules and the rate
//! cap decide that). The one legitimate check of an existing account is the second of two
//! concurrent first logins of a new address; refused during a back-off, that client's login
//! fails once as for an unknown user, and its retry is served from the password file without
//! asking doveauth. What a hostile local client can do is keep the peer backed off, which
//! costs such a race one retry; refusing without hashing (rather than delaying the answer)
//! also keeps it from holding connections or CPU.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Back-off after the first failure (Dovecot's `AUTH_PENALTY_INIT_SECS`).
pub const FIRST_DELAY: Duration = Duration::from_secs(2);
/// Longest back-off (Dovecot's `AUTH_PENALTY_MAX_SECS`).
pub const MAX_DELAY: Duration = Duration::from_secs(15);
/// A failure is forgotten this long after it.
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Most addresses and peers remembered; past it (after dropping the forgotten ones) every
/// check is refused, so memory stays bounded whatever a client sends.
pub const MAX_ENTRIES: usize = 100_000;

/// The back-off after `failures` failures: 0, 2, 4, 8, 15, 15, … seconds.
pub fn delay(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => FIRST_DELAY
            .saturating_mul(1u32.checked_shl(n - 1).unwrap_or(u32::MAX))
            .min(MAX_DELAY),
    }
}

/// The peer a failure is counted against: every loopback address is one.
pub fn peer_key(peer: IpAddr) -> IpAddr {
    let peer = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
        v4 => v4,
    };
    if peer.is_loopback() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        peer
    }
}

#[derive(Debug, Clone, Copy)]
struct Penalty {
    failures: u32,
    last: Instant,
}

impl Penalty {
    fn backs_off(&self, now: Instant) -> bool {
        now < self.last + delay(self.failures)
    }

    fn forgotten(&self, now: Instant) -> bool {
        now >= self.last + FORGET_AFTER
    }
}

#[derive(Debug, Default)]
struct Penalties {
    addrs: HashMap<String, Penalty>,
    peers: HashMap<IpAddr, Penalty>,
}

/// The back-offs of one doveauth process.
#[derive(Debug, Default)]
pub struct Throttle {
    state: Mutex<Penalties>,
}

impl Throttle {
    /// Whether a check of `addr`'s password asked by `peer` may run at `now`.
    pub fn allows(&self, addr: &str, peer: IpAddr, now: Instant) -> bool {
        let mut s = self.lock();
        let peer = peer_key(peer);
        let full = s.addrs.len() + s.peers.len() >= MAX_ENTRIES;
        if full {
            s.addrs.retain(|_, p| !p.forgotten(now));
            s.peers.retain(|_, p| !p.forgotten(now));
            if s.addrs.len() + s.peers.len() >= MAX_ENTRIES {
                return false;
            }
        }
        let backs_off = |p: Option<&Penalty>| p.is_some_and(|p| p.backs_off(now));
        !backs_off(s.addrs.get(addr)) && !backs_off(s.peers.get(&peer))
    }

    /// Records a failed check.
    pub fn failed(&self, addr: &str, peer: IpAddr, now: Instant) {
        let mut s = self.lock();
        let bump = |p: &mut Penalty| {
            p.failures = if p.forgotten(now) {
                1
            } else {
                p.failures.saturating_add(1)
            };
            p.last = now;
        };
        let fresh = Penalty {
            failures: 0,
            last: now,
        };
        bump(s.addrs.entry(addr.to_owned()).or_insert(fresh));
        bump(s.peers.entry(peer_key(peer)).or_insert(fresh));
    }

    /// Records a right password: the address's failures are forgotten (the peer's are not,
    /// or a client could clear its back-off by checking its own account in between).
    pub fn succeeded(&self, addr: &str) {
        self.lock().addrs.remove(addr);
    }

    fn lock(&self) -> MutexGuard<'_, Penalties> {
        // Each update is one call that leaves the maps consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn delays_grow_like_dovecots_auth_penalty() {
        let secs: Vec<u64> = (0..7).map(|n| delay(n).as_secs()).collect();
        assert_eq!(secs, [0, 2, 4, 8, 15, 15, 15]);
        assert_eq!(delay(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn loopback_is_one_peer() {
        for p in ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.9"] {
            assert_eq!(peer_key(p.parse().unwrap()), LOCAL, "{p}");
        }
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(peer_key(other), other);
    }

    #[test]
    fn a_failure_backs_off_the_address_and_the_peer() {
        let t = Throttle::default();
        let t0 = Instant::now();
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(t.allows("a@x", LOCAL, t0));
        t.failed("a@x", "127.0.0.5".parse().unwrap(), t0);
        assert!(!t.allows("a@x", other, t0), "the address");
        assert!(!t.allows("b@x", LOCAL, t0), "the peer, for any address");
        assert!(
            t.allows("b@x", other, t0),
            "another address from another peer"
        );
        assert!(t.allows("a@x", LOCAL, t0 + FIRST_DELAY));
        t.failed("a@x", LOCAL, t0 + FIRST_DELAY);
        assert!(!t.allows("a@x", other, t0 + FIRST_DELAY * 2));
        assert!(
            t.allows("a@x", other, t0 + FIRST_DELAY * 3),
            "4 s after the second"
        );
        // A right password clears the address, not the peer.
        t.succeeded("a@x");
        assert!(t.allows("a@x", other, t0 + FIRST_DELAY));
        assert!(!t.allows("c@x", LOCAL, t0 + FIRST_DELAY * 2));
        // Forgotten an hour later: the next failure starts at 2 s again.
        let later = t0 + FORGET_AFTER + FIRST_DELAY;
        t.failed("c@x", LOCAL, later);
        assert!(t.allows("c@x", LOCAL, later + FIRST_DELAY));
    }
}
