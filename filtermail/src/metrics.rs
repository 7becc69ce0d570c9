//! What filtermail counts, published on its metrics socket (see [`chatmaild::metrics`]).
//!
//! Each filter process counts for its own direction only (the outgoing and the incoming
//! filter are separate processes with separate sockets; `chatmail-exporter` merges them),
//! so no series is served twice. Every outcome is read off the SMTP reply the client gets:
//! the reply decides what the client sees, so counting it cannot disagree with it, and the
//! protocol code needs only a one-line call where a reply is decided.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chatmaild::daemons::{self, Daemon};

use chatmaild::metrics::names::filtermail as names;
use chatmaild::metrics::{
    Counter, CounterGrid, CounterVec, Encoder, Gauge, Histogram, Kind, LATENCY_BUCKETS, labels,
};

use crate::filter_reply::{FilterReply, Reply};
use crate::smtp::Mode;

pub use names::{BYTES, DKIM, MESSAGE_SECONDS, MESSAGES, RATE_LIMITED, SESSIONS};

/// The daemon of each mode in the relay's table: its default metrics socket
/// (`$CHATMAIL_METRICS_SOCKET` overrides it) is in that unit's `RuntimeDirectory=`.
pub fn daemon(mode: Option<Mode>) -> Daemon {
    match mode {
        Some(Mode::Outgoing) => daemons::FILTERMAIL,
        Some(Mode::Incoming) => daemons::FILTERMAIL_INCOMING,
        None => daemons::FILTERMAIL_TRANSPORT,
    }
}

/// Default metrics socket of each mode (`$CHATMAIL_METRICS_SOCKET` overrides it).
#[expect(
    clippy::expect_used,
    reason = "a static table entry, pinned by its tests"
)]
pub fn default_socket(mode: Option<Mode>) -> PathBuf {
    daemon(mode)
        .metrics_socket()
        .expect("every filtermail daemon has a runtime directory")
}

labels! {
    /// What became of a message (the `verdict` label of [`MESSAGES`]), from the reply code.
    pub enum VerdictLabel {
        /// 2xx: passed on to Postfix.
        Accepted => "accepted",
        /// 5xx: refused for good.
        Rejected => "rejected",
        /// 4xx: the sender retries.
        Deferred => "deferred",
    }
}

impl VerdictLabel {
    fn of(reply: &Reply) -> VerdictLabel {
        match reply.code() {
            200..=399 => VerdictLabel::Accepted,
            400..=499 => VerdictLabel::Deferred,
            _ => VerdictLabel::Rejected,
        }
    }
}

labels! {
    /// Why a message was not accepted (the `reason` label of [`MESSAGES`]).
    pub enum Reason {
        /// Accepted.
        None => "none",
        /// Cleartext the policy does not allow (`523 Encryption Needed`).
        EncryptionNeeded => "encryption_needed",
        /// Larger than `max_message_size`.
        TooBig => "too_big",
        /// MAIL FROM or the From header not allowed (spoofing, not our user, unparsable).
        InvalidFrom => "invalid_from",
        /// A recipient address refused.
        InvalidRecipient => "invalid_recipient",
        /// More recipients than one transaction may have.
        TooManyRecipients => "too_many_recipients",
        /// Incoming mail without a DKIM signature.
        NoDkimSignature => "no_dkim_signature",
        /// Incoming mail without a signature that verifies and aligns with From.
        InvalidDkimSignature => "invalid_dkim_signature",
        /// The DKIM key could not be fetched.
        DkimTempfail => "dkim_tempfail",
        /// Unparsable data: bare CR/LF, no header, not UTF-8 where DKIM needs it.
        Malformed => "malformed",
        /// The sender is over its send rate.
        RateLimited => "rate_limited",
        /// The messages in flight fill the memory budget.
        OverBudget => "over_budget",
        /// Postfix's reinjection port could not be reached.
        ReinjectFailed => "reinject_failed",
        /// An internal failure.
        LocalError => "local_error",
        /// A request that broke the protocol (HTTP body cut off and the like).
        Protocol => "protocol",
        /// Any other refusal, e.g. Postfix refusing the reinjection.
        Other => "other",
    }
}

