//! Payloads: the armored OpenPGP message of the test corpus or a small valid
//! `(PKESK | SKESK)* SEIPD` packet sequence built from the stream, and the corpus's
//! Autocrypt setup file.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::Gen;

const ENCRYPTED_EML: &str = include_str!("../../../filtermail/tests/data/encrypted.eml");
const SETUP_EML: &str = include_str!("../../../filtermail/tests/data/asm.eml");

/// The text from the line starting with `begin` to the end of the line starting with
/// `end`, with CRLF line ends.
fn excerpt(text: &str, begin: &str, end: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut inside = false;
    for l in text.lines() {
        let l = l.strip_suffix('\r').unwrap_or(l);
        inside |= l.starts_with(begin);
        if inside {
            out.extend_from_slice(l.as_bytes());
            out.extend_from_slice(b"\r\n");
            if l.starts_with(end) {
                break;
            }
        }
    }
    out
}

/// The armored message of `filtermail/tests/data/encrypted.eml`.
fn corpus_armored() -> &'static [u8] {
    static A: OnceLock<Vec<u8>> = OnceLock::new();
    A.get_or_init(|| {
        excerpt(
            ENCRYPTED_EML,
            "-----BEGIN PGP MESSAGE-----",
            "-----END PGP MESSAGE-----",
        )
    })
}

/// The setup file (HTML with the armored key) of `filtermail/tests/data/asm.eml`.
pub fn setup_file() -> Vec<u8> {
    excerpt(SETUP_EML, "<html>", "</pre></body></html>")
}

/// An armored payload the filter accepts: the corpus's, or a small packet sequence; in
/// incoming mode possibly with a `Version:` armor header.
pub fn armored(g: &mut Gen<'_, '_>, outgoing: bool) -> Vec<u8> {
    if g.pick(3) == 0 {
        return corpus_armored().to_vec();
    }
    let mut packets = Vec::new();
    for _ in 0..g.pick(3) {
        // New-format PKESK or SKESK with a one-octet length.
        let tag = if g.flag() { 0xC3 } else { 0xC1 };
        packet(g, &mut packets, tag);
    }
    packet(g, &mut packets, 0xD2);
    let mut out = b"-----BEGIN PGP MESSAGE-----\r\n".to_vec();
    if !outgoing && g.flag() {
        g.tag("payload:armor-version-header");
        out.extend_from_slice(b"Version: x\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let text = STANDARD.encode(&packets);
    for chunk in text.as_bytes().chunks(64) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    let crc = crc24(&packets).to_be_bytes();
    out.push(b'=');
    out.extend_from_slice(STANDARD.encode(crc.get(1..).unwrap_or_default()).as_bytes());
    out.extend_from_slice(b"\r\n-----END PGP MESSAGE-----\r\n");
    out
}

fn packet(g: &mut Gen<'_, '_>, out: &mut Vec<u8>, tag: u8) {
    let len = 1 + g.pick(40);
    out.push(tag);
    out.push(u8::try_from(len).unwrap_or(1));
    for _ in 0..len {
        out.push(u8::try_from(g.pick(256)).unwrap_or(0));
    }
}

/// The armor checksum (RFC 9580 §6.1).
fn crc24(data: &[u8]) -> u32 {
    let mut crc: u32 = 0x00B7_04CE;
    for &b in data {
        crc ^= u32::from(b) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x0100_0000 != 0 {
                crc ^= 0x0186_4CFB;
            }
        }
    }
    crc & 0x00FF_FFFF
}
