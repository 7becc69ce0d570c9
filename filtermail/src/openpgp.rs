//! The OpenPGP part of the encryption check (SPEC §6.4): ASCII armor, then a walk over the
//! packet headers.
//!
//! Only the *shape* of the payload is checked: zero or more session-key packets (PKESK,
//! SKESK) followed by exactly one encrypted-data packet (SEIPD). Nothing is decrypted. Every
//! read is bounds-checked and every length sum is checked arithmetic, so no input can make
//! the walk panic or read past the buffer.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const ARMOR_BEGIN: &[u8] = b"-----BEGIN PGP MESSAGE-----";
const ARMOR_END: &[u8] = b"-----END PGP MESSAGE-----";
const VERSION_HEADER: &[u8] = b"Version: ";

/// Packet tag of a Public-Key Encrypted Session Key packet.
const TAG_PKESK: u8 = 1;
/// Packet tag of a Symmetric-Key Encrypted Session Key packet.
const TAG_SKESK: u8 = 3;
/// Packet tag of a Symmetrically Encrypted and Integrity Protected Data packet.
const TAG_SEIPD: u8 = 18;

/// Whether `body` is an ASCII-armored OpenPGP message that consists of session-key packets
/// and one final SEIPD packet.
///
/// `outgoing` forbids the `Version:` armor header, as the references do for mail our own
/// users send (Delta Chat never writes one); incoming mail may carry it.
///
/// Lines may end in CRLF or LF: transfer decoding and local tests both produce LF-only
/// bodies, and the armor rules do not depend on the line ending. The body is never copied:
/// the base64 text is decoded chunk by chunk, so a message in flight costs its own size plus
/// the decoded packets.
pub fn check_armored_payload(body: &[u8], outgoing: bool) -> bool {
    // 1. The first line is the BEGIN marker.
    let Some((first, rest)) = split_line(body) else {
        return false;
    };
    if first != ARMOR_BEGIN {
        return false;
    }
    // 2. Without trailing line ends, the rest ends with the END marker (the references
    //    accept it at the end of the last data line, so do we).
    let Some(rest) = trim_eol_end(rest).strip_suffix(ARMOR_END) else {
        return false;
    };
    // 3. An armor header `Version: ...`: refused outgoing, skipped incoming.
    let mut rest = rest;
    if rest.starts_with(VERSION_HEADER) {
        if outgoing {
            return false;
        }
        rest = split_line(rest).map_or(&[][..], |(_, r)| r);
    }
    // 4. Leading line ends go; the checksum is the last line if it is `=` plus four
    //    base64 characters. Unlike the references, a CRC-less message whose base64 ends in
    //    `=` padding is accepted (the CRC is optional in RFC 9580).
    let rest = trim_eol_start(rest);
    let mut data = trim_eol_end(rest);
    let last_start = data.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    if let Some(last) = data.get(last_start..)
        && is_crc_line(last.strip_suffix(b"\r").unwrap_or(last))
    {
        data = data.get(..last_start).unwrap_or_default();
    }
    // 5. Strict standard base64 with padding, over the lines without their line ends,
    // 6. streamed into the packet walk (the decoded packets are never held in memory).
    let mut walker = PacketWalker::default();
    decode_base64_lines(data, |bytes| walker.feed(bytes)).is_some() && walker.finish()
}

/// The first line of `s` (without CR LF) and the rest after it; `None` without a LF.
fn split_line(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let lf = s.iter().position(|&b| b == b'\n')?;
    let line = s.get(..lf)?;
    Some((line.strip_suffix(b"\r").unwrap_or(line), s.get(lf + 1..)?))
}

fn trim_eol_end(mut s: &[u8]) -> &[u8] {
    while let Some((last, rest)) = s.split_last()
        && (*last == b'\r' || *last == b'\n')
    {
        s = rest;
    }
    s
}

fn trim_eol_start(mut s: &[u8]) -> &[u8] {
    while let Some((first, rest)) = s.split_first()
        && (*first == b'\r' || *first == b'\n')
    {
        s = rest;
    }
    s
}

/// Decodes base64 text spread over lines into `sink`, chunk by chunk: CR and LF are
/// skipped, anything else must be strict standard base64, with `=` padding only at the very
/// end. `None` when the text is not base64.
fn decode_base64_lines(text: &[u8], mut sink: impl FnMut(&[u8])) -> Option<()> {
    const CHUNK: usize = 4096;
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut decoded = vec![0u8; CHUNK / 4 * 3];
    let mut finished = false;
    let mut flush = |chunk: &mut Vec<u8>| -> Option<()> {
        if chunk.is_empty() {
            return Some(());
        }
        if finished {
            // Data after padding.
            return None;
        }
        finished = chunk.contains(&b'=');
        let n = STANDARD.decode_slice(chunk.as_slice(), &mut decoded).ok()?;
        sink(decoded.get(..n)?);
        chunk.clear();
        Some(())
    };
    for &b in text {
        if b == b'\r' || b == b'\n' {
            continue;
        }
        chunk.push(b);
        if chunk.len() == CHUNK {
            flush(&mut chunk)?;
        }
    }
    flush(&mut chunk)
}