labels! {
    /// The filter a figure is from (the `direction` label of [`MESSAGES`], [`BYTES`],
    /// [`SESSIONS`] and [`MESSAGE_SECONDS`]).
    pub enum Direction {
        /// The outgoing filter (mail of our users).
        Outgoing => "outgoing",
        /// The incoming filter (mail from other servers).
        Incoming => "incoming",
    }
}

impl Direction {
    /// The direction of the filter of `mode`.
    pub fn of(mode: Mode) -> Direction {
        match mode {
            Mode::Outgoing => Direction::Outgoing,
            Mode::Incoming => Direction::Incoming,
        }
    }
}

/// The verdict a reason comes with: those series are served from the start, at zero.
fn usual_verdict(r: usize) -> VerdictLabel {
    const DEFERRED: &[Reason] = &[
        Reason::TooManyRecipients,
        Reason::DkimTempfail,
        Reason::RateLimited,
        Reason::OverBudget,
        Reason::ReinjectFailed,
        Reason::LocalError,
    ];
    if r == Reason::None.index() {
        VerdictLabel::Accepted
    } else if DEFERRED.iter().any(|d| d.index() == r) {
        VerdictLabel::Deferred
    } else {
        VerdictLabel::Rejected
    }
}

impl Reason {
    /// The reason of a reply filtermail sends.
    pub fn of(reply: &Reply) -> Reason {
        let text = reply.text();
        let known: &[(Reply, Reason)] = &[
            (Reply::ENCRYPTION_NEEDED, Reason::EncryptionNeeded),
            (Reply::TOO_BIG, Reason::TooBig),
            (Reply::INVALID_DATA, Reason::Malformed),
            (Reply::NON_UTF8, Reason::Malformed),
            (Reply::MALFORMED_DATA, Reason::Malformed),
            (Reply::MALFORMED_HEADER, Reason::Malformed),
            (Reply::INVALID_MAIL_FROM, Reason::InvalidFrom),
            (Reply::INVALID_RCPT_TO, Reason::InvalidRecipient),
            (Reply::RECIPIENT_NOT_PLAIN, Reason::InvalidRecipient),
            (Reply::SENDER_IS_LOCAL, Reason::InvalidFrom),
            (Reply::TOO_MANY_RECIPIENTS, Reason::TooManyRecipients),
            (Reply::NO_DKIM_SIGNATURE, Reason::NoDkimSignature),
            (Reply::NO_VALID_DKIM_SIGNATURE, Reason::InvalidDkimSignature),
            (Reply::DKIM_TEMPFAIL, Reason::DkimTempfail),
            (Reply::REINJECT_FAILED, Reason::ReinjectFailed),
            (Reply::OVER_BUDGET, Reason::OverBudget),
            (Reply::LOCAL_ERROR, Reason::LocalError),
        ];
        if reply.is_success() {
            return Reason::None;
        }
        if let Some((_, r)) = known.iter().find(|(k, _)| k == reply) {
            return *r;
        }
        match reply.code() {
            450 if text.starts_with("4.7.1: Too much mail from") => Reason::RateLimited,
            500 if text.starts_with("Invalid from address") || text.starts_with("Invalid FROM") => {
                Reason::InvalidFrom
            }
            500 if text.starts_with("Failed to parse message") => Reason::Malformed,
            550 if text.starts_with("5.1.1 ") => Reason::InvalidRecipient,
            _ => Reason::Other,
        }
    }

    /// The reason of a refused `/mxdeliv` envelope (the text of its 400 reply).
    pub fn of_envelope_error(text: &str) -> Reason {
        if text.contains("X-MAIL-FROM") {
            Reason::InvalidFrom
        } else if text.contains("too many recipients") {
            Reason::TooManyRecipients
        } else {
            Reason::InvalidRecipient
        }
    }
}

labels! {
    /// The outcome of a DKIM verification (the `result` label of [`DKIM`]).
    pub enum DkimResult {
        /// A signature verified and aligned with From.
        Pass => "pass",
        /// Signatures, none valid (or the message could not be checked).
        Fail => "fail",
        /// No signature.
        None => "none",
        /// The key could not be fetched in time.
        Temperror => "temperror",
    }
}

