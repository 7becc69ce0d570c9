//! The manual of each binary, written once: `--help` prints it as text and the man pages in
//! the repository's `man/` are rendered from it as roff, so the two cannot say different
//! things. A test renders every page and compares it with the committed file.
//!
//! A [`Page`] holds the usage text a binary prints on a wrong command line, a one-line
//! summary and the option blocks of `--help` (a heading such as `options:`, then one
//! `  TERM  text` line per entry, deeper-indented lines continuing the text). The man page
//! adds prose and the sections `--help` leaves out (exit status, environment, files).

use std::fmt::Write as _;

/// One binary's manual.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// The binary's name.
    pub name: &'static str,
    /// The manual section: 8 for daemons and the operator's CLI, 1 otherwise.
    pub section: u8,
    /// What it is, as a lower-case fragment (the man page's NAME line).
    pub summary: &'static str,
    /// The usage text printed on a wrong command line: `usage: NAME ...`, further forms on
    /// lines that start with blanks.
    pub usage: &'static str,
    /// The blocks of `--help` after the summary (see the module documentation); may be empty.
    pub options: &'static str,
    /// The man page's description: paragraphs separated by blank lines.
    pub description: &'static str,
    /// Exit statuses and what they mean.
    pub exit_status: &'static [(&'static str, &'static str)],
    /// Environment variables read.
    pub environment: &'static [(&'static str, &'static str)],
    /// Files read or written.
    pub files: &'static [(&'static str, &'static str)],
    /// Related pages, as `name(section)`.
    pub see_also: &'static [&'static str],
}

/// Exit statuses of every daemon.
pub const DAEMON_EXIT_STATUS: &[(&str, &str)] = &[
    (
        "0",
        "stopped by SIGTERM or SIGINT after finishing the requests in flight",
    ),
    ("1", "could not start or serve (the log says why)"),
    ("64", "wrong command line"),
    (
        "78",
        "chatmail.ini is missing or has a bad value (file, line, key and value are logged)",
    ),
];

/// The arguments and options of a daemon that serves one Dovecot dict socket (`lastlogin`,
/// `chatmail-metadata`): both are started the same way by their units.
pub const DICT_DAEMON_OPTIONS: &str = "\
arguments:
  SOCKET_PATH  the dict socket to serve
  INI_PATH     chatmail.ini
options:
  -h, --help   print this text and exit";

/// The relay's configuration file, as every binary reads it.
pub const INI_FILE: (&str, &str) = (
    crate::config::DEFAULT_INI,
    "the relay's configuration (section [params]), shared with the other services and the deployment tool",
);

/// `RUST_LOG`, as every daemon reads it.
pub const RUST_LOG: (&str, &str) = (
    "RUST_LOG",
    "log level or filter (default info); the log goes to stderr without timestamps, which journald adds",
);

/// `CHATMAIL_METRICS_SOCKET`, as every daemon without a dict socket reads it.
pub const METRICS_SOCKET: (&str, &str) = (
    crate::metrics::SOCKET_ENV,
    "where to publish the metrics socket instead of the default path",
);

/// One block of the options text: its heading (without the colon) and `(term, text)`
/// entries.
pub type Block = (String, Vec<(String, String)>);

impl Page {
    /// The file name of the man page: `NAME.SECTION`.
    pub fn file_name(&self) -> String {
        format!("{}.{}", self.name, self.section)
    }

    /// The `--help` text: usage, summary, option blocks (no final newline).
    pub fn help(&self) -> String {
        let mut out = format!("{}\n\n{}", self.usage.trim_end(), sentence(self.summary));
        let options = self.options.trim_end();
        if !options.is_empty() {
            out.push_str("\n\n");
            out.push_str(options);
        }
        out
    }

    /// Prints [`Page::help`] on stdout: the whole of `--help`. Exit 0, or 1 if stdout is gone.
    pub fn print_help(&self) -> std::process::ExitCode {
        if crate::cli::print_stdout(&self.help()) {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::FAILURE
        }
    }

