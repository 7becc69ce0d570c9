//! The canonical grammar (RELIABILITY.md "What the filter enforces") class by class: every
//! way a reader could find another structure than the filter, and every byte Postfix would
//! change after it, is refused with 523 outgoing and incoming; what passes is read the same
//! way by `mailparse`, the parser Delta Chat reads mail with.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    reason = "test helpers"
)]

mod common;

use common::{Eol, eml};
use filtermail::{Envelope, FilterReply, PolicyVerdict, Reply, check_incoming, check_outgoing};
use mailparse::MailHeaderMap;

const FROM: &str = "alice@chat.example.org";
const TO: &str = "bob@chat.example.org";
const BOUNDARY: &str = "YFrteb74qSXmggbOxZL9dRnhymywAi";

fn env(from: &str) -> Envelope {
    Envelope {
        mail_from: from.into(),
        rcpt_to: vec![TO.into()],
    }
}

fn enforcing_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join(TO);
    std::fs::create_dir(&mbox).unwrap();
    std::fs::write(mbox.join("enforceE2EEincoming"), b"").unwrap();
    dir
}

fn encrypted() -> String {
    String::from_utf8(eml("encrypted.eml", FROM, TO, "x", Eol::Crlf)).unwrap()
}

/// `msg` is refused with 523 on both paths with a recipient that enforces encryption, and
/// differs from the message it was made from.
fn assert_refused(name: &str, msg: &[u8], sender: &str) {
    assert_ne!(
        msg,
        encrypted().as_bytes(),
        "{name}: the case changes the message"
    );
    let dir = enforcing_dir();
    assert_eq!(
        check_outgoing(&env(FROM), msg),
        PolicyVerdict::Reject(Reply::ENCRYPTION_NEEDED),
        "outgoing: {name}"
    );
    assert_eq!(
        check_incoming(&env(sender), msg, dir.path()),
        PolicyVerdict::Reject(Reply::ENCRYPTION_NEEDED),
        "incoming: {name}"
    );
}

/// What `mailparse` reads: the content types of the tree, depth first.
fn mailparse_tree(msg: &[u8]) -> Vec<String> {
    let parsed = mailparse::parse_mail(msg).unwrap();
    parsed.parts().map(|p| p.ctype.mimetype.clone()).collect()
}

#[test]
fn accepted_forms_read_the_same_by_mailparse() {
    let dir = enforcing_dir();
    let enc = encrypted();
    assert!(matches!(
        check_outgoing(&env(FROM), enc.as_bytes()),
        PolicyVerdict::Accept(_)
    ));
    assert!(matches!(
        check_incoming(&env(FROM), enc.as_bytes(), dir.path()),
        PolicyVerdict::Accept(_)
    ));
    assert_eq!(
        mailparse_tree(enc.as_bytes()),
        [
            "multipart/encrypted",
            "application/pgp-encrypted",
            "application/octet-stream"
        ]
    );
    let parsed = mailparse::parse_mail(enc.as_bytes()).unwrap();
    assert_eq!(parsed.subparts[0].get_body().unwrap().trim(), "Version: 1");
    assert!(
        parsed.subparts[1]
            .get_body()
            .unwrap()
            .starts_with("-----BEGIN PGP MESSAGE-----")
    );
    let sj = eml("securejoin-vc.eml", FROM, TO, "x", Eol::Crlf);
    assert!(matches!(
        check_outgoing(&env(FROM), &sj),
        PolicyVerdict::Accept(_)
    ));
    assert_eq!(mailparse_tree(&sj), ["multipart/mixed", "text/plain"]);
    let report = eml("mailer-daemon.eml", FROM, TO, "x", Eol::Crlf);
    assert!(matches!(
        check_incoming(&env(""), &report, dir.path()),
        PolicyVerdict::Accept(_)
    ));
    assert_eq!(
        mailparse_tree(&report),
        [
            "multipart/report",
            "text/plain",
            "message/delivery-status",
            "message/rfc822"
        ]
    );
    let parsed = mailparse::parse_mail(&report).unwrap();
    assert_eq!(
        parsed.headers.get_first_value("Auto-Submitted").as_deref(),
        Some("auto-replied ")
    );
}

