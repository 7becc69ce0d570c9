//! Mutations of multipart bodies and leaf parts, guided by the grammar: decoy parts in
//! preamble and epilogue, lines that look like delimiters, delimiter and closing-line
//! variants, delimiters written with another reading of the boundary, extra and nested
//! parts; transfer encodings and malformed header blocks in leaves.

use super::Gen;
use super::body::{self, Child, Leaf, MARKER, Multi, Node};

/// Applies up to six multipart mutations.
pub fn multi(g: &mut Gen<'_, '_>, m: &mut Multi) {
    let mut round = 0;
    while g.again(&mut round, 6) {
        let x = m
            .readings
            .get(g.pick(m.readings.len()))
            .cloned()
            .unwrap_or_default();
        let b = m.readings.first().cloned().unwrap_or_default();
        match g.pick(10) {
            0 => {
                g.tag("body:decoy-part-in-preamble");
                let block = decoy_block(g, &x);
                m.preamble.extend(block);
            }
            1 => {
                g.tag("body:decoy-part-in-epilogue");
                let block = decoy_block(g, &x);
                m.epilogue.extend(block);
            }
            2 => {
                g.tag("body:decoy-part-after-a-part");
                let block = decoy_block(g, &x);
                let i = g.pick(m.children.len());
                if let Some(c) = m.children.get_mut(i) {
                    c.trailer.extend(block);
                }
            }
            3 => odd_line(g, m, &b, &x),
            4 => delimiter_suffix(g, m),
            5 => close_variant(g, m),
            6 => {
                g.tag("body:extra-text-part");
                let node = body::marker_part(g);
                let at = g.pick(m.children.len() + 1);
                let delimiter = [b"--", b.as_slice()].concat();
                m.children.insert(
                    at,
                    Child {
                        delimiter,
                        node,
                        trailer: Vec::new(),
                    },
                );
            }
            7 if x != b => {
                g.tag("delim:other-reading-of-boundary");
                for c in &mut m.children {
                    c.delimiter = [b"--", x.as_slice()].concat();
                }
                m.close = Some([b"--", x.as_slice(), b"--"].concat());
            }
            8 => nest_child(g, m),
            _ => {
                g.tag("body:blank-preamble");
                m.preamble.push(Vec::new());
            }
        }
    }
}

/// A text part delimited by `x`, with or without its own closing line.
fn decoy_block(g: &mut Gen<'_, '_>, x: &[u8]) -> Vec<Vec<u8>> {
    let mut lines = vec![[b"--", x].concat()];
    match g.pick(3) {
        0 => lines.push(b"Content-Type: text/plain".to_vec()),
        1 => g.tag("body:decoy-part-without-headers"),
        _ => lines.push(b"Content-Type: text/plain; charset=utf-8".to_vec()),
    }
    lines.push(Vec::new());
    lines.push(MARKER.to_vec());
    if g.flag() {
        g.tag("body:decoy-part-unclosed");
    } else {
        lines.push([b"--", x, b"--"].concat());
    }
    lines
}

/// A line that looks like a delimiter (or is long, or holds NUL) in preamble, epilogue or
/// after a part.
fn odd_line(g: &mut Gen<'_, '_>, m: &mut Multi, b: &[u8], x: &[u8]) {
    let l: Vec<u8> = match g.pick(9) {
        0 => {
            g.tag("line:delimiter-with-trailing-space");
            [b"--", b, b" "].concat()
        }
        1 => {
            g.tag("line:delimiter-prefix");
            [b"--", b, b"X"].concat()
        }
        2 => {
            g.tag("line:closing-delimiter");
            [b"--", b, b"--"].concat()
        }
        3 => {
            g.tag("line:delimiter-of-other-reading");
            [b"--", x].concat()
        }
        4 => {
            g.tag("line:closing-of-other-reading");
            [b"--", x, b"--"].concat()
        }
        5 => {
            g.tag("line:marker");
            MARKER.to_vec()
        }
        6 => {
            g.tag("line:delimiter");
            [b"--", b].concat()
        }
        7 => {
            g.tag("postfix:long-body-line");
            let len = 990 + g.pick(40);
            [vec![b'a'; len], b"--".to_vec(), x.to_vec()].concat()
        }
        _ => {
            g.tag("postfix:nul-in-body");
            b"a\0b".to_vec()
        }
    };
    match g.pick(3) {
        0 => m.preamble.push(l),
        1 => m.epilogue.push(l),
        _ => {
            let i = g.pick(m.children.len());
            if let Some(c) = m.children.get_mut(i) {
                c.trailer.push(l);
            }
        }
    }
}