/// The armor checksum line: `=` and four base64 characters.
fn is_crc_line(line: &[u8]) -> bool {
    line.len() == 5
        && line.first() == Some(&b'=')
        && line
            .iter()
            .skip(1)
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

/// Whether `data` is `(PKESK | SKESK)* SEIPD` (RFC 9580 §4.2 packet framing).
///
/// New-format headers and, like the deployed reference (since 0.3.0), old-format headers
/// (GnuPG writes old-format PKESK packets) are understood. Any truncated header or length
/// running past the end makes the answer `false`.
#[cfg(any(test, feature = "internals"))]
pub fn is_encrypted_packet_sequence(data: &[u8]) -> bool {
    let mut walker = PacketWalker::default();
    walker.feed(data);
    walker.finish()
}

/// Where the [`PacketWalker`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum WalkState {
    /// At a packet boundary: the next byte is a packet header.
    #[default]
    Header,
    /// Reading a new-format length (after the header or after a partial chunk).
    NewLength,
    /// Reading `n` old-format length octets.
    OldLength(usize),
    /// Skipping `n` more body bytes; then another length (`partial`) or the packet ends.
    Body { left: u64, partial: bool },
    /// An old-format packet of indeterminate length: it runs to the end of the data.
    ToEnd,
    /// The data is not a valid packet sequence.
    Invalid,
}

/// The packet walk of §6.4 as a streaming state machine, so the decoded payload (most of a
/// large message) never needs to be in memory at once: only header bytes are kept.
#[derive(Debug, Default)]
pub struct PacketWalker {
    state: WalkState,
    /// Length octets collected so far (at most 5).
    len_bytes: Vec<u8>,
    /// Tag of the packet being read.
    tag: u8,
    /// Tag of the last complete packet.
    last: Option<u8>,
}

