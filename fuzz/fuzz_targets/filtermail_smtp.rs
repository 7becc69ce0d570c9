//! filtermail's SMTP receiver fed any byte stream in any chunks, driven the way the
//! connection driver (`chatmail_smtp::serve`) drives it: framing, the shared dialogue with
//! filtermail's envelope rules, DATA. Never panics, never stores more
//! than the size limit, never consumes more than it was given; and a message
//! dot-stuffed by `stuffed_slices` comes out of `DataReader` unchanged.
//! (The wire protocol's pieces have targets of their own: `smtp_framing`, `smtp_command`,
//! `smtp_data`, `smtp_reply`.)
#![no_main]

use arbitrary::Arbitrary;
use chatmail_fuzz::chunks;
use chatmail_smtp::session::Step;
use chatmail_smtp::{Dialogue, Line, next_line, stuffed_slices};
use filtermail::Mode;
use filtermail::internals::smtp::{DataEnd, DataReader, Envelopes};
use libfuzzer_sys::fuzz_target;

const MAX: u64 = 2048;

#[derive(Debug, Arbitrary)]
struct Input {
    outgoing: bool,
    /// Read sizes (cycled); 0 is read as 1.
    cuts: Vec<u8>,
    stream: Vec<u8>,
    /// Lines of a message for the stuffing round trip (CR and LF removed).
    lines: Vec<Vec<u8>>,
}

fn drive(mode: Mode, reads: &[&[u8]]) {
    let rules = Envelopes::new(mode);
    let mut session = Dialogue::new(Some(MAX));
    let mut data: Option<DataReader> = None;
    let mut buf: Vec<u8> = Vec::new();
    for read in reads {
        buf.extend_from_slice(read);
        loop {
            if let Some(reader) = data.as_mut() {
                let (used, end) = reader.feed(&buf);
                assert!(used <= buf.len());
                buf.drain(..used);
                match end {
                    None => break,
                    Some(DataEnd::Message(m)) => {
                        assert!(m.len() as u64 <= MAX);
                        let tx = session.take_transaction().expect("DATA needs a transaction");
                        assert!(!tx.recipients.is_empty());
                    }
                    Some(
                        DataEnd::TooBig
                        | DataEnd::OverBudget
                        | DataEnd::BareLineEnd
                        | DataEnd::UnstuffedDot,
                    ) => {
                        session.take_transaction();
                    }
                }
                data = None;
                continue;
            }
            match next_line(&buf) {
                Line::Incomplete => break,
                Line::BareLf | Line::TooLong => return,
                Line::Complete(line, used) => {
                    assert!(used <= buf.len());
                    let step = session.on_line(line, &rules);
                    buf.drain(..used);
                    match step {
                        Step::Data => data = Some(DataReader::new(MAX).refuse_unstuffed_dot()),
                        Step::Close(_) => return,
                        Step::Reply(_) | Step::Raw(_) => {}
                    }
                }
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let mode = if input.outgoing {
        Mode::Outgoing
    } else {
        Mode::Incoming
    };
    drive(mode, &chunks(&input.stream, &input.cuts));

    let mut message = Vec::new();
    for line in &input.lines {
        message.extend(line.iter().filter(|b| **b != b'\r' && **b != b'\n'));
        message.extend_from_slice(b"\r\n");
    }
    let mut wire: Vec<u8> = stuffed_slices(&message).flatten().copied().collect();
    wire.extend_from_slice(b".\r\n");
    wire.extend_from_slice(b"QUIT\r\n");
    let mut reader = DataReader::new(u64::MAX);
    let mut consumed = 0;
    let mut result = None;
    for chunk in chunks(&wire, &input.cuts) {
        let mut chunk = chunk;
        while result.is_none() && !chunk.is_empty() {
            let (used, end) = reader.feed(chunk);
            consumed += used;
            chunk = &chunk[used..];
            result = end;
        }
    }
    assert_eq!(result, Some(DataEnd::Message(message)));
    assert_eq!(
        &wire[consumed..],
        b"QUIT\r\n",
        "bytes after the end marker are left"
    );
});
