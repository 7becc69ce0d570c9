//! The dict server: a unix-socket accept loop, per-connection transactions and a
//! [`DictHandler`] that is the service.
//!
//! Each connection is served by its own task, requests strictly in order. Replies to all
//! requests already buffered are written with one flush, so a pipelining Dovecot costs one
//! `write` per batch. A connection that sends an over-long line, stays idle too long or
//! breaks is closed; every other connection keeps being served.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::codec::DictCodec;
use super::proto::{Lookup, Reply, Request, encode_reply};

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

    /// Writes the service's figures for its metrics socket (see [`crate::metrics`]).
    fn render_metrics(&self, enc: &mut crate::metrics::Encoder) {
        let _ = enc;
    }
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
    crate::accept::accept_loop(
        &listener,
        limits.max_connections,
        &stop,
        limits.grace,
        |stream| serve_connection(stream, handler.clone(), stop.clone(), limits),
    )
    .await
}

/// A transaction of one connection.
struct Tx {
    user: Option<String>,
    ok: bool,
}

/// Initial read buffer of a connection: requests are short, and thousands of idle
/// connections must stay cheap. The buffer grows up to the line limit when needed.
const READ_BUFFER: usize = 512;

/// Serves one connection until EOF, an error, the idle timeout or a stop.
pub async fn serve_connection<H: DictHandler>(
    stream: UnixStream,
    handler: Arc<H>,
    stop: CancellationToken,
    limits: Limits,
) {
    let (reader, mut writer) = stream.into_split();
    let mut requests = FramedRead::with_capacity(reader, DictCodec::default(), READ_BUFFER);
    let mut out = BytesMut::new();
    let mut txs: HashMap<String, Tx> = HashMap::new();
    loop {
        let next = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            n = tokio::time::timeout(limits.idle_timeout, requests.next()) => n,
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
        for reply in handle(item, handler.as_ref(), &mut txs, limits.max_transactions).await {
            encode_reply(&reply, &mut out);
        }
        // Answer a pipelined batch with one write, once no complete request is left.
        let more_buffered = requests.read_buffer().contains(&b'\n');
        if !more_buffered && !out.is_empty() {
            if writer.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
    if !out.is_empty() {
        let _ = writer.write_all(&out).await;
    }
}

async fn handle<H: DictHandler>(
    item: Result<Request, super::ProtoError>,
    handler: &H,
    txs: &mut HashMap<String, Tx>,
    max_transactions: usize,
) -> Vec<Reply> {
    let request = match item {
        Ok(r) => r,
        Err(e) => return malformed(e, txs),
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

/// The answer to a request that could not be parsed: what Dovecot waits for after that
/// command (a failed lookup, an empty iteration, a failed commit), and a transaction it
/// belongs to is spoilt, so a half-understood set can never be committed.
fn malformed(e: super::ProtoError, txs: &mut HashMap<String, Tx>) -> Vec<Reply> {
    warn!(error = %e, "malformed dict request");
    match e.command {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// Records sets; `fail` keys fail.
    #[derive(Default)]
    struct Recorder {
        sets: Mutex<Vec<(Option<String>, String, String)>>,
    }

    impl DictHandler for Recorder {
        async fn lookup(&self, key: &str, user: Option<&str>) -> Lookup {
            match key {
                "missing" => Lookup::NotFound,
                _ => Lookup::Found(format!("{key}|{}", user.unwrap_or("-"))),
            }
        }

        async fn set(&self, user: Option<&str>, key: &str, value: &str) -> bool {
            self.sets.lock().unwrap().push((
                user.map(str::to_owned),
                key.to_owned(),
                value.to_owned(),
            ));
            key != "fail"
        }
    }

    async fn transcript(limits: Limits, input: &[u8]) -> (String, Arc<Recorder>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let listener = UnixListener::bind(&path).unwrap();
        let handler = Arc::new(Recorder::default());
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, handler.clone(), stop.clone(), limits));
        let mut c = UnixStream::connect(&path).await.unwrap();
        c.write_all(input).await.unwrap();
        c.shutdown().await.unwrap();
        let mut out = String::new();
        let mut r = BufReader::new(c);
        while r.read_line(&mut out).await.unwrap() > 0 {}
        stop.cancel();
        server.await.unwrap().unwrap();
        (out, handler)
    }

    #[tokio::test]
    async fn transactions_per_spec() {
        let (out, h) = transcript(
            Limits::default(),
            b"H3\t2\t0\t\tx\nB1\tu@x\nS1\tk\tv\nS1\tfail\t\nC1\nB2\tu@x\nS2\tk\tv2\nC2\nS9\tk\tv\nC9\nB3\nR3\nC3\nLkey\tu\nLmissing\nI0\t0\tp\nUx\n",
        )
        .await;
        assert_eq!(out, "F\nO\nF\nF\nOkey|u\nN\n\n");
        let sets = h.sets.lock().unwrap();
        assert_eq!(
            sets.len(),
            3,
            "S for an unknown transaction is ignored: {sets:?}"
        );
        assert_eq!(sets[0], (Some("u@x".into()), "k".into(), "v".into()));
    }

    #[tokio::test]
    async fn transaction_limit_per_connection() {
        let limits = Limits {
            max_transactions: 2,
            ..Limits::default()
        };
        let (out, _) = transcript(limits, b"B1\nB2\nB3\nC3\nC1\nB4\nC4\n").await;
        assert_eq!(
            out, "F\nO\nO\n",
            "the third open transaction is refused, a freed slot is reused"
        );
    }

    #[tokio::test]
    async fn malformed_lines_answered_in_protocol() {
        let (out, h) = transcript(
            Limits::default(),
            b"L\xff\tu\nI0\t0\t\xfe\nB1\tu\nS1\t\xff\tv\nC1\nC\xff\nLok\n",
        )
        .await;
        assert_eq!(out, "F\n\nF\nF\nOok|-\n");
        assert!(h.sets.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connections_are_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let listener = UnixListener::bind(&path).unwrap();
        let stop = CancellationToken::new();
        let limits = Limits {
            idle_timeout: Duration::from_secs(5),
            ..Limits::default()
        };
        tokio::spawn(serve(
            listener,
            Arc::new(Recorder::default()),
            stop.clone(),
            limits,
        ));
        let c = UnixStream::connect(&path).await.unwrap();
        let mut line = String::new();
        let n = BufReader::new(c).read_line(&mut line).await.unwrap();
        assert_eq!(n, 0, "closed after the idle timeout");
        stop.cancel();
    }
}
