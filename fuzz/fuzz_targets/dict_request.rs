//! Any line: `parse_request` never panics, and every request it returns survives being
//! written back with `escape_into` and parsed again unchanged.
#![no_main]

use bytes::BytesMut;
use chatmaild::dict::proto::{Request, escape_into, parse_request};
use libfuzzer_sys::fuzz_target;

/// The wire form of a request as Dovecot would send it (fields tab-escaped).
fn encode(req: &Request) -> Option<BytesMut> {
    let mut out = BytesMut::new();
    let field = |out: &mut BytesMut, s: &str| {
        out.extend_from_slice(b"\t");
        escape_into(s, out);
    };
    match req {
        Request::Hello | Request::Other { .. } => return None,
        Request::Lookup { key, user } => {
            out.extend_from_slice(b"L");
            escape_into(key, &mut out);
            if let Some(u) = user {
                field(&mut out, u);
            }
        }
        Request::Iterate { path, user } => {
            out.extend_from_slice(b"I0\t0");
            field(&mut out, path);
            if let Some(u) = user {
                field(&mut out, u);
            }
        }
        Request::Begin { tid, user } => {
            out.extend_from_slice(b"B");
            escape_into(tid, &mut out);
            if let Some(u) = user {
                field(&mut out, u);
            }
        }
        Request::Set { tid, key, value } => {
            out.extend_from_slice(b"S");
            escape_into(tid, &mut out);
            field(&mut out, key);
            field(&mut out, value);
        }
        Request::Commit { tid } => {
            out.extend_from_slice(b"C");
            escape_into(tid, &mut out);
        }
        Request::Rollback { tid } => {
            out.extend_from_slice(b"R");
            escape_into(tid, &mut out);
        }
    }
    Some(out)
}

fuzz_target!(|line: &[u8]| {
    let Ok(req) = parse_request(line) else {
        return;
    };
    let Some(wire) = encode(&req) else {
        return;
    };
    // The parser strips surrounding ASCII whitespace (as the reference does), so a last
    // field that itself ends in a space cannot come back; escaping covers TAB/CR/LF only.
    if wire.trim_ascii_end().len() != wire.len() {
        return;
    }
    let again = parse_request(&wire);
    assert_eq!(again.as_ref(), Ok(&req), "wire {:?}", &wire[..]);
});
