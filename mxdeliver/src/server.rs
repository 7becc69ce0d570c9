//! The LMTP server Postfix delivers to (`default_transport`, SPEC §6.12): connection loop,
//! transactions with per-destination queue slots, and per-recipient replies after DATA.
//!
//! Message bytes are held under the process's memory budget (`filtermail_memory_budget`,
//! as in the filters): from the first byte of DATA until the last destination's delivery
//! has ended, whether or not Postfix is still connected. Past the budget a message gets
//! `451` (at `DATA` when nothing is left, else after its data), so Postfix retries later.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::deliver::{Batch, Deliverer};
use chatmail_smtp::{Line, MAX_RECIPIENTS, MemoryBudget, Reservation, next_line};

use crate::lmtp::{
    Command, DataOutcome, Destination, data_receiver, parse_command, parse_recipient,
};
use crate::queue::{Queues, Slot};
use crate::reply::{Reply, TransportReply};

/// A client silent for this long is disconnected.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// `8BITMIME` is required by SPEC §6.2; `SMTPUTF8` is passed on to remote servers that offer it.
const LHLO_REPLY: &[u8] = b"250-filtermail\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 OK\r\n";

/// State shared by all connections.
#[derive(Debug)]
pub struct Shared {
    /// Per-destination queue slots.
    pub queues: Queues,
    /// Delivery machinery.
    pub deliverer: Arc<Deliverer>,
    /// `max_message_size` in bytes.
    pub max_message_size: usize,
    /// Message bytes held by all connections and deliveries together.
    pub budget: Arc<MemoryBudget>,
}

struct Recipient {
    addr: String,
    key: String,
}

#[derive(Default)]
struct Transaction {
    sender: Option<String>,
    smtputf8: bool,
    recipients: Vec<Recipient>,
    /// Per destination key: its parsed destination and slot (`None`: queue full, "busy").
    destinations: HashMap<String, (Destination, Option<Slot>)>,
}

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

/// What the command reader got.
enum Input {
    Line(Vec<u8>),
    Closed,
}

impl Conn {
    async fn read_line(&mut self) -> std::io::Result<Input> {
        loop {
            match next_line(&self.buf) {
                Line::Complete(line, used) => {
                    let line = line.to_vec();
                    self.buf.advance(used);
                    return Ok(Input::Line(line));
                }
                // SPEC §6.2: lines end with CRLF; a bare LF ends the session.
                Line::BareLf => return Ok(Input::Closed),
                Line::TooLong => {
                    self.stream
                        .write_all(&Reply::LINE_TOO_LONG.to_wire())
                        .await?;
                    return Ok(Input::Closed);
                }
                Line::Incomplete => {
                    if self.read_more().await? == 0 {
                        return Ok(Input::Closed);
                    }
                }
            }
        }
    }

    async fn read_more(&mut self) -> std::io::Result<usize> {
        match tokio::time::timeout(IDLE_TIMEOUT, self.stream.read_buf(&mut self.buf)).await {
            Ok(r) => r,
            Err(_) => Ok(0),
        }
    }

    /// The message up to the end marker and its share of `budget`; `None` on EOF.
    async fn read_data(
        &mut self,
        limit: usize,
        budget: &Arc<MemoryBudget>,
    ) -> std::io::Result<Option<(DataOutcome, Reservation)>> {
        let mut rx = data_receiver(limit, Some(Arc::clone(budget)));
        loop {
            if !self.buf.is_empty() {
                let (used, end) = rx.feed(&self.buf);
                self.buf.advance(used);
                if let Some(end) = end {
                    let mut held = rx.take_allowance();
                    let outcome = DataOutcome::new(end, &mut held);
                    return Ok(Some((outcome, held)));
                }
            }
            if self.read_more().await? == 0 {
                return Ok(None);
            }
        }
    }
}

/// Serves one LMTP connection until QUIT, EOF, error or shutdown.
pub async fn serve(stream: TcpStream, shared: Arc<Shared>, stop: CancellationToken) {
    // Replies are complete lines written at once; never hold them back for coalescing.
    let _ = stream.set_nodelay(true);
    let mut conn = Conn {
        stream,
        buf: BytesMut::with_capacity(8192),
    };
    if let Err(e) = session(&mut conn, &shared, &stop).await {
        tracing::debug!(error = %e, "LMTP connection ended");
    }
}

async fn session(
    conn: &mut Conn,
    shared: &Shared,
    stop: &CancellationToken,
) -> std::io::Result<()> {
    conn.stream.write_all(&Reply::GREETING.to_wire()).await?;
    let mut tx = Transaction::default();
    loop {
        let line = tokio::select! {
            () = stop.cancelled() => {
                conn.stream.write_all(&Reply::SHUTTING_DOWN.to_wire()).await?;
                return Ok(());
            }
            line = conn.read_line() => line?,
        };
        let Input::Line(line) = line else {
            return Ok(());
        };
        let reply = match parse_command(&line) {
            Command::Hello => {
                tx = Transaction::default();
                LHLO_REPLY.to_vec()
            }
            Command::Quit => {
                conn.stream.write_all(&Reply::BYE.to_wire()).await?;
                return Ok(());
            }
            Command::Data if tx.sender.is_some() && !tx.recipients.is_empty() => {
                match data(conn, &mut tx, shared).await? {
                    Some(replies) => replies,
                    None => return Ok(()),
                }
            }
            command => respond(&mut tx, shared, command, &line).to_wire(),
        };
        conn.stream.write_all(&reply).await?;
    }
}

