//! Load generator for the `/mxdeliv` listener of incoming mode.
//!
//! `mxdeliv_load PORT EML CONNECTIONS MESSAGES`: CONNECTIONS kept-alive HTTP/1.1 connections
//! (as nginx's upstream keepalive would use) post MESSAGES messages in total to
//! 127.0.0.1:PORT, one after the other per connection. `{from_addr}`, `{to_addr}` and
//! `{subject}` in EML are filled per connection; the body is sent dot-stuffed with CRLF lines.
//! Every answer must be `200`. Prints messages/s and p50/p99 request latency.
//!
//! Run filtermail in incoming mode with `FILTERMAIL_SKIP_DKIM=1` against an SMTP sink
//! (`bench/filtermail-load sink PORT` as `postfix_reinject_port_incoming`), with the account
//! `bob@chat.example.org` in its `mailboxes_dir` (a non-empty `password` file): incoming
//! mode refuses recipients without a mailbox. The senders are `sender<i>@remote.example`.
#![forbid(unsafe_code)]

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const TO: &str = "bob@chat.example.org";

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [port, eml, conns, messages] = args.as_slice() else {
        return Err("usage: mxdeliv_load PORT EML CONNECTIONS MESSAGES".into());
    };
    let port: u16 = port.parse()?;
    let conns: usize = conns.parse()?;
    let messages: usize = messages.parse()?;
    let template = std::fs::read_to_string(eml)?.replace('\r', "");
    let left = Arc::new(AtomicUsize::new(messages));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..conns {
        let from = format!("sender{i}@remote.example");
        let msg = template
            .replace("{from_addr}", &from)
            .replace("{to_addr}", TO)
            .replace("{subject}", "load")
            .replace('\n', "\r\n");
        let left = Arc::clone(&left);
        tasks.push(tokio::spawn(connection(
            port,
            from,
            chatmail_smtp::stuff(msg.as_bytes()),
            left,
        )));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: usize| {
        lat.get(lat.len().saturating_sub(1) * p / 100)
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{conns} conns: {:.0} msg/s, p50 {:.2} ms, p99 {:.2} ms ({} messages)",
        lat.len() as f64 / secs,
        pct(50),
        pct(99),
        lat.len()
    )?;
    Ok(())
}

/// Posts messages on one kept-alive connection while any are left.
async fn connection(
    port: u16,
    from: String,
    body: Vec<u8>,
    left: Arc<AtomicUsize>,
) -> Res<Vec<Duration>> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut request = format!(
        "POST /mxdeliv HTTP/1.1\r\nHost: 127.0.0.1\r\nX-MAIL-FROM: {from}\r\nX-MAIL-TO: {TO}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let mut lat = Vec::new();
    while left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        let t = Instant::now();
        w.write_all(&request).await?;
        let mut status = String::new();
        r.read_line(&mut status).await?;
        if !status.starts_with("HTTP/1.1 200") {
            return Err(format!("unexpected answer: {status}").into());
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await? == 0 {
                return Err("connection closed".into());
            }
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse()?;
            }
        }
        let mut resp = vec![0u8; length];
        r.read_exact(&mut resp).await?;
        lat.push(t.elapsed());
    }
    Ok(lat)
}
