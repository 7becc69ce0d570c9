//! Per-operation I/O deadlines for the HTTP connections.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A stream whose reads and writes each fail with `TimedOut` after waiting `timeout`
/// without progress, so a stalled peer cannot hold a connection (and its buffers) forever.
#[derive(Debug)]
pub struct TimeoutIo<S> {
    inner: S,
    timeout: Duration,
    read_deadline: Option<Pin<Box<Sleep>>>,
    write_deadline: Option<Pin<Box<Sleep>>>,
}

impl<S> TimeoutIo<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, timeout: Duration) -> TimeoutIo<S> {
        TimeoutIo {
            inner,
            timeout,
            read_deadline: None,
            write_deadline: None,
        }
    }
}

/// Polls `op`; while it is pending, the deadline in `slot` (armed on first wait) runs.
fn with_deadline<T>(
    slot: &mut Option<Pin<Box<Sleep>>>,
    timeout: Duration,
    cx: &mut Context<'_>,
    op: Poll<io::Result<T>>,
) -> Poll<io::Result<T>> {
    match op {
        Poll::Ready(r) => {
            *slot = None;
            Poll::Ready(r)
        }
        Poll::Pending => {
            let sleep = slot.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
            ready!(sleep.as_mut().poll(cx));
            *slot = None;
            Poll::Ready(Err(io::ErrorKind::TimedOut.into()))
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimeoutIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let op = Pin::new(&mut this.inner).poll_read(cx, buf);
        with_deadline(&mut this.read_deadline, this.timeout, cx, op)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimeoutIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let op = Pin::new(&mut this.inner).poll_write(cx, buf);
        with_deadline(&mut this.write_deadline, this.timeout, cx, op)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let op = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        with_deadline(&mut this.write_deadline, this.timeout, cx, op)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let op = Pin::new(&mut this.inner).poll_flush(cx);
        with_deadline(&mut this.write_deadline, this.timeout, cx, op)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let op = Pin::new(&mut this.inner).poll_shutdown(cx);
        with_deadline(&mut this.write_deadline, this.timeout, cx, op)
    }
}
