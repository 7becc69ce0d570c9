//! Command-line framing on any bytes: a complete line ends in CRLF within `MAX_LINE`, holds
//! no LF, and framing a prefix never disagrees with framing the whole.
#![no_main]

use chatmail_smtp::{Line, MAX_LINE, next_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|buf: &[u8]| {
    let whole = next_line(buf);
    match &whole {
        Line::Complete(line, used) => {
            assert!(*used <= MAX_LINE && *used <= buf.len());
            assert_eq!(&buf[line.len()..*used], b"\r\n");
            assert!(!line.contains(&b'\n'));
        }
        Line::Incomplete => assert!(buf.len() < MAX_LINE && !buf.contains(&b'\n')),
        Line::TooLong => assert!(buf.len() >= MAX_LINE),
        Line::BareLf => {}
    }
    // A line already framed stays framed the same when more bytes arrive.
    for cut in [buf.len() / 2, buf.len().saturating_sub(1)] {
        if let Line::Complete(line, used) = next_line(&buf[..cut]) {
            assert_eq!(whole, Line::Complete(line, used));
        }
    }
});
