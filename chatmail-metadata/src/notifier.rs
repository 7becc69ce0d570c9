//! Delivery of queued notifications to the notification service (SPEC §5.5).
//!
//! Every attempt level has its own priority queue (earliest due first, ties by message
//! time) and its own workers: 4 for first tries, 2 for each retry level, so a backlog of
//! retries never delays a first try. All workers share one HTTP client (HTTP/2 where the
//! server offers it, keep-alive connections, 60 s total timeout). The queue file is
//! deleted only after a final answer, so a crash or `kill -9` at any point loses nothing:
//! start-up loads every remaining file again.

use std::cmp::Ordering;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use crate::clock::Clock;
use crate::error::Error;
use crate::metrics::{Event, Metrics};
use crate::queue::{LEVELS, QueueItem, schedule};
use crate::tokens::TokenStore;

/// Total time allowed for one notification request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Concurrent senders for first tries.
pub const FIRST_TRY_WORKERS: usize = 4;

/// Concurrent senders for each retry level.
pub const RETRY_WORKERS: usize = 2;

/// Logged (at warning) for every failed attempt; the reference's text.
pub const FAILED_LOG: &str = "Notification request failed";

/// Logged (at error) when a notification is given up; the reference's text.
pub const DEADLINE_LOG: &str = "notification exceeded deadline";

