//! TURN credentials from `chatmail-turn` (SPEC §5.6): connect to its unix socket, read
//! one line. Both steps are bounded by a timeout so a hung TURN service costs a lookup
//! at most a few seconds and never blocks other requests.

use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;

use crate::error::Error;

/// Timeout for the connect and, separately, for reading the line (the reference's 5 s).
pub const TURN_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest credentials line accepted.
const MAX_LINE: usize = 4096;

/// Reads the credentials line from the socket at `path`: UTF-8, stripped.
pub async fn credentials(path: &Path, timeout: Duration) -> Result<String, Error> {
    let fail = |reason: String| Error::Turn {
        path: path.to_owned(),
        reason,
    };
    let mut stream = tokio::time::timeout(timeout, UnixStream::connect(path))
        .await
        .map_err(|_| fail("connect timed out".into()))?
        .map_err(|e| fail(e.to_string()))?;
    let read = async {
        let mut line = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            let n = stream.read(&mut buf).await?;
            let chunk = buf.get(..n).unwrap_or_default();
            if let Some(end) = chunk.iter().position(|&b| b == b'\n') {
                line.extend_from_slice(chunk.get(..end).unwrap_or_default());
                return Ok(line);
            }
            line.extend_from_slice(chunk);
            if n == 0 || line.len() > MAX_LINE {
                return Ok(line);
            }
        }
    };
    let line: Vec<u8> = tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| fail("read timed out".into()))?
        .map_err(|e: std::io::Error| fail(e.to_string()))?;
    if line.len() > MAX_LINE {
        return Err(fail("line too long".into()));
    }
    let text = String::from_utf8(line).map_err(|_| fail("reply is not UTF-8".into()))?;
    Ok(text.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::UnixListener;

    #[tokio::test]
    async fn reads_one_stripped_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("turn.socket");
        let listener = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b" testuser:testpass \nignored").await.unwrap();
        });
        assert_eq!(
            credentials(&path, TURN_TIMEOUT).await.unwrap(),
            "testuser:testpass"
        );
    }

    #[tokio::test]
    async fn missing_socket_fails() {
        let dir = tempfile::tempdir().unwrap();
        let err = credentials(&dir.path().join("none"), TURN_TIMEOUT).await;
        assert!(err.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn silent_server_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("turn.socket");
        // Never accepted: the backlog completes the connect, the read waits forever.
        let _listener = UnixListener::bind(&path).unwrap();
        let err = credentials(&path, TURN_TIMEOUT).await.unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
    }

    #[tokio::test]
    async fn invalid_utf8_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("turn.socket");
        let listener = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"\xff\xfe\n").await.unwrap();
        });
        assert!(credentials(&path, TURN_TIMEOUT).await.is_err());
    }
}
