//! The SMTP listener: accept loop and per-connection I/O around the state machines of
//! [`crate::smtp`]. Many sessions run at once (one task each, bounded by a semaphore);
//! idle clients are timed out. On shutdown accepting stops, a session waiting for a command
//! gets `421` and is closed at once (RFC 5321 §3.8), and a session receiving or processing
//! a message gets a grace period to finish it, then its `421`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatmaild::accept::accept_loop;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::Filter;
use crate::budget::Reservation;
use crate::error::Error;
use crate::reply::{FilterReply, Reply};
use crate::smtp::{DataEnd, Session, Step, data_reader, refusal};
use chatmail_smtp::{Line, next_line};

/// Log line tests wait for before connecting (SPEC §6.1).
pub const LOG_SERVING: &str = "entering serving loop";
/// How long a client may stay silent (Postfix's own proxy timeout is 100 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Most sessions served at once; further clients wait in the listen queue.
const MAX_SESSIONS: usize = 2048;
/// Time sessions in flight get to finish after a stop request.
const GRACE: Duration = Duration::from_secs(30);
/// Read size during DATA.
const READ_CHUNK: usize = 64 * 1024;

/// Serves SMTP on `listener` until `stop` is cancelled.
pub async fn run(
    listener: TcpListener,
    filter: Arc<Filter>,
    stop: CancellationToken,
) -> Result<(), Error> {
    let result = accept_loop(&listener, MAX_SESSIONS, &stop, GRACE, |(stream, peer)| {
        let filter = Arc::clone(&filter);
        let stop = stop.clone();
        async move {
            if let Err(e) = session(stream, &filter, &stop).await {
                debug!(%peer, "session ended: {e}");
            }
        }
    })
    .await
    .map_err(Error::Accept);
    info!("stopped");
    result
}

async fn write(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await
}

/// Reads more bytes into `buf`; `Ok(false)` on EOF. Idle clients get a 421.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    buf.reserve(READ_CHUNK);
    match tokio::time::timeout(IDLE_TIMEOUT, stream.read_buf(buf)).await {
        Ok(n) => Ok(n? > 0),
        Err(_) => {
            let _ = write(stream, &Reply::TIMEOUT.to_wire()).await;
            Err(std::io::ErrorKind::TimedOut.into())
        }
    }
}

/// Reads the next command bytes into `buf`; `Ok(false)` on EOF, or after a `421` once
/// `stop` is cancelled (no transaction is open between commands that matters: Postfix
/// retries one cut short).
async fn read_command(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    stop: &CancellationToken,
) -> std::io::Result<bool> {
    tokio::select! {
        biased;
        () = stop.cancelled() => {
            write(stream, &Reply::SHUTTING_DOWN.to_wire()).await?;
            let _ = stream.shutdown().await;
            Ok(false)
        }
        more = read_more(stream, buf) => more,
    }
}

/// One SMTP connection from Postfix, until it ends or `stop` finds it between commands.
async fn session(
    mut stream: TcpStream,
    filter: &Arc<Filter>,
    stop: &CancellationToken,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let _in_flight = filter.metrics.session();
    write(&mut stream, &Reply::GREETING.to_wire()).await?;
    let mut smtp =
        Session::new(filter.mode, filter.max_message_size).with_local(Arc::clone(&filter.local));
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    loop {
        let (step, used) = match next_line(&buf) {
            Line::Complete(line, used) => (
                smtp.on_line(line, filter.limiter.as_ref(), Instant::now()),
                used,
            ),
            Line::Incomplete => {
                if !read_command(&mut stream, &mut buf, stop).await? {
                    return Ok(());
                }
                continue;
            }
            Line::BareLf => (Step::Close(Reply::BARE_LF), buf.len()),
            Line::TooLong => (Step::Close(Reply::LINE_TOO_LONG), buf.len()),
        };
        buf.drain(..used);
        match step {
            Step::Reply(reply) => {
                filter.metrics.command(&reply);
                write(&mut stream, &reply.to_wire()).await?;
            }
            Step::Raw(bytes) => write(&mut stream, &bytes).await?,
            Step::Close(reply) => {
                write(&mut stream, &reply.to_wire()).await?;
                let _ = stream.shutdown().await;
                return Ok(());
            }
            Step::Data if filter.budget.exhausted() => {
                // Nothing left for another message: refuse before inviting the data.
                warn!("memory budget exhausted, deferring a message");
                smtp.take_transaction();
                filter.metrics.message(&Reply::OVER_BUDGET);
                write(&mut stream, &Reply::OVER_BUDGET.to_wire()).await?;
            }
            Step::Data => {
                write(&mut stream, &Reply::START_DATA.to_wire()).await?;
                let (end, _reservation) = read_data(&mut stream, &mut buf, filter).await?;
                let (env, params) = smtp.take_transaction();
                let reply = match end {
                    DataEnd::Message(message) => filter.process(env, params, message).await,
                    other => {
                        warn!("message refused while receiving: {other:?}");
                        refusal(&other).unwrap_or(Reply::LOCAL_ERROR)
                    }
                };
                filter.metrics.message(&reply);
                write(&mut stream, &reply.to_wire()).await?;
            }
        }
    }
}

/// Reads DATA up to the end marker; bytes after it stay in `buf` for the command reader.
/// The reservation covers the message until it is dropped.
async fn read_data(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    filter: &Filter,
) -> std::io::Result<(DataEnd, Reservation)> {
    let mut reader = data_reader(filter.max_message_size, Some(Arc::clone(&filter.budget)));
    loop {
        let (used, end) = reader.feed(buf);
        buf.drain(..used);
        if let Some(end) = end {
            return Ok((end, reader.take_allowance()));
        }
        if !read_more(stream, buf).await? {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}
