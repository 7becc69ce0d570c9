//! Dict request parsing and reply encoding; pure functions, no I/O.
//!
//! A request is one line: a command byte directly followed by TAB-separated fields, each
//! tab-escaped by Dovecot (`\x01` + `0`/`1`/`t`/`r`/`n` for NUL, `\x01`, TAB, CR, LF).
//! The reference neither unescapes nor escapes; doing both is byte-identical for every
//! value without those five characters and fixes the ones with them (SPEC §2.3).

use bytes::{BufMut, BytesMut};

/// A parsed request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `H<major>\t<minor>\t<value_type>\t<user>\t<dict_name>`: no reply.
    Hello,
    /// `L<key>[\t<user>]`: exactly one reply line.
    Lookup {
        /// The dict key, e.g. `shared/userdb/a@b`.
        key: String,
        /// The user field (absent before Dovecot 2.3.17).
        user: Option<String>,
    },
    /// `I<flags>\t<max_rows>\t<path>[\t<user>]`: rows then an empty line.
    Iterate {
        /// The key prefix to iterate.
        path: String,
        /// The user field.
        user: Option<String>,
    },
    /// `B<tid>[\t<user>]`: opens a transaction; no reply.
    Begin {
        /// Transaction id, unique per connection only.
        tid: String,
        /// The user the transaction acts for.
        user: Option<String>,
    },
    /// `S<tid>\t<key>[\t<value>]`: no reply.
    Set {
        /// Transaction id.
        tid: String,
        /// The key.
        key: String,
        /// The value (empty if absent).
        value: String,
    },
    /// `C<tid>` or the legacy async `D<tid>`: replies `O` or `F`.
    Commit {
        /// Transaction id.
        tid: String,
    },
    /// `R<tid>`: discards the transaction; no reply.
    Rollback {
        /// Transaction id.
        tid: String,
    },
    /// `U`, `A`, `T` and anything else: ignored, no reply.
    Other {
        /// The command byte.
        command: u8,
    },
}

/// A request line that cannot be used. Carries what the server needs to still answer
/// in protocol: the command byte and, when readable, the transaction id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad dict request (command {command:?}, transaction {tid:?}): {reason}")]
pub struct ProtoError {
    /// The command byte (0 for an empty line).
    pub command: u8,
    /// The transaction id, lossily decoded, for `S`/`C`/`D`/`R`.
    pub tid: Option<String>,
    /// What is wrong.
    pub reason: &'static str,
}

/// The answer to a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// `O<value>`.
    Found(String),
    /// `N`.
    NotFound,
    /// `F`: our side failed or the key is malformed.
    Failed,
}

/// Parses one request line (without its LF). Surrounding whitespace is stripped as the
/// reference does, so stored values stay identical. An empty line is an error with
/// command 0, which the server ignores.
pub fn parse_request(line: &[u8]) -> Result<Request, ProtoError> {
    let line = line.trim_ascii();
    let Some((&command, rest)) = line.split_first() else {
        return Err(ProtoError {
            command: 0,
            tid: None,
            reason: "empty line",
        });
    };
    let err = |reason, tid: Option<&[u8]>| ProtoError {
        command,
        tid: tid.map(|t| String::from_utf8_lossy(t).into_owned()),
        reason,
    };
    let raw: Vec<&[u8]> = rest.split(|b| *b == b'\t').collect();
    let first = raw.first().copied();
    let mut fields = Vec::with_capacity(raw.len());
    for f in &raw {
        let bytes = unescape(f).ok_or_else(|| err("bad escape sequence", first))?;
        let s = String::from_utf8(bytes).map_err(|_| err("invalid UTF-8", first))?;
        fields.push(s);
    }
    let mut fields = fields.into_iter();
    let mut next = || fields.next();
    Ok(match command {
        b'H' => Request::Hello,
        b'L' => Request::Lookup {
            key: next().unwrap_or_default(),
            user: next(),
        },
        b'I' => {
            let (_flags, _max_rows) = (next(), next());
            let path = next().ok_or_else(|| err("iterate without path", None))?;
            Request::Iterate { path, user: next() }
        }
        b'B' => Request::Begin {
            tid: next().unwrap_or_default(),
            user: next(),
        },
        b'S' => {
            let tid = next().unwrap_or_default();
            let key = next().ok_or_else(|| err("set without key", first))?;
            Request::Set {
                tid,
                key,
                value: next().unwrap_or_default(),
            }
        }
        b'C' | b'D' => Request::Commit {
            tid: next().unwrap_or_default(),
        },
        b'R' => Request::Rollback {
            tid: next().unwrap_or_default(),
        },
        other => Request::Other { command: other },
    })
}

