//! filtermail's OpenPGP check: the streaming packet walk gives the same answer however the
//! data is cut, never panics on any bytes or armor, and accepts every well-formed
//! `(PKESK|SKESK)* SEIPD` sequence, raw and ASCII-armored.
#![no_main]

use arbitrary::Arbitrary;
use base64::Engine;
use chatmail_fuzz::chunks;
use filtermail::internals::openpgp::{PacketWalker, check_armored_payload, is_encrypted_packet_sequence};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    raw: &'a [u8],
    cuts: Vec<u8>,
    outgoing: bool,
    /// Session-key packets: (is SKESK, body).
    session_keys: Vec<(bool, Vec<u8>)>,
    seipd: Vec<u8>,
    /// Pad the SEIPD body to force two- and five-octet lengths.
    pad: u16,
}

/// A new-format packet (RFC 9580 §4.2.1).
fn packet(tag: u8, body: &[u8], out: &mut Vec<u8>) {
    out.push(0xC0 | tag);
    let len = body.len();
    if len < 192 {
        out.push(len as u8);
    } else if len < 8384 {
        let l = len - 192;
        out.push(((l >> 8) + 192) as u8);
        out.push((l & 0xff) as u8);
    } else {
        out.push(0xFF);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(body);
}

fuzz_target!(|input: Input<'_>| {
    // Chunking invariance of the streaming walk, on arbitrary bytes.
    let whole = is_encrypted_packet_sequence(input.raw);
    let mut walker = PacketWalker::default();
    for piece in chunks(input.raw, &input.cuts) {
        walker.feed(piece);
    }
    assert_eq!(walker.finish(), whole, "answer depends on chunking");
    let _ = check_armored_payload(input.raw, input.outgoing);

    // A well-formed sequence is accepted, raw and armored.
    let mut seq = Vec::new();
    for (skesk, body) in &input.session_keys {
        packet(if *skesk { 3 } else { 1 }, body, &mut seq);
    }
    let mut seipd = input.seipd.clone();
    seipd.resize(seipd.len() + usize::from(input.pad), 0x5a);
    packet(18, &seipd, &mut seq);
    assert!(is_encrypted_packet_sequence(&seq));
    let b64 = base64::engine::general_purpose::STANDARD.encode(&seq);
    let mut armor = b"-----BEGIN PGP MESSAGE-----\r\n\r\n".to_vec();
    for line in b64.as_bytes().chunks(76) {
        armor.extend_from_slice(line);
        armor.extend_from_slice(b"\r\n");
    }
    armor.extend_from_slice(b"-----END PGP MESSAGE-----\r\n");
    assert!(
        check_armored_payload(&armor, input.outgoing),
        "armored sequence refused"
    );
    // One byte less of the last packet: a truncated sequence is refused.
    assert!(!is_encrypted_packet_sequence(&seq[..seq.len() - 1]));
});