    /// The forms of the command line, without `usage: ` and the indentation.
    pub fn synopsis(&self) -> Vec<&'static str> {
        self.usage
            .lines()
            .map(|l| l.trim_start_matches("usage:").trim())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// The option blocks, parsed.
    pub fn blocks(&self) -> Vec<Block> {
        parse_blocks(self.options)
    }

    /// The man page in roff (`man -l` renders it).
    pub fn roff(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            ".\\\" Rendered from the --help text of {} (chatmaild::manual); do not edit.",
            self.name
        );
        let _ = writeln!(
            out,
            ".TH {} {} \"\" \"chatmaild-rs {}\" \"chatmail relay\"",
            escape(&self.name.to_uppercase()),
            self.section,
            env!("CARGO_PKG_VERSION")
        );
        // No hyphenation, ragged right: names and paths stay whole.
        out.push_str(".nh\n.ad l\n");
        let _ = writeln!(
            out,
            ".SH NAME\n{} \\- {}",
            escape(self.name),
            escape(self.summary)
        );
        out.push_str(".SH SYNOPSIS\n");
        for (i, form) in self.synopsis().iter().enumerate() {
            if i > 0 {
                out.push_str(".br\n");
            }
            let (prog, rest) = form.split_once(' ').unwrap_or((form, ""));
            let _ = writeln!(out, ".B {}", escape(prog));
            if !rest.is_empty() {
                out.push_str(&line(rest));
            }
        }
        out.push_str(".SH DESCRIPTION\n");
        paragraph(&mut out, &sentence(self.summary));
        for para in self.description.split("\n\n") {
            paragraph(&mut out, para);
        }
        for (heading, entries) in self.blocks() {
            let _ = writeln!(out, ".SH {}", escape(&heading.to_uppercase()));
            for (term, text) in &entries {
                tagged(&mut out, term, text);
            }
        }
        section(&mut out, "EXIT STATUS", self.exit_status);
        section(&mut out, "ENVIRONMENT", self.environment);
        section(&mut out, "FILES", self.files);
        if !self.see_also.is_empty() {
            out.push_str(".SH SEE ALSO\n");
            let refs: Vec<String> = self
                .see_also
                .iter()
                .map(|r| match r.split_once('(') {
                    Some((n, s)) => format!("\\fB{}\\fR({s}", escape(n)),
                    None => format!("\\fB{}\\fR", escape(r)),
                })
                .collect();
            // Already escaped, and each reference starts with a font escape.
            let _ = writeln!(out, "{}", refs.join(",\n"));
        }
        out
    }
}

/// The summary as a sentence: capitalised, with a full stop.
fn sentence(summary: &str) -> String {
    let mut chars = summary.chars();
    let first = chars.next().map(|c| c.to_uppercase().collect::<String>());
    format!("{}{}.", first.unwrap_or_default(), chars.as_str())
}

/// Parses option blocks: a heading line ending in `:`, entries indented by two blanks
/// with the text after the first run of two or more blanks, continuation lines indented
/// deeper. Text before any heading goes to a block named `options`.
pub fn parse_blocks(text: &str) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    for raw in text.lines() {
        if raw.trim().is_empty() {
            continue;
        }
        if !raw.starts_with(' ') {
            let heading = raw.trim().trim_end_matches(':').to_owned();
            blocks.push((heading, Vec::new()));
            continue;
        }
        if blocks.is_empty() {
            blocks.push(("options".to_owned(), Vec::new()));
        }
        let Some((_, entries)) = blocks.last_mut() else {
            continue;
        };
        let indent = raw.len() - raw.trim_start().len();
        match entries.last_mut() {
            Some((_, text)) if indent > 2 => {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(raw.trim());
            }
            _ => {
                let entry = raw.trim();
                let (term, text) = match entry.find("  ") {
                    Some(at) => (entry.get(..at), entry.get(at..)),
                    None => (Some(entry), None),
                };
                entries.push((
                    term.unwrap_or_default().trim().to_owned(),
                    text.unwrap_or_default().trim().to_owned(),
                ));
            }
        }
    }
    blocks
}

