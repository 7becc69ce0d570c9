//! The DATA phase (RFC 5321 §4.5.2, §4.1.1.4): one receiver and the matching dot-stuffing.
//!
//! [`DataReceiver`] undoes dot-stuffing, finds the end marker across reads, and stops
//! storing past the size limit while still reading to the end marker, so the rest of an
//! oversized message is never taken for commands. The limit counts the unstuffed message,
//! as Postfix's `message_size_limit` does. A bare CR or LF anywhere makes the message
//! invalid (reported at the end marker too): Postfix, mail parsers and mail clients split
//! such lines differently.

/// Memory the receiver may hold, asked for as the message grows (a process-wide budget of
/// messages in flight, say). `()` allows anything up to the size limit.
pub trait Allowance {
    /// Whether `total` bytes (of at most `max`) may be held.
    fn cover(&mut self, total: usize, max: usize) -> bool;
    /// Gives back what was covered; the message was discarded.
    fn release(&mut self);
}

impl Allowance for () {
    fn cover(&mut self, _total: usize, _max: usize) -> bool {
        true
    }
    fn release(&mut self) {}
}

/// Where the receiver is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line.
    LineStart,
    /// A `.` started the line.
    Dot,
    /// `.` CR started the line.
    DotCr,
    /// Inside a line.
    Mid,
    /// Just after a CR inside a line.
    Cr,
}

/// A finished DATA phase.
#[derive(Debug, PartialEq, Eq)]
pub enum DataEnd {
    /// The unstuffed message, ending in CRLF unless empty.
    Message(Vec<u8>),
    /// The message was larger than the limit; its bytes were discarded.
    TooBig,
    /// The [`Allowance`] could not hold it; its bytes were discarded.
    OverBudget,
    /// A CR not followed by LF, or an LF not preceded by CR.
    BareLineEnd,
    /// A line started with a single `.` followed by text, refused by
    /// [`DataReceiver::refuse_unstuffed_dot`].
    UnstuffedDot,
}

/// Receives one message after `354`; see the module documentation.
#[derive(Debug)]
pub struct DataReceiver<A = ()> {
    state: State,
    max: usize,
    message: Vec<u8>,
    overflow: bool,
    over_budget: bool,
    bare_line_end: bool,
    unstuffed_dot: bool,
    refuse_unstuffed_dot: bool,
    allowance: A,
}

impl<A: Allowance + Default> DataReceiver<A> {
    /// A receiver keeping at most `max` message bytes, with a default allowance.
    pub fn new(max: u64) -> Self {
        DataReceiver::with_allowance(max, A::default())
    }

    /// The allowance of the message read; keep it as long as the message is held.
    pub fn take_allowance(&mut self) -> A {
        std::mem::take(&mut self.allowance)
    }
}

impl<A: Allowance> DataReceiver<A> {
    /// A receiver keeping at most `max` message bytes, held under `allowance`.
    pub fn with_allowance(max: u64, allowance: A) -> Self {
        DataReceiver {
            state: State::LineStart,
            max: usize::try_from(max).unwrap_or(usize::MAX),
            message: Vec::new(),
            overflow: false,
            over_budget: false,
            bare_line_end: false,
            unstuffed_dot: false,
            refuse_unstuffed_dot: false,
            allowance,
        }
    }

    /// Refuses a line that starts with one `.` followed by text. RFC 5321 drops such a
    /// dot, but a sender that left a dot line unstuffed may have meant the dot: a
    /// transport that passes the message on refuses it rather than guess.
    pub fn refuse_unstuffed_dot(mut self) -> Self {
        self.refuse_unstuffed_dot = true;
        self
    }

    /// Whether the message has exceeded the limit (the receiver then only looks for the end).
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// Whether the allowance refused the message (the receiver then only looks for the end).
    pub fn over_budget(&self) -> bool {
        self.over_budget
    }

    fn discard(&mut self) {
        self.message = Vec::new();
        self.allowance.release();
    }

    fn emit(&mut self, bytes: &[u8]) {
        if self.overflow || self.over_budget {
            return;
        }
        let total = self.message.len().saturating_add(bytes.len());
        if total > self.max {
            self.overflow = true;
            self.discard();
        } else if !self.allowance.cover(total, self.max) {
            self.over_budget = true;
            self.discard();
        } else {
            self.message.extend_from_slice(bytes);
        }
    }

