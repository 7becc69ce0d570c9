//! DKIM origin verification with real signatures: messages are signed with a freshly
//! generated Ed25519 key whose record a local DNS server publishes.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers fail the test loudly"
)]

mod common;

use std::net::SocketAddr;

use base64::Engine;
use chatmail_tests::dns::{self, Zone};
use common::sink;
use common::{Daemon, Eol, eml};
use filtermail::DkimVerifier;
use filtermail::{FilterReply, Reply};
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;

const TO: &str = "bob@chat.example.org";

struct Keys {
    pkcs8: Vec<u8>,
    record: String,
}

fn keys() -> Keys {
    let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
    let key = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
    let p = base64::engine::general_purpose::STANDARD.encode(key.public_key());
    Keys {
        pkcs8,
        record: format!("v=DKIM1; k=ed25519; p={p}"),
    }
}

/// `message` with a DKIM-Signature of `d=domain; s=sel` prepended.
fn sign(keys: &Keys, domain: &str, message: &[u8]) -> Vec<u8> {
    sign_headers(keys, domain, &["From", "To", "Subject"], message)
}

/// `message` with a DKIM-Signature over `headers` prepended.
fn sign_headers(keys: &Keys, domain: &str, headers: &[&str], message: &[u8]) -> Vec<u8> {
    let key = Ed25519Key::from_pkcs8_der(&keys.pkcs8).unwrap();
    let sig = DkimSigner::from_key(key)
        .domain(domain)
        .selector("sel")
        .headers(headers.iter().copied())
        .sign(message)
        .unwrap();
    let mut out = sig.to_header().into_bytes();
    out.extend_from_slice(message);
    out
}

async fn dns_server(keys: &Keys) -> SocketAddr {
    let zone = Zone::default()
        .txt("sel._domainkey.other.example", &keys.record)
        .txt("sel._domainkey.mail.other.example", &keys.record)
        .servfail("sel._domainkey.broken.example");
    dns::start(zone).await
}

fn message(from: &str) -> Vec<u8> {
    format!("From: <{from}>\r\nTo: <{TO}>\r\nSubject: hi\r\n\r\nHello\r\n.dot line\r\n")
        .into_bytes()
}

#[tokio::test]
async fn signatures_table() {
    let keys = keys();
    let verifier = DkimVerifier::new(Some(dns_server(&keys).await)).unwrap();
    let from = "carol@other.example";
    let good = sign(&keys, "other.example", &message(from));
    let mut altered = good.clone();
    let n = altered.len();
    altered[n - 4] = b'X';
    type Case<'a> = (&'a str, Vec<u8>, &'a str, Result<(), Reply>);
    let cases: Vec<Case> = vec![
        ("valid", good.clone(), from, Ok(())),
        (
            "valid, From domain case differs",
            good.clone(),
            "carol@OTHER.example",
            Ok(()),
        ),
        (
            "body altered",
            altered,
            from,
            Err(Reply::NO_VALID_DKIM_SIGNATURE),
        ),
        (
            "subdomain signature, relaxed alignment only",
            sign(&keys, "mail.other.example", &message(from)),
            from,
            Err(Reply::NO_VALID_DKIM_SIGNATURE),
        ),
        (
            "signed by another domain",
            good.clone(),
            "carol@elsewhere.example",
            Err(Reply::NO_VALID_DKIM_SIGNATURE),
        ),
        (
            "unsigned",
            message(from),
            from,
            Err(Reply::NO_DKIM_SIGNATURE),
        ),
        (
            "key not published",
            sign(&keys, "nokey.example", &message("c@nokey.example")),
            "c@nokey.example",
            Err(Reply::NO_VALID_DKIM_SIGNATURE),
        ),
        (
            "DNS failure is temporary",
            sign(&keys, "broken.example", &message("c@broken.example")),
            "c@broken.example",
            Err(Reply::DKIM_TEMPFAIL),
        ),
        (
            "domain literal skipped",
            message("c@[1.2.3.4]"),
            "c@[1.2.3.4]",
            Ok(()),
        ),
        (
            "not UTF-8",
            b"From: a@b\r\n\r\n\xff\r\n".to_vec(),
            "a@b",
            Err(Reply::NON_UTF8),
        ),
        (
            "no body separator",
            b"From: a@b\r\n".to_vec(),
            "a@b",
            Err(Reply::MALFORMED_DATA),
        ),
    ];
    for (name, msg, from, want) in cases {
        assert_eq!(verifier.verify(&msg, from).await, want, "{name}");
    }
}

