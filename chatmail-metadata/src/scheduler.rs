//! Which queued notification is sent next: fair between accounts, one waiting notification
//! per device, a bound on what is queued. Bookkeeping only; the files and the requests are
//! the [`crate::notifier`]'s.
//!
//! The reference sends each attempt level's notifications in order of arrival, so one
//! account with 20 devices receiving 25 messages puts 500 requests before everybody else's
//! (63 s at 0.5 s per request and 4 senders). Here:
//!
//! - **Round robin between accounts.** Each level keeps a ring of the accounts with a
//!   notification waiting at that level; a free sender takes the next due notification of
//!   the next account in the ring, and that account goes to the back.
//! - **At most [`MAX_IN_FLIGHT_PER_ACCOUNT`] requests of one account at once**, across
//!   levels, so slow or hanging answers for one account leave the other senders free.
//! - **One waiting notification per device.** A push says only "there is new mail", so a
//!   message for a device that already has a notification waiting joins it (moved to the
//!   first-try level if it was waiting for a retry, its message time brought forward); a
//!   failed attempt whose device has a newer one waiting is dropped. Only a notification
//!   already in flight may have a second one behind it, because its request may predate the
//!   new message.
//! - **A bound on the queue** (`max_queued_notifications`): a notification that would
//!   exceed it is not queued. With the rules above, each device holds at most a waiting
//!   and an in-flight notification, so only tens of thousands of devices waiting at once
//!   reach the default.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::time::Instant;

use crate::queue::{LEVELS, QueueItem};

/// Requests of one account in flight at once, at most: half the first-try senders.
pub const MAX_IN_FLIGHT_PER_ACCOUNT: usize = 2;

/// A notification waiting for its attempt.
#[derive(Debug)]
pub struct Entry {
    /// When the attempt is due.
    pub due: Instant,
    /// The notification and its file.
    pub item: QueueItem,
}

/// One account's waiting notifications (per level, in order of their due time) and how
/// many of its requests are in flight.
#[derive(Debug, Default)]
struct Account {
    levels: [VecDeque<Entry>; LEVELS],
    in_flight: usize,
}

impl Account {
    /// Where the waiting notification for `token` is: (level, index).
    fn find(&self, token: &str) -> Option<(usize, usize)> {
        self.levels.iter().enumerate().find_map(|(level, entries)| {
            let i = entries.iter().position(|e| e.item.token == token)?;
            Some((level, i))
        })
    }

    fn is_idle(&self) -> bool {
        self.in_flight == 0 && self.levels.iter().all(VecDeque::is_empty)
    }
}

/// What a new message's notification for one device becomes.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// None waits for the device: write a new file, then [`Scheduler::add`] it (a place in
    /// the bound is reserved; [`Scheduler::unreserve`] gives it back on failure).
    New,
    /// The queue is full: drop it.
    Full,
    /// It joined the waiting one; with `Some`, the waiting one's message time moved
    /// forward and its file must be rewritten with this content.
    Coalesced(Option<QueueItem>),
}

/// What a sender does next.
#[derive(Debug)]
pub enum Next {
    /// Send this now (counted in flight for its account until [`Scheduler::done`] or
    /// [`Scheduler::requeue`]).
    Ready(Entry),
    /// Nothing is due: wait until this time, or until woken (`None`: only until woken):
    /// by a new notification at the level, or by an account leaving the in-flight cap
    /// ([`Scheduler::take_unblocked`]), whose notifications were passed over.
    Wait(Option<Instant>),
}

/// The notifications queued (waiting or in flight), by account and level.
#[derive(Debug)]
pub struct Scheduler {
    accounts: HashMap<Arc<str>, Account>,
    /// Per level: the accounts with a notification waiting there, in turn order.
    rings: [VecDeque<Arc<str>>; LEVELS],
    /// Files owned: waiting, in flight and reserved.
    items: usize,
    /// The bound on `items`; 0: none.
    max_items: usize,
    /// An account left the in-flight cap since [`Scheduler::take_unblocked`] was last
    /// asked: senders that passed it over should look again.
    unblocked: bool,
}

impl Scheduler {
    /// An empty queue holding at most `max_items` notifications (0: no bound).
    pub fn new(max_items: usize) -> Scheduler {
        Scheduler {
            accounts: HashMap::new(),
            rings: Default::default(),
            items: 0,
            max_items,
            unblocked: false,
        }
    }

