//! A small SMTP client for delivery to remote MX hosts (RFC 5321, RFC 3207 STARTTLS).
//!
//! It speaks exactly the dialogue SPEC §6.12 needs — greeting, `EHLO`, mandatory `STARTTLS`,
//! `EHLO`, `MAIL`, `RCPT`…, `DATA`, the already dot-stuffed message — and classifies every
//! outcome as either a remote rejection (a 4xx/5xx reply to pass back) or a connection-level
//! failure (try the next MX host). A reply the dialogue does not expect is never taken for
//! success: a server without `STARTTLS` is a failure, not its `250` EHLO reply.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::reply::Reply;

/// Connecting to all addresses of a host.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// Waiting for a reply to a command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Waiting for the reply after the final `.` (RFC 5321 §4.5.3.2.6 allows 10 minutes; Postfix
/// waits 10 minutes for us, so we must answer earlier).
const DATA_END_TIMEOUT: Duration = Duration::from_secs(300);
/// Waiting for a rejection after our write of the message failed.
const EARLY_REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// A reply line longer than this is a protocol violation, not something to buffer.
const MAX_REPLY_BYTES: usize = 64 * 1024;
/// Lines of one multi-line reply (an EHLO reply has a dozen).
const MAX_REPLY_LINES: usize = 200;

/// Why a delivery over one connection did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The remote server answered 4xx/5xx: pass its reply back to Postfix.
    Rejected(Reply),
    /// Connect, I/O, TLS or protocol failure: try the next host.
    Connection(String),
}

/// Whether `STARTTLS` is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// `STARTTLS` must be offered and succeed.
    Required,
    /// Plain SMTP (only for destinations known to offer no TLS).
    None,
}

/// How to reach and authenticate one MX host.
#[derive(Debug, Clone)]
pub struct Target {
    /// The MX host name (or the IP of a domain literal), for TLS verification and logs.
    pub host: String,
    /// The addresses to connect to, all tried in parallel.
    pub addrs: Vec<IpAddr>,
    /// The destination port (25 in production).
    pub port: u16,
    /// `STARTTLS` requirement.
    pub tls: TlsMode,
    /// TLS client configuration (verifying or not, by destination).
    pub tls_config: Arc<ClientConfig>,
}

/// One envelope and message to send.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// The reverse path, empty for the null sender.
    pub sender: &'a str,
    /// Recipients, all of one domain.
    pub recipients: &'a [String],
    /// The message in wire form: dot-stuffed, ending with the `.` line.
    pub wire: &'a [u8],
    /// The client asked for SMTPUTF8.
    pub smtputf8: bool,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An established session, ready for `MAIL FROM` (or `RSET` when reused).
pub struct SmtpConn {
    io: Box<dyn Io>,
    buf: BytesMut,
    ext_8bitmime: bool,
    ext_smtputf8: bool,
    ext_size: bool,
    /// When the connection last finished a transaction (for idle reuse).
    pub idle_since: Instant,
}

impl std::fmt::Debug for SmtpConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConn")
            .field("idle_since", &self.idle_since)
            .finish()
    }
}

/// A reply as read from the server: code and the text of every line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    /// The code of the last line.
    pub code: u16,
    /// The text of each line, without code and separator.
    pub lines: Vec<String>,
}

impl ServerReply {
    fn to_reply(&self) -> Reply {
        Reply::new(self.code, self.lines.join(" "))
    }

    /// A 4xx/5xx becomes a rejection, anything else unexpected a protocol failure.
    fn unexpected(&self, step: &str) -> Failure {
        if (400..600).contains(&self.code) {
            Failure::Rejected(self.to_reply())
        } else {
            Failure::Connection(format!("unexpected reply to {step}: {}", self.to_reply()))
        }
    }

    fn has_keyword(&self, keyword: &str) -> bool {
        self.lines.iter().skip(1).any(|l| {
            l.split_ascii_whitespace()
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case(keyword))
        })
    }
}

/// Parses one reply line (without CRLF): code, whether more lines follow, and the text.
pub fn parse_reply_line(line: &[u8]) -> Option<(u16, bool, String)> {
    let code = line.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code: u16 = std::str::from_utf8(code).ok()?.parse().ok()?;
    if !(200..600).contains(&code) {
        return None;
    }
    let (more, text) = match line.get(3) {
        None => (false, &[][..]),
        Some(b'-') => (true, line.get(4..)?),
        Some(b' ') => (false, line.get(4..)?),
        Some(_) => return None,
    };
    Some((code, more, String::from_utf8_lossy(text).into_owned()))
}