/// Parameter lists that `mailparse` and mail-parser read differently, or might.
#[test]
fn parameter_tricks_are_refused() {
    let enc = encrypted();
    let quoted = format!("boundary=\"{BOUNDARY}\"");
    let half = &BOUNDARY[..10];
    let rest = &BOUNDARY[10..];
    let cases: Vec<(&str, String)> = vec![
        (
            "`;` inside the quoted boundary",
            format!("boundary=\"{BOUNDARY};x\""),
        ),
        (
            "`;` and a second boundary inside quotes",
            format!("boundary=\"x;boundary={BOUNDARY}\""),
        ),
        ("quoted-pair", format!("boundary=\"{half}\\{rest}\"")),
        (
            "encoded word",
            format!("boundary=\"=?utf-8?q?{BOUNDARY}?=\""),
        ),
        (
            "encoded word, unknown charset",
            format!("boundary=\"=?x-unknown?q?{BOUNDARY}?=\""),
        ),
        (
            "encoded word across a fold",
            format!("boundary=\"=?utf-8?q?{half}?=\r\n =?utf-8?q?{rest}?=\""),
        ),
        (
            "RFC 2231 continuation from *1",
            format!("boundary*1=\"{BOUNDARY}\""),
        ),
        (
            "RFC 2231 continuation",
            format!("boundary*0=\"{half}\"; boundary*1=\"{rest}\""),
        ),
        (
            "RFC 2231 charset form",
            format!("boundary*=utf-8''{BOUNDARY}"),
        ),
        (
            "empty value before the boundary",
            format!("protocol=\"\"; {quoted}"),
        ),
        ("empty unquoted value", format!("charset=; {quoted}")),
        (
            "fold inside the quoted value",
            format!("boundary=\"{half}\r\n {rest}\""),
        ),
        (
            "space inside the quoted value",
            format!("boundary=\"{half} {rest}\""),
        ),
        ("comment", format!("{quoted} (comment)")),
        ("unknown parameter", format!("x-foo=bar; {quoted}")),
        ("space around `=`", format!("boundary = \"{BOUNDARY}\"")),
        ("text after the quotes", format!("{quoted}x")),
        ("empty parameter", format!("; {quoted}")),
        (
            "second boundary in another case",
            format!("{quoted}; BOUNDARY=\"other\""),
        ),
        ("boundary with `?`", format!("boundary=\"{half}?{rest}\"")),
    ];
    for (name, params) in cases {
        let msg = enc.replacen(&format!("\r\n\t{quoted}"), &format!("\r\n\t{params}"), 1);
        assert_refused(name, msg.as_bytes(), FROM);
    }
    let type_cases: Vec<(&str, String)> = vec![
        ("type with a comment", enc.replacen("multipart/encrypted;", "multipart/encrypted (x);", 1)),
        ("encoded word as the type", enc.replacen("multipart/encrypted;", "=?utf-8?q?multipart/encrypted?=;", 1)),
        ("8-bit in the Content-Type", enc.replacen("protocol=\"application/pgp-encrypted\"", "protocol=\"application/pgp-encrypt\u{e9}d\"", 1)),
        ("transfer encoding base64 on the version part", enc.replacen("Content-Type: application/pgp-encrypted\r\n", "Content-Type: application/pgp-encrypted\r\nContent-Transfer-Encoding: base64\r\n", 1)),
        ("transfer encoding quoted-printable on the payload", enc.replacen("Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n", "Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\nContent-Transfer-Encoding: quoted-printable\r\n", 1)),
        ("protocol other than PGP", enc.replacen("protocol=\"application/pgp-encrypted\"", "protocol=\"text/plain\"", 1)),
        ("MIME-Version 2.0", enc.replacen("MIME-Version: 1.0", "MIME-Version: 2.0", 1)),
        ("no MIME-Version", enc.replacen("MIME-Version: 1.0\r\n", "", 1)),
    ];
    for (name, msg) in type_cases {
        assert_refused(name, msg.as_bytes(), FROM);
    }
}