/// The counters of one filter process.
#[derive(Debug)]
pub struct Metrics {
    mode: Mode,
    direction: &'static str,
    /// See [`MESSAGES`]: rows [`VerdictLabel`], columns [`Reason`].
    messages: CounterGrid,
    dkim: CounterVec,
    rate_limited: Counter,
    bytes: Counter,
    sessions: Gauge,
    seconds: Histogram,
}

impl Metrics {
    /// Counters for the filter of `mode`.
    pub fn new(mode: Mode) -> Metrics {
        Metrics {
            mode,
            direction: Direction::of(mode).label(),
            messages: CounterGrid::new("verdict", VerdictLabel::VALUES, "reason", Reason::VALUES),
            dkim: CounterVec::new("result", DkimResult::VALUES),
            rate_limited: Counter::new(),
            bytes: Counter::new(),
            sessions: Gauge::new(),
            seconds: Histogram::new(LATENCY_BUCKETS),
        }
    }

    /// Counts the final reply to a message (after DATA or a `/mxdeliv` request).
    pub fn message(&self, reply: &Reply) {
        let reason = Reason::of(reply);
        self.count(VerdictLabel::of(reply), reason);
    }

    fn count(&self, verdict: VerdictLabel, reason: Reason) {
        if reason == Reason::RateLimited {
            self.rate_limited.inc();
        }
        self.messages.inc(verdict.index(), reason.index());
    }

    /// Counts a reply to MAIL or RCPT that refuses the message or a recipient (the sender
    /// over its rate, a forbidden sender or recipient); other command replies are not
    /// message outcomes and are ignored.
    pub fn command(&self, reply: &Reply) {
        if reply.is_success() {
            return;
        }
        let reason = Reason::of(reply);
        if matches!(
            reason,
            Reason::RateLimited
                | Reason::InvalidFrom
                | Reason::InvalidRecipient
                | Reason::TooManyRecipients
        ) {
            self.count(VerdictLabel::of(reply), reason);
        }
    }

    /// Counts a `/mxdeliv` request refused for its envelope headers (a 400).
    pub fn envelope_refused(&self, text: &str) {
        self.count(VerdictLabel::Rejected, Reason::of_envelope_error(text));
    }

    /// Counts a `/mxdeliv` request whose body broke off.
    pub fn protocol_error(&self) {
        self.count(VerdictLabel::Rejected, Reason::Protocol);
    }

    /// Counts the result of a DKIM verification.
    pub fn dkim<T>(&self, result: &Result<T, Reply>) {
        let r = match result {
            Ok(_) => DkimResult::Pass,
            Err(reply) if *reply == Reply::NO_DKIM_SIGNATURE => DkimResult::None,
            Err(reply) if reply.code() / 100 == 4 => DkimResult::Temperror,
            Err(_) => DkimResult::Fail,
        };
        self.dkim.inc(r.index());
    }

    /// Counts the bytes of a message Postfix took back (`reply` is its answer).
    pub fn reinjected(&self, reply: &Reply, bytes: usize) {
        if reply.is_success() {
            self.bytes.add(bytes as u64);
        }
    }

