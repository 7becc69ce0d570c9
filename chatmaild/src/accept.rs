//! The accept loop every server of the workspace runs (dict sockets, SMTP, LMTP, HTTP).
//!
//! Written once so each server gets the same guarantees: a bounded number of connections
//! served at once (the rest wait in the kernel's backlog), each on its own task so one
//! misbehaving client never delays the others, accept errors handled by kind (a client
//! that aborted is skipped, running out of descriptors or memory pauses instead of
//! exiting), and a graceful stop that lets connections in flight finish within a grace
//! period.

use std::future::Future;
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, warn};

/// A listening socket connections can be accepted from.
pub trait Listener {
    /// What one accepted connection is (with its peer address where there is one).
    type Conn: Send + 'static;

    /// Waits for the next connection.
    fn accept_conn(&self) -> impl Future<Output = std::io::Result<Self::Conn>> + Send;
}

impl Listener for tokio::net::UnixListener {
    type Conn = tokio::net::UnixStream;

    async fn accept_conn(&self) -> std::io::Result<Self::Conn> {
        self.accept().await.map(|(stream, _)| stream)
    }
}

impl Listener for tokio::net::TcpListener {
    type Conn = (tokio::net::TcpStream, std::net::SocketAddr);

    async fn accept_conn(&self) -> std::io::Result<Self::Conn> {
        self.accept().await
    }
}

/// Accepts connections on `listener` until `stop` is cancelled, serving each with
/// `serve(conn)` on its own task and at most `max_connections` at once; then waits up to
/// `grace` for the connections in flight. Returns the accept error that ended it, if any.
pub async fn accept_loop<L, F, Fut>(
    listener: &L,
    max_connections: usize,
    stop: &CancellationToken,
    grace: Duration,
    mut serve: F,
) -> std::io::Result<()>
where
    L: Listener,
    F: FnMut(L::Conn) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tasks = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(max_connections));
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
            a = listener.accept_conn() => a,
        };
        match accepted {
            Ok(conn) => {
                let connection = serve(conn);
                tasks.spawn(async move {
                    connection.await;
                    drop(permit);
                });
            }
            Err(e) if is_client_gone(&e) => {}
            Err(e) if is_resource_exhaustion(&e) => {
                error!(error = %e, "accept failed, pausing");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => break Err(e),
        }
    };
    tasks.close();
    if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
        warn!("connections still open after the grace period");
    }
    result
}

/// The client went away between connect and accept: skip it.
fn is_client_gone(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionReset
            | ErrorKind::Interrupted
            | ErrorKind::WouldBlock
    )
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM: wait for resources instead of giving up.
fn is_resource_exhaustion(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12)) || e.kind() == ErrorKind::OutOfMemory
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn serves_concurrently_within_the_limit_and_drains_on_stop() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let active = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (a, p) = (active.clone(), peak.clone());
        let server = tokio::spawn({
            let stop = stop.clone();
            async move {
                accept_loop(
                    &listener,
                    2,
                    &stop,
                    Duration::from_secs(5),
                    move |(mut s, _): (tokio::net::TcpStream, _)| {
                        let (a, p) = (a.clone(), p.clone());
                        async move {
                            let now = a.fetch_add(1, Ordering::SeqCst) + 1;
                            p.fetch_max(now, Ordering::SeqCst);
                            let mut b = [0u8; 1];
                            let _ = s.read(&mut b).await;
                            let _ = s.write_all(b"ok").await;
                            a.fetch_sub(1, Ordering::SeqCst);
                        }
                    },
                )
                .await
            }
        });
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(active.load(Ordering::SeqCst), 2, "only two served at once");
        for c in &mut clients {
            c.write_all(b"x").await.unwrap();
        }
        for c in &mut clients {
            let mut out = Vec::new();
            c.read_to_end(&mut out).await.unwrap();
            assert_eq!(out, b"ok", "the waiting clients were served later");
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        stop.cancel();
        server.await.unwrap().unwrap();
    }
}