/// Bytes Postfix changes after the filter: refused before they could be.
#[test]
fn bytes_postfix_would_change_are_refused() {
    let enc = encrypted();
    let at_subject =
        |extra: &str| enc.replacen("Subject: x\r\n", &format!("Subject: x\r\n{extra}"), 1);
    let long_line = "x".repeat(999);
    let big_field: String = std::iter::repeat_n(format!("\r\n {}", "y".repeat(900)), 20).collect();
    let many_fields: String = (0..300).map(|i| format!("X-H{i}: v\r\n")).collect();
    let big_block: String = (0..200)
        .map(|i| format!("X-B{i}: {}\r\n", "z".repeat(400)))
        .collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "NUL in a header",
            at_subject("X-Note: a\0b\r\n").into_bytes(),
        ),
        (
            "NUL in the version part",
            enc.replacen("Version: 1", "Version: 1\0", 1).into_bytes(),
        ),
        (
            "header line of 999 octets",
            at_subject(&format!("X-Long: {long_line}\r\n")).into_bytes(),
        ),
        (
            "header field over the cap",
            at_subject(&format!("X-Big: y{big_field}\r\n")).into_bytes(),
        ),
        (
            "too many header fields",
            at_subject(&many_fields).into_bytes(),
        ),
        (
            "header block over the cap",
            at_subject(&big_block).into_bytes(),
        ),
        (
            "body line of 999 octets",
            enc.replacen(
                "-----END PGP MESSAGE-----",
                &format!("{long_line}\r\n-----END PGP MESSAGE-----"),
                1,
            )
            .into_bytes(),
        ),
        (
            "bare LF",
            enc.replacen("Version: 1\r\n", "Version: 1\n", 1)
                .into_bytes(),
        ),
        (
            "bare CR",
            enc.replacen("Subject: x\r\n", "Subject: x\rX-Y: z\r\n", 1)
                .into_bytes(),
        ),
        (
            "LF line ends throughout",
            enc.replace("\r\n", "\n").into_bytes(),
        ),
        ("no final CRLF", enc.trim_end().as_bytes().to_vec()),
    ];
    for (name, msg) in cases {
        assert_refused(name, &msg, FROM);
    }
}

/// What stands outside the parts, and how parts are delimited.
#[test]
fn delimiting_and_outside_text_are_refused() {
    let enc = encrypted();
    let open = format!("--{BOUNDARY}\r\n");
    let close = format!("--{BOUNDARY}--");
    let first_part = format!("\r\n\r\n{open}");
    let cases: Vec<(&str, String)> = vec![
        ("cleartext in the epilogue", enc.replacen(&close, &format!("{close}\r\nBuy cheap pills\r\n"), 1)),
        ("preamble over the cap", enc.replacen(&first_part, &format!("\r\n\r\n{}{open}", "Buy cheap pills today\r\n".repeat(60)), 1)),
        ("8-bit preamble", enc.replacen(&first_part, &format!("\r\n\r\nCaf\u{e9}\r\n{open}"), 1)),
        ("a line that starts with the delimiter", enc.replacen(&first_part, &format!("\r\n\r\n--{BOUNDARY}x\r\n{open}"), 1)),
        ("transport padding after a delimiter", enc.replacen(&open, &format!("--{BOUNDARY} \r\n"), 1)),
        ("padding after the close delimiter", enc.replacen(&close, &format!("{close} "), 1)),
        ("no close delimiter", enc.replacen(&close, "", 1)),
        ("a third part after the close", enc.replacen(&close, &format!("{close}\r\n{open}Content-Type: text/plain\r\n\r\nspam\r\n{close}"), 1)),
        ("nested multipart as the version part", enc.replacen("Content-Type: application/pgp-encrypted\r\n", "Content-Type: multipart/mixed; boundary=\"in\"\r\n\r\n--in\r\nContent-Type: text/plain\r\n\r\nspam\r\n--in--\r\n", 1)),
        ("a line without a colon in a part header", enc.replacen("Content-Type: application/pgp-encrypted\r\n", "Content-Type: application/pgp-encrypted\r\nspam\r\n", 1)),
        ("white space line in a part header", enc.replacen("Content-Type: application/pgp-encrypted\r\n", "Content-Type: application/pgp-encrypted\r\n \r\n", 1)),
        ("repeated structure header in a part", enc.replacen("Content-Type: application/pgp-encrypted\r\n", "Content-Type: application/pgp-encrypted\r\ncontent-type: text/plain\r\n", 1)),
    ];
    for (name, msg) in cases {
        assert_refused(name, msg.as_bytes(), FROM);
    }
}