/// Undoes Dovecot's tab-escaping; `None` on a `\x01` not followed by `0`, `1`, `t`, `r`
/// or `n`.
pub fn unescape(field: &[u8]) -> Option<Vec<u8>> {
    if !field.contains(&1) {
        return Some(field.to_vec());
    }
    let mut out = Vec::with_capacity(field.len());
    let mut bytes = field.iter();
    while let Some(&b) = bytes.next() {
        if b != 1 {
            out.push(b);
            continue;
        }
        out.push(match bytes.next()? {
            b'0' => 0,
            b'1' => 1,
            b't' => b'\t',
            b'r' => b'\r',
            b'n' => b'\n',
            _ => return None,
        });
    }
    Some(out)
}

/// Appends `value` tab-escaped.
pub fn escape_into(value: &str, out: &mut BytesMut) {
    for &b in value.as_bytes() {
        match b {
            0 => out.put_slice(b"\x010"),
            1 => out.put_slice(b"\x011"),
            b'\t' => out.put_slice(b"\x01t"),
            b'\r' => out.put_slice(b"\x01r"),
            b'\n' => out.put_slice(b"\x01n"),
            b => out.put_u8(b),
        }
    }
}

/// A reply line (or, for iteration, several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The answer to a lookup.
    Lookup(Lookup),
    /// One row of an iteration: `O<key>\t<value>`.
    Row(String, String),
    /// The end of an iteration: an empty line.
    IterEnd,
    /// The answer to a commit.
    Commit(bool),
}

