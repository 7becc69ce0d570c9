//! Structure-aware differential check of the encryption filter against `mailparse`, the
//! reader of Delta Chat core: messages built from a grammar of headers, parameter lists,
//! folds, encodings and multipart trees ([`chatmail_fuzz::grammar`]); whenever
//! `check_outgoing` / `check_incoming` (to a mailbox that enforces encryption) accepts one,
//! mailparse must read one of the accepted shapes with the same payload and no text part
//! holding the cleartext marker ([`chatmail_fuzz::oracle`]), also after what Postfix does
//! to the bytes ([`chatmail_fuzz::postfix`]); and Postfix must not change an accepted
//! message at all.
//!
//! Environment:
//! - `GRAMMAR_FINDINGS=DIR`: do not stop at a broken promise; write one example per class
//!   and set of tricks to `DIR/<class>/` (`.eml`, the fuzzer input `.input`, `.txt`).
//! - `GRAMMAR_IGNORE=class,class`: classes (prefixes) not to report; `GRAMMAR_ONLY=...`:
//!   only these (to minimise one finding without drifting to another).
//! - `GRAMMAR_EML="incoming|outgoing MAIL-FROM RCPT..."`: the input is a message as is.
//! - `GRAMMAR_PRINT=1`: print each generated message and the verdict.
#![no_main]

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once, OnceLock};

use arbitrary::Unstructured;
use chatmail_fuzz::grammar::{self, Case};
use chatmail_fuzz::oracle::{self, Violation};
use chatmail_fuzz::postfix;
use filtermail::internals::canonical;
use filtermail::{Envelope, PolicyVerdict, check_incoming, check_outgoing};
use libfuzzer_sys::fuzz_target;
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

/// A mailboxes directory in which the incoming recipient enforces encryption.
fn mailboxes() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("fuzz-grammar-{}", std::process::id()));
        let mbox = dir.join(grammar::ENFORCING);
        if let Err(e) = std::fs::create_dir_all(&mbox)
            .and_then(|()| std::fs::write(mbox.join("enforceE2EEincoming"), b""))
        {
            panic!("mailbox {}: {e}", mbox.display());
        }
        dir
    })
}

/// The encrypted payload as the filter reads it (`filtermail::internals::canonical`, whose encrypted
/// form has no transfer encoding).
fn filter_payload(message: &[u8]) -> Option<Vec<u8>> {
    let msg = canonical::read(message).ok()?;
    let ct = &msg.top.content_type;
    if ct.ty != "multipart" || ct.subtype != "encrypted" {
        return None;
    }
    Some(msg.parts.get(1)?.body.to_vec())
}

/// Where mail-parser's and mailparse's readings of `message` first part ways (pre-order),
/// to group findings:
/// media type, boundary, number of parts, or nowhere in the tree.
fn first_difference(message: &[u8]) -> &'static str {
    let Some(ours) = MessageParser::default().parse(message) else {
        return "mail-parser reads nothing";
    };
    let Ok(theirs) = mailparse::parse_mail(message) else {
        return "mailparse reads nothing";
    };
    walk(&ours, 0, &theirs).unwrap_or("same tree")
}

fn walk(ours: &Message<'_>, id: u32, theirs: &mailparse::ParsedMail<'_>) -> Option<&'static str> {
    let part = ours.part(id)?;
    let (ty, boundary) = match part.content_type() {
        Some(ct) => (
            format!(
                "{}/{}",
                ct.c_type.to_ascii_lowercase(),
                ct.c_subtype.as_deref().unwrap_or("").to_ascii_lowercase()
            ),
            ct.attribute("boundary").map(str::to_owned),
        ),
        None => ("text/plain".to_owned(), None),
    };
    let children: &[u32] = match &part.body {
        PartType::Multipart(ids) => ids,
        _ => &[],
    };
    if ty != theirs.ctype.mimetype {
        return Some("media type read differently");
    }
    if !children.is_empty() && boundary.as_ref() != theirs.ctype.params.get("boundary") {
        return Some("boundary read differently");
    }
    if children.len() != theirs.subparts.len() {
        return Some("delimiters read differently");
    }
    children
        .iter()
        .zip(&theirs.subparts)
        .find_map(|(&c, sub)| walk(ours, c, sub))
}

/// The verdict, and if the filter accepted, whether the promise holds.
fn run(case: &Case) -> (bool, Result<(), Violation>) {
    let env = Envelope {
        mail_from: case.mail_from.clone(),
        rcpt_to: case.rcpt_to.clone(),
    };
    let verdict = if case.outgoing {
        check_outgoing(&env, &case.message)
    } else {
        check_incoming(&env, &case.message, mailboxes())
    };
    let PolicyVerdict::Accept(accepted) = verdict else {
        return (false, Ok(()));
    };
    let payload = filter_payload(&case.message);
    let acc = oracle::Accepted {
        outgoing: case.outgoing,
        mail_from: &case.mail_from,
        rcpt_to: &case.rcpt_to,
        from_addr: &accepted.from_addr,
        payload: payload.as_deref(),
    };
    (true, promise(case, &acc))
}