/// Transport padding or other text after a delimiter.
fn delimiter_suffix(g: &mut Gen<'_, '_>, m: &mut Multi) {
    let i = g.pick(m.children.len());
    let suffix: &[u8] = match g.pick(4) {
        0 => {
            g.tag("delim:trailing-white-space");
            b" \t"
        }
        1 => {
            g.tag("delim:trailing-text");
            b"X"
        }
        2 => {
            g.tag("delim:closing-form");
            b"--"
        }
        _ => {
            g.tag("delim:trailing-white-space");
            b" "
        }
    };
    if let Some(c) = m.children.get_mut(i) {
        c.delimiter.extend_from_slice(suffix);
    }
}

fn close_variant(g: &mut Gen<'_, '_>, m: &mut Multi) {
    match g.pick(4) {
        0 => {
            g.tag("delim:no-closing-line");
            m.close = None;
        }
        1 => {
            g.tag("delim:closing-with-trailing-space");
            if let Some(c) = &mut m.close {
                c.push(b' ');
            }
        }
        2 => {
            g.tag("delim:closing-with-trailing-text");
            if let Some(c) = &mut m.close {
                c.push(b'X');
            }
        }
        _ => {
            g.tag("delim:closing-line-twice");
            if let Some(c) = m.close.clone() {
                m.epilogue.insert(0, c);
            }
        }
    }
}

/// Puts child `i` (or the marker part) inside a nested `multipart/mixed`.
fn nest_child(g: &mut Gen<'_, '_>, m: &mut Multi) {
    g.tag("body:nested-multipart");
    let i = g.pick(m.children.len());
    if i >= m.children.len() {
        return;
    }
    let child = m.children.remove(i);
    let mut inner = vec![child.node];
    if g.flag() {
        inner.push(body::marker_part(g));
    }
    let nested = body::multi(g, "multipart/mixed", &[], inner);
    m.children.insert(
        i,
        Child {
            delimiter: child.delimiter,
            node: Node::Multi(nested),
            trailer: child.trailer,
        },
    );
}

/// Applies up to three leaf mutations.
pub fn leaf(g: &mut Gen<'_, '_>, leaf: &mut Leaf) {
    let mut round = 0;
    while g.again(&mut round, 3) {
        match g.pick(10) {
            0 | 1 => transfer_encoding(g, leaf),
            2 => {
                g.tag("part:second-content-type");
                let name = if g.flag() {
                    "content-type"
                } else {
                    "Content-Type"
                };
                let at = g.pick(leaf.headers.len() + 1);
                leaf.headers
                    .insert(at, format!("{name}: text/plain").into_bytes());
            }
            3 => {
                g.tag("part:line-without-colon");
                let at = g.pick(leaf.headers.len() + 1);
                leaf.headers.insert(at, b"X-No-Colon".to_vec());
            }
            4 => {
                g.tag("part:continuation-line-first");
                leaf.headers.insert(0, b" x".to_vec());
            }
            5 => {
                g.tag("part:no-header-fields");
                leaf.headers.clear();
            }
            6 => {
                g.tag("part:nul-in-header");
                let i = g.pick(leaf.headers.len());
                if let Some(h) = leaf.headers.get_mut(i) {
                    let at = g.pick(h.len() + 1);
                    h.insert(at, 0);
                }
            }
            7 => {
                g.tag("part:fold");
                let i = g.pick(leaf.headers.len());
                if let Some(h) = leaf.headers.get_mut(i) {
                    body::fold(g, h);
                }
            }
            8 => {
                g.tag("part:marker-in-body");
                leaf.body.extend_from_slice(MARKER);
                leaf.body.extend_from_slice(b"\r\n");
            }
            _ => {
                g.tag("part:8bit-header");
                leaf.headers.push(b"Content-Description: caf\xe9".to_vec());
            }
        }
    }
}

/// A `Content-Transfer-Encoding` field, with the body encoded to match or not.
fn transfer_encoding(g: &mut Gen<'_, '_>, leaf: &mut Leaf) {
    let (label, body) = match g.pick(6) {
        0 => ("base64", body::base64_lines(&leaf.body)),
        1 => ("BASE64 (x)", body::base64_lines(&leaf.body)),
        2 => ("quoted-printable", body::quoted_printable(g, &leaf.body)),
        3 => ("8bit", leaf.body.clone()),
        4 => ("x-uuencode", leaf.body.clone()),
        _ => ("base64", leaf.body.clone()),
    };
    g.tag(match label {
        "base64" | "BASE64 (x)" => "part:cte-base64",
        "quoted-printable" => "part:cte-quoted-printable",
        _ => "part:cte-other",
    });
    leaf.headers
        .push(format!("Content-Transfer-Encoding: {label}").into_bytes());
    leaf.body = body;
}
