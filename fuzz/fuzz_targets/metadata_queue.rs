//! chatmail-metadata's notification queue files: `decode` never panics on any content,
//! accepts only addresses that are one path component, and `encode` of what it accepted
//! decodes to the same item.
#![no_main]

use chatmail_metadata::internals::{decode, encode};
use chatmaild::user::validate_address;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|content: &[u8]| {
    let Some((addr, start_ts, token)) = decode(content) else {
        return;
    };
    assert!(validate_address(&addr).is_ok(), "{addr:?}");
    let again = encode(&addr, start_ts, &token);
    assert_eq!(decode(again.as_bytes()), Some((addr, start_ts, token)));
});