    fn finish(&mut self) -> DataEnd {
        let end = if self.overflow {
            return DataEnd::TooBig;
        } else if self.over_budget {
            return DataEnd::OverBudget;
        } else if self.bare_line_end {
            DataEnd::BareLineEnd
        } else if self.unstuffed_dot && self.refuse_unstuffed_dot {
            DataEnd::UnstuffedDot
        } else {
            return DataEnd::Message(std::mem::take(&mut self.message));
        };
        self.discard();
        end
    }

    /// Consumes bytes from `input`; returns how many were used and, once the end marker has
    /// been read, the result. Bytes after the end marker are left for the command reader.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<DataEnd>) {
        let mut i = 0;
        while let Some(&b) = input.get(i) {
            match self.state {
                State::Mid => {
                    i += self.copy_line(input.get(i..).unwrap_or_default());
                    continue;
                }
                State::LineStart if b == b'.' => self.state = State::Dot,
                State::LineStart | State::Cr => self.plain_byte(b),
                State::Dot if b == b'\r' => self.state = State::DotCr,
                State::Dot => {
                    // Dot-stuffing: the leading dot is dropped, the byte kept.
                    self.unstuffed_dot |= b != b'.' && b != b'\n';
                    self.plain_byte(b);
                }
                State::DotCr if b == b'\n' => return (i + 1, Some(self.finish())),
                State::DotCr => {
                    // `.` CR x: the dot was stuffing; CR x is line content.
                    self.emit(b"\r");
                    self.state = State::Cr;
                    self.plain_byte(b);
                }
            }
            i += 1;
        }
        (i, None)
    }

    /// Copies line content up to and including the next CR in one go; returns the bytes used.
    fn copy_line(&mut self, rest: &[u8]) -> usize {
        let n = rest.iter().position(|&c| c == b'\r').unwrap_or(rest.len());
        let chunk = rest.get(..n).unwrap_or_default();
        if chunk.contains(&b'\n') {
            self.bare_line_end = true;
        }
        self.emit(chunk);
        if n < rest.len() {
            self.emit(b"\r");
            self.state = State::Cr;
            return n + 1;
        }
        n
    }

    /// One byte of line content after which the state follows the CRLF structure.
    fn plain_byte(&mut self, b: u8) {
        if (b == b'\n') != (self.state == State::Cr) {
            self.bare_line_end = true;
        }
        self.emit(&[b]);
        self.state = match (self.state, b) {
            (_, b'\r') => State::Cr,
            (State::Cr, b'\n') => State::LineStart,
            _ => State::Mid,
        };
    }
}

/// `message` dot-stuffed for SMTP DATA, in slices: every `.` that starts a line (after LF,
/// bare or not, so lenient receivers cannot see an early end marker) is doubled. The
/// end-of-data line is not included.
pub fn stuffed_slices(message: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = message;
    let mut at_line_start = true;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        if at_line_start && rest.first() == Some(&b'.') {
            // Emit "." now; the original dot goes out with the following slice.
            at_line_start = false;
            return Some(&b"."[..]);
        }
        // Up to and including the next LF.
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |p| p + 1);
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        at_line_start = chunk.last() == Some(&b'\n');
        Some(chunk)
    })
}

/// `message` dot-stuffed, without the end-of-data line.
pub fn stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 8);
    stuffed_slices(message).for_each(|s| out.extend_from_slice(s));
    out
}

/// Whether `message[i]` is a dot that starts a line (which stuffing doubles).
fn dot_at_line_start(message: &[u8], i: usize) -> bool {
    message.get(i) == Some(&b'.') && (i == 0 || message.get(i - 1) == Some(&b'\n'))
}

/// The length of [`stuff`]`(message)`.
pub fn stuffed_len(message: &[u8]) -> usize {
    let dots = (0..message.len())
        .filter(|&i| dot_at_line_start(message, i))
        .count();
    message.len() + dots
}

/// [`stuff`] in place: the message grows by one byte per line that starts with a dot and
/// its bytes move towards the end, so a large message is never held twice.
pub fn stuff_in_place(message: &mut Vec<u8>) {
    let old = message.len();
    let mut shift = stuffed_len(message) - old;
    message.resize(old + shift, 0);
    // `message[..end]` is still unmoved; everything from `end` on is in place.
    let mut end = old;
    while shift > 0 {
        let Some(p) = (0..end).rev().find(|&i| dot_at_line_start(message, i)) else {
            break;
        };
        message.copy_within(p..end, p + shift);
        shift -= 1;
        if let Some(b) = message.get_mut(p + shift) {
            *b = b'.';
        }
        end = p;
    }
}

#[cfg(test)]
#[path = "data_tests.rs"]
mod tests;
