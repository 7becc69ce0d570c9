//! Bodies: multipart trees with delimiters, preambles and epilogues, leaves with their
//! header blocks, and the canonical content of each kind of message; then the mutations
//! that hide a text part from one reader and show it to another.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::Gen;
use super::params::content_type;
use super::payload;
use super::text;

/// The cleartext a confused reader would show: no accepted message may show it in a
/// `text/*` part.
pub const MARKER: &[u8] = b"CLEARTEXT-SPAM";

/// Boundaries: the first is what Delta Chat writes; some are prefixes of others, some
/// end in `--`, some need quoting.
const BOUNDARIES: &[&str] = &[
    "Gl92xgZjOShJ5PGHntqYkoo2OK2Dvi",
    "Gl92xgZj",
    "Gl92xgZjOShJ5PGHntqYkoo2OK2Dvi-",
    "Gl92xgZjOShJ5PGHntqYkoo2OK2Dvi--",
    "b",
    "b1",
    "b--",
    "b b",
    "=_b",
    "b;c",
    "b=c",
    "b\"c",
    "b?=",
    "b:c",
];

/// A MIME entity.
pub enum Node {
    Leaf(Leaf),
    Multi(Multi),
}

/// A non-multipart entity: header fields (without CRLF) and the body bytes.
pub struct Leaf {
    pub headers: Vec<Vec<u8>>,
    pub body: Vec<u8>,
}

/// A multipart entity as written: every line without its CRLF.
pub struct Multi {
    pub headers: Vec<Vec<u8>>,
    /// Strings a reader may take for the boundary (see [`params::ContentType`]).
    pub readings: Vec<Vec<u8>>,
    pub preamble: Vec<Vec<u8>>,
    pub children: Vec<Child>,
    pub close: Option<Vec<u8>>,
    pub epilogue: Vec<Vec<u8>>,
}

/// A delimiter line, the entity after it and lines appended to its body.
pub struct Child {
    pub delimiter: Vec<u8>,
    pub node: Node,
    pub trailer: Vec<Vec<u8>>,
}

impl Node {
    /// Header block, empty line, body.
    pub fn write(&self, out: &mut Vec<u8>) {
        let headers = match self {
            Node::Leaf(l) => &l.headers,
            Node::Multi(m) => &m.headers,
        };
        for h in headers {
            line(out, h);
        }
        out.extend_from_slice(b"\r\n");
        match self {
            Node::Leaf(l) => out.extend_from_slice(&l.body),
            Node::Multi(m) => m.write_body(out),
        }
    }
}

impl Multi {
    /// Preamble, each child after its delimiter line, closing line, epilogue.
    pub fn write_body(&self, out: &mut Vec<u8>) {
        for l in &self.preamble {
            line(out, l);
        }
        for c in &self.children {
            line(out, &c.delimiter);
            c.node.write(out);
            if !out.ends_with(b"\r\n") {
                out.extend_from_slice(b"\r\n");
            }
            for l in &c.trailer {
                line(out, l);
            }
        }
        if let Some(close) = &self.close {
            line(out, close);
        }
        for l in &self.epilogue {
            line(out, l);
        }
    }
}

fn line(out: &mut Vec<u8>, l: &[u8]) {
    out.extend_from_slice(l);
    out.extend_from_slice(b"\r\n");
}

/// RFC 3156: the version part and the armored payload.
pub fn encrypted(g: &mut Gen<'_, '_>, outgoing: bool) -> Multi {
    let version = leaf(
        g,
        "application/pgp-encrypted",
        &[],
        &["Content-Description: PGP/MIME version identification"],
        b"Version: 1\r\n\r\n".to_vec(),
    );
    let armored = payload::armored(g, outgoing);
    let payload = leaf(
        g,
        "application/octet-stream",
        &[("name", "encrypted.asc", true)],
        &[
            "Content-Description: OpenPGP encrypted message",
            "Content-Disposition: inline; filename=\"encrypted.asc\";",
        ],
        armored,
    );
    let proto = [("protocol", "application/pgp-encrypted", true)];
    multi(g, "multipart/encrypted", &proto, vec![version, payload])
}

/// A securejoin request: one text part.
pub fn securejoin(g: &mut Gen<'_, '_>) -> Multi {
    let body = match g.pick(4) {
        1 => "Secure-Join: vg-request\r\n",
        2 => "secure-join: vc-request\r\n\r\n",
        _ => "Secure-Join: vc-request\r\n",
    };
    let text = leaf(
        g,
        "text/plain",
        &[("charset", "utf-8", false)],
        &[],
        body.into(),
    );
    multi(g, "multipart/mixed", &[], vec![text])
}