async fn read_reply<S: AsyncRead + Unpin + ?Sized>(
    io: &mut S,
    buf: &mut BytesMut,
    timeout: Duration,
) -> Result<ServerReply, Failure> {
    let read = async {
        let mut lines = Vec::new();
        loop {
            if let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                let line = buf.split_to(pos + 1);
                let line = line.strip_suffix(b"\n").unwrap_or(&line);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let (code, more, text) = parse_reply_line(line).ok_or_else(|| {
                    Failure::Connection(format!(
                        "malformed reply line: {}",
                        String::from_utf8_lossy(line.get(..line.len().min(100)).unwrap_or(&[]))
                    ))
                })?;
                lines.push(text);
                if lines.len() > MAX_REPLY_LINES {
                    return Err(Failure::Connection("reply has too many lines".to_owned()));
                }
                if !more {
                    return Ok(ServerReply { code, lines });
                }
                continue;
            }
            if buf.len() > MAX_REPLY_BYTES {
                return Err(Failure::Connection("reply too long".to_owned()));
            }
            let n = io
                .read_buf(buf)
                .await
                .map_err(|e| Failure::Connection(format!("read: {e}")))?;
            if n == 0 {
                return Err(Failure::Connection(
                    "connection closed by server".to_owned(),
                ));
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| Failure::Connection("timeout waiting for reply".to_owned()))?
}

async fn write<S: AsyncWrite + Unpin + ?Sized>(io: &mut S, data: &[u8]) -> Result<(), Failure> {
    let w = async {
        io.write_all(data).await?;
        io.flush().await
    };
    match tokio::time::timeout(COMMAND_TIMEOUT, w).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure::Connection(format!("write: {e}"))),
        Err(_) => Err(Failure::Connection("write timed out".to_owned())),
    }
}

async fn command<S: AsyncRead + AsyncWrite + Unpin + ?Sized>(
    io: &mut S,
    buf: &mut BytesMut,
    line: &str,
) -> Result<ServerReply, Failure> {
    write(io, format!("{line}\r\n").as_bytes()).await?;
    read_reply(io, buf, COMMAND_TIMEOUT).await
}

/// Connects to every address at once; the first established connection wins.
async fn connect_any(addrs: &[IpAddr], port: u16) -> Result<TcpStream, Failure> {
    if addrs.is_empty() {
        return Err(Failure::Connection("no address".to_owned()));
    }
    let mut set = JoinSet::new();
    for &ip in addrs {
        set.spawn(TcpStream::connect(SocketAddr::new(ip, port)));
    }
    let race = async {
        let mut last = String::from("no address");
        while let Some(res) = set.join_next().await {
            match res {
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(e)) => last = format!("connect: {e}"),
                Err(e) => last = format!("connect task: {e}"),
            }
        }
        Err(Failure::Connection(last))
    };
    // Dropping the set aborts the attempts that lost the race.
    tokio::time::timeout(CONNECT_TIMEOUT, race)
        .await
        .map_err(|_| Failure::Connection("connect timed out".to_owned()))?
}

impl SmtpConn {
    /// Connects, greets, and (unless `TlsMode::None`) upgrades with `STARTTLS`.
    pub async fn open(target: &Target, ehlo_name: &str) -> Result<SmtpConn, Failure> {
        let mut tcp = connect_any(&target.addrs, target.port).await?;
        // The final "." goes out with the last message bytes; no Nagle delay on small writes.
        tcp.set_nodelay(true)
            .map_err(|e| Failure::Connection(format!("socket: {e}")))?;
        let mut buf = BytesMut::with_capacity(4096);
        let greeting = read_reply(&mut tcp, &mut buf, COMMAND_TIMEOUT).await?;
        if greeting.code != 220 {
            return Err(Failure::Connection(format!(
                "greeting: {}",
                greeting.to_reply()
            )));
        }
        let ehlo = format!("EHLO {ehlo_name}");
        let hello = command(&mut tcp, &mut buf, &ehlo).await?;
        if hello.code != 250 {
            return Err(Failure::Connection(format!("EHLO: {}", hello.to_reply())));
        }
        if target.tls == TlsMode::None {
            return Ok(SmtpConn::new(Box::new(tcp), buf, &hello));
        }
        if !hello.has_keyword("STARTTLS") {
            return Err(Failure::Connection(
                "server does not offer STARTTLS".to_owned(),
            ));
        }
        let reply = command(&mut tcp, &mut buf, "STARTTLS").await?;
        if reply.code != 220 {
            return Err(Failure::Connection(format!(
                "STARTTLS: {}",
                reply.to_reply()
            )));
        }
        if !buf.is_empty() {
            // RFC 3207 §5: anything sent before the handshake could be injected by an attacker.
            return Err(Failure::Connection("data after STARTTLS reply".to_owned()));
        }
        let name = ServerName::try_from(target.host.clone())
            .map_err(|e| Failure::Connection(format!("TLS server name: {e}")))?;
        let handshake = TlsConnector::from(target.tls_config.clone()).connect(name, tcp);
        let mut tls = tokio::time::timeout(COMMAND_TIMEOUT, handshake)
            .await
            .map_err(|_| Failure::Connection("TLS handshake timed out".to_owned()))?
            .map_err(|e| Failure::Connection(format!("TLS: {e}")))?;
        let hello = command(&mut tls, &mut buf, &ehlo).await?;
        if hello.code != 250 {
            return Err(Failure::Connection(format!(
                "EHLO after STARTTLS: {}",
                hello.to_reply()
            )));
        }
        Ok(SmtpConn::new(Box::new(tls), buf, &hello))
    }

