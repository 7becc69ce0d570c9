//! Line framing for the dict protocol, with a length limit.
//!
//! A line longer than the limit is an error that closes that connection: it is never cut
//! short and parsed as something else, and the buffer never grows past the limit. Blank
//! lines are skipped (the reference closes the connection on them).

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use super::proto::{ProtoError, Request, parse_request};

/// Dovecot's own dict client limit on a command line.
pub const MAX_LINE: usize = 64 * 1024;

/// Why a connection must be closed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// A line exceeded the limit.
    #[error("request line longer than {0} bytes")]
    LineTooLong(usize),
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Splits the byte stream into parsed requests.
#[derive(Debug, Clone)]
pub struct DictCodec {
    max_line: usize,
    /// How far the current buffer has been searched for LF already.
    scanned: usize,
}

impl DictCodec {
    /// A codec that refuses lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        DictCodec {
            max_line,
            scanned: 0,
        }
    }
}

impl Default for DictCodec {
    fn default() -> Self {
        DictCodec::new(MAX_LINE)
    }
}

impl Decoder for DictCodec {
    type Item = Result<Request, ProtoError>;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, CodecError> {
        loop {
            let unscanned = buf.get(self.scanned..).unwrap_or_default();
            let Some(pos) = memchr_lf(unscanned) else {
                self.scanned = buf.len();
                if buf.len() > self.max_line {
                    return Err(CodecError::LineTooLong(self.max_line));
                }
                return Ok(None);
            };
            let end = self.scanned + pos;
            self.scanned = 0;
            if end > self.max_line {
                return Err(CodecError::LineTooLong(self.max_line));
            }
            let line = buf.split_to(end + 1);
            match parse_request(line.get(..end).unwrap_or_default()) {
                Err(e) if e.command == 0 => continue,
                other => return Ok(Some(other)),
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, CodecError> {
        if let Some(item) = self.decode(buf)? {
            return Ok(Some(item));
        }
        // A last request without LF is still answered, as the reference's readline does.
        if buf.is_empty() {
            return Ok(None);
        }
        let line = buf.split();
        self.scanned = 0;
        match parse_request(&line) {
            Err(e) if e.command == 0 => Ok(None),
            other => Ok(Some(other)),
        }
    }
}

fn memchr_lf(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| *b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut DictCodec, input: &[u8]) -> Vec<Result<Request, ProtoError>> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            out.push(item);
        }
        out
    }

    #[test]
    fn splits_lines_and_skips_blank_ones() {
        let mut c = DictCodec::default();
        let items = decode_all(&mut c, b"H3\t2\t0\t\tauth\n\n  \nC1\nL");
        assert_eq!(items.len(), 2);
        assert_eq!(items[1], Ok(Request::Commit { tid: "1".into() }));
    }

    #[test]
    fn partial_line_waits_then_completes() {
        let mut c = DictCodec::default();
        let mut buf = BytesMut::from(&b"Lshared/"[..]);
        assert!(c.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"x\n");
        assert!(matches!(
            c.decode(&mut buf).unwrap(),
            Some(Ok(Request::Lookup { .. }))
        ));
        assert!(buf.is_empty());
    }

    #[test]
    fn limit_and_limit_plus_one() {
        let mut c = DictCodec::new(8);
        let mut ok = BytesMut::from(&b"L1234567\n"[..]);
        assert!(c.decode(&mut ok).unwrap().is_some());
        let mut long = BytesMut::from(&b"L12345678\n"[..]);
        assert!(matches!(
            c.decode(&mut long),
            Err(CodecError::LineTooLong(8))
        ));
        let mut c = DictCodec::new(8);
        let mut endless = BytesMut::from(&b"L123456789"[..]);
        assert!(matches!(
            c.decode(&mut endless),
            Err(CodecError::LineTooLong(8))
        ));
    }

    #[test]
    fn last_line_without_lf_at_eof() {
        let mut c = DictCodec::default();
        let mut buf = BytesMut::from(&b"C5"[..]);
        assert!(c.decode(&mut buf).unwrap().is_none());
        assert_eq!(
            c.decode_eof(&mut buf).unwrap(),
            Some(Ok(Request::Commit { tid: "5".into() }))
        );
    }
}
