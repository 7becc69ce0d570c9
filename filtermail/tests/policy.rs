//! Table tests of the pure policy over the shared `.eml` corpus (outgoing and incoming, LF
//! and CRLF) and over hostile messages.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    reason = "test helpers"
)]

mod common;

use common::{Eol, all_fixtures, eml};
use filtermail::Accepted;
use filtermail::{Envelope, FilterReply, PolicyVerdict, Reply, check_incoming, check_outgoing};

const FROM: &str = "alice@chat.example.org";
const TO: &str = "bob@chat.example.org";

fn env(from: &str, to: &[&str]) -> Envelope {
    Envelope {
        mail_from: from.into(),
        rcpt_to: to.iter().map(|s| s.to_string()).collect(),
    }
}

fn accept(from: &str, null_sender: bool) -> PolicyVerdict {
    PolicyVerdict::Accept(Accepted {
        from_addr: from.into(),
        null_sender,
    })
}

fn reject_523() -> PolicyVerdict {
    PolicyVerdict::Reject(Reply::ENCRYPTION_NEEDED)
}

/// `(fixture, outgoing verdict, incoming verdict for a recipient enforcing E2EE)`, with
/// CRLF line ends and `MAIL FROM:<alice@…>` (so the delivery report, which must come with
/// the null sender, is refused here; `exceptions_carry_no_arbitrary_cleartext` has it).
fn expectations() -> Vec<(&'static str, PolicyVerdict, PolicyVerdict)> {
    let mailer_daemon = "MAILER-DAEMON@example.org";
    vec![
        ("asm.eml", reject_523(), reject_523()),
        ("encrypted.eml", accept(FROM, false), accept(FROM, false)),
        ("fake-encrypted.eml", reject_523(), reject_523()),
        ("literal.eml", reject_523(), reject_523()),
        (
            "mailer-daemon.eml",
            PolicyVerdict::Reject(Reply::from_mismatch(mailer_daemon, FROM)),
            reject_523(),
        ),
        ("mdn.eml", reject_523(), reject_523()),
        ("plain.eml", reject_523(), reject_523()),
        (
            "securejoin-vc.eml",
            accept(FROM, false),
            accept(FROM, false),
        ),
        ("securejoin-vc-fake.eml", reject_523(), reject_523()),
    ]
}

#[test]
fn corpus_outgoing_and_incoming() {
    let dir = tempfile::tempdir().unwrap();
    let enforcing = dir.path().join(TO);
    std::fs::create_dir(&enforcing).unwrap();
    std::fs::write(enforcing.join("enforceE2EEincoming"), b"").unwrap();
    let table = expectations();
    let mut names: Vec<String> = table.iter().map(|t| t.0.to_string()).collect();
    names.sort();
    assert_eq!(names, all_fixtures(), "every fixture has an expectation");
    for eol in [Eol::Lf, Eol::Crlf] {
        for (name, outgoing, incoming) in &table {
            let msg = eml(name, FROM, TO, "Hi", eol);
            // Only CRLF line ends are canonical (SMTP and /mxdeliv never deliver others):
            // with LF ends every message that passed is cleartext.
            let lf = |v: &PolicyVerdict| match (eol, v) {
                (Eol::Lf, PolicyVerdict::Accept(_)) => reject_523(),
                _ => v.clone(),
            };
            assert_eq!(
                check_outgoing(&env(FROM, &[TO]), &msg),
                lf(outgoing),
                "outgoing {name} {eol:?}"
            );
            assert_eq!(
                check_incoming(&env(FROM, &[TO]), &msg, dir.path()),
                lf(incoming),
                "incoming {name} {eol:?}"
            );
            // Without the marker every message the policy can parse is accepted incoming.
            let other = "carol@chat.example.org";
            let verdict = check_incoming(&env(FROM, &[other]), &msg, dir.path());
            assert!(
                matches!(verdict, PolicyVerdict::Accept(_)),
                "open {name} {eol:?}"
            );
        }
    }
}

#[test]
fn autocrypt_setup_message_only_self_sent() {
    let msg = eml("asm.eml", FROM, FROM, "x", Eol::Crlf);
    assert_eq!(
        check_outgoing(&env(FROM, &[FROM]), &msg),
        accept(FROM, false)
    );
    assert_eq!(check_outgoing(&env(FROM, &[FROM, TO]), &msg), reject_523());
    // Not an exception for incoming mail.
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join(FROM);
    std::fs::create_dir(&mbox).unwrap();
    std::fs::write(mbox.join("enforceE2EEincoming"), b"").unwrap();
    assert_eq!(
        check_incoming(&env(FROM, &[FROM]), &msg, dir.path()),
        reject_523()
    );
}

