//! The connection driver every SMTP and LMTP server of the relay runs: the I/O around a
//! [`Dialogue`], written once so the same fault gets the same reply from every service.
//!
//! - The greeting of the [`Protocol`], then command lines framed by [`next_line`]: a line
//!   longer than [`crate::MAX_LINE`] gets [`Reply::LINE_TOO_LONG`], a bare LF
//!   [`Reply::BARE_LF`], and the connection is closed after either (the rest of the line
//!   cannot be told from the next command).
//! - A client silent for [`Settings::idle_timeout`], between commands or within the data,
//!   gets [`Reply::TIMEOUT`] and is closed.
//! - When `stop` is cancelled, a client waiting between commands gets
//!   [`Reply::SHUTTING_DOWN`] and is closed (RFC 5321 §3.8); a message being received or
//!   delivered is finished first.
//! - `DATA`: the [`Service`] may refuse the transaction before `354`; a budget with nothing
//!   left gets [`OVER_BUDGET`] before `354`. The message is read by the one [`DataReceiver`]
//!   (size limit, memory budget, bare CR or LF and unstuffed dots refused) and handed to the
//!   service; a refused message gets its reply once (SMTP) or once per recipient (LMTP).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::budget::{MemoryBudget, OVER_BUDGET, Reservation};
use crate::session::{Dialogue, Protocol, Rules, Step, Transaction};
use crate::{DataEnd, DataReceiver, Line, Reply, next_line};

/// The idle timeout of both servers (Postfix's own proxy timeout is 100 s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Room made for one read within DATA (a message arrives in large reads).
const DATA_CHUNK: usize = 64 * 1024;
/// Room made for one read between commands: a command is short, and an idle session should
/// hold little (a connection waiting for its next command holds this buffer).
const COMMAND_CHUNK: usize = 1024;

/// How a server speaks and what it holds.
#[derive(Debug, Clone)]
pub struct Settings {
    /// SMTP or LMTP.
    pub protocol: Protocol,
    /// `max_message_size`: the limit on the unstuffed message.
    pub max_message_size: u64,
    /// Whether `EHLO`/`LHLO` advertises `SIZE max_message_size`.
    pub advertise_size: bool,
    /// Message bytes held by all connections of the process.
    pub budget: Arc<MemoryBudget>,
    /// How long a client may stay silent ([`IDLE_TIMEOUT`]; tests shorten it).
    pub idle_timeout: Duration,
}

/// Which reply a service is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replied {
    /// A reply to a command (`MAIL`, `RCPT`, ...), not counting `EHLO` and `QUIT`.
    Command,
    /// A reply that ends a message: a refusal at `DATA` or a reply after the data.
    Message,
}

/// What a service adds to the driver: its envelope rules and what becomes of a message.
pub trait Service: Send + Sync {
    /// What the service keeps of an accepted recipient.
    type Recipient: Send + Sync;

    /// The protocol, limits and budget.
    fn settings(&self) -> &Settings;

    /// The envelope rules for the next command (taken per command: they may read a clock).
    fn rules(&self) -> impl Rules<Recipient = Self::Recipient> + '_;

    /// A refusal of the transaction at `DATA`, before `354` (no queue slot, say).
    fn refuse_data(&self, _tx: &Transaction<Self::Recipient>) -> Option<Reply> {
        None
    }

    /// Handles an accepted message; `held` is its share of the memory budget. Returns the
    /// replies: one for SMTP, one per recipient for LMTP.
    fn message(
        &self,
        tx: Transaction<Self::Recipient>,
        message: Vec<u8>,
        held: Reservation,
    ) -> impl Future<Output = Vec<Reply>> + Send;

    /// Told of each reply sent (for counting).
    fn replied(&self, _what: Replied, _reply: &Reply) {}
}

/// Why a connection ended, beside an orderly close.
#[derive(Debug, thiserror::Error)]
pub enum Ended {
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The client was silent for the idle timeout (and was told so).
    #[error("idle timeout")]
    Timeout,
    /// The client went away within the data.
    #[error("connection closed within DATA")]
    EofInData,
}

/// One connection's stream and read buffer.
struct Conn<'a, IO, S> {
    io: IO,
    buf: BytesMut,
    service: &'a S,
}

/// [`serve`] on an accepted TCP connection, with Nagle's algorithm off: the driver writes
/// each reply as a complete line at once, so holding it back for coalescing only adds a
/// round trip's delay.
pub async fn serve_tcp<S: Service>(
    stream: tokio::net::TcpStream,
    service: &S,
    stop: &CancellationToken,
) -> Result<(), Ended> {
    // A socket that refuses the option still serves; the delay is all it costs.
    let _ = stream.set_nodelay(true);
    serve(stream, service, stop).await
}

