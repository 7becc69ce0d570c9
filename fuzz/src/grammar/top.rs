//! The top-level header block: the fields chatmail clients write for each kind of
//! message (From, To, Subject, Date, Message-ID, MIME-Version, Autocrypt, Secure-Join,
//! Auto-Submitted, ...), their spellings, and mutations: a second Content-Type naming
//! another boundary, NUL bytes, lines without a colon, lines over 998 bytes, folds, odd
//! field names.

use super::body::{self, Multi, Node};
use super::params::content_type;
use super::{Gen, Kind};

const AUTOCRYPT: &str = "Autocrypt: addr=alice@example.org; prefer-encrypt=mutual;\r\n\tkeydata=xjMEZSwWjhYJKwYBBAHaRw8BAQdAQBEhqeJh0GueHB6kF/DUQqYCxARNBVokg/AzT+7LqH\r\n\trNFzxiYXJiYXpAYzIudGVzdHJ1bi5vcmc+wosEEBYIADMCGQEFAmUsFo4CGwMECwkIBwYVCAkKCwID";

/// The whole message: top-level fields, the root multipart's fields, its body.
pub fn message(g: &mut Gen<'_, '_>, kind: Kind, from: &str, rcpt: &str, root: Multi) -> Vec<u8> {
    let root = if g.pick(10) == 1 {
        // The accepted structure inside another multipart, next to a text part.
        g.tag("body:root-wrapped");
        let marker = body::marker_part(g);
        body::multi(g, "multipart/mixed", &[], vec![Node::Multi(root), marker])
    } else {
        root
    };
    let mut headers = canonical(g, kind, from, rcpt);
    headers.push(b"MIME-Version: 1.0".to_vec());
    headers.extend(root.headers.iter().cloned());
    mutate(g, &mut headers, &root);
    let mut out = Vec::new();
    for h in &headers {
        out.extend_from_slice(h);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    root.write_body(&mut out);
    out
}

fn canonical(g: &mut Gen<'_, '_>, kind: Kind, from: &str, rcpt: &str) -> Vec<Vec<u8>> {
    let from = from_field(g, from, kind == Kind::Report);
    let to = format!("To: <{rcpt}>");
    let date = "Date: Sun, 15 Oct 2023 16:43:21 +0000".to_owned();
    let id = "Message-ID: <Mr.UVyJWZmkCKM.hGzNc6glBE_@example.org>".to_owned();
    let h = match kind {
        Kind::Encrypted => {
            let mut h = vec![from, to, "Subject: [...]".into(), date, id];
            h.push("Chat-Version: 1.0".into());
            if !g.flag() {
                h.push(AUTOCRYPT.into());
            }
            h
        }
        Kind::SecureJoin => {
            let value = secure_join_value(g);
            let subject = "Subject: Message from alice@example.org".into();
            let mut h = vec![subject, from, to, date, id, "Chat-Version: 1.0".into()];
            h.push(format!("Secure-Join: {value}"));
            h.push("Secure-Join-Invitenumber: RANDOM-TOKEN".into());
            h.push(AUTOCRYPT.into());
            h
        }
        Kind::Report => {
            let value = auto_submitted_value(g);
            let subject = "Subject: Undelivered Mail Returned to Sender".into();
            vec![date, from, subject, to, format!("Auto-Submitted: {value}")]
        }
        Kind::Setup => {
            let asm = "Autocrypt-Setup-Message: v1".into();
            vec![
                from,
                to,
                asm,
                "Subject: Autocrypt Setup Message".into(),
                date,
            ]
        }
    };
    h.into_iter().map(String::into_bytes).collect()
}

/// `vc-request` or `vg-request`, or a spelling a reader may take differently.
fn secure_join_value(g: &mut Gen<'_, '_>) -> &'static str {
    let value = g.one_of(&[
        "vc-request",
        "vg-request",
        "VC-REQUEST",
        "=?utf-8?q?vc-request?=",
        "vc-request (x)",
        "vc-request\r\n ",
    ]);
    if value != "vc-request" && value != "vg-request" {
        g.tag("hdr:secure-join-spelling");
    }
    value
}