#[test]
fn from_header_rules() {
    let msg = eml("encrypted.eml", FROM, TO, "x", Eol::Crlf);
    // Case-insensitive match.
    assert!(matches!(
        check_outgoing(&env("ALICE@chat.example.org", &[TO]), &msg),
        PolicyVerdict::Accept(_)
    ));
    // Forged From.
    let forged = eml("encrypted.eml", "forged@evil.example", TO, "x", Eol::Crlf);
    assert_eq!(
        check_outgoing(&env(FROM, &[TO]), &forged),
        PolicyVerdict::Reject(Reply::from_mismatch("forged@evil.example", FROM))
    );
    // Incoming: a differing From is reinjected with the null sender, not refused.
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        check_incoming(&env("srs@forwarder.example", &[TO]), &msg, dir.path()),
        accept(FROM, true)
    );
    assert_eq!(
        check_incoming(&env("", &[TO]), &msg, dir.path()),
        accept(FROM, true)
    );
    // No From at all.
    let no_from = b"Subject: x\r\nTo: b@c\r\n\r\nbody\r\n";
    assert_eq!(
        check_outgoing(&env(FROM, &[TO]), no_from),
        PolicyVerdict::Reject(Reply::invalid_from_header(""))
    );
    assert_eq!(
        check_incoming(&env(FROM, &[TO]), no_from, dir.path()),
        PolicyVerdict::Reject(Reply::invalid_from_header(""))
    );
    let bad_from = b"From: nobody\r\n\r\nbody\r\n";
    assert_eq!(
        check_outgoing(&env(FROM, &[TO]), bad_from),
        PolicyVerdict::Reject(Reply::invalid_from_header("nobody"))
    );
    // Two From headers: parsers pick different ones, so neither counts.
    let two_froms = format!("From: {FROM}\r\nFrom: other@x.org\r\n\r\nhi\r\n");
    assert_eq!(
        check_outgoing(&env("other@x.org", &[TO]), two_froms.as_bytes()),
        reject_523()
    );
}

#[test]
fn enforce_e2ee_lookup_is_lower_cased_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join(TO);
    std::fs::create_dir(&mbox).unwrap();
    std::fs::write(mbox.join("enforceE2EEincoming"), b"").unwrap();
    let msg = eml("plain.eml", FROM, TO, "x", Eol::Crlf);
    assert_eq!(
        check_incoming(&env(FROM, &["Bob@Chat.Example.org"]), &msg, dir.path()),
        reject_523()
    );
    // One enforcing recipient among several refuses the message.
    assert_eq!(
        check_incoming(&env(FROM, &["x@chat.example.org", TO]), &msg, dir.path()),
        reject_523()
    );
    // Addresses that cannot name a mailbox are refused, never looked up as paths.
    for bad in ["no-at-sign", "../../etc@x", "a/b@x", "x@y\u{7}"] {
        assert_eq!(
            check_incoming(&env(FROM, &[bad]), &msg, dir.path()),
            reject_523(),
            "{bad}"
        );
    }
}

#[test]
fn unparsable_message() {
    assert_eq!(
        check_outgoing(&env(FROM, &[TO]), b""),
        PolicyVerdict::Reject(Reply::unparsable("no message headers"))
    );
}