/// Serves one connection until `QUIT`, EOF, a fault, or `stop` while between commands.
pub async fn serve<IO, S>(io: IO, service: &S, stop: &CancellationToken) -> Result<(), Ended>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    S: Service,
{
    let settings = service.settings();
    let mut conn = Conn {
        io,
        buf: BytesMut::with_capacity(1024),
        service,
    };
    conn.send(&settings.protocol.greeting()).await?;
    let size = settings.advertise_size.then_some(settings.max_message_size);
    let mut dialogue = Dialogue::new(size);
    loop {
        let step = match next_line(&conn.buf) {
            Line::Complete(line, used) => {
                let step = dialogue.on_line(line, &service.rules());
                conn.buf.advance(used);
                step
            }
            Line::Incomplete => {
                if !conn.read_command(stop).await? {
                    return Ok(());
                }
                continue;
            }
            Line::BareLf => Step::Close(Reply::BARE_LF),
            Line::TooLong => Step::Close(Reply::LINE_TOO_LONG),
        };
        match step {
            Step::Reply(reply) => {
                service.replied(Replied::Command, &reply);
                conn.send(&reply).await?;
            }
            Step::Raw(bytes) => conn.io.write_all(&bytes).await?,
            Step::Close(reply) => return conn.close(&reply).await,
            Step::Data => {
                let Some(tx) = dialogue.take_transaction() else {
                    continue;
                };
                let replies = conn.data(tx).await?;
                for reply in &replies {
                    service.replied(Replied::Message, reply);
                }
                let wire: Vec<u8> = replies.iter().flat_map(Reply::to_wire).collect();
                conn.io.write_all(&wire).await?;
            }
        }
    }
}

impl<IO, S> Conn<'_, IO, S>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    S: Service,
{
    async fn send(&mut self, reply: &Reply) -> std::io::Result<()> {
        self.io.write_all(&reply.to_wire()).await
    }

    async fn close(&mut self, reply: &Reply) -> Result<(), Ended> {
        self.send(reply).await?;
        let _ = self.io.shutdown().await;
        Ok(())
    }

    /// Reads more bytes, with room for at least `chunk`; `Ok(false)` on EOF. A silent
    /// client gets a 421 and is closed.
    async fn read_more(&mut self, chunk: usize) -> Result<bool, Ended> {
        self.buf.reserve(chunk);
        let timeout = self.service.settings().idle_timeout;
        match tokio::time::timeout(timeout, self.io.read_buf(&mut self.buf)).await {
            Ok(n) => Ok(n? > 0),
            Err(_) => {
                let _ = self.close(&Reply::TIMEOUT).await;
                Err(Ended::Timeout)
            }
        }
    }

    /// Reads more command bytes; `Ok(false)` on EOF, or after a 421 once `stop` is
    /// cancelled (between commands no transaction is lost that a client would not retry).
    async fn read_command(&mut self, stop: &CancellationToken) -> Result<bool, Ended> {
        tokio::select! {
            biased;
            () = stop.cancelled() => {
                self.close(&Reply::SHUTTING_DOWN).await?;
                Ok(false)
            }
            more = self.read_more(COMMAND_CHUNK) => more,
        }
    }

    /// `DATA` of a transaction with recipients: the replies that end it.
    async fn data(&mut self, tx: Transaction<S::Recipient>) -> Result<Vec<Reply>, Ended> {
        let settings = self.service.settings();
        let refusal = self.service.refuse_data(&tx).or_else(|| {
            settings.budget.exhausted().then(|| {
                tracing::warn!("memory budget exhausted, deferring a message");
                OVER_BUDGET
            })
        });
        if let Some(reply) = refusal {
            return Ok(vec![reply]);
        }
        self.send(&Reply::START_DATA).await?;
        let reservation = Reservation::new(Some(Arc::clone(&settings.budget)));
        let mut rx = DataReceiver::with_allowance(settings.max_message_size, reservation)
            .refuse_unstuffed_dot();
        let end = loop {
            let (used, end) = rx.feed(&self.buf);
            self.buf.advance(used);
            if let Some(end) = end {
                break end;
            }
            if !self.read_more(DATA_CHUNK).await? {
                return Err(Ended::EofInData);
            }
        };
        let reply = match end {
            DataEnd::Message(message) => {
                let held = rx.take_allowance();
                return Ok(self.service.message(tx, message, held).await);
            }
            DataEnd::TooBig => Reply::TOO_BIG,
            DataEnd::OverBudget => OVER_BUDGET,
            DataEnd::BareLineEnd | DataEnd::UnstuffedDot => Reply::INVALID_DATA,
        };
        tracing::warn!("message refused while receiving: {reply}");
        let count = match settings.protocol {
            Protocol::Smtp => 1,
            Protocol::Lmtp => tx.recipients.len(),
        };
        Ok(vec![reply; count])
    }
}
