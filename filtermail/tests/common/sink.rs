//! A real SMTP server on loopback standing in for Postfix's reinjection port: it records
//! every transaction and answers the final dot with a configurable reply.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One received transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The full `MAIL FROM:` line (parameters included).
    pub mail_line: String,
    /// The RCPT addresses.
    pub rcpts: Vec<String>,
    /// The message after undoing dot-stuffing.
    pub data: Vec<u8>,
}

/// A running sink.
#[derive(Clone)]
pub struct Sink {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Everything received so far.
    pub received: Arc<Mutex<Vec<Received>>>,
    /// Connections accepted so far.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl Sink {
    /// Starts a sink answering `final_reply` (e.g. `250 2.0.0 Ok`) after each message.
    pub async fn start(final_reply: &'static str) -> Sink {
        Sink::start_with(final_reply, false).await
    }

    /// Like [`Sink::start`]; with `hang_up` the sink closes each connection right after
    /// answering a message, as a server whose idle timeout expired would.
    pub async fn start_with(final_reply: &'static str, hang_up: bool) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let rec = Arc::clone(&received);
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let conns = Arc::clone(&connections);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                conns.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let rec = Arc::clone(&rec);
                tokio::spawn(async move {
                    let _ = serve(stream, rec, final_reply, hang_up).await;
                });
            }
        });
        Sink {
            port,
            received,
            connections,
        }
    }

    /// The transactions received so far.
    pub fn messages(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn serve(
    stream: tokio::net::TcpStream,
    rec: Arc<Mutex<Vec<Received>>>,
    final_reply: &str,
    hang_up: bool,
) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 sink ESMTP\r\n").await?;
    let mut cur = Received {
        mail_line: String::new(),
        rcpts: vec![],
        data: vec![],
    };
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let upper = text.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            w.write_all(b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                .await?;
        } else if upper.starts_with("MAIL") {
            cur.mail_line = text;
            cur.rcpts.clear();
            w.write_all(b"250 2.1.0 Ok\r\n").await?;
        } else if upper.starts_with("RCPT") {
            let addr = text
                .split_once('<')
                .and_then(|(_, r)| r.split_once('>'))
                .map(|(a, _)| a.to_string())
                .unwrap_or_default();
            cur.rcpts.push(addr);
            w.write_all(b"250 2.1.5 Ok\r\n").await?;
        } else if upper == "DATA" {
            w.write_all(b"354 go ahead\r\n").await?;
            let mut data = Vec::new();
            loop {
                line.clear();
                if r.read_until(b'\n', &mut line).await? == 0 {
                    return Ok(());
                }
                if line == b".\r\n" {
                    break;
                }
                let l = line.strip_prefix(b".").unwrap_or(&line);
                data.extend_from_slice(l);
            }
            cur.data = data;
            rec.lock().unwrap().push(cur.clone());
            w.write_all(format!("{final_reply}\r\n").as_bytes()).await?;
            if hang_up {
                return Ok(());
            }
        } else if upper == "QUIT" {
            w.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            w.write_all(b"250 Ok\r\n").await?;
        }
    }
}