/// A signature that does not cover From proves nothing about it: another From line
/// could be put above the signed ones.
#[tokio::test]
async fn signature_must_cover_from() {
    let keys = keys();
    let verifier = DkimVerifier::new(Some(dns_server(&keys).await)).unwrap();
    let from = "carol@other.example";
    let unsigned_from = sign_headers(&keys, "other.example", &["To", "Subject"], &message(from));
    assert_eq!(
        verifier.verify(&unsigned_from, from).await,
        Err(Reply::NO_VALID_DKIM_SIGNATURE)
    );
    let lower = sign_headers(&keys, "other.example", &["from", "to"], &message(from));
    assert_eq!(verifier.verify(&lower, from).await, Ok(()));
}

/// Only the first `filtermail_max_dkim_signatures` usable signatures are verified.
#[tokio::test]
async fn signature_count_is_capped() {
    let keys = keys();
    let dns = dns_server(&keys).await;
    let from = "carol@other.example";
    let msg = message(from);
    let good = sign(&keys, "other.example", &msg);
    let good_header = &good[..good.len() - msg.len()];
    // Aligned signatures of another message: they fail, each costing a verification.
    let other = sign(&keys, "other.example", &message("dave@other.example"));
    let bad_header = &other[..other.len() - message("dave@other.example").len()];
    let stuffed = |bad: usize, good_first: bool| {
        let mut out = Vec::new();
        if good_first {
            out.extend_from_slice(good_header);
        }
        for _ in 0..bad {
            out.extend_from_slice(bad_header);
        }
        if !good_first {
            out.extend_from_slice(good_header);
        }
        out.extend_from_slice(&msg);
        out
    };
    let verifier = DkimVerifier::new(Some(dns)).unwrap().with_max_signatures(3);
    assert_eq!(verifier.verify(&stuffed(2, false), from).await, Ok(()));
    assert_eq!(
        verifier.verify(&stuffed(3, false), from).await,
        Err(Reply::NO_VALID_DKIM_SIGNATURE),
        "the good signature is the fourth"
    );
    assert_eq!(verifier.verify(&stuffed(5000, true), from).await, Ok(()));
    assert_eq!(
        verifier.verify(&stuffed(5000, false), from).await,
        Err(Reply::NO_VALID_DKIM_SIGNATURE)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_verifies_incoming_mail() {
    let keys = keys();
    let dns = dns_server(&keys).await;
    let sink = sink::start("250 Ok").await;
    let d = Daemon::start(
        "incoming",
        sink.port,
        "",
        &[("FILTERMAIL_DKIM_RESOLVER", &dns.to_string())],
    );
    assert!(d.startup[0].contains("loop"), "{:?}", d.startup);
    let mut c = d.connect().await;
    c.cmd("EHLO x").await;
    let from = "carol@other.example";
    // Signed over a body line starting with "." — checks run on the unstuffed message.
    let signed = sign(&keys, "other.example", &message(from));
    assert_eq!(c.transaction(from, &[TO], &signed).await, "250 OK");
    assert_eq!(sink.messages()[0].data, signed);
    assert_eq!(
        c.transaction(from, &[TO], &message(from)).await,
        "554 5.7.1 No DKIM signature found"
    );
    let enc = eml("encrypted.eml", from, TO, "x", Eol::Crlf);
    assert_eq!(
        c.transaction(from, &[TO], &sign(&keys, "mail.other.example", &enc))
            .await,
        "554 5.7.1 No valid DKIM signature found"
    );
    assert_eq!(
        c.transaction(from, &[TO], &sign(&keys, "other.example", &enc))
            .await,
        "250 OK"
    );
    assert_eq!(sink.messages().len(), 2);
}
