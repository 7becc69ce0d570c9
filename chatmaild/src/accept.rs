//! The accept loop every server of the workspace runs (dict sockets, SMTP, LMTP, HTTP).
//!
//! Written once so each server gets the same guarantees: a bounded number of connections
//! served at once (the rest wait in the kernel's backlog), each on its own task so one
//! misbehaving client never delays the others, accept errors handled by kind (see
//! [`classify`]: a listener ends only when the socket itself is unusable), and a graceful
//! stop that lets connections in flight finish within a grace period.

use std::future::Future;
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use rustix::io::Errno;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, warn};

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
            Err(e) => match classify(&e) {
                AcceptError::Retry => debug!(error = %e, "accept failed, retrying"),
                AcceptError::Pause => {
                    error!(error = %e, "accept failed, pausing");
                    tokio::select! {
                        () = stop.cancelled() => break Ok(()),
                        () = tokio::time::sleep(ACCEPT_PAUSE) => {}
                    }
                }
                AcceptError::Fatal => break Err(e),
            },
        }
    };
    tasks.close();
    if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
        warn!("connections still open after the grace period");
    }
    result
}

/// How long the loop waits after an accept error that signals a shortage (descriptors,
/// memory) before it tries again.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// What the accept loop does after a failed `accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptError {
    /// The error belonged to one connection, not to the listener: accept the next at once.
    Retry,
    /// A shortage of descriptors or memory, or an error this table does not know: log it,
    /// wait 100 ms (so a lasting condition cannot spin the loop) and go on.
    Pause,
    /// The listening socket itself is unusable: end the loop with the error.
    Fatal,
}