/// Escapes text for roff: backslashes, minus signs (so options copy as ASCII), and a
/// control character at the start of a line.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            _ => out.push(c),
        }
    }
    if out.starts_with('.') || out.starts_with('\'') {
        out.insert_str(0, "\\&");
    }
    out
}

/// One line of running text (newlines inside become blanks).
fn line(text: &str) -> String {
    let joined: Vec<&str> = text.split_whitespace().collect();
    format!("{}\n", escape(&joined.join(" ")))
}

fn paragraph(out: &mut String, text: &str) {
    if text.trim().is_empty() {
        return;
    }
    out.push_str(".PP\n");
    out.push_str(&line(text));
}

fn tagged(out: &mut String, term: &str, text: &str) {
    out.push_str(".TP\n");
    let _ = writeln!(out, "\\fB{}\\fR", escape(term));
    if !text.is_empty() {
        out.push_str(&line(text));
    }
}

fn section(out: &mut String, title: &str, entries: &[(&str, &str)]) {
    if entries.is_empty() {
        return;
    }
    let _ = writeln!(out, ".SH {title}");
    for (term, text) in entries {
        tagged(out, term, text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: Page = Page {
        name: "tool",
        section: 1,
        summary: "do a thing",
        usage: "usage: tool [-v] FILE\n       tool --help",
        options: "arguments:\n  FILE       the input\noptions:\n  -v         say more,\n             much more\n  --flag\n",
        description: "First paragraph\nwrapped.\n\n.Second starts with a dot.",
        exit_status: &[("0", "done")],
        environment: &[],
        files: &[("/etc/tool", "config")],
        see_also: &["other(8)"],
    };

    #[test]
    fn help_is_usage_summary_and_blocks() {
        assert_eq!(
            PAGE.help(),
            "usage: tool [-v] FILE\n       tool --help\n\nDo a thing.\n\narguments:\n  FILE       the input\noptions:\n  -v         say more,\n             much more\n  --flag"
        );
    }

    #[test]
    fn blocks_and_synopsis() {
        assert_eq!(PAGE.synopsis(), ["tool [-v] FILE", "tool --help"]);
        assert_eq!(
            PAGE.blocks(),
            [
                (
                    "arguments".to_owned(),
                    vec![("FILE".to_owned(), "the input".to_owned())]
                ),
                (
                    "options".to_owned(),
                    vec![
                        ("-v".to_owned(), "say more, much more".to_owned()),
                        ("--flag".to_owned(), String::new())
                    ]
                ),
            ]
        );
        assert_eq!(parse_blocks(""), []);
        assert_eq!(
            parse_blocks("  -x  no heading"),
            [(
                "options".to_owned(),
                vec![("-x".to_owned(), "no heading".to_owned())]
            )]
        );
    }

    #[test]
    fn roff_escapes_and_has_every_section() {
        let roff = PAGE.roff();
        for needle in [
            ".TH TOOL 1 ",
            ".SH NAME\ntool \\- do a thing\n",
            ".SH SYNOPSIS\n.B tool\n[\\-v] FILE\n.br\n.B tool\n\\-\\-help\n",
            ".PP\nFirst paragraph wrapped.\n",
            ".PP\n\\&.Second starts with a dot.\n",
            ".SH ARGUMENTS\n.TP\n\\fBFILE\\fR\nthe input\n",
            ".TP\n\\fB\\-v\\fR\nsay more, much more\n",
            ".SH EXIT STATUS\n.TP\n\\fB0\\fR\ndone\n",
            ".SH FILES\n",
            ".SH SEE ALSO\n\\fBother\\fR(8)\n",
        ] {
            assert!(roff.contains(needle), "{needle:?} not in\n{roff}");
        }
        assert!(!roff.contains("ENVIRONMENT"));
        assert_eq!(escape("a\\b"), "a\\eb");
        assert_eq!(escape("'x"), "\\&'x");
        assert_eq!(PAGE.file_name(), "tool.1");
    }
}