/// `auto-replied`, or another value, `no` in several spellings among them.
fn auto_submitted_value(g: &mut Gen<'_, '_>) -> &'static str {
    let value = g.one_of(&[
        "auto-replied",
        "auto-generated",
        "no",
        "No",
        "=?utf-8?q?no?=",
        "no (x)",
        "no; x=y",
    ]);
    if value != "auto-replied" {
        g.tag(if value.starts_with("auto") {
            "hdr:auto-submitted-auto-generated"
        } else {
            "hdr:auto-submitted-no-spelling"
        });
    }
    value
}

fn from_field(g: &mut Gen<'_, '_>, addr: &str, daemon: bool) -> String {
    let name = if daemon {
        "Mail Delivery System"
    } else {
        "Alice"
    };
    let pick = g.pick(8);
    if pick > 0 && pick < 6 {
        g.tag("hdr:from-spelling");
    }
    let value = match pick {
        1 => addr.to_owned(),
        2 => format!("{name} <{addr}>"),
        3 => format!("\"{name}, Esq.\" <{addr}>"),
        4 => format!("=?utf-8?q?{name}?= <{addr}>"),
        5 => format!("{addr} (comment)"),
        _ => format!("<{addr}>"),
    };
    format!("From: {value}")
}

/// Up to four top-level mutations.
fn mutate(g: &mut Gen<'_, '_>, headers: &mut Vec<Vec<u8>>, root: &Multi) {
    let mut round = 0;
    while g.again(&mut round, 4) {
        let i = g.pick(headers.len());
        match g.pick(11) {
            0 | 1 => second_content_type(g, headers, root),
            2 => {
                g.tag("postfix:nul-in-top-header");
                if let Some(h) = headers.get_mut(i) {
                    let at = g.pick(h.len() + 1);
                    h.insert(at, 0);
                }
            }
            3 => {
                g.tag("top:line-without-colon");
                headers.insert(i, b"X-No-Colon".to_vec());
            }
            4 => {
                g.tag("top:continuation-line-first");
                headers.insert(0, b" x".to_vec());
            }
            5 => extra_field(g, headers, i),
            6 => {
                g.tag("top:lower-case-names");
                for h in headers.iter_mut() {
                    let colon = h.iter().position(|&c| c == b':').unwrap_or(0);
                    if let Some(name) = h.get_mut(..colon) {
                        name.make_ascii_lowercase();
                    }
                }
            }
            7 => {
                if let Some(h) = headers.get_mut(i) {
                    body::fold(g, h);
                }
            }
            8 => {
                g.tag("top:no-mime-version");
                headers.retain(|h| !h.starts_with(b"MIME-Version:"));
            }
            9 => {
                g.tag("postfix:long-top-header-line");
                let len = 990 + g.pick(20);
                let field = [b"X-Long: ".as_slice(), &vec![b'a'; len]].concat();
                headers.insert(i, field);
            }
            _ => {
                g.tag("hdr:space-before-colon");
                if let Some(h) = headers.get_mut(i)
                    && let Some(colon) = h.iter().position(|&c| c == b':')
                {
                    h.insert(colon, b' ');
                }
            }
        }
    }
}

/// A second `Content-Type` naming one of the readings of the boundary.
fn second_content_type(g: &mut Gen<'_, '_>, headers: &mut Vec<Vec<u8>>, root: &Multi) {
    g.tag("top:second-content-type");
    let x = root.readings.get(g.pick(root.readings.len()));
    let x = x.cloned().unwrap_or_default();
    let ct = content_type(g, "multipart/mixed", &[], Some((&x, &x)));
    let at = g.pick(headers.len() + 1);
    headers.insert(at, ct.field);
}

fn extra_field(g: &mut Gen<'_, '_>, headers: &mut Vec<Vec<u8>>, at: usize) {
    g.tag("top:extra-field");
    let field = g.one_of(&[
        "X-Foo: bar",
        "Received: from a by b; Sun, 15 Oct 2023 16:43:21 +0000",
        "Content-Transfer-Encoding: base64",
        "Content-Transfer-Encoding: quoted-printable",
        "MIME-Version: 1.0 (x)",
        "Content-Disposition: inline",
        "Content-Type: text/plain",
        "Subject: CLEARTEXT-SPAM",
    ]);
    headers.insert(at, field.as_bytes().to_vec());
}