/// Classifies an accept error.
///
/// Linux's `accept(2)` reports network errors that are already pending on the *new*
/// connection (`ENETDOWN`, `EPROTO`, `ENOPROTOOPT`, `EHOSTDOWN`, `ENONET`, `EHOSTUNREACH`,
/// `EOPNOTSUPP`, `ENETUNREACH`) and asks callers to retry on them like on `EAGAIN`; a
/// client that reset or aborted before being accepted (`ECONNABORTED`, `ECONNRESET`), a
/// signal (`EINTR`), a firewall refusal (`EPERM`) and `ETIMEDOUT` are per-connection as
/// well. `EMFILE`, `ENFILE`, `ENOBUFS` and `ENOMEM` clear when other connections close.
/// Only `EBADF`, `EINVAL`, `ENOTSOCK` and `EFAULT` mean the listener cannot work any more.
pub fn classify(e: &std::io::Error) -> AcceptError {
    match Errno::from_io_error(e) {
        Some(
            Errno::CONNABORTED
            | Errno::CONNRESET
            | Errno::AGAIN
            | Errno::INTR
            | Errno::PROTO
            | Errno::NETDOWN
            | Errno::NOPROTOOPT
            | Errno::HOSTDOWN
            | Errno::NONET
            | Errno::HOSTUNREACH
            | Errno::OPNOTSUPP
            | Errno::NETUNREACH
            | Errno::PERM
            | Errno::TIMEDOUT,
        ) => AcceptError::Retry,
        Some(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM) => AcceptError::Pause,
        Some(Errno::BADF | Errno::INVAL | Errno::NOTSOCK | Errno::FAULT) => AcceptError::Fatal,
        Some(_) => AcceptError::Pause,
        // An error without an OS code (from a wrapper): judge it by its kind.
        None => match e.kind() {
            ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionReset
            | ErrorKind::Interrupted
            | ErrorKind::WouldBlock
            | ErrorKind::TimedOut => AcceptError::Retry,
            ErrorKind::InvalidInput => AcceptError::Fatal,
            _ => AcceptError::Pause,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn accept_errors_are_classified() {
        use AcceptError::{Fatal, Pause, Retry};
        let os = |errno: Errno| std::io::Error::from_raw_os_error(errno.raw_os_error());
        for (errno, want) in [
            (Errno::CONNABORTED, Retry),
            (Errno::CONNRESET, Retry),
            (Errno::AGAIN, Retry),
            (Errno::INTR, Retry),
            (Errno::PROTO, Retry),
            (Errno::NETDOWN, Retry),
            (Errno::NOPROTOOPT, Retry),
            (Errno::HOSTDOWN, Retry),
            (Errno::NONET, Retry),
            (Errno::HOSTUNREACH, Retry),
            (Errno::OPNOTSUPP, Retry),
            (Errno::NETUNREACH, Retry),
            (Errno::PERM, Retry),
            (Errno::TIMEDOUT, Retry),
            (Errno::MFILE, Pause),
            (Errno::NFILE, Pause),
            (Errno::NOBUFS, Pause),
            (Errno::NOMEM, Pause),
            (Errno::IO, Pause),
            (Errno::BADF, Fatal),
            (Errno::INVAL, Fatal),
            (Errno::NOTSOCK, Fatal),
            (Errno::FAULT, Fatal),
        ] {
            assert_eq!(classify(&os(errno)), want, "{errno:?}");
        }
        let kind = |k: ErrorKind| std::io::Error::new(k, "wrapped");
        assert_eq!(classify(&kind(ErrorKind::ConnectionAborted)), Retry);
        assert_eq!(classify(&kind(ErrorKind::Interrupted)), Retry);
        assert_eq!(classify(&kind(ErrorKind::OutOfMemory)), Pause);
        assert_eq!(classify(&kind(ErrorKind::Other)), Pause);
        assert_eq!(classify(&kind(ErrorKind::InvalidInput)), Fatal);
    }

    /// A listener that first fails with the given errors, then hands out connections of
    /// a real socket pair.
    struct Flaky {
        errors: std::sync::Mutex<Vec<Errno>>,
        inner: tokio::net::TcpListener,
    }

    impl Listener for Flaky {
        type Conn = tokio::net::TcpStream;

        async fn accept_conn(&self) -> std::io::Result<Self::Conn> {
            let next = self.errors.lock().unwrap().pop();
            match next {
                Some(errno) => Err(std::io::Error::from_raw_os_error(errno.raw_os_error())),
                None => self.inner.accept().await.map(|(s, _)| s),
            }
        }
    }

    #[tokio::test]
    async fn transient_and_exhaustion_errors_do_not_end_the_listener() {
        let inner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        // Popped from the back: EPROTO first.
        let errors = vec![
            Errno::NETUNREACH,
            Errno::MFILE,
            Errno::CONNABORTED,
            Errno::NOBUFS,
            Errno::PROTO,
        ];
        let listener = Flaky {
            errors: std::sync::Mutex::new(errors),
            inner,
        };
        let stop = CancellationToken::new();
        let server = tokio::spawn({
            let stop = stop.clone();
            async move {
                let started = std::time::Instant::now();
                let r = accept_loop(
                    &listener,
                    4,
                    &stop,
                    Duration::from_secs(5),
                    |mut s: tokio::net::TcpStream| async move {
                        let _ = s.write_all(b"hi").await;
                    },
                )
                .await;
                (r, started.elapsed(), listener.errors.lock().unwrap().len())
            }
        });
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out, b"hi", "served after five failed accepts");
        stop.cancel();
        let (r, elapsed, left) = server.await.unwrap();
        r.unwrap();
        assert_eq!(left, 0, "every error was seen");
        assert!(
            elapsed >= 2 * ACCEPT_PAUSE,
            "paused after EMFILE and ENOBUFS"
        );
    }

    #[tokio::test]
    async fn a_broken_listener_ends_the_loop_with_its_error() {
        let inner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listener = Flaky {
            errors: std::sync::Mutex::new(vec![Errno::BADF, Errno::CONNRESET]),
            inner,
        };
        let stop = CancellationToken::new();
        let r = accept_loop(&listener, 1, &stop, Duration::from_secs(1), |_s| async {}).await;
        assert_eq!(
            r.unwrap_err().raw_os_error(),
            Some(Errno::BADF.raw_os_error())
        );
    }

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
