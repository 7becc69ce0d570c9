//! An async SMTP client (RFC 5321; RFC 3207 STARTTLS, RFC 2920 PIPELINING): the pieces of a
//! dialogue, each bounded in time and size. Which replies a caller accepts, and what it
//! makes of a refusal, stays the caller's policy.
//!
//! `TCP_NODELAY` is set on connect and the end-of-data line leaves in the same write as the
//! last message bytes: with Nagle on and the final dot written separately, each message
//! would stall for a delayed-ACK period.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::Error;
use crate::reply::{ReplyLines, parse_reply};

/// Writes are gathered up to this size, so small messages and their end line leave at once.
const WRITE_BUFFER: usize = 64 * 1024;
/// Time `QUIT` gets before the connection is simply dropped.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a server gets to explain (552, say) after our write of the message failed.
const EARLY_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A byte stream the client can speak over (TCP, or TLS after STARTTLS).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The service extensions of an EHLO reply this client uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// `8BITMIME` (RFC 6152).
    pub eight_bit_mime: bool,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `SIZE` (RFC 1870).
    pub size: bool,
    /// `PIPELINING` (RFC 2920).
    pub pipelining: bool,
    /// `STARTTLS` (RFC 3207).
    pub starttls: bool,
    /// `DSN` (RFC 3461): `NOTIFY=` on `RCPT` is understood.
    pub dsn: bool,
}

impl Capabilities {
    /// The keywords of `ehlo`'s lines after the first (which names the server).
    pub fn of(ehlo: &ReplyLines) -> Capabilities {
        let has = |keyword: &str| {
            ehlo.lines.iter().skip(1).any(|l| {
                l.split_ascii_whitespace()
                    .next()
                    .is_some_and(|k| k.eq_ignore_ascii_case(keyword))
            })
        };
        Capabilities {
            eight_bit_mime: has("8BITMIME"),
            smtputf8: has("SMTPUTF8"),
            size: has("SIZE"),
            pipelining: has("PIPELINING"),
            starttls: has("STARTTLS"),
            dsn: has("DSN"),
        }
    }
}

/// A step of a mail transaction, for errors and refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO`.
    Rcpt,
    /// `DATA`.
    Data,
    /// The message and its end line.
    EndOfData,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Mail => "MAIL FROM",
            Step::Rcpt => "RCPT TO",
            Step::Data => "DATA",
            Step::EndOfData => "end of data",
        })
    }
}

/// How the envelope of a transaction went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// MAIL and every RCPT got 250 (RCPT also 251), DATA got 354: send the message.
    Accepted,
    /// The first reply that was not, and its step.
    Refused(Step, ReplyLines),
}

/// One client connection.
pub struct Client {
    io: Box<dyn Stream>,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    timeout: Duration,
    caps: Capabilities,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("caps", &self.caps).finish()
    }
}

/// Connects to `addr` (resolved, tried in turn) within `timeout`, with `TCP_NODELAY`.
pub async fn connect(addr: impl ToSocketAddrs, timeout: Duration) -> Result<TcpStream, Error> {
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| Error::ConnectTimeout)?
        .map_err(Error::Connect)?;
    tcp.set_nodelay(true).map_err(Error::Socket)?;
    Ok(tcp)
}

/// Connects to every address at once within `timeout`; the first established connection wins.
pub async fn connect_any(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, Error> {
    if addrs.is_empty() {
        return Err(Error::NoAddress);
    }
    let mut set = JoinSet::new();
    for &addr in addrs {
        set.spawn(TcpStream::connect(addr));
    }
    let race = async {
        let mut last = Error::NoAddress;
        while let Some(res) = set.join_next().await {
            match res {
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(e)) => last = Error::Connect(e),
                Err(e) => last = Error::ConnectTask(e),
            }
        }
        Err(last)
    };
    // Dropping the set aborts the attempts that lost the race.
    let tcp = tokio::time::timeout(timeout, race)
        .await
        .map_err(|_| Error::ConnectTimeout)??;
    tcp.set_nodelay(true).map_err(Error::Socket)?;
    Ok(tcp)
}

