//! The dict server: a unix-socket accept loop, per-connection transactions and a
//! [`DictHandler`] that is the service.
//!
//! Each connection is served by its own task, requests strictly in order. Replies to all
//! requests already buffered are written with one flush, so a pipelining Dovecot costs one
//! `write` per batch. A connection that sends an over-long line, stays idle too long or
//! breaks is closed; every other connection keeps being served.

use std::collections::HashMap;
use std::future::Future;
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, warn};

use super::codec::DictCodec;
use super::proto::{Lookup, Reply, Request};

/// What a dict service does with requests. Methods are async so a handler can move slow
/// work (password hashing, fsync) to `spawn_blocking` and keep fast paths inline.
pub trait DictHandler: Send + Sync + 'static {
    /// Answers `L<key>\t<user>`.
    fn lookup(&self, key: &str, user: Option<&str>) -> impl Future<Output = Lookup> + Send;

    /// Answers `I...\t<path>`: the rows to send before the terminating empty line.
    fn iterate(
        &self,
        path: &str,
        user: Option<&str>,
    ) -> impl Future<Output = Vec<(String, String)>> + Send {
        let _ = (path, user);
        async { Vec::new() }
    }

    /// Performs `S<tid>\t<key>\t<value>` right away (as the reference does) for the
    /// transaction's `user`; `false` makes the commit reply `F`.
    fn set(&self, user: Option<&str>, key: &str, value: &str) -> impl Future<Output = bool> + Send;
}

/// Limits of one server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; further ones wait in the backlog.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// Open transactions per connection; more are refused (their commit fails).
    pub max_transactions: usize,
    /// How long in-flight requests may take to finish after a stop.
    pub grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 16_384,
            idle_timeout: Duration::from_secs(600),
            max_transactions: 1024,
            grace: Duration::from_secs(10),
        }
    }
}

/// Serves `listener` with `handler` until `stop` is cancelled, then lets open connections
/// finish their current request (bounded by [`Limits::grace`]).
pub async fn serve<H: DictHandler>(
    listener: UnixListener,
    handler: Arc<H>,
    stop: CancellationToken,
    limits: Limits,
) -> std::io::Result<()> {
    let tasks = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let result = loop {
        let permit = tokio::select! {
            () = stop.cancelled() => break Ok(()),
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break Ok(()),
            },
        };
        let accepted = tokio::select! {
            () = stop.cancelled() => break Ok(()),
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => {
                let (handler, stop) = (handler.clone(), stop.clone());
                tasks.spawn(async move {
                    serve_connection(stream, handler, stop, limits).await;
                    drop(permit);
                });
            }
            Err(e) => match e.kind() {
                ErrorKind::ConnectionAborted | ErrorKind::Interrupted => {}
                _ if is_resource_exhaustion(&e) => {
                    error!(error = %e, "accept failed, pausing");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => break Err(e),
            },
        }
    };
    tasks.close();
    if tokio::time::timeout(limits.grace, tasks.wait())
        .await
        .is_err()
    {
        warn!("connections still open after the grace period");
    }
    result
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM: wait for resources instead of giving up.
fn is_resource_exhaustion(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12)) || e.kind() == ErrorKind::OutOfMemory
}

/// A transaction of one connection.
struct Tx {
    user: Option<String>,
    ok: bool,
}

/// Serves one connection until EOF, an error, the idle timeout or a stop.
pub async fn serve_connection<H: DictHandler>(
    stream: UnixStream,
    handler: Arc<H>,
    stop: CancellationToken,
    limits: Limits,
) {
    let mut framed = Framed::new(stream, DictCodec::default());
    let mut txs: HashMap<String, Tx> = HashMap::new();
    loop {
        let next = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            n = tokio::time::timeout(limits.idle_timeout, framed.next()) => n,
        };
        let item = match next {
            Err(_) => {
                debug!("closing idle dict connection");
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                warn!(error = %e, "closing dict connection");
                break;
            }
            Ok(Some(Ok(item))) => item,
        };
        let replies = handle(item, handler.as_ref(), &mut txs, limits.max_transactions).await;
        for reply in &replies {
            if framed.feed(reply).await.is_err() {
                return;
            }
        }
        let more_buffered = framed.read_buffer().contains(&b'\n');
        if !more_buffered && framed.flush().await.is_err() {
            return;
        }
    }
    let _ = framed.flush().await;
}

async fn handle<H: DictHandler>(
    item: Result<Request, super::ProtoError>,
    handler: &H,
    txs: &mut HashMap<String, Tx>,
    max_transactions: usize,
) -> Vec<Reply> {
    let request = match item {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "malformed dict request");
            return match e.command {
                b'L' => vec![Reply::Lookup(Lookup::Failed)],
                b'I' => vec![Reply::IterEnd],
                b'C' | b'D' => {
                    e.tid.and_then(|t| txs.remove(&t));
                    vec![Reply::Commit(false)]
                }
                b'S' => {
                    if let Some(tx) = e.tid.and_then(|t| txs.get_mut(&t)) {
                        tx.ok = false;
                    }
                    vec![]
                }
                _ => vec![],
            };
        }
    };
    match request {
        Request::Hello => vec![],
        Request::Lookup { key, user } => {
            vec![Reply::Lookup(handler.lookup(&key, user.as_deref()).await)]
        }
        Request::Iterate { path, user } => {
            let mut rows: Vec<Reply> = handler
                .iterate(&path, user.as_deref())
                .await
                .into_iter()
                .map(|(k, v)| Reply::Row(k, v))
                .collect();
            rows.push(Reply::IterEnd);
            rows
        }
        Request::Begin { tid, user } => {
            if txs.len() >= max_transactions && !txs.contains_key(&tid) {
                warn!("too many open dict transactions on one connection, refusing {tid}");
            } else {
                txs.insert(tid, Tx { user, ok: true });
            }
            vec![]
        }
        Request::Set { tid, key, value } => {
            match txs.get_mut(&tid) {
                Some(tx) => {
                    let ok = handler.set(tx.user.as_deref(), &key, &value).await;
                    if !ok {
                        debug!(key, "dict set failed");
                    }
                    tx.ok &= ok;
                }
                None => warn!("set for unknown dict transaction {tid:?} ignored"),
            }
            vec![]
        }
        Request::Commit { tid } => vec![Reply::Commit(txs.remove(&tid).is_some_and(|tx| tx.ok))],
        Request::Rollback { tid } => {
            txs.remove(&tid);
            vec![]
        }
        Request::Other { command } => {
            debug!(command = %char::from(command), "unknown dictproxy request ignored");
            vec![]
        }
    }
}