/// The exceptions for cleartext hold only in their exact shape.
#[test]
fn exceptions_are_narrow() {
    let dir = enforcing_dir();
    let report = String::from_utf8(eml("mailer-daemon.eml", FROM, TO, "x", Eol::Crlf)).unwrap();
    let refused = PolicyVerdict::Reject(Reply::ENCRYPTION_NEEDED);
    assert!(matches!(
        check_incoming(&env(""), report.as_bytes(), dir.path()),
        PolicyVerdict::Accept(_)
    ));
    // RFC 3464: a report has the null envelope sender.
    assert_eq!(
        check_incoming(
            &env("mailer-daemon@example.org"),
            report.as_bytes(),
            dir.path()
        ),
        refused
    );
    for (name, msg) in [
        ("Auto-Submitted: no", report.replacen("Auto-Submitted: auto-replied ", "Auto-Submitted: no", 1)),
        ("Auto-Submitted: No; x=1", report.replacen("Auto-Submitted: auto-replied ", "Auto-Submitted: No; x=1", 1)),
        ("empty Auto-Submitted", report.replacen("Auto-Submitted: auto-replied ", "Auto-Submitted:", 1)),
        ("base64 explanation", report.replacen("content-type: text/plain; charset=us-ascii\r\n", "content-type: text/plain; charset=us-ascii\r\ncontent-transfer-encoding: base64\r\n", 1)),
        ("encoded-word boundary", report.replacen("boundary=\"JAA13167.773673707/CS.UTK.EDU\"", "boundary=\"=?us-ascii?q?JAA13167.773673707/CS.UTK.EDU?=\"", 1)),
        ("returned message shown as text", report.replacen("content-type: message/rfc822", "content-type: text/plain", 1)),
        ("cleartext after the report", report.replacen("CS.UTK.EDU--\r\n", "CS.UTK.EDU--\r\nBuy cheap pills\r\n", 1)),
    ] {
        assert_ne!(msg, report, "{name}");
        assert_eq!(check_incoming(&env(""), msg.as_bytes(), dir.path()), refused, "{name}");
    }
    let sj = String::from_utf8(eml("securejoin-vc.eml", FROM, TO, "x", Eol::Crlf)).unwrap();
    assert!(matches!(
        check_outgoing(&env(FROM), sj.as_bytes()),
        PolicyVerdict::Accept(_)
    ));
    let sj_boundary = "Gl92xgZjOShJ5PGHntqYkoo2OK2Dvi";
    for (name, msg) in [
        (
            "encoded-word boundary",
            sj.replacen(
                &format!("boundary=\"{sj_boundary}\""),
                &format!("boundary=\"=?utf-8?q?{sj_boundary}?=\""),
                1,
            ),
        ),
        (
            "`;` in the boundary",
            sj.replacen(
                &format!("boundary=\"{sj_boundary}\""),
                &format!("boundary=\"{sj_boundary};x\""),
                1,
            ),
        ),
        (
            "quoted-printable request",
            sj.replacen(
                "charset=utf-8\r\n",
                "charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n",
                1,
            ),
        ),
        (
            "Secure-Join folded",
            sj.replacen(
                "Secure-Join: vc-request",
                "Secure-Join:\r\n vc-request x",
                1,
            ),
        ),
    ] {
        assert_ne!(msg, sj, "{name}");
        assert_eq!(
            check_outgoing(&env(FROM), msg.as_bytes()),
            refused,
            "outgoing {name}"
        );
        assert_eq!(
            check_incoming(&env(FROM), msg.as_bytes(), dir.path()),
            refused,
            "incoming {name}"
        );
    }
}

/// A message that is not canonical is cleartext, and a recipient who accepts cleartext
/// still gets it: the grammar decides what counts as encrypted, not what may be delivered.
#[test]
fn non_canonical_mail_reaches_recipients_who_accept_cleartext() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(TO)).unwrap();
    let msg = encrypted().replacen("Version: 1", "Version: 1\0", 1);
    assert!(matches!(
        check_incoming(&env(FROM), msg.as_bytes(), dir.path()),
        PolicyVerdict::Accept(_)
    ));
}

/// Every disagreement the structure-aware fuzz target (`filtermail_grammar`) found on the
/// rules before the canonical grammar, replayed with its envelope: each is refused now.
#[test]
fn grammar_fuzz_findings_are_refused() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/findings/filtermail_grammar");
    let mailboxes = tempfile::tempdir().unwrap();
    let bob = mailboxes.path().join("bob@example.org");
    std::fs::create_dir(&bob).unwrap();
    std::fs::write(bob.join("enforceE2EEincoming"), b"").unwrap();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".eml"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 19, "{names:?}");
    for name in names {
        let msg = std::fs::read(dir.join(&name)).unwrap();
        let number = &name[..2];
        // The envelope of each reproducer (fuzz/findings/filtermail_grammar/README.md).
        let verdict = match number {
            "04" => check_outgoing(
                &Envelope {
                    mail_from: "alice@example.org".into(),
                    rcpt_to: vec!["carol@remote.example".into()],
                },
                &msg,
            ),
            _ => {
                let mail_from = match number {
                    "11" | "12" | "15" | "16" => "",
                    "14" => "MAILER-DAEMON@remote.example",
                    _ => "carol@remote.example",
                };
                let env = Envelope {
                    mail_from: mail_from.into(),
                    rcpt_to: vec!["bob@example.org".into()],
                };
                check_incoming(&env, &msg, mailboxes.path())
            }
        };
        assert_eq!(
            verdict,
            PolicyVerdict::Reject(Reply::ENCRYPTION_NEEDED),
            "{name}"
        );
    }
}