/// An RFC 3464 delivery report, with or without the returned message.
pub fn report(g: &mut Gen<'_, '_>) -> Multi {
    let text = leaf(
        g,
        "text/plain",
        &[("charset", "us-ascii", false)],
        &[],
        b"The following address had permanent fatal errors: <x@remote.example>\r\n".to_vec(),
    );
    let status = leaf(
        g,
        "message/delivery-status",
        &[],
        &[],
        b"Reporting-MTA: dns; remote.example\r\n\r\nFinal-Recipient: rfc822; x@remote.example\r\nAction: failed\r\nStatus: 5.1.1\r\n".to_vec(),
    );
    let mut children = vec![text, status];
    if g.pick(3) != 1 {
        let returned = if g.flag() {
            "text/rfc822-headers"
        } else {
            "message/rfc822"
        };
        children.push(leaf(
            g,
            returned,
            &[],
            &[],
            b"From: <bob@example.org>\r\nSubject: hi\r\n\r\nhello\r\n".to_vec(),
        ));
    }
    let rt = [("report-type", "delivery-status", false)];
    multi(g, "multipart/report", &rt, children)
}

/// An Autocrypt Setup Message: description and the armored setup file.
pub fn setup(g: &mut Gen<'_, '_>) -> Multi {
    let text = leaf(
        g,
        "text/plain",
        &[],
        &[],
        b"This message contains all information to transfer your Autocrypt\r\nsettings.\r\n"
            .to_vec(),
    );
    let file = leaf(
        g,
        "application/autocrypt-setup",
        &[],
        &["Content-Disposition: attachment; filename=\"autocrypt-setup-message.html\""],
        payload::setup_file(),
    );
    multi(g, "multipart/mixed", &[], vec![text, file])
}

/// A leaf with its header block, then the leaf mutations.
fn leaf(
    g: &mut Gen<'_, '_>,
    media: &str,
    params: &[(&str, &str, bool)],
    extra: &[&str],
    body: Vec<u8>,
) -> Node {
    let ct = content_type(g, media, params, None);
    let mut headers: Vec<Vec<u8>> = extra.iter().map(|h| h.as_bytes().to_vec()).collect();
    headers.push(ct.field);
    let mut leaf = Leaf { headers, body };
    super::mutate::leaf(g, &mut leaf);
    Node::Leaf(leaf)
}

/// A multipart of `nodes` with a boundary from the pool and decoy parameters naming
/// another, then the multipart mutations.
pub fn multi(
    g: &mut Gen<'_, '_>,
    media: &str,
    params: &[(&str, &str, bool)],
    nodes: Vec<Node>,
) -> Multi {
    let bi = g.pick(BOUNDARIES.len());
    let di = (bi + 1 + g.pick(BOUNDARIES.len() - 1)) % BOUNDARIES.len();
    let b = BOUNDARIES.get(bi).copied().unwrap_or("b").as_bytes();
    let d = BOUNDARIES.get(di).copied().unwrap_or("a").as_bytes();
    if !b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(c))
    {
        g.tag("boundary:outside-rfc2046-characters");
    }
    let ct = content_type(g, media, params, Some((b, d)));
    let delimiter = [b"--", b].concat();
    let children = nodes
        .into_iter()
        .map(|node| Child {
            delimiter: delimiter.clone(),
            node,
            trailer: Vec::new(),
        })
        .collect();
    let mut m = Multi {
        headers: vec![ct.field],
        readings: ct.readings,
        preamble: Vec::new(),
        children,
        close: Some([delimiter.as_slice(), b"--"].concat()),
        epilogue: Vec::new(),
    };
    super::mutate::multi(g, &mut m);
    m
}

/// A `text/plain` part holding the marker, as an attacker would add it.
pub fn marker_part(g: &mut Gen<'_, '_>) -> Node {
    let mut body = MARKER.to_vec();
    body.extend_from_slice(b"\r\n");
    leaf(g, "text/plain", &[("charset", "utf-8", false)], &[], body)
}

/// The body in base64 lines of 76 characters.
pub fn base64_lines(body: &[u8]) -> Vec<u8> {
    let text = STANDARD.encode(body);
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(76) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The body in quoted-printable, with soft line breaks where the stream says.
pub fn quoted_printable(g: &mut Gen<'_, '_>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, l) in body.split(|&c| c == b'\n').enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        for &c in l {
            if g.pick(16) == 1 {
                out.extend_from_slice(b"=\r\n");
            }
            if c == b'=' || !(32..127).contains(&c) {
                out.extend_from_slice(format!("={c:02X}").as_bytes());
            } else {
                out.push(c);
            }
        }
    }
    out
}

/// [`text::fold`] after the colon of a header field.
pub fn fold(g: &mut Gen<'_, '_>, field: &mut Vec<u8>) {
    let start = field.iter().position(|&c| c == b':').map_or(0, |p| p + 1);
    text::fold(g, field, start);
}
