//! Tab-escaping: `unescape(escape(s)) == s` for every string, the escaped form never holds
//! a byte that would end a field or a line, and `unescape` never panics on any bytes.
#![no_main]

use bytes::BytesMut;
use chatmaild::dict::proto::{escape_into, unescape};
use libfuzzer_sys::fuzz_target;

fn round_trip(s: &str) {
    let mut out = BytesMut::new();
    escape_into(s, &mut out);
    assert!(
        !out.iter().any(|b| matches!(b, 0 | b'\t' | b'\r' | b'\n')),
        "escaped form holds a separator: {:?}",
        &out[..]
    );
    assert_eq!(unescape(&out).as_deref(), Some(s.as_bytes()));
}

fuzz_target!(|data: &[u8]| {
    round_trip(&String::from_utf8_lossy(data));
    if let Some(plain) = unescape(data) {
        assert!(plain.len() <= data.len(), "unescaping never grows");
        if let Ok(s) = std::str::from_utf8(&plain) {
            round_trip(s);
        }
    }
});
