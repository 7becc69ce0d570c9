//! chatmail-expire's Dovecot file-name parser against the reference's regular expression
//! `.+/(\d+)\..+,S=(\d+)` (matched on `cur/<name>`, `.` not matching LF): same answer for
//! every name, and never a panic.
#![no_main]

use chatmail_expire::internals::parse_name;
use libfuzzer_sys::fuzz_target;
use regex::bytes::Regex;
use std::sync::LazyLock;

static REFERENCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u)^.+/([0-9]+)\..+,S=([0-9]+)").unwrap());

fuzz_target!(|name: &[u8]| {
    let ours = parse_name(name);
    if name.contains(&b'/') {
        // A directory entry never contains '/'.
        return;
    }
    let path = [b"cur/".as_slice(), name].concat();
    let reference = REFERENCE.captures(&path).map(|c| {
        let num = |i| std::str::from_utf8(&c[i]).unwrap().to_owned();
        (num(1), num(2))
    });
    match (ours, reference) {
        (None, None) => {}
        (Some(d), Some((time, size))) => {
            // Beyond u64 the parser saturates where Python has big integers.
            if time.len() < 20 {
                assert_eq!(d.time, time.parse::<u64>().unwrap(), "time of {name:?}");
            }
            if size.len() < 20 {
                assert_eq!(d.size, size.parse::<u64>().unwrap(), "size of {name:?}");
            }
        }
        (ours, reference) => panic!("{name:?}: ours {ours:?}, reference {reference:?}"),
    }
});