    /// Marks a session (SMTP connection or HTTP connection) open until the guard drops.
    pub fn session(&self) -> SessionGuard<'_> {
        self.sessions.inc();
        SessionGuard(&self.sessions)
    }

    /// Times the processing of one message until the guard drops.
    pub fn timer(&self) -> Timer<'_> {
        Timer(&self.seconds, Instant::now())
    }

    /// How many messages ended as `verdict` for `reason`.
    pub fn messages(&self, verdict: VerdictLabel, reason: Reason) -> u64 {
        self.messages.get(verdict.index(), reason.index())
    }

    /// How many DKIM verifications ended as `r`.
    pub fn dkim_results(&self, r: DkimResult) -> u64 {
        self.dkim.get(r.index())
    }

    /// Bytes of accepted messages.
    pub fn bytes(&self) -> u64 {
        self.bytes.get()
    }

    /// Sessions open now.
    pub fn sessions(&self) -> i64 {
        self.sessions.get()
    }

    /// Writes every family, for this process's direction.
    pub fn render(&self, enc: &mut Encoder) {
        let dir = ("direction", self.direction);
        enc.family(
            MESSAGES,
            "Messages by direction, verdict (accepted, rejected 5xx, deferred 4xx) and reason; \
             a recipient refused at RCPT counts as one.",
            Kind::Counter,
        );
        enc.counter_grid_samples(MESSAGES, &[dir], &self.messages, |v, r, n| {
            n > 0 || usual_verdict(r).index() == v
        });
        if self.mode == Mode::Incoming {
            enc.counter_vec(
                DKIM,
                "DKIM verifications of incoming mail by result.",
                &self.dkim,
            );
        }
        if self.mode == Mode::Outgoing {
            enc.counter(
                RATE_LIMITED,
                "Outgoing messages refused because their sender was over its send rate.",
                &self.rate_limited,
            );
        }
        enc.family(
            BYTES,
            "Bytes of messages accepted and passed on to Postfix.",
            Kind::Counter,
        );
        enc.sample(BYTES, &[dir], self.bytes.get() as f64);
        enc.family(
            SESSIONS,
            "SMTP sessions and HTTP connections open now.",
            Kind::Gauge,
        );
        enc.sample(SESSIONS, &[dir], self.sessions.get() as f64);
        enc.family(
            MESSAGE_SECONDS,
            "Time to decide about and pass on one received message (policy, DKIM, reinjection).",
            Kind::Histogram,
        );
        enc.histogram_samples(MESSAGE_SECONDS, &[dir], &self.seconds);
    }
}

/// See [`Metrics::session`].
#[derive(Debug)]
pub struct SessionGuard<'a>(&'a Gauge);

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// See [`Metrics::timer`].
#[derive(Debug)]
pub struct Timer<'a>(&'a Histogram, Instant);

