//! A structure-aware generator of the messages the encryption filter is asked to judge.
//!
//! Random bytes rarely form a parameter list, a folded header or a delimiter line, so the
//! differential target on raw bytes cannot find where two MIME parsers read the structure
//! of a message differently. This generator builds messages from a grammar instead: the
//! canonical messages chatmail clients send (encrypted, securejoin request, delivery
//! report, Autocrypt Setup Message), and on top of them the tricks on which readers part
//! ways: parameter lists with quoting, quoted-pairs, `;` and `=` inside quotes, encoded
//! words, RFC 2231 continuations, comments and folds in odd places; boundaries of which one
//! is a prefix of another; preambles and epilogues with lines that look like delimiters;
//! hidden text parts with a cleartext marker; malformed part headers; bytes that Postfix
//! rewrites after the filter (NUL, lines over 998 bytes, huge headers).
//!
//! The fuzzer's bytes are the decision stream ([`Gen`]): every decision reads one or two
//! bytes and an exhausted stream decides "canonical, no trick", so a short input yields a
//! canonical message and the seeds are a few bytes each.

use arbitrary::Unstructured;

mod body;
mod mutate;
mod params;
mod payload;
mod text;
mod top;

pub use body::MARKER;

/// Our user (outgoing sender).
pub const LOCAL: &str = "alice@example.org";
/// A user of ours whose mailbox enforces encryption (incoming recipient).
pub const ENFORCING: &str = "bob@example.org";
/// A remote user (incoming sender, outgoing recipient).
pub const REMOTE: &str = "carol@remote.example";
/// A remote mailer daemon (sender of delivery reports).
pub const DAEMON: &str = "MAILER-DAEMON@remote.example";

/// One generated SMTP transaction.
#[derive(Debug, Clone)]
pub struct Case {
    /// Outgoing (submission) or incoming (port 25, `/mxdeliv`) mode.
    pub outgoing: bool,
    /// `MAIL FROM` (empty for the null sender).
    pub mail_from: String,
    /// `RCPT TO` addresses.
    pub rcpt_to: Vec<String>,
    /// The message, strictly CRLF (what the front ends let through).
    pub message: Vec<u8>,
    /// The tricks the generator used, to tell findings apart.
    pub tags: Vec<&'static str>,
}

/// What kind of message the generator starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// RFC 3156 `multipart/encrypted`.
    Encrypted,
    /// A securejoin `vc-request` / `vg-request`.
    SecureJoin,
    /// An RFC 3464 delivery report from a mailer daemon.
    Report,
    /// An Autocrypt Setup Message to oneself.
    Setup,
}

/// The decision stream and the tags of the tricks used so far.
pub struct Gen<'a, 'b> {
    u: &'b mut Unstructured<'a>,
    tags: Vec<&'static str>,
}

impl<'a, 'b> Gen<'a, 'b> {
    /// A generator reading decisions from `u`.
    pub fn new(u: &'b mut Unstructured<'a>) -> Self {
        Gen {
            u,
            tags: Vec::new(),
        }
    }

    /// A choice among `n` (0 when the stream is exhausted): one byte, two above 256.
    pub fn pick(&mut self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        let v = if n <= 256 {
            usize::from(self.u.arbitrary::<u8>().unwrap_or(0))
        } else {
            usize::from(self.u.arbitrary::<u16>().unwrap_or(0))
        };
        v % n
    }

    /// A yes/no decision (no when the stream is exhausted).
    pub fn flag(&mut self) -> bool {
        self.u.arbitrary::<u8>().unwrap_or(0) & 1 == 1
    }

    /// Another round of a mutation loop: at most `max` rounds, each while the stream says so.
    pub fn again(&mut self, round: &mut usize, max: usize) -> bool {
        *round += 1;
        *round <= max && self.flag()
    }

    /// One of `pool`.
    pub fn one_of<'p>(&mut self, pool: &[&'p str]) -> &'p str {
        pool.get(self.pick(pool.len())).copied().unwrap_or("")
    }

    /// Records that trick `t` was used.
    pub fn tag(&mut self, t: &'static str) {
        if !self.tags.contains(&t) {
            self.tags.push(t);
        }
    }
}

/// A message and its envelope from the decision stream in `u`.
pub fn generate(u: &mut Unstructured<'_>) -> Case {
    let mut g = Gen::new(u);
    let kind = match g.pick(4) {
        0 => Kind::Encrypted,
        1 => Kind::SecureJoin,
        2 => Kind::Report,
        _ => Kind::Setup,
    };
    let outgoing = match kind {
        Kind::Encrypted | Kind::SecureJoin => g.flag(),
        Kind::Report => false,
        Kind::Setup => true,
    };
    let (from, mail_from, rcpt) = envelope(&mut g, kind, outgoing);
    let root = match kind {
        Kind::Encrypted => body::encrypted(&mut g, outgoing),
        Kind::SecureJoin => body::securejoin(&mut g),
        Kind::Report => body::report(&mut g),
        Kind::Setup => body::setup(&mut g),
    };
    let message = top::message(&mut g, kind, from, rcpt, root);
    Case {
        outgoing,
        mail_from: mail_from.to_owned(),
        rcpt_to: vec![rcpt.to_owned()],
        message,
        tags: g.tags,
    }
}

/// From address, MAIL FROM and the recipient. A delivery report comes with the null
/// sender (RFC 3464); the other choice is the hole the policy must close.
fn envelope(
    g: &mut Gen<'_, '_>,
    kind: Kind,
    outgoing: bool,
) -> (&'static str, &'static str, &'static str) {
    match (kind, outgoing) {
        (Kind::Setup, _) => (LOCAL, LOCAL, LOCAL),
        (_, true) => (LOCAL, LOCAL, REMOTE),
        (Kind::Report, false) => {
            if g.flag() {
                g.tag("env:report-without-null-sender");
                (DAEMON, DAEMON, ENFORCING)
            } else {
                (DAEMON, "", ENFORCING)
            }
        }
        (_, false) => (REMOTE, REMOTE, ENFORCING),
    }
}
