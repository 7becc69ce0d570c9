//! What chatmail-metadata counts (published on its metrics socket, see
//! [`chatmaild::metrics`]).

use chatmaild::metrics::names::metadata as names;
use chatmaild::metrics::{Counter, CounterVec, Encoder, Gauge, Histogram, REQUEST_BUCKETS, labels};

/// The family names, from the relay-wide list.
pub use names::{
    LOOKUP_ERRORS, NOTIFICATIONS, QUEUE_ITEMS, QUEUE_OLDEST, REQUEST_SECONDS, TOKENS_REMOVED,
    TOKENS_SET,
};

labels! {
    /// A notification event (the `event` label of [`NOTIFICATIONS`]).
    pub enum Event {
        /// Persisted in the queue, one per device token of a new message.
        Queued => "queued",
        /// Accepted by the notification service (200).
        Sent => "sent",
        /// An attempt failed and another is scheduled.
        Retried => "retried",
        /// Past the last retry or the deadline: dropped.
        GivenUp => "given_up",
        /// The service does not know the token (410): dropped, token removed.
        Gone => "gone",
        /// Joined the notification already waiting for the same device (a push only says
        /// "there is new mail"), or dropped for a newer one waiting for it.
        Coalesced => "coalesced",
        /// Not queued: the queue holds `max_queued_notifications`.
        Dropped => "dropped",
    }
}

labels! {
    /// A shared key whose lookup can fail (the `key` label of [`LOOKUP_ERRORS`]).
    pub enum LookupError {
        /// The TURN server's socket did not answer.
        Turn => "turn",
        /// The operator's `appversions_path` could not be read or parsed.
        AppVersions => "appversions",
    }
}

/// The counters of one chatmail-metadata.
#[derive(Debug)]
pub struct Metrics {
    /// See [`TOKENS_SET`].
    pub tokens_set: Counter,
    /// See [`TOKENS_REMOVED`].
    pub tokens_removed: Counter,
    notifications: CounterVec,
    /// See [`REQUEST_SECONDS`].
    pub request_seconds: Histogram,
    /// Attempts in flight (part of [`QUEUE_ITEMS`]).
    pub in_flight: Gauge,
    lookup_errors: CounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            tokens_set: Counter::new(),
            tokens_removed: Counter::new(),
            notifications: CounterVec::new("event", Event::VALUES),
            request_seconds: Histogram::new(REQUEST_BUCKETS),
            in_flight: Gauge::new(),
            lookup_errors: CounterVec::new("key", LookupError::VALUES),
        }
    }
}

impl Metrics {
    /// Counts a notification event.
    pub fn event(&self, e: Event) {
        self.notifications.inc(e.index());
    }

    /// How many `e` events happened.
    pub fn events(&self, e: Event) -> u64 {
        self.notifications.get(e.index())
    }

    /// Counts a failed lookup.
    pub fn lookup_error(&self, k: LookupError) {
        self.lookup_errors.inc(k.index());
    }

    /// Writes everything; `waiting` and `oldest_age` describe the queue now.
    pub fn render(&self, enc: &mut Encoder, waiting: usize, oldest_age: Option<i64>) {
        enc.counter(TOKENS_SET, "Device tokens stored.", &self.tokens_set);
        enc.counter(
            TOKENS_REMOVED,
            "Device tokens removed after the notification service answered 410 Gone.",
            &self.tokens_removed,
        );
        enc.counter_vec(
            NOTIFICATIONS,
            "Push notifications: queued, sent, retried, given up, gone (410), coalesced, dropped (queue full).",
            &self.notifications,
        );
        enc.histogram(
            REQUEST_SECONDS,
            "Time of one request to the notification service.",
            &self.request_seconds,
        );
        let in_flight = usize::try_from(self.in_flight.get()).unwrap_or(0);
        enc.gauge(
            QUEUE_ITEMS,
            "Notifications queued: waiting for their attempt or in flight.",
            (waiting + in_flight) as f64,
        );
        enc.gauge(
            QUEUE_OLDEST,
            "Age of the oldest waiting notification (0: none waiting).",
            oldest_age.unwrap_or(0).max(0) as f64,
        );
        enc.counter_vec(
            LOOKUP_ERRORS,
            "Failed lookups of shared keys: TURN credentials, operator app versions file.",
            &self.lookup_errors,
        );
    }
}
