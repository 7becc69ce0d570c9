//! The creation rate cap: `max_creations_per_minute` per client address, under a relay-wide
//! ceiling `max_creations_per_minute_total` (both 0, off, by default; the reference has no
//! cap).
//!
//! Counted per client so that one client cannot spend the relay's whole budget and lock
//! everyone else out, with the ceiling above it so that a flood from many addresses stays
//! bounded. A creation whose client is unknown (an auth script that does not pass it, a
//! Dovecot without `%{rip}` in its dict key) counts against the ceiling only.
//!
//! A client is its IPv4 address, or the /64 network of an IPv6 address: one IPv6 host
//! usually holds a whole /64, so counting single IPv6 addresses would count nothing.
//!
//! A slot is reserved before anything is created ([`CreationRate::reserve`]) and given back
//! when no account comes of it (the address existed meanwhile, a later check refused it, or
//! the creation failed), so a refusal never spends the budget and a refused first login is
//! decided before it touches the disk. The counts live in memory: one doveauth process makes
//! every account of a relay, and a restart forgets at most one minute.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The window of the cap, in seconds.
pub const RATE_WINDOW_SECS: i64 = 60;

/// What the cap counts one client as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// The client of address `ip`: IPv4 (also IPv4-mapped IPv6) as is, IPv6 as its /64.
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    let net = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                    ClientKey(IpAddr::V6(net))
                }
            },
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Which limit refused a creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimit {
    /// `max_creations_per_minute` creations from this client in the last minute.
    Client(u32, ClientKey),
    /// `max_creations_per_minute_total` creations in the last minute, relay-wide.
    Total(u32),
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateLimit::Client(n, client) => {
                write!(f, "more than {n} creations per minute from {client}")
            }
            RateLimit::Total(n) => write!(f, "more than {n} creations per minute"),
        }
    }
}

/// Reserved creation times: (time, reservation id), oldest first.
type Times = VecDeque<(i64, u64)>;

#[derive(Debug, Default)]
struct Counts {
    total: Times,
    by_client: HashMap<ClientKey, Times>,
    next_id: u64,
}

/// The counts of one process (clones share them).
#[derive(Debug, Clone)]
pub struct CreationRate {
    per_client: u32,
    total: u32,
    counts: Arc<Mutex<Counts>>,
}

/// A reserved slot; dropped without [`Reservation::commit`] it is given back.
#[derive(Debug)]
#[must_use = "a reservation not committed is given back when dropped"]
pub struct Reservation {
    counts: Option<Arc<Mutex<Counts>>>,
    client: Option<ClientKey>,
    id: u64,
}

impl CreationRate {
    /// A cap of `per_client` creations per minute per client and `total` relay-wide (0: no
    /// limit of that kind).
    pub fn new(per_client: u32, total: u32) -> CreationRate {
        CreationRate {
            per_client,
            total,
            counts: Arc::default(),
        }
    }

    /// Reserves one creation at `now` (Unix seconds) for `client`, unless a limit is
    /// reached.
    pub fn reserve(&self, client: Option<IpAddr>, now: i64) -> Result<Reservation, RateLimit> {
        let client = client.map(ClientKey::of);
        if self.per_client == 0 && self.total == 0 {
            return Ok(Reservation {
                counts: None,
                client,
                id: 0,
            });
        }
        let mut counts = lock(&self.counts);
        counts.forget_before(now);
        if self.total != 0 && counts.total.len() >= limit(self.total) {
            return Err(RateLimit::Total(self.total));
        }
        let per_client = self.per_client;
        if let Some(key) = client
            && per_client != 0
            && counts.by_client.get(&key).map_or(0, VecDeque::len) >= limit(per_client)
        {
            return Err(RateLimit::Client(per_client, key));
        }
        counts.next_id += 1;
        let id = counts.next_id;
        counts.total.push_back((now, id));
        if let Some(key) = client {
            counts
                .by_client
                .entry(key)
                .or_default()
                .push_back((now, id));
        }
        Ok(Reservation {
            counts: Some(Arc::clone(&self.counts)),
            client,
            id,
        })
    }
}

impl Counts {
    /// Drops what left the window (and clients with nothing in it, so the map stays as
    /// small as the last minute's creations).
    fn forget_before(&mut self, now: i64) {
        let old = |t: &(i64, u64)| t.0 <= now - RATE_WINDOW_SECS || t.0 > now;
        self.total.retain(|t| !old(t));
        self.by_client.retain(|_, times| {
            times.retain(|t| !old(t));
            !times.is_empty()
        });
    }

    fn give_back(&mut self, client: Option<ClientKey>, id: u64) {
        self.total.retain(|t| t.1 != id);
        if let Some(key) = client
            && let Some(times) = self.by_client.get_mut(&key)
        {
            times.retain(|t| t.1 != id);
            if times.is_empty() {
                self.by_client.remove(&key);
            }
        }
    }
}

impl Reservation {
    /// The account was created: the slot stays counted.
    pub fn commit(mut self) {
        self.counts = None;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(counts) = self.counts.take() {
            lock(&counts).give_back(self.client, self.id);
        }
    }
}

fn limit(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn lock(counts: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
    // Every update is a single call that leaves the queues consistent.
    counts.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn off_by_default_counts_nothing() {
        let r = CreationRate::new(0, 0);
        for _ in 0..1000 {
            r.reserve(ip("192.0.2.1"), NOW).unwrap().commit();
        }
        assert!(lock(&r.counts).total.is_empty());
    }

    #[test]
    fn per_client_under_a_ceiling() {
        let r = CreationRate::new(2, 5);
        for _ in 0..2 {
            r.reserve(ip("192.0.2.1"), NOW).unwrap().commit();
        }
        assert_eq!(
            r.reserve(ip("192.0.2.1"), NOW + 59)
                .unwrap_err()
                .to_string(),
            "more than 2 creations per minute from 192.0.2.1"
        );
        r.reserve(ip("192.0.2.2"), NOW).unwrap().commit();
        // Unknown clients count against the ceiling only.
        r.reserve(None, NOW).unwrap().commit();
        r.reserve(None, NOW).unwrap().commit();
        assert_eq!(
            r.reserve(ip("192.0.2.3"), NOW).unwrap_err(),
            RateLimit::Total(5)
        );
        assert_eq!(
            r.reserve(None, NOW).unwrap_err().to_string(),
            "more than 5 creations per minute"
        );
        // The window moves.
        r.reserve(ip("192.0.2.1"), NOW + 60).unwrap().commit();
    }

    #[test]
    fn a_reservation_not_committed_is_given_back() {
        let r = CreationRate::new(1, 0);
        let held = r.reserve(ip("192.0.2.1"), NOW).unwrap();
        assert!(r.reserve(ip("192.0.2.1"), NOW).is_err());
        drop(held);
        r.reserve(ip("192.0.2.1"), NOW).unwrap().commit();
        assert!(r.reserve(ip("192.0.2.1"), NOW).is_err());
        assert_eq!(lock(&r.counts).by_client.len(), 1);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let r = CreationRate::new(1, 0);
        r.reserve(ip("2001:db8:1:2::1"), NOW).unwrap().commit();
        assert_eq!(
            r.reserve(ip("2001:db8:1:2:ffff::9"), NOW)
                .unwrap_err()
                .to_string(),
            "more than 1 creations per minute from 2001:db8:1:2::/64"
        );
        r.reserve(ip("2001:db8:1:3::1"), NOW).unwrap().commit();
        r.reserve(ip("::ffff:192.0.2.7"), NOW).unwrap().commit();
        assert!(r.reserve(ip("192.0.2.7"), NOW).is_err());
    }
}
