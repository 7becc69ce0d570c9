//! Publication of a snapshot on the daemon's metrics socket, one task per reader.

use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Encoder;

/// File name of a daemon's metrics socket, in the directory of its service socket.
pub const SOCKET_NAME: &str = "metrics.socket";

/// Time a reader gets to take the whole snapshot.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Readers served at once; more wait in the listen backlog.
pub const MAX_READERS: usize = 4;

/// The metrics socket of a daemon whose service socket is `service_socket`:
/// `metrics.socket` beside it (`/run/chatmail-lastlogin/metrics.socket`).
pub fn socket_path(service_socket: &Path) -> PathBuf {
    service_socket
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(SOCKET_NAME)
}

/// Environment variable naming the metrics socket of a daemon that has no service socket
/// of its own (filtermail); tests point it into a temporary directory.
pub const SOCKET_ENV: &str = "CHATMAIL_METRICS_SOCKET";

/// The metrics socket of a daemon without a service socket: `$CHATMAIL_METRICS_SOCKET`,
/// else `default` (its [`crate::daemons`] entry, e.g.
/// `/run/filtermail-transport/metrics.socket`).
pub fn socket_from_env(default: impl AsRef<Path>) -> PathBuf {
    std::env::var_os(SOCKET_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| default.as_ref().to_path_buf(), PathBuf::from)
}

/// Something that has figures to publish.
pub trait Collect: Send + Sync + 'static {
    /// Writes the current figures.
    fn collect(&self, enc: &mut Encoder);
}

impl<F: Fn(&mut Encoder) + Send + Sync + 'static> Collect for F {
    fn collect(&self, enc: &mut Encoder) {
        self(enc)
    }
}

/// Binds the metrics socket at `path` (a stale socket there is replaced, any other file
/// left alone) and serves snapshots of `source` until `stop`. Failing to bind is logged
/// and ends only the publication: the daemon serves on without metrics.
pub fn spawn_publisher<C: Collect>(path: &Path, source: Arc<C>, stop: CancellationToken) {
    match bind(path) {
        Ok(listener) => {
            info!(socket = %path.display(), "publishing metrics");
            tokio::spawn(publish(listener, source, stop));
        }
        Err(e) => warn!(
            socket = %path.display(),
            "cannot bind the metrics socket, serving without metrics: {e}"
        ),
    }
}

/// Binds a unix socket at `path`, replacing only a stale socket: one that another
/// process still serves (two daemons started with sockets in one directory) is kept.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    ErrorKind::AddrInUse,
                    "another process serves this socket",
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(std::io::Error::new(
                ErrorKind::AlreadyExists,
                "exists and is not a socket; refusing to remove it",
            ));
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    UnixListener::bind(path)
}

/// Serves one snapshot of `source` to each reader of `listener` until `stop`.
pub async fn publish<C: Collect>(listener: UnixListener, source: Arc<C>, stop: CancellationToken) {
    let result = crate::accept::accept_loop(
        &listener,
        MAX_READERS,
        &stop,
        Duration::ZERO,
        |mut stream: tokio::net::UnixStream| {
            let source = source.clone();
            async move {
                let mut enc = Encoder::new();
                source.collect(&mut enc);
                let text = enc.finish();
                let write = async {
                    stream.write_all(text.as_bytes()).await?;
                    stream.shutdown().await
                };
                match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => debug!("metrics reader went away: {e}"),
                    Err(_) => debug!("metrics reader too slow, dropped"),
                }
            }
        },
    )
    .await;
    if let Err(e) = result {
        warn!("metrics socket failed, no more metrics: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Counter;
    use tokio::io::AsyncReadExt;

    #[test]
    fn socket_sits_beside_the_service_socket() {
        assert_eq!(
            socket_path(Path::new("/run/chatmail-lastlogin/lastlogin.socket")),
            PathBuf::from("/run/chatmail-lastlogin/metrics.socket")
        );
    }

    #[tokio::test]
    async fn a_live_socket_is_not_taken_over_a_stale_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_NAME);
        let first = bind(&path).unwrap();
        let err = bind(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse);
        drop(first);
        assert!(path.exists(), "left behind like after a crash");
        drop(bind(&path).unwrap());
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        assert!(bind(&file).is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"x");
    }

    #[tokio::test]
    async fn a_reader_that_never_reads_neither_blocks_others_nor_the_recorder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_NAME);
        let counter = Arc::new(Counter::new());
        // A snapshot far larger than a socket buffer, so a non-reading reader would block
        // a writer without the timeout.
        let c = counter.clone();
        let source = Arc::new(move |e: &mut Encoder| {
            e.counter("chatmail_n_total", "n", &c);
            e.raw(&"# filler\n".repeat(200_000));
        });
        let stop = CancellationToken::new();
        spawn_publisher(&path, source, stop.clone());
        // MAX_READERS stuck readers hold every slot until WRITE_TIMEOUT.
        let mut stuck = Vec::new();
        for _ in 0..MAX_READERS {
            stuck.push(tokio::net::UnixStream::connect(&path).await.unwrap());
        }
        let started = std::time::Instant::now();
        for _ in 0..1000 {
            counter.inc();
        }
        assert!(started.elapsed() < Duration::from_millis(100));
        let mut r = tokio::net::UnixStream::connect(&path).await.unwrap();
        let mut text = String::new();
        tokio::time::timeout(WRITE_TIMEOUT * 3, r.read_to_string(&mut text))
            .await
            .expect("served once the stuck readers timed out")
            .unwrap();
        assert!(text.contains("chatmail_n_total 1000\n"), "{}", &text[..200]);
        stop.cancel();
    }
}
