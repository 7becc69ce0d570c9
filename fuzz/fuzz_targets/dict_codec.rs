//! Line framing: any byte stream cut into any chunks decodes to the same requests as the
//! whole stream at once, the read buffer never holds more than the line limit,
//! and an over-long line is an error, never a truncated request.
#![no_main]

use arbitrary::Arbitrary;
use bytes::BytesMut;
use chatmail_fuzz::chunks;
use chatmaild::dict::codec::DictCodec;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

#[derive(Debug, Arbitrary)]
struct Input {
    /// The line limit, kept small so limits are hit often.
    limit: u8,
    /// Chunk sizes (cycled); 0 is read as 1.
    cuts: Vec<u8>,
    stream: Vec<u8>,
}

/// Decodes `chunks` in order, then EOF: the items, or `Err` at the first framing error.
fn decode<'a>(limit: usize, chunks: impl Iterator<Item = &'a [u8]>) -> (Vec<String>, bool) {
    let mut codec = DictCodec::new(limit);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(item)) => items.push(format!("{item:?}")),
                Ok(None) => break,
                Err(_) => return (items, false),
            }
        }
        assert!(
            buf.len() <= limit,
            "buffer {} past limit {limit}",
            buf.len()
        );
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(item)) => items.push(format!("{item:?}")),
            Ok(None) => return (items, true),
            Err(_) => return (items, false),
        }
    }
}

fuzz_target!(|input: Input| {
    let limit = usize::from(input.limit) + 1;
    let whole = decode(limit, std::iter::once(input.stream.as_slice()));
    let cut = decode(limit, chunks(&input.stream, &input.cuts).into_iter());
    // Once a line is too long the connection is closed: items before it must agree,
    // and a stream without any over-long line must decode identically.
    assert_eq!(whole.1, cut.1, "framing error depends on chunking");
    assert_eq!(whole.0, cut.0);
    let longest = input
        .stream
        .split(|b| *b == b'\n')
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    if longest <= limit {
        assert!(whole.1, "no line exceeds {limit} but decoding failed");
    }
});