    /// Notifications queued: waiting, in flight or being written.
    #[cfg(test)]
    pub fn items(&self) -> usize {
        self.items
    }

    /// Takes a place in the bound; `false` when the queue is full.
    pub fn reserve(&mut self) -> bool {
        if self.max_items != 0 && self.items >= self.max_items {
            return false;
        }
        self.items += 1;
        true
    }

    /// Gives back a place taken by [`Scheduler::reserve`] or [`Claim::New`] whose
    /// notification was never added.
    pub fn unreserve(&mut self) {
        self.items = self.items.saturating_sub(1);
    }

    /// A new message for `addr`'s device `token` at `start_ts`; see [`Claim`].
    pub fn claim(&mut self, addr: &str, token: &str, start_ts: i64, now: Instant) -> Claim {
        let waiting = self
            .accounts
            .get_key_value(addr)
            .and_then(|(key, account)| Some((key.clone(), account.find(token)?)));
        let Some((key, (level, i))) = waiting else {
            return if self.reserve() {
                Claim::New
            } else {
                Claim::Full
            };
        };
        if level == 0 {
            // Keeps its turn.
            let entry = self
                .accounts
                .get_mut(&key)
                .and_then(|a| a.levels.first_mut())
                .and_then(|entries| entries.get_mut(i));
            return Claim::Coalesced(entry.and_then(|e| bring_forward(e, start_ts)));
        }
        let Some(mut entry) = self.take(&key, level, i) else {
            return Claim::Coalesced(None);
        };
        let rewrite = bring_forward(&mut entry, start_ts);
        entry.due = now;
        self.push(key, 0, entry);
        Claim::Coalesced(rewrite)
    }

    /// Adds a notification whose place is reserved, to be tried at `level` from `due`.
    pub fn add(&mut self, item: QueueItem, level: usize, due: Instant) {
        let key = match self.accounts.get_key_value(item.addr.as_str()) {
            Some((key, _)) => key.clone(),
            None => Arc::from(item.addr.as_str()),
        };
        self.push(key, level, Entry { due, item });
    }

    /// The next notification due at `level` at `now`: the first account in the level's
    /// ring that has one due and fewer than [`MAX_IN_FLIGHT_PER_ACCOUNT`] in flight; that
    /// account goes to the back of the ring.
    pub fn pop(&mut self, level: usize, now: Instant) -> Next {
        let Some(ring) = self.rings.get_mut(level) else {
            return Next::Wait(None);
        };
        let mut earliest: Option<Instant> = None;
        let mut found = None;
        for (pos, key) in ring.iter().enumerate() {
            let Some(account) = self.accounts.get(key) else {
                continue;
            };
            let Some(head) = account.levels.get(level).and_then(VecDeque::front) else {
                continue;
            };
            if account.in_flight >= MAX_IN_FLIGHT_PER_ACCOUNT {
                continue;
            }
            if head.due <= now {
                found = Some(pos);
                break;
            }
            earliest = Some(earliest.map_or(head.due, |e| e.min(head.due)));
        }
        let taken = found.and_then(|pos| {
            let key = ring.remove(pos)?;
            let account = self.accounts.get_mut(&key)?;
            let entries = account.levels.get_mut(level)?;
            let entry = entries.pop_front()?;
            if !entries.is_empty() {
                ring.push_back(key);
            }
            account.in_flight += 1;
            Some(entry)
        });
        match taken {
            Some(entry) => Next::Ready(entry),
            None => Next::Wait(earliest),
        }
    }

    /// The attempt at `item` is over for good (sent, gone, given up): its place is free.
    pub fn done(&mut self, addr: &str) {
        self.items = self.items.saturating_sub(1);
        if let Some(account) = self.accounts.get_mut(addr) {
            self.unblocked |= account.in_flight == MAX_IN_FLIGHT_PER_ACCOUNT;
            account.in_flight = account.in_flight.saturating_sub(1);
            if account.is_idle() {
                self.accounts.remove(addr);
            }
        }
    }

