//! Metrics in the Prometheus data model, and their publication on a unix socket.
//!
//! Recording is a relaxed atomic add: no lock, no allocation, nothing a scrape can delay.
//! Rendering happens only when a reader connects to the daemon's metrics socket
//! ([`publish`]): the daemon writes its figures in the Prometheus text exposition format
//! (version 0.0.4) and closes the connection. The reader sends nothing; a reader that does
//! not read gets at most [`WRITE_TIMEOUT`] before the connection is dropped, and at most
//! [`MAX_READERS`] readers are served at once, each on its own task, so no reader can
//! stall the service. `chatmail-exporter` collects these sockets into one `/metrics`.
//!
//! Names follow Prometheus conventions: `chatmail_` prefix, the unit in the name
//! (`_seconds`, `_bytes`), `_total` for counters. Label values come from fixed lists
//! (an enum's variants), never from an address, token or message id.

pub mod names;

use std::fmt::Write as _;
use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// File name of a daemon's metrics socket, in the directory of its service socket.
pub const SOCKET_NAME: &str = "metrics.socket";

/// Time a reader gets to take the whole snapshot.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Readers served at once; more wait in the listen backlog.
pub const MAX_READERS: usize = 4;

/// The metrics socket of a daemon whose service socket is `service_socket`:
/// `metrics.socket` beside it (`/run/chatmail-lastlogin/metrics.socket`).
pub fn socket_path(service_socket: &Path) -> PathBuf {
    service_socket
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(SOCKET_NAME)
}

/// Environment variable naming the metrics socket of a daemon that has no service socket
/// of its own (filtermail); tests point it into a temporary directory.
pub const SOCKET_ENV: &str = "CHATMAIL_METRICS_SOCKET";

/// The metrics socket of a daemon without a service socket: `$CHATMAIL_METRICS_SOCKET`,
/// else `default` (e.g. `/run/filtermail-transport/metrics.socket`).
pub fn socket_from_env(default: &str) -> PathBuf {
    std::env::var_os(SOCKET_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// Declares the values of a metric label as a fieldless enum: each variant with its label
/// value, in the order the counters are indexed by. The enum gets `VALUES` (the label
/// values, in variant order, for [`CounterVec::new`]), `label()` and `index()`, so a value
/// list can never drift from its enum. Doc comments and other attributes are kept; the
/// enum derives `Debug, Clone, Copy, PartialEq, Eq`.
///
/// ```
/// chatmaild::metrics::labels! {
///     /// How a request ended.
///     pub enum Outcome {
///         /// Answered.
///         Ok => "ok",
///         /// Not answered.
///         Failed => "failed",
///     }
/// }
/// assert_eq!(Outcome::VALUES, ["ok", "failed"]);
/// assert_eq!(Outcome::Failed.label(), "failed");
/// assert_eq!(Outcome::Failed.index(), 1);
/// ```
#[doc(hidden)]
#[macro_export]
macro_rules! __metrics_labels {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident => $label:literal
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name {
            $(
                $(#[$vmeta])*
                $variant,
            )+
        }

        impl $name {
            /// The label values, in variant order (`VALUES[v.index()] == v.label()`).
            pub const VALUES: &'static [&'static str] = &[$($label),+];

            /// The label value of `self`.
            pub const fn label(self) -> &'static str {
                match self {
                    $(Self::$variant => $label,)+
                }
            }

            /// The position of `self` in [`Self::VALUES`], and of its counter.
            pub const fn index(self) -> usize {
                self as usize
            }
        }
    };
}

#[doc(inline)]
pub use crate::__metrics_labels as labels;

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
    fn snapshot(&self) -> (Vec<(f64, u64)>, f64) {
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
    label: &'static str,
    values: &'static [&'static str],
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
    row_label: &'static str,
    rows: &'static [&'static str],
    col_label: &'static str,
    cols: &'static [&'static str],
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

/// The type line of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `counter`
    Counter,
    /// `gauge`
    Gauge,
    /// `histogram`
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Writes the Prometheus text format. Each family is announced once with
/// [`Encoder::family`], then its samples follow.
#[derive(Debug, Default)]
pub struct Encoder {
    out: String,
}