/// At most this much of a response body is read (to keep the connection reusable).
const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// The HTTP client for notifications: rustls verifying against the system trust store
/// (which honours `SSL_CERT_FILE` and `SSL_CERT_DIR` like OpenSSL), HTTP/2 via ALPN,
/// pooled keep-alive connections.
pub fn http_client() -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_keepalive(Some(Duration::from_secs(60)))
        .user_agent(concat!("chatmail-metadata/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(Error::HttpClient)
}

/// A scheduled attempt.
#[derive(Debug)]
struct Entry {
    due: Instant,
    start_ts: i64,
    seq: u64,
    item: QueueItem,
}

impl Entry {
    fn key(&self) -> (Instant, i64, u64) {
        (self.due, self.start_ts, self.seq)
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// The priority queue of one attempt level.
#[derive(Debug, Default)]
struct Level {
    heap: Mutex<BinaryHeap<Reverse<Entry>>>,
    ready: Notify,
}

impl Level {
    fn push(&self, entry: Entry) {
        if let Ok(mut heap) = self.heap.lock() {
            heap.push(Reverse(entry));
        }
        // A stored permit wakes the next worker even if none is waiting yet.
        self.ready.notify_one();
    }

    fn try_pop(&self) -> Option<Entry> {
        self.heap.lock().ok()?.pop().map(|Reverse(e)| e)
    }

    async fn pop(&self) -> Entry {
        loop {
            if let Some(e) = self.try_pop() {
                return e;
            }
            self.ready.notified().await;
        }
    }

    fn len(&self) -> usize {
        self.heap.lock().map(|h| h.len()).unwrap_or(0)
    }
}

/// The notification machinery: queue directory, levels, workers and HTTP client.
#[derive(Debug)]
pub struct Notifier {
    queue_dir: PathBuf,
    url: String,
    client: reqwest::Client,
    store: TokenStore,
    clock: Clock,
    levels: Vec<Level>,
    seq: AtomicU64,
    metrics: Metrics,
}

impl Notifier {
    /// A notifier posting to `url`, queueing in `queue_dir`, removing gone tokens from
    /// `store`. No worker runs until [`Notifier::start`].
    pub fn new(
        queue_dir: PathBuf,
        url: String,
        client: reqwest::Client,
        store: TokenStore,
        clock: Clock,
    ) -> Arc<Notifier> {
        Arc::new(Notifier {
            queue_dir,
            url,
            client,
            store,
            clock,
            levels: (0..LEVELS).map(|_| Level::default()).collect(),
            seq: AtomicU64::new(0),
            metrics: Metrics::default(),
        })
    }

    /// The queue directory.
    pub fn queue_dir(&self) -> &std::path::Path {
        &self.queue_dir
    }

    /// The service's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The unix time of the oldest message with a waiting notification (a scan of the
    /// queues: called per scrape, not per event).
    pub fn oldest_waiting(&self) -> Option<i64> {
        self.levels
            .iter()
            .filter_map(|l| {
                let heap = l.heap.lock().ok()?;
                heap.iter().map(|Reverse(e)| e.start_ts).min()
            })
            .min()
    }

    /// Items waiting (not in flight) per level.
    pub fn pending(&self) -> Vec<usize> {
        self.levels.iter().map(Level::len).collect()
    }

    /// Persists one item per token for a message to `addr` at `now` and schedules first
    /// tries. Returns once every file is in place (blocking I/O: call it off the runtime
    /// threads). On a write error, the items written so far are still delivered.
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
            let item = QueueItem::create(&self.queue_dir, addr, now, token)?;
            self.metrics.event(Event::Queued);
            self.queue(item, 0);
        }
        Ok(())
    }

    /// Schedules `item` for an attempt at `level`, or drops it (file deleted, error
    /// logged) past the last level or the deadline.
    pub fn queue(&self, item: QueueItem, level: usize) {
        let now = self.clock.now();
        let scheduled = schedule(level, now, item.start_ts);
        match (scheduled, self.levels.get(level)) {
            (Some((_, delay)), Some(queue)) => {
                let entry = Entry {
                    due: Instant::now() + self.clock.delay(delay),
                    start_ts: item.start_ts,
                    seq: self.seq.fetch_add(1, AtomicOrdering::Relaxed),
                    item,
                };
                if level > 0 {
                    self.metrics.event(Event::Retried);
                }
                queue.push(entry);
            }
            _ => {
                self.metrics.event(Event::GivenUp);
                if let Err(e) = item.delete() {
                    error!("cannot delete queue item: {e}");
                }
                error!("{DEADLINE_LOG}: {}", item.token);
            }
        }
    }

    /// Starts the workers of every level; they stop when `stop` is cancelled (queued
    /// files stay for the next start).
    pub fn start(self: &Arc<Self>, stop: &CancellationToken) {
        for level in 0..self.levels.len() {
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
        let Some(queue) = self.levels.get(level) else {
            return;
        };
        loop {
            let entry = tokio::select! {
                () = stop.cancelled() => return,
                e = queue.pop() => e,
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep_until(entry.due) => {}
            }
            self.attempt(entry.item, level).await;
        }
    }

    /// One POST of the token: 200 → done, 410 → done and the token removed from the
    /// user, anything else → the next level.
    async fn attempt(&self, item: QueueItem, level: usize) {
        self.metrics.in_flight.inc();
        let started = Instant::now();
        self.attempt_counted(item, level, started).await;
        self.metrics.in_flight.dec();
    }

    async fn attempt_counted(&self, item: QueueItem, level: usize, started: Instant) {
        let result = self
            .client
            .post(&self.url)
            .body(item.token.clone())
            .send()
            .await;
        let failure = match result {
            Ok(mut response) => {
                let status = response.status();
                // Read (a bounded amount of) the body so the connection can be reused.
                let mut read = 0;
                while read < MAX_RESPONSE_BODY {
                    match response.chunk().await {
                        Ok(Some(chunk)) => read += chunk.len(),
                        _ => break,
                    }
                }
                self.metrics
                    .request_seconds
                    .observe_duration(started.elapsed());
                match status.as_u16() {
                    200 => {
                        self.metrics.event(Event::Sent);
                        debug!("notification delivered");
                        self.finish(&item);
                        return;
                    }
                    410 => {
                        self.metrics.event(Event::Gone);
                        self.remove_token(&item).await;
                        self.finish(&item);
                        return;
                    }
                    _ => format!("HTTP status {status}"),
                }
            }
            Err(e) => error_chain(&e),
        };
        warn!("{FAILED_LOG}: {failure}");
        self.queue(item, level + 1);
    }

    fn finish(&self, item: &QueueItem) {
        if let Err(e) = item.delete() {
            error!("cannot delete queue item: {e}");
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

/// An error and all its sources, `: `-separated (reqwest's top-level text alone hides
/// the cause, e.g. "connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(start_ts: i64) -> QueueItem {
        QueueItem {
            path: PathBuf::from("/nonexistent/x"),
            addr: "a@b".into(),
            start_ts,
            token: "t".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn level_pops_earliest_due_then_oldest_message() {
        let level = Level::default();
        let now = Instant::now();
        for (due, start, seq) in [(5, 1, 0), (1, 9, 1), (1, 3, 2), (3, 0, 3)] {
            level.push(Entry {
                due: now + Duration::from_secs(due),
                start_ts: start,
                seq,
                item: item(start),
            });
        }
        let order: Vec<u64> = (0..4).map(|_| level.try_pop().unwrap().seq).collect();
        assert_eq!(order, [2, 1, 3, 0]);
        assert!(level.try_pop().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn queue_schedules_with_backoff_and_drops_past_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let client = http_client().unwrap();
        let n = Notifier::new(
            dir.path().into(),
            "http://127.0.0.1:9/".into(),
            client,
            store,
            Clock::default(),
        );
        let now = n.clock.now();
        let start = Instant::now();
        for level in 0..LEVELS {
            n.queue(item(now), level);
        }
        assert_eq!(n.pending(), [1, 1, 1, 1, 1]);
        let dues: Vec<Duration> = n
            .levels
            .iter()
            .map(|l| l.try_pop().unwrap().due - start)
            .collect();
        assert_eq!(
            dues,
            [0, 8, 64, 512, 4096].map(Duration::from_secs).to_vec()
        );
        let file = dir.path().join("item");
        std::fs::write(&file, "a@b\n1\nt").unwrap();
        n.queue(
            QueueItem {
                path: file.clone(),
                ..item(now)
            },
            LEVELS,
        );
        assert!(!file.exists(), "dropped item's file is deleted");
        std::fs::write(&file, "a@b\n1\nt").unwrap();
        n.queue(
            QueueItem {
                path: file.clone(),
                ..item(now - crate::queue::DROP_DEADLINE)
            },
            1,
        );
        assert!(!file.exists(), "past the deadline");
        assert_eq!(n.pending(), [0; LEVELS]);
    }
}
