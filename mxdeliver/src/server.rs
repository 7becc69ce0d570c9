//! The LMTP server Postfix delivers to (`default_transport`, SPEC §6.12): connection loop,
//! transactions with per-destination queue slots, and per-recipient replies after DATA.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::deliver::{Batch, Deliverer};
use crate::lmtp::{
    Command, DataOutcome, DataReceiver, Destination, parse_command, parse_recipient,
};
use crate::queue::{Queues, Slot};
use crate::reply::Reply;

/// A command line longer than this closes the connection (RFC 5321 allows 512 octets).
const MAX_LINE: usize = 4096;
/// Recipients per transaction (Postfix sends at most `lmtp_destination_recipient_limit`, 50).
const MAX_RECIPIENTS: usize = 1000;
/// A client silent for this long is disconnected.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

const GREETING: &str = "220 filtermail LMTP\r\n";
/// `8BITMIME` is required by SPEC §6.2; `SMTPUTF8` is passed on to remote servers that offer it.
const LHLO_REPLY: &str = "250-filtermail\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 OK\r\n";

/// State shared by all connections.
#[derive(Debug)]
pub struct Shared {
    /// Per-destination queue slots.
    pub queues: Queues,
    /// Delivery machinery.
    pub deliverer: Arc<Deliverer>,
    /// `max_message_size` in bytes.
    pub max_message_size: usize,
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

enum Line {
    Line(Vec<u8>),
    Closed,
}

impl Conn {
    async fn read_line(&mut self) -> std::io::Result<Line> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(pos + 1);
                // SPEC §6.2: lines end with CRLF; a bare LF ends the session.
                return Ok(match line.strip_suffix(b"\r\n") {
                    Some(l) => Line::Line(l.to_vec()),
                    None => Line::Closed,
                });
            }
            if self.buf.len() > MAX_LINE {
                self.stream.write_all(b"500 Line too long\r\n").await?;
                return Ok(Line::Closed);
            }
            if self.read_more().await? == 0 {
                return Ok(Line::Closed);
            }
        }
    }

    async fn read_more(&mut self) -> std::io::Result<usize> {
        match tokio::time::timeout(IDLE_TIMEOUT, self.stream.read_buf(&mut self.buf)).await {
            Ok(r) => r,
            Err(_) => Ok(0),
        }
    }

    async fn read_data(&mut self, limit: usize) -> std::io::Result<Option<DataOutcome>> {
        let mut rx = DataReceiver::new(limit);
        loop {
            if !self.buf.is_empty() {
                let (used, outcome) = rx.feed(&self.buf);
                self.buf.advance(used);
                if outcome.is_some() {
                    return Ok(outcome);
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
    conn.stream.write_all(GREETING.as_bytes()).await?;
    let mut tx = Transaction::default();
    loop {
        let line = tokio::select! {
            () = stop.cancelled() => {
                conn.stream.write_all(b"421 Shutting down\r\n").await?;
                return Ok(());
            }
            line = conn.read_line() => line?,
        };
        let Line::Line(line) = line else {
            return Ok(());
        };
        let reply: String = match parse_command(&line) {
            Command::Hello => {
                tx = Transaction::default();
                LHLO_REPLY.to_owned()
            }
            Command::Mail(_) if tx.sender.is_some() => "503 Nested MAIL command\r\n".to_owned(),
            Command::Mail(None) => "500 Invalid address in MAIL FROM\r\n".to_owned(),
            Command::Mail(Some(addr)) => {
                tx.smtputf8 = has_param(&line, "SMTPUTF8");
                tx.sender = Some(addr);
                "250 OK\r\n".to_owned()
            }
            Command::Rcpt(_) if tx.sender.is_none() => "503 Need MAIL command\r\n".to_owned(),
            Command::Rcpt(None) => "501 Invalid address in RCPT TO\r\n".to_owned(),
            Command::Rcpt(Some(addr)) => rcpt(&mut tx, shared, addr),
            Command::Data if tx.sender.is_none() || tx.recipients.is_empty() => {
                "503 Need MAIL and RCPT commands\r\n".to_owned()
            }
            Command::Data => {
                if tx.destinations.values().all(|(_, slot)| slot.is_none()) {
                    // Before 354, so Postfix defers without sending the message.
                    tx = Transaction::default();
                    Reply::busy().to_line()
                } else {
                    conn.stream
                        .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                        .await?;
                    let Some(outcome) = conn.read_data(shared.max_message_size).await? else {
                        return Ok(());
                    };
                    let replies = finish(std::mem::take(&mut tx), outcome, shared).await;
                    replies.iter().map(Reply::to_line).collect()
                }
            }
            Command::Rset => {
                tx = Transaction::default();
                "250 OK\r\n".to_owned()
            }
            Command::Noop => "250 OK\r\n".to_owned(),
            Command::Quit => {
                conn.stream.write_all(b"221 OK\r\n").await?;
                return Ok(());
            }
            Command::Unknown => "500 Command not recognized\r\n".to_owned(),
        };
        conn.stream.write_all(reply.as_bytes()).await?;
    }
}

fn has_param(line: &[u8], param: &str) -> bool {
    String::from_utf8_lossy(line)
        .rsplit_once('>')
        .is_some_and(|(_, params)| {
            params
                .split_ascii_whitespace()
                .any(|p| p.eq_ignore_ascii_case(param))
        })
}

fn rcpt(tx: &mut Transaction, shared: &Shared, addr: String) -> String {
    let Some(dest) = parse_recipient(&addr) else {
        return Reply::new(553, format!("Invalid email address: {addr}")).to_line();
    };
    if tx.recipients.len() >= MAX_RECIPIENTS {
        return "452 4.5.3 Too many recipients\r\n".to_owned();
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
    "250 OK\r\n".to_owned()
}

/// Delivers each destination's batch concurrently; one reply per recipient, in RCPT order.
async fn finish(tx: Transaction, outcome: DataOutcome, shared: &Shared) -> Vec<Reply> {
    let wire = match outcome {
        DataOutcome::Message(w) => Bytes::from(w),
        DataOutcome::TooBig => {
            return vec![Reply::new(552, "Message exceeds maximum size"); tx.recipients.len()];
        }
        DataOutcome::Invalid => return vec![Reply::new(500, "Invalid DATA"); tx.recipients.len()],
    };
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
        // The slot moves into the task: it stays reserved until the delivery really ends, even
        // if Postfix hangs up first.
        let task = tokio::spawn(async move {
            let _slot = slot;
            deliverer.deliver(&batch).await
        });
        tasks.insert(key, task);
    }
    let mut results: HashMap<String, Reply> = HashMap::new();
    for (key, task) in tasks {
        let reply = task.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "delivery task failed");
            Reply::local_error()
        });
        results.insert(key, reply);
    }
    tx.recipients
        .iter()
        .map(|r| results.get(&r.key).cloned().unwrap_or_else(Reply::busy))
        .collect()
}
