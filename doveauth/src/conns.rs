//! The open connections of HTTP mode, capped per peer and in total so that idle or slow
//! clients cannot keep Dovecot's requests out (no slowloris).
//!
//! Dovecot's auth workers and every other local client connect from loopback, so a cap on
//! one peer is also a cap on Dovecot. The tension is resolved by what a cap does when it is
//! reached: it never turns a new connection away while an idle one can make room. The
//! oldest idle connection of that peer (or, at the total cap, of any peer) is closed
//! instead. Idle means not processing a complete request: waiting for a request head,
//! reading a body, or kept alive between requests. A client that connects to ask something
//! sends its request at once, so it is never the oldest idle one; idle connections are the
//! only ones that can be made to pile up. Besides, hyper closes a connection whose request
//! head does not arrive within the head deadline, and `/create` gives up on a body that
//! does not arrive within the body deadline, so idle connections cannot last anyway.
//! Only when every connection of the peer (or of all peers) is busy with a complete
//! request is a new one refused; those requests end within the lock and hash deadlines.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

/// Connections one peer address may hold open.
pub const MAX_PER_PEER: usize = 256;
/// Connections held open in total.
pub const MAX_TOTAL: usize = 1024;

#[derive(Debug)]
struct Entry {
    peer: IpAddr,
    /// Since when the connection is idle; `None` while it processes a request.
    idle_since: Option<Instant>,
    close: CancellationToken,
}

/// The open connections.
#[derive(Debug)]
pub struct Conns {
    max_per_peer: usize,
    max_total: usize,
    entries: Mutex<HashMap<u64, Entry>>,
    next_id: AtomicU64,
}

/// One admitted connection; it leaves the table when dropped.
#[derive(Debug)]
pub struct Slot {
    conns: Arc<Conns>,
    id: u64,
    /// Cancelled when the connection is evicted to make room for a newer one.
    pub close: CancellationToken,
}

impl Conns {
    /// A table with these caps.
    pub fn new(max_per_peer: usize, max_total: usize) -> Conns {
        Conns {
            max_per_peer,
            max_total,
            entries: Mutex::default(),
            next_id: AtomicU64::new(0),
        }
    }

    /// Admits a new connection from `peer` at `now`, closing the oldest idle one where a
    /// cap is reached; `None` (refuse it) only if every connection in the way is busy.
    pub fn admit(self: &Arc<Self>, peer: IpAddr, now: Instant) -> Option<Slot> {
        let mut entries = self.lock();
        let of_peer = entries.values().filter(|e| e.peer == peer).count();
        if of_peer >= self.max_per_peer && !evict_oldest_idle(&mut entries, Some(peer)) {
            return None;
        }
        if entries.len() >= self.max_total && !evict_oldest_idle(&mut entries, None) {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let close = CancellationToken::new();
        entries.insert(
            id,
            Entry {
                peer,
                idle_since: Some(now),
                close: close.clone(),
            },
        );
        Some(Slot {
            conns: Arc::clone(self),
            id,
            close,
        })
    }

    /// Connections open now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no connection is open.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        // Every change is one call that leaves the map consistent.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Closes the oldest idle connection (of `peer`, or of anyone); whether there was one.
fn evict_oldest_idle(entries: &mut HashMap<u64, Entry>, peer: Option<IpAddr>) -> bool {
    let victim = entries
        .iter()
        .filter(|(_, e)| peer.is_none_or(|p| e.peer == p))
        .filter_map(|(id, e)| e.idle_since.map(|t| (t, *id)))
        .min();
    match victim.and_then(|(_, id)| entries.remove(&id)) {
        Some(e) => {
            e.close.cancel();
            true
        }
        None => false,
    }
}

impl Slot {
    /// The connection processes a complete request: it may not be evicted now.
    pub fn busy(&self) {
        if let Some(e) = self.conns.lock().get_mut(&self.id) {
            e.idle_since = None;
        }
    }

    /// The request is answered: the connection is idle (kept alive) from `now`.
    pub fn idle(&self, now: Instant) {
        if let Some(e) = self.conns.lock().get_mut(&self.id) {
            e.idle_since = Some(now);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.conns.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_oldest_idle_connection_makes_room() {
        let conns = Arc::new(Conns::new(2, 3));
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let first = conns.admit(a, at(0)).unwrap();
        let second = conns.admit(a, at(1)).unwrap();
        second.busy();
        let third = conns.admit(a, at(2)).unwrap();
        assert!(first.close.is_cancelled(), "the peer's oldest idle one");
        assert!(!second.close.is_cancelled(), "busy ones stay");
        third.busy();
        assert!(
            conns.admit(a, at(3)).is_none(),
            "all of the peer's are busy"
        );
        let other = conns.admit(b, at(4)).unwrap();
        assert_eq!(conns.len(), 3);
        // The total cap: the oldest idle of anyone.
        let another = conns.admit("127.0.0.3".parse().unwrap(), at(5)).unwrap();
        assert!(other.close.is_cancelled());
        another.busy();
        assert!(conns.admit(b, at(6)).is_none(), "every connection is busy");
        second.idle(at(7));
        assert!(conns.admit(b, at(8)).is_some());
        assert!(second.close.is_cancelled());
        drop((first, second, third, other, another));
        assert!(conns.is_empty());
    }
}