impl Client {
    /// A client on an established stream; `timeout` bounds each write and each reply.
    pub fn new(stream: impl Stream + 'static, timeout: Duration) -> Client {
        Client {
            io: Box::new(stream),
            rbuf: BytesMut::with_capacity(4096),
            wbuf: Vec::new(),
            timeout,
            caps: Capabilities::default(),
        }
    }

    /// The extensions of the last EHLO reply.
    pub fn capabilities(&self) -> Capabilities {
        self.caps
    }

    /// Reads the next reply, waiting at most `timeout`.
    pub async fn read_reply_within(&mut self, timeout: Duration) -> Result<ReplyLines, Error> {
        let read = async {
            loop {
                if let Some((reply, used)) = parse_reply(&self.rbuf)? {
                    let _ = self.rbuf.split_to(used);
                    return Ok(reply);
                }
                let n = self
                    .io
                    .read_buf(&mut self.rbuf)
                    .await
                    .map_err(Error::Read)?;
                if n == 0 {
                    return Err(Error::Closed);
                }
            }
        };
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| Error::ReplyTimeout)?
    }

    /// Reads the next reply (the greeting, or one of pipelined commands).
    pub async fn read_reply(&mut self) -> Result<ReplyLines, Error> {
        self.read_reply_within(self.timeout).await
    }

    /// Queues bytes; they leave at the next [`Client::flush`] or when the buffer is full.
    async fn queue(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.wbuf.len() + bytes.len() > WRITE_BUFFER {
            self.flush().await?;
        }
        if bytes.len() >= WRITE_BUFFER {
            return self.write(bytes).await;
        }
        self.wbuf.extend_from_slice(bytes);
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let w = async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        };
        match tokio::time::timeout(self.timeout, w).await {
            Ok(r) => r.map_err(Error::Write),
            Err(_) => Err(Error::WriteTimeout),
        }
    }

    /// Writes what was queued.
    async fn flush(&mut self) -> Result<(), Error> {
        let buf = std::mem::take(&mut self.wbuf);
        let result = self.write(&buf).await;
        self.wbuf = buf;
        self.wbuf.clear();
        result
    }

    /// Sends one command line (without CRLF) and reads its reply.
    pub async fn command(&mut self, line: &str) -> Result<ReplyLines, Error> {
        self.queue_line(line).await?;
        self.flush().await?;
        self.read_reply().await
    }

    async fn queue_line(&mut self, line: &str) -> Result<(), Error> {
        self.queue(line.as_bytes()).await?;
        self.queue(b"\r\n").await
    }

    /// `EHLO name`; a 250 reply's extensions become the [`Client::capabilities`].
    pub async fn ehlo(&mut self, name: &str) -> Result<ReplyLines, Error> {
        let reply = self.command(&format!("EHLO {name}")).await?;
        self.caps = if reply.code == 250 {
            Capabilities::of(&reply)
        } else {
            Capabilities::default()
        };
        Ok(reply)
    }

    /// The TLS handshake after the server's `220` to `STARTTLS`, verified against `host` as
    /// `config` says. The capabilities are forgotten: EHLO must be sent again.
    pub async fn start_tls(self, config: Arc<ClientConfig>, host: &str) -> Result<Client, Error> {
        if !self.rbuf.is_empty() {
            return Err(Error::DataAfterStartTls);
        }
        let name = ServerName::try_from(host.to_owned())?;
        let handshake = TlsConnector::from(config).connect(name, self.io);
        let tls = tokio::time::timeout(self.timeout, handshake)
            .await
            .map_err(|_| Error::TlsTimeout)?
            .map_err(Error::Tls)?;
        Ok(Client {
            io: Box::new(tls),
            caps: Capabilities::default(),
            ..self
        })
    }

    /// `MAIL FROM:<sender>` with the parameters the server offers and the message needs:
    /// `BODY=8BITMIME` for 8-bit data, `SMTPUTF8` when asked for, `SIZE` when given.
    pub fn mail_command(
        &self,
        sender: &str,
        eight_bit: bool,
        smtputf8: bool,
        size: Option<usize>,
    ) -> String {
        let mut mail = format!("MAIL FROM:<{sender}>");
        if self.caps.eight_bit_mime && eight_bit {
            mail.push_str(" BODY=8BITMIME");
        }
        if self.caps.smtputf8 && smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        if let Some(size) = size.filter(|_| self.caps.size) {
            mail.push_str(&format!(" SIZE={size}"));
        }
        mail
    }

    /// `RCPT TO:<rcpt>`; with `notify_never`, and when the server offers `DSN`, followed by
    /// `NOTIFY=NEVER` (RFC 3461 §4.1): the server then sends no delivery status notification
    /// for this recipient, a bounce included.
    pub fn rcpt_command(&self, rcpt: &str, notify_never: bool) -> String {
        if notify_never && self.caps.dsn {
            format!("RCPT TO:<{rcpt}> NOTIFY=NEVER")
        } else {
            format!("RCPT TO:<{rcpt}>")
        }
    }

    /// `mail`, a `RCPT TO` per recipient and `DATA`. Pipelined, all go out in one write and
    /// every reply is read (the first refusal counts); otherwise the first refusal stops.
    /// An error carries the step it happened at.
    pub async fn envelope(
        &mut self,
        mail: &str,
        recipients: &[String],
        pipelined: bool,
    ) -> Result<Sent, (Step, Error)> {
        let rcpts: Vec<String> = recipients
            .iter()
            .map(|r| self.rcpt_command(r, false))
            .collect();
        self.envelope_commands(mail, &rcpts, pipelined).await
    }

    /// [`Client::envelope`] with each `RCPT TO` line given whole ([`Client::rcpt_command`]).
    pub async fn envelope_commands(
        &mut self,
        mail: &str,
        rcpt_commands: &[String],
        pipelined: bool,
    ) -> Result<Sent, (Step, Error)> {
        let mut commands = vec![(Step::Mail, mail.to_owned())];
        commands.extend(rcpt_commands.iter().map(|c| (Step::Rcpt, c.clone())));
        commands.push((Step::Data, "DATA".to_owned()));
        if pipelined {
            for (_, c) in &commands {
                self.queue_line(c).await.map_err(|e| (Step::Mail, e))?;
            }
            self.flush().await.map_err(|e| (Step::Mail, e))?;
        }
        let mut refused = None;
        for (step, c) in &commands {
            let reply = if pipelined {
                self.read_reply().await
            } else {
                self.command(c).await
            };
            let reply = match reply {
                Ok(reply) => reply,
                // A server that refused and then hung up: its refusal is the answer.
                Err(e) => return refused.ok_or((*step, e)),
            };
            let ok = match step {
                Step::Mail => reply.code == 250,
                Step::Rcpt => reply.code == 250 || reply.code == 251,
                _ => reply.code == 354,
            };
            if !ok && refused.is_none() {
                refused = Some(Sent::Refused(*step, reply));
                if !pipelined {
                    break;
                }
            }
        }
        Ok(refused.unwrap_or(Sent::Accepted))
    }

    /// Sends the message (`parts`, already dot-stuffed and ending with the `.` line) and
    /// reads the reply within `timeout`. When the write fails, a refusal the server sent
    /// meanwhile (552, say) is returned instead of the write error.
    pub async fn data(&mut self, parts: &[&[u8]], timeout: Duration) -> Result<ReplyLines, Error> {
        let mut written = Ok(());
        for part in parts {
            written = self.queue(part).await;
            if written.is_err() {
                break;
            }
        }
        if let Err(failure) = written.and(self.flush().await) {
            return match self.read_reply_within(EARLY_REPLY_TIMEOUT).await {
                Ok(reply) if reply.code >= 400 => Ok(reply),
                _ => Err(failure),
            };
        }
        self.read_reply_within(timeout).await
    }

    /// `RSET` before reusing a connection; `false` means it is unusable.
    pub async fn reset(&mut self) -> bool {
        matches!(self.command("RSET").await, Ok(r) if r.code == 250)
    }

    /// Says goodbye without waiting long for the answer.
    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(QUIT_TIMEOUT, async {
            let _ = self.command("QUIT").await;
            let _ = self.io.shutdown().await;
        })
        .await;
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