/// Hostile inputs: only the verdict may vary, nothing may panic.
#[test]
fn hostile_messages_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let head = format!("From: {FROM}\r\nTo: {TO}\r\n");
    let enc = |body: &str| {
        format!(
            "{head}Content-Type: multipart/encrypted; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--B\r\nContent-Type: application/octet-stream\r\n\r\n{body}\r\n--B--\r\n"
        )
    };
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("truncated packet".into(), enc("-----BEGIN PGP MESSAGE-----\r\n\r\n0g==\r\n-----END PGP MESSAGE-----").into_bytes()),
        ("huge length".into(), enc("-----BEGIN PGP MESSAGE-----\r\n\r\n0v//////\r\n-----END PGP MESSAGE-----").into_bytes()),
        ("partial huge".into(), enc("-----BEGIN PGP MESSAGE-----\r\n\r\n0v4A\r\n-----END PGP MESSAGE-----").into_bytes()),
        ("no armor".into(), enc("hello").into_bytes()),
        ("missing boundary".into(), format!("{head}Content-Type: multipart/encrypted\r\n\r\n--B\r\nVersion: 1\r\n").into_bytes()),
        ("unterminated multipart".into(), format!("{head}Content-Type: multipart/encrypted; boundary=B\r\n\r\n--B\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--B\r\n").into_bytes()),
        ("headers only".into(), head.clone().into_bytes()),
        ("binary junk".into(), (0..=255u8).cycle().take(10_000).collect()),
        ("invalid utf-8 headers".into(), b"From: \xff\xfe@\xff\r\nSubject: \xc3\x28\r\n\r\n\xff\r\n".to_vec()),
    ];
    // Deeply nested multiparts.
    let mut nested = head.clone();
    for i in 0..2000 {
        nested.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    nested.push_str("\r\nleaf\r\n");
    cases.push(("nested multiparts".into(), nested.into_bytes()));
    // Nested encrypted inside encrypted.
    let inner = enc("x");
    cases.push(("encrypted in encrypted".into(), enc(&inner).into_bytes()));
    // Huge headers: one very long line and very many headers.
    let mut huge = head.clone();
    huge.push_str(&format!("X-Long: {}\r\n", "a".repeat(2_000_000)));
    for i in 0..50_000 {
        huge.push_str(&format!("X-H{i}: v\r\n"));
    }
    huge.push_str("\r\nbody\r\n");
    cases.push(("huge headers".into(), huge.into_bytes()));
    // A three-part multipart/encrypted with a valid payload is not accepted (exactly two).
    for (name, msg) in &cases {
        let out = check_outgoing(&env(FROM, &[TO]), msg);
        let inc = check_incoming(&env(FROM, &[TO]), msg, dir.path());
        if name != "binary junk" && name != "invalid utf-8 headers" {
            // None of these is encrypted: with an enforcing recipient they must be refused.
            assert!(!matches!(out, PolicyVerdict::Accept(_)), "{name}: {out:?}");
        }
        let _ = inc;
    }
}

#[test]
fn version_part_alone_or_three_parts_rejected() {
    let good = eml("encrypted.eml", FROM, TO, "x", Eol::Crlf);
    let text = String::from_utf8(good).unwrap();
    // Drop the payload part: only the version part remains.
    let start = text
        .find("--YFrteb74qSXmggbOxZL9dRnhymywAi\r\nContent-Description: OpenPGP")
        .unwrap();
    let end = text.rfind("--YFrteb74qSXmggbOxZL9dRnhymywAi--").unwrap();
    let lone = format!("{}{}", &text[..start], &text[end..]);
    assert_eq!(
        check_outgoing(&env(FROM, &[TO]), lone.as_bytes()),
        reject_523()
    );
    // Duplicate the payload part: three parts.
    let payload = &text[start..end];
    let three = format!("{}{}{}", &text[..end], payload, &text[end..]);
    assert_eq!(
        check_outgoing(&env(FROM, &[TO]), three.as_bytes()),
        reject_523()
    );
}

/// A small deterministic generator of protocol-shaped junk (no external fuzzer needed to
/// keep these paths exercised on every test run).
struct Junk(u64);

impl Junk {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, alphabet: &[&[u8]], pieces: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..pieces {
            let i = (self.next() % alphabet.len() as u64) as usize;
            out.extend_from_slice(alphabet[i]);
        }
        out
    }
}