/// Appends the wire form of `reply`.
pub fn encode_reply(reply: &Reply, out: &mut BytesMut) {
    match reply {
        Reply::Lookup(Lookup::Found(v)) => {
            out.put_u8(b'O');
            escape_into(v, out);
        }
        Reply::Lookup(Lookup::NotFound) => out.put_u8(b'N'),
        Reply::Lookup(Lookup::Failed) | Reply::Commit(false) => out.put_u8(b'F'),
        Reply::Commit(true) => out.put_u8(b'O'),
        Reply::Row(k, v) => {
            out.put_u8(b'O');
            escape_into(k, out);
            out.put_u8(b'\t');
            escape_into(v, out);
        }
        Reply::IterEnd => {}
    }
    out.put_u8(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &[u8]) -> Request {
        parse_request(line).unwrap()
    }

    fn s(x: &str) -> String {
        x.to_owned()
    }

    #[test]
    fn parses_every_command() {
        assert_eq!(p(b"H3\t2\t0\t\tauth"), Request::Hello);
        assert_eq!(
            p(b"Lshared/userdb/a@b\ta@b"),
            Request::Lookup {
                key: s("shared/userdb/a@b"),
                user: Some(s("a@b"))
            }
        );
        assert_eq!(
            p(b"Lshared/x"),
            Request::Lookup {
                key: s("shared/x"),
                user: None
            }
        );
        assert_eq!(
            p(b"I0\t0\tshared/userdb/"),
            Request::Iterate {
                path: s("shared/userdb/"),
                user: None
            }
        );
        assert_eq!(
            p(b"B1\tu@x"),
            Request::Begin {
                tid: s("1"),
                user: Some(s("u@x"))
            }
        );
        assert_eq!(
            p(b"B1"),
            Request::Begin {
                tid: s("1"),
                user: None
            }
        );
        assert_eq!(
            p(b"S1\tshared/last-login/u@x\t1700000123"),
            Request::Set {
                tid: s("1"),
                key: s("shared/last-login/u@x"),
                value: s("1700000123")
            }
        );
        assert_eq!(
            p(b"S1\tpriv/g/messagenew"),
            Request::Set {
                tid: s("1"),
                key: s("priv/g/messagenew"),
                value: s("")
            }
        );
        assert_eq!(p(b"C1"), Request::Commit { tid: s("1") });
        assert_eq!(p(b"D7"), Request::Commit { tid: s("7") });
        assert_eq!(p(b"R1"), Request::Rollback { tid: s("1") });
        assert_eq!(p(b"U1\tkey"), Request::Other { command: b'U' });
        assert_eq!(
            p(b"  C1 \r"),
            Request::Commit { tid: s("1") },
            "stripped like the reference"
        );
    }

    #[test]
    fn errors_keep_command_and_tid() {
        let e = parse_request(b"").unwrap_err();
        assert_eq!(e.command, 0);
        let e = parse_request(b" \t\r").unwrap_err();
        assert_eq!(e.command, 0);
        let e = parse_request(b"Lshared/\xff\tu").unwrap_err();
        assert_eq!((e.command, e.reason), (b'L', "invalid UTF-8"));
        let e = parse_request(b"S9\tkey\t\xc3").unwrap_err();
        assert_eq!(e.tid.as_deref(), Some("9"));
        let e = parse_request(b"S9").unwrap_err();
        assert_eq!((e.command, e.tid.as_deref()), (b'S', Some("9")));
        let e = parse_request(b"Lk\x01x").unwrap_err();
        assert_eq!(e.reason, "bad escape sequence");
        assert!(parse_request(b"Lk\x01").is_err());
        assert!(parse_request(b"I0\t0").is_err());
    }

    #[test]
    fn escape_round_trip() {
        let all = "a\0b\x01c\td\re\nf\\g\"ä";
        let mut out = BytesMut::new();
        escape_into(all, &mut out);
        assert!(!out.contains(&b'\t') && !out.contains(&b'\n') && !out.contains(&0));
        assert_eq!(unescape(&out).unwrap(), all.as_bytes());
        assert_eq!(
            p(b"S1\tk\tv\x01tw"),
            Request::Set {
                tid: s("1"),
                key: s("k"),
                value: s("v\tw")
            }
        );
    }

    #[test]
    fn encodes_replies() {
        let mut out = BytesMut::new();
        for r in [
            Reply::Lookup(Lookup::Found(s("x\ty"))),
            Reply::Lookup(Lookup::NotFound),
            Reply::Lookup(Lookup::Failed),
            Reply::Row(s("shared/userdb/a@b"), s("")),
            Reply::IterEnd,
            Reply::Commit(true),
            Reply::Commit(false),
        ] {
            encode_reply(&r, &mut out);
        }
        assert_eq!(&out[..], b"Ox\x01ty\nN\nF\nOshared/userdb/a@b\t\n\nO\nF\n");
    }

    /// What Dovecot 2.4.1 sends (captured between Dovecot and lastlogin/chatmail-metadata):
    /// protocol 4.0 in the hello, and a third field in `B`.
    #[test]
    fn parses_dovecot_24_lines() {
        assert_eq!(p(b"H4\t0\t0\t\tmetadata"), Request::Hello);
        assert_eq!(
            p(b"B1\tdictprobe@[127.0.0.1]\t0"),
            Request::Begin {
                tid: s("1"),
                user: Some(s("dictprobe@[127.0.0.1]"))
            }
        );
        assert_eq!(
            p(b"I9\t0\tpriv/30b3/\tdictprobe@[127.0.0.1]"),
            Request::Iterate {
                path: s("priv/30b3/"),
                user: Some(s("dictprobe@[127.0.0.1]"))
            }
        );
    }
}