impl PacketWalker {
    /// Consumes the next bytes of the packet data.
    pub fn feed(&mut self, mut data: &[u8]) {
        while let Some((&b, rest)) = data.split_first() {
            match self.state {
                WalkState::Invalid | WalkState::ToEnd => return,
                WalkState::Body { left, partial } => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                    data = data.get(n..).unwrap_or_default();
                    let left = left - n as u64;
                    self.state = match (left, partial) {
                        (0, true) => WalkState::NewLength,
                        (0, false) => self.packet_done(),
                        _ => WalkState::Body { left, partial },
                    };
                    continue;
                }
                WalkState::Header => self.state = self.header(b),
                WalkState::NewLength => self.state = self.new_length(b),
                WalkState::OldLength(n) => {
                    self.len_bytes.push(b);
                    if self.len_bytes.len() == n {
                        let len = self
                            .len_bytes
                            .iter()
                            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
                        self.len_bytes.clear();
                        self.state = self.body(len, false);
                    }
                }
            }
            data = rest;
        }
    }

    /// Whether the data fed was exactly `(PKESK | SKESK)* SEIPD`.
    pub fn finish(self) -> bool {
        match self.state {
            WalkState::Header => self.last == Some(TAG_SEIPD),
            WalkState::ToEnd => self.tag == TAG_SEIPD,
            _ => false,
        }
    }

    /// A complete packet: only session-key packets may be followed by another one, which
    /// is checked when the next header arrives.
    fn packet_done(&mut self) -> WalkState {
        self.last = Some(self.tag);
        WalkState::Header
    }

    fn header(&mut self, b: u8) -> WalkState {
        if let Some(last) = self.last
            && last != TAG_PKESK
            && last != TAG_SKESK
        {
            return WalkState::Invalid;
        }
        if b & 0x80 == 0 {
            return WalkState::Invalid;
        }
        if b & 0x40 != 0 {
            self.tag = b & 0x3F;
            return WalkState::NewLength;
        }
        // Old format: tag in bits 5..2, length type in bits 1..0.
        self.tag = (b >> 2) & 0x0F;
        match b & 0x03 {
            0 => WalkState::OldLength(1),
            1 => WalkState::OldLength(2),
            2 => WalkState::OldLength(4),
            // Indeterminate length: the packet is the last one; its tag decides.
            _ => WalkState::ToEnd,
        }
    }

    fn new_length(&mut self, b: u8) -> WalkState {
        if self.len_bytes.is_empty() {
            match b {
                0..192 => return self.body(u64::from(b), false),
                // 224..=254: a partial body length (255 is the five-octet form).
                224..=254 => return self.body(1u64 << (b & 0x1F), true),
                _ => {}
            }
        }
        self.len_bytes.push(b);
        let first = self.len_bytes.first().copied().unwrap_or(0);
        let need = if first == 255 { 5 } else { 2 };
        if self.len_bytes.len() < need {
            return WalkState::NewLength;
        }
        let len = if first == 255 {
            self.len_bytes
                .iter()
                .skip(1)
                .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
        } else {
            let second = self.len_bytes.get(1).copied().unwrap_or(0);
            ((u64::from(first) - 192) << 8) + u64::from(second) + 192
        };
        self.len_bytes.clear();
        self.body(len, false)
    }

    fn body(&mut self, len: u64, partial: bool) -> WalkState {
        match (len, partial) {
            (0, false) => self.packet_done(),
            _ => WalkState::Body { left: len, partial },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn armor(packets: &[u8], crc: bool) -> Vec<u8> {
        let b64 = STANDARD.encode(packets);
        let mut s = String::from("-----BEGIN PGP MESSAGE-----\r\n\r\n");
        for chunk in b64.as_bytes().chunks(64) {
            s.push_str(std::str::from_utf8(chunk).unwrap());
            s.push_str("\r\n");
        }
        if crc {
            s.push_str("=AbCd\r\n");
        }
        s.push_str("-----END PGP MESSAGE-----\r\n");
        s.into_bytes()
    }

    /// A new-format packet with a one-octet length.
    fn pkt(tag: u8, body_len: u8) -> Vec<u8> {
        let mut v = vec![0xC0 | tag, body_len];
        v.extend(std::iter::repeat_n(0x55, usize::from(body_len)));
        v
    }

    #[test]
    fn packet_sequences() {
        let seipd = pkt(18, 10);
        let pkesk = pkt(1, 5);
        let skesk = pkt(3, 5);
        let literal = pkt(11, 5);
        let cases: &[(&str, Vec<u8>, bool)] = &[
            ("empty", vec![], false),
            ("seipd only", seipd.clone(), true),
            ("pkesk seipd", [pkesk.clone(), seipd.clone()].concat(), true),
            (
                "pkesk skesk seipd",
                [pkesk.clone(), skesk.clone(), seipd.clone()].concat(),
                true,
            ),
            ("pkesk only", pkesk.clone(), false),
            ("literal", literal.clone(), false),
            (
                "literal seipd",
                [literal.clone(), seipd.clone()].concat(),
                false,
            ),
            (
                "seipd seipd",
                [seipd.clone(), seipd.clone()].concat(),
                false,
            ),
            (
                "seipd trailing byte",
                [seipd.clone(), vec![0]].concat(),
                false,
            ),
            ("truncated header", vec![0xC0 | 18], false),
            ("length past end", vec![0xC0 | 18, 50, 1, 2], false),
            ("two-octet truncated", vec![0xC0 | 18, 200], false),
            ("five-octet truncated", vec![0xC0 | 18, 255, 0, 0], false),
            (
                "five-octet huge",
                vec![0xC0 | 18, 255, 0xFF, 0xFF, 0xFF, 0xFF],
                false,
            ),
            ("not a packet", vec![0x00, 1, 2], false),
            (
                "partial then final",
                [vec![0xC0 | 18, 224 + 1, 0, 0, 3, 1, 2, 3]].concat(),
                true,
            ),
            ("partial huge", vec![0xC0 | 18, 254, 0, 0], false),
            ("partial truncated", vec![0xC0 | 18, 225], false),
            (
                "two-octet",
                [vec![0xC0 | 18, 192, 0], vec![0; 192]].concat(),
                true,
            ),
            (
                "five-octet",
                [vec![0xC0 | 18, 255, 0, 0, 0, 3], vec![0; 3]].concat(),
                true,
            ),
            (
                "old-format pkesk then seipd",
                [vec![0x84, 2, 9, 9], seipd.clone()].concat(),
                true,
            ),
            ("old-format two-octet truncated", vec![0x85, 1], false),
            ("old-format literal", vec![0xAC, 1, 0], false),
        ];
        for (name, data, want) in cases {
            assert_eq!(is_encrypted_packet_sequence(data), *want, "{name}");
        }
    }

    #[test]
    fn armor_rules() {
        let msg = [pkt(1, 20), pkt(18, 40)].concat();
        assert!(check_armored_payload(&armor(&msg, true), true));
        assert!(check_armored_payload(&armor(&msg, false), true));
        // LF line endings are equivalent.
        let lf: Vec<u8> = armor(&msg, true)
            .into_iter()
            .filter(|&b| b != b'\r')
            .collect();
        assert!(check_armored_payload(&lf, false));
        // A Version header: only incoming.
        let with_version = String::from_utf8(armor(&msg, true)).unwrap().replacen(
            "-----\r\n\r\n",
            "-----\r\nVersion: Test\r\n\r\n",
            1,
        );
        assert!(check_armored_payload(with_version.as_bytes(), false));
        assert!(!check_armored_payload(with_version.as_bytes(), true));
        // A plaintext literal packet is not encrypted.
        assert!(!check_armored_payload(&armor(&pkt(11, 30), true), false));
        // Garbage, missing markers, bad base64.
        for bad in [
            &b""[..],
            b"-----BEGIN PGP MESSAGE-----\r\n",
            b"-----BEGIN PGP MESSAGE-----\r\n\r\nHELLOWORLD\n-----END PGP MESSAGE-----\r\n\r\n",
            b"-----BEGIN PGP MESSAGE-----\r\n\r\n=njUN\n-----END PGP MESSAGE-----\r\n\r\n",
            b"-----BEGIN PGP MESSAGE-----\r\n\r\nwcBM!!\r\n-----END PGP MESSAGE-----\r\n",
            b"hello\r\n-----END PGP MESSAGE-----\r\n",
        ] {
            assert!(!check_armored_payload(bad, false));
        }
    }

    #[test]
    fn crc_less_padding_accepted() {
        // 41 bytes encode with `=` padding; without a CRC line the references cut at that
        // `=` and failed.
        let msg = [pkt(1, 10), pkt(18, 27)].concat();
        assert!(STANDARD.encode(&msg).ends_with('='));
        assert!(check_armored_payload(&armor(&msg, false), true));
        assert!(check_armored_payload(&armor(&msg, true), true));
    }

    #[test]
    fn reference_payloads() {
        // The partial-length payload written by GopenPGP, from the Python tests' vectors,
        // is covered by the .eml table tests; here a shape check on odd whitespace.
        let msg = [pkt(1, 10), pkt(18, 30)].concat();
        let mut body = armor(&msg, true);
        body.extend_from_slice(b"\r\n\r\n\r\n");
        assert!(check_armored_payload(&body, true));
        // A space inside the base64 is not base64.
        let spaced =
            String::from_utf8(armor(&msg, true))
                .unwrap()
                .replacen("\r\n\r\n", "\r\n\r\n ", 1);
        assert!(!check_armored_payload(spaced.as_bytes(), true));
    }
}

#[cfg(test)]
mod base64_tests {
    use super::*;

    fn decode(text: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        decode_base64_lines(text, |b| out.extend_from_slice(b))?;
        Some(out)
    }

    #[test]
    fn chunked_decoding_is_strict() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let b64 = STANDARD.encode(&data);
        let lines: Vec<u8> = b64
            .as_bytes()
            .chunks(76)
            .flat_map(|l| [l, b"\r\n"].concat())
            .collect();
        assert_eq!(decode(&lines), Some(data));
        // Padding in the middle (at a chunk border or not) is an error.
        let mut mid = "QQ==".repeat(1024);
        assert!(decode(mid.as_bytes()).is_none());
        mid = format!("{}QQ==QUJD", "AAAA".repeat(1023));
        assert!(decode(mid.as_bytes()).is_none());
        assert!(decode(b"QUJ").is_none());
        assert!(decode(b"QU J").is_none());
        assert_eq!(decode(b""), Some(vec![]));
    }

    #[test]
    fn streaming_walk_equals_whole_walk() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let heads: &[&[u8]] = &[
            &[0xC1, 3],
            &[0xC3, 2],
            &[0xD2, 4],
            &[0xD2, 0xE1],
            &[0xD2, 0xC0, 1],
            &[0xD2, 0xFF, 0, 0, 0, 2],
            &[0x84, 1],
            &[0x85, 0, 2],
            &[0xCB, 1],
            &[0x12],
            &[0x87],
        ];
        for _ in 0..20_000 {
            let mut data = Vec::new();
            for _ in 0..(next() % 5) {
                data.extend_from_slice(
                    heads[usize::try_from(next() % heads.len() as u64).unwrap()],
                );
                for _ in 0..(next() % 6) {
                    data.push(next().to_le_bytes()[0]);
                }
            }
            let whole = is_encrypted_packet_sequence(&data);
            let mut w = PacketWalker::default();
            for b in &data {
                w.feed(std::slice::from_ref(b));
            }
            assert_eq!(w.finish(), whole, "{data:02x?}");
        }
    }
}
