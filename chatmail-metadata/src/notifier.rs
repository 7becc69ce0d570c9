//! Delivery of queued notifications to the notification service (SPEC §5.5).
//!
//! Every attempt level has its own senders: 4 for first tries, 2 for each retry level, so a
//! backlog of retries never delays a first try. Which notification a sender takes is the
//! [`Scheduler`]'s choice: accounts take turns, one account has at most two requests in
//! flight, a device has at most one notification waiting, and the queue is bounded. A
//! notification whose message is older than [`DROP_DEADLINE`] when its turn comes is
//! dropped, not sent late. All senders share one HTTP client ([`push`]). The queue file
//! is deleted only after a final answer, so a crash or `kill -9` at any point loses
//! nothing: start-up loads every remaining file again.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chatmaild::fs::{Durability, write_atomic};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::error::Error;
use crate::metrics::{Event, Metrics};
use crate::push;
use crate::queue::{DROP_DEADLINE, LEVELS, QueueItem, encode, schedule};
use crate::scaled_clock::Clock;
use crate::scheduler::{Claim, Next, Scheduler};
use crate::tokens::TokenStore;

/// Concurrent senders for first tries.
pub const FIRST_TRY_WORKERS: usize = 4;

/// Concurrent senders for each retry level.
pub const RETRY_WORKERS: usize = 2;

/// Logged (at warning) for every failed attempt; the reference's text.
pub const FAILED_LOG: &str = "Notification request failed";

/// Logged (at error) when a notification is given up; the reference's text.
pub const DEADLINE_LOG: &str = "notification exceeded deadline";

/// Logged (at warning, at most once a minute) while notifications are dropped because the
/// queue holds `max_queued_notifications`.
pub const QUEUE_FULL_LOG: &str = "notification queue full";

/// How an attempt ended.
enum Outcome {
    /// 200 or 410: the file goes.
    Final,
    /// Anything else: try again at the next level.
    Failed(String),
}

/// The notification machinery: queue directory, scheduler, senders and HTTP client.
#[derive(Debug)]
pub struct Notifier {
    queue_dir: PathBuf,
    url: String,
    client: reqwest::Client,
    store: TokenStore,
    clock: Clock,
    scheduler: Mutex<Scheduler>,
    /// Per level: woken when a notification may have become ready there.
    wake: Vec<Notify>,
    metrics: Metrics,
    /// Unix time of the last [`QUEUE_FULL_LOG`] line.
    full_logged: AtomicI64,
}

impl Notifier {
    /// A notifier posting to `url`, queueing at most `max_items` notifications (0: no
    /// bound) in `queue_dir`, removing gone tokens from `store`. No sender runs until
    /// [`Notifier::start`].
    pub fn new(
        queue_dir: PathBuf,
        url: String,
        client: reqwest::Client,
        store: TokenStore,
        clock: Clock,
        max_items: usize,
    ) -> Arc<Notifier> {
        Arc::new(Notifier {
            queue_dir,
            url,
            client,
            store,
            clock,
            scheduler: Mutex::new(Scheduler::new(max_items)),
            wake: (0..LEVELS).map(|_| Notify::new()).collect(),
            metrics: Metrics::default(),
            full_logged: AtomicI64::new(i64::MIN),
        })
    }

    /// The queue directory.
    pub fn queue_dir(&self) -> &Path {
        &self.queue_dir
    }

