//! The capped reply reader on any bytes: a reply read from a prefix is the reply of the
//! whole, what it used ends in LF, its lines stay within the caps, and the client's view
//! of it (joined, bounded) is one line.
#![no_main]

use chatmail_smtp::reply::{MAX_REPLY_LINE, MAX_REPLY_LINES, MAX_TEXT_CHARS, parse_reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|buf: &[u8]| {
    let whole = parse_reply(buf);
    if let Ok(Some((reply, used))) = &whole {
        assert!(*used <= buf.len() && buf[used - 1] == b'\n');
        assert!(!reply.lines.is_empty() && reply.lines.len() <= MAX_REPLY_LINES);
        assert!((200..600).contains(&reply.code));
        assert!(reply.lines.iter().all(|l| l.len() <= 4 * MAX_REPLY_LINE));
        let line = reply.to_reply();
        assert!(line.text().chars().count() <= MAX_TEXT_CHARS);
        let wire = line.to_wire();
        assert_eq!(wire.iter().filter(|&&b| b == b'\n').count(), 1);
        // Any prefix holding the whole reply reads the same.
        if let Ok(Some(again)) = parse_reply(&buf[..*used]) {
            assert_eq!(&again.0, reply);
            assert_eq!(again.1, *used);
        } else {
            panic!("prefix disagrees");
        }
    }
    // A shorter prefix never yields a different complete reply.
    let half = &buf[..buf.len() / 2];
    if let (Ok(Some(a)), Ok(Some(b))) = (parse_reply(half), &whole) {
        assert_eq!(&a, b);
    }
});