#[test]
fn random_inputs_never_panic() {
    let mime_alphabet: &[&[u8]] = &[
        b"\r\n",
        b"\n",
        b"--B",
        b"--B--",
        b"Content-Type: multipart/encrypted; boundary=B\r\n",
        b"Content-Type: application/pgp-encrypted\r\n",
        b"Content-Type: application/octet-stream\r\n",
        b"Content-Type: multipart/mixed; boundary=B\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"From: a@b\r\n",
        b"Secure-Join: vc-request\r\n",
        b"Version: 1",
        b"-----BEGIN PGP MESSAGE-----",
        b"-----END PGP MESSAGE-----",
        b"wcBMA",
        b"0sA",
        b"=AbCd",
        b"==",
        b"\xff",
        b"=?utf-8?q?x?=",
        b" ",
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut junk = Junk(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3000 {
        let pieces = (junk.next() % 60) as usize;
        let msg = junk.bytes(mime_alphabet, pieces);
        let _ = check_outgoing(&env("a@b", &[TO]), &msg);
        let _ = check_incoming(&env("a@b", &[TO]), &msg, dir.path());
        let _ = filtermail::internals::openpgp::check_armored_payload(&msg, false);
    }
    for _ in 0..20_000 {
        let len = (junk.next() % 40) as usize;
        let packets: Vec<u8> = (0..len).map(|_| junk.next() as u8).collect();
        let _ = filtermail::internals::openpgp::is_encrypted_packet_sequence(&packets);
    }
    let smtp_alphabet: &[&[u8]] = &[b"\r\n", b".", b"\r", b"\n", b"..", b"x", b"\r\n.\r\n"];
    for _ in 0..20_000 {
        let pieces = (junk.next() % 30) as usize;
        let data = junk.bytes(smtp_alphabet, pieces);
        let mut reader = filtermail::internals::smtp::DataReader::new(16);
        let (used, _) = reader.feed(&data);
        assert!(used <= data.len());
    }
}

/// An encrypted message of the corpus with `extra` inserted right after the From line.
fn encrypted_with(extra: &str) -> Vec<u8> {
    let msg = eml("encrypted.eml", FROM, TO, "x", Eol::Crlf);
    let text = String::from_utf8(msg).unwrap();
    let from_line = format!("From: {FROM}\r\n");
    let at = text.find(&from_line).map(|i| i + from_line.len()).unwrap();
    let mut out = text[..at].to_string();
    out.push_str(extra);
    out.push_str(&text[at..]);
    out.into_bytes()
}

/// The top-level boundary of a message.
fn boundary_of(msg: &str) -> String {
    let at = msg.find("boundary=").unwrap() + "boundary=".len();
    msg[at..]
        .trim_start_matches('"')
        .split(['"', ';', '\r', '\n'])
        .next()
        .unwrap()
        .to_string()
}

fn enforcing_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join(TO);
    std::fs::create_dir(&mbox).unwrap();
    std::fs::write(mbox.join("enforceE2EEincoming"), b"").unwrap();
    dir
}

#[test]
fn corpus_encrypted_passes_as_is() {
    let dir = enforcing_dir();
    let msg = encrypted_with("");
    assert_eq!(check_outgoing(&env(FROM, &[TO]), &msg), accept(FROM, false));
    assert_eq!(
        check_incoming(&env(FROM, &[TO]), &msg, dir.path()),
        accept(FROM, false)
    );
}

/// Every duplicated structure header or parameter, at the top or in a part, is refused
/// outgoing and incoming: mail-parser reads the last, Python and Delta Chat the first.
#[test]
fn ambiguous_structure_is_refused() {
    let dir = enforcing_dir();
    let base = String::from_utf8(encrypted_with("")).unwrap();
    let cases: Vec<(&str, String)> = vec![
        (
            "cleartext Content-Type before the encrypted one",
            String::from_utf8(encrypted_with("Content-Type: text/plain\r\n")).unwrap(),
        ),
        (
            "second MIME-Version",
            String::from_utf8(encrypted_with("MIME-Version: 1.0\r\nMIME-Version: 1.0\r\n"))
                .unwrap(),
        ),
        (
            "Content-Transfer-Encoding twice",
            String::from_utf8(encrypted_with(
                "Content-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: base64\r\n",
            ))
            .unwrap(),
        ),
        (
            "second From",
            String::from_utf8(encrypted_with("From: mallory@evil.example\r\n")).unwrap(),
        ),
        (
            "lower-case second From",
            String::from_utf8(encrypted_with("from: mallory@evil.example\r\n")).unwrap(),
        ),
        (
            "From with two addresses",
            base.replacen(
                &format!("From: {FROM}"),
                &format!("From: {FROM}, mallory@evil.example"),
                1,
            ),
        ),
        (
            "From as a group",
            base.replacen(&format!("From: {FROM}"), &format!("From: g: {FROM};"), 1),
        ),
        (
            "duplicated boundary parameter",
            base.replacen("boundary=", "boundary=\"other\"; boundary=", 1),
        ),
        (
            "duplicated protocol parameter",
            base.replacen(
                "multipart/encrypted;",
                "multipart/encrypted; protocol=\"text/plain\";",
                1,
            ),
        ),
        (
            "second Content-Type in the payload part",
            base.replacen(
                "Content-Type: application/octet-stream",
                "Content-Type: text/plain\r\nContent-Type: application/octet-stream",
                1,
            ),
        ),
    ];
    // Found by the differential fuzz target: an unterminated last part is a part for
    // mailparse and nothing for mail-parser.
    let report = String::from_utf8(eml("mailer-daemon.eml", FROM, TO, "x", Eol::Crlf)).unwrap();
    let cut = report.rfind("--JAA13167.773673707/CS.UTK.EDU--").unwrap();
    let unterminated = format!(
        "{}--JAA13167.773673707/CS.UTK.EDU\r\ncontent-type:pl meses",
        &report[..cut]
    );
    assert_eq!(
        check_incoming(&env("", &[TO]), unterminated.as_bytes(), dir.path()),
        reject_523(),
        "unterminated report"
    );
    let cases: Vec<(&str, String)> = cases
        .into_iter()
        .chain([(
            "no closing delimiter",
            base.replacen(&format!("--{}--", boundary_of(&base)), "", 1),
        )])
        .collect();
    for (name, msg) in &cases {
        assert_ne!(msg, &base, "{name}: the case changes the message");
        assert_eq!(
            check_outgoing(&env(FROM, &[TO]), msg.as_bytes()),
            reject_523(),
            "outgoing: {name}"
        );
        assert_eq!(
            check_incoming(&env(FROM, &[TO]), msg.as_bytes(), dir.path()),
            reject_523(),
            "incoming: {name}"
        );
    }
}

/// The E2EE marker is looked up for the mailbox Postfix and Dovecot deliver to.
#[test]
fn recipient_spellings_resolve_to_the_mailbox() {
    let dir = enforcing_dir();
    let plain = eml("plain.eml", FROM, TO, "x", Eol::Crlf);
    for spelling in [
        "bob@chat.example.org",
        "bob+anything@chat.example.org",
        "bob+@chat.example.org",
        "BOB+x@chat.example.org",
        "bob@CHAT.example.org.",
        // Not plain: never delivered by guesswork, so they count as enforcing.
        "\"bob\"@chat.example.org",
        "@relay.example:bob@chat.example.org",
        "bob%chat.example.org@chat.example.org",
        "chat.example.org!bob@chat.example.org",
    ] {
        assert_eq!(
            check_incoming(&env(FROM, &[spelling]), &plain, dir.path()),
            reject_523(),
            "{spelling}"
        );
    }
    // Encrypted mail to a detail address is fine: it lands where it would anyway.
    let enc = encrypted_with("");
    assert_eq!(
        check_incoming(&env(FROM, &["Bob+x@chat.example.org"]), &enc, dir.path()),
        accept(FROM, false)
    );
    // A mailbox without the marker takes cleartext, under any plain spelling.
    std::fs::create_dir(dir.path().join("carol@chat.example.org")).unwrap();
    assert_eq!(
        check_incoming(
            &env(FROM, &["Carol+x@chat.example.org"]),
            &plain,
            dir.path()
        ),
        accept(FROM, false)
    );
}

/// Outgoing: From and MAIL FROM must name the same mailbox, compared canonically.
#[test]
fn outgoing_sender_compared_as_mailbox() {
    let enc = encrypted_with("");
    assert_eq!(
        check_outgoing(&env("Alice@Chat.Example.org", &[TO]), &enc),
        accept(FROM, false)
    );
    let quoted = String::from_utf8(enc.clone()).unwrap().replacen(
        &format!("From: {FROM}"),
        "From: <\"alice\"@chat.example.org>",
        1,
    );
    // Parsers differ on quoted local parts: refused as ambiguous.
    assert_eq!(
        check_outgoing(&env(FROM, &[TO]), quoted.as_bytes()),
        reject_523()
    );
    // A detail address in From is the same mailbox.
    let detail = String::from_utf8(enc.clone()).unwrap().replacen(
        &format!("From: {FROM}"),
        "From: <alice+x@chat.example.org>",
        1,
    );
    assert_eq!(
        check_outgoing(&env(FROM, &[TO]), detail.as_bytes()),
        accept("alice+x@chat.example.org", false)
    );
    let other = String::from_utf8(enc).unwrap().replacen(
        &format!("From: {FROM}"),
        "From: <alicia@chat.example.org>",
        1,
    );
    assert!(matches!(
        check_outgoing(&env(FROM, &[TO]), other.as_bytes()),
        PolicyVerdict::Reject(r) if r.code() == 500
    ));
}

/// `From: user@[IPv6:...]` is one address, like the IPv4 form.
#[test]
fn ipv6_domain_literal_from() {
    let dir = enforcing_dir();
    for from in [
        "someone@[IPv6:2001:db8::1]",
        "someone@[IPv6:::1]",
        "someone@[127.0.0.2]",
    ] {
        let msg = String::from_utf8(encrypted_with("")).unwrap().replacen(
            &format!("From: {FROM}"),
            &format!("From: {from}"),
            1,
        );
        assert_eq!(
            check_incoming(&env(from, &[TO]), msg.as_bytes(), dir.path()),
            accept(from, false),
            "{from}"
        );
    }
}

/// The exceptions let through only their own shapes.
#[test]
fn exceptions_carry_no_arbitrary_cleartext() {
    let dir = enforcing_dir();
    let md = "MAILER-DAEMON@example.org";
    let report = String::from_utf8(eml("mailer-daemon.eml", FROM, TO, "x", Eol::Crlf)).unwrap();
    assert_eq!(
        check_incoming(&env("", &[TO]), report.as_bytes(), dir.path()),
        accept(md, true)
    );
    // Not a delivery-status report, or padded past the cap.
    let other_type = report.replacen(
        "report-type=delivery-status",
        "report-type=disposition-notification",
        1,
    );
    let padded = report.replacen(
        "content-type: message/delivery-status",
        &format!(
            "X-Pad: {}\r\ncontent-type: message/delivery-status",
            "x".repeat(200_000)
        ),
        1,
    );
    let no_status = report.replacen(
        "content-type: message/delivery-status",
        "content-type: text/plain",
        1,
    );
    for (name, msg) in [
        ("other report type", other_type),
        ("too big", padded),
        ("no status part", no_status),
    ] {
        assert_eq!(
            check_incoming(&env("", &[TO]), msg.as_bytes(), dir.path()),
            reject_523(),
            "{name}"
        );
    }
    // Securejoin: one text part saying exactly the request, nothing else.
    let sj = String::from_utf8(eml("securejoin-vc.eml", FROM, TO, "x", Eol::Crlf)).unwrap();
    assert_eq!(
        check_outgoing(&env(FROM, &[TO]), sj.as_bytes()),
        accept(FROM, false)
    );
    let boundary = "--Gl92xgZjOShJ5PGHntqYkoo2OK2Dvi--";
    let two_parts = sj.replacen(
        boundary,
        "--Gl92xgZjOShJ5PGHntqYkoo2OK2Dvi\r\nContent-Type: text/plain\r\n\r\nsecret\r\n--Gl92xgZjOShJ5PGHntqYkoo2OK2Dvi--",
        1,
    );
    let alternative = sj.replacen("multipart/mixed", "multipart/alternative", 1);
    let big = sj.replacen(
        "Chat-Version: 1.0",
        &format!("X-Pad: {}", "y".repeat(40_000)),
        1,
    );
    for (name, msg) in [
        ("two parts", two_parts),
        ("not mixed", alternative),
        ("too big", big),
    ] {
        assert_eq!(
            check_outgoing(&env(FROM, &[TO]), msg.as_bytes()),
            reject_523(),
            "{name}"
        );
    }
    // Autocrypt Setup Message: only to oneself, only with the setup attachment.
    let asm = String::from_utf8(eml("asm.eml", FROM, FROM, "x", Eol::Crlf)).unwrap();
    assert_eq!(
        check_outgoing(&env(FROM, &[FROM]), asm.as_bytes()),
        accept(FROM, false)
    );
    assert_eq!(
        check_outgoing(&env(FROM, &["Alice+x@chat.example.org"]), asm.as_bytes()),
        accept(FROM, false)
    );
    assert_eq!(
        check_outgoing(&env(FROM, &[TO]), asm.as_bytes()),
        reject_523()
    );
    let no_key = asm.replacen("application/autocrypt-setup", "text/html", 1);
    assert_eq!(
        check_outgoing(&env(FROM, &[FROM]), no_key.as_bytes()),
        reject_523()
    );
}

/// Disagreements the differential fuzz target (`filtermail_differential`, mail-parser
/// against mailparse) found, each turned into a rule: all are refused with 523.
#[test]
fn differential_findings_are_refused() {
    let dir = enforcing_dir();
    let enc = String::from_utf8(encrypted_with("")).unwrap();
    let report = String::from_utf8(eml("mailer-daemon.eml", FROM, TO, "x", Eol::Crlf)).unwrap();
    let sj = String::from_utf8(eml("securejoin-vc.eml", FROM, TO, "x", Eol::Crlf)).unwrap();
    let sj_boundary = "Gl92xgZjOShJ5PGHntqYkoo2OK2Dvi";
    let mut non_utf8_from = enc.clone().into_bytes();
    let at = enc.find("@chat").unwrap() + 3;
    non_utf8_from.insert(at, 0x8e);
    let cases: Vec<(&str, bool, Vec<u8>)> = vec![
        // mail-parser reads an invalid byte as U+FFFD, mailparse as Latin-1.
        ("non-UTF-8 From", true, non_utf8_from),
        // mail-parser ends the address at a comment inside the angle brackets.
        (
            "comment inside the address",
            true,
            enc.replacen(&format!("From: {FROM}"), &format!("From: <{FROM}(x)>"), 1)
                .into_bytes(),
        ),
        // Text after a quoted boundary: mail-parser drops it, mailparse keeps it.
        (
            "junk after a quoted parameter",
            true,
            sj.replacen(&format!("\"{sj_boundary}\""), &format!("\"{sj_boundary}\"xx"), 1)
                .into_bytes(),
        ),
        // A line that only starts with the delimiter is one for mailparse.
        (
            "line starting with the delimiter",
            true,
            sj.replacen(
                "Secure-Join: vc-request\r\n\r\n\r\n--",
                &format!("Secure-Join: vc-request\r\n--{sj_boundary}xyz\r\n\r\n--"),
                1,
            )
            .into_bytes(),
        ),
        // A part mail-parser cannot parse (message/rfc822 without headers) disappears.
        (
            "unparsable returned message",
            false,
            report
                .replacen(
                    "--JAA13167.773673707/CS.UTK.EDU--",
                    "--JAA13167.773673707/CS.UTK.EDU\r\ncontent-type: message/rfc822\r\n\r\n'\n[x]\r\n--JAA13167.773673707/CS.UTK.EDU--",
                    1,
                )
                .into_bytes(),
        ),
        // A control character in a field name: still Content-Type for mail-parser only.
        (
            "control character in a field name",
            false,
            report
                .replacen("content-type: message/delivery-status", "content\x0c-type: message/delivery-status", 1)
                .into_bytes(),
        ),
        // A header line without a colon: mail-parser skips it and reads on, mailparse
        // ends the header block there (the long run's six findings were all of this kind).
        (
            "line without a colon in the header",
            true,
            format!("Subj=x\r\n{sj}").into_bytes(),
        ),
        (
            "line without a colon in a part header",
            false,
            report
                .replacen(
                    "content-type: message/delivery-status",
                    "content-type: message/delivery-status\r\ncontent-disposition822",
                    1,
                )
                .into_bytes(),
        ),
        (
            "space before the colon",
            true,
            enc.replacen("Content-Type: multipart/encrypted", "Content-Type : multipart/encrypted", 1)
                .into_bytes(),
        ),
        (
            "two tokens as transfer encoding",
            true,
            sj.replacen(
                "Content-Type: text/plain; charset=utf-8",
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64 7bit",
                1,
            )
            .into_bytes(),
        ),
    ];
    for (name, outgoing, msg) in &cases {
        let verdict = if *outgoing {
            check_outgoing(&env(FROM, &[TO]), msg)
        } else {
            check_incoming(&env("", &[TO]), msg, dir.path())
        };
        assert_eq!(verdict, reject_523(), "{name}");
        // Refused for its form or its sender, not for some other reason.
        let sender_ambiguous = filtermail::internals::mime::parse_headers(msg)
            .is_some_and(|h| filtermail::internals::mime::from_ambiguity(&h).is_some());
        assert!(
            filtermail::internals::canonical::read(msg).is_err() || sender_ambiguous,
            "{name}: refused as not canonical or by its sender"
        );
    }
    // The originals pass, so each case fails for its own reason.
    assert_eq!(
        check_outgoing(&env(FROM, &[TO]), sj.as_bytes()),
        accept(FROM, false)
    );
    assert_eq!(
        check_outgoing(&env(FROM, &[TO]), enc.as_bytes()),
        accept(FROM, false)
    );
    assert!(matches!(
        check_incoming(&env("", &[TO]), report.as_bytes(), dir.path()),
        PolicyVerdict::Accept(_)
    ));
}
