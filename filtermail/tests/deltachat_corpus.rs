//! The filter against what a real chatmail client sends: every message of
//! `tests/data/deltachat/` (captured from Delta Chat through a relay by
//! `tests/e2e/test_deltachat_corpus.py`, see the README there) passes the policy outgoing and
//! incoming to recipients who all enforce encryption. The canonical grammar accepts only what
//! every reader reads alike; this is the measure of what that costs (false refusals: 0).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use filtermail::internals::canonical::{self, forms};
use filtermail::internals::mime;
use filtermail::{Envelope, PolicyVerdict, check_incoming, check_outgoing};

/// The kinds of message the capture makes Delta Chat send (the part of each file name after
/// its phase number); a regenerated corpus must still hold every one.
const KINDS: &[&str] = &[
    "securejoin-contact",
    "keyupdate",
    "text",
    "file",
    "image",
    "reaction",
    "edit",
    "delete",
    "read-receipt",
    "ephemeral-timer",
    "securejoin-group",
    "group-create",
    "group-rename",
    "group-avatar",
    "group-member-remove",
    "group-member-add",
    "group-text",
    "webxdc",
    "webxdc-update",
    "channel",
    "self-copy",
    "sync",
];

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/deltachat")
}

/// Every `.eml` of the corpus, by name.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// `NN-kind-K-sender-to-recipients.eml` → `kind`.
fn kind(name: &str) -> &str {
    let rest = name.split_once('-').unwrap().1;
    let mut cut = rest;
    for _ in 0..4 {
        cut = cut.rsplit_once('-').unwrap().0;
    }
    cut
}

/// `envelopes.txt`: for each file the `RCPT TO` addresses the capture saw it delivered to
/// (Delta Chat writes `To: "hidden-recipients": ;`, so the headers do not say).
fn recipients() -> HashMap<String, Vec<String>> {
    std::fs::read_to_string(corpus_dir().join("envelopes.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let mut words = l.split(' ').map(str::to_owned);
            let name = words.next().unwrap();
            (name, words.collect())
        })
        .collect()
}

/// The envelope the client used: `MAIL FROM` the From address (Postfix ties it to the login
/// and the filter requires the two to match), `RCPT TO` as recorded.
fn envelope(raw: &[u8], rcpt_to: &[String]) -> Envelope {
    let msg = mime::parse_headers(raw).expect("a header block");
    let from = mime::from_address(&msg).expect("one From address");
    Envelope {
        mail_from: from.to_owned(),
        rcpt_to: rcpt_to.to_vec(),
    }
}

/// Why the grammar did not take the message for one of the forms that pass.
fn reason(raw: &[u8], outgoing: bool) -> String {
    match canonical::read(raw) {
        Err(why) => format!("outside the canonical grammar: {why}"),
        Ok(msg) => {
            let parts: Vec<String> = msg
                .parts
                .iter()
                .map(|p| format!("{:?} {:?}", p.content_type, p.encoding))
                .collect();
            format!(
                "canonical, but none of the forms (encrypted {}, securejoin {}): top {:?} {:?}, parts {parts:?}",
                forms::is_encrypted(&msg, outgoing),
                forms::is_securejoin(&msg),
                msg.top.content_type,
                msg.top.encoding,
            )
        }
    }
}

/// `raw` as the filter's incoming mode gets it from a peer relay: with the DKIM signature
/// the sending relay added (OpenDKIM's layout) and the `Received` line our Postfix's smtpd
/// prepends before handing the message to the filter.
fn as_delivered_by_peer(raw: &[u8], rcpt: &str) -> Vec<u8> {
    let b = "Qm9ndXMgc2lnbmF0dXJlIGZvciB0aGUgbGF5b3V0IG9ubHk".repeat(8);
    let mut out = format!(
        "Received: from relay.example.net (relay.example.net [203.0.113.25])\r\n\
         \tby chat.example.org (Postfix) with ESMTPS id 4dKqB81MQHz1YQ\r\n\
         \tfor <{rcpt}>; Sun,  7 Dec 2026 03:00:00 +0000 (UTC)\r\n\
         DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=relay.example.net;\r\n\
         \ts=opendkim; t=1796612369;\r\n\
         \tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n\
         \th=From:To:Date:Subject:Message-ID:MIME-Version:Content-Type:From;\r\n\
         \tb={}\r\n\
         \t {}\r\n",
        &b[..180],
        &b[180..344]
    )
    .into_bytes();
    out.extend_from_slice(raw);
    out
}

/// A mailboxes directory in which every recipient enforces encryption.
fn enforcing(dir: &Path, rcpts: &[String]) {
    for rcpt in rcpts {
        let mbox = dir.join(rcpt.to_ascii_lowercase());
        std::fs::create_dir_all(&mbox).unwrap();
        std::fs::write(mbox.join("enforceE2EEincoming"), b"").unwrap();
    }
}

#[test]
fn every_message_delta_chat_sends_passes_both_ways() {
    let files = corpus();
    let rcpts = recipients();
    let mailboxes = tempfile::tempdir().unwrap();
    let mut refused = Vec::new();
    for (name, raw) in &files {
        let rcpt_to = rcpts.get(name).filter(|r| !r.is_empty());
        let env = envelope(raw, rcpt_to.expect("recipients in envelopes.txt"));
        enforcing(mailboxes.path(), &env.rcpt_to);
        if let PolicyVerdict::Reject(reply) = check_outgoing(&env, raw) {
            refused.push(format!("{name}: outgoing {reply}: {}", reason(raw, true)));
        }
        if let PolicyVerdict::Reject(reply) = check_incoming(&env, raw, mailboxes.path()) {
            refused.push(format!("{name}: incoming {reply}: {}", reason(raw, false)));
        }
        let delivered = as_delivered_by_peer(raw, &env.rcpt_to[0]);
        if let PolicyVerdict::Reject(reply) = check_incoming(&env, &delivered, mailboxes.path()) {
            refused.push(format!(
                "{name}: incoming from a peer relay {reply}: {}",
                reason(&delivered, false)
            ));
        }
    }
    assert!(
        refused.is_empty(),
        "{} refusals of {} messages Delta Chat sent:\n{}",
        refused.len(),
        files.len(),
        refused.join("\n")
    );
}

#[test]
fn corpus_holds_every_kind_as_sent_over_smtp() {
    let files = corpus();
    for want in KINDS {
        assert!(
            files.iter().any(|(name, _)| kind(name) == *want),
            "no {want} message in {}",
            corpus_dir().display()
        );
    }
    let rcpts = recipients();
    assert_eq!(
        rcpts.len(),
        files.len(),
        "envelopes.txt lists every file once"
    );
    for (name, raw) in &files {
        // As SMTP carried it: CRLF line ends, the delivery fields gone.
        let lf = raw.iter().filter(|&&b| b == b'\n').count();
        let crlf = raw.windows(2).filter(|w| w == b"\r\n").count();
        assert_eq!(lf, crlf, "{name}: bare LF");
        for field in ["Return-Path:", "Delivered-To:"] {
            assert!(!raw.starts_with(field.as_bytes()), "{name}: {field} kept");
        }
    }
}
