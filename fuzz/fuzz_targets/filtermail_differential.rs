//! Differential check of filtermail's MIME reading against `mailparse`, the parser Delta
//! Chat core reads messages with: whenever the policy lets a message through as encrypted,
//! securejoin, Autocrypt Setup Message or delivery report, mailparse must see the same
//! thing: the same tree of content types, the same encrypted payload, the same single
//! From address, the same exception headers. A disagreement means a client could show
//! something the filter never looked at. "The filter's reading" is the canonical grammar's
//! (`filtermail::internals::canonical`), with mail-parser's for the sender.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use filtermail::internals::canonical::{self, forms};
use filtermail::internals::mime;
use filtermail::{Envelope, PolicyVerdict, check_incoming, check_outgoing};
use libfuzzer_sys::fuzz_target;
use mail_parser::MessageParser;
use mailparse::{MailHeaderMap, ParsedMail};

const RCPT: &str = "bob@example.org";

/// A mailboxes directory in which `RCPT` enforces encryption.
fn mailboxes() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("fuzz-differential-{}", std::process::id()));
        let mbox = dir.join(RCPT);
        std::fs::create_dir_all(&mbox).expect("mailbox dir");
        std::fs::write(mbox.join("enforceE2EEincoming"), b"").expect("marker");
        dir
    })
}

/// The canonical reading's tree of `type/subtype` (lower case), depth first, as
/// (depth, type).
fn ours(msg: &canonical::Message<'_>) -> Vec<(usize, String)> {
    let ty =
        |e: &canonical::Entity<'_>| format!("{}/{}", e.content_type.ty, e.content_type.subtype);
    std::iter::once((0, ty(&msg.top)))
        .chain(msg.parts.iter().map(|p| (1, ty(p))))
        .collect()
}

/// mailparse's tree in the same form.
fn theirs(part: &ParsedMail<'_>, depth: usize, out: &mut Vec<(usize, String)>) {
    out.push((depth, part.ctype.mimetype.to_ascii_lowercase()));
    for sub in &part.subparts {
        theirs(sub, depth + 1, out);
    }
}

fn check(message: &[u8], outgoing: bool) {
    let Some(msg) = MessageParser::default().parse(message) else {
        return;
    };
    let Some(from) = mime::from_address(&msg) else {
        return;
    };
    // A delivery report passes only with the null envelope sender.
    let daemon = !outgoing && from.to_ascii_lowercase().starts_with("mailer-daemon@");
    let env = Envelope {
        mail_from: if daemon {
            String::new()
        } else {
            from.to_owned()
        },
        rcpt_to: vec![if outgoing {
            from.to_owned()
        } else {
            RCPT.to_owned()
        }],
    };
    let verdict = if outgoing {
        check_outgoing(&env, message)
    } else {
        check_incoming(&env, message, mailboxes())
    };
    if !matches!(verdict, PolicyVerdict::Accept(_)) {
        return;
    }
    // Accepted although cleartext is not allowed: mailparse must agree on what it is.
    let Ok(parsed) = mailparse::parse_mail(message) else {
        // Delta Chat cannot read it at all: nothing is shown.
        return;
    };
    let canonical = canonical::read(message).expect("an accepted exception is canonical");
    let a = ours(&canonical);
    let mut b = Vec::new();
    theirs(&parsed, 0, &mut b);
    assert_eq!(a, b, "MIME trees differ");

    let froms = parsed.headers.get_all_values("From");
    assert_eq!(froms.len(), 1, "From headers: {froms:?}");
    if let Ok(list) =
        mailparse::addrparse_header(parsed.headers.get_first_header("From").expect("one From"))
    {
        match list.iter().collect::<Vec<_>>().as_slice() {
            [mailparse::MailAddr::Single(info)] => {
                assert!(
                    info.addr.eq_ignore_ascii_case(from),
                    "From {info:?} vs {from}"
                );
            }
            [] => {}
            other => panic!("mailparse reads From as {other:?}"),
        }
    }

    if forms::is_encrypted(&canonical, outgoing) {
        let payload = canonical
            .parts
            .get(1)
            .map(|p| p.body.to_vec())
            .expect("payload part");
        let sub = parsed.subparts.get(1).expect("mailparse payload part");
        let body = sub.get_body_raw().expect("payload body");
        assert_eq!(body, payload, "encrypted payload differs");
        let version = parsed.subparts.first().expect("version part");
        assert_eq!(
            version.get_body_raw().expect("version body").trim_ascii(),
            b"Version: 1"
        );
    } else if forms::is_securejoin(&canonical) {
        let value = parsed
            .headers
            .get_first_value("Secure-Join")
            .unwrap_or_default();
        assert!(value == "vc-request" || value == "vg-request", "{value:?}");
        let [text] = parsed.subparts.as_slice() else {
            panic!("securejoin parts: {}", parsed.subparts.len());
        };
        let body = text.get_body().unwrap_or_default().trim().to_lowercase();
        assert!(
            body == "secure-join: vc-request" || body == "secure-join: vg-request",
            "securejoin body {body:?}"
        );
    } else if !outgoing && forms::is_delivery_report(&canonical) {
        assert!(
            parsed
                .subparts
                .get(1)
                .is_some_and(|p| p.ctype.mimetype.ends_with("delivery-status")),
            "no delivery-status part"
        );
    } else if outgoing {
        assert_eq!(
            parsed.headers.get_first_value("Subject").as_deref(),
            Some("Autocrypt Setup Message")
        );
    }
}

/// Whether every CR is followed by LF and every LF preceded by CR: the front ends refuse
/// anything else with `500 Invalid DATA` before the policy sees it.
fn strict_crlf(message: &[u8]) -> bool {
    let mut prev = 0u8;
    for (i, &b) in message.iter().enumerate() {
        if (b == b'\n') != (prev == b'\r') {
            return false;
        }
        if b == b'\r' && i + 1 == message.len() {
            return false;
        }
        prev = b;
    }
    true
}

// The mode comes from the length's parity, so the input stays a plain message (seeds are
// `.eml` files) and each execution parses once per parser.
/// Whether mail-parser stops at one of its own debug assertions on `message` (reachable
/// from input in mail-parser 0.11.9, `parsers/message.rs`: "Invalid part ID"); release
/// builds, as deployed, carry on. Such inputs are skipped instead of counted as crashes.
fn parser_debug_assertion(message: &[u8]) -> bool {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info
                .location()
                .is_some_and(|l| l.file().contains("mail-parser"))
            {
                previous(info);
            }
        }));
    });
    std::panic::catch_unwind(|| MessageParser::default().parse(message).is_some()).is_err()
}

fuzz_target!(|message: &[u8]| {
    if !strict_crlf(message) || parser_debug_assertion(message) {
        return;
    }
    check(message, message.len() % 2 == 0);
});