/// The reply to a command that needs no I/O beyond it.
fn respond(tx: &mut Transaction, shared: &Shared, command: Command, line: &[u8]) -> Reply {
    match command {
        Command::Mail(_) if tx.sender.is_some() => Reply::NESTED_MAIL,
        Command::Mail(None) => Reply::INVALID_MAIL_FROM,
        Command::Mail(Some(addr)) => {
            tx.smtputf8 = chatmail_smtp::Command::parse(line).has_param("SMTPUTF8");
            tx.sender = Some(addr);
            Reply::OK
        }
        Command::Rcpt(_) if tx.sender.is_none() => Reply::NEED_MAIL,
        Command::Rcpt(None) => Reply::INVALID_RCPT_TO,
        Command::Rcpt(Some(addr)) => rcpt(tx, shared, addr),
        Command::Data => Reply::NEED_MAIL_AND_RCPT,
        Command::Rset => {
            *tx = Transaction::default();
            Reply::OK
        }
        Command::Noop => Reply::OK,
        Command::Hello | Command::Quit | Command::Unknown => Reply::UNKNOWN_COMMAND,
    }
}

/// DATA of a transaction with recipients: the replies, one per recipient; `None` when the
/// client went away.
async fn data(
    conn: &mut Conn,
    tx: &mut Transaction,
    shared: &Shared,
) -> std::io::Result<Option<Vec<u8>>> {
    // Both before 354, so Postfix defers without sending the message.
    if tx.destinations.values().all(|(_, slot)| slot.is_none()) {
        *tx = Transaction::default();
        return Ok(Some(Reply::BUSY.to_wire()));
    }
    if shared.budget.exhausted() {
        tracing::warn!("memory budget exhausted, deferring a message");
        *tx = Transaction::default();
        return Ok(Some(Reply::OVER_BUDGET.to_wire()));
    }
    conn.stream.write_all(&Reply::START_DATA.to_wire()).await?;
    let read = conn
        .read_data(shared.max_message_size, &shared.budget)
        .await?;
    let Some((outcome, held)) = read else {
        return Ok(None);
    };
    let replies = finish(std::mem::take(tx), outcome, held, shared).await;
    Ok(Some(replies.iter().flat_map(Reply::to_wire).collect()))
}

fn rcpt(tx: &mut Transaction, shared: &Shared, addr: String) -> Reply {
    let Some(dest) = parse_recipient(&addr) else {
        return Reply::invalid_address(&addr);
    };
    if tx.recipients.len() >= MAX_RECIPIENTS {
        return Reply::TOO_MANY_RECIPIENTS;
    }
    let key = dest.key();
    if !tx.destinations.contains_key(&key) {
        let slot = shared.queues.reserve(&key);
        if slot.is_none() {
            tracing::info!(destination = %key, "destination queue full");
        }
        tx.destinations.insert(key.clone(), (dest, slot));
    }
    tx.recipients.push(Recipient { addr, key });
    Reply::OK
}

/// Delivers each destination's batch concurrently; one reply per recipient, in RCPT order.
/// `held` is the message's share of the memory budget, kept until every delivery ended.
async fn finish(
    tx: Transaction,
    outcome: DataOutcome,
    held: Reservation,
    shared: &Shared,
) -> Vec<Reply> {
    let refusal = match outcome {
        DataOutcome::Message(w) => Ok(Bytes::from(w)),
        DataOutcome::TooBig => Err(Reply::TOO_BIG),
        DataOutcome::OverBudget => {
            tracing::warn!("memory budget exhausted, deferring a message");
            Err(Reply::OVER_BUDGET)
        }
        DataOutcome::Invalid => Err(Reply::INVALID_DATA),
    };
    let wire = match refusal {
        Ok(wire) => wire,
        Err(reply) => return vec![reply; tx.recipients.len()],
    };
    let held = Arc::new(held);
    let sender = tx.sender.unwrap_or_default();
    let mut tasks = HashMap::new();
    for (key, (destination, slot)) in tx.destinations {
        let Some(slot) = slot else { continue };
        let recipients: Vec<String> = tx
            .recipients
            .iter()
            .filter(|r| r.key == key)
            .map(|r| r.addr.clone())
            .collect();
        let batch = Batch {
            destination,
            sender: sender.clone(),
            recipients,
            wire: wire.clone(),
            smtputf8: tx.smtputf8,
        };
        let deliverer = shared.deliverer.clone();
        let held = Arc::clone(&held);
        // The slot and the budget move into the task: they stay reserved until the delivery
        // really ends, even if Postfix hangs up first.
        let task = tokio::spawn(async move {
            let _held = (slot, held);
            deliverer.deliver(&batch).await
        });
        tasks.insert(key, task);
    }
    let mut results: HashMap<String, Reply> = HashMap::new();
    for (key, task) in tasks {
        let reply = task.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "delivery task failed");
            Reply::LOCAL_ERROR
        });
        results.insert(key, reply);
    }
    tx.recipients
        .iter()
        .map(|r| results.get(&r.key).cloned().unwrap_or(Reply::BUSY))
        .collect()
}
