//! Aggregation and rendering of the storage and account report (SPEC §8.2–§8.5).
//!
//! [`Report`] is a plain sum over mailboxes, so per-thread reports can be merged in any
//! order. Rendering is pure: [`Report::summary`], [`Report::textfile`] and
//! [`Report::legacy`] return the exact text the reference prints or writes.

use std::fmt::Write as _;

use chatmaild::maildir::scan::MailboxStat;

/// Message size thresholds of the size buckets, in bytes.
pub const THRESHOLDS: [u64; 7] = [
    0, 102_400, 524_288, 1_048_576, 2_097_152, 5_242_880, 10_485_760,
];

/// Day windows of the active-account buckets.
pub const ACTIVE_DAYS: [u64; 7] = [1, 10, 30, 40, 80, 100, 150];

const DAY: f64 = 86_400.0;

/// What is summed, fixed for one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// The reference time (now minus `--days`), seconds since the epoch.
    pub now: f64,
    /// Size buckets only count mailboxes whose last login is at least this many days old.
    pub min_login_age: i64,
    /// Only count messages directly in this maildir folder (`cur`, `new`, `tmp`).
    pub mdir: Option<String>,
}

/// Sums over all mailboxes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Bytes of all messages.
    pub size_messages: u64,
    /// Bytes of all other files.
    pub size_extra: u64,
    /// Mailboxes with a password file.
    pub accounts_all: u64,
    /// Of those, CI accounts (`ci-` prefix).
    pub accounts_ci: u64,
    /// Non-CI accounts with a login within [`ACTIVE_DAYS`].
    pub active: [u64; 7],
    /// Bytes of counted messages at least [`THRESHOLDS`] large.
    pub bucket_bytes: [u64; 7],
    /// Number of counted messages at least [`THRESHOLDS`] large.
    pub bucket_count: [u64; 7],
}

impl Report {
    /// Adds one mailbox.
    #[expect(clippy::cast_precision_loss, reason = "day counts are far below 2^53")]
    pub fn add(&mut self, params: &Params, mailbox: &MailboxStat) {
        // A last login at mtime 0 is a (very old) login, not "none" (SPEC §7 Note).
        let last_login = mailbox.last_login_f64();
        if let Some(login) = last_login {
            self.accounts_all += 1;
            if mailbox.name().as_encoded_bytes().starts_with(b"ci-") {
                self.accounts_ci += 1;
            } else {
                for (count, days) in self.active.iter_mut().zip(ACTIVE_DAYS) {
                    if login >= params.now - days as f64 * DAY {
                        *count += 1;
                    }
                }
            }
        }
        let cutoff = params.now - params.min_login_age as f64 * DAY;
        if last_login.is_some_and(|login| login <= cutoff) {
            let mdir = params.mdir.as_deref().filter(|m| !m.is_empty());
            for message in &mailbox.messages {
                // The reference tests for "/<mdir>/" in the whole path, which also
                // matches a mailboxes_dir under /tmp; the folder the file is in is what
                // is meant.
                if mdir.is_some_and(|m| message.sub.name() != m) {
                    continue;
                }
                for ((bytes, count), threshold) in self
                    .bucket_bytes
                    .iter_mut()
                    .zip(self.bucket_count.iter_mut())
                    .zip(THRESHOLDS)
                {
                    if message.size >= threshold {
                        *bytes += message.size;
                        *count += 1;
                    }
                }
            }
        }
        self.size_messages += mailbox.messages.iter().map(|m| m.size).sum::<u64>();
        self.size_extra += mailbox.extra_bytes;
    }

    /// Adds another partial report.
    pub fn merge(&mut self, other: &Report) {
        self.size_messages += other.size_messages;
        self.size_extra += other.size_extra;
        self.accounts_all += other.accounts_all;
        self.accounts_ci += other.accounts_ci;
        for (a, b) in self.active.iter_mut().zip(other.active) {
            *a += b;
        }
        for (a, b) in self.bucket_bytes.iter_mut().zip(other.bucket_bytes) {
            *a += b;
        }
        for (a, b) in self.bucket_count.iter_mut().zip(other.bucket_count) {
            *a += b;
        }
    }

