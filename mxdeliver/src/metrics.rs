//! What the transport counts, per batch (one message to one destination domain).
//!
//! The counters live in [`crate::TransportOptions::metrics`], so the program running the
//! transport (filtermail's `transport` mode) publishes them with
//! [`chatmaild::metrics::spawn_publisher`] and [`TransportMetrics::render`].

use chatmaild::metrics::names::transport as names;
use chatmaild::metrics::{Counter, CounterVec, Encoder, Gauge, Histogram, REQUEST_BUCKETS, labels};

/// The family names, from the relay-wide list.
pub use names::{DELIVERED, DURATION, FAILURES, HTTPS_FALLBACKS, IN_FLIGHT};

labels! {
    /// How a batch was delivered (the `path` label of [`DELIVERED`]).
    pub enum Path {
        /// The peer's HTTPS `/mxdeliv`.
        Https => "https",
        /// SMTP with STARTTLS.
        Smtp => "smtp",
    }
}

labels! {
    /// Why a batch was not delivered (the `class` label of [`FAILURES`]).
    pub enum FailureClass {
        /// The MX lookup failed temporarily.
        DnsTempfail => "dns_tempfail",
        /// The domain does not exist.
        NoSuchDomain => "no_such_domain",
        /// The domain publishes a null MX: it takes no mail.
        NullMx => "null_mx",
        /// The peer refused the message with a 4xx reply.
        RejectedTemporary => "rejected_temporary",
        /// The peer refused the message with a 5xx reply.
        RejectedPermanent => "rejected_permanent",
        /// No MX host could be reached (connection, TLS, address lookup).
        Unreachable => "unreachable",
        /// The whole delivery took longer than its deadline.
        Timeout => "timeout",
    }
}

/// The transport's counters.
#[derive(Debug)]
pub struct TransportMetrics {
    delivered: CounterVec,
    failures: CounterVec,
    /// See [`HTTPS_FALLBACKS`].
    pub https_fallbacks: Counter,
    /// See [`DURATION`].
    pub duration: Histogram,
    /// See [`IN_FLIGHT`].
    pub in_flight: Gauge,
}

impl Default for TransportMetrics {
    fn default() -> Self {
        TransportMetrics {
            delivered: CounterVec::new("path", Path::VALUES),
            failures: CounterVec::new("class", FailureClass::VALUES),
            https_fallbacks: Counter::new(),
            duration: Histogram::new(REQUEST_BUCKETS),
            in_flight: Gauge::new(),
        }
    }
}

impl TransportMetrics {
    /// Counts a delivered batch.
    pub fn delivered(&self, p: Path) {
        self.delivered.inc(p.index());
    }

    /// Counts a failed batch.
    pub fn failed(&self, c: FailureClass) {
        self.failures.inc(c.index());
    }

    /// Batches delivered over `p`.
    pub fn delivered_count(&self, p: Path) -> u64 {
        self.delivered.get(p.index())
    }

    /// Batches failed as `c`.
    pub fn failure_count(&self, c: FailureClass) -> u64 {
        self.failures.get(c.index())
    }

    /// Writes every family.
    pub fn render(&self, enc: &mut Encoder) {
        enc.counter_vec(
            DELIVERED,
            "Messages delivered to other relays (one per destination domain), by path.",
            &self.delivered,
        );
        enc.counter_vec(
            FAILURES,
            "Messages not delivered to other relays (one per destination domain), by class.",
            &self.failures,
        );
        enc.counter(
            HTTPS_FALLBACKS,
            "HTTPS /mxdeliv attempts that failed, followed by SMTP.",
            &self.https_fallbacks,
        );
        enc.histogram(
            DURATION,
            "Time to deliver, or fail to deliver, one message to one destination domain.",
            &self.duration,
        );
        enc.gauge(
            IN_FLIGHT,
            "Deliveries in progress.",
            self.in_flight.get() as f64,
        );
    }
}
