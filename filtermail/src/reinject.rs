//! Reinjection of an accepted message into Postfix (SPEC §6.3): a small SMTP client.
//!
//! The message goes out byte-for-byte as it was received (after our own dot-stuffing, which
//! the receiver undoes), so DKIM signatures stay valid. `TCP_NODELAY` is set and the
//! end-of-data line is written in the same buffer flush as the last message bytes: with
//! Nagle on and the final dot written separately, each message would stall for a
//! delayed-ACK period. The remote reply is relayed with its class (4xx stays 4xx); a
//! connection failure becomes a 451 so the sender retries and nothing accepted is lost.

use std::sync::{Arc, Mutex};
use std::time::Duration;

// The tokio clock, so tests can run the idle expiry on virtual time.
use tokio::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tracing::{debug, warn};

use crate::reply::{Reply, printable};
use crate::smtp::stuffed_slices;

/// Longest reply line accepted from the reinjection server.
const MAX_REPLY_LINE: usize = 4096;
/// Most lines of one multi-line reply.
const MAX_REPLY_LINES: usize = 64;
/// Write buffer: large enough that small messages and their end marker leave in one write.
const WRITE_BUFFER: usize = 64 * 1024;
/// Upper bound of one whole reinjection.
const REINJECT_DEADLINE: Duration = Duration::from_secs(60);
/// Most idle connections kept for reuse. Each holds one of Postfix's reinjection smtpd
/// processes (the relay allows 100 per port), so keep well below that.
const POOL_MAX: usize = 16;
/// How long an idle connection is kept; well below Postfix's `smtpd_timeout` (300 s), so
/// Postfix never has to time out (and log) one of ours.
const POOL_IDLE: Duration = Duration::from_secs(10);
/// How often expired idle connections are closed.
const REAP_EVERY: Duration = Duration::from_secs(2);

/// Where and how to reinject.
#[derive(Debug, Clone)]
pub struct Reinjector {
    /// `host:port` of Postfix's reinjection listener.
    pub addr: String,
    /// Time allowed for connecting and for each reply.
    pub timeout: Duration,
    /// Connections kept open between messages (Postfix serves many transactions per
    /// connection, so each message need not pay for connect, greeting and EHLO).
    pool: Arc<Pool>,
}

/// Why a reinjection attempt failed on our side (not a remote rejection).
#[derive(Debug, thiserror::Error)]
enum ClientError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("malformed reply")]
    Malformed,
    /// A kept-alive connection turned out to be closed before the transaction began.
    #[error("connection closed by the server")]
    Stale,
}

/// A parsed reply of the remote server.
#[derive(Debug)]
struct RemoteReply {
    code: u16,
    lines: Vec<String>,
}

impl RemoteReply {
    fn class(&self) -> u16 {
        self.code / 100
    }

    /// The reply as we pass it on: same code, the remote text lines joined.
    fn relay(&self) -> Reply {
        Reply::new(self.code, printable(&self.lines.join(" ")))
    }
}

struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: BufWriter<OwnedWriteHalf>,
    timeout: Duration,
    eight_bit: bool,
    smtputf8: bool,
    pipelining: bool,
}

impl Conn {
    async fn read_reply(&mut self) -> Result<RemoteReply, ClientError> {
        let mut lines = Vec::new();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let mut limited =
                (&mut self.reader).take(u64::try_from(MAX_REPLY_LINE).unwrap_or(u64::MAX));
            let read = limited.read_until(b'\n', &mut buf);
            let n = tokio::time::timeout(self.timeout, read)
                .await
                .map_err(|_| ClientError::Timeout)??;
            if n == 0 || buf.last() != Some(&b'\n') {
                return Err(ClientError::Malformed);
            }
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end_matches(['\r', '\n']);
            let code: u16 = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .filter(|c| (200..600).contains(c))
                .ok_or(ClientError::Malformed)?;
            let sep = line.as_bytes().get(3).copied();
            lines.push(line.get(4..).unwrap_or("").to_owned());
            match sep {
                Some(b'-') if lines.len() < MAX_REPLY_LINES => continue,
                Some(b'-') => return Err(ClientError::Malformed),
                _ => return Ok(RemoteReply { code, lines }),
            }
        }
    }

    async fn command(&mut self, line: &str) -> Result<RemoteReply, ClientError> {
        self.writer.write_all(line.as_bytes()).await?;
        self.writer.write_all(b"\r\n").await?;
        self.writer.flush().await?;
        self.read_reply().await
    }
}

