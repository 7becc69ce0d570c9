//! Progress of the commands that go through every account (`list`, `export`, `import`),
//! drawn on stderr only when stderr is a terminal: an operator waiting on a relay with a
//! hundred thousand accounts sees the count move, while pipes, the journal and scripts get
//! exactly the output they got before.
//!
//! One line, redrawn in place (`\r`) at most every [`REDRAW`], at the first account and at
//! the last, and cleared when the work is done so the command's own output starts on a
//! clean line.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Shortest time between two redraws.
pub const REDRAW: Duration = Duration::from_millis(100);

/// A progress line.
pub struct Progress {
    out: Option<Box<dyn Write>>,
    what: &'static str,
    total: Option<usize>,
    done: usize,
    drawn: Option<Instant>,
}

impl Progress {
    /// Progress of `what` on stderr if stderr is a terminal; otherwise nothing is drawn.
    pub fn on_terminal(what: &'static str) -> Progress {
        let stderr = std::io::stderr();
        if stderr.is_terminal() {
            Progress::to(Box::new(stderr), what)
        } else {
            Progress::hidden()
        }
    }

    /// A progress that draws nothing (stdout shares the terminal with the output of the
    /// command, or nobody is watching).
    pub fn hidden() -> Progress {
        Progress {
            out: None,
            what: "",
            total: None,
            done: 0,
            drawn: None,
        }
    }

    /// Progress drawn on `out`.
    pub fn to(out: Box<dyn Write>, what: &'static str) -> Progress {
        Progress {
            out: Some(out),
            what,
            total: None,
            done: 0,
            drawn: None,
        }
    }

    /// How many accounts there are in all, when known before the work starts.
    pub fn set_total(&mut self, total: usize) {
        self.total = Some(total);
    }

    /// One more account done.
    pub fn tick(&mut self) {
        self.done += 1;
        let due = self.drawn.is_none_or(|t| t.elapsed() >= REDRAW);
        if due || Some(self.done) == self.total {
            self.draw();
        }
    }

    fn draw(&mut self) {
        let Some(out) = self.out.as_mut() else {
            return;
        };
        let _ = match self.total {
            Some(total) => write!(out, "\r{}: {}/{total} accounts", self.what, self.done),
            None => write!(out, "\r{}: {} accounts", self.what, self.done),
        };
        let _ = out.flush();
        self.drawn = Some(Instant::now());
    }
}

impl Drop for Progress {
    /// Shows the final count, then clears the line.
    fn drop(&mut self) {
        if self.drawn.is_none() {
            return;
        }
        self.draw();
        if let Some(out) = self.out.as_mut() {
            let _ = write!(out, "\r\x1b[K");
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn draws_first_and_last_then_clears() {
        let out = Shared::default();
        let mut p = Progress::to(Box::new(out.clone()), "export");
        p.set_total(1000);
        for _ in 0..1000 {
            p.tick();
        }
        let text = out.text();
        assert!(text.starts_with("\rexport: 1/1000 accounts"), "{text:?}");
        assert!(text.contains("\rexport: 1000/1000 accounts"), "{text:?}");
        // 1000 ticks in far less than 100 ms: not redrawn for each.
        assert!(text.matches('\r').count() < 10, "{text:?}");
        drop(p);
        assert!(out.text().ends_with("\r\x1b[K"));
    }

    #[test]
    fn without_a_total_counts_and_nothing_drawn_draws_nothing() {
        let out = Shared::default();
        let mut p = Progress::to(Box::new(out.clone()), "import");
        p.tick();
        p.tick();
        drop(p);
        assert_eq!(
            out.text(),
            "\rimport: 1 accounts\rimport: 2 accounts\r\x1b[K"
        );
        let out = Shared::default();
        drop(Progress::to(Box::new(out.clone()), "list"));
        assert_eq!(out.text(), "");
        let mut hidden = Progress::hidden();
        hidden.set_total(3);
        hidden.tick();
    }
}