    /// The service's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The scheduler; a sender that panicked while holding it left it consistent (every
    /// change is one call), so a poisoned lock is used as is.
    fn scheduler(&self) -> MutexGuard<'_, Scheduler> {
        self.scheduler
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The unix time of the oldest message with a waiting notification (a scan of the
    /// queue: called per scrape, not per event).
    pub fn oldest_waiting(&self) -> Option<i64> {
        self.scheduler().oldest_waiting()
    }

    /// Items waiting (not in flight) per level.
    pub fn pending(&self) -> Vec<usize> {
        self.scheduler().pending()
    }

    /// Notifications for a message to `addr` at `now`, one per device token: each joins
    /// the one waiting for its device, or is persisted and scheduled for a first try, or
    /// is dropped when the queue is full. Returns once every file is in place (blocking
    /// I/O: call it off the runtime threads). On a write error, the items written so far
    /// are still delivered.
    pub fn new_message(&self, addr: &str, tokens: &[String], now: i64) -> Result<(), Error> {
        if !tokens.is_empty() && !self.queue_dir.is_dir() {
            // Removed while running (an operator cleaning up): recreate rather than fail
            // every delivery until the next restart.
            warn!(
                "queue directory {} vanished, recreating it",
                self.queue_dir.display()
            );
            std::fs::create_dir(&self.queue_dir).map_err(|e| Error::io(&self.queue_dir, e))?;
        }
        for token in tokens {
            // File work under the lock (one small file, no fsync), so a concurrent message
            // for the same device sees this one and joins it.
            let mut scheduler = self.scheduler();
            let event = match scheduler.claim(addr, token, now, Instant::now()) {
                Claim::Coalesced(rewrite) => {
                    if let Some(item) = rewrite {
                        rewrite_file(&item);
                    }
                    Event::Coalesced
                }
                Claim::Full => Event::Dropped,
                Claim::New => match QueueItem::create(&self.queue_dir, addr, now, token) {
                    Ok(item) => {
                        scheduler.add(item, 0, Instant::now());
                        Event::Queued
                    }
                    Err(e) => {
                        scheduler.unreserve();
                        return Err(e);
                    }
                },
            };
            drop(scheduler);
            self.metrics.event(event);
            if event == Event::Dropped {
                self.log_full(now);
            } else {
                self.wake_level(0);
            }
        }
        Ok(())
    }

    /// Schedules the items found at start-up for a first try, oldest message first.
    /// Items past the deadline are given up; of several for one device only the newest is
    /// kept; past the bound the oldest are dropped (their files deleted, all counted).
    pub fn load(&self, mut items: Vec<QueueItem>) {
        let now = self.clock.now();
        items.sort_by_key(|item| std::cmp::Reverse(item.start_ts));
        let mut seen = HashSet::new();
        let mut kept = Vec::new();
        let (mut coalesced, mut dropped) = (0usize, 0usize);
        for item in items {
            if schedule(0, now, item.start_ts).is_none() {
                self.give_up(&item);
            } else if !seen.insert((item.addr.clone(), item.token.clone())) {
                self.metrics.event(Event::Coalesced);
                coalesced += 1;
                delete(&item);
            } else if !self.scheduler().reserve() {
                self.metrics.event(Event::Dropped);
                dropped += 1;
                delete(&item);
            } else {
                kept.push(item);
            }
        }
        if coalesced + dropped > 0 {
            info!(
                "{coalesced} queued notification(s) joined another for the same device, {dropped} dropped over the queue bound"
            );
        }
        let due = Instant::now();
        let mut scheduler = self.scheduler();
        for item in kept.into_iter().rev() {
            scheduler.add(item, 0, due);
        }
    }

    /// Starts the senders of every level; they stop when `stop` is cancelled (queued
    /// files stay for the next start).
    pub fn start(self: &Arc<Self>, stop: &CancellationToken) {
        for level in 0..LEVELS {
            let workers = if level == 0 {
                FIRST_TRY_WORKERS
            } else {
                RETRY_WORKERS
            };
            for _ in 0..workers {
                let (this, stop) = (self.clone(), stop.clone());
                tokio::spawn(async move { this.work(level, stop).await });
            }
        }
    }

    async fn work(&self, level: usize, stop: CancellationToken) {
        let Some(wake) = self.wake.get(level) else {
            return;
        };
        while !stop.is_cancelled() {
            // Registered before looking, so a change in between is not missed.
            let woken = wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let next = self.scheduler().pop(level, Instant::now());
            let until = match next {
                Next::Ready(entry) => {
                    self.attempt(entry.item, level).await;
                    continue;
                }
                Next::Wait(until) => until,
            };
            let timer = async {
                match until {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = woken => {}
                () = timer => {}
            }
        }
    }

    fn wake_level(&self, level: usize) {
        if let Some(w) = self.wake.get(level) {
            w.notify_waiters();
        }
    }

    /// A request ended: if its account left the in-flight cap, the senders of every level
    /// that passed its notifications over look again.
    fn ended(&self, mut scheduler: MutexGuard<'_, Scheduler>) {
        let unblocked = scheduler.take_unblocked();
        drop(scheduler);
        if unblocked {
            self.wake.iter().for_each(Notify::notify_waiters);
        }
    }

    /// One POST of the token, unless the message is past the deadline: 200 → done, 410 →
    /// done and the token removed from the user, anything else → the next level.
    async fn attempt(&self, item: QueueItem, level: usize) {
        if self.clock.now() > item.start_ts.saturating_add(DROP_DEADLINE) {
            self.give_up(&item);
            let mut scheduler = self.scheduler();
            scheduler.done(&item.addr);
            self.ended(scheduler);
            return;
        }
        self.metrics.in_flight.inc();
        let outcome = self.post(&item).await;
        self.metrics.in_flight.dec();
        match outcome {
            Outcome::Final => {
                delete(&item);
                let mut scheduler = self.scheduler();
                scheduler.done(&item.addr);
                self.ended(scheduler);
            }
            Outcome::Failed(why) => {
                warn!("{FAILED_LOG}: {why}");
                self.retry(item, level + 1);
            }
        }
    }

    /// Schedules a failed `item` for an attempt at `level`, or gives it up past the last
    /// level or the deadline.
    fn retry(&self, item: QueueItem, level: usize) {
        let Some((_, delay)) = schedule(level, self.clock.now(), item.start_ts) else {
            self.give_up(&item);
            let mut scheduler = self.scheduler();
            scheduler.done(&item.addr);
            self.ended(scheduler);
            return;
        };
        self.metrics.event(Event::Retried);
        let due = Instant::now() + self.clock.delay(delay);
        let mut scheduler = self.scheduler();
        let dropped = scheduler.requeue(item, level, due);
        self.ended(scheduler);
        self.wake_level(level);
        if let Some(dropped) = dropped {
            self.metrics.event(Event::Coalesced);
            delete(&dropped);
        }
    }

    /// Drops `item` past its deadline: file deleted, counted, logged as the reference does.
    fn give_up(&self, item: &QueueItem) {
        self.metrics.event(Event::GivenUp);
        delete(item);
        error!("{DEADLINE_LOG}: {}", item.token);
    }

    fn log_full(&self, now: i64) {
        let last = self.full_logged.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 60
            && self
                .full_logged
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            warn!(
                "{QUEUE_FULL_LOG}: dropping new notifications ({} dropped so far)",
                self.metrics.events(Event::Dropped)
            );
        }
    }

    /// The request for `item` and what its answer means.
    async fn post(&self, item: &QueueItem) -> Outcome {
        let started = Instant::now();
        let status = match push::post(&self.client, &self.url, &item.token).await {
            Ok(status) => status,
            Err(why) => return Outcome::Failed(why),
        };
        self.metrics
            .request_seconds
            .observe_duration(started.elapsed());
        match status {
            200 => {
                self.metrics.event(Event::Sent);
                debug!("notification delivered");
                Outcome::Final
            }
            410 => {
                self.metrics.event(Event::Gone);
                self.remove_token(item).await;
                Outcome::Final
            }
            _ => Outcome::Failed(format!("HTTP status {status}")),
        }
    }

    async fn remove_token(&self, item: &QueueItem) {
        let (store, addr, token, now) = (
            self.store.clone(),
            item.addr.clone(),
            item.token.clone(),
            self.clock.now(),
        );
        let done = tokio::task::spawn_blocking(move || store.remove(&addr, &token, now)).await;
        match done {
            Ok(Ok(())) => {
                self.metrics.tokens_removed.inc();
                debug!("removed a token the notification service no longer knows");
            }
            Ok(Err(e)) => error!("cannot remove gone token: {e}"),
            Err(e) => error!("cannot remove gone token: {e}"),
        }
    }
}

/// Deletes `item`'s file, logging a failure.
fn delete(item: &QueueItem) {
    if let Err(e) = item.delete() {
        error!("cannot delete queue item: {e}");
    }
}

/// Writes `item`'s file again with its new message time (the same format and name, so the
/// reference reads it too).
fn rewrite_file(item: &QueueItem) {
    let content = encode(&item.addr, item.start_ts, &item.token);
    if let Err(e) = write_atomic(&item.path, content.as_bytes(), Durability::Rename) {
        error!("cannot update queue item: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notifier(dir: &Path, max_items: usize) -> Arc<Notifier> {
        Notifier::new(
            dir.into(),
            "http://127.0.0.1:9/".into(),
            push::http_client().unwrap(),
            TokenStore::new(dir),
            Clock::default(),
            max_items,
        )
    }

    #[tokio::test]
    async fn load_gives_up_coalesces_and_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let n = notifier(dir.path(), 3);
        let now = n.clock.now();
        let mut items = Vec::new();
        for (addr, ts, token) in [
            ("a@b", now - 5, "t"),
            ("a@b", now - 1, "t"),
            ("a@b", now - 9, "u"),
            ("c@d", now - 2, "t"),
            ("e@f", now - 20, "t"),
            ("g@h", now - DROP_DEADLINE - 1, "late"),
        ] {
            items.push(QueueItem::create(dir.path(), addr, ts, token).unwrap());
        }
        n.load(items);
        assert_eq!(n.pending(), [3, 0, 0, 0, 0]);
        assert_eq!(n.metrics.events(Event::Coalesced), 1);
        assert_eq!(
            n.metrics.events(Event::Dropped),
            1,
            "the oldest, over the bound"
        );
        assert_eq!(n.metrics.events(Event::GivenUp), 1);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
        assert_eq!(n.oldest_waiting(), Some(now - 9));
    }

    #[tokio::test]
    async fn a_joined_notification_rewrites_its_file_with_the_later_time() {
        let dir = tempfile::tempdir().unwrap();
        let n = notifier(dir.path(), 0);
        let tokens = ["t".to_owned()];
        n.new_message("a@b", &tokens, 100).unwrap();
        n.new_message("a@b", &tokens, 107).unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1);
        assert_eq!(std::fs::read(&files[0]).unwrap(), b"a@b\n107\nt");
        assert_eq!(n.metrics.events(Event::Queued), 1);
        assert_eq!(n.metrics.events(Event::Coalesced), 1);
    }
}