    /// The attempt at `item` failed: it waits at `level` until `due`, unless a notification
    /// for the same device waits already. Then the one with the older message time is
    /// dropped and returned (its file is the caller's to delete).
    pub fn requeue(&mut self, item: QueueItem, level: usize, due: Instant) -> Option<QueueItem> {
        let key: Arc<str> = match self.accounts.get_key_value(item.addr.as_str()) {
            Some((key, _)) => key.clone(),
            None => Arc::from(item.addr.as_str()),
        };
        let account = self.accounts.entry(key.clone()).or_default();
        self.unblocked |= account.in_flight == MAX_IN_FLIGHT_PER_ACCOUNT;
        account.in_flight = account.in_flight.saturating_sub(1);
        let Some((l, i)) = account.find(&item.token) else {
            self.push(key, level, Entry { due, item });
            return None;
        };
        self.items = self.items.saturating_sub(1);
        let newer_waits = account
            .levels
            .get(l)
            .and_then(|entries| entries.get(i))
            .is_some_and(|e| e.item.start_ts >= item.start_ts);
        if newer_waits {
            return Some(item);
        }
        let old = self.take(&key, l, i);
        self.push(key, level, Entry { due, item });
        old.map(|e| e.item)
    }

    /// Whether an account left the in-flight cap since the last call (see [`Next::Wait`]).
    pub fn take_unblocked(&mut self) -> bool {
        std::mem::take(&mut self.unblocked)
    }

    /// Waiting notifications per level.
    pub fn pending(&self) -> Vec<usize> {
        (0..LEVELS)
            .map(|level| {
                self.accounts
                    .values()
                    .map(|a| a.levels.get(level).map_or(0, VecDeque::len))
                    .sum()
            })
            .collect()
    }

    /// The message time of the oldest waiting notification.
    pub fn oldest_waiting(&self) -> Option<i64> {
        self.accounts
            .values()
            .flat_map(|a| a.levels.iter().flatten())
            .map(|e| e.item.start_ts)
            .min()
    }

    /// Appends `entry` to `key`'s queue at `level` (joining the ring if it was empty there).
    fn push(&mut self, key: Arc<str>, level: usize, entry: Entry) {
        let (Some(ring), account) = (
            self.rings.get_mut(level),
            self.accounts.entry(key.clone()).or_default(),
        ) else {
            return;
        };
        let Some(entries) = account.levels.get_mut(level) else {
            return;
        };
        if entries.is_empty() {
            ring.push_back(key);
        }
        entries.push_back(entry);
    }

    /// Removes the waiting entry `i` of `key` at `level` (leaving the ring if it was the
    /// last there, and forgetting an account left idle).
    fn take(&mut self, key: &Arc<str>, level: usize, i: usize) -> Option<Entry> {
        let account = self.accounts.get_mut(key)?;
        let entries = account.levels.get_mut(level)?;
        let entry = entries.remove(i)?;
        if entries.is_empty()
            && let Some(ring) = self.rings.get_mut(level)
            && let Some(pos) = ring.iter().position(|k| k == key)
        {
            ring.remove(pos);
        }
        if account.is_idle() {
            self.accounts.remove(key);
        }
        Some(entry)
    }
}

