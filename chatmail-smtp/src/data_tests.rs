use super::*;

fn run(input: &[u8], max: u64) -> (usize, Option<DataEnd>) {
    DataReceiver::<()>::new(max).feed(input)
}

/// The receiver as a transport uses it: the message re-stuffed with its end line.
fn wire(input: &[u8], max: u64) -> Option<DataEnd> {
    let (_, end) = DataReceiver::<()>::new(max)
        .refuse_unstuffed_dot()
        .feed(input);
    end.map(|e| match e {
        DataEnd::Message(m) => DataEnd::Message([stuff(&m), b".\r\n".to_vec()].concat()),
        other => other,
    })
}

#[test]
fn data_unstuffing_table() {
    type Case<'a> = (&'a str, &'a [u8], Option<&'a [u8]>);
    let cases: &[Case] = &[
        ("empty", b".\r\n", Some(b"")),
        ("one line", b"a\r\n.\r\n", Some(b"a\r\n")),
        ("stuffed dot", b"..x\r\n.\r\n", Some(b".x\r\n")),
        ("stuffed lone dot", b"..\r\n.\r\n", Some(b".\r\n")),
        ("dot mid line", b"a.b\r\n.\r\n", Some(b"a.b\r\n")),
        ("8bit", b"\xff\xfe\r\n.\r\n", Some(b"\xff\xfe\r\n")),
        ("unstuffed dot", b".x\r\n.\r\n", Some(b"x\r\n")),
        ("no end", b"abc\r\n", None),
        ("no end dot", b"abc\r\n.", None),
    ];
    for (name, input, want) in cases {
        let (_, end) = run(input, 1000);
        assert_eq!(end, want.map(|w| DataEnd::Message(w.to_vec())), "{name}");
    }
}

#[test]
fn bare_cr_or_lf_is_invalid_after_the_end_marker() {
    let cases: &[(&str, &[u8])] = &[
        ("bare lf dot", b"a\n.\r\nb\r\n.\r\n"),
        ("dot cr x", b".\rx\r\n.\r\n"),
        ("bare lf", b"Subject: x\nFrom: y\r\n\r\nz\r\n.\r\n"),
        ("bare cr", b"Subject: x\rFrom: y\r\n\r\nz\r\n.\r\n"),
        ("cr cr lf", b"a\r\r\n.\r\n"),
        ("leading lf", b"\na\r\n.\r\n"),
        ("dot lf", b".\nx\r\n.\r\n"),
        ("stuffed dot bare lf", b"..x\ny\r\n.\r\n"),
    ];
    for (name, input) in cases {
        let (used, end) = run(input, 1000);
        assert_eq!(end, Some(DataEnd::BareLineEnd), "{name}");
        assert_eq!(used, input.len(), "{name}: read to the end marker");
    }
    // Split at every byte: the same verdict, and the command after it stays.
    let input = b"a\rb\r\nc\nd\r\n.\r\nQUIT\r\n";
    for cut in 0..input.len() {
        let mut r = DataReceiver::<()>::new(1000);
        let (a, end) = r.feed(&input[..cut]);
        let (end, used) = match end {
            Some(e) => (e, a),
            None => {
                let (b, e) = r.feed(&input[cut..]);
                (e.expect("end"), cut + b)
            }
        };
        assert_eq!(end, DataEnd::BareLineEnd, "cut {cut}");
        assert_eq!(&input[used..], b"QUIT\r\n", "cut {cut}");
    }
}

#[test]
fn data_split_at_every_byte() {
    let input = b"Subject: x\r\n\r\n..a\r\n..\r\nb.\r\n\r\n.\r\nQUIT\r\n";
    let want = b"Subject: x\r\n\r\n.a\r\n.\r\nb.\r\n\r\n".to_vec();
    for cut in 0..input.len() {
        let mut r = DataReceiver::<()>::new(1000);
        let (a, end) = r.feed(&input[..cut]);
        let result = match end {
            Some(e) => (e, a),
            None => {
                assert_eq!(a, cut, "an unfinished feed uses all bytes");
                let (b, e) = r.feed(&input[cut..]);
                (e.expect("end"), cut + b)
            }
        };
        assert_eq!(result.0, DataEnd::Message(want.clone()), "cut {cut}");
        assert_eq!(&input[result.1..], b"QUIT\r\n", "cut {cut}");
    }
}

#[test]
fn data_size_limit() {
    assert_eq!(
        run(b"12345\r\n.\r\n", 7).1,
        Some(DataEnd::Message(b"12345\r\n".to_vec()))
    );
    assert_eq!(run(b"123456\r\n.\r\n", 7).1, Some(DataEnd::TooBig));
    // The rest after an overflow is discarded, not parsed as commands.
    let input = b"123456789\r\nRCPT TO:<x@y>\r\n.\r\nQUIT\r\n";
    let (used, end) = run(input, 4);
    assert_eq!(end, Some(DataEnd::TooBig));
    assert_eq!(&input[used..], b"QUIT\r\n");
    // The limit counts unstuffed bytes: "..\r\n" is three.
    assert!(matches!(
        run(b"..\r\n.\r\n", 3).1,
        Some(DataEnd::Message(_))
    ));
    assert_eq!(run(b"..\r\n.\r\n", 2).1, Some(DataEnd::TooBig));
}

