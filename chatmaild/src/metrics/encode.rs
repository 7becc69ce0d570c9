//! Rendering in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write as _;

use super::{Counter, CounterGrid, CounterVec, Histogram};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::labels;

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
}
