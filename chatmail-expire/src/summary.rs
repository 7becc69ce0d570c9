//! The totals of a run: the reference's summary line and the Prometheus textfile.

use std::time::Instant;

/// Totals of a whole run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Mailboxes removed.
    pub removed_mailboxes: u64,
    /// Mailboxes seen.
    pub mailboxes: u64,
    /// Files removed.
    pub removed_files: u64,
    /// Bytes of the messages removed.
    pub removed_bytes: u64,
    /// Messages in kept mailboxes.
    pub files: u64,
    /// Entries that could not be read or removed.
    pub failures: u64,
}

impl Summary {
    /// The run as a Prometheus textfile (gauges: the figures of the last run).
    pub fn textfile(&self, finished_unix: f64, secs: f64, dry_run: bool) -> String {
        use chatmaild::metrics::Encoder;
        use chatmaild::metrics::names::expire as names;
        let mut e = Encoder::new();
        e.gauge(
            names::LAST_RUN,
            "When the last chatmail-expire run finished.",
            finished_unix,
        );
        e.gauge(
            names::DURATION,
            "How long the last chatmail-expire run took.",
            secs,
        );
        e.gauge(
            names::DRY_RUN,
            "1 if the last run only reported what it would remove.",
            if dry_run { 1.0 } else { 0.0 },
        );
        for (name, help, v) in [
            (
                names::REMOVED_ACCOUNTS,
                "Accounts (mailboxes) the last run removed.",
                self.removed_mailboxes,
            ),
            (
                names::REMOVED_FILES,
                "Files the last run removed from kept mailboxes.",
                self.removed_files,
            ),
            (
                names::REMOVED_BYTES,
                "Bytes of the messages the last run removed.",
                self.removed_bytes,
            ),
            (
                names::FAILURES,
                "Entries the last run could not read or remove.",
                self.failures,
            ),
        ] {
            #[expect(clippy::cast_precision_loss, reason = "counts far below 2^53")]
            e.gauge(name, help, v as f64);
        }
        e.finish()
    }

    /// The reference's summary line (without newline).
    pub fn line(&self, secs: f64) -> String {
        format!(
            "Removed {} out of {} mailboxes and {} out of {} files in existing mailboxes in {secs:.2} seconds",
            self.removed_mailboxes, self.mailboxes, self.removed_files, self.files
        )
    }
}

/// Measures a run's duration for the summary line.
#[derive(Debug)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    /// Starts now.
    pub fn start() -> Stopwatch {
        Stopwatch(Instant::now())
    }

    /// Seconds since the start.
    pub fn secs(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}