    /// Non-CI accounts.
    pub fn accounts_user(&self) -> u64 {
        self.accounts_all.saturating_sub(self.accounts_ci)
    }

    /// The summary text of SPEC §8.3; `date` is the rendered reference time.
    pub fn summary(&self, params: &Params, date: &str) -> String {
        let mut s = String::new();
        self.write_storage(&mut s, params);
        self.write_logins(&mut s, date);
        s
    }

    /// The storage part of the summary: totals, then messages by size threshold.
    #[expect(
        clippy::cast_precision_loss,
        reason = "percentages of byte counts, as the reference computes them"
    )]
    fn write_storage(&self, s: &mut String, params: &Params) {
        let total = self.size_extra + self.size_messages;
        let extra_pct = if total == 0 {
            100.0
        } else {
            self.size_extra as f64 / total as f64 * 100.0
        };
        let _ = writeln!(s);
        let _ = writeln!(s, "## Mailbox storage use analysis");
        let _ = writeln!(s, "Mailbox data total size: {}", hsize(total));
        let _ = writeln!(s, "Messages total size    : {}", hsize(self.size_messages));
        let _ = writeln!(
            s,
            "Extra files : {} ({extra_pct:.2}%)",
            hsize(self.size_extra)
        );
        let _ = writeln!(s);
        if params.min_login_age != 0 {
            let _ = writeln!(
                s,
                "### Message storage for {} days old logins",
                params.min_login_age
            );
        }
        let prefix = match params.mdir.as_deref() {
            Some(m) if !m.is_empty() => format!("[{m}] "),
            _ => String::new(),
        };
        for ((threshold, bytes), count) in THRESHOLDS
            .iter()
            .zip(self.bucket_bytes)
            .zip(self.bucket_count)
        {
            let pct = if self.size_messages == 0 {
                0.0
            } else {
                bytes as f64 / self.size_messages as f64 * 100.0
            };
            let _ = writeln!(
                s,
                "{prefix}larger than {}: {} ({pct:.2}%), {count} msgs",
                hsize(*threshold),
                hsize(bytes)
            );
        }
    }

    /// The login part of the summary: account counts, then accounts active per period.
    #[expect(
        clippy::cast_precision_loss,
        reason = "percentages of account counts, as the reference computes them"
    )]
    fn write_logins(&self, s: &mut String, date: &str) {
        let user = self.accounts_user();
        let _ = writeln!(s);
        let _ = writeln!(s, "## Login stats, from date reference {date}");
        let _ = writeln!(s, "all:     {}", hsize(self.accounts_all));
        let _ = writeln!(s, "non-ci:  {}", hsize(user));
        let _ = writeln!(s, "ci:      {}", hsize(self.accounts_ci));
        for (days, active) in ACTIVE_DAYS.iter().zip(self.active) {
            let pct = if user == 0 {
                "100%".to_string()
            } else {
                format!("({:.2}%)", active as f64 / user as f64 * 100.0)
            };
            let _ = writeln!(s, "last {days:3} days: {} {pct}", hsize(active));
        }
    }

    /// The Prometheus textfile of SPEC §8.4.
    pub fn textfile(&self) -> String {
        let mut s = String::new();
        family(
            &mut s,
            "chatmail_storage_bytes",
            "Mailbox storage in bytes.",
        );
        let total = self.size_messages + self.size_extra;
        for (kind, v) in [
            ("messages", self.size_messages),
            ("extra", self.size_extra),
            ("total", total),
        ] {
            let _ = writeln!(s, "chatmail_storage_bytes{{kind=\"{kind}\"}} {v}");
        }
        family(
            &mut s,
            "chatmail_messages_bytes",
            "Sum of msg bytes >= threshold.",
        );
        for (t, v) in THRESHOLDS.iter().zip(self.bucket_bytes) {
            let _ = writeln!(s, "chatmail_messages_bytes{{min_size=\"{t}\"}} {v}");
        }
        family(
            &mut s,
            "chatmail_messages_count",
            "Number of msgs >= size threshold.",
        );
        for (t, v) in THRESHOLDS.iter().zip(self.bucket_count) {
            let _ = writeln!(s, "chatmail_messages_count{{min_size=\"{t}\"}} {v}");
        }
        family(&mut s, "chatmail_accounts", "Number of accounts.");
        for (kind, v) in [
            ("all", self.accounts_all),
            ("ci", self.accounts_ci),
            ("user", self.accounts_user()),
        ] {
            let _ = writeln!(s, "chatmail_accounts{{kind=\"{kind}\"}} {v}");
        }
        family(
            &mut s,
            "chatmail_accounts_active",
            "Non-CI accounts active within N days.",
        );
        for (days, v) in ACTIVE_DAYS.iter().zip(self.active) {
            let _ = writeln!(s, "chatmail_accounts_active{{days=\"{days}\"}} {v}");
        }
        s
    }

    /// The legacy `chatmail-metrics` file of SPEC §8.5 (its `# HELP` lines lack a metric
    /// name; kept byte for byte for whatever still scrapes it).
    pub fn legacy(&self) -> String {
        format!(
            "# HELP total number of accounts\n# TYPE accounts gauge\naccounts {}\n\
             # HELP number of CI accounts\n# TYPE ci_accounts gauge\nci_accounts {}\n\
             # HELP number of non-CI accounts\n# TYPE nonci_accounts gauge\nnonci_accounts {}\n",
            self.accounts_all,
            self.accounts_ci,
            self.accounts_user()
        )
    }
}

