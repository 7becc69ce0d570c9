//! The DATA receiver fed any bytes in any chunks agrees with a reference reading written
//! line by line from RFC 5321 §4.5.2 (a line ends only at CRLF; a leading dot is dropped;
//! `.` CRLF at a line start ends the data): the same end, the same message, the same
//! verdict on bare CR/LF, unstuffed dots and the size limit. `stuff` round-trips.
#![no_main]

use arbitrary::Arbitrary;
use chatmail_smtp::{DataEnd, DataReceiver, stuff};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    max: u16,
    strict: bool,
    /// Read sizes (cycled); 0 is read as 1.
    cuts: Vec<u8>,
    stream: Vec<u8>,
}

/// The reference: `(bytes used, end)`, or `None` without an end marker.
fn reference(input: &[u8], max: usize, strict: bool) -> Option<(usize, DataEnd)> {
    let (mut pos, mut message, mut lone_dot) = (0, Vec::new(), false);
    loop {
        let rest = &input[pos..];
        if rest.starts_with(b".\r\n") {
            break;
        }
        let len = rest.windows(2).position(|w| w == b"\r\n")?;
        let line = &rest[..len];
        lone_dot |= line.len() > 1 && line[0] == b'.' && !matches!(line[1], b'.' | b'\r' | b'\n');
        message.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        message.extend_from_slice(b"\r\n");
        pos += len + 2;
    }
    let bare = message.iter().enumerate().any(|(i, &b)| match b {
        b'\r' => message.get(i + 1) != Some(&b'\n'),
        b'\n' => i == 0 || message[i - 1] != b'\r',
        _ => false,
    });
    let end = if message.len() > max {
        DataEnd::TooBig
    } else if bare {
        DataEnd::BareLineEnd
    } else if lone_dot && strict {
        DataEnd::UnstuffedDot
    } else {
        DataEnd::Message(message)
    };
    Some((pos + 3, end))
}

fuzz_target!(|input: Input| {
    let max = usize::from(input.max);
    let mut rx = DataReceiver::<()>::new(u64::from(input.max));
    if input.strict {
        rx = rx.refuse_unstuffed_dot();
    }
    let mut sizes = input.cuts.iter().map(|c| usize::from(*c).max(1)).cycle();
    let (mut pos, mut got) = (0, None);
    while pos < input.stream.len() && got.is_none() {
        let n = if input.cuts.is_empty() {
            input.stream.len()
        } else {
            sizes.next().unwrap_or(1)
        };
        let end = (pos + n).min(input.stream.len());
        let (used, out) = rx.feed(&input.stream[pos..end]);
        assert!(
            out.is_some() || used == end - pos,
            "an unfinished feed uses all bytes"
        );
        pos += used;
        got = out.map(|o| (pos, o));
    }
    assert_eq!(got, reference(&input.stream, max, input.strict));

    // Any message with CRLF lines comes back unchanged through stuffing and the receiver.
    let mut message: Vec<u8> = input
        .stream
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    message.truncate(max);
    let message: Vec<u8> = message
        .chunks(7)
        .flat_map(|c| c.iter().copied().chain(*b"\r\n"))
        .collect();
    let mut wire = stuff(&message);
    wire.extend_from_slice(b".\r\n");
    let (used, end) = DataReceiver::<()>::new(u64::MAX)
        .refuse_unstuffed_dot()
        .feed(&wire);
    assert_eq!((used, end), (wire.len(), Some(DataEnd::Message(message))));
});