/// Moves `entry`'s message time forward to `start_ts`; the new file content if it moved.
fn bring_forward(entry: &mut Entry, start_ts: i64) -> Option<QueueItem> {
    (start_ts > entry.item.start_ts).then(|| {
        entry.item.start_ts = start_ts;
        entry.item.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    fn item(addr: &str, token: &str, start_ts: i64) -> QueueItem {
        QueueItem {
            path: PathBuf::from(format!("/q/{addr}-{token}-{start_ts}")),
            addr: addr.into(),
            start_ts,
            token: token.into(),
        }
    }

    fn new_message(s: &mut Scheduler, addr: &str, token: &str, ts: i64, now: Instant) -> Claim {
        let claim = s.claim(addr, token, ts, now);
        if claim == Claim::New {
            s.add(item(addr, token, ts), 0, now);
        }
        claim
    }

    fn ready(s: &mut Scheduler, level: usize, now: Instant) -> QueueItem {
        match s.pop(level, now) {
            Next::Ready(e) => e.item,
            Next::Wait(w) => panic!("nothing ready: {w:?}"),
        }
    }

    #[test]
    fn accounts_take_turns_and_are_capped_in_flight() {
        let now = Instant::now();
        let mut s = Scheduler::new(0);
        for t in 0..20 {
            new_message(&mut s, "noisy@x", &format!("n{t}"), 1, now);
        }
        new_message(&mut s, "quiet@x", "q", 2, now);
        new_message(&mut s, "other@x", "o", 3, now);
        let order: Vec<String> = (0..4).map(|_| ready(&mut s, 0, now).token).collect();
        assert_eq!(order, ["n0", "q", "o", "n1"]);
        // noisy has two in flight: nothing more of it until one ends.
        assert!(matches!(s.pop(0, now), Next::Wait(None)));
        assert!(!s.take_unblocked());
        s.done("noisy@x");
        assert!(s.take_unblocked(), "noisy left the cap");
        assert!(!s.take_unblocked());
        assert_eq!(ready(&mut s, 0, now).token, "n2");
        // 17 of noisy's waiting, n1, n2, q and o in flight.
        assert_eq!(s.items(), 21);
        assert_eq!(s.pending(), [17, 0, 0, 0, 0]);
    }

    #[test]
    fn a_burst_for_one_device_is_one_waiting_notification() {
        let now = Instant::now();
        let mut s = Scheduler::new(0);
        assert_eq!(new_message(&mut s, "a@x", "t", 10, now), Claim::New);
        assert_eq!(
            new_message(&mut s, "a@x", "t", 10, now),
            Claim::Coalesced(None)
        );
        let Claim::Coalesced(Some(rewrite)) = new_message(&mut s, "a@x", "t", 11, now) else {
            panic!("a later message moves the time forward");
        };
        assert_eq!(rewrite.start_ts, 11);
        assert_eq!(s.items(), 1);
        // In flight, a new message needs a notification of its own.
        let sent = ready(&mut s, 0, now);
        assert_eq!(new_message(&mut s, "a@x", "t", 12, now), Claim::New);
        assert_eq!(s.items(), 2);
        // The in-flight one fails: the newer waiting one replaces it.
        let dropped = s.requeue(sent.clone(), 1, now + Duration::from_secs(8));
        assert_eq!(dropped, Some(sent));
        assert_eq!(s.items(), 1);
        assert_eq!(s.pending(), [1, 0, 0, 0, 0]);
    }

    #[test]
    fn a_message_brings_a_waiting_retry_forward() {
        let now = Instant::now();
        let mut s = Scheduler::new(0);
        new_message(&mut s, "a@x", "t", 10, now);
        let sent = ready(&mut s, 0, now);
        let later = now + Duration::from_secs(64);
        assert_eq!(s.requeue(sent, 2, later), None);
        assert!(matches!(s.pop(2, now), Next::Wait(Some(d)) if d == later));
        assert!(matches!(
            new_message(&mut s, "a@x", "t", 20, now),
            Claim::Coalesced(Some(_))
        ));
        assert_eq!(s.pending(), [1, 0, 0, 0, 0]);
        let it = ready(&mut s, 0, now);
        assert_eq!((it.start_ts, it.path), (20, PathBuf::from("/q/a@x-t-10")));
        s.done("a@x");
        assert_eq!(s.items(), 0);
        assert!(s.accounts.is_empty(), "idle accounts are forgotten");
    }

    #[test]
    fn the_bound_counts_waiting_in_flight_and_reserved() {
        let now = Instant::now();
        let mut s = Scheduler::new(2);
        assert_eq!(new_message(&mut s, "a@x", "1", 1, now), Claim::New);
        assert_eq!(s.claim("b@x", "2", 1, now), Claim::New);
        assert_eq!(s.claim("c@x", "3", 1, now), Claim::Full);
        // Joining a waiting one needs no place.
        assert_eq!(s.claim("a@x", "1", 1, now), Claim::Coalesced(None));
        s.unreserve();
        assert_eq!(s.claim("c@x", "3", 1, now), Claim::New);
    }

    #[test]
    fn retries_wait_for_their_time() {
        let now = Instant::now();
        let mut s = Scheduler::new(0);
        for (addr, secs) in [("a@x", 8), ("b@x", 4)] {
            new_message(&mut s, addr, "t", 1, now);
            let it = ready(&mut s, 0, now);
            assert_eq!(s.requeue(it, 1, now + Duration::from_secs(secs)), None);
        }
        assert!(matches!(s.pop(1, now), Next::Wait(Some(d)) if d == now + Duration::from_secs(4)));
        let it = ready(&mut s, 1, now + Duration::from_secs(5));
        assert_eq!(it.addr, "b@x");
        assert_eq!(s.oldest_waiting(), Some(1));
    }
}