fn family(s: &mut String, name: &str, help: &str) {
    let _ = writeln!(s, "# HELP {name} {help}");
    let _ = writeln!(s, "# TYPE {name} gauge");
}

/// The reference's human-readable size: a number right-aligned in width 5 and a unit.
/// Rust's float formatting rounds the exact binary value half-to-even, like C `printf`
/// and Python, so `0.125` gives ` 0.12`.
#[expect(
    clippy::cast_precision_loss,
    reason = "the reference divides as floats too"
)]
pub fn hsize(n: u64) -> String {
    if n < 10_000 {
        format!("{:5.2}K", n as f64 / 1000.0)
    } else if n < 1_000_000 {
        format!("{:5.0}K", n as f64 / 1000.0)
    } else if n < 1_000_000_000 {
        format!("{:5}M", n / 1_000_000)
    } else {
        format!("{:5.2}G", n as f64 / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsize_table() {
        // Expected values from the reference's f-strings.
        let cases: &[(u64, &str)] = &[
            (0, " 0.00K"),
            (2, " 0.00K"),
            (5, " 0.01K"),
            (125, " 0.12K"),
            (375, " 0.38K"),
            (500, " 0.50K"),
            (9_999, "10.00K"),
            (10_000, "   10K"),
            (10_500, "   10K"),
            (11_500, "   12K"),
            (102_400, "  102K"),
            (999_999, " 1000K"),
            (1_000_000, "    1M"),
            (1_048_576, "    1M"),
            (999_999_999, "  999M"),
            (1_000_000_000, " 1.00G"),
            (12_345_000_000, "12.35G"),
            (123_456_000_000, "123.46G"),
        ];
        for (n, want) in cases {
            assert_eq!(hsize(*n), *want, "{n}");
        }
    }

    #[test]
    fn merge_is_sum() {
        let mut a = Report {
            size_messages: 1,
            active: [1; 7],
            ..Report::default()
        };
        let b = Report {
            size_messages: 2,
            accounts_ci: 1,
            accounts_all: 3,
            bucket_count: [2; 7],
            ..Report::default()
        };
        a.merge(&b);
        assert_eq!(a.size_messages, 3);
        assert_eq!(a.accounts_user(), 2);
        assert_eq!(a.bucket_count, [2; 7]);
        assert_eq!(a.active, [1; 7]);
    }
}