impl Timer<'_> {
    /// Time since the timer started.
    pub fn elapsed(&self) -> Duration {
        self.1.elapsed()
    }
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        self.0.observe_duration(self.1.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_publishes_in_its_units_runtime_directory() {
        for (mode, path) in [
            (Some(Mode::Outgoing), "/run/filtermail/metrics.socket"),
            (
                Some(Mode::Incoming),
                "/run/filtermail-incoming/metrics.socket",
            ),
            (None, "/run/filtermail-transport/metrics.socket"),
        ] {
            assert_eq!(default_socket(mode), PathBuf::from(path));
        }
    }

    #[test]
    fn lists_match_the_enums() {
        assert_eq!(Reason::VALUES.len(), Reason::Other.index() + 1);
        assert_eq!(Reason::RateLimited.label(), "rate_limited");
        assert_eq!(Reason::Other.label(), "other");
        assert_eq!(VerdictLabel::VALUES, ["accepted", "rejected", "deferred"]);
        assert_eq!(DkimResult::VALUES.len(), DkimResult::Temperror.index() + 1);
        assert_eq!(DkimResult::Temperror.label(), "temperror");
        assert_eq!(Direction::of(Mode::Outgoing).label(), "outgoing");
        assert_eq!(Direction::of(Mode::Incoming).label(), "incoming");
    }

    #[test]
    fn every_reply_has_its_reason() {
        let cases = [
            (Reply::OK, VerdictLabel::Accepted, Reason::None),
            (
                Reply::ENCRYPTION_NEEDED,
                VerdictLabel::Rejected,
                Reason::EncryptionNeeded,
            ),
            (Reply::TOO_BIG, VerdictLabel::Rejected, Reason::TooBig),
            (
                Reply::rate_limited("a@b", 3),
                VerdictLabel::Deferred,
                Reason::RateLimited,
            ),
            (
                Reply::invalid_from_address("ab"),
                VerdictLabel::Rejected,
                Reason::InvalidFrom,
            ),
            (
                Reply::from_mismatch("x@y", "a@b"),
                VerdictLabel::Rejected,
                Reason::InvalidFrom,
            ),
            (
                Reply::invalid_from_header(""),
                VerdictLabel::Rejected,
                Reason::InvalidFrom,
            ),
            (
                Reply::unparsable("x"),
                VerdictLabel::Rejected,
                Reason::Malformed,
            ),
            (
                Reply::NO_VALID_DKIM_SIGNATURE,
                VerdictLabel::Rejected,
                Reason::InvalidDkimSignature,
            ),
            (
                Reply::DKIM_TEMPFAIL,
                VerdictLabel::Deferred,
                Reason::DkimTempfail,
            ),
            (
                Reply::TOO_MANY_RECIPIENTS,
                VerdictLabel::Deferred,
                Reason::TooManyRecipients,
            ),
            (
                Reply::OVER_BUDGET,
                VerdictLabel::Deferred,
                Reason::OverBudget,
            ),
            (
                Reply::SENDER_IS_LOCAL,
                VerdictLabel::Rejected,
                Reason::InvalidFrom,
            ),
            (
                Reply::unknown_recipient("x@y"),
                VerdictLabel::Rejected,
                Reason::InvalidRecipient,
            ),
            (
                Reply::new(554, "5.7.1 refused by Postfix"),
                VerdictLabel::Rejected,
                Reason::Other,
            ),
        ];
        for (reply, verdict, reason) in cases {
            assert_eq!(VerdictLabel::of(&reply), verdict, "{reply}");
            assert_eq!(Reason::of(&reply), reason, "{reply}");
            if reason != Reason::Other {
                assert_eq!(usual_verdict(reason.index()), verdict, "{reply}");
            }
        }
        assert_eq!(
            Reason::of_envelope_error(crate::http::NO_RECIPIENTS),
            Reason::InvalidRecipient
        );
    }

    #[test]
    fn command_replies_count_only_refused_messages() {
        let m = Metrics::new(Mode::Outgoing);
        m.command(&Reply::OK);
        m.command(&Reply::UNKNOWN_COMMAND);
        m.command(&Reply::NEED_MAIL);
        let all = (0..VerdictLabel::VALUES.len())
            .flat_map(|v| (0..Reason::VALUES.len()).map(move |r| (v, r)))
            .map(|(v, r)| m.messages.get(v, r));
        assert_eq!(all.sum::<u64>(), 0);
        m.command(&Reply::rate_limited("a@b", 1));
        assert_eq!(m.messages(VerdictLabel::Deferred, Reason::RateLimited), 1);
        assert_eq!(m.rate_limited.get(), 1);
    }

    #[test]
    fn a_process_serves_only_its_direction() {
        let m = Metrics::new(Mode::Incoming);
        m.message(&Reply::NO_DKIM_SIGNATURE);
        m.dkim::<()>(&Err(Reply::NO_DKIM_SIGNATURE));
        m.dkim(&Ok(()));
        m.reinjected(&Reply::OK, 100);
        {
            let _s = m.session();
            assert_eq!(m.sessions(), 1);
            let _t = m.timer();
        }
        assert_eq!(m.sessions(), 0);
        let mut e = Encoder::new();
        m.render(&mut e);
        let text = e.finish();
        assert!(!text.contains("outgoing"));
        assert!(!text.contains(RATE_LIMITED));
        assert!(text.contains(
            "chatmail_filtermail_messages_total{direction=\"incoming\",verdict=\"rejected\",reason=\"no_dkim_signature\"} 1\n"
        ));
        assert!(text.contains(
            "chatmail_filtermail_messages_total{direction=\"incoming\",verdict=\"accepted\",reason=\"none\"} 0\n"
        ));
        assert!(!text.contains("verdict=\"accepted\",reason=\"too_big\""));
        assert!(text.contains("chatmail_filtermail_dkim_results_total{result=\"none\"} 1\n"));
        assert!(text.contains("chatmail_filtermail_dkim_results_total{result=\"pass\"} 1\n"));
        assert!(
            text.contains("chatmail_filtermail_message_bytes_total{direction=\"incoming\"} 100\n")
        );
        assert!(text.contains(
            "chatmail_filtermail_message_duration_seconds_count{direction=\"incoming\"} 1\n"
        ));
    }
}
