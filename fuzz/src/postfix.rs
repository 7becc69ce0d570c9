//! A model of what Postfix, as `relay/postfix` configures it, does to a message after
//! filtermail accepted it and before a client reads it, so the target can require that the
//! client still reads what the filter judged.
//!
//! From Postfix's source (`global/mime_state.c`, `global/is_header.c`,
//! `smtp/smtp_proto.c`; the same in 3.7 and 3.10):
//! - `disable_mime_input_processing = yes`: cleanup parses only the top-level header block
//!   as headers; everything after it is body.
//! - A header is collected with `vstring_strcat`, record by record (records are at most
//!   `line_length_limit` = 2048 bytes): each record is cut at its first NUL byte.
//! - Records of one header are dropped once the header holds `header_size_limit` (102400)
//!   bytes (`MIME_ERR_TRUNC_HEADER`; the message is still delivered).
//! - `Name :` (white space before the colon) is written back as `Name:`.
//! - A line in the header block that is neither a header (`is_header`) nor the
//!   continuation of one ends the block: cleanup writes an empty line before it.
//! - The SMTP and LMTP clients break lines longer than `smtp_line_length_limit` /
//!   `lmtp_line_length_limit` (998) into pieces, each further piece after CRLF and a space.
//! - Intended rewrites: outgoing mail passes `authclean`'s `header_checks`
//!   (`submission_header_cleanup`), incoming mail `lmtp_header_checks`
//!   (`lmtp_header_cleanup`) on local delivery.

/// Postfix's `header_size_limit` default.
pub const HEADER_SIZE_LIMIT: usize = 102_400;
/// Postfix's `line_length_limit` default: the size of a queue-file record.
pub const RECORD_LIMIT: usize = 2048;
/// Postfix's `smtp_line_length_limit` / `lmtp_line_length_limit` default.
pub const SMTP_LINE_LIMIT: usize = 998;

/// The message as delivered, and the unintended changes Postfix made to it.
pub struct Delivered {
    /// The bytes a client reads.
    pub message: Vec<u8>,
    /// What Postfix changed beyond its header checks, once each.
    pub changes: Vec<&'static str>,
}

/// What the mailbox (incoming) or the next hop (outgoing) receives for `message`.
pub fn deliver(message: &[u8], outgoing: bool) -> Delivered {
    let mut d = rewrite(message, outgoing);
    let mut unique = Vec::new();
    for c in d.changes {
        if !unique.contains(&c) {
            unique.push(c);
        }
    }
    d.changes = unique;
    d
}

fn rewrite(message: &[u8], outgoing: bool) -> Delivered {
    let mut changes = Vec::new();
    let mut out = Vec::with_capacity(message.len());
    let mut lines = message.split_inclusive(|&c| c == b'\n');
    let mut pending: Option<Vec<Vec<u8>>> = None;
    for raw in lines.by_ref() {
        let l = raw.strip_suffix(b"\r\n").unwrap_or(raw);
        if let Some(h) = &mut pending
            && matches!(l.first(), Some(b' ' | b'\t'))
        {
            h.push(l.to_vec());
            continue;
        }
        if let Some(h) = pending.take() {
            emit_header(&h, outgoing, &mut out, &mut changes);
        }
        if l.is_empty() {
            out.extend_from_slice(raw);
            break;
        }
        if is_header(l) {
            pending = Some(vec![l.to_vec()]);
            continue;
        }
        changes.push("empty line inserted before a line that is no header");
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(raw);
        break;
    }
    if let Some(h) = pending.take() {
        emit_header(&h, outgoing, &mut out, &mut changes);
    }
    for raw in lines {
        out.extend_from_slice(raw);
    }
    let message = break_long_lines(&out, &mut changes);
    Delivered { message, changes }
}

/// `is_header()`: printable ASCII name without space or colon, optional space, colon.
fn is_header(l: &[u8]) -> bool {
    let name = l.iter().take_while(|&&c| c != b':').count();
    let Some(head) = l.get(..name) else {
        return false;
    };
    let trimmed = head.trim_ascii_end();
    name < l.len()
        && !trimmed.is_empty()
        && trimmed
            .iter()
            .all(|&c| c.is_ascii() && !c.is_ascii_control() && c != b' ')
        && head
            .get(trimmed.len()..)
            .unwrap_or_default()
            .iter()
            .all(|&c| c == b' ' || c == b'\t')
}

/// One collected header as cleanup writes it (NUL cut, size limit, `Name :`), unless a
/// header check removes or replaces it.
fn emit_header(
    lines: &[Vec<u8>],
    outgoing: bool,
    out: &mut Vec<u8>,
    changes: &mut Vec<&'static str>,
) {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    let mut size = 0usize;
    for (i, l) in lines.iter().enumerate() {
        let mut line = Vec::with_capacity(l.len());
        for (j, record) in l.chunks(RECORD_LIMIT).enumerate() {
            if (i > 0 || j > 0) && size >= HEADER_SIZE_LIMIT {
                changes.push("header cut at header_size_limit");
                break;
            }
            let cut = record.iter().position(|&c| c == 0).unwrap_or(record.len());
            if cut < record.len() {
                changes.push("header line cut at a NUL byte");
            }
            line.extend_from_slice(record.get(..cut).unwrap_or_default());
            size += cut;
        }
        size += 1;
        kept.push(line);
    }
    if let Some(first) = kept.first_mut()
        && let Some(colon) = first.iter().position(|&c| c == b':')
        && let Some(name) = first.get(..colon)
        && matches!(name.last(), Some(b' ' | b'\t'))
    {
        let name_end = name.trim_ascii_end().len();
        first.drain(name_end..colon);
        changes.push("white space before a header's colon removed");
    }
    let Some(first) = kept.first() else { return };
    let lower = first.to_ascii_lowercase();
    let ignored: &[&[u8]] = if outgoing {
        &[
            b"received:",
            b"x-originating-ip:",
            b"x-mailer:",
            b"user-agent:",
        ]
    } else {
        &[b"dkim-signature:", b"authentication-results:", b"received:"]
    };
    if ignored.iter().any(|p| lower.starts_with(p)) {
        return;
    }
    if outgoing && lower.starts_with(b"subject:") {
        out.extend_from_slice(b"Subject: [...]\r\n");
        return;
    }
    for l in kept {
        out.extend_from_slice(&l);
        out.extend_from_slice(b"\r\n");
    }
}

/// `smtp_text_out()`: lines over the limit become pieces of 998, then of a space and 997.
fn break_long_lines(message: &[u8], changes: &mut Vec<&'static str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    for raw in message.split_inclusive(|&c| c == b'\n') {
        let (l, eol) = match raw.strip_suffix(b"\r\n") {
            Some(l) => (l, &b"\r\n"[..]),
            None => (raw, &b""[..]),
        };
        if l.len() <= SMTP_LINE_LIMIT {
            out.extend_from_slice(raw);
            continue;
        }
        changes.push("line over 998 bytes broken");
        let (first, mut rest) = l.split_at(SMTP_LINE_LIMIT);
        out.extend_from_slice(first);
        while !rest.is_empty() {
            let (piece, r) = rest.split_at(rest.len().min(SMTP_LINE_LIMIT - 1));
            out.extend_from_slice(b"\r\n ");
            out.extend_from_slice(piece);
            rest = r;
        }
        out.extend_from_slice(if eol.is_empty() { b"\r\n" } else { eol });
    }
    out
}