#[test]
fn stuffing_round_trip() {
    for msg in [
        &b""[..],
        b"a\r\n",
        b".\r\n",
        b"..\r\n.x\r\n",
        b"x\r\n.\r\n.y\r\nz\r\n",
    ] {
        let mut wire = stuff(msg);
        wire.extend_from_slice(b".\r\n");
        let (used, end) = run(&wire, 1000);
        assert_eq!(used, wire.len());
        let back = match end {
            Some(DataEnd::Message(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(back, msg, "{:?}", String::from_utf8_lossy(msg));
    }
    assert_eq!(stuff(b".a\r\nb\r\n.\r\n"), b"..a\r\nb\r\n..\r\n");
}

// The transport's cases: the message passed on in wire form.

#[test]
fn data_keeps_wire_form() {
    let mut r = DataReceiver::<()>::new(100).refuse_unstuffed_dot();
    for chunk in [&b"Subject: x\r\n\r\n..dot\r\nbo"[..], b"dy\r\n.\r"] {
        assert_eq!(r.feed(chunk), (chunk.len(), None));
    }
    let (used, end) = r.feed(b"\nQUIT\r\n");
    assert_eq!(used, 1);
    let Some(DataEnd::Message(m)) = end else {
        panic!("{end:?}")
    };
    assert_eq!(
        [stuff(&m), b".\r\n".to_vec()].concat(),
        b"Subject: x\r\n\r\n..dot\r\nbody\r\n.\r\n"
    );
    assert_eq!(wire(b".\r\n", 0), Some(DataEnd::Message(b".\r\n".to_vec())));
}

#[test]
fn data_limits() {
    assert_eq!(wire(b"12345\r\n.\r\n", 5), Some(DataEnd::TooBig));
    assert!(matches!(
        wire(b"12345\r\n.\r\n", 7),
        Some(DataEnd::Message(_))
    ));
    let mut r = DataReceiver::<()>::new(100);
    let big = vec![b'x'; 10_000];
    assert_eq!(r.feed(&big), (big.len(), None));
    assert_eq!(r.feed(&big), (big.len(), None));
    assert_eq!(r.feed(b"\r\n.\r\nNOOP\r\n"), (5, Some(DataEnd::TooBig)));
}

#[test]
fn data_rejects_bad_framing() {
    for (bad, want) in [
        (&b"a\nb\r\n.\r\n"[..], DataEnd::BareLineEnd),
        (b"a\rb\r\n.\r\n", DataEnd::BareLineEnd),
        (b".x\r\n.\r\n", DataEnd::UnstuffedDot),
        // A bare LF never starts a line, so "\n.\r\n" is no end marker: what follows a
        // smuggled one is still data.
        (b"x\r\n.\n.\r\n\r\n.\r\n", DataEnd::BareLineEnd),
    ] {
        assert_eq!(wire(bad, 100), Some(want), "{bad:?}");
    }
    // A lone "." not followed by CRLF never ends the data.
    assert_eq!(wire(b"x\r\n.\rx\r\n", 100), None);
}

/// Tiny deterministic generator: the tests stay reproducible without a fuzzing dependency.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[expect(
    clippy::cast_possible_truncation,
    reason = "the result is below n, a usize"
)]
fn below(state: &mut u64, n: usize) -> usize {
    (xorshift(state) % n as u64) as usize
}

#[test]
fn chunking_never_changes_the_outcome() {
    const ALPHABET: &[u8] = b".\r\nab\xff ";
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..2000 {
        let len = below(&mut seed, 40);
        let mut input: Vec<u8> = (0..len)
            .map(|_| ALPHABET[below(&mut seed, ALPHABET.len())])
            .collect();
        input.extend_from_slice(b"\r\n.\r\n");
        let limit = below(&mut seed, 50) as u64;
        let mut whole = DataReceiver::<()>::new(limit).refuse_unstuffed_dot();
        let (used_whole, want) = whole.feed(&input);
        assert!(want.is_some(), "{input:?}");
        let mut parts = DataReceiver::<()>::new(limit).refuse_unstuffed_dot();
        let mut pos = 0;
        let got = loop {
            let step = 1 + below(&mut seed, 7);
            let end = (pos + step).min(input.len());
            let (used, out) = parts.feed(&input[pos..end]);
            pos += used;
            if out.is_some() {
                break out;
            }
            assert!(pos < input.len());
        };
        assert_eq!(got, want, "{input:?}");
        assert_eq!(pos, used_whole);
        if let Some(DataEnd::Message(m)) = &want {
            assert_eq!([stuff(m), b".\r\n".to_vec()].concat(), &input[..used_whole]);
        }
    }
}

#[test]
fn stuffing_in_place_is_stuffing() {
    let mut state = 0x9e37_79b9_7f4a_7c15;
    let mut cases: Vec<Vec<u8>> = [
        &b""[..],
        b".",
        b"..",
        b"a\r\n",
        b".\r\n.\r\n.\r\n",
        b"x\n.y\r.z\r\n.",
        b".a\r\nb\r\n.\r\n",
    ]
    .iter()
    .map(|c| c.to_vec())
    .collect();
    let alphabet = b".\r\nx";
    for _ in 0..500 {
        let n = below(&mut state, 40);
        cases.push((0..n).map(|_| alphabet[below(&mut state, 4)]).collect());
    }
    for case in cases {
        let mut in_place = case.clone();
        stuff_in_place(&mut in_place);
        assert_eq!(
            in_place,
            stuff(&case),
            "{:?}",
            String::from_utf8_lossy(&case)
        );
        assert_eq!(stuffed_len(&case), in_place.len());
    }
}