    fn new(io: Box<dyn Io>, buf: BytesMut, hello: &ServerReply) -> Self {
        SmtpConn {
            io,
            buf,
            ext_8bitmime: hello.has_keyword("8BITMIME"),
            ext_smtputf8: hello.has_keyword("SMTPUTF8"),
            ext_size: hello.has_keyword("SIZE"),
            idle_since: Instant::now(),
        }
    }

    /// `RSET` before reusing an idle connection; `false` means the connection is unusable.
    pub async fn reset(&mut self) -> bool {
        matches!(command(&mut self.io, &mut self.buf, "RSET").await, Ok(r) if r.code == 250)
    }

    /// Sends one message. `Ok` only after the server's `250` to the final `.`.
    pub async fn send(&mut self, env: Envelope<'_>) -> Result<(), Failure> {
        let mut mail = format!("MAIL FROM:<{}>", env.sender);
        if self.ext_8bitmime && env.wire.iter().any(|&b| b >= 0x80) {
            mail.push_str(" BODY=8BITMIME");
        }
        if self.ext_smtputf8 && env.smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        if self.ext_size {
            // RFC 1870: lets a server refuse an oversized message before we send it.
            mail.push_str(&format!(" SIZE={}", env.wire.len()));
        }
        let reply = command(&mut self.io, &mut self.buf, &mail).await?;
        if reply.code != 250 {
            return Err(reply.unexpected("MAIL FROM"));
        }
        for rcpt in env.recipients {
            let reply = command(&mut self.io, &mut self.buf, &format!("RCPT TO:<{rcpt}>")).await?;
            if reply.code != 250 && reply.code != 251 {
                return Err(reply.unexpected("RCPT TO"));
            }
        }
        let reply = command(&mut self.io, &mut self.buf, "DATA").await?;
        if reply.code != 354 {
            return Err(reply.unexpected("DATA"));
        }
        // `wire` ends with the "." line, so the terminator leaves with the last bytes.
        if let Err(failure) = write(&mut self.io, env.wire).await {
            // A server may reject (e.g. 552, too big) and close while we are still writing;
            // its reply is worth more than our broken pipe.
            return match read_reply(&mut self.io, &mut self.buf, EARLY_REPLY_TIMEOUT).await {
                Ok(reply) if reply.code >= 400 => Err(reply.unexpected("message data")),
                _ => Err(failure),
            };
        }
        let reply = read_reply(&mut self.io, &mut self.buf, DATA_END_TIMEOUT).await?;
        if reply.code != 250 {
            return Err(reply.unexpected("end of data"));
        }
        self.idle_since = Instant::now();
        Ok(())
    }

    /// Says goodbye without waiting long for the answer.
    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = command(&mut self.io, &mut self.buf, "QUIT").await;
            let _ = self.io.shutdown().await;
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines() {
        assert_eq!(
            parse_reply_line(b"250-mx.example"),
            Some((250, true, "mx.example".into()))
        );
        assert_eq!(parse_reply_line(b"250 OK"), Some((250, false, "OK".into())));
        assert_eq!(parse_reply_line(b"354"), Some((354, false, String::new())));
        for bad in [&b"25"[..], b"abc OK", b"250xOK", b"199 x", b"600 x", b""] {
            assert_eq!(parse_reply_line(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn multiline_reply_and_keywords() {
        let mut input: &[u8] =
            b"250-mx.example hi\r\n250-8BITMIME\r\n250-starttls\r\n250 SIZE 100\r\n";
        let mut buf = BytesMut::new();
        let r = read_reply(&mut input, &mut buf, COMMAND_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.lines.len(), 4);
        assert!(r.has_keyword("STARTTLS"));
        assert!(!r.has_keyword("SMTPUTF8"));
        assert!(
            !r.has_keyword("mx.example"),
            "the greeting line is not a keyword"
        );
    }

    #[tokio::test]
    async fn eof_and_garbage_are_connection_failures() {
        let mut buf = BytesMut::new();
        let mut eof: &[u8] = b"250-partial\r\n";
        assert!(matches!(
            read_reply(&mut eof, &mut buf, COMMAND_TIMEOUT).await,
            Err(Failure::Connection(_))
        ));
        let mut buf = BytesMut::new();
        let mut junk: &[u8] = b"hello\r\n";
        assert!(matches!(
            read_reply(&mut junk, &mut buf, COMMAND_TIMEOUT).await,
            Err(Failure::Connection(_))
        ));
    }

    #[test]
    fn only_4xx_5xx_are_rejections() {
        let r = |code| ServerReply {
            code,
            lines: vec!["x".into()],
        };
        assert!(matches!(r(550).unexpected("RCPT"), Failure::Rejected(_)));
        assert!(matches!(r(451).unexpected("RCPT"), Failure::Rejected(_)));
        assert!(matches!(r(250).unexpected("DATA"), Failure::Connection(_)));
        assert!(matches!(r(354).unexpected("RCPT"), Failure::Connection(_)));
    }
}