impl Encoder {
    /// An empty document.
    pub fn new() -> Self {
        Encoder::default()
    }

    /// The `# HELP` and `# TYPE` lines of a family.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        write_labels(&mut self.out, labels, None);
        self.out.push(' ');
        push_value(&mut self.out, value);
        self.out.push('\n');
    }

    /// A family of one unlabelled counter.
    pub fn counter(&mut self, name: &str, help: &str, c: &Counter) {
        self.family(name, help, Kind::Counter);
        self.sample(name, &[], c.get() as f64);
    }

    /// A family of one unlabelled gauge.
    pub fn gauge(&mut self, name: &str, help: &str, v: f64) {
        self.family(name, help, Kind::Gauge);
        self.sample(name, &[], v);
    }

    /// A counter family with one sample per value of `c`'s label.
    pub fn counter_vec(&mut self, name: &str, help: &str, c: &CounterVec) {
        self.family(name, help, Kind::Counter);
        for (i, value) in c.values.iter().enumerate() {
            self.sample(name, &[(c.label, value)], c.get(i) as f64);
        }
    }

    /// A counter family with one sample per pair of `g`'s label values.
    pub fn counter_grid(&mut self, name: &str, help: &str, g: &CounterGrid) {
        self.family(name, help, Kind::Counter);
        self.counter_grid_samples(name, &[], g, |_, _, _| true);
    }

    /// The samples of `g` whose `(row, col, count)` `keep` accepts, row by row, each with
    /// `labels` first, then the row's and the column's label.
    pub fn counter_grid_samples(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        g: &CounterGrid,
        keep: impl Fn(usize, usize, u64) -> bool,
    ) {
        for (r, row) in g.rows.iter().enumerate() {
            for (c, col) in g.cols.iter().enumerate() {
                let n = g.get(r, c);
                if keep(r, c, n) {
                    let mut all = labels.to_vec();
                    all.extend([(g.row_label, *row), (g.col_label, *col)]);
                    self.sample(name, &all, n as f64);
                }
            }
        }
    }

    /// A histogram family of one unlabelled histogram.
    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.family(name, help, Kind::Histogram);
        self.histogram_samples(name, &[], h);
    }

    /// The `_bucket` (cumulative, `+Inf` last), `_sum` and `_count` samples of `h`.
    pub fn histogram_samples(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let (buckets, sum) = h.snapshot();
        let mut count = 0;
        for (le, n) in buckets {
            let _ = write!(self.out, "{name}_bucket");
            let mut bound = String::new();
            push_value(&mut bound, le);
            write_labels(&mut self.out, labels, Some(&bound));
            let _ = writeln!(self.out, " {n}");
            count = n;
        }
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, count as f64);
    }

    /// Appends text that is already in the exposition format (a textfile).
    pub fn raw(&mut self, text: &str) {
        self.out.push_str(text);
        if !text.is_empty() && !text.ends_with('\n') {
            self.out.push('\n');
        }
    }

    /// The document.
    pub fn finish(self) -> String {
        self.out
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        for ch in v.chars() {
            match ch {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Something that has figures to publish.
pub trait Collect: Send + Sync + 'static {
    /// Writes the current figures.
    fn collect(&self, enc: &mut Encoder);
}

impl<F: Fn(&mut Encoder) + Send + Sync + 'static> Collect for F {
    fn collect(&self, enc: &mut Encoder) {
        self(enc)
    }
}

/// Binds the metrics socket at `path` (a stale socket there is replaced, any other file
/// left alone) and serves snapshots of `source` until `stop`. Failing to bind is logged
/// and ends only the publication: the daemon serves on without metrics.
pub fn spawn_publisher<C: Collect>(path: &Path, source: Arc<C>, stop: CancellationToken) {
    match bind(path) {
        Ok(listener) => {
            info!(socket = %path.display(), "publishing metrics");
            tokio::spawn(publish(listener, source, stop));
        }
        Err(e) => warn!(
            socket = %path.display(),
            "cannot bind the metrics socket, serving without metrics: {e}"
        ),
    }
}

/// Binds a unix socket at `path`, replacing only a stale socket: one that another
/// process still serves (two daemons started with sockets in one directory) is kept.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    ErrorKind::AddrInUse,
                    "another process serves this socket",
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(std::io::Error::new(
                ErrorKind::AlreadyExists,
                "exists and is not a socket; refusing to remove it",
            ));
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    UnixListener::bind(path)
}