/// An I/O failure or EOF at the first reply on a kept connection means the server had
/// closed it; anything else stays what it is.
fn stale_if_broken(e: ClientError) -> ClientError {
    match e {
        ClientError::Io(_) | ClientError::Malformed => ClientError::Stale,
        other => other,
    }
}

/// The envelope as it is sent on.
struct Outbound<'a> {
    mail_from: &'a str,
    rcpt_to: &'a [String],
    smtputf8: bool,
}

/// What the SMTP client session ended with.
enum Outcome {
    Accepted,
    Rejected(RemoteReply),
}

/// Idle connections kept for reuse, newest last.
#[derive(Debug, Default)]
pub struct Pool {
    idle: Mutex<Vec<(Conn, Instant)>>,
}

impl Pool {
    /// Removes and returns the idle connections kept longer than [`POOL_IDLE`].
    fn expired(&self, now: Instant) -> Vec<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let (old, fresh): (Vec<_>, Vec<_>) = idle
            .drain(..)
            .partition(|(_, since)| now.duration_since(*since) >= POOL_IDLE);
        *idle = fresh;
        old.into_iter().map(|(c, _)| c).collect()
    }

    fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Conn")
    }
}

impl Reinjector {
    /// A reinjector for `addr` (`host:port`).
    ///
    /// Inside a tokio runtime, a task closes idle connections (with QUIT) once they
    /// expire; it ends when the reinjector is dropped.
    pub fn new(addr: String, timeout: Duration) -> Reinjector {
        let pool = Arc::new(Pool::default());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&pool);
            rt.spawn(async move {
                let mut tick = tokio::time::interval(REAP_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(pool) = weak.upgrade() else { return };
                    for mut conn in pool.expired(Instant::now()) {
                        let _ = conn.writer.write_all(b"QUIT\r\n").await;
                        let _ = conn.writer.flush().await;
                    }
                }
            });
        }
        Reinjector {
            addr,
            timeout,
            pool,
        }
    }

    /// How many connections are kept open for reuse right now.
    pub fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }

    /// Sends `message` from `mail_from` (empty: null sender) to `rcpt_to`; returns the reply
    /// for our client: `250 OK`, the remote rejection, or a 451.
    /// `smtputf8` passes the client's SMTPUTF8 declaration on (it is also added for
    /// non-ASCII addresses).
    pub async fn send(
        &self,
        mail_from: &str,
        rcpt_to: &[String],
        smtputf8: bool,
        message: &[u8],
    ) -> Reply {
        // The whole reinjection stays within Postfix's 100 s proxy timeout (together with
        // the DKIM deadline), so Postfix never gives up on a message we then deliver.
        let envelope = Outbound {
            mail_from,
            rcpt_to,
            smtputf8: smtputf8 || !mail_from.is_ascii() || rcpt_to.iter().any(|r| !r.is_ascii()),
        };
        let session = self.session(&envelope, message);
        let result = tokio::time::timeout(REINJECT_DEADLINE, session)
            .await
            .unwrap_or(Err(ClientError::Timeout));
        match result {
            Ok(Outcome::Accepted) => Reply::OK,
            Ok(Outcome::Rejected(r)) => {
                warn!(code = r.code, "reinjection rejected: {}", r.lines.join(" "));
                r.relay()
            }
            Err(e) => {
                warn!(addr = %self.addr, "reinjection failed: {e}");
                Reply::REINJECT_FAILED
            }
        }
    }

    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        idle.retain(|(_, since)| now.duration_since(*since) < POOL_IDLE);
        idle.pop().map(|(c, _)| c)
    }

    fn put_idle(&self, conn: Conn) {
        let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < POOL_MAX {
            idle.push((conn, Instant::now()));
        }
    }

    async fn session(&self, env: &Outbound<'_>, message: &[u8]) -> Result<Outcome, ClientError> {
        // A kept connection may have been closed by the server meanwhile; that shows at
        // the MAIL command, before anything of the message was sent, so a fresh connection
        // can safely take over.
        while let Some(conn) = self.take_idle() {
            match self.transaction(conn, env, message).await {
                Err(ClientError::Stale) => debug!("kept connection was closed; reconnecting"),
                other => return other,
            }
        }
        let conn = match self.connect().await? {
            Ok(conn) => conn,
            Err(rejected) => return Ok(Outcome::Rejected(rejected)),
        };
        match self.transaction(conn, env, message).await {
            Err(ClientError::Stale) => Err(ClientError::Malformed),
            other => other,
        }
    }

    /// A new connection after greeting and EHLO; `Err` holds a refusal of either.
    async fn connect(&self) -> Result<Result<Conn, RemoteReply>, ClientError> {
        let stream = tokio::time::timeout(self.timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| ClientError::Timeout)??;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        let mut conn = Conn {
            reader: BufReader::new(r),
            writer: BufWriter::with_capacity(WRITE_BUFFER, w),
            timeout: self.timeout,
            eight_bit: false,
            smtputf8: false,
            pipelining: false,
        };
        let greeting = conn.read_reply().await?;
        if greeting.class() != 2 {
            return Ok(Err(greeting));
        }
        let ehlo = conn.command("EHLO filtermail").await?;
        if ehlo.class() != 2 {
            return Ok(Err(ehlo));
        }
        let has = |ext: &str| {
            ehlo.lines.iter().any(|l| {
                l.split_ascii_whitespace()
                    .next()
                    .is_some_and(|w| w.eq_ignore_ascii_case(ext))
            })
        };
        conn.eight_bit = has("8BITMIME");
        conn.smtputf8 = has("SMTPUTF8");
        conn.pipelining = has("PIPELINING");
        Ok(Ok(conn))
    }

    /// One mail transaction on `conn`; the connection goes back to the pool when the
    /// transaction completed cleanly.
    async fn transaction(
        &self,
        mut conn: Conn,
        env: &Outbound<'_>,
        message: &[u8],
    ) -> Result<Outcome, ClientError> {
        let mut mail = format!("MAIL FROM:<{}>", env.mail_from);
        if conn.eight_bit && !message.is_ascii() {
            mail.push_str(" BODY=8BITMIME");
        }
        if conn.smtputf8 && env.smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        // With PIPELINING (RFC 2920; Postfix offers it) the envelope goes out in one write
        // and the replies are read in order afterwards; otherwise one command at a time.
        let pipelined = conn.pipelining;
        let mut commands = vec![mail];
        commands.extend(env.rcpt_to.iter().map(|r| format!("RCPT TO:<{r}>")));
        commands.push("DATA".to_owned());
        if pipelined {
            for c in &commands {
                conn.writer.write_all(c.as_bytes()).await?;
                conn.writer.write_all(b"\r\n").await?;
            }
            if let Err(e) = conn.writer.flush().await {
                return Err(stale_if_broken(ClientError::Io(e)));
            }
        }
        let mut rejected = None;
        for (i, c) in commands.iter().enumerate() {
            let reply = if pipelined {
                conn.read_reply().await
            } else {
                conn.command(c).await
            };
            let reply = match reply {
                // A kept connection that the server closed (or is closing) meanwhile.
                Ok(r) if i == 0 && r.code == 421 => return Err(ClientError::Stale),
                Ok(r) => r,
                Err(e) if i == 0 => return Err(stale_if_broken(e)),
                Err(e) => return Err(e),
            };
            let ok = if i + 1 == commands.len() {
                reply.code == 354
            } else {
                reply.class() == 2
            };
            if !ok && rejected.is_none() {
                rejected = Some(reply);
                if !pipelined {
                    break;
                }
            }
        }
        if let Some(reply) = rejected {
            // The connection is dropped, which also ends a DATA the server may have
            // accepted after an earlier pipelined refusal.
            return Ok(Outcome::Rejected(reply));
        }
        for slice in stuffed_slices(message) {
            conn.writer.write_all(slice).await?;
        }
        if !message.is_empty() && !message.ends_with(b"\r\n") {
            // Our DATA reader always ends a message in CRLF; other front ends might not.
            conn.writer.write_all(b"\r\n").await?;
        }
        conn.writer.write_all(b".\r\n").await?;
        conn.writer.flush().await?;
        let reply = conn.read_reply().await?;
        debug!(code = reply.code, "reinjection done");
        if reply.class() == 2 {
            self.put_idle(conn);
            Ok(Outcome::Accepted)
        } else {
            Ok(Outcome::Rejected(reply))
        }
    }
}