fn promise(case: &Case, acc: &oracle::Accepted<'_>) -> Result<(), Violation> {
    guarded(|| oracle::check(&case.message, acc))?;
    let delivered = postfix::deliver(&case.message, case.outgoing);
    guarded(|| oracle::check(&delivered.message, acc)).map_err(|v| Violation {
        class: format!("after Postfix: {}", v.class),
        detail: format!(
            "after Postfix ({}): {}",
            delivered.changes.join(", "),
            v.detail
        ),
    })?;
    match delivered.changes.first() {
        Some(first) => Err(Violation {
            class: format!("Postfix: {first}"),
            detail: delivered.changes.join(", "),
        }),
        None => Ok(()),
    }
}

/// `f`, with a panic inside mailparse (Delta Chat would crash on the message) as a finding.
fn guarded(f: impl FnOnce() -> Result<(), Violation>) -> Result<(), Violation> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Violation {
            class: "mailparse panics".to_owned(),
            detail: String::new(),
        })
    })
}

/// Lets panics inside the two MIME readers unwind to `catch_unwind` instead of aborting:
/// mailparse's are findings, mail-parser's debug assertion ("Invalid part ID",
/// `parsers/message.rs` of 0.11.9) is not reachable in release builds and skipped.
fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let reader = info.location().is_some_and(|l| {
                l.file().contains("mail-parser") || l.file().contains("mailparse")
            });
            if !reader {
                previous(info);
            }
        }));
    });
}

fn listed(var: &str, class: &str) -> bool {
    std::env::var(var).is_ok_and(|list| {
        list.split(',')
            .any(|c| !c.is_empty() && class.starts_with(c.trim()))
    })
}

fn ignored(class: &str) -> bool {
    listed("GRAMMAR_IGNORE", class)
        || (std::env::var_os("GRAMMAR_ONLY").is_some() && !listed("GRAMMAR_ONLY", class))
}

/// With `GRAMMAR_EML="incoming|outgoing MAIL-FROM RCPT"`, the input is a message as is
/// (to replay a reproducer) instead of a decision stream.
fn case_from_env(data: &[u8]) -> Option<Case> {
    let spec = std::env::var("GRAMMAR_EML").ok()?;
    let mut words = spec.split_whitespace();
    let outgoing = words.next()? == "outgoing";
    let mail_from = words.next().unwrap_or_default();
    let mail_from = if mail_from == "<>" { "" } else { mail_from };
    Some(Case {
        outgoing,
        mail_from: mail_from.to_owned(),
        rcpt_to: words.map(str::to_owned).collect(),
        message: data.to_vec(),
        tags: Vec::new(),
    })
}

fn report(case: &Case, input: &[u8], v: &Violation) {
    let text = format!(
        "{}: {}\nmode: {}\nMAIL FROM: <{}>\nRCPT TO: {:?}\ntricks: {:?}\n",
        v.class,
        v.detail,
        if case.outgoing {
            "outgoing"
        } else {
            "incoming"
        },
        case.mail_from,
        case.rcpt_to,
        case.tags,
    );
    match std::env::var("GRAMMAR_FINDINGS") {
        Ok(dir) => collect(Path::new(&dir), case, input, v, &text),
        Err(_) => panic!("{text}message:\n{}", String::from_utf8_lossy(&case.message)),
    }
}

/// Writes one example per (class, set of tricks), at most 200 per class.
fn collect(dir: &Path, case: &Case, input: &[u8], v: &Violation, text: &str) {
    static SEEN: Mutex<Option<HashSet<u64>>> = Mutex::new(None);
    let mut tags = case.tags.clone();
    tags.sort_unstable();
    let mut h = DefaultHasher::new();
    (&v.class, &tags, case.outgoing).hash(&mut h);
    let key = h.finish();
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if !seen.get_or_insert_with(HashSet::new).insert(key) {
        return;
    }
    let class: String = v
        .class
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let sub = dir.join(class);
    let _ = std::fs::create_dir_all(&sub);
    if std::fs::read_dir(&sub).map_or(0, Iterator::count) >= 600 {
        return;
    }
    let base = sub.join(format!("{key:016x}"));
    if base.with_extension("eml").exists() {
        return;
    }
    let _ = std::fs::write(base.with_extension("eml"), &case.message);
    let _ = std::fs::write(base.with_extension("input"), input);
    let _ = std::fs::write(base.with_extension("txt"), text);
}

/// Whether mail-parser stops at its debug assertion on `message` (debug builds only).
fn parser_debug_assertion(message: &[u8]) -> bool {
    std::panic::catch_unwind(|| MessageParser::default().parse(message).is_some()).is_err()
}

fuzz_target!(|data: &[u8]| {
    install_hook();
    let case =
        case_from_env(data).unwrap_or_else(|| grammar::generate(&mut Unstructured::new(data)));
    if parser_debug_assertion(&case.message) {
        return;
    }
    let (accepted, result) = run(&case);
    if std::env::var_os("GRAMMAR_PRINT").is_some() {
        eprintln!(
            "accepted: {accepted} ({}, tricks {:?})\n{}",
            if case.outgoing {
                "outgoing"
            } else {
                "incoming"
            },
            case.tags,
            String::from_utf8_lossy(&case.message)
        );
    }
    if let Err(mut v) = result
        && !ignored(&v.class)
    {
        v.class = format!("{} ({})", v.class, first_difference(&case.message));
        report(&case, data, &v);
    }
});