/// Serves one snapshot of `source` to each reader of `listener` until `stop`.
pub async fn publish<C: Collect>(listener: UnixListener, source: Arc<C>, stop: CancellationToken) {
    let result = crate::accept::accept_loop(
        &listener,
        MAX_READERS,
        &stop,
        Duration::ZERO,
        |mut stream: tokio::net::UnixStream| {
            let source = source.clone();
            async move {
                let mut enc = Encoder::new();
                source.collect(&mut enc);
                let text = enc.finish();
                let write = async {
                    stream.write_all(text.as_bytes()).await?;
                    stream.shutdown().await
                };
                match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => debug!("metrics reader went away: {e}"),
                    Err(_) => debug!("metrics reader too slow, dropped"),
                }
            }
        },
    )
    .await;
    if let Err(e) = result {
        warn!("metrics socket failed, no more metrics: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    labels! {
        /// A label for the test.
        enum Sample {
            /// First.
            First => "first",
            /// Second.
            Second => "second_one",
            Third => "third",
        }
    }

    #[test]
    fn labels_keep_values_in_variant_order() {
        assert_eq!(Sample::VALUES, ["first", "second_one", "third"]);
        for (i, v) in [Sample::First, Sample::Second, Sample::Third]
            .into_iter()
            .enumerate()
        {
            assert_eq!(v.index(), i);
            assert_eq!(Sample::VALUES[v.index()], v.label());
        }
        let c = CounterVec::new("sample", Sample::VALUES);
        c.inc(Sample::Second.index());
        let mut e = Encoder::new();
        e.counter_vec("chatmail_s_total", "s", &c);
        assert!(
            e.finish()
                .contains("chatmail_s_total{sample=\"second_one\"} 1\n")
        );
    }

    #[test]
    fn labels_and_help_are_escaped() {
        let mut e = Encoder::new();
        e.family("chatmail_x_total", "a \\ b\nc", Kind::Counter);
        e.sample(
            "chatmail_x_total",
            &[("a", "q\"b\\s\nn"), ("b", "plain")],
            3.0,
        );
        assert_eq!(
            e.finish(),
            "# HELP chatmail_x_total a \\\\ b\\nc\n# TYPE chatmail_x_total counter\n\
             chatmail_x_total{a=\"q\\\"b\\\\s\\nn\",b=\"plain\"} 3\n"
        );
    }

    #[test]
    fn values_render_as_prometheus_expects() {
        let mut s = String::new();
        for v in [0.0, 1.5, 1e21, f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
            push_value(&mut s, v);
            s.push(' ');
        }
        assert_eq!(s, "0 1.5 1000000000000000000000 +Inf -Inf NaN ");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_in_inf() {
        static B: &[f64] = &[0.1, 1.0];
        let h = Histogram::new(B);
        for v in [0.05, 0.1, 0.5, 7.0, 9.0] {
            h.observe(v);
        }
        let mut e = Encoder::new();
        e.histogram("chatmail_t_seconds", "t", &h);
        let text = e.finish();
        let body: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(
            body,
            [
                "chatmail_t_seconds_bucket{le=\"0.1\"} 2",
                "chatmail_t_seconds_bucket{le=\"1\"} 3",
                "chatmail_t_seconds_bucket{le=\"+Inf\"} 5",
                "chatmail_t_seconds_sum 16.65",
                "chatmail_t_seconds_count 5",
            ]
        );
    }

    #[test]
    fn histogram_with_labels_puts_le_last() {
        static B: &[f64] = &[1.0];
        let h = Histogram::new(B);
        h.observe(2.0);
        let mut e = Encoder::new();
        e.histogram_samples("h", &[("path", "smtp")], &h);
        assert_eq!(
            e.finish(),
            "h_bucket{path=\"smtp\",le=\"1\"} 0\nh_bucket{path=\"smtp\",le=\"+Inf\"} 1\n\
             h_sum{path=\"smtp\"} 2\nh_count{path=\"smtp\"} 1\n"
        );
    }

    #[test]
    fn counter_vec_renders_every_value_even_at_zero() {
        let c = CounterVec::new("result", &["ok", "fail"]);
        c.inc(1);
        c.inc(1);
        c.inc(7);
        let mut e = Encoder::new();
        e.counter_vec("chatmail_r_total", "r", &c);
        assert!(
            e.finish().ends_with(
                "chatmail_r_total{result=\"ok\"} 0\nchatmail_r_total{result=\"fail\"} 2\n"
            )
        );
    }

    #[test]
    fn counter_grid_renders_row_by_row_after_the_given_labels() {
        let g = CounterGrid::new("kind", &["a", "b"], "result", &["ok", "fail"]);
        g.inc(1, 0);
        g.inc(1, 0);
        g.inc(0, 2);
        g.inc(2, 0);
        assert_eq!((g.get(1, 0), g.get(0, 1), g.get(0, 2)), (2, 0, 0));
        let mut e = Encoder::new();
        e.counter_grid("g_total", "g", &g);
        let body: Vec<String> = e.finish().lines().skip(2).map(String::from).collect();
        assert_eq!(
            body,
            [
                "g_total{kind=\"a\",result=\"ok\"} 0",
                "g_total{kind=\"a\",result=\"fail\"} 0",
                "g_total{kind=\"b\",result=\"ok\"} 2",
                "g_total{kind=\"b\",result=\"fail\"} 0",
            ]
        );
        let mut e = Encoder::new();
        e.counter_grid_samples("g_total", &[("d", "x")], &g, |r, c, n| n > 0 || r == c);
        assert_eq!(
            e.finish(),
            "g_total{d=\"x\",kind=\"a\",result=\"ok\"} 0\n\
             g_total{d=\"x\",kind=\"b\",result=\"ok\"} 2\n\
             g_total{d=\"x\",kind=\"b\",result=\"fail\"} 0\n"
        );
    }

    #[test]
    fn socket_sits_beside_the_service_socket() {
        assert_eq!(
            socket_path(Path::new("/run/chatmail-lastlogin/lastlogin.socket")),
            PathBuf::from("/run/chatmail-lastlogin/metrics.socket")
        );
    }

    #[tokio::test]
    async fn a_live_socket_is_not_taken_over_a_stale_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_NAME);
        let first = bind(&path).unwrap();
        let err = bind(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse);
        drop(first);
        assert!(path.exists(), "left behind like after a crash");
        drop(bind(&path).unwrap());
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        assert!(bind(&file).is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"x");
    }

    #[tokio::test]
    async fn a_reader_that_never_reads_neither_blocks_others_nor_the_recorder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_NAME);
        let counter = Arc::new(Counter::new());
        // A snapshot far larger than a socket buffer, so a non-reading reader would block
        // a writer without the timeout.
        let c = counter.clone();
        let source = Arc::new(move |e: &mut Encoder| {
            e.counter("chatmail_n_total", "n", &c);
            e.raw(&"# filler\n".repeat(200_000));
        });
        let stop = CancellationToken::new();
        spawn_publisher(&path, source, stop.clone());
        // MAX_READERS stuck readers hold every slot until WRITE_TIMEOUT.
        let mut stuck = Vec::new();
        for _ in 0..MAX_READERS {
            stuck.push(tokio::net::UnixStream::connect(&path).await.unwrap());
        }
        let started = std::time::Instant::now();
        for _ in 0..1000 {
            counter.inc();
        }
        assert!(started.elapsed() < Duration::from_millis(100));
        let mut r = tokio::net::UnixStream::connect(&path).await.unwrap();
        let mut text = String::new();
        tokio::time::timeout(WRITE_TIMEOUT * 3, r.read_to_string(&mut text))
            .await
            .expect("served once the stuck readers timed out")
            .unwrap();
        assert!(text.contains("chatmail_n_total 1000\n"), "{}", &text[..200]);
        stop.cancel();
    }
}
