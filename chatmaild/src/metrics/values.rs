//! The recorders: relaxed atomics a service bumps on its hot path.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// A counter at zero.
    pub const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }

    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// A gauge at zero.
    pub const fn new() -> Self {
        Gauge(AtomicI64::new(0))
    }

    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Bucket bounds in seconds for work that takes milliseconds (a dict request, hashing a
/// password, filtering a message).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bucket bounds in seconds for network requests to other servers (push, delivery).
pub const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Bucket bounds in bytes for message sizes (1 KiB .. 64 MiB, ×4).
pub const SIZE_BUCKETS: &[f64] = &[
    1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0, 67108864.0,
];

/// A distribution: counts per bucket (`le` upper bounds, plus `+Inf`), sum and count.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket, not cumulative (so one observation touches one slot); the last is `+Inf`.
    counts: Box<[AtomicU64]>,
    /// The sum as `f64` bits, updated by compare-and-swap.
    sum: AtomicU64,
}

impl Histogram {
    /// A histogram with the given ascending upper bounds (`+Inf` is implied).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let slot = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(slot) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    /// Records a duration in seconds.
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// Upper bounds with cumulative counts, `+Inf` last; then the sum.
    pub(super) fn snapshot(&self) -> (Vec<(f64, u64)>, f64) {
        let mut total = 0;
        let mut out = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            total += c.load(Ordering::Relaxed);
            out.push((self.bounds.get(i).copied().unwrap_or(f64::INFINITY), total));
        }
        (out, f64::from_bits(self.sum.load(Ordering::Relaxed)))
    }
}

/// Counters with one label whose values form a fixed list: an enum's variants index it.
#[derive(Debug)]
pub struct CounterVec {
    pub(super) label: &'static str,
    pub(super) values: &'static [&'static str],
    counters: Box<[Counter]>,
}

impl CounterVec {
    /// One counter per value of `label`.
    pub fn new(label: &'static str, values: &'static [&'static str]) -> Self {
        CounterVec {
            label,
            values,
            counters: values.iter().map(|_| Counter::new()).collect(),
        }
    }

    /// Adds one to the counter of `values[index]` (an index out of range is ignored).
    pub fn inc(&self, index: usize) {
        if let Some(c) = self.counters.get(index) {
            c.inc();
        }
    }

    /// The count of `values[index]`.
    pub fn get(&self, index: usize) -> u64 {
        self.counters.get(index).map_or(0, Counter::get)
    }
}

/// Counters with two labels whose values form fixed lists: a row and a column index (two
/// enums' variants) pick one.
#[derive(Debug)]
pub struct CounterGrid {
    pub(super) row_label: &'static str,
    pub(super) rows: &'static [&'static str],
    pub(super) col_label: &'static str,
    pub(super) cols: &'static [&'static str],
    /// Row-major: `row * cols.len() + col`.
    counters: Box<[Counter]>,
}

impl CounterGrid {
    /// One counter per pair of a `row_label` value and a `col_label` value.
    pub fn new(
        row_label: &'static str,
        rows: &'static [&'static str],
        col_label: &'static str,
        cols: &'static [&'static str],
    ) -> Self {
        CounterGrid {
            row_label,
            rows,
            col_label,
            cols,
            counters: (0..rows.len() * cols.len())
                .map(|_| Counter::new())
                .collect(),
        }
    }

    fn counter(&self, row: usize, col: usize) -> Option<&Counter> {
        if col >= self.cols.len() {
            return None;
        }
        self.counters.get(row * self.cols.len() + col)
    }

    /// Adds one to the counter of `(rows[row], cols[col])` (out of range is ignored).
    pub fn inc(&self, row: usize, col: usize) {
        if let Some(c) = self.counter(row, col) {
            c.inc();
        }
    }

    /// The count of `(rows[row], cols[col])`.
    pub fn get(&self, row: usize, col: usize) -> u64 {
        self.counter(row, col).map_or(0, Counter::get)
    }
}
